"""`judgment_record_from_view`: the one-statement path and its fallback keep every judgment rule."""

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.errors import Conflict, Invalid, NotFound
from annotation.models import Assignment, Comparison, Judgment, Round
from annotation.services.judgments import judgment_record_from_view
from annotation.services.leases import assignment_claim_next
from tests.factories import CampaignFactory, UserFactory, add_member, make_round


def _lease(*, swapped: bool, criteria=(), overlap=2):
    campaign = CampaignFactory(criteria=list(criteria))
    round_ = make_round(campaign=campaign, prompts=1, samples_per_prompt=2, overlap=overlap)
    user = UserFactory()
    add_member(campaign, user)
    lease = assignment_claim_next(annotator=user, round_=round_)
    Assignment.objects.filter(id=lease.id).update(swapped=swapped)
    return user, Assignment.objects.select_related("comparison").get(id=lease.id)


@pytest.mark.django_db
@pytest.mark.parametrize("swapped", [False, True])
def test_left_right_is_mapped_through_the_leases_order_in_one_statement(swapped):
    user, lease = _lease(swapped=swapped, criteria=["prompt_alignment", "visual_quality"])
    with CaptureQueriesContext(connection) as queries:
        recorded = judgment_record_from_view(
            annotator=user,
            assignment_id=lease.id,
            view_choice="first",  # "left better"
            view_criteria={"prompt_alignment": "second", "visual_quality": ""},
            time_on_task_ms=1234,
            idempotency_key=uuid.uuid4(),
        )
    # Savepoints come from the test's own transaction; outside one there are none.
    assert len([q for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]) == 1
    judgment = Judgment.objects.get()
    comparison = lease.comparison
    assert recorded.created and recorded.judgment_id == judgment.id and recorded.round_id == lease.round_id
    assert judgment.choice == ("second" if swapped else "first")
    assert judgment.criteria == {"prompt_alignment": "first" if swapped else "second"}
    assert judgment.left_sample_id == (comparison.sample_second_id if swapped else comparison.sample_first_id)
    assert judgment.time_on_task_ms == 1234
    assert Assignment.objects.get(id=lease.id).status == Assignment.Status.DONE
    assert Comparison.objects.get(id=comparison.id).judgment_count == 1


@pytest.mark.django_db
def test_repeat_with_the_same_key_returns_the_first_judgment():
    user, lease = _lease(swapped=True)
    key = uuid.uuid4()
    first = judgment_record_from_view(annotator=user, assignment_id=lease.id, view_choice="tie", idempotency_key=key)
    again = judgment_record_from_view(annotator=user, assignment_id=lease.id, view_choice="first", idempotency_key=key)
    assert first.created and not again.created
    assert again.judgment_id == first.judgment_id and again.choice == "tie"
    assert Judgment.objects.count() == 1 and Comparison.objects.get().judgment_count == 1


@pytest.mark.django_db
def test_unknown_criterion_is_refused_with_its_name_and_nothing_written():
    user, lease = _lease(swapped=False, criteria=["motion"])
    with pytest.raises(Invalid, match="'colour'"):
        judgment_record_from_view(
            annotator=user, assignment_id=lease.id, view_choice="first", view_criteria={"colour": "first"}
        )
    assert Judgment.objects.count() == 0
    assert Assignment.objects.get(id=lease.id).status == Assignment.Status.LIVE


@pytest.mark.django_db
def test_someone_elses_lease_and_closed_round_are_refused():
    user, lease = _lease(swapped=False)
    with pytest.raises(NotFound):
        judgment_record_from_view(annotator=UserFactory(), assignment_id=lease.id, view_choice="first")
    Round.objects.filter(id=lease.round_id).update(status=Round.Status.CLOSED)
    with pytest.raises(Conflict, match="closed"):
        judgment_record_from_view(annotator=user, assignment_id=lease.id, view_choice="first")
    with pytest.raises(Invalid):
        judgment_record_from_view(annotator=user, assignment_id=lease.id, view_choice="sideways")
    assert Judgment.objects.count() == 0


@pytest.mark.django_db
def test_late_submit_on_an_expired_lease_takes_the_general_path():
    user, lease = _lease(swapped=False, overlap=1)
    Assignment.objects.filter(id=lease.id).update(
        status=Assignment.Status.EXPIRED, expires_at=timezone.now() - timedelta(seconds=1)
    )
    Comparison.objects.filter(id=lease.comparison_id).update(slots_taken=0)
    recorded = judgment_record_from_view(annotator=user, assignment_id=lease.id, view_choice="second")
    assert recorded.created and recorded.choice == "second"
    comparison = Comparison.objects.get(id=lease.comparison_id)
    assert (comparison.slots_taken, comparison.judgment_count) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_submits_create_one_judgment():
    user, lease = _lease(swapped=True)
    key = uuid.uuid4()
    results, errors = [], []
    barrier = threading.Barrier(6)

    def submit():
        try:
            barrier.wait()
            results.append(
                judgment_record_from_view(
                    annotator=user, assignment_id=lease.id, view_choice="first", idempotency_key=key
                )
            )
        except Exception as exc:  # reported below so that a failing thread fails the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert Judgment.objects.count() == 1
    assert sum(r.created for r in results) == 1
    assert {r.judgment_id for r in results} == {Judgment.objects.get().id}
    assert Comparison.objects.get().judgment_count == 1


def _statements(queries):
    return [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]


@pytest.mark.django_db
def test_claim_and_renewal_take_one_statement_each():
    round_ = make_round(prompts=2, samples_per_prompt=2, overlap=2)
    user = UserFactory()
    add_member(round_.campaign, user)
    with CaptureQueriesContext(connection) as queries:
        lease = assignment_claim_next(annotator=user, round_=round_)
    assert len(_statements(queries)) == 1
    assert Comparison.objects.get(id=lease.comparison_id).slots_taken == 1
    with CaptureQueriesContext(connection) as queries:
        again = assignment_claim_next(annotator=user, round_=round_)
    assert len(_statements(queries)) == 1
    assert again.id == lease.id and again.expires_at >= lease.expires_at
    with CaptureQueriesContext(connection) as queries:
        upcoming = assignment_claim_next(annotator=user, round_=round_, exclude=(lease.id,))
    assert len(_statements(queries)) == 1
    assert upcoming.comparison_id != lease.comparison_id
    # Two live leases held: a third is not handed out while both are on the page.
    assert assignment_claim_next(annotator=user, round_=round_, exclude=(lease.id, upcoming.id)) is None
    assert Assignment.objects.filter(annotator=user).count() == 2


@pytest.mark.django_db
def test_claimed_lease_carries_the_same_objects_the_database_holds():
    round_ = make_round(prompts=3, samples_per_prompt=3, overlap=2)
    user = UserFactory()
    add_member(round_.campaign, user)
    lease = assignment_claim_next(annotator=user, round_=round_)
    stored = Assignment.objects.select_related(
        "comparison__prompt", "comparison__sample_first", "comparison__sample_second"
    ).get(id=lease.id)
    assert (lease.comparison_id, lease.round_id, lease.swapped) == (
        stored.comparison_id,
        stored.round_id,
        stored.swapped,
    )
    assert lease.comparison.prompt.text == stored.comparison.prompt.text
    for side in ("sample_first", "sample_second"):
        got, want = getattr(lease.comparison, side), getattr(stored.comparison, side)
        assert (got.id, got.prompt_id, got.round_id, got.kind, got.files, got.mime_types, got.poster) == (
            want.id,
            want.prompt_id,
            want.round_id,
            want.kind,
            want.files,
            want.mime_types,
            want.poster,
        )
    # Fields the claim did not read load on demand instead of showing defaults.
    assert lease.comparison.sample_first.model_version_id == stored.comparison.sample_first.model_version_id


@pytest.mark.django_db
def test_next_pair_costs_two_statements_and_judge_two(client):
    from django.urls import reverse

    round_ = make_round(prompts=3, samples_per_prompt=3, overlap=2)
    user = UserFactory()
    add_member(round_.campaign, user)
    client.force_login(user)
    url = reverse("annotation:pair_next", args=[round_.id])
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers={"Accept": "application/json"})
    assert response.status_code == 200
    assert len(_statements(queries)) == 2  # the session's user, then membership + claim + page data
    pair = response.json()
    assert pair["round_id"] == round_.id and pair["prompt"].startswith("prompt")
    judge = reverse("annotation:judge", args=[pair["assignment_id"]])
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            judge, {"choice": "left", "key": str(uuid.uuid4())}, headers={"Accept": "application/json"}
        )
    assert response.status_code == 201
    assert len(_statements(queries)) == 2  # the session's user, then the judgment
    # Someone who is not a member gets nothing from the one-statement path, and a 404.
    client.force_login(UserFactory())
    assert client.get(url, headers={"Accept": "application/json"}).status_code == 404
