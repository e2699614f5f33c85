"""Generators and the model versions derived from them.

A ModelVersion is immutable once registered: training produces a new version (with its parent),
it never edits one in place.
"""

from django.db import models


class Modality(models.TextChoices):
    IMAGE = "image", "Image"
    VIDEO = "video", "Video"
    MULTIVIEW = "multiview", "Multi-view"


class Generator(models.Model):
    class Family(models.TextChoices):
        EPSILON = "epsilon", "Epsilon prediction (DDPM/DDIM)"
        FLOW = "flow", "Flow matching"
        EXTERNAL = "external", "External (imported samples only)"

    name = models.SlugField(max_length=100, unique=True)
    modality = models.CharField(max_length=16, choices=Modality.choices)
    family = models.CharField(max_length=16, choices=Family.choices)
    # A built-in name ("shapes-image"), a local directory, or a hub id; empty for imported samples.
    source = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    generator = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="versions")
    name = models.CharField(max_length=100)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    adapter_path = models.CharField(max_length=500, blank=True)
    checkpoint_sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["generator", "name"], name="modelversion_unique_name")]

    def __str__(self) -> str:
        return f"{self.generator.name}/{self.name}"


class GenerationJob(models.Model):
    """Generating a round's samples on a worker. The row is the truth; the broker message only wakes a worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    round = models.OneToOneField("annotation.Round", on_delete=models.CASCADE, related_name="generation_job")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # What to generate: {"prompt_set": ..., "samples_per_prompt": n, "seed": s, "steps": k, "max_pairs_per_prompt": m}
    config = models.JSONField(default=dict)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(progress_done__lte=models.F("progress_total")),
                name="generationjob_progress_le_total",
            )
        ]

    def __str__(self) -> str:
        return f"generation of {self.round} ({self.status})"

    @property
    def percent(self) -> float:
        return 100.0 * self.progress_done / self.progress_total if self.progress_total else 0.0
