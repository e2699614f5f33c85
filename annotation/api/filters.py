"""Filters for the API's lists, and a backend that refuses query parameters it does not know.

Every filter validates its value: a malformed id, date, number or boolean is a 400 naming the
parameter, never an ignored filter. Ids are positive 64-bit integers; booleans are `true`/`false`.
"""

from datetime import UTC

from django import forms
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from annotation.api.errors import BadRequest
from annotation.models import Campaign, Choice, Comparison, Criterion, Judgment, Prompt, Round, Sample
from training.models import GenerationJob, Modality, ModelVersion

MAX_ID = 2**63 - 1


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID})
class IdFilter(filters.NumberFilter):
    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


def _to_bool(value: str) -> bool:
    return value == "true"


@extend_schema_field({"type": "string", "enum": ["true", "false"]})
class StrictBooleanFilter(filters.TypedChoiceFilter):
    """`true` or `false`; anything else is a 400 (django-filter's BooleanFilter ignores bad values)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs["choices"] = [("true", "true"), ("false", "false")]
        kwargs["coerce"] = _to_bool
        kwargs["empty_value"] = None
        super().__init__(*args, **kwargs)


@extend_schema_field({"type": "number", "minimum": 0, "maximum": 1})
class ShareFilter(filters.NumberFilter):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", 1)
        super().__init__(*args, **kwargs)


class UtcDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, converted to UTC here: an offset PostgreSQL rejects (beyond ±15:59) or a
    moment outside the representable years is a 400, not a database error."""

    def to_python(self, value):
        result = super().to_python(value)
        if result is None or result.tzinfo is None:
            return result
        try:
            return result.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("Enter a date-time between the years 1 and 9999 (UTC).", code="invalid")


class UtcDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


def _created_range() -> tuple[UtcDateTimeFilter, UtcDateTimeFilter]:
    return (
        UtcDateTimeFilter(field_name="created_at", lookup_expr="gte", help_text="Created at or after (ISO 8601)."),
        UtcDateTimeFilter(field_name="created_at", lookup_expr="lt", help_text="Created before (ISO 8601)."),
    )


class CampaignFilter(filters.FilterSet):
    created_after, created_before = _created_range()
    modality = filters.ChoiceFilter(choices=Modality.choices)
    criterion = filters.ChoiceFilter(
        choices=Criterion.choices, method="filter_criterion", help_text="Campaigns that judge this criterion."
    )

    class Meta:
        model = Campaign
        fields: list[str] = []

    def filter_criterion(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs.filter(criteria__contains=[value])


class RoundFilter(filters.FilterSet):
    campaign = IdFilter(field_name="campaign_id")
    status = filters.ChoiceFilter(choices=Round.Status.choices)
    model_version = IdFilter(field_name="model_versions", help_text="Rounds comparing this model version.")
    created_after, created_before = _created_range()

    class Meta:
        model = Round
        fields: list[str] = []


class PromptFilter(filters.FilterSet):
    campaign = IdFilter(field_name="round__campaign_id")
    round = IdFilter(field_name="round_id")

    class Meta:
        model = Prompt
        fields: list[str] = []


class SampleFilter(filters.FilterSet):
    campaign = IdFilter(field_name="round__campaign_id")
    round = IdFilter(field_name="round_id")
    prompt = IdFilter(field_name="prompt_id")
    model_version = IdFilter(field_name="model_version_id")
    kind = filters.ChoiceFilter(choices=Sample.Kind.choices)
    created_after, created_before = _created_range()

    class Meta:
        model = Sample
        fields: list[str] = []


def _either_sample_of(prefix: str, model_version: int) -> Q:
    return Q(**{f"{prefix}sample_first__model_version_id": model_version}) | Q(
        **{f"{prefix}sample_second__model_version_id": model_version}
    )


class ComparisonFilter(filters.FilterSet):
    campaign = IdFilter(field_name="round__campaign_id")
    round = IdFilter(field_name="round_id")
    prompt = IdFilter(field_name="prompt_id")
    model_version = IdFilter(method="filter_model_version", help_text="Comparisons with a sample of this version.")
    annotator = IdFilter(method="filter_annotator", help_text="Comparisons this annotator (user id) judged.")
    criterion = filters.ChoiceFilter(
        choices=Criterion.choices, method="filter_criterion", help_text="Comparisons with a judgment of this criterion."
    )
    reached_overlap = StrictBooleanFilter(method="filter_reached_overlap", help_text="Judged as often as wanted.")
    is_gold = StrictBooleanFilter(field_name="is_gold")
    agreement_min = ShareFilter(field_name="agreement", lookup_expr="gte", help_text="Share of the majority choice.")
    agreement_max = ShareFilter(field_name="agreement", lookup_expr="lte", help_text="Share of the majority choice.")
    created_after, created_before = _created_range()

    class Meta:
        model = Comparison
        fields: list[str] = []

    def filter_model_version(self, qs: QuerySet, name: str, value: int) -> QuerySet:
        return qs.filter(_either_sample_of("", value))

    def filter_annotator(self, qs: QuerySet, name: str, value: int) -> QuerySet:
        return qs.filter(Exists(Judgment.objects.filter(comparison=OuterRef("pk"), annotator_id=value)))

    def filter_criterion(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs.filter(Exists(Judgment.objects.filter(comparison=OuterRef("pk"), criteria__has_key=value)))

    def filter_reached_overlap(self, qs: QuerySet, name: str, value: bool) -> QuerySet:
        reached = Q(judgment_count__gte=F("overlap"))
        return qs.filter(reached if value else ~reached)


class JudgmentFilter(filters.FilterSet):
    campaign = IdFilter(field_name="comparison__round__campaign_id")
    round = IdFilter(field_name="comparison__round_id")
    comparison = IdFilter(field_name="comparison_id")
    annotator = IdFilter(field_name="annotator_id", help_text="The annotator's user id.")
    model_version = IdFilter(method="filter_model_version", help_text="Judgments of pairs with this version.")
    choice = filters.ChoiceFilter(choices=Choice.choices)
    criterion = filters.ChoiceFilter(
        choices=Criterion.choices, method="filter_criterion", help_text="Judgments that rated this criterion."
    )
    created_after, created_before = _created_range()

    class Meta:
        model = Judgment
        fields: list[str] = []

    def filter_model_version(self, qs: QuerySet, name: str, value: int) -> QuerySet:
        return qs.filter(_either_sample_of("comparison__", value))

    def filter_criterion(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs.filter(criteria__has_key=value)


class ModelVersionFilter(filters.FilterSet):
    campaign = IdFilter(method="filter_campaign", help_text="Versions compared in this campaign.")
    round = IdFilter(method="filter_round", help_text="Versions compared in this round.")
    generator = filters.CharFilter(field_name="generator__name", max_length=100)
    created_after, created_before = _created_range()

    class Meta:
        model = ModelVersion
        fields: list[str] = []

    def filter_campaign(self, qs: QuerySet, name: str, value: int) -> QuerySet:
        return qs.filter(
            Q(id__in=Sample.objects.filter(round__campaign_id=value).values("model_version_id"))
            | Q(id__in=Round.model_versions.through.objects.filter(round__campaign_id=value).values("modelversion_id"))
        )

    def filter_round(self, qs: QuerySet, name: str, value: int) -> QuerySet:
        return qs.filter(
            Q(id__in=Sample.objects.filter(round_id=value).values("model_version_id"))
            | Q(id__in=Round.model_versions.through.objects.filter(round_id=value).values("modelversion_id"))
        )


class GenerationJobFilter(filters.FilterSet):
    campaign = IdFilter(field_name="round__campaign_id")
    round = IdFilter(field_name="round_id")
    status = filters.ChoiceFilter(choices=GenerationJob.Status.choices)
    created_after, created_before = _created_range()

    class Meta:
        model = GenerationJob
        fields: list[str] = []


class StrictFilterBackend(filters.DjangoFilterBackend):
    """django-filter, plus a 400 listing any query parameter the endpoint does not know.

    Lists accept their filters and the pagination parameters; other actions accept none.
    """

    def filter_queryset(self, request, queryset: QuerySet, view) -> QuerySet:
        is_list = getattr(view, "action", None) == "list"
        allowed: set[str] = set()
        if is_list:
            filterset_class = self.get_filterset_class(view, queryset)
            if filterset_class is not None:
                allowed |= set(filterset_class.base_filters)
            paginator = getattr(view, "paginator", None)
            if paginator is not None and hasattr(paginator, "query_params"):
                allowed |= set(paginator.query_params())
        unknown = sorted(set(request.query_params) - allowed)
        if unknown:
            known = ", ".join(sorted(allowed)) or "none"
            raise BadRequest(
                f"Unknown query parameter(s): {', '.join(unknown)}. This endpoint accepts: {known}.",
                {name: ["Unknown query parameter."] for name in unknown},
            )
        return super().filter_queryset(request, queryset, view) if is_list else queryset
