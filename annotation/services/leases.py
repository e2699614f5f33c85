"""Leases: handing comparisons to annotators.

A lease is an Assignment row. A comparison's `slots_taken` counts its live and done leases; it is
changed only while the comparison row is locked, and a check constraint keeps it within the
overlap. New leases are claimed with `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent annotators
never wait on each other and never share a slot. Expired leases give their slot back lazily (on
the next claim in the round) and periodically (the `annotation.leases_expire` task).

Lock order, everywhere: assignment rows before comparison rows, except the claim, which locks one
comparison and only inserts a new assignment. No cycle, so no deadlock.
"""

import random
from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from annotation.errors import Conflict, NotFound
from annotation.models import Assignment, Comparison, Prompt, Round, Sample
from annotation.services.sql import (
    ROUND_AND_CAMPAIGN_COLUMNS,
    fast_row,
    loaded,
    round_and_campaign_columns,
    round_with_campaign,
)

# How many pairs one annotator may hold at once: the one on screen and the prefetched next one.
MAX_LIVE_PER_ANNOTATOR = 2

_CLAIM_SQL = """
SELECT c.id FROM annotation_comparison c
WHERE c.round_id = %(round_id)s
  AND c.slots_taken < c.overlap
  AND c.is_gold = %(gold)s::boolean
  AND NOT EXISTS (
      SELECT 1 FROM annotation_assignment a
      WHERE a.comparison_id = c.id AND a.annotator_id = %(annotator_id)s)
  {exclude}
ORDER BY c.priority DESC, c.id
LIMIT 1
FOR UPDATE OF c {skip}
"""


# The common case in one statement (one round trip, atomic on its own): check the round is open
# and the annotator may work in it, renew the lease the annotator already holds, or else lock one
# open comparison (skipping rows other claimers hold), take a slot and insert the lease; return it
# with everything the page shows. Zero rows back means "not that simple" (not a member, round not
# open, nothing free without waiting, a sweeper raced us, the prefetch cap is reached): the caller
# then takes the general path, which knows every rule and says what went wrong.
_FAST_CLAIM_SQL = f"""
WITH r AS (
    SELECT k.lease_seconds, (k.gold_ratio > 0 AND random() < k.gold_ratio) AS gold
    FROM annotation_round r JOIN annotation_campaign k ON k.id = r.campaign_id
    WHERE r.id = %(round_id)s AND r.status = 'open'
      AND (%(any_user)s::boolean OR EXISTS (
          SELECT 1 FROM annotation_membership m WHERE m.campaign_id = k.id AND m.user_id = %(annotator_id)s))
), held AS (
    SELECT a.id FROM annotation_assignment a
    WHERE a.annotator_id = %(annotator_id)s AND a.round_id = %(round_id)s AND a.status = 'live'
      AND a.id <> ALL(%(exclude)s::bigint[])
      AND EXISTS (SELECT 1 FROM r)
    ORDER BY a.created_at
    LIMIT 1
), renewed AS (
    UPDATE annotation_assignment
    SET expires_at = %(now)s::timestamptz + make_interval(secs => (SELECT lease_seconds FROM r))
    WHERE id = (SELECT id FROM held) AND status = 'live'
    RETURNING id, comparison_id, swapped, created_at, expires_at
), live AS (
    SELECT count(*) AS n FROM annotation_assignment
    WHERE annotator_id = %(annotator_id)s AND round_id = %(round_id)s AND status = 'live'
), pick AS (
    SELECT c.id FROM annotation_comparison c
    WHERE c.round_id = %(round_id)s
      AND c.slots_taken < c.overlap
      AND c.is_gold = COALESCE(%(gold)s::boolean, (SELECT gold FROM r))
      AND EXISTS (SELECT 1 FROM r)
      AND NOT EXISTS (SELECT 1 FROM held)
      AND (SELECT n FROM live) < %(max_live)s::integer
      AND NOT EXISTS (
          SELECT 1 FROM annotation_assignment x
          WHERE x.comparison_id = c.id AND x.annotator_id = %(annotator_id)s)
    ORDER BY c.priority DESC, c.id
    LIMIT 1
    FOR UPDATE OF c SKIP LOCKED
), taken AS (
    UPDATE annotation_comparison SET slots_taken = slots_taken + 1
    WHERE id = (SELECT id FROM pick)
    RETURNING id
), claimed AS (
    INSERT INTO annotation_assignment (comparison_id, round_id, annotator_id, status, swapped, created_at, expires_at)
    SELECT id, %(round_id)s::bigint, %(annotator_id)s::integer, 'live', %(swapped)s::boolean,
           %(now)s::timestamptz, %(now)s::timestamptz + make_interval(secs => (SELECT lease_seconds FROM r))
    FROM taken
    RETURNING id, comparison_id, swapped, created_at, expires_at
)
SELECT x.id, x.comparison_id, x.swapped, x.created_at, x.expires_at,
       c.prompt_id, p.text,
       s1.id, s1.kind, s1.files, s1.mime_types, s1.poster,
       s2.id, s2.kind, s2.files, s2.mime_types, s2.poster,
       {round_and_campaign_columns("rr", "kk")}
FROM (SELECT * FROM renewed UNION ALL SELECT * FROM claimed) x
JOIN annotation_comparison c ON c.id = x.comparison_id
JOIN annotation_prompt p ON p.id = c.prompt_id
JOIN annotation_sample s1 ON s1.id = c.sample_first_id
JOIN annotation_sample s2 ON s2.id = c.sample_second_id
JOIN annotation_round rr ON rr.id = c.round_id
JOIN annotation_campaign kk ON kk.id = rr.campaign_id
"""  # noqa: S608 (column names from the models; values are bound)
_SAMPLE_FIELDS = ("id", "kind", "files", "mime_types", "poster")


def _claim_fast(
    *,
    round_id: int,
    annotator_id: int,
    exclude: tuple[int, ...],
    swapped: bool,
    gold: bool | None,
    any_user: bool,
    round_: Round | None = None,
) -> Assignment | None:
    """The one-statement claim; `any_user` skips the membership check (callers that checked it)."""
    params = {
        "round_id": round_id,
        "annotator_id": annotator_id,
        "any_user": any_user,
        "gold": gold,
        "exclude": list(exclude),
        "max_live": MAX_LIVE_PER_ANNOTATOR,
        "swapped": swapped,
        "now": timezone.now(),
    }
    row = fast_row(_FAST_CLAIM_SQL, params)  # None also where a concurrent claim by the same annotator won
    if row is None:
        return None
    if round_ is None:
        round_ = round_with_campaign(row[17 : 17 + ROUND_AND_CAMPAIGN_COLUMNS])
    # The page's data came back with the lease: build the related objects, so showing the pair
    # costs no further query.
    prompt = loaded(Prompt, id=row[5], round_id=round_.id, text=row[6])
    first, second = (
        loaded(Sample, prompt_id=prompt.id, round_id=round_.id, **dict(zip(_SAMPLE_FIELDS, cols, strict=True)))
        for cols in (row[7:12], row[12:17])
    )
    comparison = loaded(
        Comparison,
        id=row[1],
        round_id=round_.id,
        prompt_id=prompt.id,
        sample_first_id=first.id,
        sample_second_id=second.id,
    )
    comparison.prompt, comparison.sample_first, comparison.sample_second = prompt, first, second
    assignment = loaded(
        Assignment,
        id=row[0],
        comparison_id=comparison.id,
        round_id=round_.id,
        annotator_id=annotator_id,
        status=Assignment.Status.LIVE,
        swapped=row[2],
        created_at=row[3],
        expires_at=row[4],
    )
    assignment.comparison, assignment.round = comparison, round_
    return assignment


def assignment_claim_for_member(
    *, annotator: AbstractBaseUser, round_id: int, exclude: tuple[int, ...] = ()
) -> Assignment | None:
    """The annotator's next lease in one statement, if the round is open and they are a member.

    Returns the lease with its round, campaign, comparison, prompt and samples loaded, or None when
    the one-statement path does not apply; the caller then checks membership and calls
    `assignment_claim_next`, which handles every case (and says None only when nothing is left).
    """
    return _claim_fast(
        round_id=round_id,
        annotator_id=annotator.pk,
        exclude=exclude,
        swapped=random.random() < 0.5,
        gold=None,
        any_user=annotator.is_superuser,
    )


def _claim_one(*, round_id: int, annotator_id: int, gold: bool, exclude: tuple[int, ...], wait: bool) -> int | None:
    """Lock one open comparison for this annotator.

    First pass skips rows other claimers hold (no waiting). A row is only locked for the few
    milliseconds of another claim, so when the first pass finds nothing, a second pass waits for
    the locks; PostgreSQL re-checks the conditions on the row once it gets it (READ COMMITTED),
    so a comparison that filled up meanwhile is passed over.
    """
    sql = _CLAIM_SQL.format(
        exclude="AND c.id <> ALL(%(exclude)s)" if exclude else "", skip="" if wait else "SKIP LOCKED"
    )
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SET LOCAL lock_timeout = '5s'")
        cursor.execute(
            sql, {"round_id": round_id, "annotator_id": annotator_id, "gold": gold, "exclude": list(exclude)}
        )
        row = cursor.fetchone()
    return row[0] if row else None


def assignment_claim_next(
    *, annotator: AbstractBaseUser, round_: Round, exclude: tuple[int, ...] = (), rng: random.Random | None = None
) -> Assignment | None:
    """Return the annotator's next lease in the round, or None when nothing is left for them.

    A live lease the annotator already holds (other than the assignments in `exclude`, which the
    page is already showing) is returned first, with its expiry pushed forward. Otherwise one open
    comparison is claimed. Gold comparisons are drawn with the campaign's gold ratio.
    """
    rng = rng or random.Random()
    campaign = round_.campaign
    want_gold = campaign.gold_ratio > 0 and rng.random() < campaign.gold_ratio
    golds = (want_gold, not want_gold) if campaign.gold_ratio > 0 else (False,)
    swapped = rng.random() < 0.5
    if round_.status == Round.Status.OPEN:
        for gold in golds:
            fast = _claim_fast(
                round_id=round_.id,
                annotator_id=annotator.pk,
                exclude=exclude,
                swapped=swapped,
                gold=gold,
                any_user=True,  # the caller decided this annotator may work in the round
                round_=round_,
            )
            if fast is not None:
                return fast

    lease = timedelta(seconds=campaign.lease_seconds)
    now = timezone.now()
    with transaction.atomic():
        held = list(
            Assignment.objects.filter(annotator=annotator, round=round_, status=Assignment.Status.LIVE)
            .exclude(id__in=exclude)
            .order_by("created_at")
            .values_list("id", flat=True)[:1]
        )
        if held:
            # Conditional update: if a sweeper expired it meanwhile, we get 0 rows and claim anew.
            if Assignment.objects.filter(id=held[0], status=Assignment.Status.LIVE).update(expires_at=now + lease):
                return Assignment.objects.get(id=held[0])
        if exclude:
            live = Assignment.objects.filter(annotator=annotator, round=round_, status=Assignment.Status.LIVE).count()
            if live >= MAX_LIVE_PER_ANNOTATOR:
                return None

    if round_.status != Round.Status.OPEN:
        return None
    excluded_comparisons = (
        tuple(Assignment.objects.filter(id__in=exclude).values_list("comparison_id", flat=True)) if exclude else ()
    )
    for attempt in range(2):
        with transaction.atomic():
            comparison_id = None
            for wait, gold in ((wait, gold) for wait in (False, True) for gold in golds):
                comparison_id = _claim_one(
                    round_id=round_.id, annotator_id=annotator.pk, gold=gold, exclude=excluded_comparisons, wait=wait
                )
                if comparison_id is not None:
                    break
            if comparison_id is not None:
                Comparison.objects.filter(id=comparison_id).update(slots_taken=F("slots_taken") + 1)
                return Assignment.objects.create(
                    comparison_id=comparison_id,
                    round=round_,
                    annotator=annotator,
                    swapped=swapped,
                    expires_at=now + lease,
                )
        # Nothing open: free expired leases of this round once, then try again.
        if attempt == 0 and not assignment_expire_stale(round_id=round_.id):
            return None
    return None


def assignment_expire_stale(*, round_id: int | None = None, limit: int = 500) -> int:
    """Mark live leases past their expiry as expired and give their slots back. Returns the count."""
    now = timezone.now()
    with transaction.atomic():
        qs = Assignment.objects.select_for_update(skip_locked=True).filter(
            status=Assignment.Status.LIVE, expires_at__lt=now
        )
        if round_id is not None:
            qs = qs.filter(round_id=round_id)
        rows = list(qs.order_by("expires_at").values_list("id", "comparison_id")[:limit])
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows]).update(status=Assignment.Status.EXPIRED)
        per_comparison: dict[int, int] = {}
        for _, comparison_id in rows:
            per_comparison[comparison_id] = per_comparison.get(comparison_id, 0) + 1
        for comparison_id in sorted(per_comparison):  # sorted: a fixed lock order between sweepers
            Comparison.objects.filter(id=comparison_id).update(
                slots_taken=F("slots_taken") - per_comparison[comparison_id]
            )
    return len(rows)


def assignment_skip(*, annotator: AbstractBaseUser, assignment_id: int) -> None:
    """Give a pair back without judging it; this annotator will not be offered it again."""
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().filter(id=assignment_id, annotator=annotator).first()
        if assignment is None:
            raise NotFound("No such pair for you.")
        if assignment.status == Assignment.Status.SKIPPED:
            return
        if assignment.status == Assignment.Status.DONE:
            raise Conflict("This pair is already judged; use undo to change it.")
        if assignment.status == Assignment.Status.LIVE:
            Comparison.objects.filter(id=assignment.comparison_id).update(slots_taken=F("slots_taken") - 1)
        assignment.status = Assignment.Status.SKIPPED
        assignment.save(update_fields=["status"])
