"""Membership rules on every annotator page and media URL, through the real URL conf."""

import pytest
from django.urls import reverse

from annotation.models import Assignment, Judgment
from annotation.services.leases import assignment_claim_next
from tests.factories import UserFactory, add_member, make_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """Two campaigns; alice annotates A, bob annotates B, carol is a researcher of A only."""
    round_a, round_b = make_round(prompts=2), make_round(prompts=2)
    alice, bob, carol = UserFactory(), UserFactory(), UserFactory(is_staff=True)
    add_member(round_a.campaign, alice)
    add_member(round_b.campaign, bob)
    add_member(round_a.campaign, carol, role="researcher")
    lease_a = assignment_claim_next(annotator=alice, round_=round_a)
    lease_b = assignment_claim_next(annotator=bob, round_=round_b)
    return {
        "round_a": round_a,
        "round_b": round_b,
        "alice": alice,
        "bob": bob,
        "carol": carol,
        "lease_a": lease_a,
        "lease_b": lease_b,
    }


def _urls_of_round(round_, lease):
    sample = lease.comparison.sample_first
    return {
        "annotate": ("get", reverse("annotation:annotate", args=[round_.id])),
        "next": ("get", reverse("annotation:pair_next", args=[round_.id])),
        "progress": ("get", reverse("annotation:progress", args=[round_.id])),
        "undo": ("post", reverse("annotation:undo", args=[round_.id])),
        "judge": ("post", reverse("annotation:judge", args=[lease.id])),
        "skip": ("post", reverse("annotation:skip", args=[lease.id])),
        "media": ("get", reverse("annotation:media", args=[sample.id, 0])),
        "poster": ("get", reverse("annotation:poster", args=[sample.id])),
    }


@pytest.mark.parametrize("name", ["annotate", "next", "progress", "undo", "judge", "skip", "media", "poster"])
def test_anonymous_is_sent_to_login(client, world, name):
    method, url = _urls_of_round(world["round_a"], world["lease_a"])[name]
    response = getattr(client, method)(url, {"choice": "left"} if name == "judge" else {})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["annotate", "next", "progress", "undo", "judge", "skip", "media", "poster"])
def test_member_of_another_campaign_gets_404_everywhere(client, world, name):
    client.force_login(world["bob"])
    method, url = _urls_of_round(world["round_a"], world["lease_a"])[name]
    response = getattr(client, method)(url, {"choice": "left"} if name == "judge" else {})
    assert response.status_code == 404
    assert not Judgment.objects.exists()
    assert Assignment.objects.get(id=world["lease_a"].id).status == Assignment.Status.LIVE


def test_a_colleagues_lease_in_the_same_campaign_is_not_reachable(client, world):
    dave = UserFactory()
    add_member(world["round_a"].campaign, dave)
    client.force_login(dave)
    url = reverse("annotation:judge", args=[world["lease_a"].id])
    assert client.post(url, {"choice": "left"}).status_code == 404
    assert not Judgment.objects.exists()


def test_member_reaches_pages_and_media_with_safe_headers(client, world):
    client.force_login(world["alice"])
    assert client.get(reverse("annotation:annotate", args=[world["round_a"].id])).status_code == 200
    sample = world["lease_a"].comparison.sample_first
    response = client.get(reverse("annotation:media", args=[sample.id, 0]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, max-age=3600"
    assert response["Content-Disposition"].startswith("inline; filename=")


def test_media_honours_byte_ranges(client, world):
    client.force_login(world["alice"])
    sample = world["lease_a"].comparison.sample_first
    url = reverse("annotation:media", args=[sample.id, 0])
    full = b"".join(client.get(url).streaming_content)
    part = client.get(url, headers={"Range": "bytes=2-9"})
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 2-9/{len(full)}"
    assert b"".join(part.streaming_content) == full[2:10]
    assert client.get(url, headers={"Range": f"bytes={len(full)}-"}).status_code == 416


def test_home_lists_only_own_campaigns(client, world):
    client.force_login(world["alice"])
    page = client.get(reverse("annotation:home")).content.decode()
    assert world["round_a"].campaign.name in page
    assert world["round_b"].campaign.name not in page


def test_researcher_admin_sees_only_own_campaigns(client, world):
    from django.contrib.auth.models import Permission

    carol = world["carol"]
    carol.user_permissions.add(*Permission.objects.filter(content_type__app_label="annotation"))
    client.force_login(carol)
    page = client.get(reverse("admin:annotation_campaign_changelist")).content.decode()
    assert world["round_a"].campaign.name in page
    assert world["round_b"].campaign.name not in page
    other = reverse("admin:annotation_campaign_change", args=[world["round_b"].campaign.id])
    assert client.get(other).status_code == 302  # admin redirects a missing object to the index
    round_b_url = reverse("admin:annotation_round_change", args=[world["round_b"].id])
    assert client.get(round_b_url).status_code == 302


def test_sign_up_is_off_by_default(client):
    assert client.get("/signup/").status_code == 404
    assert client.get("/accounts/signup/").status_code == 404


def test_sign_up_when_enabled_creates_a_user_with_no_campaigns(client, settings):
    settings.LOUPE_SIGNUP_ENABLED = True
    response = client.post(
        "/signup/", {"username": "newbie", "password1": "a-long-Pass-phrase-9", "password2": "a-long-Pass-phrase-9"}
    )
    assert response.status_code == 302
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.get(username="newbie")
    assert not user.memberships.exists() and not user.is_staff
