"""Dataset export: Parquet and JSONL files, labels, raw rows, embedded media, snapshots and views.

The judgments are made through the services (claim a lease, record a judgment), with leases drawn
swapped and not, so the export sees what the browser would have written.
"""

import base64
import datetime as dt
import hashlib
import io
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.urls import reverse

from annotation.export import (
    CONTENT_TYPES,
    export_rows,
    export_schema,
    export_stream,
    snapshot_create,
    snapshot_open,
)
from annotation.models import Comparison, DatasetSnapshot, Judgment
from annotation.services.judgments import judgment_record
from annotation.services.leases import assignment_claim_next
from tests.factories import CampaignFactory, UserFactory, add_member, make_round

BASE = "http://testserver"
CRITERIA = ["prompt_alignment", "visual_quality"]

# Per judged comparison (in id order): the choices, in the comparison's own order.
PLAN = [
    ["first", "first", "tie"],  # labels 5/6, 1/6; first wins
    ["second", "tie", "both_bad"],  # both_bad left out of the labels: 1/4, 3/4
    ["both_bad"],  # no label
    ["first", "second"],  # a tie overall: 1/2, 1/2
]
EXPECTED = [
    # label_0, label_1, best (0, 1 or None), is_tie, agreement, counts (first, second, tie, both_bad)
    (5 / 6, 1 / 6, 0, False, 2 / 3, (2, 0, 1, 0)),
    (1 / 4, 3 / 4, 1, False, 1 / 3, (0, 1, 1, 1)),
    (None, None, None, False, 1.0, (0, 0, 0, 1)),
    (1 / 2, 1 / 2, None, True, 1 / 2, (1, 1, 0, 0)),
]


class _Rng:
    """Decides a lease's left/right order: `random()` < 0.5 means swapped."""

    def __init__(self, swapped: bool) -> None:
        self.value = 0.1 if swapped else 0.9

    def random(self) -> float:
        return self.value


def _store(content: bytes, name: str) -> str:
    return default_storage.save(name, ContentFile(content))


@pytest.fixture
def world():
    campaign = CampaignFactory(modality="image", criteria=CRITERIA, overlap=3)
    round_ = make_round(campaign=campaign, prompts=len(PLAN) + 1, samples_per_prompt=2)
    comparisons = list(Comparison.objects.filter(round=round_).order_by("id"))
    # Make the first comparison's first sample a two-view set and the second's second a video
    # with a poster frame, so lists and posters are exercised.
    views = comparisons[0].sample_first
    views.kind = "views"
    views.files = [views.files[0], _store(b"second view bytes", "test/view-b.png")]
    views.mime_types = ["image/png", "image/png"]
    views.save()
    video = comparisons[1].sample_second
    video.kind = "video"
    video.files = [_store(b"\x00\x00\x00\x18ftypmp42 fake video", "test/clip.mp4")]
    video.mime_types = ["video/mp4"]
    video.poster = _store(b"poster frame bytes", "test/poster.png")
    video.save()
    video.prompt.metadata = {"seed_set": 7, "note": 'quote " and \\ and\nnewline'}
    video.prompt.save()
    annotators = [UserFactory() for _ in range(3)]
    for user in annotators:
        add_member(campaign, user)
    researcher = UserFactory()
    add_member(campaign, researcher, role="researcher")
    judgments = []
    for n, (comparison, choices) in enumerate(zip(comparisons, PLAN, strict=False)):
        # Each comparison takes exactly its planned judgments, so claims go to them in id order.
        Comparison.objects.filter(id=comparison.id).update(overlap=len(choices))
        for i, choice in enumerate(choices):
            lease = assignment_claim_next(annotator=annotators[i], round_=round_, rng=_Rng(swapped=(n + i) % 2 == 0))
            assert lease.comparison_id == comparison.id
            criteria = {"prompt_alignment": choice, "visual_quality": "tie"} if i == 0 else {}
            judgment, created = judgment_record(
                annotator=annotators[i],
                assignment_id=lease.id,
                choice=choice,
                criteria=criteria,
                time_on_task_ms=1000 + 10 * n + i,
            )
            assert created
            judgments.append(judgment)
    # Another campaign's judgments never leak in.
    other = make_round(prompts=1, samples_per_prompt=2)
    stranger = UserFactory()
    add_member(other.campaign, stranger)
    lease = assignment_claim_next(annotator=stranger, round_=other)
    judgment_record(annotator=stranger, assignment_id=lease.id, choice="first")
    return {
        "campaign": campaign,
        "round": round_,
        "comparisons": comparisons,
        "judgments": judgments,
        "researcher": researcher,
        "annotators": annotators,
        "views": views,
        "video": video,
    }


def _bytes(**kwargs) -> bytes:
    return b"".join(export_stream(base_url=BASE, **kwargs))


def _parquet(**kwargs) -> pa.Table:
    return pq.read_table(io.BytesIO(_bytes(fmt="parquet", **kwargs)))


def _jsonl_rows(**kwargs) -> list[dict]:
    return [json.loads(line) for line in _bytes(fmt="jsonl", **kwargs).decode().splitlines()]


def _media(sample_id: int, index: int = 0) -> str:
    return BASE + reverse("annotation:media", args=[sample_id, index])


def _poster(sample_id: int) -> str:
    return BASE + reverse("annotation:poster", args=[sample_id])


@pytest.mark.django_db
def test_aggregated_parquet_has_the_schema_and_exact_labels(world):
    table = _parquet(campaign=world["campaign"])
    assert table.schema.remove_metadata() == export_schema(raw=False)
    rows = table.to_pylist()
    judged = world["comparisons"][: len(PLAN)]
    assert [r["comparison_id"] for r in rows] == [c.id for c in judged]  # unjudged one left out
    for row, comparison, choices, expected in zip(rows, judged, PLAN, EXPECTED, strict=True):
        label_0, label_1, best, is_tie, agreement, counts = expected
        assert (row["label_0"], row["label_1"]) == (label_0, label_1)
        if label_0 is not None:
            assert row["label_0"] + row["label_1"] == pytest.approx(1.0, abs=1e-12)
        assert row["has_label"] is (label_0 is not None)
        assert row["is_tie"] is is_tie
        assert row["agreement"] == agreement
        assert (row["count_first"], row["count_second"], row["count_tie"], row["count_both_bad"]) == counts
        assert row["num_judgments"] == len(choices)
        samples = (comparison.sample_first, comparison.sample_second)
        assert row["best_image_uid"] == ("" if best is None else str(samples[best].id))
        assert (row["image_0_uid"], row["image_1_uid"]) == (str(samples[0].id), str(samples[1].id))
        assert row["ranking_id"] == comparison.id
        assert row["caption"] == comparison.prompt.text
        assert row["model_0"] == f"{samples[0].model_version.generator.name}/{samples[0].model_version.name}"
        assert row["round"] == 1 and row["modality"] == "image" and row["is_gold"] is False
        annotators = (
            Judgment.objects.filter(comparison=comparison).order_by("id").values_list("annotator_id", flat=True)
        )
        assert row["user_id"] == list(annotators)
        assert row["seed_0"] is None and row["are_different"] is True
    first = json.loads(rows[0]["criteria"])
    assert first == {
        "prompt_alignment": {"first": 1, "second": 0, "tie": 0, "both_bad": 0},
        "visual_quality": {"first": 0, "second": 0, "tie": 1, "both_bad": 0},
    }
    assert json.loads(rows[1]["prompt_metadata"]) == world["video"].prompt.metadata


@pytest.mark.django_db
def test_media_urls_lists_and_posters(world):
    rows = _parquet(campaign=world["campaign"]).to_pylist()
    views, video = world["views"], world["video"]
    assert rows[0]["jpg_0"] == _media(views.id, 0)
    assert rows[0]["media_0"] == [_media(views.id, 0), _media(views.id, 1)]
    assert rows[0]["poster_0"] is None
    # A video's jpg is its poster frame; the video itself is in media_1.
    assert rows[1]["jpg_1"] == _poster(video.id)
    assert rows[1]["poster_1"] == _poster(video.id)
    assert rows[1]["media_1"] == [_media(video.id, 0)]


@pytest.mark.django_db
def test_parquet_loads_with_pandas_and_datasets(world, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    path = tmp_path / "export.parquet"
    path.write_bytes(_bytes(fmt="parquet", campaign=world["campaign"]))

    frame = pd.read_parquet(path)
    assert list(frame.columns) == export_schema(raw=False).names
    assert len(frame) == len(PLAN)
    assert frame["label_0"].dtype == "float64" and frame["count_tie"].dtype == "int32"
    assert frame["has_label"].dtype == "bool" and frame["comparison_id"].dtype == "int64"
    assert frame["label_0"].tolist()[:2] == [5 / 6, 1 / 4] and pd.isna(frame["label_0"][2])

    import datasets  # noqa: PLC0415 - heavy; only this test needs it

    dataset = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert dataset.column_names == export_schema(raw=False).names
    assert dataset.num_rows == len(PLAN)
    assert dataset.features["label_0"].dtype == "float64"
    assert dataset.features["jpg_0"].dtype == "string"
    assert dataset.features["user_id"].feature.dtype == "int64"
    assert dataset[0]["label_0"] == 5 / 6 and dataset[3]["is_tie"] is True
    assert dataset[0]["media_0"] == frame["media_0"][0].tolist()


def _normalised(rows: list[dict]) -> list[dict]:
    out = []
    for row in rows:
        row = dict(row)
        for key, value in row.items():
            if isinstance(value, dt.datetime):
                row[key] = value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
            elif isinstance(value, bytes):
                row[key] = base64.b64encode(value).decode()
        out.append(row)
    return out


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [False, True])
@pytest.mark.parametrize("slice_rows", [10_000, 2])
def test_jsonl_round_trip_equals_parquet(world, raw, slice_rows, monkeypatch):
    monkeypatch.setattr("annotation.export.stream.JSONL_SLICE_ROWS", slice_rows)
    parquet_rows = _normalised(_parquet(campaign=world["campaign"], raw=raw).to_pylist())
    jsonl_rows = _jsonl_rows(campaign=world["campaign"], raw=raw)
    assert jsonl_rows == parquet_rows
    assert [list(r) for r in jsonl_rows] == [export_schema(raw=raw).names] * len(jsonl_rows)
    # export_rows gives the same rows as Python values.
    assert _normalised(list(export_rows(campaign=world["campaign"], raw=raw, base_url=BASE))) == parquet_rows


@pytest.mark.django_db
def test_raw_mode_has_one_row_per_judgment(world):
    table = _parquet(campaign=world["campaign"], raw=True)
    assert table.schema.remove_metadata() == export_schema(raw=True)
    rows = table.to_pylist()
    judgments = sorted(world["judgments"], key=lambda j: (j.comparison_id, j.id))
    assert [r["judgment_id"] for r in rows] == [j.id for j in judgments]
    labels = {"first": (1.0, 0.0), "second": (0.0, 1.0), "tie": (0.5, 0.5), "both_bad": (None, None)}
    swapped_seen = set()
    for row, judgment in zip(rows, judgments, strict=True):
        judgment.refresh_from_db()
        comparison = judgment.comparison
        assert row["ranking_id"] == judgment.id and row["user_id"] == judgment.annotator_id
        assert row["comparison_id"] == comparison.id and row["choice"] == judgment.choice
        assert (row["label_0"], row["label_1"]) == labels[judgment.choice]
        assert row["has_label"] is (judgment.choice != "both_bad")
        assert row["is_tie"] is (judgment.choice == "tie")
        best = {"first": str(comparison.sample_first_id), "second": str(comparison.sample_second_id)}
        assert row["best_image_uid"] == best.get(judgment.choice, "")
        assert json.loads(row["criteria"]) == judgment.criteria
        assert row["shown_swapped"] is judgment.assignment.swapped
        assert row["shown_swapped"] is (judgment.left_sample_id == comparison.sample_second_id)
        assert row["time_on_task_ms"] == judgment.time_on_task_ms
        assert row["created_at"] == judgment.created_at
        swapped_seen.add(row["shown_swapped"])
    assert swapped_seen == {True, False}


@pytest.mark.django_db
@pytest.mark.parametrize("raw", [False, True])
def test_embedded_media_are_the_stored_bytes(world, raw):
    table = _parquet(campaign=world["campaign"], raw=raw, embed_media=True)
    assert table.schema.remove_metadata() == export_schema(raw=raw, embed_media=True)
    assert table.schema.field("jpg_0").type == pa.binary()
    by_id = {c.id: c for c in world["comparisons"]}
    for row in table.to_pylist():
        comparison = by_id[row["comparison_id"]]
        for k, sample in enumerate((comparison.sample_first, comparison.sample_second)):
            sample.refresh_from_db()
            name = sample.poster if sample.kind == "video" else sample.files[0]
            with default_storage.open(name, "rb") as handle:
                assert row[f"jpg_{k}"] == handle.read()
    video_rows = [r for r in table.to_pylist() if r["image_1_uid"] == str(world["video"].id)]
    assert video_rows and all(r["jpg_1"] == b"poster frame bytes" for r in video_rows)
    jsonl = _jsonl_rows(campaign=world["campaign"], raw=raw, embed_media=True)
    assert [base64.b64decode(r["jpg_1"]) for r in jsonl] == [r["jpg_1"] for r in table.to_pylist()]


@pytest.mark.django_db
def test_exports_are_deterministic_and_snapshots_keep_their_bytes(world):
    campaign = world["campaign"]
    for fmt in ("parquet", "jsonl"):
        assert _bytes(campaign=campaign, fmt=fmt) == _bytes(campaign=campaign, fmt=fmt)
    snapshot = snapshot_create(campaign=campaign, fmt="parquet", raw=True, created_by=world["researcher"])
    with snapshot_open(snapshot=snapshot) as handle:
        stored = handle.read()
    assert hashlib.sha256(stored).hexdigest() == snapshot.sha256
    assert len(stored) == snapshot.size_bytes
    assert snapshot.rows == len(world["judgments"])
    assert snapshot.params["raw"] is True and snapshot.params["schema_version"] >= 1
    assert pq.read_table(io.BytesIO(stored)).num_rows == snapshot.rows
    again = snapshot_create(campaign=campaign, fmt="parquet", raw=True, created_by=None)
    assert again.file != snapshot.file and again.sha256 == snapshot.sha256
    snapshot.rows = 0
    with pytest.raises(ValueError, match="immutable"):
        snapshot.save()


@pytest.mark.django_db
def test_a_campaign_without_judgments_exports_an_empty_file_with_the_schema():
    campaign = CampaignFactory(criteria=CRITERIA)
    make_round(campaign=campaign, prompts=1, samples_per_prompt=2)
    table = _parquet(campaign=campaign)
    assert table.num_rows == 0 and table.schema.remove_metadata() == export_schema(raw=False)
    assert _bytes(campaign=campaign, fmt="jsonl") == b""


@pytest.mark.django_db
def test_unknown_format_is_refused(world):
    from annotation.errors import Invalid

    with pytest.raises(Invalid, match="Unknown export format"):
        export_stream(campaign=world["campaign"], fmt="csv", base_url=BASE)


@pytest.mark.django_db(transaction=True)
def test_an_abandoned_stream_releases_the_connection():
    campaign = CampaignFactory(criteria=CRITERIA)
    round_ = make_round(campaign=campaign, prompts=1, samples_per_prompt=2)
    user = UserFactory()
    add_member(campaign, user)
    lease = assignment_claim_next(annotator=user, round_=round_)
    judgment_record(annotator=user, assignment_id=lease.id, choice="first")
    stream = export_stream(campaign=campaign, fmt="jsonl", base_url=BASE)
    assert next(stream)
    stream.close()  # as when a client disconnects mid-download
    with connection.cursor() as cursor:  # the next request gets a working connection
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


# ---------------------------------------------------------------- views


def _content(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.django_db
def test_researcher_downloads_the_export_over_http(client, world):
    campaign = world["campaign"]
    client.force_login(world["researcher"])
    url = reverse("annotation:campaign_export", args=[campaign.id, "parquet"])
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPES["parquet"] == "application/vnd.apache.parquet"
    assert response["Content-Disposition"].startswith("attachment;")
    table = pq.read_table(io.BytesIO(_content(response)))
    assert table.num_rows == len(PLAN)
    assert table.column("jpg_0")[0].as_py().startswith("http://testserver/")

    response = client.get(reverse("annotation:campaign_export", args=[campaign.id, "jsonl"]), {"raw": "true"})
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    assert len(_content(response).splitlines()) == len(world["judgments"])

    assert client.get(url, {"raw": "maybe"}).status_code == 400
    assert client.get(url, {"media": "inline"}).status_code == 400
    assert client.get(reverse("annotation:campaign_export", args=[campaign.id, "csv"])).status_code == 404


@pytest.mark.django_db
def test_export_is_for_the_campaigns_researchers_only(client, world):
    url = reverse("annotation:campaign_export", args=[world["campaign"].id, "parquet"])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(world["annotators"][0])
    assert client.get(url).status_code == 403
    client.force_login(UserFactory())
    assert client.get(url).status_code == 404
    outsider = UserFactory()
    add_member(CampaignFactory(), outsider, role="researcher")
    client.force_login(outsider)
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_snapshot_views_create_list_and_download(client, world):
    campaign = world["campaign"]
    client.force_login(world["researcher"])
    url = reverse("annotation:campaign_snapshots", args=[campaign.id])
    response = client.post(url, {"fmt": "jsonl", "raw": "false"})
    assert response.status_code == 201
    data = response.json()
    assert data["rows"] == len(PLAN) and data["format"] == "jsonl"
    listing = client.get(url).json()["results"]
    assert [s["id"] for s in listing] == [data["id"]]
    download = client.get(reverse("annotation:snapshot_download", args=[data["id"]]))
    assert download.status_code == 200
    body = _content(download)
    assert hashlib.sha256(body).hexdigest() == data["sha256"] == download["X-Content-SHA256"]
    assert download["Content-Disposition"].startswith("attachment;")
    assert client.post(url, {"fmt": "xml"}).status_code == 400

    client.force_login(world["annotators"][0])
    assert client.get(reverse("annotation:snapshot_download", args=[data["id"]])).status_code == 403
    client.force_login(UserFactory())
    assert client.get(reverse("annotation:snapshot_download", args=[data["id"]])).status_code == 404
    assert DatasetSnapshot.objects.count() == 1


@pytest.mark.django_db
def test_snapshots_in_the_admin_are_read_only_and_scoped(client, world):
    from django.contrib.auth.models import Permission

    ours = snapshot_create(campaign=world["campaign"], fmt="jsonl", created_by=world["researcher"])
    other_campaign = CampaignFactory()
    theirs = snapshot_create(campaign=other_campaign, fmt="parquet", created_by=None)
    researcher = world["researcher"]
    researcher.is_staff = True
    researcher.save(update_fields=["is_staff"])
    researcher.user_permissions.add(Permission.objects.get(codename="view_datasetsnapshot"))
    client.force_login(researcher)

    changelist = client.get(reverse("admin:annotation_datasetsnapshot_changelist"))
    assert changelist.status_code == 200
    page = changelist.content.decode()
    download = reverse("annotation:snapshot_download", args=[ours.id])
    assert f'href="{download}"' in page
    assert reverse("annotation:snapshot_download", args=[theirs.id]) not in page
    detail = client.get(reverse("admin:annotation_datasetsnapshot_change", args=[ours.id]))
    assert detail.status_code == 200 and ours.sha256 in detail.content.decode()
    assert 'name="_save"' not in detail.content.decode()  # read-only
    assert client.get(reverse("admin:annotation_datasetsnapshot_change", args=[theirs.id])).status_code == 302
    assert client.get(reverse("admin:annotation_datasetsnapshot_add")).status_code == 403
    assert client.post(reverse("admin:annotation_datasetsnapshot_delete", args=[ours.id])).status_code == 403
    assert client.get(download).status_code == 200  # the link works for the researcher's session

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get(reverse("admin:annotation_datasetsnapshot_changelist")).content.decode()
    assert reverse("annotation:snapshot_download", args=[ours.id]) in page
    assert reverse("annotation:snapshot_download", args=[theirs.id]) in page
    assert DatasetSnapshot.objects.filter(id__in=[ours.id, theirs.id]).count() == 2


def test_docs_list_every_column_with_its_type():
    """docs/export.md's column table matches the schemas, name, type and shape."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "export.md").read_text()
    documented = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`") and cells[1].startswith("`"):
            documented.add((cells[0].strip("`"), cells[1].strip("`"), cells[2]))
    for raw, shape in ((False, "comparison"), (True, "judgment")):
        for field in export_schema(raw=raw):
            assert {(field.name, str(field.type), shape), (field.name, str(field.type), "both")} & documented, field
    names = {name for name, _, _ in documented}
    assert names == set(export_schema(raw=False).names) | set(export_schema(raw=True).names)
