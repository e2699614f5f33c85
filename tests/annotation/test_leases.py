"""Leases on the real PostgreSQL: concurrency, expiry, reclaim, skip, and the database invariants."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F
from django.utils import timezone

from annotation.errors import Conflict
from annotation.models import Assignment, Comparison, Judgment
from annotation.services.judgments import judgment_record
from annotation.services.leases import assignment_claim_next, assignment_expire_stale, assignment_skip
from tests.factories import UserFactory, add_member, make_round


def _run_threads(targets):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except Exception as exc:  # surfaced below, so a failing thread fails the test
                errors.append(exc)
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_many_annotators_claim_concurrently_and_never_exceed_overlap():
    round_ = make_round(prompts=10, samples_per_prompt=3, overlap=3)  # 30 comparisons
    annotators = [UserFactory() for _ in range(12)]
    for user in annotators:
        add_member(round_.campaign, user)
    seen: dict[int, list[int]] = {u.pk: [] for u in annotators}
    barrier = threading.Barrier(len(annotators))

    def work(user):
        def loop():
            barrier.wait()
            while True:
                lease = assignment_claim_next(annotator=user, round_=round_)
                if lease is None:
                    return
                seen[user.pk].append(lease.comparison_id)
                judgment_record(annotator=user, assignment_id=lease.id, choice="first")

        return loop

    _run_threads([work(u) for u in annotators])

    # Every comparison got exactly its overlap, none more; nobody saw a comparison twice.
    assert Judgment.objects.count() == 30 * 3
    for comparison in Comparison.objects.filter(round=round_):
        assert comparison.judgment_count == comparison.slots_taken == 3
    assert Judgment.objects.values("comparison").annotate(n=Count("id")).filter(n__gt=3).count() == 0
    for ids in seen.values():
        assert len(ids) == len(set(ids))
    assert sum(len(v) for v in seen.values()) == 90
    assert not Comparison.objects.filter(slots_taken__gt=F("overlap")).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_with_live_leases_hold_the_overlap():
    """Leases not yet judged count against the overlap too: with overlap 2, 8 claimers get 2 leases each."""
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=2)  # one comparison
    annotators = [UserFactory() for _ in range(8)]
    for user in annotators:
        add_member(round_.campaign, user)
    got = []
    barrier = threading.Barrier(len(annotators))

    def claim(user):
        def run():
            barrier.wait()
            lease = assignment_claim_next(annotator=user, round_=round_)
            if lease is not None:
                got.append(lease.id)

        return run

    _run_threads([claim(u) for u in annotators])
    assert len(got) == 2
    assert Comparison.objects.get(round=round_).slots_taken == 2


@pytest.mark.django_db(transaction=True)
def test_double_submit_from_two_threads_creates_one_judgment():
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=1)
    user = UserFactory()
    add_member(round_.campaign, user)
    lease = assignment_claim_next(annotator=user, round_=round_)
    import uuid

    key = uuid.uuid4()
    results = []
    barrier = threading.Barrier(4)

    def submit():
        barrier.wait()
        results.append(judgment_record(annotator=user, assignment_id=lease.id, choice="second", idempotency_key=key))

    _run_threads([submit] * 4)
    assert Judgment.objects.count() == 1
    assert {j.id for j, _ in results} == {Judgment.objects.get().id}
    assert sum(created for _, created in results) == 1
    assert Comparison.objects.get().judgment_count == 1


@pytest.mark.django_db
def test_repeat_submit_with_a_new_key_returns_the_first_judgment():
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=1)
    user = UserFactory()
    add_member(round_.campaign, user)
    lease = assignment_claim_next(annotator=user, round_=round_)
    first, created = judgment_record(annotator=user, assignment_id=lease.id, choice="first")
    again, created_again = judgment_record(annotator=user, assignment_id=lease.id, choice="second")
    assert created and not created_again
    assert again.id == first.id and again.choice == "first"


@pytest.mark.django_db
def test_expired_lease_is_reclaimed_by_another_annotator_and_late_submit_is_refused():
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=1)
    alice, bob = UserFactory(), UserFactory()
    add_member(round_.campaign, alice)
    add_member(round_.campaign, bob)
    lease = assignment_claim_next(annotator=alice, round_=round_)
    assert assignment_claim_next(annotator=bob, round_=round_) is None  # the only slot is taken
    Assignment.objects.filter(id=lease.id).update(expires_at=timezone.now() - timedelta(seconds=1))

    bobs = assignment_claim_next(annotator=bob, round_=round_)  # expiry is swept lazily by the claim
    assert bobs is not None and bobs.comparison_id == lease.comparison_id
    assert Assignment.objects.get(id=lease.id).status == Assignment.Status.EXPIRED
    with pytest.raises(Conflict):
        judgment_record(annotator=alice, assignment_id=lease.id, choice="first")
    judgment_record(annotator=bob, assignment_id=bobs.id, choice="first")
    comparison = Comparison.objects.get()
    assert comparison.slots_taken == comparison.judgment_count == 1
    # Alice never gets the same comparison again, even though her lease ran out.
    assert assignment_claim_next(annotator=alice, round_=round_) is None


@pytest.mark.django_db
def test_own_expired_lease_is_renewed_when_nobody_reclaimed_it():
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=1)
    alice = UserFactory()
    add_member(round_.campaign, alice)
    lease = assignment_claim_next(annotator=alice, round_=round_)
    Assignment.objects.filter(id=lease.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    again = assignment_claim_next(annotator=alice, round_=round_)
    assert again.id == lease.id and again.expires_at > timezone.now()
    judgment, created = judgment_record(annotator=alice, assignment_id=lease.id, choice="tie")
    assert created


@pytest.mark.django_db
def test_late_submit_on_expired_lease_succeeds_when_a_slot_is_free():
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=2)
    alice = UserFactory()
    add_member(round_.campaign, alice)
    lease = assignment_claim_next(annotator=alice, round_=round_)
    Assignment.objects.filter(id=lease.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert assignment_expire_stale() == 1
    assert Comparison.objects.get().slots_taken == 0
    _, created = judgment_record(annotator=alice, assignment_id=lease.id, choice="first")
    assert created
    comparison = Comparison.objects.get()
    assert comparison.slots_taken == comparison.judgment_count == 1


@pytest.mark.django_db
def test_skip_gives_the_slot_back_and_is_never_offered_again():
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=1)
    alice, bob = UserFactory(), UserFactory()
    add_member(round_.campaign, alice)
    add_member(round_.campaign, bob)
    lease = assignment_claim_next(annotator=alice, round_=round_)
    assignment_skip(annotator=alice, assignment_id=lease.id)
    assert Comparison.objects.get().slots_taken == 0
    assert assignment_claim_next(annotator=alice, round_=round_) is None
    assert assignment_claim_next(annotator=bob, round_=round_) is not None


@pytest.mark.django_db
def test_prefetch_holds_at_most_two_live_leases():
    round_ = make_round(prompts=3, samples_per_prompt=2, overlap=1)
    alice = UserFactory()
    add_member(round_.campaign, alice)
    first = assignment_claim_next(annotator=alice, round_=round_)
    second = assignment_claim_next(annotator=alice, round_=round_, exclude=(first.id,))
    assert second.id != first.id
    assert assignment_claim_next(annotator=alice, round_=round_, exclude=(first.id, second.id)) is None
    # Reloading the page returns the held leases, oldest first, without claiming more.
    assert assignment_claim_next(annotator=alice, round_=round_).id == first.id


@pytest.mark.django_db
def test_database_refuses_counters_over_the_overlap():
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.filter(round=round_).update(slots_taken=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        Comparison.objects.filter(round=round_).update(slots_taken=1, judgment_count=2)


@pytest.mark.django_db
def test_database_refuses_a_second_judgment_by_the_same_annotator():
    round_ = make_round(prompts=1, samples_per_prompt=2, overlap=2)
    alice = UserFactory()
    add_member(round_.campaign, alice)
    lease = assignment_claim_next(annotator=alice, round_=round_)
    judgment, _ = judgment_record(annotator=alice, assignment_id=lease.id, choice="first")
    with pytest.raises(IntegrityError), transaction.atomic():
        Judgment.objects.create(
            comparison=judgment.comparison,
            assignment=judgment.assignment,
            annotator=alice,
            choice="tie",
            left_sample=judgment.left_sample,
        )
