"""Caption-matching pre-training of a reward model on the shapes world: its stand-in for CLIP.

Reward models used in practice (ImageReward, PickScore, HPS) start from an image-text model
pre-trained on captioned images and are then fine-tuned on a few thousand preference pairs. A
model trained from scratch on those pairs alone has to learn what a red square is from them, and
mostly learns the pairs. The shapes world has captioned images for free: every step renders ground
truth for ``batch_size`` random prompts; each render scores its own caption against ``negatives``
captions of other prompts of the same task, and each caption scores its own render against renders
of ``image_negatives`` such prompts (a rewording never counts as another prompt). With
``near_negatives``, that many of each group are one edit away instead (a colour, a count, a shape
or the relation changed, an object left out or added: hard negatives, as NegCLIP makes them). The
loss is a cross-entropy over each group of candidates (both directions of CLIP's contrastive loss).
The score is the model's ``overall`` head, so fine-tuning on preferences
(:func:`training.algorithms.reward_model.train_reward_model`) starts from a model that already
ranks matching captions first.

No verifier and no rater is consulted: the only supervision is which caption a render was drawn
from. Entry point as for every trainer: ``pretrain_reward_model(config, components, data, *,
run_dir, on_step, should_stop)``, with ``data`` None (renders are drawn from ``run.rng``), exact
resume and atomic checkpoints through :class:`training.algorithms.run.Run`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.algorithms.reward_backbones import OVERALL, RewardModel
from training.algorithms.run import Run, StepInfo, TrainResult, cosine_schedule
from training.shapes import grammar, render

MODALITIES = ("image", "video", "multiview")
_MEANINGS: dict[str, dict[tuple, list[grammar.PromptSpec]]] = {}


def _other_meanings(spec: grammar.PromptSpec) -> list[list[grammar.PromptSpec]]:
    """The prompts of ``spec``'s task that ask for something else (a rewording is not a negative),
    grouped by what they ask for: one list of wordings per meaning."""
    if spec.task not in _MEANINGS:
        groups: dict[tuple, list[grammar.PromptSpec]] = {}
        for s in grammar.all_specs(spec.task):
            groups.setdefault(grammar.meaning(s), []).append(s)
        _MEANINGS[spec.task] = groups
    own = grammar.meaning(spec)
    return [wordings for key, wordings in _MEANINGS[spec.task].items() if key != own]


def _pick(rng: np.random.Generator, spec: grammar.PromptSpec, k: int, near: int) -> list[grammar.PromptSpec]:
    """``k`` prompts asking for ``k`` different things other than ``spec`` (fewer where there are
    fewer): up to ``near`` of them one edit away (:func:`grammar.neighbours`: a colour, shape,
    count or relation changed, an object left out or added), the rest other prompts of the same
    task, each meaning in a random one of its wordings."""
    chosen: list[grammar.PromptSpec] = []
    taken: set[tuple] = set()
    if near:
        close = grammar.neighbours(spec)
        chosen = [close[i] for i in rng.choice(len(close), size=min(near, k, len(close)), replace=False)]
        taken = {grammar.meaning(c) for c in chosen}
    rest = [w for w in _other_meanings(spec) if grammar.meaning(w[0]) not in taken]
    for i in rng.choice(len(rest), size=min(k - len(chosen), len(rest)), replace=False):
        chosen.append(rest[i][int(rng.integers(len(rest[i])))])
    return chosen


@dataclass(frozen=True)
class CaptionPretrainConfig:
    steps: int = 5000
    batch_size: int = 16
    negatives: int = 7  # other captions of the same task scored against each render's own
    image_negatives: int = 7  # renders of other prompts of the same task scored against each caption
    near_negatives: int = 3  # of each group's negatives, this many one edit away (grammar.neighbours)
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    modality: str = "image"
    eval_renders: int = 256  # a fixed set (from ``seed``) on which caption accuracy is reported
    checkpoint_every: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("image_negatives", "near_negatives"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("steps", "batch_size", "negatives", "eval_renders"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.warmup_steps < 0 or self.checkpoint_every < 0:
            raise ValueError("weight_decay, grad_clip, warmup_steps and checkpoint_every must be non-negative")
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")


@dataclass(frozen=True)
class MatchingBatch:
    """Renders and matching groups over them. A group is a list of ``(render index, caption)``
    candidates whose first is the true pairing: one render with several captions (which caption is
    it?) or one caption with several renders (which render is it?)."""

    media: list[np.ndarray]
    groups: list[list[tuple[int, str]]]


def caption_batch(
    rng: np.random.Generator,
    modality: str,
    batch_size: int,
    negatives: int,
    image_negatives: int = 0,
    near_negatives: int = 0,
) -> MatchingBatch:
    """``batch_size`` ground-truth renders of random prompts. Each gives a group of its caption then
    captions of ``negatives`` other prompts (:func:`_pick`; never a rewording of its own) and, with
    ``image_negatives``, a group of its caption over its render then renders of that many others."""
    media: list[np.ndarray] = []
    groups: list[list[tuple[int, str]]] = []
    for _ in range(batch_size):
        spec = grammar.sample_prompt(rng, modality=modality)
        own = len(media)
        media.append(render.render(spec, rng))
        groups.append([(own, spec.text), *((own, o.text) for o in _pick(rng, spec, negatives, near_negatives))])
        if image_negatives:
            group = [(own, spec.text)]
            for other in _pick(rng, spec, image_negatives, near_negatives):
                group.append((len(media), spec.text))
                media.append(render.render(other, rng))
            groups.append(group)
    return MatchingBatch(media, groups)


def _scores(model: RewardModel, batch: MatchingBatch) -> torch.Tensor:
    """``(G, K)`` overall scores of every group's candidates (padded with -inf where a group has
    fewer than the most)."""
    k = max(len(g) for g in batch.groups)
    pairs = [pair for g in batch.groups for pair in g]
    flat = model(np.stack([batch.media[i] for i, _ in pairs]), [t for _, t in pairs])[OVERALL]
    out = torch.full((len(batch.groups), k), float("-inf"), device=flat.device)
    i = 0
    for row, g in enumerate(batch.groups):
        out[row, : len(g)] = flat[i : i + len(g)]
        i += len(g)
    return out


def _first_wins(scores: torch.Tensor) -> torch.Tensor:
    return (scores[:, 0:1] > scores[:, 1:]).all(dim=1)


@torch.no_grad()
def caption_accuracy(model: RewardModel, batch: MatchingBatch, chunk: int = 64) -> float:
    """Share of groups whose true pairing (candidate 0) scores strictly highest."""
    was_training = model.training
    model.eval()
    try:
        hits = []
        for i in range(0, len(batch.groups), chunk):
            hits.append(_first_wins(_scores(model, MatchingBatch(batch.media, batch.groups[i : i + chunk]))))
    finally:
        model.train(was_training)
    return float(torch.cat(hits).float().mean())


def pretrain_reward_model(
    config: CaptionPretrainConfig,
    components: RewardModel,
    data=None,
    *,
    run_dir: str | Path | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Pre-train ``components`` in place on caption matching (see the module docstring).

    Metrics per step: loss, accuracy (share of the batch's groups ranking the true pairing first),
    lr, grad_norm. The summary holds ``caption_accuracy``, the same share on a fixed set of
    ``eval_renders`` renders drawn from ``seed`` (at chance about one in the group size)."""
    if data is not None:
        raise ValueError("caption pre-training draws its own renders; pass data=None")
    model = components
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    run = Run.for_config(config, run_dir, on_step=on_step, should_stop=should_stop)
    modules = {"reward_model": model}
    start = run.resume(modules=modules, optimizer=optimizer)
    model.train()
    for step in run.steps(start, optimizer=optimizer, lr_at=cosine_schedule(config)):
        batch = caption_batch(
            run.rng,
            config.modality,
            config.batch_size,
            config.negatives,
            config.image_negatives,
            config.near_negatives,
        )
        scores = _scores(model, batch)
        target = torch.zeros(len(batch.groups), dtype=torch.long, device=scores.device)
        loss = F.cross_entropy(scores, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics = {"loss": float(loss.detach()), "lr": optimizer.param_groups[0]["lr"]}
        if config.grad_clip:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
        optimizer.step()
        metrics["accuracy"] = float(_first_wins(scores.detach()).float().mean())
        run.end_step(step, metrics, modules=modules, optimizer=optimizer)
    run.close(modules=modules, optimizer=optimizer)
    model.eval()
    summary = {}
    if not run.stopped:
        eval_rng = np.random.default_rng([config.seed, 0xCA7])
        batch = caption_batch(
            eval_rng,
            config.modality,
            config.eval_renders,
            config.negatives,
            config.image_negatives,
            config.near_negatives,
        )
        summary["caption_accuracy"] = caption_accuracy(model, batch)
    return run.result(**summary)
