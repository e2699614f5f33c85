"""Token lifecycle: hashed at rest, shown once, scoped, revocable, expiring, last use recorded."""

import hashlib
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.errors import Invalid
from annotation.models import ApiToken
from annotation.tokens import token_create, token_revoke
from tests.factories import UserFactory, add_member, make_round

pytestmark = pytest.mark.django_db


@pytest.fixture
def member():
    round_ = make_round(prompts=1)
    user = UserFactory()
    add_member(round_.campaign, user, role="researcher")
    return user, round_.campaign


def _get(plaintext, scheme="Bearer", url="/api/v1/campaigns/"):
    return Client(headers={"Authorization": f"{scheme} {plaintext}"}).get(url)


def test_token_is_stored_hashed_and_the_plaintext_only_returned(member):
    user, campaign = member
    token, plaintext = token_create(user=user, name="nb", campaigns=[campaign], write=False)
    _, prefix, secret = plaintext.split("_", 2)
    assert plaintext.startswith("loupe_") and token.prefix == prefix
    row = ApiToken.objects.filter(id=token.id).values().get()
    assert row["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in str(value) for value in row.values())
    assert list(token.campaigns.all()) == [campaign]


@pytest.mark.parametrize("scheme", ["Bearer", "Token", "bearer"])
def test_both_schemes_authenticate_and_last_use_is_recorded(member, scheme):
    user, campaign = member
    token, plaintext = token_create(user=user, name="nb", campaigns=[campaign], write=False)
    assert token.last_used_at is None
    response = _get(plaintext, scheme)
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["results"]] == [campaign.id]
    token.refresh_from_db()
    assert token.last_used_at is not None and timezone.now() - token.last_used_at < timedelta(seconds=30)


def test_last_use_is_written_at_most_once_a_minute(member):
    user, campaign = member
    token, plaintext = token_create(user=user, name="nb", campaigns=[campaign], write=False)
    long_ago = timezone.now() - timedelta(hours=1)
    recently = timezone.now() - timedelta(seconds=5)
    ApiToken.objects.filter(id=token.id).update(last_used_at=recently)
    _get(plaintext)
    token.refresh_from_db()
    assert token.last_used_at == recently
    ApiToken.objects.filter(id=token.id).update(last_used_at=long_ago)
    _get(plaintext)
    token.refresh_from_db()
    assert token.last_used_at > recently


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda p: p[:-2] + ("BB" if p.endswith("AA") else "AA"), "Invalid API token"),
        (lambda p: "loupe_00000000_" + p.split("_", 2)[2], "Invalid API token"),
        (lambda p: "not-a-token", "Malformed API token"),
        (lambda p: p + " extra", "Malformed Authorization header"),
    ],
)
def test_bad_tokens_get_a_401_that_says_why(member, mangle, message):
    user, campaign = member
    _, plaintext = token_create(user=user, name="nb", campaigns=[campaign], write=False)
    response = _get(mangle(plaintext))
    assert response.status_code == 401
    assert message in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_refused(member):
    user, campaign = member
    token, plaintext = token_create(user=user, name="nb", campaigns=[campaign], write=False)
    assert _get(plaintext).status_code == 200
    token_revoke(token=token)
    first = token.revoked_at
    token_revoke(token=token)  # idempotent: keeps the first time
    assert token.revoked_at == first
    response = _get(plaintext)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]


def test_expired_token_is_refused(member):
    user, campaign = member
    token, plaintext = token_create(
        user=user, name="nb", campaigns=[campaign], write=False, expires_at=timezone.now() + timedelta(days=1)
    )
    assert _get(plaintext).status_code == 200
    ApiToken.objects.filter(id=token.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = _get(plaintext)
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_token_of_a_disabled_user_is_refused(member):
    user, campaign = member
    _, plaintext = token_create(user=user, name="nb", campaigns=[campaign], write=False)
    type(user).objects.filter(id=user.id).update(is_active=False)
    response = _get(plaintext)
    assert response.status_code == 401 and "disabled" in response.json()["detail"]


def test_tokens_only_for_the_users_own_campaigns(member):
    user, campaign = member
    foreign = make_round(prompts=1).campaign
    with pytest.raises(Invalid, match="not a member"):
        token_create(user=user, name="nb", campaigns=[campaign, foreign], write=False)
    with pytest.raises(Invalid, match="at least one"):
        token_create(user=user, name="nb", campaigns=[], write=False)
    with pytest.raises(Invalid, match="future"):
        token_create(user=user, name="nb", campaigns=[campaign], write=False, expires_at=timezone.now())
    assert not ApiToken.objects.exists()


def test_tokens_page_shows_the_plaintext_once_and_revokes(member):
    user, campaign = member
    client = Client()
    client.force_login(user)
    page = client.get(reverse("api_tokens"))
    assert page.status_code == 200 and campaign.name in page.content.decode()
    created = client.post(reverse("api_tokens"), {"name": "notebook", "campaigns": [campaign.id], "write": "on"})
    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(user=user)
    html = created.content.decode()
    start = html.index(f"loupe_{token.prefix}_")
    plaintext = html[start : html.index("<", start)]
    assert token.write and _get(plaintext).status_code == 200
    again = client.get(reverse("api_tokens")).content.decode()
    assert plaintext not in again and f"loupe_{token.prefix}_" in again  # listed by prefix only
    response = client.post(reverse("api_token_revoke", args=[token.id]))
    assert response.status_code == 302
    assert _get(plaintext).status_code == 401


def test_tokens_page_refuses_foreign_campaigns_and_foreign_tokens(member):
    user, campaign = member
    foreign = make_round(prompts=1).campaign
    client = Client()
    client.force_login(user)
    response = client.post(reverse("api_tokens"), {"name": "x", "campaigns": [foreign.id]})
    assert response.status_code == 400 and not ApiToken.objects.exists()
    other = UserFactory()
    add_member(campaign, other)
    token, plaintext = token_create(user=other, name="theirs", campaigns=[campaign], write=False)
    assert client.post(reverse("api_token_revoke", args=[token.id])).status_code == 404
    assert _get(plaintext).status_code == 200


def test_researcher_creates_and_revokes_tokens_in_the_admin(member):
    from django.contrib.auth.models import Permission

    researcher, campaign = member
    researcher.is_staff = True
    researcher.save()
    researcher.user_permissions.add(*Permission.objects.filter(content_type__app_label="annotation"))
    annotator = UserFactory()
    add_member(campaign, annotator)
    foreign = make_round(prompts=1).campaign
    outsider = UserFactory()
    add_member(foreign, outsider)
    foreign_token, _ = token_create(user=outsider, name="foreign", campaigns=[foreign], write=False)

    client = Client()
    client.force_login(researcher)
    add_url = reverse("admin:annotation_apitoken_add")
    form = client.get(add_url).content.decode()
    assert campaign.name in form and foreign.name not in form and outsider.username not in form
    created = client.post(add_url, {"user": annotator.id, "name": "team", "campaigns": [campaign.id], "write": "on"})
    assert created.status_code == 200
    token = ApiToken.objects.get(user=annotator)
    assert f"loupe_{token.prefix}_" in created.content.decode()

    changelist = reverse("admin:annotation_apitoken_changelist")
    listing = client.get(changelist).content.decode()
    assert "team" in listing and "foreign" not in listing
    client.post(changelist, {"action": "revoke_action", "_selected_action": [token.id, foreign_token.id]})
    token.refresh_from_db()
    foreign_token.refresh_from_db()
    assert token.revoked_at is not None and foreign_token.revoked_at is None
