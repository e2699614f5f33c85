"""Permission matrix: every API route x every role.

No object is reachable across campaigns by id (404), lists are scoped, writes are refused where
they should be (401 anonymous, 403 read-only token, 404 out of scope) and change nothing.
"""

import json

import pytest

from annotation.models import Assignment, Judgment
from tests.api.helpers import ROLES, client_for

pytestmark = pytest.mark.django_db

MEMBER_VISIBLE = {"ro_token", "write_token", "annotator_session", "researcher", "admin"}
RESEARCHER_VISIBLE = {"ro_token", "researcher", "admin"}
# Campaign B's objects: its researcher (session and token) and the superuser.
B_VISIBLE = {"other_token", "other_researcher", "admin"}


def _objects(w):
    """resource -> (object in campaign A, roles that see it, object in campaign B)."""
    sample_a = w.round_a.samples.order_by("id").first()
    sample_b = w.round_b.samples.order_by("id").first()
    return {
        "campaigns": (w.round_a.campaign, MEMBER_VISIBLE, w.round_b.campaign),
        "rounds": (w.round_a, MEMBER_VISIBLE, w.round_b),
        "prompts": (w.round_a.prompts.first(), MEMBER_VISIBLE, w.round_b.prompts.first()),
        "samples": (sample_a, RESEARCHER_VISIBLE, sample_b),
        "comparisons": (w.objects["comparison_a"], RESEARCHER_VISIBLE, w.objects["comparison_b"]),
        "judgments": (w.objects["judgment_ann"], RESEARCHER_VISIBLE, w.objects["judgment_b"]),
        "model-versions": (sample_a.model_version, RESEARCHER_VISIBLE, sample_b.model_version),
        "training-jobs": (w.round_a.generation_job, RESEARCHER_VISIBLE, w.round_b.generation_job),
    }


RESOURCES = ["campaigns", "rounds", "prompts", "samples", "comparisons", "judgments", "model-versions", "training-jobs"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("resource", RESOURCES)
def test_detail_is_reachable_only_within_scope(world, resource, role):
    obj_a, visible, obj_b = _objects(world)[resource]
    client = client_for(world, role)
    for obj, who in ((obj_a, visible), (obj_b, B_VISIBLE)):
        response = client.get(f"/api/v1/{resource}/{obj.id}/")
        expected = 401 if role == "anonymous" else 200 if role in who else 404
        assert response.status_code == expected, (resource, role, obj.id, response.content)
        if expected == 200:
            assert response.json()["id"] == obj.id
        else:
            assert set(response.json()) == {"detail"}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("resource", RESOURCES)
def test_lists_are_scoped(world, resource, role):
    obj_a, visible, obj_b = _objects(world)[resource]
    response = client_for(world, role).get(f"/api/v1/{resource}/", {"page_size": 500})
    if role == "anonymous":
        assert response.status_code == 401
        return
    assert response.status_code == 200, response.content
    ids = {row["id"] for row in response.json()["results"]}
    assert (obj_a.id in ids) == (role in visible), (resource, role)
    assert (obj_b.id in ids) == (role in B_VISIBLE), (resource, role)


@pytest.mark.parametrize("role", ROLES)
def test_annotators_see_their_own_judgments_only(world, role):
    own = world.objects["judgment_alice"]
    client = client_for(world, role)
    response = client.get(f"/api/v1/judgments/{own.id}/")
    sees_own = {"write_token", "annotator_session", "ro_token", "researcher", "admin"}
    assert response.status_code == (401 if role == "anonymous" else 200 if role in sees_own else 404)
    if role in ("write_token", "annotator_session"):
        listed = {r["id"] for r in client.get("/api/v1/judgments/").json()["results"]}
        assert listed == {own.id}


def _write_routes(w):
    lease = w.objects["lease_alice"]
    return {
        "claim": (f"/api/v1/rounds/{w.round_a.id}/next/", {}),
        "judge": (f"/api/v1/assignments/{lease.id}/judgment/", {"choice": "tie"}),
        "skip": (f"/api/v1/assignments/{lease.id}/skip/", {}),
    }


WRITE_EXPECTED = {
    #                  claim judge skip
    "anonymous": (401, 401, 401),
    "other_token": (404, 404, 404),
    "ro_token": (403, 403, 403),
    "write_token": (200, 201, 200),
    "annotator_session": (200, 201, 200),
    "other_researcher": (404, 404, 404),
    # A researcher (or admin) may judge in their campaign like in the browser, but alice's lease is hers.
    "researcher": (200, 404, 404),
    "admin": (200, 404, 404),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ["claim", "judge", "skip"])
def test_writes_are_refused_where_they_should_be(world, route, role):
    url, body = _write_routes(world)[route]
    expected = WRITE_EXPECTED[role][["claim", "judge", "skip"].index(route)]
    judgments_before = Judgment.objects.count()
    leases_before = Assignment.objects.count()
    response = client_for(world, role).post(url, json.dumps(body), content_type="application/json")
    assert response.status_code == expected, (route, role, response.content)
    if expected >= 400:
        assert response.json()["detail"]
        assert Judgment.objects.count() == judgments_before
        assert Assignment.objects.count() == leases_before
        assert Assignment.objects.get(id=world.objects["lease_alice"].id).status == Assignment.Status.LIVE
    if role == "ro_token":
        assert "read-only" in response.json()["detail"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_read_only_resources_refuse_writes(world, method, role):
    campaign = world.round_a.campaign
    url = "/api/v1/campaigns/" if method == "post" else f"/api/v1/campaigns/{campaign.id}/"
    response = getattr(client_for(world, role), method)(url, "{}", content_type="application/json")
    expected = {"anonymous": 401, "ro_token": 403}.get(role, 405)
    assert response.status_code == expected
    assert type(campaign).objects.filter(id=campaign.id, name=campaign.name).exists()


def test_session_writes_need_csrf_but_token_writes_do_not(world):
    url = f"/api/v1/rounds/{world.round_a.id}/next/"
    session = client_for(world, "annotator_session", enforce_csrf_checks=True)
    response = session.post(url)
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    token = client_for(world, "write_token", enforce_csrf_checks=True)
    assert token.post(url).status_code == 200


def test_token_never_exceeds_its_users_membership(world):
    """Leaving a campaign takes its data away from the user's tokens too."""
    from annotation.models import Membership

    client = client_for(world, "ro_token")
    url = f"/api/v1/campaigns/{world.round_a.campaign.id}/"
    assert client.get(url).status_code == 200
    Membership.objects.filter(user=world.users["rita"]).delete()
    assert client.get(url).status_code == 404
    assert client.get("/api/v1/campaigns/").json()["results"] == []


def test_researcher_token_of_an_annotator_campaign_gets_annotator_scope(world):
    """A token's scope is its user's role per campaign, never more."""
    client = client_for(world, "write_token")  # alice annotates A
    assert client.get(f"/api/v1/campaigns/{world.round_a.campaign.id}/").json()["role"] == "annotator"
    assert client.get("/api/v1/samples/").json()["results"] == []
    assert client.get("/api/v1/comparisons/").json()["results"] == []


# ---------------------------------------------------------------- export and snapshots

# Export and snapshot routes are researcher-level: the campaign's researchers (session or token,
# read-only tokens included) and the superuser. Under `campaigns/{id}/` the campaign is visible to
# its annotators, so they get 403; outside the caller's campaigns it is 404.
EXPORT_EXPECTED = {
    #                    A    B
    "anonymous": (401, 401),
    "other_token": (404, 200),
    "ro_token": (200, 404),
    "write_token": (403, 404),  # alice annotates A
    "annotator_session": (403, 404),
    "other_researcher": (404, 200),
    "researcher": (200, 404),
    "admin": (200, 200),
}


@pytest.fixture
def snapshots(world):
    from annotation.export import snapshot_create

    return {
        side: snapshot_create(campaign=r.campaign, fmt="jsonl", raw=False, created_by=None, base_url="http://x")
        for side, r in (("a", world.round_a), ("b", world.round_b))
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ["export", "snapshots"])
def test_campaign_export_and_snapshot_lists_are_for_researchers(world, snapshots, route, role):
    client = client_for(world, role)
    for k, (round_, snapshot) in enumerate(((world.round_a, snapshots["a"]), (world.round_b, snapshots["b"]))):
        response = client.get(f"/api/v1/campaigns/{round_.campaign_id}/{route}/")
        expected = EXPORT_EXPECTED[role][k]
        assert response.status_code == expected, (route, role, k, response.content)
        if expected != 200:
            assert set(response.json()) == {"detail"}
        elif route == "snapshots":
            assert [s["id"] for s in response.json()["results"]] == [snapshot.id]
        else:
            assert response["Content-Disposition"].startswith("attachment;")
            assert b"".join(response.streaming_content)


SNAPSHOT_CREATE_EXPECTED = {
    "anonymous": 401,
    "other_token": 404,
    "ro_token": 403,  # read-only
    "write_token": 403,  # an annotator of A
    "annotator_session": 403,
    "other_researcher": 404,
    "researcher": 201,
    "admin": 201,
}


@pytest.mark.parametrize("role", ROLES)
def test_freezing_a_snapshot_needs_a_researcher_who_may_write(world, role):
    from annotation.models import DatasetSnapshot

    url = f"/api/v1/campaigns/{world.round_a.campaign_id}/snapshots/"
    response = client_for(world, role).post(url, json.dumps({"format": "jsonl"}), content_type="application/json")
    expected = SNAPSHOT_CREATE_EXPECTED[role]
    assert response.status_code == expected, (role, response.content)
    if expected == 201:
        assert DatasetSnapshot.objects.get().id == response.json()["id"]
    else:
        assert response.json()["detail"]
        assert not DatasetSnapshot.objects.exists()
    if role == "ro_token":
        assert "read-only" in response.json()["detail"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ["detail", "download"])
def test_snapshots_are_reachable_only_within_scope(world, snapshots, route, role):
    client = client_for(world, role)
    for snapshot, who in ((snapshots["a"], RESEARCHER_VISIBLE), (snapshots["b"], B_VISIBLE)):
        url = f"/api/v1/snapshots/{snapshot.id}/" + ("download/" if route == "download" else "")
        response = client.get(url)
        expected = 401 if role == "anonymous" else 200 if role in who else 404
        assert response.status_code == expected, (route, role, snapshot.id, response.content)
        if expected != 200:
            assert set(response.json()) == {"detail"}
        elif route == "detail":
            assert response.json()["id"] == snapshot.id
        else:
            assert response["ETag"] == f'"{snapshot.sha256}"'


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_snapshots_cannot_be_changed(world, snapshots, method, role):
    from annotation.models import DatasetSnapshot

    snapshot = snapshots["a"]
    for url in (
        f"/api/v1/snapshots/{snapshot.id}/",
        f"/api/v1/snapshots/{snapshot.id}/download/",
        f"/api/v1/campaigns/{world.round_a.campaign_id}/snapshots/",
        f"/api/v1/campaigns/{world.round_a.campaign_id}/export/",
    ):
        response = getattr(client_for(world, role), method)(url, "{}", content_type="application/json")
        expected = {"anonymous": 401, "ro_token": 403}.get(role, 405)
        assert response.status_code == expected, (url, role)
    assert DatasetSnapshot.objects.filter(id=snapshot.id, sha256=snapshot.sha256).exists()
