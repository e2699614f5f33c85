"""Training-side rules that write: built-in generators, and starting a round's generation.

This module runs in the web process: it never imports torch or the pure ML packages. Work that
needs them is enqueued (after commit) for a worker, which runs `training.runners`.
"""

from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.errors import Invalid
from annotation.models import Campaign, Round
from training.models import GenerationJob, Generator, ModelVersion

# Built-in shapes generators: name -> (modality, family). Their weights ship in training/weights/.
BUILTIN_GENERATORS = {
    "shapes-image-eps": ("image", Generator.Family.EPSILON),
    "shapes-image-flow": ("image", Generator.Family.FLOW),
    "shapes-video": ("video", Generator.Family.FLOW),
    "shapes-multiview": ("multiview", Generator.Family.FLOW),
}
# Prompt sets the shapes world offers: every GenEval-style task type, or one of them.
SHAPES_TASKS = ("single_object", "two_objects", "counting", "colors", "position", "color_attr")
PROMPT_SETS = ("shapes-eval", *(f"shapes-eval:{task}" for task in SHAPES_TASKS))
WEIGHTS_DIR = Path(settings.BASE_DIR) / "training" / "weights"


def _sha256_of_dir(path: Path) -> str:
    sums = path.parent / "SHA256SUMS"
    if not sums.is_file():
        return ""
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name.startswith(f"{path.name}/") and name.endswith(".safetensors"):
            return digest
    return ""


def builtin_weights_exist(name: str) -> bool:
    """Whether the shipped weights of built-in generator `name` are in the repository."""
    return (WEIGHTS_DIR / name / "model_index.json").is_file()


@transaction.atomic
def generator_register_builtins() -> dict[str, ModelVersion]:
    """Make sure each built-in generator and its shipped base version exist. Idempotent."""
    versions = {}
    for name, (modality, family) in BUILTIN_GENERATORS.items():
        generator, _ = Generator.objects.get_or_create(
            name=name, defaults={"modality": modality, "family": family, "source": name}
        )
        versions[name], _ = ModelVersion.objects.get_or_create(
            generator=generator, name="base", defaults={"checkpoint_sha256": _sha256_of_dir(WEIGHTS_DIR / name)}
        )
    return versions


def generation_start(
    *,
    campaign: Campaign,
    model_versions: list[ModelVersion],
    prompt_set: str = "shapes-eval",
    prompts_per_task: int = 8,
    samples_per_prompt: int = 2,
    seed: int = 0,
    steps: int = 20,
    max_pairs_per_prompt: int = 6,
) -> GenerationJob:
    """Create a round in `generating` state and queue its generation on the gpu queue."""
    if not model_versions:
        raise Invalid("Choose at least one model version.")
    wrong = [str(v) for v in model_versions if v.generator.modality != campaign.modality]
    if wrong:
        raise Invalid(f"These versions do not generate {campaign.modality}: {', '.join(wrong)}.")
    if prompt_set not in PROMPT_SETS:
        raise Invalid(f"Unknown prompt set {prompt_set!r}; choose one of {', '.join(PROMPT_SETS)}.")
    if not 1 <= samples_per_prompt <= 8:
        raise Invalid("Samples per prompt must be between 1 and 8.")
    if len(model_versions) * samples_per_prompt < 2:
        raise Invalid("Each prompt needs at least two samples to compare: add a version or a sample per prompt.")
    if not 1 <= prompts_per_task <= 200 or not 1 <= steps <= 200 or not 1 <= max_pairs_per_prompt <= 50:
        raise Invalid("prompts_per_task and steps must be 1-200, max_pairs_per_prompt 1-50.")
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        number = (campaign.rounds.order_by("-number").values_list("number", flat=True).first() or 0) + 1
        previous = campaign.rounds.order_by("-number").first()
        round_ = Round.objects.create(
            campaign=campaign,
            number=number,
            status=Round.Status.GENERATING,
            continues=previous,
            samples_per_prompt=samples_per_prompt,
            source=f"generated: {prompt_set}",
        )
        round_.model_versions.set(model_versions)
        job = GenerationJob.objects.create(
            round=round_,
            config={
                "prompt_set": prompt_set,
                "prompts_per_task": prompts_per_task,
                "samples_per_prompt": samples_per_prompt,
                "seed": seed,
                "steps": steps,
                "max_pairs_per_prompt": max_pairs_per_prompt,
                "model_versions": [v.id for v in model_versions],
            },
        )
        from workers import tasks

        transaction.on_commit(lambda: tasks.round_generate.delay(job.id))
    return job
