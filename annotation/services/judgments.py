"""Recording and undoing judgments.

A judgment is unique per (comparison, annotator) and per client idempotency key, both as database
constraints. A repeated submit (same key, or the same lease judged twice) returns the first
judgment and creates nothing.
"""

import uuid
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.errors import Conflict, Invalid, NotFound
from annotation.models import Assignment, Choice, Comparison, Judgment, Round

MAX_TIME_ON_TASK_MS = 24 * 3600 * 1000


def _validate(*, choice: str, criteria: dict[str, str], allowed_criteria: list[str]) -> dict[str, str]:
    if choice not in Choice.values:
        raise Invalid(f"Unknown choice {choice!r}; expected one of {', '.join(Choice.values)}.")
    if not isinstance(criteria, dict):
        raise Invalid("Criteria must be a mapping of criterion to choice.")
    clean: dict[str, str] = {}
    for key, value in criteria.items():
        if key not in allowed_criteria:
            raise Invalid(f"Criterion {key!r} is not part of this campaign.")
        if value in ("", None):
            continue
        if value not in Choice.values:
            raise Invalid(f"Unknown choice {value!r} for criterion {key!r}.")
        clean[key] = value
    return clean


def judgment_record(
    *,
    annotator: AbstractBaseUser,
    assignment_id: int,
    choice: str,
    criteria: dict[str, str] | None = None,
    time_on_task_ms: int | None = None,
    idempotency_key: uuid.UUID | None = None,
) -> tuple[Judgment, bool]:
    """Record the annotator's judgment of a leased pair. Returns (judgment, created).

    `choice` and `criteria` are in the comparison's own order; interfaces map what was on screen
    with `choice_from_view`. A late submit on an expired lease is accepted only if a slot is free.
    """
    if idempotency_key is not None:
        existing = Judgment.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            if existing.annotator_id != annotator.pk:
                raise Conflict("This submission key belongs to another judgment.")
            return existing, False
    if time_on_task_ms is not None and not (0 <= time_on_task_ms <= MAX_TIME_ON_TASK_MS):
        raise Invalid("Time on task must be between 0 and 24 hours, in milliseconds.")
    try:
        with transaction.atomic():
            assignment = (
                Assignment.objects.select_for_update(of=("self",))
                .select_related("comparison", "round__campaign")
                .filter(id=assignment_id, annotator=annotator)
                .first()
            )
            if assignment is None:
                raise NotFound("No such pair for you.")
            if assignment.status == Assignment.Status.DONE:
                return Judgment.objects.get(assignment=assignment), False
            if assignment.status == Assignment.Status.SKIPPED:
                raise Conflict("This pair was skipped.")
            if assignment.round.status == Round.Status.CLOSED:
                raise Conflict("This round is closed.")
            campaign = assignment.round.campaign
            clean = _validate(choice=choice, criteria=criteria or {}, allowed_criteria=campaign.criteria)
            comparison = assignment.comparison
            if assignment.status == Assignment.Status.EXPIRED:
                # The lease ran out and its slot was given back; take a slot again if one is free.
                retaken = Comparison.objects.filter(id=comparison.id, slots_taken__lt=F("overlap")).update(
                    slots_taken=F("slots_taken") + 1
                )
                if not retaken:
                    raise Conflict("Your time on this pair ran out and it went to someone else.")
            left = comparison.sample_second_id if assignment.swapped else comparison.sample_first_id
            judgment = Judgment.objects.create(
                comparison=comparison,
                assignment=assignment,
                annotator=annotator,
                choice=choice,
                criteria=clean,
                left_sample_id=left,
                time_on_task_ms=time_on_task_ms,
                idempotency_key=idempotency_key or uuid.uuid4(),
            )
            assignment.status = Assignment.Status.DONE
            assignment.save(update_fields=["status"])
            Comparison.objects.filter(id=comparison.id).update(judgment_count=F("judgment_count") + 1)
            return judgment, True
    except IntegrityError:
        # Two submits raced past the first check; the loser returns the winner's judgment.
        existing = Judgment.objects.filter(idempotency_key=idempotency_key).first() if idempotency_key else None
        existing = existing or Judgment.objects.filter(assignment_id=assignment_id, annotator=annotator).first()
        if existing is None:
            raise
        return existing, False


def choice_from_view(view_choice: str, *, swapped: bool) -> str:
    """Map a choice made on screen (left = "first") to the comparison's own order."""
    if swapped and view_choice == Choice.FIRST:
        return Choice.SECOND
    if swapped and view_choice == Choice.SECOND:
        return Choice.FIRST
    return view_choice


def judgment_undo_last(*, annotator: AbstractBaseUser, round_: Round) -> Assignment:
    """Undo the annotator's most recent judgment in the round, within the campaign's undo window.

    The judgment is deleted and its lease is live again (its slot was never given up), so the same
    pair comes back on screen.
    """
    window = timedelta(seconds=round_.campaign.undo_seconds)
    now = timezone.now()
    with transaction.atomic():
        judgment = (
            Judgment.objects.select_for_update()
            .filter(annotator=annotator, comparison__round=round_)
            .order_by("-created_at")
            .first()
        )
        if judgment is None or judgment.created_at < now - window:
            raise Conflict(
                f"Nothing to undo: only judgments from the last {round_.campaign.undo_seconds} s can be undone."
            )
        assignment = Assignment.objects.select_for_update().get(id=judgment.assignment_id)
        comparison_id = judgment.comparison_id
        judgment.delete()
        assignment.status = Assignment.Status.LIVE
        assignment.expires_at = now + timedelta(seconds=round_.campaign.lease_seconds)
        assignment.save(update_fields=["status", "expires_at"])
        Comparison.objects.filter(id=comparison_id).update(judgment_count=F("judgment_count") - 1)
        return assignment
