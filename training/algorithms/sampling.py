"""Sampling a :class:`~training.algorithms.loading.Policy`, plain or with per-step log-probabilities.

``generate`` is the deterministic-per-seed sampler used for rounds and evaluation: it steps with
diffusers' own schedulers (DDIM for epsilon models, flow-matching Euler for flow models).
``sample_with_logprobs`` runs the stochastic samplers the RL algorithms need (DDIM with eta > 0,
Song et al. 2021 eq. 12, as in DDPO, Black et al. 2023; the Flow-GRPO SDE, Liu et al. 2025; the
equations are in :mod:`training.algorithms.steps`) and records every transition
``(x_t, x_{t-1})`` with its Gaussian log-probability; ``transition_log_prob`` recomputes it under
the current weights. With eta = 0 ``sample_with_logprobs`` reproduces ``generate_latents``.

Unlike DDPO's code the previous timestep is not clamped at 0: the last DDIM step uses
``final_alpha_cumprod`` exactly as ``DDIMScheduler.step`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from diffusers.utils.torch_utils import randn_tensor

from training.algorithms.loading import Policy, TextCondition
from training.algorithms.steps import StepOutput, block_shape, ddim_step, flow_sde_step


@dataclass(frozen=True)
class Schedule:
    """Per-step coefficients of a ``steps``-step sampler, indexable by step (int or ``(B,)`` tensor)."""

    family: str
    timesteps: torch.Tensor  # (S,) what the denoiser is given
    alpha_t: torch.Tensor | None = None  # (S,) epsilon: alpha-bar at t
    alpha_prev: torch.Tensor | None = None  # (S,) epsilon: alpha-bar at the previous timestep
    prediction_type: str = "epsilon"
    clip_range: float | None = None
    sigmas: torch.Tensor | None = None  # (S+1,) flow

    @property
    def steps(self) -> int:
        return len(self.timesteps)


def make_schedule(policy: Policy, steps: int) -> Schedule:
    """The coefficients of the policy's sampler for ``steps`` steps (from a fresh scheduler)."""
    scheduler = policy.sampling_scheduler()
    scheduler.set_timesteps(steps, device=policy.device)
    if policy.family == "flow":
        return Schedule("flow", scheduler.timesteps, sigmas=scheduler.sigmas.float().to(policy.device))
    cfg = scheduler.config
    if cfg.thresholding:
        raise NotImplementedError("dynamic thresholding is not supported by the log-prob sampler")
    acp = scheduler.alphas_cumprod.float()
    t = scheduler.timesteps.cpu()
    prev = t - cfg.num_train_timesteps // scheduler.num_inference_steps
    final = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=torch.float32)
    alpha_prev = torch.where(prev >= 0, acp[prev.clamp(min=0)], final)
    return Schedule(
        "epsilon",
        scheduler.timesteps,
        alpha_t=acp[t].to(policy.device),
        alpha_prev=alpha_prev.to(policy.device),
        prediction_type=cfg.prediction_type,
        clip_range=cfg.clip_sample_range if cfg.clip_sample else None,
    )


def _per_sample(values: torch.Tensor, idx, like: torch.Tensor) -> torch.Tensor:
    v = values[idx]
    return v.reshape(-1, *([1] * (like.ndim - 1))) if v.ndim == 1 else v


def step(
    schedule: Schedule,
    step_index: int | torch.Tensor,
    model_output: torch.Tensor,
    x_t: torch.Tensor,
    *,
    eta: float,
    noise: torch.Tensor | None = None,
    prev_sample: torch.Tensor | None = None,
    block: int = 1,
) -> StepOutput:
    """The family's stochastic step at ``step_index`` (an int, or one index per sample); ``block``
    > 1 puts its noise on tiles (:mod:`training.algorithms.steps`)."""
    if schedule.family == "flow":
        return flow_sde_step(
            model_output,
            x_t,
            _per_sample(schedule.sigmas, step_index, x_t),
            _per_sample(schedule.sigmas, step_index + 1, x_t),
            noise_level=eta,
            sigma_max=schedule.sigmas[1],
            noise=noise,
            prev_sample=prev_sample,
            block=block,
        )
    return ddim_step(
        model_output,
        x_t,
        _per_sample(schedule.alpha_t, step_index, x_t),
        _per_sample(schedule.alpha_prev, step_index, x_t),
        eta=eta,
        prediction_type=schedule.prediction_type,
        clip_range=schedule.clip_range,
        noise=noise,
        prev_sample=prev_sample,
        block=block,
    )


@dataclass
class Trajectory:
    """Rollouts of ``sample_with_logprobs``; sample ``b``'s transition ``i`` is
    ``latents[b, i] -> latents[b, i + 1]`` at ``schedule.timesteps[i]`` with ``log_probs[b, i]``."""

    prompts: list[str]
    seeds: list[int]
    latents: torch.Tensor  # (B, S+1, *sample_shape), float32; [:, 0] is x_T, [:, -1] the final state
    log_probs: torch.Tensor  # (B, S)
    schedule: Schedule
    eta: float
    guidance: float
    cond: TextCondition
    media: list[np.ndarray]
    sde_window: int = 0  # > 0: only the first sde_window transitions are stochastic (and trainable)
    noise_block: int = 1  # > 1: the step noise lives on noise_block x noise_block tiles

    @property
    def timesteps(self) -> torch.Tensor:
        return self.schedule.timesteps


def transition(
    policy: Policy,
    schedule: Schedule,
    step_index: int | torch.Tensor,
    x_t: torch.Tensor,
    x_prev: torch.Tensor,
    cond: TextCondition,
    *,
    eta: float,
    guidance: float = 1.0,
    noise_block: int = 1,
) -> StepOutput:
    """Score the given transition ``x_t -> x_prev`` under the policy's current weights.

    Differentiable (call it under ``torch.no_grad`` for the old or reference log-probs, and
    inside ``policy.disable_adapter()`` for the reference policy).
    """
    t = schedule.timesteps[step_index]
    out = policy.predict(x_t, t, cond, guidance=guidance)
    return step(schedule, step_index, out, x_t, eta=eta, prev_sample=x_prev, block=noise_block)


def transition_log_prob(
    policy: Policy,
    schedule: Schedule,
    step_index: int | torch.Tensor,
    x_t: torch.Tensor,
    x_prev: torch.Tensor,
    cond: TextCondition,
    *,
    eta: float,
    guidance: float = 1.0,
    noise_block: int = 1,
) -> torch.Tensor:
    """``log p_theta(x_prev | x_t)`` per sample ``(B,)``; see :func:`transition`."""
    out = transition(
        policy, schedule, step_index, x_t, x_prev, cond, eta=eta, guidance=guidance, noise_block=noise_block
    )
    return out.log_prob


def trajectory_log_prob(policy: Policy, traj: Trajectory, step_index: int | torch.Tensor) -> torch.Tensor:
    """Recompute ``traj.log_probs[:, i]`` (``i`` an int or one index per sample) with current weights."""
    rows = torch.arange(traj.latents.shape[0], device=traj.latents.device)
    idx = step_index if isinstance(step_index, int) else step_index.to(traj.latents.device)
    return transition_log_prob(
        policy,
        traj.schedule,
        step_index,
        traj.latents[rows, idx],
        traj.latents[rows, idx + 1],
        traj.cond,
        eta=traj.eta,
        guidance=traj.guidance,
        noise_block=traj.noise_block,
    )


def _generators(seeds: list[int]) -> list[torch.Generator]:
    # CPU generators: the same seed gives the same noise on every device.
    return [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]


def _check(prompts, seeds) -> tuple[list[str], list[int]]:
    prompts, seeds = list(prompts), [int(s) for s in seeds]
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    return prompts, seeds


@torch.no_grad()
def sample_with_logprobs(
    policy: Policy,
    prompts: list[str],
    *,
    seeds: list[int],
    steps: int,
    eta: float,
    guidance: float = 1.0,
    sde_window: int = 0,
    start_generators: list[torch.Generator] | None = None,
    noise_block: int = 1,
) -> Trajectory:
    """Stochastic rollouts recording latents and per-step log-probs (``eta``: DDIM eta or flow noise level).

    ``sde_window`` k > 0 makes only the first k steps stochastic and the rest the plain
    deterministic step (log-prob 0, nothing to train there): Flow-GRPO-Fast's SDE window, put at
    the start, where the shapes world decides what is drawn where. Noise then only enters where
    training can credit it, and the rollouts end as cleanly as the deterministic sampler's.
    ``start_generators`` (one per sample) draw x_T instead of the seeds' generators, which then
    draw only the step noise (DanceGRPO's shared start of a group). ``noise_block`` b > 1 draws the
    step noise on b x b tiles only (:mod:`training.algorithms.steps`, "Noise in a subspace")."""
    prompts, seeds = _check(prompts, seeds)
    if sde_window < 0:
        raise ValueError(f"sde_window must be >= 0, got {sde_window}")
    noise_shape = block_shape((len(prompts), *policy.sample_shape), noise_block)
    generators = _generators(seeds)
    schedule = make_schedule(policy, steps)
    with policy.eval_mode():
        cond = policy.encode(prompts)
        x = policy.initial_noise(start_generators or generators).float()
        latents, log_probs = [x], []
        for i, t in enumerate(schedule.timesteps):
            out = policy.predict(x, t, cond, guidance=guidance)
            step_eta = eta if sde_window == 0 or i < sde_window else 0.0
            noise = None
            if step_eta > 0:
                noise = randn_tensor(noise_shape, generator=generators, device=out.device, dtype=out.dtype).float()
            result = step(schedule, i, out, x, eta=step_eta, noise=noise, block=noise_block)
            x = result.prev_sample
            latents.append(x)
            log_probs.append(result.log_prob)
        media = policy.to_media(x)
    return Trajectory(
        prompts=prompts,
        seeds=seeds,
        latents=torch.stack(latents, dim=1),
        log_probs=torch.stack(log_probs, dim=1),
        schedule=schedule,
        eta=eta,
        guidance=guidance,
        cond=cond,
        media=media,
        sde_window=sde_window,
        noise_block=noise_block,
    )


@torch.no_grad()
def generate_latents(
    policy: Policy,
    prompts: list[str],
    *,
    seeds: list[int],
    steps: int,
    eta: float = 0.0,
    guidance: float = 1.0,
) -> torch.Tensor:
    """Final states ``(B, *sample_shape)`` of the plain sampler (before decoding); see :func:`generate`.

    Sample ``i`` uses its own generator seeded with ``seeds[i]``. Epsilon models step with
    diffusers' ``DDIMScheduler.step(eta=eta)``; flow models with the scheduler's Euler step when
    ``eta == 0`` and with the Flow-GRPO SDE (noise level ``eta``) otherwise.
    """
    prompts, seeds = _check(prompts, seeds)
    if policy.family == "flow" and eta > 0:
        traj = sample_with_logprobs(policy, prompts, seeds=seeds, steps=steps, eta=eta, guidance=guidance)
        return traj.latents[:, -1]
    generators = _generators(seeds)
    with policy.eval_mode():
        cond = policy.encode(prompts)
        scheduler = policy.sampling_scheduler()
        scheduler.set_timesteps(steps, device=policy.device)
        x = policy.initial_noise(generators) * getattr(scheduler, "init_noise_sigma", 1.0)
        kwargs = {"eta": eta, "generator": generators if eta > 0 else None} if policy.family == "epsilon" else {}
        for t in scheduler.timesteps:
            out = policy.predict(x, t, cond, guidance=guidance)
            x = scheduler.step(out, t, x, **kwargs, return_dict=False)[0]
    return x


@torch.no_grad()
def generate(
    policy: Policy,
    prompts: list[str],
    *,
    seeds: list[int],
    steps: int,
    eta: float = 0.0,
    guidance: float = 1.0,
    batch_size: int | None = None,
) -> list[np.ndarray]:
    """uint8 media per prompt (image ``(H,W,3)``, video ``(T,H,W,3)``, views ``(V,H,W,3)``).

    Deterministic per seed; ``batch_size`` bounds how many samples run through the model at once.
    """
    prompts, seeds = _check(prompts, seeds)
    size = batch_size or len(prompts) or 1
    media: list[np.ndarray] = []
    for start in range(0, len(prompts), size):
        x = generate_latents(
            policy,
            prompts[start : start + size],
            seeds=seeds[start : start + size],
            steps=steps,
            eta=eta,
            guidance=guidance,
        )
        with policy.eval_mode():
            media.extend(policy.to_media(x))
    return media
