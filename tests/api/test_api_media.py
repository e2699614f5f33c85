"""Media URLs (`annotation:media`, `annotation:poster`) answer to API tokens as well as sessions.

A token reaches a sample's media when the sample's campaign is one of the token's and its user is a
member there; the headers (nosniff, private cache, inline disposition) and byte ranges are the same
as for the browser.
"""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import ApiToken, Membership
from annotation.tokens import token_create, token_revoke
from tests.api.helpers import client_for

pytestmark = pytest.mark.django_db


def _sample(round_):
    return round_.samples.order_by("id").first()


def _media_url(sample) -> str:
    return reverse("annotation:media", args=[sample.id, 0])


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("role", ["ro_token", "write_token"])
def test_a_token_of_the_campaign_fetches_media_with_safe_headers(world, role):
    """A researcher's read-only token and an annotator's token: both members of A."""
    sample = _sample(world.round_a)
    response = client_for(world, role).get(_media_url(sample))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, max-age=3600"
    assert response["Content-Disposition"] == f'inline; filename="sample-{sample.id}-0.png"'
    assert "Authorization" in response["Vary"]
    with default_storage.open(sample.files[0], "rb") as handle:
        assert _body(response) == handle.read()


def test_a_token_honours_byte_ranges(world):
    client = client_for(world, "ro_token")
    url = _media_url(_sample(world.round_a))
    full = _body(client.get(url))
    part = client.get(url, headers={"Range": "bytes=1-4"})
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 1-4/{len(full)}"
    assert _body(part) == full[1:5]
    assert client.get(url, headers={"Range": f"bytes={len(full)}-"}).status_code == 416


def test_a_token_fetches_the_poster(world):
    sample = _sample(world.round_a)
    sample.poster = default_storage.save("test/poster.png", ContentFile(b"poster bytes"))
    sample.save(update_fields=["poster"])
    url = reverse("annotation:poster", args=[sample.id])
    response = client_for(world, "ro_token").get(url)
    assert response.status_code == 200 and _body(response) == b"poster bytes"
    assert response["Content-Type"] == "image/png"
    assert client_for(world, "other_token").get(url).status_code == 404


def test_a_token_of_another_campaign_gets_404(world):
    client = client_for(world, "other_token")
    assert client.get(_media_url(_sample(world.round_a))).status_code == 404
    assert client.get(_media_url(_sample(world.round_b))).status_code == 200


def test_the_token_scope_limits_even_a_superuser(world):
    """The admin may see every campaign, but a token of theirs only its own campaigns."""
    _, plaintext = token_create(user=world.users["admin"], name="b", campaigns=[world.round_b.campaign], write=False)
    client = Client(headers={"Authorization": f"Bearer {plaintext}"})
    assert client.get(_media_url(_sample(world.round_a))).status_code == 404
    assert client.get(_media_url(_sample(world.round_b))).status_code == 200


def test_a_token_whose_user_left_the_campaign_gets_404(world):
    client = client_for(world, "write_token")
    url = _media_url(_sample(world.round_a))
    assert client.get(url).status_code == 200
    Membership.objects.filter(user=world.users["alice"]).delete()
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("state", ["revoked", "expired", "disabled"])
def test_a_dead_token_is_a_401_saying_why(world, state):
    token = ApiToken.objects.get(user=world.users["rita"])
    if state == "revoked":
        token_revoke(token=token)
    elif state == "expired":
        ApiToken.objects.filter(id=token.id).update(expires_at=timezone.now() - timedelta(minutes=1))
    else:
        type(world.users["rita"]).objects.filter(id=world.users["rita"].id).update(is_active=False)
    response = client_for(world, "ro_token").get(_media_url(_sample(world.round_a)))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="loupe"'
    assert {"revoked": "revoked", "expired": "expired", "disabled": "disabled"}[state] in response.json()["detail"]


@pytest.mark.parametrize("header", ["Bearer loupe_nope", "Bearer a b", "Token loupe_0000abcd_" + "x" * 40])
def test_a_malformed_or_unknown_token_is_a_401(world, header):
    response = Client(headers={"Authorization": header}).get(_media_url(_sample(world.round_a)))
    assert response.status_code == 401 and response.json()["detail"]


def test_a_bad_token_is_not_rescued_by_a_session(world):
    """A refused token is refused outright, as in the API, even next to a valid session."""
    client = client_for(world, "researcher")
    response = client.get(_media_url(_sample(world.round_a)), headers={"Authorization": "Bearer loupe_nope"})
    assert response.status_code == 401


def test_anonymous_still_goes_to_the_login_page(world):
    for url in (_media_url(_sample(world.round_a)), reverse("annotation:poster", args=[_sample(world.round_a).id])):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_sessions_work_as_before_and_other_schemes_fall_back_to_them(world):
    url = _media_url(_sample(world.round_a))
    assert client_for(world, "annotator_session").get(url).status_code == 200
    assert client_for(world, "other_researcher").get(url).status_code == 404
    basic = client_for(world, "annotator_session").get(url, headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 200


def test_the_apis_media_urls_answer_to_the_same_token(world):
    client = client_for(world, "ro_token")
    samples = client.get("/api/v1/samples/", {"campaign": world.round_a.campaign_id}).json()["results"]
    assert samples
    for sample in samples:
        for url in sample["media_urls"]:
            response = client.get(url.removeprefix("http://testserver"))
            assert response.status_code == 200, url


def test_media_refuses_writes(world):
    response = client_for(world, "ro_token").post(_media_url(_sample(world.round_a)))
    assert response.status_code == 405
