"""Alignment benchmark, GRPO and PPO/DDPO: `python -m bench.alignment_rl --algo grpo|ppo --json
[--modality image|video|multiview] [--family eps|flow] [--base PATH] [--minutes M]`
(also `python -m bench.alignment --algo grpo|ppo`, which calls :func:`main`).

Online RL on the shapes world, without a database. The base policy (`--base`, default the shipped
`training/weights/shapes-<modality>[-<family>]`) gets a LoRA adapter trained for `--minutes` of
wall time on grammar prompts of its modality that exclude the evaluation prompts (multi-view has
only its 16 evaluation prompts, so there it trains on them and says so). For images that leaves
three of the six tasks, mostly position prompts; `--train-prompts balanced` draws every task equally
often instead, training the three small tasks on their evaluation prompts (new seeds):

- `--algo grpo`: GRPO with the verifier's score as the reward (the fraction of the prompt's clauses
  that hold), or with `--verifier-reward strict` its all-or-nothing verdict, the accuracy that is
  evaluated; the score of the same rollouts is then reported beside it, as for a learned reward;
- `--algo ppo`: DDPO with a learned reward model (`--reward-model DIR`, loaded with
  `training.algorithms.reward_model.load_reward_model`) or, without one, the verifier. With a
  learned reward the verifier also scores every rollout, so the output shows both over training:
  a learned reward that rises while the verifier does not is over-optimisation of the model.

Reported: verifier accuracy (all clauses hold, GenEval style) and mean score on the held-out
prompts before and after, their curve over wall time (evaluated every `--eval-every` minutes),
diversity before and after (mean pairwise distance of a prompt's samples: a collapse shows here
even when accuracy rises), the KL to the base, and the per-step training figures. Evaluation
samples deterministically (DDIM / flow Euler, `--eval-steps`); rollouts use DDIM with eta 1 or the
flow SDE. `--steps N` stops after N steps (the wall-time budget still applies); `--keep-adapters DIR`
saves the adapter at every evaluation and at the end (DIR/step-N), so any point of the curve can be
examined again; `--plot FILE.svg` draws the curve, the rollout reward and the KL (`bench.plot`, which
also plots a saved result), redrawn at every evaluation so that a long run can be watched. Where the
base weights are missing a randomly initialised pipeline of the same architecture is used and the
output says so: its samples are noise, verifier scores are near 0, almost every group has zero spread
and little is trained; that run checks plumbing and timings only.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from bench import add_options, option, say
from bench.plot import check_path, plot_after_run

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "training" / "weights"
MODALITY = {"image": "image", "video": "video", "views": "multiview"}
TRAIN_PROMPTS = ("held-out", "balanced")

# option -> (default, type, help); also read by `bench.alignment`'s dispatcher through add_arguments.
OPTIONS: dict[str, tuple[object, type, str]] = {
    "modality": ("image", str, "image, video or multiview (ignored with --base)"),
    "family": ("eps", str, "eps or flow, for images (ignored with --base)"),
    "base": (None, str, "base pipeline directory (default: the shipped one for modality/family)"),
    "minutes": (30.0, float, "wall-time budget of training, evaluations included"),
    "steps": (0, int, "stop after this many RL steps, or at the wall-time budget if sooner (0: budget only)"),
    "eval_every": (5.0, float, "minutes between held-out evaluations (the accuracy curve)"),
    "eval_prompts": (0, int, "held-out prompts per task for images, in total otherwise (0: 4 per task / all)"),
    "eval_samples": (2, int, "samples per held-out prompt (>= 2 for diversity)"),
    "eval_steps": (20, int, "deterministic sampler steps for evaluation"),
    "sample_steps": (10, int, "stochastic sampler steps of the rollouts"),
    # 16 x 16 = 256 rollouts per update: with 32 the gradient is mostly noise and nothing moves
    # (docs/training.md, "GRPO moves the shipped bases once each update sees enough rollouts")
    "prompts_per_step": (16, int, "prompts per RL step"),
    "group_size": (16, int, "rollouts per prompt (GRPO group, DDPO samples per prompt)"),
    "lr": (1e-3, float, "learning rate (LoRA)"),
    "kl_beta": (None, float, "KL weight (default 0.04 GRPO, 0.01 PPO)"),
    "clip_range": (1e-4, float, "PPO clip range of the ratio (per-dimension mean log-probs)"),
    "inner_epochs": (1, int, "passes over each step's rollouts"),
    "timestep_fraction": (None, float, "trained share of denoising steps (default 0.7 eps, 1.0 flow or windowed)"),
    "sde_window": (0, int, "stochastic (and trained) first steps of each rollout; 0: all steps"),
    "same_start": (0, int, "GRPO: 1 gives a group one x_T, so rewards differ only by the trained noise"),
    "noise_block": (
        1,
        int,
        "step noise on noise_block x noise_block tiles only (1: every dimension; 8 leaves 48 of a 3x32x32 "
        "image's 3,072): less gradient variance where the reward is decided at the scale of objects",
    ),
    "rank": (8, int, "LoRA rank"),
    "guidance": (1.0, float, "classifier-free guidance of rollouts and evaluation"),
    "reward_model": (None, str, "PPO: learned reward model directory (default: the verifier)"),
    "verifier_reward": (
        "score",
        str,
        "the verifier as the reward: score (the fraction of the prompt's clauses that hold) or strict (1 only "
        "when all hold: the accuracy that is evaluated)",
    ),
    "train_prompts": (
        "held-out",
        str,
        "held-out: the modality's grammar prompts that are not evaluation prompts, uniformly (images: counting, "
        "position, colour attribution only, 82%% position); balanced (images): every task equally often, tasks "
        "whose every prompt is evaluated (single object, two objects, colours) trained on those, seeds held out",
    ),
    "seed": (0, int, "seed of prompts, rollouts and the adapter"),
    "keep_adapters": (None, str, "directory to save the adapter in at every evaluation (step-N/), the final one too"),
    "threads": (0, int, "torch threads (0: leave torch's default)"),
    "plot": (None, str, "SVG file to draw the curve, the rollout reward and the KL in (see bench.plot)"),
    "device": ("cpu", str, "where the policy runs: cpu or cuda (rewards and the verifier stay on the CPU)"),
    "mixed_precision": (
        "no",
        str,
        "no or bf16: rollouts and training forwards autocast (held-out evaluation in fp32"
        "; bf16 pays only where the device computes it natively, which the result's bf16_native says: "
        "a CPU without it emulates bf16, about 13x slower)",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS)


def _option(args, name: str):
    return option(args, OPTIONS, name)


def _builtin(modality: str, family: str) -> str:
    if modality == "image":
        if family not in ("eps", "flow"):
            raise ValueError(f"--family must be eps or flow, got {family!r}")
        return f"shapes-image-{family}"
    if modality not in ("video", "multiview"):
        raise ValueError(f"--modality must be image, video or multiview, got {modality!r}")
    return f"shapes-{modality}"


def _load_base(path: str | None, modality: str, family: str, device: str = "cpu"):
    """(policy, description): the given or shipped base, else a random pipeline of the same architecture."""
    import torch

    from training.algorithms.builders import build_pipeline
    from training.algorithms.loading import load_generator, policy_from_pipeline
    from training.shapes import grammar

    if path is not None:
        return load_generator(str(path), device=device), str(path)
    name = _builtin(modality, family)
    if (WEIGHTS / name / "model_index.json").is_file():
        return load_generator(str(WEIGHTS / name), device=device), f"shipped training/weights/{name}"
    pipe = build_pipeline(name, grammar.vocabulary(), seed=0).to(device)
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    note = f"randomly initialised {name} (no shipped weights): samples are noise, expect no gain"
    return policy_from_pipeline(pipe, source=name), note


def _eval_cap(args, modality: str) -> int | None:
    """``evaluate``'s ``prompts_per_task``: per task for images (default 4), in total otherwise."""
    return _option(args, "eval_prompts") or (4 if modality == "image" else None)


def prompt_sets(modality: str, cap: int | None, mode: str = "held-out"):
    """(training specs, evaluation specs, tasks held out at the prompt level).

    ``held-out``: every grammar spec of the modality that is not an evaluation prompt, each once;
    multi-view has none left, so it trains on its evaluation prompts. For images only counting,
    position and colour attribution have specs left (16, 256 and 40), so 82% of the draws are
    position prompts. ``balanced`` (images): every task equally often; a task keeps its non-evaluation
    specs where it has some, and trains on its evaluation prompts where every spec is one (single
    object, two objects and colours have 3, 6 and 12), so for those only the seeds are held out.
    Each task's specs are repeated up to a common count, since the trainer draws uniformly."""
    from training.shapes import evaluate, grammar

    if mode not in TRAIN_PROMPTS:
        raise ValueError(f"--train-prompts must be one of {TRAIN_PROMPTS}, got {mode!r}")
    tasks = {"image": grammar.TASKS, "video": (grammar.VIDEO_TASK,), "multiview": (grammar.MULTIVIEW_TASK,)}[modality]
    eval_specs = evaluate.eval_specs(modality, prompts_per_task=cap)
    all_eval = {s.text for s in evaluate.eval_specs(modality)}
    by_task = {task: [s for s in grammar.all_specs(task) if s.text not in all_eval] for task in tasks}
    held_out = [task for task in tasks if by_task[task]]
    if mode == "held-out":
        train = [s for task in tasks for s in by_task[task]]
        if train:
            return train, eval_specs, held_out
        return list(evaluate.eval_specs(modality)), eval_specs, []
    by_task = {task: by_task[task] or grammar.all_specs(task) for task in tasks}
    common = math.lcm(*(len(specs) for specs in by_task.values()))
    return [s for specs in by_task.values() for s in specs * (common // len(specs))], eval_specs, held_out


class _Scored:
    """The training reward, plus the verifier's score of the same rollouts when they differ (the
    over-optimisation gap); keeps each call's means for the per-step report."""

    def __init__(self, reward, verifier, separate: bool) -> None:
        self.reward, self.verifier, self.separate = reward, verifier, separate
        self.calls: list[tuple[float, float]] = []

    def __call__(self, media, prompts, metadata):
        import numpy as np

        scores = np.asarray(self.reward(media, prompts, metadata), dtype=np.float64)
        checked = np.asarray(self.verifier(media, prompts, metadata)) if self.separate else scores
        self.calls.append((float(scores.mean()), float(np.mean(checked))))
        return scores


def _reward(args, algo: str) -> tuple[_Scored, str]:
    from training.algorithms.rewards import reward_model_reward, verifier_accuracy_reward, verifier_reward

    path = _option(args, "reward_model")
    if algo == "ppo" and path:
        from training.algorithms.reward_model import load_reward_model  # written alongside; loaded lazily

        return _Scored(reward_model_reward(load_reward_model(path)), verifier_reward, True), f"learned ({path})"
    kind = _option(args, "verifier_reward")
    if kind == "strict":  # the verifier's score of the same rollouts is still reported beside it
        return _Scored(verifier_accuracy_reward, verifier_reward, True), "verifier, strict"
    if kind != "score":
        raise ValueError(f"--verifier-reward must be score or strict, got {kind!r}")
    return _Scored(verifier_reward, verifier_reward, False), "verifier"


def _config(args, algo: str, family: str):
    from training.algorithms.grpo import GRPOConfig
    from training.algorithms.ppo import PPOConfig

    eps = family == "epsilon"
    window = _option(args, "sde_window")
    # with an SDE window every stochastic step is trained by default
    fraction = _option(args, "timestep_fraction") or (0.7 if eps and not window else 1.0)
    common = {
        "steps": _option(args, "steps") or 1_000_000,  # else the wall-time budget stops the run
        "prompts_per_step": _option(args, "prompts_per_step"),
        "sampler_steps": _option(args, "sample_steps"),
        "guidance": _option(args, "guidance"),
        "learning_rate": _option(args, "lr"),
        "clip_range": _option(args, "clip_range"),
        "inner_epochs": _option(args, "inner_epochs"),
        "timestep_fraction": fraction,
        # few-step DDIM: the last jumps have a tiny std and near-pure-noise gradients (see make_plan)
        "earliest_timesteps": eps and fraction < 1,
        "sde_window": window,
        "noise_block": _option(args, "noise_block"),
        "lora_rank": _option(args, "rank"),
        "seed": _option(args, "seed"),
        "mixed_precision": _option(args, "mixed_precision"),
    }
    if _option(args, "kl_beta") is not None:
        common["kl_beta"] = _option(args, "kl_beta")
    if algo == "grpo":
        same = bool(_option(args, "same_start"))
        return GRPOConfig(group_size=_option(args, "group_size"), same_initial_noise=same, **common)
    return PPOConfig(samples_per_prompt=_option(args, "group_size"), **common)


def _round(d: dict, digits: int = 4, *, significant: bool = False) -> dict:
    """Floats rounded to ``digits`` decimals, or to ``digits`` significant figures (per-step
    figures such as the KL, 1e-6 on the shipped bases, would round to 0 as decimals)."""

    def r(v: float) -> float:
        return float(f"{v:.{digits}g}") if significant else round(v, digits)

    return {k: r(v) if isinstance(v, float) else v for k, v in d.items()}


class _Progress:
    """The per-step record and the held-out accuracy curve, fed by the trainer's ``on_step``;
    ``should_stop`` ends training when the wall-time budget (evaluations included) is spent."""

    def __init__(
        self, scored: _Scored, evaluate_now, *, every_s: float, budget_s: float, before: dict, keep=None, drawn=None
    ) -> None:
        self.scored, self.evaluate_now, self.every_s, self.budget_s = scored, evaluate_now, every_s, budget_s
        self.keep = keep  # called with the step at every evaluation (saves the adapter), or None
        self.drawn = drawn  # called with self after every evaluation (redraws --plot), or None
        self.start = self.last_eval = time.perf_counter()
        self.steps: list[dict] = []
        self.before = before
        self.curve = [_point(0.0, 0, before)]
        self.latest: tuple[int, dict, dict] | None = None  # (step, evaluation, paired change) of the last point

    def minutes(self) -> float:
        return (time.perf_counter() - self.start) / 60

    def on_step(self, info) -> None:
        verified = self.scored.calls[-1][1]
        record = {"step": info.step, "minutes": self.minutes(), **info.metrics, "reward_verifier": verified}
        self.steps.append(_round(record, 5, significant=True))
        line = (
            f"[{self.minutes():5.1f} min] step {info.step}: rollout reward {info.metrics.get('reward_mean', 0.0):.3f}"
        )
        if self.scored.separate:
            line += f" (verifier {verified:.3f})"
        say(line + f", KL {info.metrics.get('kl', 0.0):.1e}")
        if time.perf_counter() - self.last_eval >= self.every_s:
            self.evaluate(info.step)
            self.last_eval = time.perf_counter()
            point = self.curve[-1]
            say(
                f"[{self.minutes():5.1f} min] held-out accuracy {point['accuracy']:.3f} "
                f"({point['gained']} samples gained, {point['lost']} lost)"
            )

    def evaluate(self, step: int, minutes: float | None = None) -> None:
        """Evaluate the current weights after ``step``, keep the adapter, add the curve point
        (at ``minutes``, default now) and record it as ``latest``."""
        from training.shapes.evaluate import paired_change

        now = self.evaluate_now()
        if self.keep is not None:
            self.keep(step)
        change = paired_change(self.before, now)
        self.curve.append(_point(self.minutes() if minutes is None else minutes, step, now, change))
        self.latest = (step, now, change)
        if self.drawn is not None:
            self.drawn(self)

    def should_stop(self) -> bool:
        return time.perf_counter() - self.start >= self.budget_s


def _point(minutes: float, step: int, e: dict, change: dict | None = None) -> dict:
    """A point of the curve; after the first, also the samples gained and lost since the start
    (``change``: :func:`~training.shapes.evaluate.paired_change` of the first evaluation and ``e``)."""
    point = {"minutes": minutes, "step": step, "accuracy": e["overall_accuracy"], "mean_score": e["mean_score"]}
    if change is not None:
        point |= {"gained": change["gained"], "lost": change["lost"]}
    return _round(point)


def _summary(e: dict) -> dict:
    tasks = {t: round(v["accuracy"], 4) for t, v in e["tasks"].items()}
    keys = {"accuracy": "overall_accuracy", "mean_score": "mean_score", "diversity": "diversity", "seconds": "seconds"}
    return _round({k: e[v] for k, v in keys.items()}) | {"tasks": tasks}


def _gap(steps: list[dict], separate: bool) -> dict | None:
    """The training reward and the verifier's score over the first and last fifth of training, when
    they differ (a learned reward model, or the strict verifier): a learned reward rising while the
    verifier does not is over-optimisation."""
    if not separate or not steps:
        return None
    window = max(1, len(steps) // 5)
    parts = {"first": steps[:window], "last": steps[-window:]}
    out = {}
    for name, part in parts.items():
        out[f"reward_{name}"] = sum(s["reward_mean"] for s in part) / len(part)
        out[f"verifier_{name}"] = sum(s["reward_verifier"] for s in part) / len(part)
    return _round(out)


def _evaluator(args, policy, modality: str, cap: int | None):
    """A function returning the held-out evaluation of the policy's current weights (timed)."""
    from training.algorithms.sampling import generate
    from training.shapes import evaluate

    steps, guidance, samples = _option(args, "eval_steps"), _option(args, "guidance"), _option(args, "eval_samples")

    def sample(prompts, seeds):
        return generate(policy, prompts, seeds=seeds, steps=steps, guidance=guidance, batch_size=64)

    def evaluate_now() -> dict:
        t0 = time.perf_counter()
        out = evaluate.evaluate(sample, modality, samples_per_prompt=samples, prompts_per_task=cap)
        return out | {"seconds": time.perf_counter() - t0}

    return evaluate_now


def run(args) -> dict:
    """Run the benchmark; `args` is an argparse namespace or a dict (missing options take defaults)."""
    import torch

    from training.algorithms.grpo import train_grpo
    from training.algorithms.loading import native_bf16
    from training.algorithms.policy_gradient import RLComponents
    from training.algorithms.ppo import train_ppo

    algo = (args.get("algo") if isinstance(args, dict) else getattr(args, "algo", None)) or "grpo"
    if algo not in ("grpo", "ppo"):
        raise ValueError(f"--algo must be grpo or ppo, got {algo!r}")
    if _option(args, "threads"):
        torch.set_num_threads(_option(args, "threads"))
    started = time.perf_counter()
    scored, reward_note = _reward(args, algo)  # a bad --verifier-reward or reward model fails before the base loads
    policy, base_note = _load_base(
        _option(args, "base"), _option(args, "modality"), _option(args, "family"), _option(args, "device")
    )
    modality = MODALITY[policy.modality]
    cap = _eval_cap(args, modality)
    train_specs, eval_specs, held_out = prompt_sets(modality, cap, _option(args, "train_prompts"))
    # balanced draws repeat each spec many times (23,040 entries for 333 specs): one entry per spec
    entries = {s.text: (s.text, {"spec": s.to_dict()}) for s in train_specs}
    data = [entries[s.text] for s in train_specs]
    config = _config(args, algo, policy.family)
    evaluate_now = _evaluator(args, policy, modality, cap)

    before = evaluate_now()
    say(
        f"{base_note}: held-out accuracy {before['overall_accuracy']:.3f} before training; {algo} for up to "
        f"{_option(args, 'minutes'):g} min"
    )
    keep_dir = _option(args, "keep_adapters")

    def keep(step: int) -> None:
        policy.save_adapter(Path(keep_dir) / f"step-{step}")

    about = {"algo": algo, "base": base_note, "modality": modality, "family": policy.family, "reward": reward_note}
    plot_path = _option(args, "plot")

    def draw(progress: _Progress) -> None:  # the plot so far, to watch a long run by
        so_far = about | {
            "curve": progress.curve,
            "steps": progress.steps,
            "reward_gap": _gap(progress.steps, scored.separate),
        }
        plot_after_run(so_far, plot_path)

    progress = _Progress(
        scored,
        evaluate_now,
        every_s=60 * _option(args, "eval_every"),
        budget_s=60 * _option(args, "minutes"),
        before=before,
        keep=keep if keep_dir else None,
        drawn=draw if plot_path else None,
    )
    train = train_grpo if algo == "grpo" else train_ppo
    with tempfile.TemporaryDirectory(prefix=f"bench-{algo}-") as run_dir:
        result = train(
            config,
            RLComponents(policy, scored),
            data,
            run_dir=run_dir,
            on_step=progress.on_step,
            should_stop=progress.should_stop,
        )
    train_s = time.perf_counter() - progress.start
    # unless the budget ran out right after an evaluation, which is then the final point
    if progress.latest is None or progress.latest[0] != result.steps:
        progress.evaluate(result.steps, train_s / 60)
    _, after, change = progress.latest
    zero_std = [s["zero_std_groups"] for s in progress.steps if "zero_std_groups" in s]
    return {
        "benchmark": f"alignment: {algo.upper()} with the {reward_note} reward (shapes world)",
        **about,
        "device": str(policy.device),
        "bf16_native": native_bf16(policy.device),  # whether --mixed-precision bf16 can be fast here
        "config": config.to_dict(),
        "held_out": {
            "held_out": bool(held_out),
            "held_out_tasks": held_out,
            "prompts": len(eval_specs),
            "train_prompts": len({s.text for s in train_specs}),
            "train_draws": _option(args, "train_prompts"),
            "samples_per_prompt": _option(args, "eval_samples"),
            "eval_steps": _option(args, "eval_steps"),
        },
        "before": _summary(before),
        "after": _summary(after),
        "accuracy_gain": round(after["overall_accuracy"] - before["overall_accuracy"], 4),
        # the same prompts and seeds before and after: which samples changed, and the sign test
        "paired": _round(change, significant=True),
        "curve": progress.curve,
        "train_steps": result.steps,
        "samples_seen": result.steps * result.summary.get("samples_per_step", 0),
        # the KL of the last step that trained (a step whose groups all lacked spread reports 0)
        "kl_last": next((s["kl"] for s in reversed(progress.steps) if s["updates"]), 0.0),
        "zero_std_groups_mean": round(sum(zero_std) / len(zero_std), 4) if zero_std else None,
        "reward_gap": _gap(progress.steps, scored.separate),
        "steps": progress.steps,
        "kept_adapters": keep_dir,
        "seconds": {"train": round(train_s, 1), "total": round(time.perf_counter() - started, 1)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", choices=("grpo", "ppo"), default="grpo")
    add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="only the JSON line")
    args = parser.parse_args(argv)
    check_path(parser, args.plot)
    result = run(args)
    if not args.json:
        b, a = result["before"], result["after"]
        print(f"base: {result['base']} ({result['modality']}, {result['family']}); reward: {result['reward']}")
        print(f"steps {result['train_steps']} ({result['samples_seen']} rollouts) in {result['seconds']['train']} s")
        print(
            f"accuracy {b['accuracy']:.3f} -> {a['accuracy']:.3f}; mean score {b['mean_score']:.3f} -> "
            f"{a['mean_score']:.3f}; diversity {b['diversity']:.3f} -> {a['diversity']:.3f}"
        )
        p = result["paired"]
        print(
            f"same prompts and seeds: {p['gained']} of {p['samples']} samples became correct, {p['lost']} stopped "
            f"being correct (sign test p = {p['sign_test_p']:.2g})"
        )
        if result["reward_gap"]:
            print(f"training reward vs verifier score: {result['reward_gap']}")
    print(json.dumps(result), flush=True)
    return plot_after_run(result, args.plot)


if __name__ == "__main__":
    sys.exit(main())
