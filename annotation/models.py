"""Campaigns, rounds, prompts, samples, comparisons, leases and judgments.

The database holds the invariants:
- a comparison never has more live-or-done leases than its overlap (a counter with a check
  constraint, changed only under the comparison's row lock);
- an annotator is never assigned the same comparison twice (unique per comparison and annotator);
- a judgment is unique per comparison and annotator, and per client idempotency key.
"""

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q

from training.models import Modality, ModelVersion


class Criterion(models.TextChoices):
    PROMPT_ALIGNMENT = "prompt_alignment", "Prompt alignment"
    VISUAL_QUALITY = "visual_quality", "Visual quality"
    MOTION = "motion", "Motion"
    VIEW_CONSISTENCY = "view_consistency", "View consistency"


class Choice(models.TextChoices):
    """A judgment in the comparison's own order (first = `sample_first`), whatever was shown left."""

    FIRST = "first", "First better"
    SECOND = "second", "Second better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class Campaign(models.Model):
    name = models.CharField(max_length=200)
    modality = models.CharField(max_length=16, choices=Modality.choices)
    instructions = models.TextField(blank=True)
    criteria = ArrayField(models.CharField(max_length=32, choices=Criterion.choices), default=list, blank=True)
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Judgments wanted per comparison.")
    gold_ratio = models.FloatField(default=0.0, help_text="Share of gold comparisons served (0-1).")
    lease_seconds = models.PositiveIntegerField(default=600, help_text="How long a pair stays reserved.")
    undo_seconds = models.PositiveIntegerField(default=30, help_text="Window in which a judgment can be undone.")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="campaigns")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1) & Q(overlap__lte=100), name="campaign_overlap_range"),
            models.CheckConstraint(condition=Q(gold_ratio__gte=0) & Q(gold_ratio__lte=1), name="campaign_gold_ratio"),
            models.CheckConstraint(condition=Q(lease_seconds__gte=10), name="campaign_lease_min"),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ANNOTATOR = "annotator", "Annotator"
        RESEARCHER = "researcher", "Researcher"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ANNOTATOR)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.campaign} ({self.role})"


class Round(models.Model):
    class Status(models.TextChoices):
        GENERATING = "generating", "Generating"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    continues = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_rounds")
    model_versions = models.ManyToManyField(ModelVersion, blank=True, related_name="rounds")
    samples_per_prompt = models.PositiveSmallIntegerField(default=1)
    source = models.CharField(max_length=500, blank=True, help_text="Where the samples came from.")
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "number"], name="round_unique_number")]
        ordering = ["campaign_id", "number"]

    def __str__(self) -> str:
        return f"{self.campaign} / round {self.number}"


class Prompt(models.Model):
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="prompts")
    text = models.TextField()
    metadata = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return self.text[:80]


class Sample(models.Model):
    """One output: an image, a video with its poster frame, or an ordered set of views.

    `files` holds storage names: one image, one video, or the views in order.
    """

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        VIDEO = "video", "Video"
        VIEWS = "views", "Multi-view set"

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="samples")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="samples")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="samples")
    seed = models.BigIntegerField(null=True, blank=True)
    settings = models.JSONField(default=dict, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    files = ArrayField(models.CharField(max_length=300), default=list)
    mime_types = ArrayField(models.CharField(max_length=40), default=list)
    poster = models.CharField(max_length=300, blank=True)
    verifier_score = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(files__len__gte=1), name="sample_has_files"),
        ]

    def __str__(self) -> str:
        return f"sample {self.pk} ({self.kind})"


class Comparison(models.Model):
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="comparisons")
    sample_first = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="+")
    sample_second = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="+")
    priority = models.FloatField(default=0.0)
    is_gold = models.BooleanField(default=False)
    gold_answer = models.CharField(max_length=16, choices=Choice.choices, blank=True)
    # Copied from the campaign when created, so the database can check the counters against it.
    overlap = models.PositiveSmallIntegerField()
    # Leases that are live or done. Changed only while the row is locked.
    slots_taken = models.PositiveSmallIntegerField(default=0)
    judgment_count = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(slots_taken__lte=F("overlap")), name="comparison_slots_within_overlap"),
            models.CheckConstraint(
                condition=Q(judgment_count__lte=F("slots_taken")), name="comparison_judgments_within_slots"
            ),
            models.CheckConstraint(condition=~Q(sample_first=F("sample_second")), name="comparison_distinct_samples"),
            models.CheckConstraint(condition=Q(is_gold=False) | ~Q(gold_answer=""), name="comparison_gold_has_answer"),
            models.UniqueConstraint(fields=["sample_first", "sample_second"], name="comparison_unique_pair"),
        ]
        indexes = [
            # The claim query: open comparisons of a round, best priority first.
            models.Index(
                F("round"),
                F("priority").desc(),
                F("id"),
                name="comparison_open_idx",
                condition=Q(slots_taken__lt=F("overlap")),
            ),
        ]

    def __str__(self) -> str:
        return f"comparison {self.pk}"


class Assignment(models.Model):
    """A lease: one comparison handed to one annotator until `expires_at`."""

    class Status(models.TextChoices):
        LIVE = "live", "Live"
        DONE = "done", "Judged"
        EXPIRED = "expired", "Expired"
        SKIPPED = "skipped", "Skipped"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.LIVE)
    # Left/right order drawn per assignment; True means the comparison's second sample is on the left.
    swapped = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="assignment_once_per_annotator"),
        ]
        indexes = [
            models.Index(fields=["annotator", "round", "status"], name="assignment_annotator_idx"),
            models.Index(fields=["expires_at"], name="assignment_live_expiry_idx", condition=Q(status="live")),
        ]

    def __str__(self) -> str:
        return f"lease {self.pk} ({self.status})"


class Judgment(models.Model):
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgments")
    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="judgment")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgments")
    choice = models.CharField(max_length=16, choices=Choice.choices)
    criteria = models.JSONField(default=dict, blank=True, help_text="Per-criterion choices, same vocabulary.")
    left_sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="+")
    time_on_task_ms = models.PositiveIntegerField(null=True, blank=True)
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["comparison", "annotator"], name="judgment_once_per_annotator"),
        ]
        indexes = [models.Index(fields=["annotator", "-created_at"], name="judgment_annotator_recent_idx")]

    def __str__(self) -> str:
        return f"judgment {self.pk}: {self.choice}"


class ApiToken(models.Model):
    """A personal API token, scoped to some of its user's campaigns, read-only or read-write.

    Only the sha256 of the secret is stored; the plaintext `loupe_<prefix>_<secret>` is shown once
    when created. `prefix` is public and finds the row; the hash is compared in constant time.
    A token never sees more than its user may see: its campaigns are intersected with the user's.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_sha256 = models.CharField(max_length=64)
    campaigns = models.ManyToManyField(Campaign, related_name="api_tokens")
    write = models.BooleanField(default=False, help_text="May submit judgments; otherwise read-only.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(secret_sha256__regex=r"^[0-9a-f]{64}$"),  # noqa: S106 (a pattern, not a secret)
                name="apitoken_hash_hex",
            ),
        ]
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_user_recent_idx")]

    def __str__(self) -> str:
        return f"{self.name} (loupe_{self.prefix}_…)"


class DatasetSnapshot(models.Model):
    """A frozen export of a campaign: a stored file named by content hash, never changed once written.

    Training jobs record the snapshot they used; `sha256` lets any client check a download byte for
    byte. Written only by `annotation.export.snapshot_create`.
    """

    class Format(models.TextChoices):
        PARQUET = "parquet", "Parquet"
        JSONL = "jsonl", "JSON Lines"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="snapshots")
    fmt = models.CharField(max_length=8, choices=Format.choices)
    raw = models.BooleanField(default=False, help_text="One row per judgment instead of per comparison.")
    embed_media = models.BooleanField(default=False)
    file = models.CharField(max_length=300, unique=True, help_text="Storage name (generated).")
    sha256 = models.CharField(max_length=64)
    rows = models.BigIntegerField()
    size_bytes = models.BigIntegerField()
    params = models.JSONField(default=dict, blank=True, help_text="Everything the export was made with.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="snapshot_sha256_hex"),
            models.CheckConstraint(condition=Q(rows__gte=0) & Q(size_bytes__gte=0), name="snapshot_sizes"),
        ]
        indexes = [models.Index(fields=["campaign", "-created_at"], name="snapshot_campaign_recent_idx")]

    def __str__(self) -> str:
        return f"snapshot {self.pk} of {self.campaign_id} ({self.fmt}, {self.sha256[:12]})"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("A dataset snapshot is immutable.")
        super().save(*args, **kwargs)
