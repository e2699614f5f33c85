"""Judging through the API: same leases, overlap and idempotency rules as the browser."""

import json
import uuid

import pytest
from django.test import Client

from annotation.models import Assignment, Comparison, Judgment, Round
from annotation.tokens import token_create
from tests.api.helpers import client_for
from tests.factories import UserFactory, add_member, make_round

pytestmark = pytest.mark.django_db


def _post(client, url, body=None, **headers):
    return client.post(url, json.dumps(body or {}), content_type="application/json", headers=headers)


def _annotator_client(round_, **token_kwargs):
    user = UserFactory()
    add_member(round_.campaign, user)
    _, plaintext = token_create(user=user, name="t", campaigns=[round_.campaign], write=True, **token_kwargs)
    return user, Client(headers={"Authorization": f"Bearer {plaintext}"})


def test_claim_returns_a_blind_pair_with_its_display_order(world):
    client = client_for(world, "write_token")
    response = _post(client, f"/api/v1/rounds/{world.round_a.id}/next/")
    assert response.status_code == 200
    pair = response.json()
    lease = Assignment.objects.get(id=pair["assignment"])
    assert lease.annotator == world.users["alice"] and lease.status == Assignment.Status.LIVE
    comparison = lease.comparison
    assert (pair["first"]["id"], pair["second"]["id"]) == (comparison.sample_first_id, comparison.sample_second_id)
    left = comparison.sample_second_id if lease.swapped else comparison.sample_first_id
    assert pair["left_sample"] == left
    assert {pair["left_sample"], pair["right_sample"]} == {comparison.sample_first_id, comparison.sample_second_id}
    assert "model_version" not in pair["first"]  # judging stays blind
    assert pair["first"]["media_urls"][0].startswith("http://testserver/media/")


@pytest.mark.parametrize("swapped", [False, True])
def test_left_right_follow_the_lease_and_first_second_the_comparison(swapped):
    round_ = make_round(prompts=1, samples_per_prompt=3, overlap=3)
    round_.campaign.criteria = ["visual_quality"]
    round_.campaign.save()
    user, client = _annotator_client(round_)
    pair = _post(client, f"/api/v1/rounds/{round_.id}/next/").json()
    Assignment.objects.filter(id=pair["assignment"]).update(swapped=swapped)
    response = _post(
        client,
        f"/api/v1/assignments/{pair['assignment']}/judgment/",
        {"choice": "left", "criteria": {"visual_quality": "first"}},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True
    assert body["choice"] == ("second" if swapped else "first")  # left was the second sample when swapped
    assert body["criteria"] == {"visual_quality": "first"}  # `first` is the comparison's own order
    judgment = Judgment.objects.get(id=body["id"])
    comparison = judgment.comparison
    assert judgment.left_sample_id == (comparison.sample_second_id if swapped else comparison.sample_first_id)


def test_double_submit_with_the_same_idempotency_key_returns_the_first_judgment(world):
    client = client_for(world, "write_token")
    lease = world.objects["lease_alice"]
    key = str(uuid.uuid4())
    url = f"/api/v1/assignments/{lease.id}/judgment/"
    first = _post(client, url, {"choice": "first"}, **{"Idempotency-Key": key})
    again = _post(client, url, {"choice": "second"}, **{"Idempotency-Key": key})
    assert first.status_code == 201 and first.json()["created"] is True
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["id"] == first.json()["id"] and again.json()["choice"] == first.json()["choice"]
    assert Judgment.objects.filter(assignment=lease).count() == 1
    assert (
        Comparison.objects.get(id=lease.comparison_id).judgment_count
        == 1 + Judgment.objects.filter(comparison_id=lease.comparison_id).exclude(assignment=lease).count()
    )


def test_a_repeated_submit_of_a_judged_lease_creates_nothing(world):
    client = client_for(world, "write_token")
    url = f"/api/v1/assignments/{world.objects['lease_alice'].id}/judgment/"
    one = _post(client, url, {"choice": "tie"})
    two = _post(client, url, {"choice": "both_bad"})
    assert (one.status_code, two.status_code) == (201, 200)
    assert two.json()["id"] == one.json()["id"] and two.json()["choice"] == "tie"


def test_an_idempotency_key_of_another_annotator_is_a_conflict(world):
    key = str(uuid.uuid4())
    client = client_for(world, "write_token")
    _post(
        client,
        f"/api/v1/assignments/{world.objects['lease_alice'].id}/judgment/",
        {"choice": "tie"},
        **{"Idempotency-Key": key},
    )
    ann_client = Client()
    ann_client.force_login(world.users["ann"])
    lease = _post(ann_client, f"/api/v1/rounds/{world.round_a.id}/next/").json()["assignment"]
    response = _post(
        ann_client, f"/api/v1/assignments/{lease}/judgment/", {"choice": "tie"}, **{"Idempotency-Key": key}
    )
    assert response.status_code == 409 and "another judgment" in response.json()["detail"]


def test_overlap_is_obeyed_through_the_api():
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=1)  # one comparison, one judgment wanted
    _, first = _annotator_client(round_)
    _, second = _annotator_client(round_)
    pair = _post(first, f"/api/v1/rounds/{round_.id}/next/")
    assert pair.status_code == 200
    assert _post(second, f"/api/v1/rounds/{round_.id}/next/").status_code == 204  # the only slot is leased
    assert (
        _post(first, f"/api/v1/assignments/{pair.json()['assignment']}/judgment/", {"choice": "first"}).status_code
        == 201
    )
    assert _post(second, f"/api/v1/rounds/{round_.id}/next/").status_code == 204
    comparison = Comparison.objects.get(round=round_)
    assert (comparison.slots_taken, comparison.judgment_count) == (1, 1)


def test_claim_twice_returns_the_held_lease():
    round_ = make_round(prompts=2, samples_per_prompt=2)
    _, client = _annotator_client(round_)
    one = _post(client, f"/api/v1/rounds/{round_.id}/next/").json()
    two = _post(client, f"/api/v1/rounds/{round_.id}/next/").json()
    assert one["assignment"] == two["assignment"]


def test_closed_round_is_a_conflict(world):
    Round.objects.filter(id=world.round_a.id).update(status=Round.Status.CLOSED)
    client = client_for(world, "write_token")
    response = _post(client, f"/api/v1/rounds/{world.round_a.id}/next/")
    assert response.status_code == 409 and "not open" in response.json()["detail"]
    response = _post(client, f"/api/v1/assignments/{world.objects['lease_alice'].id}/judgment/", {"choice": "tie"})
    assert response.status_code == 409 and "closed" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "headers", "needle"),
    [
        ({"choice": "better"}, {}, "choice"),
        ({}, {}, "choice"),
        ({"choice": "tie", "criteria": {"smell": "first"}}, {}, "smell"),
        ({"choice": "tie", "criteria": ["first"]}, {}, "criteria"),
        ({"choice": "tie", "time_on_task_ms": -1}, {}, "time_on_task_ms"),
        ({"choice": "tie", "time_on_task_ms": "slow"}, {}, "time_on_task_ms"),
        ({"choice": "tie"}, {"Idempotency-Key": "not-a-uuid"}, "Idempotency-Key"),
    ],
)
def test_bad_judgments_are_400_and_change_nothing(world, body, headers, needle):
    client = client_for(world, "write_token")
    lease = world.objects["lease_alice"]
    response = _post(client, f"/api/v1/assignments/{lease.id}/judgment/", body, **headers)
    assert response.status_code == 400, response.content
    assert needle in response.json()["detail"]
    assert Assignment.objects.get(id=lease.id).status == Assignment.Status.LIVE
    assert not Judgment.objects.filter(assignment=lease).exists()


def test_malformed_json_is_a_400(world):
    client = client_for(world, "write_token")
    url = f"/api/v1/assignments/{world.objects['lease_alice'].id}/judgment/"
    response = client.post(url, "{not json", content_type="application/json")
    assert response.status_code == 400 and "JSON" in response.json()["detail"]
    response = client.post(url, "choice=tie", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_skip_gives_the_pair_back(world):
    client = client_for(world, "write_token")
    lease = world.objects["lease_alice"]
    slots = Comparison.objects.get(id=lease.comparison_id).slots_taken
    response = _post(client, f"/api/v1/assignments/{lease.id}/skip/")
    assert response.status_code == 200 and response.json() == {"assignment": lease.id, "status": "skipped"}
    assert Comparison.objects.get(id=lease.comparison_id).slots_taken == slots - 1
    response = _post(client, f"/api/v1/assignments/{lease.id}/judgment/", {"choice": "tie"})
    assert response.status_code == 409 and "skipped" in response.json()["detail"]
