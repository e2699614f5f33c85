"""Reads: what a user may see, and what a page needs. Every queryset is scoped to the caller."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum

from annotation.models import Assignment, Campaign, Comparison, Membership, Round, Sample
from annotation.services.sql import round_and_campaign_columns, round_with_campaign


def campaigns_for_user(*, user: AbstractBaseUser) -> QuerySet[Campaign]:
    if user.is_superuser:
        return Campaign.objects.all()
    return Campaign.objects.filter(memberships__user=user).distinct()


def campaign_role(*, user: AbstractBaseUser, campaign_id: int) -> str | None:
    """The user's role in the campaign ("annotator", "researcher"), or None if not a member."""
    if user.is_superuser:
        return Membership.Role.RESEARCHER
    return Membership.objects.filter(user=user, campaign_id=campaign_id).values_list("role", flat=True).first()


# Column names come from the models; values are bound.
_ROUND_FOR_MEMBER_SQL = f"""
SELECT {round_and_campaign_columns("r", "k")}
FROM annotation_round r JOIN annotation_campaign k ON k.id = r.campaign_id
WHERE r.id = %(round)s AND (%(all)s::boolean OR EXISTS (
    SELECT 1 FROM annotation_membership m WHERE m.campaign_id = k.id AND m.user_id = %(user)s))
"""  # noqa: S608


def round_for_member(*, user: AbstractBaseUser, round_id: int) -> Round | None:
    """The round, its campaign loaded, if the user is a member of the campaign; else None.

    Raw SQL because every next-pair request asks it: one statement, no ORM compilation.
    """
    with connection.cursor() as cursor:
        cursor.execute(_ROUND_FOR_MEMBER_SQL, {"round": round_id, "all": user.is_superuser, "user": user.pk})
        row = cursor.fetchone()
    return None if row is None else round_with_campaign(row)


def sample_for_member(*, user: AbstractBaseUser, sample_id: int) -> Sample | None:
    qs = Sample.objects.filter(id=sample_id)
    if not user.is_superuser:
        qs = qs.filter(round__campaign__memberships__user=user)
    return qs.first()


def assignment_for_page(*, assignment_id: int, annotator: AbstractBaseUser) -> Assignment | None:
    return (
        Assignment.objects.select_related(
            "comparison__prompt", "comparison__sample_first", "comparison__sample_second", "round__campaign"
        )
        .filter(id=assignment_id, annotator=annotator)
        .first()
    )


@dataclass(frozen=True)
class AnnotatorProgress:
    done: int
    available: int  # comparisons this annotator could still be given

    @property
    def total(self) -> int:
        return self.done + self.available


_PROGRESS_SQL = """
SELECT
    (SELECT count(*) FROM annotation_judgment j JOIN annotation_comparison c ON c.id = j.comparison_id
     WHERE j.annotator_id = %(user)s AND c.round_id = %(round)s),
    (SELECT count(*) FROM annotation_comparison c
     WHERE c.round_id = %(round)s AND c.slots_taken < c.overlap
       AND NOT EXISTS (SELECT 1 FROM annotation_assignment a
                       WHERE a.comparison_id = c.id AND a.annotator_id = %(user)s)),
    (SELECT count(*) FROM annotation_assignment
     WHERE annotator_id = %(user)s AND round_id = %(round)s AND status = 'live')
"""


def annotator_progress(*, user: AbstractBaseUser, round_: Round) -> AnnotatorProgress:
    """Done and still available for this annotator, read in one statement (one snapshot), so a
    claim or a judgment landing meanwhile cannot be counted twice or not at all."""
    with connection.cursor() as cursor:
        cursor.execute(_PROGRESS_SQL, {"user": user.pk, "round": round_.id})
        done, available, live = cursor.fetchone()
    return AnnotatorProgress(done=done, available=available + live)


@dataclass(frozen=True)
class RoundProgress:
    comparisons: int
    judgments: int
    wanted: int
    complete: int  # comparisons that reached their overlap

    @property
    def percent(self) -> float:
        return 100.0 * self.judgments / self.wanted if self.wanted else 0.0


def round_progress(*, round_: Round) -> RoundProgress:
    agg = Comparison.objects.filter(round=round_).aggregate(
        n=Count("id"),
        judged=Sum("judgment_count"),
        wanted=Sum("overlap"),
        complete=Count("id", filter=Q(judgment_count__gte=F("overlap"))),
    )
    return RoundProgress(
        comparisons=agg["n"] or 0,
        judgments=agg["judged"] or 0,
        wanted=agg["wanted"] or 0,
        complete=agg["complete"] or 0,
    )


def rounds_open_for_annotator(*, user: AbstractBaseUser) -> QuerySet[Round]:
    return (
        Round.objects.select_related("campaign")
        .filter(campaign__memberships__user=user, status=Round.Status.OPEN)
        .order_by("campaign__name", "number")
    )
