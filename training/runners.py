"""The one place that joins Django rows to the pure ML code. Imported only by worker tasks.

`generation_run(job_id)`: generate a round's samples (model version x prompt x seed, deterministic
per seed), write media through the storage API, create Samples with verifier scores and the
round's Comparisons, report progress on the job row, then open the round.
"""

import itertools
import logging
import tempfile
import traceback
import uuid
from pathlib import Path

import numpy as np
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from annotation import demo_media
from annotation.models import Comparison, Prompt, Round, Sample
from training.models import GenerationJob, ModelVersion
from training.shapes import grammar, verify

logger = logging.getLogger(__name__)

# Displayed media are upscaled with nearest neighbour: 32x32 H.264 would smear colours (4:2:0 chroma).
VIDEO_UPSCALE = 4


def _prompt_specs(config: dict, modality: str) -> list:
    prompt_set = config["prompt_set"]
    per_task = config["prompts_per_task"]
    if modality == "image":
        tasks = grammar.TASKS if prompt_set == "shapes-eval" else (prompt_set.split(":", 1)[1],)
        return [spec for task in tasks for spec in grammar.eval_prompts(task)[:per_task]]
    return grammar.eval_prompts_for_modality(modality)[: per_task * 6]


def _png_bytes(image: np.ndarray) -> bytes:
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_media(kind: str, media: np.ndarray, round_id: int, written: list[str]) -> tuple[list[str], list[str], str]:
    """Store one sample's media; returns (files, mime types, poster)."""
    base = f"rounds/{round_id}/{uuid.uuid4().hex}"
    if kind == "image":
        name = default_storage.save(f"{base}.png", ContentFile(_png_bytes(media)))
        written.append(name)
        return [name], ["image/png"], ""
    if kind == "views":
        names = []
        for i, view in enumerate(media):
            names.append(default_storage.save(f"{base}_v{i:02d}.png", ContentFile(_png_bytes(view))))
            written.append(names[-1])
        return names, ["image/png"] * len(names), ""
    frames = np.repeat(np.repeat(media, VIDEO_UPSCALE, axis=1), VIDEO_UPSCALE, axis=2)
    with tempfile.TemporaryDirectory() as tmp:
        mp4 = Path(tmp) / "clip.mp4"
        poster_path = demo_media.write_mp4(mp4, frames, fps=8)
        with mp4.open("rb") as handle:
            video = default_storage.save(f"{base}.mp4", File(handle))
        written.append(video)
        with Path(poster_path).open("rb") as handle:
            poster = default_storage.save(f"{base}.png", File(handle))
        written.append(poster)
    return [video], ["video/mp4"], poster


def _claim(job_id: int) -> GenerationJob | None:
    """Move the job from queued to running; a second delivery of the same message does nothing."""
    now = timezone.now()
    claimed = GenerationJob.objects.filter(id=job_id, status=GenerationJob.Status.QUEUED).update(
        status=GenerationJob.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    return GenerationJob.objects.select_related("round__campaign").get(id=job_id) if claimed else None


def _progress(job: GenerationJob, done: int, message: str) -> None:
    GenerationJob.objects.filter(id=job.id).update(
        progress_done=done, message=message[:300], heartbeat_at=timezone.now()
    )


def generation_run(job_id: int) -> str:
    from training.algorithms.loading import load_generator
    from training.algorithms.sampling import generate

    job = _claim(job_id)
    if job is None:
        return "not queued (already running or finished)"
    round_ = job.round
    config = job.config
    modality = round_.campaign.modality
    kind = {"image": "image", "video": "video", "multiview": "views"}[modality]
    written: list[str] = []
    try:
        specs = _prompt_specs(config, modality)
        versions = list(ModelVersion.objects.select_related("generator").filter(id__in=config["model_versions"]))
        n = config["samples_per_prompt"]
        total = len(specs) * len(versions) * n
        GenerationJob.objects.filter(id=job.id).update(progress_total=total)
        prompts = [Prompt(round=round_, text=spec.text, metadata={"spec": spec.to_dict()}) for spec in specs]
        Prompt.objects.bulk_create(prompts)
        samples_by_prompt: dict[int, list[Sample]] = {p.id: [] for p in prompts}
        done = 0
        for version in versions:
            policy = load_generator(version.generator.source, adapter=version.adapter_path or None)
            for prompt, spec in zip(prompts, specs, strict=True):
                seeds = [config["seed"] * 1_000_003 + prompt.id * 101 + k for k in range(n)]
                media = generate(policy, [spec.text] * n, seeds=seeds, steps=config["steps"])
                for seed, item in zip(seeds, media, strict=True):
                    files, mimes, poster = _write_media(kind, item, round_.id, written)
                    sample = Sample.objects.create(
                        prompt=prompt,
                        round=round_,
                        model_version=version,
                        seed=seed,
                        settings={"steps": config["steps"]},
                        kind=kind,
                        files=files,
                        mime_types=mimes,
                        poster=poster,
                        verifier_score=float(verify.verify(spec, item).score),
                    )
                    samples_by_prompt[prompt.id].append(sample)
                done += n
                _progress(job, done, f"{version}: {done}/{total} samples")
        with transaction.atomic():
            comparisons = []
            for prompt in prompts:
                comparisons += _pairs(round_, prompt, samples_by_prompt[prompt.id], config["max_pairs_per_prompt"])
            Comparison.objects.bulk_create(comparisons)
            Round.objects.filter(id=round_.id).update(
                status=Round.Status.OPEN, progress_done=done, progress_total=total
            )
            GenerationJob.objects.filter(id=job.id).update(
                status=GenerationJob.Status.SUCCEEDED,
                finished_at=timezone.now(),
                message=f"{done} samples, {len(comparisons)} comparisons",
            )
        return "succeeded"
    except Exception:
        logger.exception("generation of round %s failed", round_.id)
        Prompt.objects.filter(round=round_).delete()  # samples cascade; nothing half-made stays
        for name in written:
            default_storage.delete(name)
        GenerationJob.objects.filter(id=job.id).update(
            status=GenerationJob.Status.FAILED, finished_at=timezone.now(), error=traceback.format_exc()[-4000:]
        )
        return "failed"


def _pairs(round_: Round, prompt: Prompt, samples: list[Sample], cap: int) -> list[Comparison]:
    """Pairs of one prompt: across versions first, then within a version; capped per prompt."""
    pairs = list(itertools.combinations(samples, 2))
    pairs.sort(key=lambda ab: (ab[0].model_version_id == ab[1].model_version_id, ab[0].id, ab[1].id))
    return [
        Comparison(round=round_, prompt=prompt, sample_first=a, sample_second=b, overlap=round_.campaign.overlap)
        for a, b in pairs[:cap]
    ]
