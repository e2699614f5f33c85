"""The policy-gradient loop shared by GRPO and DDPO/PPO: draw prompts, roll out, score, compute
advantages (the algorithm's part), recompute old log-probs, take PPO-clipped updates with a KL to
the LoRA-disabled reference, report and checkpoint every step (through :class:`~training.algorithms.run.Run`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from training.algorithms import lora
from training.algorithms.loading import mixed_precision_dtype
from training.algorithms.policy_gradient import (
    RLComponents,
    UpdateSettings,
    make_plan,
    old_log_probs,
    rollout,
    score,
    update,
)
from training.algorithms.run import Run, StepInfo, TrainResult

PromptData = Sequence[tuple[str, Mapping]]
# (rewards, prompts, group ids) -> (advantages (N,), kept (N,) bool, extra metrics)
AdvantageFn = Callable[[np.ndarray, list[str], list[int]], tuple[np.ndarray, np.ndarray, dict[str, float]]]


DEFAULT_ETA = {"epsilon": 1.0, "flow": 0.7}  # DDPO's DDIM eta; Flow-GRPO's SDE noise level


@dataclass(frozen=True)
class PolicyGradientConfig:
    """Settings shared by GRPO and DDPO/PPO; one ``step`` is one rollout batch and its updates.

    Defaults follow DDPO and Flow-GRPO (clip 1e-4 and advantage clip 5 for per-dimension mean
    log-probs, lr 3e-4 for LoRA, AdamW weight decay 1e-4, grad norm 1). ``eta`` is the DDIM eta
    (epsilon models) or the SDE noise level (flow models); None picks the family's default.
    ``timestep_fraction`` of the ``sampler_steps`` transitions of each sample are trained, drawn
    per sample, or the earliest (noisiest) ones with ``earliest_timesteps`` (see
    :func:`~training.algorithms.policy_gradient.make_plan` for why few-step DDIM needs it).
    ``sde_window`` k > 0 samples stochastically only on the first k steps (deterministic after,
    Flow-GRPO-Fast's SDE window) and trains ``timestep_fraction`` of those k. ``noise_block`` b > 1
    draws the step noise on b x b tiles of the sample only (a subspace of 1/b^2 of its dimensions;
    :mod:`training.algorithms.steps`, "Noise in a subspace").
    ``train_batch_size``/``sample_batch_size`` of 0 mean "all samples at once".
    """

    steps: int = 100
    prompts_per_step: int = 8
    sampler_steps: int = 10
    eta: float | None = None
    guidance: float = 1.0
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    clip_range: float = 1e-4
    adv_clip: float = 5.0
    kl_beta: float = 0.0
    timestep_fraction: float = 1.0
    earliest_timesteps: bool = False
    sde_window: int = 0
    noise_block: int = 1
    lora_rank: int = 4
    lora_alpha: float | None = None
    inner_epochs: int = 1
    train_batch_size: int = 0
    sample_batch_size: int = 0
    max_grad_norm: float = 1.0
    seed: int = 0
    checkpoint_every: int = 0
    mixed_precision: str = "no"  # "bf16": rollouts and training forwards autocast (Policy.mixed_precision)

    def __post_init__(self) -> None:
        mixed_precision_dtype(self.mixed_precision)
        positive = ("steps", "prompts_per_step", "sampler_steps", "lora_rank", "inner_epochs", "noise_block")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sde_window > self.sampler_steps:
            raise ValueError(f"sde_window ({self.sde_window}) exceeds sampler_steps ({self.sampler_steps})")
        names = ("train_batch_size", "sample_batch_size", "checkpoint_every", "kl_beta", "weight_decay", "sde_window")
        for name in names:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.eta is not None and not self.eta > 0:
            raise ValueError("eta must be > 0: a deterministic step has no log-probability")
        for name in ("learning_rate", "clip_range", "adv_clip", "max_grad_norm", "guidance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.timestep_fraction <= 1:
            raise ValueError(f"timestep_fraction must be in (0, 1], got {self.timestep_fraction}")
        if self.lora_alpha is not None and not self.lora_alpha > 0:
            raise ValueError(f"lora_alpha must be > 0, got {self.lora_alpha}")

    def to_dict(self) -> dict:
        """The settings as plain JSON values (what a job stores)."""
        return dataclasses.asdict(self)

    def eta_for(self, family: str) -> float:
        return self.eta if self.eta is not None else DEFAULT_ETA[family]

    @property
    def train_steps(self) -> int:
        """Transitions trained per sample (DDPO: ``int(steps * timestep_fraction)``, at least 1), of
        the SDE window's steps when there is one."""
        return max(1, int((self.sde_window or self.sampler_steps) * self.timestep_fraction))


class Stateful(Protocol):
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: Mapping) -> None: ...


def prepare_policy(components: RLComponents, config: PolicyGradientConfig) -> list[torch.nn.Parameter]:
    """Add a LoRA adapter if missing (seeded by ``config.seed`` without touching the global RNG)
    and return the trainable parameters."""
    policy = components.policy
    if not lora.has_adapter(policy.denoiser):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            policy.add_adapter(rank=config.lora_rank, alpha=config.lora_alpha)
    params = policy.trainable_parameters()
    for p in params:
        p.requires_grad_(True)
    return params


def _draw(run: Run, data: PromptData, config: PolicyGradientConfig, per_prompt: int, same_start: bool):
    """Prompts, metadata, group ids and seeds of one step, all from ``run.rng``."""
    picks = run.rng.choice(len(data), size=config.prompts_per_step, replace=len(data) < config.prompts_per_step)
    groups = [g for g in range(len(picks)) for _ in range(per_prompt)]
    prompts = [data[picks[g]][0] for g in groups]
    metadata = [dict(data[picks[g]][1]) for g in groups]
    seeds = run.rng.integers(0, 2**31 - 1, size=len(groups)).tolist()
    start = None
    if same_start:
        per_group = run.rng.integers(0, 2**31 - 1, size=len(picks)).tolist()
        start = [per_group[g] for g in groups]
    return prompts, metadata, groups, seeds, start


def _step(
    run: Run,
    config: PolicyGradientConfig,
    components: RLComponents,
    draw,
    advantages: AdvantageFn,
    optimizer: torch.optim.Optimizer,
    settings: UpdateSettings,
) -> dict[str, float]:
    """One RL step: roll out, score, compute advantages, plan and take the PPO updates."""
    policy = components.policy
    prompts, metadata, groups, seeds, start_seeds = draw
    traj = rollout(
        policy,
        prompts,
        seeds=seeds,
        steps=config.sampler_steps,
        eta=config.eta_for(policy.family),
        guidance=config.guidance,
        batch_size=config.sample_batch_size,
        start_seeds=start_seeds,
        sde_window=config.sde_window,
        noise_block=config.noise_block,
    )
    rewards = score(components.reward, traj, metadata)
    adv, kept, extra = advantages(rewards, prompts, groups)
    plan = make_plan(
        run.rng,
        np.flatnonzero(kept),
        sampler_steps=config.sampler_steps,
        train_steps=config.train_steps,
        batch_size=config.train_batch_size,
        earliest=config.earliest_timesteps,
        window=config.sde_window,
    )
    # the first chunk's old log-probs come from its own training forward (see old_log_probs)
    old = old_log_probs(policy, traj, plan, include_first=False)
    adv_t = torch.as_tensor(adv, dtype=torch.float32, device=policy.device)
    metrics = {
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "kept_fraction": float(np.mean(kept)),
        "lr": optimizer.param_groups[0]["lr"],
        **extra,
    }
    return metrics | update(policy, optimizer, traj, adv_t, plan, old, settings)


def train_policy_gradient(
    config: PolicyGradientConfig,
    components: RLComponents,
    data: PromptData,
    *,
    samples_per_prompt: int,
    advantages: AdvantageFn,
    state: Stateful | None = None,
    same_initial_noise: bool = False,
    run_dir: str | Path | None,
    on_step: Callable[[StepInfo], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """The loop shared by GRPO and DDPO: draw prompts, roll out, score, compute advantages, update.

    ``state`` (e.g. DDPO's prompt statistics) is saved with every checkpoint and restored on
    resume, so a resumed run equals an uninterrupted one. Metrics per step: ``reward_mean``,
    ``reward_std``, ``policy_loss``, ``kl``, ``ratio_mean``, ``ratio_dev_first`` (max |ratio - 1|
    before the step's first update: 0 when log-probs are consistent), ``clipfrac``,
    ``approx_kl``, ``grad_norm``, ``rollout_logprob_dev``, ``kept_fraction``, ``updates``, ``lr`` and the advantage
    function's extras (GRPO: ``zero_std_groups``).
    """
    if not data:
        raise ValueError("no prompts to train on")
    policy = components.policy
    params = prepare_policy(components, config)
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    modules = {"denoiser": policy.denoiser}
    run = Run.for_config(config, run_dir, on_step=on_step, should_stop=should_stop)
    start = run.resume(modules=modules, optimizer=optimizer)
    if state is not None and "advantage_state" in run.extra:
        state.load_state_dict(run.extra["advantage_state"])
    eta = config.eta_for(policy.family)
    settings = UpdateSettings(
        config.clip_range, config.adv_clip, config.kl_beta, config.max_grad_norm, config.inner_epochs
    )
    for step_index in run.steps(start):
        draw = _draw(run, data, config, samples_per_prompt, same_initial_noise)
        with policy.mixed_precision(config.mixed_precision):  # the step only: on_step runs in full precision
            metrics = _step(run, config, components, draw, advantages, optimizer, settings)
        if state is not None:
            run.extra["advantage_state"] = state.state_dict()
        run.end_step(step_index, metrics, modules=modules, optimizer=optimizer)
    run.close(modules=modules, optimizer=optimizer)
    adapter = policy.save_adapter(Path(run_dir) / "adapter") if run_dir is not None else None
    samples = config.prompts_per_step * samples_per_prompt
    return run.result(adapter=str(adapter) if adapter else None, eta=eta, samples_per_step=samples)
