"""`python manage.py shapes_train_base --model shapes-image-eps`: train a built-in base and ship it.

Trains from scratch on rendered ground truth (see `training.shapes.train_base`), saves the pipeline
under `training/weights/<model>/` (safetensors), and records its sha256 in
`training/weights/SHA256SUMS`. `--eval-every K` evaluates (and with `--keep-checkpoints` saves)
along the way, which is how the shipped step counts were chosen; training is deterministic, so
`--steps K` reproduces the checkpoint taken at step K.
"""

import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

WEIGHTS_DIR = Path(settings.BASE_DIR) / "training" / "weights"


def _sha256_files(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*.safetensors"))
    }


def record_sums(directory: Path) -> None:
    """Rewrite this model's lines in SHA256SUMS, keeping the other models' lines."""
    sums_path = directory.parent / "SHA256SUMS"
    lines = sums_path.read_text().splitlines() if sums_path.is_file() else []
    kept = [line for line in lines if not line.split("  ", 1)[-1].startswith(f"{directory.name}/")]
    new = [f"{digest}  {name}" for name, digest in _sha256_files(directory).items()]
    sums_path.write_text("\n".join(sorted(kept + new, key=lambda x: x.split("  ", 1)[-1])) + "\n")


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return device


class Command(BaseCommand):
    help = "Train a built-in shapes generator from rendered data and save it under training/weights/."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True)
        parser.add_argument("--steps", type=int, default=None, help="default: the shipped step count")
        parser.add_argument("--batch-size", type=int, default=None)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--out", default=str(WEIGHTS_DIR), help="parent folder of the saved pipeline")
        parser.add_argument("--eval-every", type=int, default=0, help="quick verifier evaluation every K steps")
        parser.add_argument("--keep-checkpoints", action="store_true", help="save <model>@<step> at each evaluation")
        parser.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
        parser.add_argument("--device", default="cpu", help="where to train: cpu, cuda, cuda:1 ...")
        parser.add_argument(
            "--render-workers",
            type=int,
            default=0,
            help="processes rendering batches ahead (models whose data is drawn per step; same result, faster)",
        )

    def handle(self, *args, model, steps, batch_size, seed, out, eval_every, keep_checkpoints, threads, **options):
        import dataclasses

        import torch

        from training.algorithms.builders import save_pipeline
        from training.algorithms.loading import policy_from_pipeline
        from training.algorithms.sampling import generate
        from training.shapes.evaluate import evaluate
        from training.shapes.train_base import DEFAULT_CONFIGS, MODALITY, train_base

        if model not in DEFAULT_CONFIGS:
            raise CommandError(f"Unknown model {model!r}; choose one of {', '.join(DEFAULT_CONFIGS)}.")
        if threads:
            torch.set_num_threads(threads)
        device = options["device"]
        render_workers = options["render_workers"]
        if render_workers < 0:
            raise CommandError("--render-workers must be 0 or more.")
        try:
            torch.empty(0, device=device)
        except (RuntimeError, AssertionError) as exc:
            raise CommandError(f"Cannot train on device {device!r}: {exc}") from exc
        config = DEFAULT_CONFIGS[model]
        changes = {k: v for k, v in {"steps": steps, "batch_size": batch_size, "seed": seed}.items() if v is not None}
        config = dataclasses.replace(config, **changes)
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        log_every = max(1, config.steps // 20)

        def on_step(step: int, loss: float) -> None:
            if step % log_every == 0 or step == config.steps - 1:
                elapsed = time.perf_counter() - started
                self.stdout.write(f"step {step + 1}/{config.steps}  loss {loss:.4f}  {elapsed:.0f} s")

        def on_checkpoint(step: int, pipe) -> None:
            policy = policy_from_pipeline(pipe)
            report = evaluate(
                lambda prompts, seeds: generate(policy, prompts, seeds=seeds, steps=20),
                MODALITY[model],
                samples_per_prompt=2,
                prompts_per_task=8,
            )
            tasks = " ".join(f"{k}={v['accuracy']:.2f}" for k, v in report["tasks"].items())
            self.stdout.write(
                f"  eval @ {step}: accuracy {report['overall_accuracy']:.3f}  score {report['mean_score']:.3f}  "
                f"diversity {report['diversity']:.3f}  [{tasks}]"
            )
            if keep_checkpoints:
                target = out_dir / f"{model}@{step}"
                shutil.rmtree(target, ignore_errors=True)
                save_pipeline(pipe, target)

        pipe = train_base(
            model,
            config,
            on_step=on_step,
            on_checkpoint=on_checkpoint if eval_every else None,
            checkpoint_every=eval_every,
            device=device,
            render_workers=render_workers,
        )
        seconds = time.perf_counter() - started
        target = out_dir / model
        # Write beside the target, then swap it in: a failed save never leaves half a model.
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            staged = Path(tmp) / model
            save_pipeline(pipe, staged)
            (staged / "training.json").write_text(
                json.dumps(
                    {
                        "command": f"python manage.py shapes_train_base --model {model} --steps {config.steps}"
                        f" --batch-size {config.batch_size} --seed {config.seed} --threads {torch.get_num_threads()}"
                        + (f" --device {device}" if device != "cpu" else "")
                        + (f" --render-workers {render_workers}" if render_workers else ""),
                        "config": dataclasses.asdict(config),
                        "seconds": round(seconds, 1),
                        "torch": torch.__version__,
                        "threads": torch.get_num_threads(),
                        "device": _device_name(device),
                    },
                    indent=2,
                )
                + "\n"
            )
            shutil.rmtree(target, ignore_errors=True)
            staged.rename(target)
        record_sums(target)
        self.stdout.write(self.style.SUCCESS(f"Saved {target} after {seconds:.0f} s ({config.steps} steps)."))
