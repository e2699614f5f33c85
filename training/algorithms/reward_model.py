"""Reward model training: Bradley-Terry on preference pairs, ties as half, per-criterion heads.

Entry point ``train_reward_model(config, components, data, *, run_dir, on_step, should_stop)``:
``components`` is a :class:`~training.algorithms.reward_backbones.RewardModel` (already built, e.g.
over a CLIP backbone loaded from a path) or ``None``, in which case the built-in shapes backbone is
built from ``config`` with weights seeded by ``config.seed``. ``data`` is a sequence of
:class:`PreferencePair`. The loop is :class:`training.algorithms.run.Run` (randomness, checkpoints,
exact resume). A deterministic, seed-drawn share of the pairs is held out; the summary reports
held-out accuracy on non-tie pairs, the held-out BT loss, expected calibration error with its
reliability table, and per-criterion accuracy.

The objective is the one PickScore, ImageReward and HPS train with: a scalar score per (media,
prompt), and the probability that the first of a pair is preferred is ``sigmoid(r_1 - r_2)``.
:func:`training.algorithms.reward_data.pairs_from_simulated_raters` makes pairs on the shapes world judged by simulated
annotators of known accuracy, whose Bayes ceiling bounds what any model can reach.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.algorithms.reward_backbones import (
    OVERALL,
    ClipBackbone,
    RewardModel,
    ShapesBackbone,
    ShapesBackboneSpec,
    load_reward_model,
    save_reward_model,
)
from training.algorithms.run import Run, StepInfo, TrainResult, cosine_schedule
from training.shapes import grammar, render, verify

__all__ = [
    "PreferencePair",
    "Presentation",
    "RewardModel",
    "RewardModelConfig",
    "bt_loss",
    "build_reward_model",
    "calibration",
    "evaluate_pairs",
    "load_reward_model",
    "predict_pairs",
    "save_reward_model",
    "shapes_symmetry",
    "shift",
    "split_indices",
    "train_reward_model",
]

BACKBONES = ("shapes", "clip")
CALIBRATION_BINS = 10
CHOICE_LABELS = {"first": 1.0, "second": 0.0, "tie": 0.5}


@dataclass(frozen=True)
class RewardModelConfig:
    """Hyper-parameters of one reward-model run (stored as the job's JSON).

    ``backbone``: "shapes" (built-in, sizes below) or "clip" (``clip_path`` to a local CLIP;
    ``freeze_vision``/``freeze_text`` choose what trains). ``criteria``: extra heads beside
    "overall", trained on the pairs' per-criterion labels with weight ``criteria_weight``.
    ``swap_augment`` presents each pair in a random order (label flipped), which BT is symmetric under.
    """

    steps: int = 300
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    held_out_fraction: float = 0.2
    seed: int = 0
    criteria: tuple[str, ...] = ()
    criteria_weight: float = 1.0
    checkpoint_every: int = 0
    eval_every: int = 0  # held-out accuracy in the step metrics every k steps; 0: only at the end
    eval_batch_size: int = 256
    swap_augment: bool = True
    shift_augment: int = 0  # random translation by up to this many pixels (replicate padding, DrQ)
    symmetry_augment: bool = False  # shapes world only: palette permutations and mirrors (shapes_symmetry)
    backbone: str = "shapes"
    channels: tuple[int, ...] = (16, 32, 64)
    feature_dim: int = 64
    text_dim: int = 32
    cross_attention: bool = True
    hidden: int = 64
    clip_path: str | None = None
    freeze_vision: bool = True
    freeze_text: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "criteria", tuple(self.criteria))
        object.__setattr__(self, "channels", tuple(self.channels))
        for name in ("steps", "batch_size", "eval_batch_size", "feature_dim", "text_dim", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
        for name in ("warmup_steps", "checkpoint_every", "eval_every", "shift_augment"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("weight_decay", "grad_clip", "criteria_weight"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if not 0.0 <= self.held_out_fraction < 1.0:
            raise ValueError(f"held_out_fraction must be in [0, 1), got {self.held_out_fraction}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.backbone == "clip" and not self.clip_path:
            raise ValueError("backbone 'clip' needs clip_path (a local CLIP directory)")
        if OVERALL in self.criteria or len(set(self.criteria)) != len(self.criteria):
            raise ValueError(f"criteria must be distinct and not {OVERALL!r}, got {self.criteria}")
        if any(not c.isidentifier() for c in self.criteria):
            raise ValueError(f"criteria must be identifiers (letters, digits, _), got {self.criteria}")
        if self.backbone == "shapes":
            self.backbone_spec()  # raises on bad sizes

    def backbone_spec(self) -> ShapesBackboneSpec:
        return ShapesBackboneSpec(self.channels, self.feature_dim, self.text_dim, cross_attention=self.cross_attention)


@dataclass(frozen=True, eq=False)
class PreferencePair:
    """One judged comparison: ``label`` is P(first preferred): 1, 0, 0.5 for a tie (or a soft share
    of annotators). ``criteria`` maps a criterion to its label, or None where it was not judged."""

    prompt: str
    media_first: np.ndarray
    media_second: np.ndarray
    label: float
    criteria: dict[str, float | None] = field(default_factory=dict)
    weight: float = 1.0

    def __post_init__(self) -> None:
        if np.shape(self.media_first) != np.shape(self.media_second):
            raise ValueError(f"media shapes differ: {np.shape(self.media_first)} vs {np.shape(self.media_second)}")
        for name, value in [("label", self.label), *self.criteria.items()]:
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (1 first, 0 second, 0.5 tie), got {value}")
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ValueError(f"weight must be a non-negative number, got {self.weight}")


def bt_loss(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Bradley-Terry negative log-likelihood with ties counted as half.

    Bradley & Terry (1952), "Rank Analysis of Incomplete Block Designs. I. The Method of Paired
    Comparisons": the paired-comparison model ``P(i preferred to j) = pi_i / (pi_i + pi_j)``; with
    ``pi = exp(r)`` this is ``sigmoid(r_i - r_j)``. With ``d = logits = r_first - r_second`` and
    ``y = targets`` (1 first better, 0 second, 0.5 tie) the loss is the soft-label binary cross-entropy
    ``-[y log sigmoid(d) + (1 - y) log sigmoid(-d)] = softplus(d) - y d``: a tie is half a win each
    way (PickScore's 0.5/0.5 labels), whose minimum, ln 2, is at ``d = 0``. Mean over the batch, or
    ``sum(w l) / sum(w)`` with per-example ``weight``.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    targets = targets.to(logits.dtype)
    if ((targets < 0) | (targets > 1)).any():
        raise ValueError("targets must be in [0, 1]")
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    if weight is None:
        return losses.mean()
    weight = weight.to(logits.dtype)
    if weight.shape != losses.shape or (weight < 0).any() or not weight.sum() > 0:
        raise ValueError("weight must match the batch, be non-negative and sum to more than 0")
    return (losses * weight).sum() / weight.sum()


def calibration(probs: np.ndarray, outcomes: np.ndarray, bins: int = CALIBRATION_BINS) -> tuple[float, list[dict]]:
    """Expected calibration error over equal-width bins of the predicted probability, and the table.

    ECE (Naeini et al. 2015; Guo et al. 2017, "On Calibration of Modern Neural Networks", eq. 3):
    ``sum_b n_b / N |mean predicted_b - observed_b|``. Outcomes are the labels (a tie counts 0.5,
    what a BT model trained with ties as half should predict for it)."""
    probs, outcomes = np.asarray(probs, float), np.asarray(outcomes, float)
    if probs.shape != outcomes.shape or probs.ndim != 1:
        raise ValueError("probs and outcomes must be 1-D and of equal length")
    which = np.minimum((probs * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        n = int(sel.sum())
        row = {"lo": b / bins, "hi": (b + 1) / bins, "count": n, "predicted": None, "observed": None}
        if n:
            row["predicted"], row["observed"] = float(probs[sel].mean()), float(outcomes[sel].mean())
            ece += n / len(probs) * abs(row["predicted"] - row["observed"])
        table.append(row)
    return float(ece), table


def split_indices(n: int, held_out_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices: a permutation drawn from ``seed`` alone, so a resumed run and an
    evaluation script see the same split. At least one training pair is always kept."""
    order = np.random.default_rng([seed, 0x5EED]).permutation(n)
    held = min(int(round(held_out_fraction * n)), n - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def build_reward_model(config: RewardModelConfig, vocabulary: Sequence[str] | None = None) -> RewardModel:
    """A fresh model for ``config``, initialised from ``config.seed`` (global RNG left untouched).

    Shapes backbone: over ``vocabulary`` (default: the shapes grammar's words). CLIP: loaded from
    ``config.clip_path`` (heads and temporal pooling seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if config.backbone == "clip":
            backbone = ClipBackbone.from_pretrained(
                config.clip_path,
                feature_dim=config.feature_dim,
                freeze_vision=config.freeze_vision,
                freeze_text=config.freeze_text,
            )
        else:
            backbone = ShapesBackbone(vocabulary or grammar.vocabulary(), config.backbone_spec())
        return RewardModel(backbone, config.criteria, hidden=config.hidden)


def shift(media: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``media`` (``(..., H, W, C)``) translated by (dy, dx) pixels, edges replicated: the random
    shift of DrQ (Kostrikov et al. 2020), the same for every frame of a clip so motion is kept."""
    if dy == 0 and dx == 0:
        return media
    h, w = media.shape[-3:-1]
    pad = max(abs(dy), abs(dx))
    widths = [(0, 0)] * (media.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
    padded = np.pad(media, widths, mode="edge")
    return padded[..., pad - dy : pad - dy + h, pad - dx : pad - dx + w, :]


_PALETTE = np.array([render.PALETTE[c] for c in grammar.COLORS], float)
_MIRRORED_WORDS = {"left": "right", "right": "left"}


def shapes_symmetry(media: np.ndarray, prompt: str, perm: Sequence[int], mirror: bool) -> tuple[np.ndarray, str]:
    """The same judgement seen through a symmetry of the shapes world: palette colour ``i`` becomes
    colour ``perm[i]`` in the pixels and in the prompt's words, and with ``mirror`` left and right
    swap (the image flipped, "left of"/"moving left" read as right). The verifier's score is
    invariant under both (tested), so a pair's label still holds. Pixels keep their brightness
    relative to their palette colour, so shaded faces of solids stay shaded."""
    perm = np.asarray(perm)
    classes = verify.classify_colors(media)
    lit = classes >= 0
    out = media.copy()
    k = classes[lit]
    brightness = media[lit].max(axis=-1) / _PALETTE[k].max(axis=-1)
    out[lit] = np.clip(np.rint(_PALETTE[perm[k]] * brightness[:, None]), 0, 255).astype(media.dtype)
    if mirror:
        out = np.ascontiguousarray(out[..., ::-1, :])
    words = {c: grammar.COLORS[perm[i]] for i, c in enumerate(grammar.COLORS)}
    if mirror:
        words.update(_MIRRORED_WORDS)
    return out, " ".join(words.get(w, w) for w in prompt.split())


@dataclass(frozen=True)
class Presentation:
    """How a batch of pairs is shown to the model: per pair a swap of the two sides, and optional
    augmentations: (dy, dx) per side, a palette permutation and a mirror (shapes symmetries)."""

    swap: np.ndarray
    shifts: np.ndarray | None = None
    perms: np.ndarray | None = None
    mirror: np.ndarray | None = None

    @classmethod
    def plain(cls, n: int) -> Presentation:
        return cls(np.zeros(n, bool))

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, config: RewardModelConfig) -> Presentation:
        swap = rng.random(n) < 0.5 if config.swap_augment else np.zeros(n, bool)
        s = config.shift_augment
        shifts = rng.integers(-s, s + 1, size=(n, 2, 2)) if s else None
        perms = mirror = None
        if config.symmetry_augment:
            perms = np.stack([rng.permutation(len(grammar.COLORS)) for _ in range(n)])
            mirror = rng.random(n) < 0.5
        return cls(swap, shifts, perms, mirror)

    def apply(self, pairs: Sequence[PreferencePair]) -> tuple[list, list, list[str]]:
        """(first media, second media, prompts) as presented."""
        firsts, seconds, prompts = [], [], []
        for i, p in enumerate(pairs):
            a, b = (p.media_second, p.media_first) if self.swap[i] else (p.media_first, p.media_second)
            prompt = p.prompt
            if self.perms is not None:
                (a, prompt), (b, _) = (shapes_symmetry(m, p.prompt, self.perms[i], self.mirror[i]) for m in (a, b))
            if self.shifts is not None:
                a, b = shift(a, *self.shifts[i, 0]), shift(b, *self.shifts[i, 1])
            firsts.append(a)
            seconds.append(b)
            prompts.append(prompt)
        return firsts, seconds, prompts


def _pair_logits(model: RewardModel, pairs: Sequence[PreferencePair], shown: Presentation) -> dict[str, torch.Tensor]:
    """``r_first - r_second`` per head, both sides through the backbone in one batch."""
    firsts, seconds, prompts = shown.apply(pairs)
    scores = model(firsts + seconds, prompts + prompts)
    n = len(pairs)
    return {name: s[:n] - s[n:] for name, s in scores.items()}


def _targets(pairs: Sequence[PreferencePair], swap: np.ndarray, head: str) -> tuple[np.ndarray, np.ndarray]:
    """(targets, has-label mask) of one head, flipped where the pair was swapped."""
    raw = [p.label if head == OVERALL else p.criteria.get(head) for p in pairs]
    mask = np.array([v is not None for v in raw])
    values = np.array([0.5 if v is None else float(v) for v in raw])
    return np.where(swap, 1.0 - values, values), mask


def _accuracy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, int]:
    """Share of non-tie pairs whose preferred side has the higher score (a zero difference counts
    half), and how many non-tie pairs there were."""
    decided = targets != 0.5
    if not decided.any():
        return math.nan, 0
    hits = np.where(logits[decided] == 0, 0.5, (logits[decided] > 0) == (targets[decided] > 0.5))
    return float(hits.mean()), int(decided.sum())


def _train_step(model, optimizer, pairs, shown: Presentation, config: RewardModelConfig) -> dict[str, float]:
    logits = _pair_logits(model, pairs, shown)
    device = logits[OVERALL].device
    weight = torch.tensor([p.weight for p in pairs], dtype=torch.float32, device=device)
    metrics: dict[str, float] = {}
    total = torch.zeros((), device=device)
    for head, d in logits.items():
        targets, mask = _targets(pairs, shown.swap, head)
        m = torch.as_tensor(mask, device=device)
        if not mask.any() or not weight[m].sum() > 0:
            continue
        t = torch.as_tensor(targets, dtype=torch.float32, device=device)
        loss = bt_loss(d[m], t[m], weight[m])
        total = total + (1.0 if head == OVERALL else config.criteria_weight) * loss
        metrics["bt_loss" if head == OVERALL else f"loss_{head}"] = float(loss.detach())
        acc, _ = _accuracy(d.detach().cpu().numpy()[mask], targets[mask])
        if not math.isnan(acc):
            metrics["accuracy" if head == OVERALL else f"accuracy_{head}"] = acc
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    if config.grad_clip:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip))
    optimizer.step()
    metrics["loss"] = float(total.detach())
    return metrics


@torch.no_grad()
def predict_pairs(
    model: RewardModel, pairs: Sequence[PreferencePair], *, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Per head, ``r_first - r_second`` for every pair (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    try:
        chunks = [
            _pair_logits(model, pairs[i : i + batch_size], Presentation.plain(len(pairs[i : i + batch_size])))
            for i in range(0, len(pairs), batch_size)
        ]
    finally:
        model.train(was_training)
    return {h: torch.cat([c[h] for c in chunks]).double().cpu().numpy() for h in model.head_names}


def evaluate_pairs(model: RewardModel, pairs: Sequence[PreferencePair], *, batch_size: int = 256) -> dict:
    """Accuracy on non-tie pairs, BT loss, ECE with its reliability table, per-criterion accuracy."""
    if not pairs:
        return {}
    logits = predict_pairs(model, pairs, batch_size=batch_size)
    no_swap = np.zeros(len(pairs), bool)
    targets, _ = _targets(pairs, no_swap, OVERALL)
    weight = torch.tensor([p.weight for p in pairs], dtype=torch.float64)
    d = logits[OVERALL]
    accuracy, decided = _accuracy(d, targets)
    ece, table = calibration(1.0 / (1.0 + np.exp(-d)), targets)
    out = {
        "held_out": len(pairs),
        "held_out_decided": decided,
        "accuracy": None if math.isnan(accuracy) else accuracy,
        "bt_loss": float(bt_loss(torch.from_numpy(d), torch.from_numpy(targets), weight)),
        "ece": ece,
        "reliability": table,
        "criteria": {},
    }
    for head in model.criteria:
        t, mask = _targets(pairs, no_swap, head)
        acc, n = _accuracy(logits[head][mask], t[mask])
        out["criteria"][head] = {"accuracy": None if math.isnan(acc) else acc, "decided": n}
    return out


def _check(config: RewardModelConfig, model: RewardModel, data: Sequence[PreferencePair]) -> None:
    if len(data) < 2:
        raise ValueError(f"need at least 2 preference pairs, got {len(data)}")
    if not all(isinstance(p, PreferencePair) for p in data):
        raise ValueError("data must be a sequence of PreferencePair")
    missing = set(config.criteria) - set(model.criteria)
    if missing:
        raise ValueError(f"the model has no head for criteria {sorted(missing)}; it has {model.criteria}")
    unknown = {c for p in data for c in p.criteria} - set(model.criteria)
    if unknown:
        raise ValueError(f"pairs carry criteria the model has no head for: {sorted(unknown)}")


def train_reward_model(
    config: RewardModelConfig,
    components: RewardModel | None,
    data: Sequence[PreferencePair],
    *,
    run_dir: str | Path | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train ``components`` in place (or a built-in model from ``config`` when None) on ``data``.

    Each step draws ``batch_size`` training pairs without replacement from ``run.rng``, and from
    it their :class:`Presentation` (order, shifts, shapes symmetries, as configured), so a resumed
    run draws exactly what an uninterrupted one would. Metrics per step: loss, bt_loss, accuracy
    (batch, non-tie), lr, grad_norm, per-criterion losses and accuracies, and every ``eval_every``
    steps held_out_accuracy. The summary (see :func:`evaluate_pairs`) is computed on the held-out
    pairs after the last step; a stopped run skips it. The model is left in eval mode.
    """
    model = components if components is not None else build_reward_model(config)
    _check(config, model, data)
    train_idx, held_idx = split_indices(len(data), config.held_out_fraction, config.seed)
    held = [data[i] for i in held_idx]
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    run = Run.for_config(config, run_dir, on_step=on_step, should_stop=should_stop)
    modules = {"reward_model": model}
    start = run.resume(modules=modules, optimizer=optimizer)
    model.train()
    for step in run.steps(start, optimizer=optimizer, lr_at=cosine_schedule(config)):
        picked = run.rng.choice(len(train_idx), size=min(config.batch_size, len(train_idx)), replace=False)
        shown = Presentation.draw(run.rng, len(picked), config)
        metrics = _train_step(model, optimizer, [data[train_idx[i]] for i in picked], shown, config)
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        if config.eval_every and held and (step + 1) % config.eval_every == 0:
            acc = evaluate_pairs(model, held, batch_size=config.eval_batch_size)["accuracy"]
            if acc is not None:
                metrics["held_out_accuracy"] = acc
        run.end_step(step, metrics, modules=modules, optimizer=optimizer)
    run.close(modules=modules, optimizer=optimizer)
    model.eval()
    summary = {} if run.stopped else evaluate_pairs(model, held, batch_size=config.eval_batch_size)
    return run.result(**summary, train_pairs=len(train_idx))
