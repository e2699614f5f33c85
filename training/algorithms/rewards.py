"""Rewards as plain functions: ``(media, prompts, metadata) -> np.ndarray`` of float scores.

A reward function takes a batch of generated media (``list`` of ``(H, W, 3)`` images or
``(T, H, W, 3)`` clips and view rings, uint8 or floats in [0, 1]), their prompts and one metadata
dict per sample, and returns one float64 score per sample. The trainers (GRPO, PPO/DDPO) only see
this signature, so the verifier, a learned reward model and weighted mixtures are interchangeable.
Mixing a learned reward with the verifier, or keeping a KL term in the trainer, is the usual guard
against a policy exploiting one scorer's blind spots (reward hacking).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from training.algorithms.reward_backbones import OVERALL, RewardModel
from training.shapes import grammar, verify

RewardFn = Callable[[list[np.ndarray], list[str], list[dict]], np.ndarray]
TRANSFORMS = ("raw", "sigmoid")


def check_batch(media: Sequence, prompts: Sequence[str], metadata: Sequence[dict] | None) -> list[dict]:
    """Validate a reward call's arguments; return the metadata (empty dicts where None was given)."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    if metadata is None:
        metadata = [{} for _ in prompts]
    if not len(media) == len(prompts) == len(metadata):
        raise ValueError(
            f"media, prompts and metadata must have equal lengths, got {len(media)}, {len(prompts)}, {len(metadata)}"
        )
    return list(metadata)


def prompt_spec(prompt: str, meta: dict) -> grammar.PromptSpec:
    """The structured spec of a prompt: ``meta["spec"]`` (a PromptSpec or its dict) if present, else
    the grammar's parse of the text (the shapes grammar parses back every text it produces)."""
    spec = meta.get("spec")
    if spec is None:
        return grammar.parse(prompt)
    return spec if isinstance(spec, grammar.PromptSpec) else grammar.PromptSpec.from_dict(spec)


def _verdicts(media: Sequence[np.ndarray], prompts: Sequence[str], metadata: Sequence[dict] | None) -> list:
    """The verifier's verdict on each sample (the checked call shared by the two verifier rewards)."""
    metadata = check_batch(media, prompts, metadata)
    return [verify.verify(prompt_spec(p, m), x) for x, p, m in zip(media, prompts, metadata, strict=True)]


def verifier_reward(media: Sequence[np.ndarray], prompts: Sequence[str], metadata: Sequence[dict] | None) -> np.ndarray:
    """The shapes verifier's score in [0, 1] (fraction of satisfied clauses, 1.0 only when all hold)."""
    return np.array([v.score for v in _verdicts(media, prompts, metadata)], dtype=np.float64)


def verifier_accuracy_reward(
    media: Sequence[np.ndarray], prompts: Sequence[str], metadata: Sequence[dict] | None
) -> np.ndarray:
    """The verifier's all-or-nothing verdict: 1.0 when every clause holds, else 0.0. This is the
    accuracy the benchmarks report, so a policy trained on it cannot trade a failed clause for
    partial credit on the others, as it can under :func:`verifier_reward`'s fraction."""
    return np.array([float(v.correct) for v in _verdicts(media, prompts, metadata)], dtype=np.float64)


def reward_model_reward(
    model: RewardModel, criterion: str = OVERALL, *, batch_size: int = 64, transform: str = "raw"
) -> RewardFn:
    """A learned reward model's head as a reward function.

    ``transform="raw"``: the Bradley-Terry logit itself. Only differences are meaningful (``sigmoid(r_a
    - r_b)`` is the predicted preference), so the offset is arbitrary; group-normalised advantages
    (GRPO) and per-prompt baselines (DDPO) remove it. ``"sigmoid"``: ``sigmoid(r)`` in (0, 1), a
    bounded version for mixing with the verifier (still offset-dependent, so read it relatively).
    """
    if criterion not in model.head_names:
        raise ValueError(f"unknown criterion {criterion!r}; the model has {model.head_names}")
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")

    def reward(media: Sequence[np.ndarray], prompts: Sequence[str], metadata: Sequence[dict] | None) -> np.ndarray:
        check_batch(media, prompts, metadata)
        if not len(prompts):
            return np.zeros(0)
        scores = model.score(list(media), list(prompts), criterion=criterion, batch_size=batch_size)
        return 1.0 / (1.0 + np.exp(-scores)) if transform == "sigmoid" else scores

    return reward


def weighted_reward(terms: Sequence[tuple[float, RewardFn]]) -> RewardFn:
    """``sum_i w_i f_i(media, prompts, metadata)``: one reward from several (e.g. verifier + model)."""
    terms = list(terms)
    if not terms:
        raise ValueError("weighted_reward needs at least one (weight, function) term")
    for weight, fn in terms:
        if not np.isfinite(weight) or not callable(fn):
            raise ValueError(f"each term is (finite weight, reward function), got ({weight!r}, {fn!r})")

    def reward(media: Sequence[np.ndarray], prompts: Sequence[str], metadata: Sequence[dict] | None) -> np.ndarray:
        metadata = check_batch(media, prompts, metadata)
        total = np.zeros(len(prompts), dtype=np.float64)
        for weight, fn in terms:
            scores = np.asarray(fn(media, prompts, metadata), dtype=np.float64)
            if scores.shape != total.shape:
                raise ValueError(f"a reward returned shape {scores.shape} for {len(prompts)} samples")
            total += weight * scores
        return total

    return reward
