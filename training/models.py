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
