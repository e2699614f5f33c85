"""Alignment benchmark, Diffusion-DPO: `python -m bench.alignment_dpo --json [--base PATH]`
(also `python -m bench.alignment --algo dpo`, which calls :func:`run`).

The whole loop on the shapes world, without a database: the base policy generates two samples for
each of `--judgments` training prompts (default 2,000), a simulated annotator of accuracy 0.85 judges
each pair by the verifier (`training.shapes.raters.rater_choice`; ties dropped), Diffusion-DPO trains a
LoRA adapter on the pairs, and the verifier judges the trained model against the base on held-out
prompts (the fixed evaluation prompts of the modality, which the training prompts exclude), sample
against sample with the same seed. Win rate = P(trained scores higher) + 0.5 P(equal). Target >= 0.65.
The result also splits the verdicts by task (`by_task`). `--train-prompts balanced` draws the training
prompts of every image task equally often (by default the evaluation prompts leave only counting,
position and colour attribution to train on); the result lists the tasks trained on their evaluation
prompts, with other seeds, in `held_out.seeds_only_tasks`.

`--eval-scales 1,2,4` also judges the trained model with its LoRA update multiplied by each scale
(`by_scale`; the headline stays at scale 1): whether the adapter's direction helps beyond its trained
size. `--plot FILE.svg` draws the training steps (`bench.plot`). `--adapter DIR` skips the judgments
and the training and judges a saved LoRA adapter against `--base` by the same verdict, so an adapter
trained any other way (a GRPO run's `--keep-adapters`, say) is measured on the same scale. `--device
cuda` runs the model on a GPU; the verifier and the simulated raters stay on the CPU.

The base defaults to the shipped `training/weights/shapes-image-eps`; where it is missing a randomly
initialised pipeline of the same architecture is used and the output says so (its samples are noise,
verifier scores are near 0, so nearly every pair is a tie or a coin flip and no win rate above 0.5 can be
expected: that run checks the plumbing and the timings, not the method). Both models are sampled with
the same deterministic sampler (DDIM or flow Euler, `--sample-steps`). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import add_options, option, say, say_every
from bench.plot import check_path, plot_after_run

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BASE = ROOT / "training" / "weights" / "shapes-image-eps"
MODALITY = {"image": "image", "video": "video", "views": "multiview"}
TARGET_WIN_RATE = 0.65

# option -> (default, type, help); also read by `bench.alignment`'s dispatcher through add_arguments.
OPTIONS: dict[str, tuple[object, type, str]] = {
    "base": (None, str, "base pipeline directory (default: the shipped shapes-image-eps, else a random one)"),
    "judgments": (2000, int, "simulated judgments (pairs before ties are dropped)"),
    "accuracy": (0.85, float, "simulated annotator accuracy"),
    "sample_steps": (20, int, "sampler steps for the judged and the evaluated samples"),
    "eval_seeds": (2, int, "samples per held-out prompt and model"),
    "eval_prompts": (0, int, "held-out prompts (0: all of the modality's evaluation prompts)"),
    "dpo_steps": (300, int, "Diffusion-DPO optimisation steps"),
    "batch": (16, int, "pairs per step"),
    "micro_batch": (0, int, "pairs per forward within a step, the gradient accumulated (0: the whole batch)"),
    "lr": (3e-4, float, "learning rate"),
    "beta": (2500.0, float, "DPO beta (diffusers SD1.5 convention)"),
    "rank": (8, int, "LoRA rank"),
    "train_prompts": (
        "held-out",
        str,
        "held-out: the grammar's own draws, evaluation prompts excluded (images: counting, position and colour "
        "attribution only, half of them position); balanced: as bench.alignment_rl's --train-prompts balanced",
    ),
    "seed": (0, int, "seed of prompts, samples, judgments and training"),
    "eval_scales": (
        "1",
        str,
        "LoRA scales to judge the trained model at, comma-separated (2: the adapter applied twice as strongly); "
        "the headline win rate is always scale 1",
    ),
    "threads": (0, int, "torch threads (0: leave torch's default)"),
    "plot": (None, str, "SVG file to draw the loss, implicit accuracy and error gap over the steps in (bench.plot)"),
    "adapter": (
        None,
        str,
        "judge this saved LoRA adapter (Policy.save_adapter, e.g. a GRPO run's --keep-adapters) against --base "
        "instead of training one: no judgments, no DPO",
    ),
    "device": ("cpu", str, "where the model runs: cpu or cuda (the verifier and simulated annotators stay on the CPU)"),
    "mixed_precision": (
        "no",
        str,
        "no or bf16: the DPO forwards autocast (judging and evaluation in fp32"
        "; bf16 pays only where the device computes it natively, which the result's bf16_native says: "
        "a CPU without it emulates bf16, about 13x slower)",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS)


def _option(args, name: str):
    return option(args, OPTIONS, name)


def _load_base(path: str | None, device: str = "cpu", adapter: str | None = None):
    """(policy, description): the given or shipped base, else a random pipeline of the same architecture;
    with `adapter`, that saved LoRA adapter loaded into it (the base is the adapter disabled)."""
    import torch

    from training.algorithms.builders import build_pipeline
    from training.algorithms.loading import load_generator, policy_from_pipeline
    from training.shapes import grammar

    if path is not None:
        return load_generator(str(path), device=device, adapter=adapter), f"{path}"
    if (DEFAULT_BASE / "model_index.json").is_file():
        policy = load_generator(str(DEFAULT_BASE), device=device, adapter=adapter)
        return policy, f"shipped {DEFAULT_BASE.relative_to(ROOT)}"
    if adapter is not None:
        raise FileNotFoundError(f"no base to judge {adapter} against: {DEFAULT_BASE} is missing; pass --base")
    pipe = build_pipeline("shapes-image-eps", grammar.vocabulary(), seed=0).to(device)
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    note = "randomly initialised shapes-image-eps (no shipped weights): samples are noise, expect no gain"
    return policy_from_pipeline(pipe, source="shapes-image-eps"), note


def _training_specs(modality: str, held_out: set[str], n: int, seed: int, mode: str = "held-out") -> list:
    """`n` random grammar prompts of the modality. ``held-out``: the grammar's own draws, none of them an
    evaluation prompt; ``balanced``: uniform draws from :func:`bench.alignment_rl.prompt_sets`'s balanced
    list (every task equally often; where a task has only evaluation prompts it trains on those)."""
    import numpy as np

    from bench.alignment_rl import prompt_sets
    from training.shapes import grammar

    rng = np.random.default_rng(seed)
    if mode != "held-out":
        pool, _, _ = prompt_sets(modality, None, mode)
        return [pool[i] for i in rng.integers(len(pool), size=n)]
    specs = []
    while len(specs) < n:
        spec = grammar.sample_prompt(rng, modality=modality)
        if spec.text not in held_out:
            specs.append(spec)
    return specs


def win_rate(trained: list[float], base: list[float]) -> dict:
    """Trained-vs-base verdicts on the same prompts and seeds: wins, ties, losses and the win rate
    (ties count half)."""
    wins = sum(t > b for t, b in zip(trained, base, strict=True))
    ties = sum(t == b for t, b in zip(trained, base, strict=True))
    n = len(trained)
    decisive = n - ties
    return {
        "win_rate": (wins + 0.5 * ties) / n if n else 0.5,
        "wins": wins,
        "ties": ties,
        "losses": n - wins - ties,
        "win_rate_decisive": wins / decisive if decisive else None,
    }


def eval_scales(value) -> list[float]:
    """``--eval-scales``: a comma-separated string (or a sequence) of positive finite LoRA scales,
    duplicates dropped, scale 1 (the headline) always first."""
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        scales = [float(item) for item in items if str(item).strip()]
    except ValueError:
        raise ValueError(f"--eval-scales must be comma-separated numbers, got {value!r}") from None
    bad = [s for s in scales if not (math.isfinite(s) and s > 0)]
    if bad:
        raise ValueError(f"--eval-scales must be positive and finite, got {bad}")
    return list(dict.fromkeys([1.0, *scales]))


def _scores(policy, specs, seeds, steps: int) -> list[float]:
    from training.algorithms.sampling import generate
    from training.shapes import verify

    media = generate(policy, [s.text for s in specs], seeds=seeds, steps=steps, batch_size=64)
    return [float(verify.verify(s, m).score) for s, m in zip(specs, media, strict=True)]


def _judge(policy, eval_specs, seeds_per_prompt: int, steps: int, scales: list[float]) -> tuple[dict, bool]:
    """The policy against itself with its adapter disabled (the base) on held-out prompts, sample against
    sample with the same seed: the headline verdict at scale 1, split by task and judged at each scale,
    and whether the unrounded headline meets the target."""
    import numpy as np

    from training.algorithms.lora import adapter_scaled

    eval_jobs = [(s, 10_000_000 + 1000 * i + k) for i, s in enumerate(eval_specs) for k in range(seeds_per_prompt)]
    jobs_specs, jobs_seeds = [s for s, _ in eval_jobs], [k for _, k in eval_jobs]
    trained = _scores(policy, jobs_specs, jobs_seeds, steps)
    with policy.disable_adapter():  # the same network without its adapter is the base
        base = _scores(policy, jobs_specs, jobs_seeds, steps)
    by_scale = {}
    for scale in scales:
        if scale == 1.0:
            scored = trained
        else:
            with adapter_scaled(policy.denoiser, scale):
                scored = _scores(policy, jobs_specs, jobs_seeds, steps)
        accuracy, mean = float(np.mean([s >= 1.0 for s in scored])), float(np.mean(scored))
        by_scale[f"{scale:g}"] = _rounded(win_rate(scored, base) | {"accuracy": accuracy, "mean_score": mean})
    by_task = {}
    for task in dict.fromkeys(s.task for s in jobs_specs):
        mine = [i for i, s in enumerate(jobs_specs) if s.task == task]
        by_task[task] = _rounded(win_rate([trained[i] for i in mine], [base[i] for i in mine]))
    headline = win_rate(trained, base)
    verdict = {
        **_rounded(headline),
        # per task of the held-out prompts: where the wins and the losses are
        "by_task": by_task,
        # the same samples judged with the adapter scaled (`--eval-scales`); "1" is the headline
        "by_scale": by_scale,
        "base_mean_score": round(float(np.mean(base)), 4),
        "trained_mean_score": round(float(np.mean(trained)), 4),
        "base_accuracy": round(float(np.mean([s >= 1.0 for s in base])), 4),
        "trained_accuracy": round(float(np.mean([s >= 1.0 for s in trained])), 4),
    }
    return verdict, headline["win_rate"] >= TARGET_WIN_RATE


def _train(policy, args, modality: str, evaluated: set[str], times: dict) -> dict:
    """Simulated judgments of the base's own samples, then Diffusion-DPO on them (the adapter is left in
    `policy`): the judgments, the config, the training prompts and every step, for the result."""
    from training.algorithms.dpo import DPOConfig, simulated_pairs, train_dpo

    seed, steps = _option(args, "seed"), _option(args, "sample_steps")
    mode = _option(args, "train_prompts")
    specs = _training_specs(modality, evaluated, _option(args, "judgments"), seed, mode)
    say(f"sampling two images for each of {len(specs)} training prompts and judging them")
    t0 = time.perf_counter()
    pairs, judged = simulated_pairs(policy, specs, seed=seed, accuracy=_option(args, "accuracy"), steps=steps)
    times["generate_and_judge_s"] = time.perf_counter() - t0
    if not pairs:
        raise RuntimeError(f"every one of {judged['judgments']} judgments was a tie: nothing to train on")
    judged_s, dpo_steps = times["generate_and_judge_s"], _option(args, "dpo_steps")
    say(f"{len(pairs)} pairs in {judged_s:.0f} s; Diffusion-DPO for {dpo_steps} steps")

    config = DPOConfig(
        steps=dpo_steps,
        batch_size=_option(args, "batch"),
        micro_batch=_option(args, "micro_batch"),
        lr=_option(args, "lr"),
        beta=_option(args, "beta"),
        lora_rank=_option(args, "rank"),
        uncond_rate=0.1,  # as the bases were trained: keeps the empty prompt's prediction calibrated
        seed=seed,
        mixed_precision=_option(args, "mixed_precision"),
    )
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dpo-") as run_dir:
        history = train_dpo(config, policy, pairs, run_dir=run_dir, on_step=say_every(50, _describe)).history
    times["train_s"] = time.perf_counter() - t0
    say(f"trained in {times['train_s']:.0f} s")
    return {
        "judgments": judged,
        "config": config.to_dict() | {"sample_steps": steps, "annotator_accuracy": _option(args, "accuracy")},
        "train_prompts": mode,
        "train_tasks": dict(Counter(s.task for s in specs)),
        # evaluated tasks that trained on their evaluation prompts (other seeds)
        "seeds_only_tasks": sorted({s.task for s in specs if s.text in evaluated}),
        "train_first": {k: round(v, 5) for k, v in history[0].items()} if history else {},
        "train_last": {k: round(v, 5) for k, v in history[-1].items()} if history else {},
        # every step, for the plot: the loss, the implicit accuracy and the policy's MSE minus the reference's
        "steps": [
            {
                "step": h["step"],
                "loss": float(f"{h['loss']:.5g}"),
                "implicit_acc": float(f"{h['implicit_acc']:.5g}"),
                "mse_gap": float(f"{h['model_mse'] - h['ref_mse']:.5g}"),
            }
            for h in history
        ],
    }


def run(args) -> dict:
    """Run the benchmark; `args` is an argparse namespace or a dict (missing options take defaults)."""
    import torch

    from training.algorithms.loading import native_bf16
    from training.shapes import evaluate

    scales = eval_scales(_option(args, "eval_scales"))  # refused before any work
    if _option(args, "threads"):
        torch.set_num_threads(_option(args, "threads"))
    times: dict[str, float] = {}
    started = time.perf_counter()
    adapter = _option(args, "adapter")
    policy, base_note = _load_base(_option(args, "base"), _option(args, "device"), adapter)
    modality = MODALITY[policy.modality]
    eval_specs = evaluate.eval_specs(modality)
    if _option(args, "eval_prompts"):
        eval_specs = eval_specs[: _option(args, "eval_prompts")]
    say(f"{base_note}" + (f" with the adapter in {adapter}" if adapter else ""))
    if adapter is None:
        trained = _train(policy, args, modality, {s.text for s in eval_specs}, times)
    else:  # judged as it is: nothing generated for training, nothing trained
        trained = {
            "judgments": None,
            "config": None,
            "train_prompts": None,
            "train_tasks": {},
            "seeds_only_tasks": [],
            "train_first": {},
            "train_last": {},
            "steps": [],
        }

    say("judging the trained model against the base on held-out prompts")
    t0 = time.perf_counter()
    steps, seeds = _option(args, "sample_steps"), _option(args, "eval_seeds")
    verdict, met = _judge(policy, eval_specs, seeds, steps, scales)
    times["evaluate_s"] = time.perf_counter() - t0
    times["total_s"] = time.perf_counter() - started
    config = trained["config"]
    return {
        "benchmark": "alignment: Diffusion-DPO on simulated judgments (shapes world)",
        "algo": "dpo",
        "base": base_note,
        "adapter": adapter,
        "modality": modality,
        "device": str(policy.device),
        "bf16_native": native_bf16(policy.device),  # whether --mixed-precision bf16 can be fast here
        "judgments": trained["judgments"],
        "config": config or {"sample_steps": steps},
        "held_out": {
            "prompts": len(eval_specs),
            "samples_per_model": len(eval_specs) * seeds,
            "train_prompts": trained["train_prompts"],
            "train_tasks": trained["train_tasks"],
            "seeds_only_tasks": trained["seeds_only_tasks"],
        },
        **verdict,
        "train_first": trained["train_first"],
        "train_last": trained["train_last"],
        "steps": trained["steps"],
        "target_win_rate": TARGET_WIN_RATE,
        "met": met,
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }


def _rounded(verdict: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in verdict.items()}


def _describe(info) -> str:
    """The DPO loss and implicit accuracy of a step, for the progress lines."""
    loss, acc = info.metrics.get("loss", 0.0), info.metrics.get("implicit_acc", 0.0)
    return f"  step {info.step}/{info.total}: loss {loss:.4f}, implicit accuracy {acc:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args(argv)
    check_path(parser, args.plot)
    if args.plot and args.adapter:
        parser.error("--plot draws the training steps; with --adapter nothing is trained")
    try:
        eval_scales(args.eval_scales)
    except ValueError as error:
        parser.error(str(error))
    result = run(args)
    if not args.json:
        print(f"base: {result['base']}")
        print(f"adapter: {result['adapter']}" if result["adapter"] else f"judgments: {result['judgments']}")
        print(
            f"win rate {result['win_rate']:.3f} (target {TARGET_WIN_RATE}); "
            f"mean score {result['base_mean_score']:.3f} -> {result['trained_mean_score']:.3f}; "
            f"seconds {result['seconds']}"
        )
        for task, v in result["by_task"].items():
            print(f"  {task}: win rate {v['win_rate']:.3f} ({v['wins']} wins, {v['ties']} ties, {v['losses']} losses)")
        for scale, v in result["by_scale"].items():
            print(
                f"  adapter x{scale}: win rate {v['win_rate']:.3f} ({v['wins']} wins, {v['ties']} ties, "
                f"{v['losses']} losses), accuracy {v['accuracy']:.3f}"
            )
    print(json.dumps(result), flush=True)
    return plot_after_run(result, args.plot)


if __name__ == "__main__":
    sys.exit(main())
