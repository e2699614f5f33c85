"""Evaluating a generator on the shapes world: verifier accuracy per task type, and diversity.

Accuracy of a sample is 1 when every clause of its prompt holds (verifier score 1), as in
GenEval; the overall figure is the mean of the per-task accuracies (GenEval's convention), and the
mean verifier score is reported beside it. Diversity is the mean pairwise RMS distance between the
samples of one prompt (pixels in [0, 1]), averaged over prompts: a model that collapses to one
image per prompt scores near 0, whatever its accuracy.

``pass_at_k`` is the share of prompts with at least one correct sample among their k =
``samples_per_prompt`` samples (per task, and their mean overall): what the model can already draw
for a prompt, as against what it draws on average. Preference training and RL concentrate a
model on samples it already draws, so pass@k indicates what they can reach without teaching
the model anything new.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from training.shapes import grammar, verify

EVAL_SEED = 20_251_126


def eval_specs(modality: str, *, prompts_per_task: int | None = None) -> list[grammar.PromptSpec]:
    """The fixed evaluation prompts of a modality (images: every task type, each capped)."""
    if modality == "image":
        return [s for task in grammar.TASKS for s in grammar.eval_prompts(task)[:prompts_per_task]]
    return grammar.eval_prompts_for_modality(modality)[:prompts_per_task]


def diversity(samples: list[np.ndarray]) -> float:
    """Mean pairwise RMS distance between samples (uint8 media of one prompt), in [0, 1]."""
    if len(samples) < 2:
        return 0.0
    flat = [s.astype(np.float32).ravel() / 255.0 for s in samples]
    return float(np.mean([np.sqrt(np.mean((a - b) ** 2)) for a, b in itertools.combinations(flat, 2)]))


def evaluate(
    generate_fn: Callable[[list[str], list[int]], list[np.ndarray]],
    modality: str,
    *,
    samples_per_prompt: int = 4,
    prompts_per_task: int | None = None,
    batch_size: int = 64,
    seed: int = EVAL_SEED,
) -> dict:
    """Generate `samples_per_prompt` samples per evaluation prompt and verify them.

    `generate_fn(prompts, seeds) -> media` is any sampler (e.g. `sampling.generate` bound to a
    policy), so base models, trained adapters and real pipelines are measured the same way.
    """
    specs = eval_specs(modality, prompts_per_task=prompts_per_task)
    jobs = [(i, spec, seed + 1000 * i + k) for i, spec in enumerate(specs) for k in range(samples_per_prompt)]
    media: list[np.ndarray] = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        media.extend(generate_fn([spec.text for _, spec, _ in chunk], [s for _, _, s in chunk]))
    per_task: dict[str, list[float]] = {}
    scores: dict[str, list[float]] = {}
    by_prompt: dict[int, list[np.ndarray]] = {}
    solved: dict[str, dict[int, bool]] = {}
    verdicts: list[bool] = []
    for (i, spec, _), item in zip(jobs, media, strict=True):
        verdict = verify.verify(spec, item)
        correct = verdict.score >= 1.0
        verdicts.append(correct)
        per_task.setdefault(spec.task, []).append(1.0 if correct else 0.0)
        scores.setdefault(spec.task, []).append(float(verdict.score))
        by_prompt.setdefault(i, []).append(item)
        prompts = solved.setdefault(spec.task, {})
        prompts[i] = prompts.get(i, False) or correct
    tasks = {
        task: {
            "accuracy": float(np.mean(hits)),
            "mean_score": float(np.mean(scores[task])),
            "pass_at_k": float(np.mean(list(solved[task].values()))),
            "samples": len(hits),
        }
        for task, hits in per_task.items()
    }
    return {
        "modality": modality,
        "overall_accuracy": float(np.mean([t["accuracy"] for t in tasks.values()])),
        "pass_at_k": float(np.mean([t["pass_at_k"] for t in tasks.values()])),
        "k": samples_per_prompt,
        "mean_score": float(np.mean([s for v in scores.values() for s in v])),
        "diversity": float(np.mean([diversity(v) for v in by_prompt.values()])),
        "prompts": len(specs),
        "samples": len(jobs),
        "tasks": tasks,
        # per sample, in prompt then seed order: two evaluations of the same prompts and seeds can
        # be compared sample by sample (paired_change), which sees far smaller changes than accuracies
        "correct": verdicts,
    }


def paired_change(before: dict, after: dict) -> dict:
    """Samples that became correct and that stopped being correct between two evaluations of the same
    prompts and seeds, with the two-sided exact sign test of "no change" on those that changed."""
    a, b = before["correct"], after["correct"]
    if len(a) != len(b) or before["prompts"] != after["prompts"] or before["k"] != after["k"]:
        raise ValueError("paired_change needs two evaluations of the same prompts and samples per prompt")
    gained = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    lost = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    n = gained + lost
    tail = sum(math.comb(n, k) for k in range(min(gained, lost) + 1)) / 2**n
    return {"samples": len(a), "gained": gained, "lost": lost, "sign_test_p": min(1.0, 2 * tail)}
