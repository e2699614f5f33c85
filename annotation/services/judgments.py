"""Recording and undoing judgments.

A judgment is unique per (comparison, annotator) and per client idempotency key, both as database
constraints. A repeated submit (same key, or the same lease judged twice) returns the first
judgment and creates nothing.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.errors import Conflict, Invalid, NotFound
from annotation.models import Assignment, Choice, Comparison, Judgment, Round
from annotation.services.sql import fast_row

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


@dataclass(frozen=True)
class Recorded:
    judgment_id: int
    created: bool
    choice: str  # in the comparison's own order
    round_id: int


# The common case in one statement: the lease is live and the round open, the criteria belong to
# the campaign. Lock the lease, insert the judgment (choice mapped through the lease's drawn
# left/right order), mark the lease done and count the judgment. Lock order as everywhere:
# assignment, then comparison. Zero rows back (lease not live, duplicate, bad criterion...) sends
# the caller to `judgment_record`, which knows every rule and says what went wrong.
_FAST_JUDGE_SQL = """
WITH a AS (
    SELECT a.id, a.comparison_id, a.swapped, a.round_id, c.sample_first_id, c.sample_second_id
    FROM annotation_assignment a
    JOIN annotation_comparison c ON c.id = a.comparison_id
    JOIN annotation_round r ON r.id = a.round_id
    JOIN annotation_campaign k ON k.id = r.campaign_id
    WHERE a.id = %(assignment_id)s AND a.annotator_id = %(annotator_id)s AND a.status = 'live'
      AND r.status <> 'closed' AND k.criteria @> %(keys)s::varchar[]
    FOR UPDATE OF a
), j AS (
    INSERT INTO annotation_judgment
        (comparison_id, assignment_id, annotator_id, choice, criteria, left_sample_id, time_on_task_ms,
         idempotency_key, created_at)
    SELECT comparison_id, id, %(annotator_id)s::integer,
           CASE WHEN swapped THEN %(choice_swapped)s::varchar ELSE %(choice)s::varchar END,
           CASE WHEN swapped THEN %(criteria_swapped)s::jsonb ELSE %(criteria)s::jsonb END,
           CASE WHEN swapped THEN sample_second_id ELSE sample_first_id END,
           %(time_ms)s::integer, %(key)s::uuid, %(now)s::timestamptz
    FROM a
    ON CONFLICT DO NOTHING
    RETURNING id, assignment_id, comparison_id, choice
), done AS (
    UPDATE annotation_assignment SET status = 'done' WHERE id = (SELECT assignment_id FROM j)
), counted AS (
    UPDATE annotation_comparison SET judgment_count = judgment_count + 1 WHERE id = (SELECT comparison_id FROM j)
)
SELECT j.id, j.choice, a.round_id FROM j, a
"""


def _view_criteria(view_criteria: dict[str, str], *, swapped: bool) -> dict[str, str]:
    return {k: choice_from_view(v, swapped=swapped) for k, v in view_criteria.items() if v}


def judgment_record_from_view(
    *,
    annotator: AbstractBaseUser,
    assignment_id: int,
    view_choice: str,
    view_criteria: dict[str, str] | None = None,
    time_on_task_ms: int | None = None,
    idempotency_key: uuid.UUID | None = None,
) -> Recorded:
    """Record a judgment given as seen on screen (first = left), mapping it through the lease's order.

    Same rules and answers as `judgment_record`; the usual case costs one round trip.
    """
    view_criteria = view_criteria or {}
    for value in (view_choice, *view_criteria.values()):
        if value and value not in Choice.values:
            raise Invalid(f"Unknown choice {value!r}; expected one of {', '.join(Choice.values)}.")
    if time_on_task_ms is not None and not (0 <= time_on_task_ms <= MAX_TIME_ON_TASK_MS):
        raise Invalid("Time on task must be between 0 and 24 hours, in milliseconds.")
    key = idempotency_key or uuid.uuid4()
    params = {
        "assignment_id": assignment_id,
        "annotator_id": annotator.pk,
        "keys": sorted(view_criteria),
        "choice": view_choice,
        "choice_swapped": choice_from_view(view_choice, swapped=True),
        "criteria": json.dumps(_view_criteria(view_criteria, swapped=False)),
        "criteria_swapped": json.dumps(_view_criteria(view_criteria, swapped=True)),
        "time_ms": time_on_task_ms,
        "key": key,
        "now": timezone.now(),
    }
    row = fast_row(_FAST_JUDGE_SQL, params)
    if row is not None:
        return Recorded(judgment_id=row[0], created=True, choice=row[1], round_id=row[2])

    assignment = Assignment.objects.filter(id=assignment_id, annotator=annotator).only("id", "swapped").first()
    if assignment is None:
        raise NotFound("No such pair for you.")
    judgment, created = judgment_record(
        annotator=annotator,
        assignment_id=assignment_id,
        choice=choice_from_view(view_choice, swapped=assignment.swapped),
        criteria={k: choice_from_view(v, swapped=assignment.swapped) if v else "" for k, v in view_criteria.items()},
        time_on_task_ms=time_on_task_ms,
        idempotency_key=key,
    )
    round_id = Assignment.objects.filter(id=assignment_id).values_list("round_id", flat=True).get()
    return Recorded(judgment_id=judgment.id, created=created, choice=judgment.choice, round_id=round_id)
