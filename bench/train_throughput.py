"""Diffusion-DPO training throughput: `python -m bench.train_throughput --json --reference PATH`.

Pairs/s of our trainer (`training.algorithms.dpo.train_dpo`) against diffusers' research example
`examples/research_projects/diffusion_dpo/train_diffusion_dpo.py` (SD1.5 LoRA), both on the same tiny
`StableDiffusionPipeline` (VAE, CLIP text encoder, CLIP BPE tokenizer, all built here from configs and
saved with `save_pretrained`), the same Pick-a-Pic style parquet (`jpg_0`, `jpg_1`, `label_0`,
`caption`) read offline, the same resolution, batch, LoRA rank, optimiser and steps. Not shipped:
the reference script is read from `--reference` (extract it from a diffusers checkout outside this
repository); without it only our figures are printed.

Each run is its own process (`--threads` OpenMP threads each), alternating ours, ours with per-step
encoding, reference, and so on, so all see the same machine state. Startup is excluded: every run
records a timestamp when each optimisation step ends (ours through `on_step`, the reference through its
own tqdm progress bar, which the runner subclasses to stamp `update()`), and the figure is
`batch * (N - k) / (t_N - t_k)` over the steps after the first k. Two figures for ours:

- `ours`: the default, prompts and VAE posteriors encoded once before the first step (the encoders are
  frozen) and the latents sampled from the cached posterior every step;
- `ours_per_step_encode` (`cache_encodings=False`): the VAE and text encoder run on every batch, as in the
  reference, so the denoiser work per step is the same; that ratio isolates the training step itself.

Where the reference's environment lacks `torchvision` (only `transforms` is used, for
resize/crop/flip/to-tensor/normalise) or `wandb` (imported, used only for logging to wandb), the runner
installs minimal stand-ins and says so in the output (`reference_env`). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import say

ROOT = Path(__file__).resolve().parents[1]
RESOLUTION = 32  # pixels; the VAE halves it: 16x16x4 latents
CHARS = "abcdefghijklmnopqrstuvwxyz"

# --------------------------------------------------------------------------------------------------
# Fixtures: a tiny latent pipeline and a Pick-a-Pic style dataset
# --------------------------------------------------------------------------------------------------


def build_pipeline_dir(directory: Path, *, seed: int = 0) -> Path:
    """A tiny StableDiffusionPipeline saved in diffusers' layout (unet, vae, text_encoder, tokenizer,
    scheduler). The tokenizer is a real CLIPTokenizer over single letters, written offline."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = ["<|startoftext|>", "<|endoftext|>", *CHARS, *(c + "</w>" for c in CHARS)]
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=[], model_max_length=32)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=RESOLUTION // 2,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=RESOLUTION,
    )
    scheduler = DDPMScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(directory)
    return directory


def build_dataset_dir(directory: Path, *, rows: int, seed: int = 0) -> Path:
    """`train.parquet` with Pick-a-Pic v2 columns: JPEG bytes of two shapes-world renders of the
    caption, `label_0` 1.0 or 0.0 (no ties: the diffusers script would read a tie as 'image 0 wins')."""
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from training.shapes import grammar, render

    rng = np.random.default_rng(seed)

    def jpeg(spec) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(render.render_image(spec, rng)).save(buffer, format="JPEG", quality=95)
        return buffer.getvalue()

    specs = [grammar.sample_prompt(rng) for _ in range(rows)]
    table = pa.table(
        {
            "jpg_0": [jpeg(s) for s in specs],
            "jpg_1": [jpeg(grammar.sample_prompt(rng)) for _ in specs],
            "label_0": [float(rng.integers(0, 2)) for _ in specs],
            "caption": [s.text for s in specs],
        }
    )
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, directory / "train.parquet")
    return directory


# --------------------------------------------------------------------------------------------------
# Workers (each run is a process of its own)
# --------------------------------------------------------------------------------------------------


def _worker_ours(args: argparse.Namespace) -> None:
    import io

    import numpy as np
    import pyarrow.parquet as pq
    import torch
    from PIL import Image

    from training.algorithms.dpo import DPOConfig, pair_from_labels, train_dpo
    from training.algorithms.loading import load_generator

    torch.set_num_threads(args.threads)
    table = pq.read_table(Path(args.data) / "train.parquet").to_pylist()

    def decode(data: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    pairs = [pair_from_labels(r["caption"], decode(r["jpg_0"]), decode(r["jpg_1"]), r["label_0"]) for r in table]
    pairs = [p for p in pairs if p is not None]
    policy = load_generator(args.model)
    # The reference's settings: LoRA rank 4 (alpha = rank) on to_q/k/v/out, AdamW lr 5e-4, weight decay
    # 1e-2, clip 1.0, constant lr, beta 2500 (its --beta_dpo in the same convention), no prompt dropout.
    config = DPOConfig(
        steps=args.steps,
        batch_size=args.batch,
        lr=5e-4,
        beta=2500.0,
        lora_rank=4,
        weight_decay=1e-2,
        max_grad_norm=1.0,
        uncond_rate=0.0,
        cache_encodings=args.cache,
    )
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as run_dir:
        train_dpo(config, policy, pairs, run_dir=run_dir, on_step=lambda info: stamps.append(time.perf_counter()))
    Path(args.out).write_text(json.dumps({"stamps": stamps}))


_STANDIN_NOTE = "minimal stand-in (PIL resize/crop/flip, to-tensor, normalise) installed by the bench runner"


def _install_torchvision_standin() -> None:
    """A `torchvision.transforms` with the few PIL-image transforms the reference script uses."""
    import types

    import numpy as np
    import torch
    from PIL import Image, ImageOps

    class Compose:
        def __init__(self, steps):
            self.steps = steps

        def __call__(self, x):
            for step in self.steps:
                x = step(x)
            return x

    class Resize:  # an int size: the shorter side becomes `size`, aspect ratio kept (torchvision's rule)
        def __init__(self, size, interpolation=Image.BILINEAR):
            self.size, self.interpolation = size, interpolation

        def __call__(self, img):
            w, h = img.size
            scale = self.size / min(w, h)
            new = (max(1, round(w * scale)), max(1, round(h * scale)))
            return img if new == (w, h) else img.resize(new, self.interpolation)

    class CenterCrop:
        def __init__(self, size):
            self.size = size

        def __call__(self, img):
            w, h = img.size
            left, top = round((w - self.size) / 2), round((h - self.size) / 2)
            return img.crop((left, top, left + self.size, top + self.size))

    class RandomCrop(CenterCrop):
        def __call__(self, img):
            w, h = img.size
            left = int(torch.randint(0, w - self.size + 1, (1,)))
            top = int(torch.randint(0, h - self.size + 1, (1,)))
            return img.crop((left, top, left + self.size, top + self.size))

    class Lambda:
        def __init__(self, fn):
            self.fn = fn

        def __call__(self, x):
            return self.fn(x)

    class RandomHorizontalFlip:
        def __init__(self, p=0.5):
            self.p = p

        def __call__(self, img):
            return ImageOps.mirror(img) if torch.rand(1).item() < self.p else img

    class ToTensor:
        def __call__(self, img):
            return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()

    class Normalize:
        def __init__(self, mean, std):
            self.mean, self.std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]

        def __call__(self, x):
            return (x - self.mean) / self.std

    import importlib.machinery

    transforms = types.ModuleType("torchvision.transforms")
    transforms.__spec__ = importlib.machinery.ModuleSpec("torchvision.transforms", None)
    transforms.InterpolationMode = types.SimpleNamespace(BILINEAR=Image.BILINEAR)
    for cls in (Compose, Resize, CenterCrop, RandomCrop, Lambda, RandomHorizontalFlip, ToTensor, Normalize):
        setattr(transforms, cls.__name__, cls)
    package = types.ModuleType("torchvision")
    package.__spec__ = importlib.machinery.ModuleSpec("torchvision", None, is_package=True)
    package.transforms = transforms
    sys.modules["torchvision"], sys.modules["torchvision.transforms"] = package, transforms


def _importable(name: str) -> str | None:
    """None when `import name` works, else the reason."""
    if importlib.util.find_spec(name) is None:
        return "not installed"
    try:
        __import__(name)
    except Exception as exc:  # e.g. a CUDA torchvision wheel beside a CPU torch
        return f"{type(exc).__name__}: {exc}"
    return None


def _worker_reference(args: argparse.Namespace) -> None:
    """Run the reference script unmodified (runpy), stamping each optimisation step's end."""
    import importlib.machinery
    import runpy
    import types

    env: dict[str, str] = {}
    reason = _importable("torchvision")
    if reason is not None:
        sys.modules.pop("torchvision", None)
        # transformers and diffusers cache "is torchvision available?" on first ask: ask them first, with
        # the real environment (no), so the stand-in only serves the script's own import.
        import diffusers.utils
        import transformers.utils

        transformers.utils.is_torchvision_available()
        diffusers.utils.is_torchvision_available()
        _install_torchvision_standin()
        env["torchvision"] = f"{_STANDIN_NOTE} ({reason.splitlines()[0][:160]})"
    if _importable("wandb") is not None:
        wandb = types.ModuleType("wandb")  # imported at the top, used only to log to wandb
        wandb.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
        sys.modules["wandb"] = wandb
        env["wandb"] = "empty module (not installed; only used when reporting to wandb)"

    import torch
    import tqdm.auto

    torch.set_num_threads(args.threads)
    stamps: list[float] = []

    class StampedTqdm(tqdm.auto.tqdm):
        def update(self, n=1):
            result = super().update(n)
            stamps.append(time.perf_counter())
            return result

    tqdm.auto.tqdm = StampedTqdm
    sys.argv = [args.reference, *json.loads(args.reference_args)]
    try:
        runpy.run_path(args.reference, run_name="__main__")
    finally:
        Path(args.out).write_text(json.dumps({"stamps": stamps, "env": env}))


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------


def _reference_args(model: Path, data: Path, output: Path, *, steps: int, batch: int) -> list[str]:
    return [
        f"--pretrained_model_name_or_path={model}",
        f"--dataset_name={data}",
        "--dataset_split_name=train",
        f"--output_dir={output}",
        f"--resolution={RESOLUTION}",
        f"--train_batch_size={batch}",
        f"--max_train_steps={steps}",
        "--checkpointing_steps=1000000000",
        "--learning_rate=5e-4",
        "--lr_scheduler=constant",
        "--lr_warmup_steps=0",
        "--rank=4",
        "--beta_dpo=2500",
        "--loss_type=sigmoid",
        "--no_hflip",
        "--mixed_precision=no",
        "--seed=0",
        "--dataloader_num_workers=0",
    ]


def _env(threads: int, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HOME": str(workdir / "hf-home"),  # the datasets cache stays in the work directory
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
        }
    )
    return env


def _steady_rate(stamps: list[float], *, batch: int, skip: int) -> float:
    """Pairs/s over the steps after the first `skip` (startup and first-step allocation excluded)."""
    if len(stamps) <= skip + 1:
        raise RuntimeError(f"only {len(stamps)} steps were stamped; need more than {skip + 1}")
    return batch * (len(stamps) - 1 - skip) / (stamps[-1] - stamps[skip])


def _run_worker(kind: str, args, workdir: Path, python: str, extra: list[str]) -> dict:
    out = workdir / f"{kind}-{time.monotonic_ns()}.json"
    cmd = [
        python,
        "-m",
        "bench.train_throughput",
        f"--_worker={kind}",
        f"--_out={out}",
        f"--threads={args.threads}",
        f"--steps={args.steps}",
        f"--batch={args.batch}",
        *extra,
    ]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(args.threads, workdir), capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not out.is_file():
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RuntimeError(f"{kind} run failed (exit {proc.returncode}):\n{tail}")
    record = json.loads(out.read_text())
    rate = _steady_rate(record["stamps"], batch=args.batch, skip=args.skip)
    return {"pairs_per_s": rate, "wall_s": wall, "steps": len(record["stamps"]), "env": record.get("env", {})}


def measure(args) -> dict:
    if args.workdir:
        return _measure_in(args, Path(args.workdir))
    with tempfile.TemporaryDirectory(prefix="dpo-throughput-") as workdir:
        return _measure_in(args, Path(workdir))


def _measure_in(args, workdir: Path) -> dict:
    model = build_pipeline_dir(workdir / "model")
    data = build_dataset_dir(workdir / "data", rows=args.rows)
    reference = Path(args.reference) if args.reference else None
    notes: list[str] = []
    kinds = ["ours", "ours_per_step_encode"]
    if reference is None or not reference.is_file():
        notes.append(
            f"reference script not found ({args.reference or 'no --reference given'}): comparison skipped. "
            "Extract it from a diffusers checkout: git show HEAD:examples/research_projects/diffusion_dpo/"
            "train_diffusion_dpo.py > /tmp/ref_dpo/train_diffusion_dpo.py, and pass --reference."
        )
    else:
        kinds.append("reference")
    common = [f"--model={model}", f"--data={data}"]
    extra = {
        "ours": common,
        "ours_per_step_encode": [*common, "--no-cache"],
        "reference": [
            f"--reference={reference}",
            "--reference-args="
            + json.dumps(_reference_args(model, data, workdir / "ref-out", steps=args.steps, batch=args.batch)),
        ],
    }
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for r in range(args.repeats):
        order = kinds if r % 2 == 0 else kinds[::-1]  # neither always runs first
        for kind in order:
            python = args.reference_python if kind == "reference" else sys.executable
            runs[kind].append(_run_worker(kind, args, workdir, python, extra[kind]))
            say(f"repeat {r + 1} {kind:>22}: {runs[kind][-1]['pairs_per_s']:.2f} pairs/s")
    medians = {k: statistics.median(x["pairs_per_s"] for x in v) for k, v in runs.items()}
    result = {
        "benchmark": "diffusion-dpo training throughput (pairs/s, steady state)",
        "config": {
            "pipeline": "tiny StableDiffusionPipeline: UNet (32, 64), VAE (16, 32), CLIP text 2x32",
            "resolution": RESOLUTION,
            "batch_pairs": args.batch,
            "steps": args.steps,
            "timed_steps": args.steps - 1 - args.skip,
            "threads": args.threads,
            "repeats": args.repeats,
            "dataset_rows": args.rows,
            "lora_rank": 4,
            "reference": str(reference) if "reference" in kinds else None,
        },
        "runs": {k: [round(x["pairs_per_s"], 3) for x in v] for k, v in runs.items()},
        "median_pairs_per_s": {k: round(v, 3) for k, v in medians.items()},
        "notes": notes,
    }
    if "reference" in kinds:
        result["reference_env"] = runs["reference"][0]["env"]
        result["ratio"] = round(medians["ours"] / medians["reference"], 3)
        result["ratio_per_step_encode"] = round(medians["ours_per_step_encode"] / medians["reference"], 3)
        result["target_ratio"] = 1.0
        result["met"] = result["ratio"] >= 1.0
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=None, help="path to diffusers' train_diffusion_dpo.py")
    parser.add_argument("--reference-python", default=sys.executable, help="interpreter for the reference")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--skip", type=int, default=5, help="first steps left out of the timing")
    parser.add_argument("--batch", type=int, default=4, help="pairs per step")
    parser.add_argument("--rows", type=int, default=64, help="pairs in the dataset")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP threads per run")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    # Worker mode (used by the driver for each run).
    parser.add_argument("--_worker", choices=["ours", "ours_per_step_encode", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--_out", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", dest="cache", action="store_false", help=argparse.SUPPRESS)
    parser.add_argument("--reference-args", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker:
        args.out = args._out
        (_worker_reference if args._worker == "reference" else _worker_ours)(args)
        return 0
    if args.steps <= args.skip + 1:
        parser.error("--steps must exceed --skip + 1")
    result = measure(args)
    if not args.json:
        for kind, value in result["median_pairs_per_s"].items():
            print(f"{kind:>22}: {value:.2f} pairs/s (median of {args.repeats})")
        if "ratio" in result:
            print(f"ours / reference: {result['ratio']:.2f} (per-step encode: {result['ratio_per_step_encode']:.2f})")
        for note in result["notes"]:
            print(note)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
