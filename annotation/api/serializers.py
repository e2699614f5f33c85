"""API representations. Read-only except the judging payload; ids refer to other API resources."""

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import Campaign, Choice, Comparison, Judgment, Prompt, Round, Sample
from annotation.services.judgments import MAX_TIME_ON_TASK_MS
from training.models import GenerationJob, ModelVersion

# Choices accepted when judging through the API: the comparison's own order (first/second) or
# the order the lease drew for display (left/right).
API_CHOICES = [*Choice.values, "left", "right"]


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in a sentence.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Per parameter or field: its messages (validation errors only).",
    )


def _absolute(request, url: str) -> str:
    return request.build_absolute_uri(url) if request is not None else url


class MediaUrlsMixin(serializers.Serializer):
    media_urls = serializers.SerializerMethodField(help_text="Permission-checked media URLs, one per file.")
    poster_url = serializers.SerializerMethodField(help_text="Poster frame of a video, if any.")

    @extend_schema_field(serializers.ListField(child=serializers.URLField()))
    def get_media_urls(self, sample: Sample) -> list[str]:
        request = self.context.get("request")
        return [_absolute(request, reverse("annotation:media", args=[sample.id, i])) for i in range(len(sample.files))]

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_poster_url(self, sample: Sample) -> str | None:
        if not sample.poster:
            return None
        return _absolute(self.context.get("request"), reverse("annotation:poster", args=[sample.id]))


class CampaignSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role in the campaign: annotator or researcher.")

    class Meta:
        model = Campaign
        fields = [
            "id",
            "name",
            "modality",
            "instructions",
            "criteria",
            "overlap",
            "gold_ratio",
            "lease_seconds",
            "undo_seconds",
            "created_at",
            "role",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=["annotator", "researcher"]))
    def get_role(self, campaign: Campaign) -> str | None:
        return self.context["scope"].role(campaign.id)


class RoundSerializer(serializers.ModelSerializer):
    model_versions = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Round
        fields = [
            "id",
            "campaign",
            "number",
            "status",
            "continues",
            "model_versions",
            "samples_per_prompt",
            "progress_done",
            "progress_total",
            "created_at",
        ]


class PromptSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="round.campaign_id", read_only=True)

    class Meta:
        model = Prompt
        fields = ["id", "round", "campaign", "text", "metadata"]


class SampleSerializer(MediaUrlsMixin, serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="round.campaign_id", read_only=True)

    class Meta:
        model = Sample
        fields = [
            "id",
            "round",
            "campaign",
            "prompt",
            "model_version",
            "seed",
            "settings",
            "kind",
            "mime_types",
            "media_urls",
            "poster_url",
            "verifier_score",
            "created_at",
        ]


class ChoiceCountsSerializer(serializers.Serializer):
    first = serializers.IntegerField(source="n_first")
    second = serializers.IntegerField(source="n_second")
    tie = serializers.IntegerField(source="n_tie")
    both_bad = serializers.IntegerField(source="n_both_bad")


class ComparisonSerializer(serializers.ModelSerializer):
    campaign = serializers.IntegerField(source="round.campaign_id", read_only=True)
    model_version_first = serializers.IntegerField(source="sample_first.model_version_id", read_only=True)
    model_version_second = serializers.IntegerField(source="sample_second.model_version_id", read_only=True)
    choice_counts = ChoiceCountsSerializer(source="*", read_only=True, help_text="Judgments per choice.")
    judgments = serializers.IntegerField(source="n_total", read_only=True, help_text="Judgments recorded.")
    reached_overlap = serializers.BooleanField(read_only=True, help_text="Judged at least `overlap` times.")
    agreement = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Share of the most frequent choice (null when unjudged)."
    )

    class Meta:
        model = Comparison
        fields = [
            "id",
            "round",
            "campaign",
            "prompt",
            "sample_first",
            "sample_second",
            "model_version_first",
            "model_version_second",
            "priority",
            "is_gold",
            "gold_answer",
            "overlap",
            "judgments",
            "choice_counts",
            "reached_overlap",
            "agreement",
            "created_at",
        ]


class JudgmentSerializer(serializers.ModelSerializer):
    round = serializers.IntegerField(source="comparison.round_id", read_only=True)
    campaign = serializers.IntegerField(source="comparison.round.campaign_id", read_only=True)
    choice = serializers.ChoiceField(choices=Choice.choices, help_text="In the comparison's own order.")
    criteria = serializers.DictField(
        child=serializers.ChoiceField(choices=Choice.choices), help_text="Per-criterion choices, same order."
    )

    class Meta:
        model = Judgment
        fields = [
            "id",
            "comparison",
            "round",
            "campaign",
            "annotator",
            "choice",
            "criteria",
            "left_sample",
            "time_on_task_ms",
            "created_at",
        ]


class ModelVersionSerializer(serializers.ModelSerializer):
    generator = serializers.CharField(source="generator.name", read_only=True)
    modality = serializers.CharField(source="generator.modality", read_only=True)
    family = serializers.CharField(source="generator.family", read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "generator", "modality", "family", "parent", "checkpoint_sha256", "created_at"]


class TrainingJobSerializer(serializers.ModelSerializer):
    kind = serializers.SerializerMethodField(help_text="What the job does; only generation jobs exist for now.")
    campaign = serializers.IntegerField(source="round.campaign_id", read_only=True)
    percent = serializers.FloatField(read_only=True)

    class Meta:
        model = GenerationJob
        fields = [
            "id",
            "kind",
            "round",
            "campaign",
            "status",
            "progress_done",
            "progress_total",
            "percent",
            "message",
            "error",
            "heartbeat_at",
            "created_at",
            "started_at",
            "finished_at",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=["generation"]))
    def get_kind(self, job: GenerationJob) -> str:
        return "generation"


# --- judging ------------------------------------------------------------------------------------


class BlindSampleSerializer(MediaUrlsMixin, serializers.ModelSerializer):
    """A sample as an annotator sees it: no model version, no seed."""

    class Meta:
        model = Sample
        fields = ["id", "kind", "mime_types", "media_urls", "poster_url"]


class PairPromptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Prompt
        fields = ["id", "text"]


class PairSerializer(serializers.Serializer):
    assignment = serializers.IntegerField(source="id", help_text="The lease; submit to /assignments/{id}/judgment/.")
    comparison = serializers.IntegerField(source="comparison_id")
    round = serializers.IntegerField(source="round_id")
    expires_at = serializers.DateTimeField(help_text="The lease ends then; a later submit needs a free slot.")
    prompt = PairPromptSerializer(source="comparison.prompt")
    first = BlindSampleSerializer(source="comparison.sample_first")
    second = BlindSampleSerializer(source="comparison.sample_second")
    left_sample = serializers.SerializerMethodField(help_text="Sample to show on the left (the drawn order).")
    right_sample = serializers.SerializerMethodField(help_text="Sample to show on the right.")
    criteria = serializers.ListField(child=serializers.CharField(), source="round.campaign.criteria")
    instructions = serializers.CharField(source="round.campaign.instructions")

    def get_left_sample(self, assignment) -> int:
        c = assignment.comparison
        return c.sample_second_id if assignment.swapped else c.sample_first_id

    def get_right_sample(self, assignment) -> int:
        c = assignment.comparison
        return c.sample_first_id if assignment.swapped else c.sample_second_id


class JudgmentSubmitSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(
        choices=API_CHOICES,
        help_text="first/second: the comparison's own order (`first` = the pair's `first` sample); "
        "left/right: the drawn display order (`left` = `left_sample`); or tie, both_bad.",
    )
    criteria = serializers.DictField(
        child=serializers.ChoiceField(choices=API_CHOICES),
        required=False,
        default=dict,
        help_text="Per-criterion choices (keys from the campaign's criteria), same vocabulary as `choice`.",
    )
    time_on_task_ms = serializers.IntegerField(
        min_value=0, max_value=MAX_TIME_ON_TASK_MS, required=False, allow_null=True
    )


class JudgmentResultSerializer(JudgmentSerializer):
    created = serializers.BooleanField(help_text="False when this repeats an earlier submit (same key or lease).")

    class Meta(JudgmentSerializer.Meta):
        fields = [*JudgmentSerializer.Meta.fields, "created"]


class SkipResultSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    status = serializers.CharField()
