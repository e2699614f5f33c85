"""`python manage.py shapes_eval --model shapes-image-eps --json`: verifier accuracy and diversity.

`--model` is a built-in name, a local pipeline path, a model version id (`version:12`) or
`<generator>/<version name>` as listed in the admin; a version's LoRA adapter is applied.
"""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from training.models import ModelVersion

_MODALITY = {"image": "image", "video": "video", "views": "multiview"}


def _resolve(model: str) -> tuple[str, str | None, str]:
    """(source, adapter, label) for what the user named."""
    version = None
    if model.startswith("version:"):
        version = ModelVersion.objects.select_related("generator").filter(id=model.split(":", 1)[1]).first()
        if version is None:
            raise CommandError(f"No model version {model!r}.")
    elif "/" in model and not model.startswith((".", "/")):
        generator, _, name = model.partition("/")
        version = ModelVersion.objects.select_related("generator").filter(generator__name=generator, name=name).first()
    if version is not None:
        return version.generator.source, version.adapter_path or None, str(version)
    return model, None, model


class Command(BaseCommand):
    help = "Evaluate a generator on the shapes world: verifier accuracy per task type, overall, and diversity."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True)
        parser.add_argument("--samples-per-prompt", type=int, default=4)
        parser.add_argument("--prompts-per-task", type=int, default=None, help="default: the whole eval set")
        parser.add_argument("--steps", type=int, default=20, help="sampler steps")
        parser.add_argument(
            "--guidance", type=float, default=1.0, help="classifier-free guidance (1: none, as rounds are generated)"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, model, samples_per_prompt, prompts_per_task, steps, guidance, json: bool, **options):
        from training.algorithms.loading import load_generator
        from training.algorithms.sampling import generate
        from training.shapes.evaluate import evaluate

        source, adapter, label = _resolve(model)
        try:
            policy = load_generator(source, adapter=adapter)
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise CommandError(f"Cannot load {model!r}: {exc}") from exc
        started = time.perf_counter()
        report = evaluate(
            lambda prompts, seeds: generate(policy, prompts, seeds=seeds, steps=steps, guidance=guidance),
            _MODALITY[policy.modality],
            samples_per_prompt=samples_per_prompt,
            prompts_per_task=prompts_per_task,
        )
        report.update(model=label, steps=steps, guidance=guidance, seconds=round(time.perf_counter() - started, 1))
        if json:
            self.stdout.write(_dumps(report))
            return
        self.stdout.write(
            f"{label} ({report['modality']}, {report['samples']} samples, {steps} steps, guidance {guidance:g})"
        )
        for task, row in report["tasks"].items():
            self.stdout.write(
                f"  {task:<14} accuracy {row['accuracy']:.3f}  mean score {row['mean_score']:.3f}"
                f"  pass@{report['k']} {row['pass_at_k']:.3f}"
            )
        self.stdout.write(
            f"  overall        accuracy {report['overall_accuracy']:.3f}  mean score {report['mean_score']:.3f}"
            f"  pass@{report['k']} {report['pass_at_k']:.3f}  diversity {report['diversity']:.3f}"
        )


def _dumps(obj) -> str:
    return json.dumps(obj, sort_keys=True)
