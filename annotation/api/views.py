"""API viewsets: parse, authorize (scope), call one service, serialize.

Read-only resources are cursor-paginated lists with strict filters plus detail URLs; everything is
scoped by `permissions.scope_for`, so an object outside the caller's campaigns is a 404. Judging
goes through the same services as the browser: `assignment_claim_next` (leases, overlap) and
`judgment_record_from_view` (idempotency, late submits).
"""

import uuid

from django.db.models import (
    BooleanField,
    Case,
    Count,
    ExpressionWrapper,
    F,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Greatest
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.response import Response

from annotation import selectors
from annotation.api import filters as api_filters
from annotation.api import serializers as s
from annotation.api.auth import ApiTokenAuthentication
from annotation.api.errors import BadRequest
from annotation.api.pagination import IdCursorPagination
from annotation.api.permissions import MEMBER, RESEARCHER, ApiAccess, scope_for
from annotation.api.schema import LoupeAutoSchema
from annotation.errors import Conflict
from annotation.models import Assignment, Campaign, Choice, Comparison, Judgment, Prompt, Round, Sample
from annotation.services.judgments import choice_from_view, judgment_record_from_view
from annotation.services.leases import assignment_claim_next, assignment_skip
from training.models import GenerationJob, ModelVersion


class ApiViewMixin:
    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    permission_classes = [ApiAccess]
    filter_backends = [api_filters.StrictFilterBackend]
    pagination_class = IdCursorPagination
    parser_classes = [JSONParser]
    schema = LoupeAutoSchema()

    def get_serializer_context(self) -> dict:
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["scope"] = scope_for(self.request)
        return context


class ScopedReadOnlyViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet):
    """A read-only resource limited to the caller's campaigns at `scope_level`."""

    scope_path = "campaign_id"
    scope_level = MEMBER

    def base_queryset(self) -> QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> QuerySet:
        qs = self.base_queryset()
        if getattr(self, "swagger_fake_view", False):
            return qs.none()
        return scope_for(self.request).restrict(qs, path=self.scope_path, level=self.scope_level)


@extend_schema_view(
    list=extend_schema(summary="Campaigns you are a member of (within the token's campaigns)."),
    retrieve=extend_schema(summary="One campaign."),
)
class CampaignViewSet(ScopedReadOnlyViewSet):
    """Campaigns: what is judged and how (criteria, overlap), with your role in each."""

    serializer_class = s.CampaignSerializer
    filterset_class = api_filters.CampaignFilter
    scope_path = "id"

    def base_queryset(self) -> QuerySet:
        return Campaign.objects.all()


@extend_schema_view(
    list=extend_schema(summary="Rounds of your campaigns."),
    retrieve=extend_schema(summary="One round."),
)
class RoundViewSet(ScopedReadOnlyViewSet):
    """Rounds: one iteration of a campaign, the model versions it compares and its progress."""

    serializer_class = s.RoundSerializer
    filterset_class = api_filters.RoundFilter

    def base_queryset(self) -> QuerySet:
        return Round.objects.prefetch_related("model_versions")

    @extend_schema(
        summary="Claim the next pair to judge in this round (a lease).",
        description="Returns the pair you already hold, if any, else claims an open comparison. Needs a "
        "read-write token or a session (with CSRF). 204 when nothing is left for you in the round.",
        request=None,
        responses={
            200: s.PairSerializer,
            204: OpenApiResponse(description="Nothing left for you to judge in this round."),
        },
    )
    @action(detail=True, methods=["post"], url_path="next")
    def claim_next(self, request: Request, pk: str | None = None) -> Response:
        round_ = self.get_object()
        if round_.status != Round.Status.OPEN:
            raise Conflict(f"Round {round_.number} is {round_.get_status_display().lower()}, not open for judging.")
        assignment = assignment_claim_next(annotator=request.user, round_=round_)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        assignment = selectors.assignment_for_page(assignment_id=assignment.id, annotator=request.user)
        return Response(s.PairSerializer(assignment, context=self.get_serializer_context()).data)


@extend_schema_view(
    list=extend_schema(summary="Prompts of your campaigns' rounds."),
    retrieve=extend_schema(summary="One prompt."),
)
class PromptViewSet(ScopedReadOnlyViewSet):
    """Prompts of the rounds, with their structured metadata."""

    serializer_class = s.PromptSerializer
    filterset_class = api_filters.PromptFilter
    scope_path = "round__campaign_id"

    def base_queryset(self) -> QuerySet:
        return Prompt.objects.select_related("round")


@extend_schema_view(
    list=extend_schema(summary="Samples with their media URLs (researchers)."),
    retrieve=extend_schema(summary="One sample."),
)
class SampleViewSet(ScopedReadOnlyViewSet):
    """Generated or imported outputs, with permission-checked media URLs. Researchers only
    (judging stays blind)."""

    serializer_class = s.SampleSerializer
    filterset_class = api_filters.SampleFilter
    scope_path = "round__campaign_id"
    scope_level = RESEARCHER

    def base_queryset(self) -> QuerySet:
        return Sample.objects.select_related("round")


def _judgments_of(choice: str) -> Coalesce:
    """How many judgments of the outer comparison chose `choice`: a correlated subquery on the
    judgment's comparison index, so a page costs the same however large the campaign."""
    counted = (
        Judgment.objects.filter(comparison=OuterRef("pk"), choice=choice)
        .order_by()
        .values("comparison")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def comparisons_with_aggregates() -> QuerySet:
    """Comparisons with per-choice judgment counts, the reached-overlap flag and the agreement."""
    per_choice = {f"n_{c}": _judgments_of(c) for c in Choice.values}
    qs = Comparison.objects.select_related("round", "sample_first", "sample_second").annotate(
        **per_choice,
        reached_overlap=ExpressionWrapper(Q(judgment_count__gte=F("overlap")), output_field=BooleanField()),
    )
    qs = qs.annotate(n_total=sum((F(name) for name in per_choice), start=Value(0)))
    return qs.annotate(
        agreement=Case(
            When(n_total=0, then=None),
            default=Cast(Greatest(*(F(name) for name in per_choice)), FloatField()) / Cast(F("n_total"), FloatField()),
            output_field=FloatField(),
        )
    )


@extend_schema_view(
    list=extend_schema(summary="Comparisons with judgment aggregates (researchers)."),
    retrieve=extend_schema(summary="One comparison with its aggregates."),
)
class ComparisonViewSet(ScopedReadOnlyViewSet):
    """Pairs of samples with their judgment counts per choice, whether they reached the overlap, and
    the agreement (share of the majority choice). Researchers only."""

    serializer_class = s.ComparisonSerializer
    filterset_class = api_filters.ComparisonFilter
    scope_path = "round__campaign_id"
    scope_level = RESEARCHER

    def base_queryset(self) -> QuerySet:
        return comparisons_with_aggregates()


@extend_schema_view(
    list=extend_schema(summary="Judgments: all of your research campaigns', and your own elsewhere."),
    retrieve=extend_schema(summary="One judgment."),
)
class JudgmentViewSet(ScopedReadOnlyViewSet):
    """Judgments, choices in the comparison's own order. Researchers see their campaigns'
    judgments; annotators only their own."""

    serializer_class = s.JudgmentSerializer
    filterset_class = api_filters.JudgmentFilter

    def base_queryset(self) -> QuerySet:
        return Judgment.objects.select_related("comparison__round")

    def get_queryset(self) -> QuerySet:
        qs = self.base_queryset()
        if getattr(self, "swagger_fake_view", False):
            return qs.none()
        scope = scope_for(self.request)
        if scope.researcher_ids is None:
            return qs
        return qs.filter(
            Q(comparison__round__campaign_id__in=scope.researcher_ids)
            | Q(annotator=self.request.user, comparison__round__campaign_id__in=scope.member_ids)
        )


@extend_schema_view(
    list=extend_schema(summary="Model versions compared in your research campaigns."),
    retrieve=extend_schema(summary="One model version."),
)
class ModelVersionViewSet(ScopedReadOnlyViewSet):
    """Model versions that appear in your research campaigns' rounds or samples."""

    serializer_class = s.ModelVersionSerializer
    filterset_class = api_filters.ModelVersionFilter

    def base_queryset(self) -> QuerySet:
        return ModelVersion.objects.select_related("generator")

    def get_queryset(self) -> QuerySet:
        qs = self.base_queryset()
        if getattr(self, "swagger_fake_view", False):
            return qs.none()
        ids = scope_for(self.request).researcher_ids
        if ids is None:
            return qs
        in_rounds = Round.model_versions.through.objects.filter(round__campaign_id__in=ids)
        return qs.filter(
            Q(id__in=Sample.objects.filter(round__campaign_id__in=ids).values("model_version_id"))
            | Q(id__in=in_rounds.values("modelversion_id"))
        )


@extend_schema_view(
    list=extend_schema(summary="Jobs of your research campaigns (generation jobs for now)."),
    retrieve=extend_schema(summary="One job."),
)
class TrainingJobViewSet(ScopedReadOnlyViewSet):
    """Jobs of your research campaigns, read-only. Generation jobs for now; training jobs will join them."""

    serializer_class = s.TrainingJobSerializer
    filterset_class = api_filters.GenerationJobFilter
    scope_path = "round__campaign_id"
    scope_level = RESEARCHER

    def base_queryset(self) -> QuerySet:
        return GenerationJob.objects.select_related("round")


IDEMPOTENCY_HEADER = OpenApiParameter(
    name="Idempotency-Key",
    type=OpenApiTypes.UUID,
    location=OpenApiParameter.HEADER,
    required=False,
    description="A UUID per intended judgment: a retry with the same key returns the first judgment "
    "(`created: false`) and records nothing.",
)


def _idempotency_key(request: Request) -> uuid.UUID | None:
    raw = request.headers.get("Idempotency-Key")
    if raw is None or raw == "":
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise BadRequest("The Idempotency-Key header must be a UUID.", {"Idempotency-Key": ["Must be a UUID."]})


def _to_view(choice: str, *, swapped: bool) -> str:
    """An API choice as seen on screen (left = first), which is what `judgment_record_from_view` takes."""
    if choice == "left":
        return Choice.FIRST
    if choice == "right":
        return Choice.SECOND
    return choice_from_view(choice, swapped=swapped)  # the swap is its own inverse


class AssignmentViewSet(ApiViewMixin, viewsets.GenericViewSet):
    """Your leases: judge or skip a pair claimed with `POST /rounds/{id}/next/`."""

    serializer_class = s.JudgmentSubmitSerializer
    pagination_class = None

    def get_queryset(self) -> QuerySet:
        qs = Assignment.objects.select_related("round")
        if getattr(self, "swagger_fake_view", False):
            return qs.none()
        qs = qs.filter(annotator=self.request.user)
        return scope_for(self.request).restrict(qs, path="round__campaign_id", level=MEMBER)

    @extend_schema(
        summary="Judge a leased pair.",
        description="`choice` and `criteria` take `first`/`second` in the comparison's own order, or "
        "`left`/`right` in the lease's drawn display order, or `tie`/`both_bad`. 201 when recorded, "
        "200 when this repeats an earlier submit of the same lease or Idempotency-Key.",
        parameters=[IDEMPOTENCY_HEADER],
        request=s.JudgmentSubmitSerializer,
        responses={201: s.JudgmentResultSerializer, 200: s.JudgmentResultSerializer},
    )
    @action(detail=True, methods=["post"], url_path="judgment")
    def judgment(self, request: Request, pk: str | None = None) -> Response:
        assignment = self.get_object()
        payload = s.JudgmentSubmitSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        key = _idempotency_key(request)
        recorded = judgment_record_from_view(
            annotator=request.user,
            assignment_id=assignment.id,
            view_choice=_to_view(data["choice"], swapped=assignment.swapped),
            view_criteria={k: _to_view(v, swapped=assignment.swapped) for k, v in data["criteria"].items()},
            time_on_task_ms=data.get("time_on_task_ms"),
            idempotency_key=key,
        )
        judgment = Judgment.objects.select_related("comparison__round").get(id=recorded.judgment_id)
        body = s.JudgmentSerializer(judgment, context=self.get_serializer_context()).data
        body["created"] = recorded.created
        return Response(body, status=status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK)

    @extend_schema(
        summary="Give a leased pair back without judging it.",
        request=None,
        responses={200: s.SkipResultSerializer},
    )
    @action(detail=True, methods=["post"], url_path="skip")
    def skip(self, request: Request, pk: str | None = None) -> Response:
        assignment = self.get_object()
        assignment_skip(annotator=request.user, assignment_id=assignment.id)
        return Response({"assignment": assignment.id, "status": Assignment.Status.SKIPPED})
