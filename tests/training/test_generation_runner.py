"""Generating a round on the worker side (`training.runners.generation_run`) with tiny pipelines saved
locally and loaded through the same code as real models: media written through storage and checked
from content, samples with verifier scores, comparisons, progress, and nothing left on failure."""

import pytest
from django.core.files.storage import default_storage

from annotation import media_checks
from annotation.models import Comparison, Prompt, Round, Sample
from tests.factories import CampaignFactory
from training.algorithms.builders import GeneratorSpec, TextEncoderSpec, build_pipeline, save_pipeline
from training.models import GenerationJob, Generator, ModelVersion
from training.runners import generation_run
from training.services import generation_start
from training.shapes import grammar

pytestmark = pytest.mark.django_db

_TEXT = TextEncoderSpec(hidden_size=16, layers=1, heads=2, intermediate_size=32, max_length=12)
SPECS = {
    "image": GeneratorSpec("shapes-image-flow", resolution=16, heads=2, flow_layers=1, flow_head_dim=8, text=_TEXT),
    "video": GeneratorSpec("shapes-video", resolution=16, channels=(16, 16), heads=2, frames=8, text=_TEXT),
    "multiview": GeneratorSpec("shapes-multiview", resolution=16, channels=(16, 16), heads=2, frames=4, text=_TEXT),
}
LIMITS = media_checks.MediaLimits(
    max_image_bytes=10**7, max_image_pixels=10**7, max_video_bytes=10**8, max_video_seconds=60
)


def _versions(tmp_path, modality, n=2):
    spec = SPECS[modality]
    path = save_pipeline(build_pipeline(spec.name, grammar.vocabulary(), spec=spec), tmp_path / spec.name)
    family = Generator.Family.FLOW if "flow" in spec.name else Generator.Family.EPSILON
    generator = Generator.objects.create(name=f"tiny-{modality}", modality=modality, family=family, source=str(path))
    return [ModelVersion.objects.create(generator=generator, name=f"v{i}") for i in range(n)]


@pytest.mark.parametrize("modality", ["image", "video", "multiview"])
def test_round_is_generated_with_checked_media_scores_and_pairs(tmp_path, modality, django_capture_on_commit_callbacks):
    campaign = CampaignFactory(modality=modality, overlap=2)
    versions = _versions(tmp_path, modality)
    job = generation_start(
        campaign=campaign,
        model_versions=versions,
        prompt_set="shapes-eval:counting" if modality == "image" else "shapes-eval",
        prompts_per_task=1,
        samples_per_prompt=2,
        steps=2,
        max_pairs_per_prompt=3,
    )
    assert generation_run(job.id) == "succeeded"
    job.refresh_from_db()
    round_ = Round.objects.get(id=job.round_id)
    assert job.status == GenerationJob.Status.SUCCEEDED and round_.status == Round.Status.OPEN
    prompts = list(Prompt.objects.filter(round=round_))
    assert prompts and all(p.metadata["spec"] == grammar.parse(p.text).to_dict() for p in prompts)
    samples = list(Sample.objects.filter(round=round_))
    assert len(samples) == len(prompts) * len(versions) * 2 == job.progress_total == job.progress_done
    kind = {"image": "image", "video": "video", "multiview": "views"}[modality]
    for sample in samples:
        assert sample.kind == kind and 0.0 <= sample.verifier_score <= 1.0
        for name, mime in zip(sample.files, sample.mime_types, strict=True):
            info = media_checks.check_media(
                default_storage.path(name), expected_kind="video" if kind == "video" else "image", limits=LIMITS
            )
            assert info.mime == mime
        if kind == "views":
            assert len(sample.files) == SPECS["multiview"].frames
        if kind == "video":
            assert default_storage.exists(sample.poster)
    # Deterministic per seed: the two versions share weights, so their samples for a seed match.
    by_seed = {}
    for sample in samples:
        by_seed.setdefault((sample.prompt_id, sample.seed), []).append(default_storage.open(sample.files[0]).read())
    assert all(len(v) == 2 and v[0] == v[1] for v in by_seed.values())
    comparisons = Comparison.objects.filter(round=round_)
    assert comparisons.count() == len(prompts) * 3
    assert all(c.sample_first.prompt_id == c.sample_second.prompt_id == c.prompt_id for c in comparisons)
    assert all(c.overlap == 2 for c in comparisons)


def test_failed_generation_leaves_nothing_half_made(tmp_path):
    campaign = CampaignFactory(modality="image")
    versions = _versions(tmp_path, "image")
    broken = Generator.objects.create(
        name="broken", modality="image", family=Generator.Family.EPSILON, source=str(tmp_path / "missing")
    )
    versions.append(ModelVersion.objects.create(generator=broken, name="v0"))
    job = generation_start(campaign=campaign, model_versions=versions, prompts_per_task=1, steps=2)
    assert generation_run(job.id) == "failed"
    job.refresh_from_db()
    assert job.status == GenerationJob.Status.FAILED and "missing" in job.error
    assert not Prompt.objects.filter(round=job.round).exists() and not Sample.objects.exists()
    assert not any(default_storage.listdir("rounds")[1]) if default_storage.exists("rounds") else True
    assert generation_run(job.id).startswith("not queued")  # a second delivery does nothing
