"""Export and snapshots through the token API: the streamed files, their parameters, snapshots
frozen, listed and downloaded byte for byte (ETag = sha256)."""

import hashlib
import io
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.test import Client

from annotation.export import export_schema
from annotation.models import DatasetSnapshot, Judgment
from annotation.tokens import token_create
from tests.api.helpers import client_for

pytestmark = pytest.mark.django_db


def _content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.fixture
def rw_researcher(world) -> Client:
    """rita (researcher of A) with a read-write token for A."""
    _, plaintext = token_create(user=world.users["rita"], name="rw", campaigns=[world.round_a.campaign], write=True)
    return Client(headers={"Authorization": f"Bearer {plaintext}"})


def _export_url(world) -> str:
    return f"/api/v1/campaigns/{world.round_a.campaign_id}/export/"


def test_read_only_token_exports_parquet_that_pandas_loads(world):
    response = client_for(world, "ro_token").get(_export_url(world), {"format": "parquet"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"] == (
        f'attachment; filename="loupe-campaign-{world.round_a.campaign_id}-comparisons.parquet"'
    )
    assert response["X-Content-Type-Options"] == "nosniff"
    frame = pd.read_parquet(io.BytesIO(_content(response)))
    assert list(frame.columns) == export_schema(raw=False).names
    judged = set(Judgment.objects.filter(comparison__round=world.round_a).values_list("comparison_id", flat=True))
    assert set(frame["comparison_id"]) == judged
    assert frame["jpg_0"][0].startswith("http://testserver/media/")


def test_export_defaults_to_parquet_and_takes_raw_and_media(world):
    client = client_for(world, "researcher")
    default = client.get(_export_url(world))
    assert default.status_code == 200 and default["Content-Type"] == "application/vnd.apache.parquet"
    raw = client.get(_export_url(world), {"format": "jsonl", "raw": "true"})
    assert raw.status_code == 200 and raw["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in _content(raw).splitlines()]
    assert sorted(r["judgment_id"] for r in rows) == sorted(
        Judgment.objects.filter(comparison__round=world.round_a).values_list("id", flat=True)
    )
    embedded = pq.read_table(io.BytesIO(_content(client.get(_export_url(world), {"media": "embed"}))))
    assert embedded.schema.field("jpg_0").type == export_schema(raw=False, embed_media=True).field("jpg_0").type
    assert embedded.column("jpg_0")[0].as_py().startswith(b"\x89PNG")


def test_export_ignores_the_accept_header_and_drfs_format_override(world):
    client = client_for(world, "ro_token")
    response = client.get(_export_url(world), {"format": "jsonl"}, headers={"Accept": "application/x-ndjson"})
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    missing = client.get("/api/v1/campaigns/999999/export/", headers={"Accept": "application/vnd.apache.parquet"})
    assert missing.status_code == 404 and missing["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"format": "csv"}, "format"),
        ({"raw": "maybe"}, "raw"),
        ({"raw": "1"}, "raw"),
        ({"media": "inline"}, "media"),
        ({"fmt": "jsonl"}, "Unknown query parameter(s): fmt"),
    ],
)
def test_bad_export_parameters_are_a_400_naming_them(world, params, needle):
    response = client_for(world, "ro_token").get(_export_url(world), params)
    assert response.status_code == 400
    assert needle in response.json()["detail"]


def test_malformed_ids_are_json_404s(world):
    client = client_for(world, "admin")
    for url in (
        "/api/v1/campaigns/abc/export/",
        "/api/v1/campaigns/-1/snapshots/",
        f"/api/v1/snapshots/{2**70}/",
        "/api/v1/snapshots/0/download/",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["detail"]


def test_snapshot_frozen_listed_and_downloaded_byte_for_byte(world, rw_researcher):
    campaign_id = world.round_a.campaign_id
    url = f"/api/v1/campaigns/{campaign_id}/snapshots/"
    response = rw_researcher.post(url, {"format": "parquet", "raw": True}, content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["campaign"] == campaign_id and body["format"] == "parquet" and body["raw"] is True
    assert body["rows"] == Judgment.objects.filter(comparison__round=world.round_a).count()
    assert body["created_by"] == world.users["rita"].id
    assert body["download_url"] == f"http://testserver/api/v1/snapshots/{body['id']}/download/"
    assert response["Location"] == body["download_url"]

    listed = rw_researcher.get(url).json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]
    assert rw_researcher.get(f"/api/v1/snapshots/{body['id']}/").json() == body

    download = rw_researcher.get(body["download_url"])
    assert download.status_code == 200
    data = _content(download)
    assert len(data) == body["size_bytes"] and hashlib.sha256(data).hexdigest() == body["sha256"]
    assert download["ETag"] == f'"{body["sha256"]}"' and download["X-Content-SHA256"] == body["sha256"]
    assert download["Content-Type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(data)).num_rows == body["rows"]
    # A read-only token downloads the same bytes again.
    again = client_for(world, "ro_token").get(body["download_url"])
    assert _content(again) == data

    not_modified = rw_researcher.get(body["download_url"], headers={"If-None-Match": download["ETag"]})
    assert not_modified.status_code == 304 and not_modified["ETag"] == download["ETag"]
    stale = rw_researcher.get(body["download_url"], headers={"If-None-Match": '"0000"'})
    assert stale.status_code == 200


def test_snapshot_defaults_and_bad_bodies(world, rw_researcher):
    url = f"/api/v1/campaigns/{world.round_a.campaign_id}/snapshots/"
    body = rw_researcher.post(url, {}, content_type="application/json").json()
    assert (body["format"], body["raw"], body["embed_media"]) == ("parquet", False, False)
    for payload, needle in (({"format": "xml"}, "format"), ({"media": "inline"}, "media"), ({"raw": "x"}, "raw")):
        response = rw_researcher.post(url, payload, content_type="application/json")
        assert response.status_code == 400 and needle in response.json()["detail"]
    assert rw_researcher.post(url + "?raw=true").status_code == 400  # options go in the body
    assert DatasetSnapshot.objects.count() == 1


def test_snapshot_list_paginates(world, rw_researcher):
    url = f"/api/v1/campaigns/{world.round_a.campaign_id}/snapshots/"
    ids = [rw_researcher.post(url, {"format": "jsonl"}, content_type="application/json").json()["id"] for _ in range(3)]
    first = rw_researcher.get(url, {"page_size": 2, "ordering": "-id"}).json()
    assert [s["id"] for s in first["results"]] == ids[::-1][:2]
    second = rw_researcher.get(first["next"]).json()
    assert [s["id"] for s in second["results"]] == ids[:1] and second["next"] is None
    assert rw_researcher.get(url, {"page_size": 0}).status_code == 400
    assert rw_researcher.get(url, {"campaign": 1}).status_code == 400


def test_a_missing_snapshot_file_is_a_404(world, rw_researcher):
    from django.core.files.storage import default_storage

    url = f"/api/v1/campaigns/{world.round_a.campaign_id}/snapshots/"
    body = rw_researcher.post(url, {}, content_type="application/json").json()
    default_storage.delete(DatasetSnapshot.objects.get(id=body["id"]).file)
    response = rw_researcher.get(body["download_url"])
    assert response.status_code == 404 and response.json()["detail"]


def test_export_media_urls_answer_to_the_same_token(world):
    client = client_for(world, "ro_token")
    frame = pd.read_parquet(io.BytesIO(_content(client.get(_export_url(world)))))
    media = client.get(frame["jpg_0"][0].removeprefix("http://testserver"))
    assert media.status_code == 200 and media["Content-Type"] == "image/png"
