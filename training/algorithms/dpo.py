"""Diffusion-DPO (Wallace et al. 2023, "Diffusion Model Alignment Using Direct Preference Optimization").

The DPO objective (Rafailov et al. 2023) for a diffusion model, with the intractable log-likelihood
ratio replaced by denoising errors at one shared noisy point (paper eq. 14): for a pair whose
winner x_w and loser x_l are noised with the SAME noise eps and timestep t,

    err(theta, x) = mean over dims of ||target(x, eps, t) - f_theta(x_t, t, c)||^2
    logits        = (err_ref(x_w) - err_ref(x_l)) - (err_theta(x_w) - err_theta(x_l))
                  = ref_diff - model_diff
    loss          = -log sigmoid(beta * logits)                         (kind "sigmoid")

Beta convention (one, everywhere in Loupe): ``loss = -log sigma(beta * (ref_diff - model_diff))`` with
per-sample errors averaged over all dimensions. This is the convention of diffusers'
``examples/research_projects/diffusion_dpo/train_diffusion_dpo.py`` (SD1.5): our ``beta`` equals that
script's ``--beta_dpo`` (default 2500). The original code (SalesforceAIResearch/DiffusionDPO) and the
diffusers SDXL script compute ``-log sigma(-0.5 * beta_dpo * (model_diff - ref_diff))``, so their
``beta_dpo`` is twice ours: original 5000 == ours 2500 (diffusers PR #6788 dropped the 0.5 and halved
the default in the same commit). The paper's beta also absorbs T * omega(lambda_t) and the sum over
dimensions, so its value is not comparable to either.

The reference policy is the same network with its LoRA adapter disabled (peft), so no second copy of
the denoiser is held in memory. The loss is exactly ln 2 at initialisation (LoRA B = 0).

Families (the noising of :mod:`training.shapes.train_base`, generalised to the policy's scheduler):
epsilon models ``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps`` with target eps, v (``get_velocity``)
or x0 per the scheduler's ``prediction_type``; flow models ``x_s = (1 - s) x0 + s eps`` with target
``eps - x0``, ``s`` drawn uniformly from the training scheduler's sigma table (so a shifted schedule
is respected) and the denoiser given ``timesteps[idx]``. Latent pipelines (a VAE) encode the pixels
first; pixel-space shapes models apply their ``pixel_shift``/``pixel_scale`` normalisation.

Data: :class:`PreferencePair` holds a prompt, the preferred and the rejected media (uint8). Ties and
"both bad" judgments carry no preference and are NOT accepted; :func:`pair_from_choice` and
:func:`pair_from_labels` return ``None`` for them so the data builder upstream drops them.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from training.algorithms import lora
from training.algorithms.loading import Policy, TextCondition, mixed_precision_dtype
from training.algorithms.noising import (  # noqa: F401  (re-exported: part of the DPO API)
    NoisedPairs,
    encode_media,
    media_shape,
    media_to_pixels,
    noise_pairs,
    per_sample_mse,
)
from training.algorithms.run import Run, StepInfo, TrainResult

LossKind = Literal["sigmoid", "ipo", "hinge"]
LOSS_KINDS: tuple[str, ...] = get_args(LossKind)
ADAPTER_DIR = "adapter"
DIFFUSERS_LORA_FILE = "pytorch_lora_weights.safetensors"

# ------------------------------------------------------------------------------------------------
# Pure loss functions
# ------------------------------------------------------------------------------------------------


def dpo_logits(
    model_err_w: torch.Tensor, model_err_l: torch.Tensor, ref_err_w: torch.Tensor, ref_err_l: torch.Tensor
) -> torch.Tensor:
    """``ref_diff - model_diff`` per pair, the argument of Diffusion-DPO's sigmoid (Wallace et al.
    2023, eq. 14, with the constants T * omega(lambda_t) absorbed into beta).

    Positive when the policy lowered its error on the winner relative to the loser more than the
    reference did, i.e. when the implicit reward prefers the winner.
    """
    return (ref_err_w - ref_err_l) - (model_err_w - model_err_l)


def dpo_loss(logits: torch.Tensor, beta: float, kind: str = "sigmoid") -> torch.Tensor:
    """Mean loss over pairs for ``logits = ref_diff - model_diff`` (computed in float32 or wider, so
    half-precision inputs with a large beta saturate to finite values instead of NaN).

    - ``"sigmoid"``: DPO, Rafailov et al. 2023 eq. 7, as Diffusion-DPO eq. 14:
      ``-log sigma(beta * logits)``; ln 2 at ``logits = 0``.
    - ``"ipo"``: IPO, Azar et al. 2023 ("A General Theoretical Paradigm to Understand Learning from
      Human Preferences") eq. 17: ``(h - 1/(2 tau))^2`` with the log-ratio difference ``h = logits``
      in the units fixed by the convention above and ``tau = beta`` (the same config field; the
      diffusers script reads a nonexistent ``args.beta`` here). The optimum ``logits = 1/(2 beta)``
      sits where the sigmoid loss starts to saturate (``beta * logits = 1/2``). ``1/(4 beta^2)`` at 0.
    - ``"hinge"``: SLiC (Zhao et al. 2023, "SLiC-HF") ``max(0, 1 - beta * logits)``; 1.0 at 0.
    """
    z = logits if logits.dtype == torch.float64 else logits.float()
    if kind == "sigmoid":
        losses = -F.logsigmoid(beta * z)
    elif kind == "ipo":
        losses = (z - 1.0 / (2.0 * beta)) ** 2
    elif kind == "hinge":
        losses = torch.relu(1.0 - beta * z)
    else:
        raise ValueError(f"unknown DPO loss kind {kind!r}; expected one of {', '.join(LOSS_KINDS)}")
    return losses.mean()


def implicit_accuracy(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of pairs whose implicit reward prefers the winner, ties (``logits == 0``) counting
    half, so it is exactly 0.5 at initialisation (as diffusers does; the original counts ties as 0)."""
    return (logits > 0).float().mean() + 0.5 * (logits == 0).float().mean()


# ------------------------------------------------------------------------------------------------
# Configuration and data
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DPOConfig:
    """One Diffusion-DPO job (stored as the job's JSON; see :meth:`from_dict`).

    ``beta`` follows the module's convention (diffusers SD1.5 ``beta_dpo``; half the original's).
    ``batch_size`` counts pairs (2x samples go through the denoiser). ``uncond_rate`` replaces a
    pair's prompt by the empty prompt (the original's ``proportion_empty_prompts``), which keeps
    classifier-free guidance calibrated. ``warmup`` is a linear ramp of the learning rate, then
    constant. ``cache_encodings`` encodes every prompt and (for latent pipelines) every image with
    the frozen encoders once, up front; turn it off for datasets that do not fit in memory.
    ``micro_batch`` (0: the whole batch at once) runs a step's pairs through the denoiser that many
    at a time and accumulates the gradient: one optimiser step on the same loss, in less memory.
    """

    steps: int = 500
    batch_size: int = 8
    lr: float = 1e-4
    beta: float = 2500.0
    loss: str = "sigmoid"
    lora_rank: int = 8
    lora_alpha: float | None = None  # None: equal to the rank (scale 1)
    weight_decay: float = 1e-2
    max_grad_norm: float = 1.0  # 0 disables clipping
    warmup: int = 0
    uncond_rate: float = 0.0
    seed: int = 0
    checkpoint_every: int = 0  # 0: only at the end (and where a run is stopped)
    cache_encodings: bool = True
    micro_batch: int = 0
    mixed_precision: str = "no"  # "bf16": the denoiser's forwards autocast (Policy.mixed_precision)

    def __post_init__(self) -> None:
        mixed_precision_dtype(self.mixed_precision)
        positive_ints = {"steps": self.steps, "batch_size": self.batch_size, "lora_rank": self.lora_rank}
        for name, value in positive_ints.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("warmup", "seed", "checkpoint_every", "micro_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not (math.isfinite(self.beta) and self.beta > 0):
            raise ValueError(f"beta must be positive and finite, got {self.beta}")
        if self.loss not in LOSS_KINDS:
            raise ValueError(f"loss must be one of {', '.join(LOSS_KINDS)}, got {self.loss!r}")
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            raise ValueError(f"lora_alpha must be positive, got {self.lora_alpha}")
        if self.weight_decay < 0 or self.max_grad_norm < 0:
            raise ValueError("weight_decay and max_grad_norm must be non-negative")
        if not 0 <= self.uncond_rate < 1:
            raise ValueError(f"uncond_rate must be in [0, 1), got {self.uncond_rate}")

    @classmethod
    def from_dict(cls, data: dict) -> DPOConfig:
        """Build from a job's JSON, naming unknown keys (a typo must not silently use a default)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DPO config field(s): {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True, eq=False)
class PreferencePair:
    """A prompt and two uint8 media, the preferred one first: images ``(H, W, 3)``, videos and
    view rings ``(T, H, W, 3)``. Ties are not representable: they carry no preference."""

    prompt: str
    winner: np.ndarray
    loser: np.ndarray

    def __post_init__(self) -> None:
        for name in ("winner", "loser"):
            media = getattr(self, name)
            if not isinstance(media, np.ndarray) or media.dtype != np.uint8:
                raise ValueError(f"{name} must be a uint8 numpy array")
            if media.ndim not in (3, 4) or media.shape[-1] != 3:
                raise ValueError(f"{name} must be (H, W, 3) or (T, H, W, 3), got {media.shape}")
        if self.winner.shape != self.loser.shape:
            raise ValueError(f"winner {self.winner.shape} and loser {self.loser.shape} differ in shape")


def pair_from_choice(prompt: str, first: np.ndarray, second: np.ndarray, choice: str) -> PreferencePair | None:
    """A judgment (``first``/``second``/``tie``/``both_bad``) as a pair; ``None`` when it has no winner."""
    if choice == "first":
        return PreferencePair(prompt, first, second)
    if choice == "second":
        return PreferencePair(prompt, second, first)
    return None


def pair_from_labels(prompt: str, media_0: np.ndarray, media_1: np.ndarray, label_0: float) -> PreferencePair | None:
    """A Pick-a-Pic style row (``label_0`` 1: image 0 preferred, 0: image 1, 0.5: tie) as a pair."""
    if label_0 == 1:
        return PreferencePair(prompt, media_0, media_1)
    if label_0 == 0:
        return PreferencePair(prompt, media_1, media_0)
    return None


# ------------------------------------------------------------------------------------------------
# Batches: frozen encoders applied once (cached) or per step
# ------------------------------------------------------------------------------------------------

_ENCODE_CHUNK = 32


class _PairEncoder:
    """Text conditions and clean samples of drawn pairs.

    With caching, every prompt and (latent pipelines) every image is encoded once, in a fixed
    order and fixed chunks, so the values do not depend on which batch first needed them: a
    resumed run sees bit-identical inputs. Pixel-space media are converted per batch (cheap).
    """

    def __init__(self, policy: Policy, pairs: Sequence[PreferencePair], *, cache: bool) -> None:
        self.policy, self.pairs, self.cache = policy, pairs, cache
        self.prompt_row: dict[str, int] = {}
        self.text: TextCondition | None = None
        self.latents: tuple[torch.Tensor, torch.Tensor] | None = None
        if cache:
            prompts = sorted({p.prompt for p in pairs})
            self.prompt_row = {p: i for i, p in enumerate(prompts)}
            chunks = [policy.encode(prompts[i : i + _ENCODE_CHUNK]) for i in range(0, len(prompts), _ENCODE_CHUNK)]
            self.text = chunks[0]
            for chunk in chunks[1:]:
                self.text = self.text.cat(chunk)
            if policy.vae is not None:
                self.latents = self._encode_all()

    def _encode_all(self) -> tuple[torch.Tensor, torch.Tensor]:
        means, stds = [], []
        for i in range(0, len(self.pairs), _ENCODE_CHUNK):
            chunk = self.pairs[i : i + _ENCODE_CHUNK]
            mean, std = encode_media(self.policy, [p.winner for p in chunk] + [p.loser for p in chunk])
            means.append(torch.stack(mean.chunk(2), dim=1))  # (n, 2, ...): winner, loser
            stds.append(torch.stack(std.chunk(2), dim=1))
        return torch.cat(means), torch.cat(stds)

    def condition(self, idx: np.ndarray, drop: np.ndarray) -> TextCondition:
        """Text condition of each drawn pair, the empty prompt where ``drop``."""
        if not self.cache:
            return self.policy.encode(["" if d else self.pairs[i].prompt for i, d in zip(idx, drop, strict=True)])
        rows = torch.tensor([self.prompt_row[self.pairs[i].prompt] for i in idx])
        cond = self.text.index(rows.to(self.text.embeds.device))
        if drop.any():
            mask = torch.from_numpy(drop).to(cond.embeds.device)
            uncond = self.policy.unconditional(len(idx))
            embeds = torch.where(mask[:, None, None], uncond.embeds, cond.embeds)
            pooled = None if cond.pooled is None else torch.where(mask[:, None], uncond.pooled, cond.pooled)
            cond = TextCondition(embeds, pooled)
        return cond

    def clean(self, idx: np.ndarray, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x0_w, x0_l)`` of the drawn pairs; latent posteriors sampled with ``generator``."""
        if self.latents is not None:
            rows = torch.from_numpy(np.asarray(idx)).to(self.latents[0].device)
            mean, std = self.latents[0][rows], self.latents[1][rows]
        else:
            chosen = [self.pairs[i] for i in idx]
            m, s = encode_media(self.policy, [p.winner for p in chosen] + [p.loser for p in chosen])
            mean = torch.stack(m.chunk(2), dim=1)
            std = None if s is None else torch.stack(s.chunk(2), dim=1)
        if std is not None:
            eps = torch.randn(mean.shape, generator=generator).to(mean.device, mean.dtype)
            mean = mean + std * eps
        return mean[:, 0], mean[:, 1]


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def _check_data(policy: Policy, data: Sequence[PreferencePair]) -> list[PreferencePair]:
    pairs = list(data)
    if not pairs:
        raise ValueError("Diffusion-DPO needs at least one preference pair (ties are not pairs)")
    expected = media_shape(policy)
    for i, pair in enumerate(pairs):
        if not isinstance(pair, PreferencePair):
            raise ValueError(f"data[{i}] is {type(pair).__name__}, not a PreferencePair")
        if pair.winner.shape != expected:
            raise ValueError(f"data[{i}] media are {pair.winner.shape}; this {policy.modality} model needs {expected}")
    return pairs


def prepare_adapter(policy: Policy, config: DPOConfig) -> list[torch.nn.Parameter]:
    """Add a LoRA adapter unless the denoiser has one; return its (float32) trainable parameters.

    The adapter's initial A is drawn from a generator seeded with ``config.seed`` (global RNG state is
    left untouched), so two runs of one config start identical. B = 0: the policy starts equal to
    the reference. An adapter already present (a loaded model version) is trained further, with the
    base model as reference.
    """
    if not lora.has_adapter(policy.denoiser):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            policy.add_adapter(rank=config.lora_rank, alpha=config.lora_alpha)
    params = lora.lora_parameters(policy.denoiser)
    for p in params:
        p.requires_grad_(True)
        if p.dtype in (torch.float16, torch.bfloat16):
            p.data = p.data.float()  # optimiser state and updates in fp32; peft casts activations
    return params


def _lr(config: DPOConfig, step: int) -> float:
    """Linear warm-up then constant; a function of the step alone, so resume needs no scheduler state."""
    return config.lr * (min(1.0, (step + 1) / config.warmup) if config.warmup else 1.0)


def dpo_step(policy: Policy, cond: TextCondition, noised: NoisedPairs, config: DPOConfig) -> dict[str, torch.Tensor]:
    """One forward of the stacked ``[winners; losers]`` batch under the policy and the reference.

    The reference is the same denoiser inside ``policy.disable_adapter()`` and ``torch.no_grad``.
    Returns the differentiable ``loss`` and detached diagnostics.
    """
    cond2 = cond.cat(cond)
    with torch.no_grad(), policy.disable_adapter():
        ref_err = per_sample_mse(policy.predict(noised.x_t, noised.timesteps, cond2), noised.target)
    model_err = per_sample_mse(policy.predict(noised.x_t, noised.timesteps, cond2), noised.target)
    model_w, model_l = model_err.chunk(2)
    ref_w, ref_l = ref_err.chunk(2)
    logits = dpo_logits(model_w, model_l, ref_w, ref_l)
    return {
        "loss": dpo_loss(logits, config.beta, config.loss),
        "implicit_acc": implicit_accuracy(logits.detach()),
        "model_diff": (model_w - model_l).detach().mean(),
        "ref_diff": (ref_w - ref_l).mean(),
        "model_mse": model_err.detach().mean(),
        "ref_mse": ref_err.mean(),
    }


def save_dpo_adapter(policy: Policy, directory: str | Path) -> Path:
    """Save the adapter in peft's layout (for :func:`training.algorithms.lora.load_lora`) and, where
    the pipeline has diffusers' LoRA loader (e.g. ``StableDiffusionPipeline``), also as
    ``pytorch_lora_weights.safetensors`` so ``pipe.load_lora_weights(directory)`` reads it."""
    directory = policy.save_adapter(directory)
    pipe = policy.pipeline
    saver = getattr(type(pipe), "save_lora_weights", None) if pipe is not None else None
    if saver is not None:
        name = "unet" if getattr(pipe, "unet", None) is policy.denoiser else "transformer"
        params = inspect.signature(saver).parameters
        if f"{name}_lora_layers" in params:
            from peft import get_peft_model_state_dict

            state = get_peft_model_state_dict(policy.denoiser, adapter_name=lora.ADAPTER_NAME)
            kwargs = {f"{name}_lora_layers": {k: v.detach().float().cpu() for k, v in state.items()}}
            if f"{name}_lora_adapter_metadata" in params:  # keeps lora_alpha (scale) with the weights
                kwargs[f"{name}_lora_adapter_metadata"] = policy.denoiser.peft_config[lora.ADAPTER_NAME].to_dict()
            saver(str(directory), weight_name=DIFFUSERS_LORA_FILE, **kwargs)
    return directory


def train_dpo(
    config: DPOConfig,
    components: Policy,
    data: Sequence[PreferencePair],
    *,
    run_dir: str | Path | None,
    on_step: Callable[[StepInfo], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tune ``components`` (a Policy) on preference pairs with Diffusion-DPO through a LoRA adapter.

    Each step draws ``batch_size`` distinct pairs (with replacement only when there are fewer pairs),
    drops prompts at ``uncond_rate``, noises winners and losers with shared noise and timestep
    (:func:`noise_pairs`) and takes one AdamW step on the adapter (the gradient accumulated over
    ``micro_batch`` pairs at a time where set). The denoiser runs in eval mode, so
    dropout cannot make policy and reference differ at initialisation. Checkpoints and exact resume
    come from :class:`~training.algorithms.run.Run`; the adapter is written to
    ``run_dir/adapter`` (:func:`save_dpo_adapter`). ``on_step`` metrics: loss, implicit_acc,
    model_diff, ref_diff, model_mse, ref_mse (watch ``model_mse - ref_mse``: DiffusionDPO issue #17),
    grad_norm, lr.
    """
    policy = components
    pairs = _check_data(policy, data)
    params = prepare_adapter(policy, config)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    run = Run.for_config(config, run_dir, on_step=on_step, should_stop=should_stop)
    modules = {"denoiser": policy.denoiser}
    start = run.resume(modules=modules, optimizer=optimizer)
    encoder = _PairEncoder(policy, pairs, cache=config.cache_encodings)
    clip = config.max_grad_norm if config.max_grad_norm > 0 else math.inf
    scheduler = policy.training_scheduler()
    chunk = config.micro_batch or config.batch_size
    with policy.eval_mode():
        for step in run.steps(start, optimizer=optimizer, lr_at=partial(_lr, config)):
            idx = run.rng.choice(len(pairs), size=config.batch_size, replace=config.batch_size > len(pairs))
            drop = run.rng.random(config.batch_size) < config.uncond_rate
            x0_w, x0_l = encoder.clean(idx, run.generator)
            noised = noise_pairs(policy, x0_w, x0_l, run.generator, scheduler)
            optimizer.zero_grad(set_to_none=True)
            sums: dict[str, torch.Tensor] = {}  # read once per step: no device sync per part
            for lo in range(0, config.batch_size, chunk):
                hi = min(lo + chunk, config.batch_size)
                share = (hi - lo) / config.batch_size  # every metric is a mean over the pairs
                with policy.mixed_precision(config.mixed_precision):
                    out = dpo_step(policy, encoder.condition(idx[lo:hi], drop[lo:hi]), noised.pairs(lo, hi), config)
                (out["loss"] * share).backward()
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + share * v.detach()
            grad_norm = torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            metrics = {k: float(v) for k, v in sums.items()}
            metrics |= {"grad_norm": float(grad_norm), "lr": optimizer.param_groups[0]["lr"]}
            run.end_step(step, metrics, modules=modules, optimizer=optimizer)
    run.close(modules=modules, optimizer=optimizer)
    adapter = save_dpo_adapter(policy, Path(run_dir) / ADAPTER_DIR) if run_dir is not None else None
    return run.result(
        adapter=str(adapter) if adapter is not None else None,
        final=dict(run.last_metrics),
        pairs=len(pairs),
        config=config.to_dict(),
    )


# ------------------------------------------------------------------------------------------------
# Pairs from simulated judgments on the shapes world
# ------------------------------------------------------------------------------------------------


def simulated_pairs(
    policy: Policy,
    specs: Sequence,
    *,
    seed: int = 0,
    accuracy: float = 0.85,
    steps: int = 20,
    guidance: float = 1.0,
    batch_size: int = 64,
) -> tuple[list[PreferencePair], dict]:
    """One simulated judgment per spec (a :class:`training.shapes.grammar.PromptSpec`) on two samples
    of ``policy`` (seeds ``seed + 2i`` and ``seed + 2i + 1``): utility = verifier score, the rater
    (:func:`training.shapes.raters.rater_choice`) picks the better one with probability
    ``accuracy``; ties and "both bad" are dropped. Returns the pairs and counts."""
    from training.algorithms.sampling import generate
    from training.shapes import raters, verify

    texts = [s.text for s in specs for _ in range(2)]
    seeds = [seed + k for k in range(len(texts))]
    media = generate(policy, texts, seeds=seeds, steps=steps, guidance=guidance, batch_size=batch_size)
    config = raters.RaterConfig(accuracy=accuracy)
    rng = random.Random(seed)
    pairs, ties, agree = [], 0, 0
    for i, spec in enumerate(specs):
        first, second = media[2 * i], media[2 * i + 1]
        u = [raters.utility(verify.verify(spec, m).score, None, config) for m in (first, second)]
        pair = pair_from_choice(spec.text, first, second, raters.rater_choice(u[0], u[1], rng, config))
        if pair is None:
            ties += 1
            continue
        pairs.append(pair)
        if u[0] != u[1]:
            agree += (pair.winner is first) == (u[0] > u[1])
    stats = {"judgments": len(specs), "pairs": len(pairs), "ties_dropped": ties, "agree_with_verifier": agree}
    return pairs, stats
