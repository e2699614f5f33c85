"""Lists: cursor pagination, filters, aggregates, and bad input answered with a clear 400."""

import base64
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import Comparison, Judgment
from annotation.services.judgments import judgment_record
from annotation.services.leases import assignment_claim_next
from tests.api.helpers import client_for
from tests.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher(world):
    return client_for(world, "researcher")


def _ids(response):
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_cursor_pagination_walks_every_row_once(world, researcher):
    expected = list(Comparison.objects.filter(round=world.round_a).order_by("id").values_list("id", flat=True))
    seen, url, params = [], "/api/v1/comparisons/", {"page_size": 2}
    while url:
        body = researcher.get(url, params).json()
        seen += [row["id"] for row in body["results"]]
        url, params = body["next"], None
    assert seen == expected
    newest_first = _ids(researcher.get("/api/v1/comparisons/", {"ordering": "-id", "page_size": 500}))
    assert newest_first == expected[::-1]


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"colour": "red"}, "Unknown query parameter(s): colour"),
        ({"campaign": "1", "limit": "5", "offset": "2"}, "limit, offset"),
        ({"cursor": "%%%not-base64"}, "Malformed cursor"),
        ({"cursor": base64.b64encode(b"p=abc").decode()}, "Malformed cursor"),
        ({"cursor": base64.b64encode(b"o=-4").decode()}, "Malformed cursor"),
        ({"page_size": "0"}, "page_size must be a whole number from 1 to 500"),
        ({"page_size": "501"}, "page_size must be a whole number from 1 to 500"),
        ({"page_size": "ten"}, "page_size"),
        ({"ordering": "priority"}, "ordering must be one of id, -id"),
        ({"campaign": "abc"}, "campaign"),
        ({"campaign": str(2**64)}, "campaign"),
        ({"round": "-3"}, "round"),
        ({"reached_overlap": "maybe"}, "reached_overlap"),
        ({"agreement_min": "2"}, "agreement_min"),
        ({"agreement_max": "NaN"}, "agreement_max"),
        ({"criterion": "smell"}, "criterion"),
        ({"created_after": "yesterday"}, "created_after"),
    ],
)
def test_bad_query_parameters_are_a_400_with_a_message(researcher, params, needle):
    response = researcher.get("/api/v1/comparisons/", params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert needle in body["detail"], body
    assert body["errors"]


def test_unknown_parameter_error_lists_what_is_accepted(researcher):
    body = researcher.get("/api/v1/judgments/", {"annotatr": "1"}).json()
    assert "annotatr" in body["errors"]
    assert "annotator" in body["detail"] and "page_size" in body["detail"]


def test_detail_urls_take_no_query_parameters(world, researcher):
    response = researcher.get(f"/api/v1/rounds/{world.round_a.id}/", {"campaign": world.round_a.campaign_id})
    assert response.status_code == 400 and "campaign" in response.json()["detail"]


def test_page_size_limit_is_exact(researcher):
    assert researcher.get("/api/v1/prompts/", {"page_size": 500}).status_code == 200
    assert researcher.get("/api/v1/prompts/", {"page_size": 1}).status_code == 200


def test_non_numeric_and_huge_ids_in_urls_are_json_404(researcher):
    for url in ("/api/v1/rounds/abc/", "/api/v1/rounds/-1/", f"/api/v1/rounds/{2**70}/"):
        response = researcher.get(url)
        assert response.status_code == 404, url
        assert response.json()["detail"]


def test_comparison_aggregates(world, researcher):
    comparison = world.objects["judgment_ann"].comparison  # ann said first, alice said second
    row = researcher.get(f"/api/v1/comparisons/{comparison.id}/").json()
    assert row["choice_counts"] == {"first": 1, "second": 1, "tie": 0, "both_bad": 0}
    assert row["judgments"] == 2 and row["reached_overlap"] is False
    assert row["agreement"] == pytest.approx(0.5)
    third = UserFactory()
    add_member(world.round_a.campaign, third)
    lease = assignment_claim_next(annotator=third, round_=world.round_a)
    assert lease.comparison_id == comparison.id
    judgment_record(annotator=third, assignment_id=lease.id, choice="first")
    row = researcher.get(f"/api/v1/comparisons/{comparison.id}/").json()
    assert row["reached_overlap"] is True and row["agreement"] == pytest.approx(2 / 3)
    unjudged = Comparison.objects.filter(round=world.round_a, judgment_count=0).first()
    assert researcher.get(f"/api/v1/comparisons/{unjudged.id}/").json()["agreement"] is None


def test_comparison_filters(world, researcher):
    judged = world.objects["judgment_ann"].comparison
    url = "/api/v1/comparisons/"
    assert _ids(researcher.get(url, {"agreement_max": "0.5"})) == [judged.id]
    assert _ids(researcher.get(url, {"agreement_min": "0.6"})) == []
    assert _ids(researcher.get(url, {"reached_overlap": "true"})) == []
    assert judged.id in _ids(researcher.get(url, {"reached_overlap": "false"}))
    assert _ids(researcher.get(url, {"annotator": world.users["ann"].id})) == [judged.id]
    mv = judged.sample_first.model_version_id
    with_mv = _ids(researcher.get(url, {"model_version": mv, "page_size": 500}))
    assert judged.id in with_mv
    assert all(
        mv in (c.sample_first.model_version_id, c.sample_second.model_version_id)
        for c in Comparison.objects.filter(id__in=with_mv)
    )
    assert _ids(researcher.get(url, {"round": world.round_b.id})) == []  # not rita's campaign
    Judgment.objects.filter(id=world.objects["judgment_ann"].id).update(criteria={"visual_quality": "first"})
    assert _ids(researcher.get(url, {"criterion": "visual_quality"})) == [judged.id]
    assert _ids(researcher.get(url, {"criterion": "motion"})) == []


def test_judgment_and_other_filters(world):
    admin = client_for(world, "admin")
    ann, alice = world.objects["judgment_ann"], world.objects["judgment_alice"]
    assert set(_ids(admin.get("/api/v1/judgments/", {"campaign": world.round_a.campaign_id}))) == {ann.id, alice.id}
    assert _ids(admin.get("/api/v1/judgments/", {"annotator": world.users["ann"].id})) == [ann.id]
    assert _ids(admin.get("/api/v1/judgments/", {"choice": "tie"})) == [world.objects["judgment_b"].id]
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    past = (timezone.now() - timedelta(hours=1)).isoformat()
    assert _ids(admin.get("/api/v1/judgments/", {"created_after": future})) == []
    assert len(_ids(admin.get("/api/v1/judgments/", {"created_after": past, "created_before": future}))) == 3
    assert _ids(admin.get("/api/v1/rounds/", {"campaign": world.round_b.campaign_id})) == [world.round_b.id]
    mv = world.round_b.samples.first().model_version_id
    assert _ids(admin.get("/api/v1/rounds/", {"model_version": mv})) == [world.round_b.id]
    assert mv in _ids(admin.get("/api/v1/model-versions/", {"campaign": world.round_b.campaign_id}))
    assert mv not in _ids(admin.get("/api/v1/model-versions/", {"campaign": world.round_a.campaign_id}))
    prompts = _ids(admin.get("/api/v1/prompts/", {"round": world.round_a.id}))
    assert sorted(prompts) == sorted(world.round_a.prompts.values_list("id", flat=True))
    jobs = _ids(admin.get("/api/v1/training-jobs/", {"campaign": world.round_a.campaign_id, "status": "succeeded"}))
    assert jobs == [world.round_a.generation_job.id]
    samples = admin.get("/api/v1/samples/", {"round": world.round_a.id, "page_size": 1}).json()["results"]
    assert samples[0]["media_urls"] == [f"http://testserver/media/{samples[0]['id']}/0/"]


@pytest.mark.parametrize(
    "resource",
    ["campaigns", "rounds", "prompts", "samples", "comparisons", "judgments", "model-versions", "training-jobs"],
)
def test_a_page_costs_a_fixed_number_of_queries(world, resource, django_assert_max_num_queries):
    client = client_for(world, "ro_token")  # token lookup, last-use write, scope and the page itself
    client.get(f"/api/v1/{resource}/")
    with django_assert_max_num_queries(6):
        response = client.get(f"/api/v1/{resource}/", {"page_size": 500})
    assert response.status_code == 200


def test_is_gold_filter(world, researcher):
    gold = world.objects["comparison_a"]
    Comparison.objects.filter(id=gold.id).update(is_gold=True, gold_answer="first")
    assert _ids(researcher.get("/api/v1/comparisons/", {"is_gold": "true"})) == [gold.id]
    assert gold.id not in _ids(researcher.get("/api/v1/comparisons/", {"is_gold": "false"}))
