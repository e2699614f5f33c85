"""Single stochastic denoising steps as Gaussian policies, with their log-probabilities.

Each step is ``x_{t-1} ~ N(mean, std^2)``:

* Epsilon models, DDIM with eta > 0 (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12):
  ``x0 = (x_t - sqrt(1 - a_t) eps) / sqrt(a_t)`` (clipped when the scheduler clips),
  ``sigma_t = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev)`` (eq. 16),
  ``mean = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma_t^2) eps``, ``std = sigma_t``; ``a`` is
  alpha-bar. Treating each step as a Gaussian policy is DDPO (Black et al. 2023, "Training
  Diffusion Models with Reinforcement Learning").
* Flow models, the SDE of Flow-GRPO (Liu et al. 2025, "Flow-GRPO: Training Flow Matching Models via
  Online RL"), for ``x_s = (1 - s) x0 + s eps`` and ``v = eps - x0``: the score is
  ``-(x + (1 - s) v) / s``, and the reverse SDE with diffusion ``sigma_s = a sqrt(s / (1 - s))``
  discretised with ``dt = s_next - s < 0`` gives
  ``mean = x + [v + sigma_s^2 / (2 s) (x + (1 - s) v)] dt``, ``std = sigma_s sqrt(-dt)``.
  At ``s = 1`` the ``1 - s`` in sigma's denominator is replaced by ``1 - s_1`` (the first step
  below 1), as Flow-GRPO does. ``a`` is the noise level.

With eta (noise level) 0 both means are the deterministic samplers (DDIM with sigma 0; the Euler
step ``x + v dt``); the log-probability of a zero-std step is undefined and returned as 0.
Log-probabilities are per-sample means over all state dimensions, as in DDPO and Flow-GRPO, so an
importance ratio is ``exp`` of a mean per-dimension difference. All step math is in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class StepOutput:
    """One Gaussian transition: the sample taken, its log-prob ``(B,)``, the mean and the std."""

    prev_sample: torch.Tensor
    log_prob: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over non-batch dims of ``log N(x; mean, std^2)``
    ``= -(x - mean)^2 / (2 std^2) - log std - log sqrt(2 pi)``; zeros where ``std == 0``."""
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    safe = torch.where(std > 0, std, torch.ones_like(std))
    lp = -((x - mean) ** 2) / (2 * safe**2) - torch.log(safe) - LOG_SQRT_2PI
    lp = torch.where(std > 0, lp, torch.zeros_like(lp))
    return lp.mean(dim=tuple(range(1, lp.ndim)))


def _finish(mean, std, noise, prev_sample) -> StepOutput:
    if prev_sample is None:
        prev_sample = mean + std * noise if noise is not None else mean
    prev_sample = prev_sample.float()
    return StepOutput(prev_sample, gaussian_log_prob(prev_sample.detach(), mean, std), mean, std)


def ddim_step(
    model_output: torch.Tensor,
    x_t: torch.Tensor,
    alpha_t: torch.Tensor,
    alpha_prev: torch.Tensor,
    *,
    eta: float,
    prediction_type: str = "epsilon",
    clip_range: float | None = None,
    noise: torch.Tensor | None = None,
    prev_sample: torch.Tensor | None = None,
) -> StepOutput:
    """DDIM step x_t -> x_{t-1} (Song et al. 2021, eq. 12 and 16) with its DDPO log-prob.

    ``alpha_t``/``alpha_prev`` are alpha-bar at t and at the previous timestep, broadcastable to
    ``x_t``. Give ``noise`` to sample, or ``prev_sample`` to score a given transition.
    """
    out, x = model_output.float(), x_t.float()
    beta_t = 1 - alpha_t
    if prediction_type == "epsilon":
        x0 = (x - beta_t**0.5 * out) / alpha_t**0.5
        eps = out
    elif prediction_type == "v_prediction":
        x0 = alpha_t**0.5 * x - beta_t**0.5 * out
        eps = alpha_t**0.5 * out + beta_t**0.5 * x
    elif prediction_type == "sample":
        x0 = out
        eps = (x - alpha_t**0.5 * x0) / beta_t**0.5
    else:
        raise ValueError(f"unsupported prediction_type {prediction_type!r}")
    if clip_range is not None:
        x0 = x0.clamp(-clip_range, clip_range)
    variance = ((1 - alpha_prev) / beta_t) * (1 - alpha_t / alpha_prev)
    std = eta * variance**0.5
    mean = alpha_prev**0.5 * x0 + (1 - alpha_prev - std**2) ** 0.5 * eps
    return _finish(mean, std, noise if eta > 0 else None, prev_sample)


def flow_sde_step(
    velocity: torch.Tensor,
    x_t: torch.Tensor,
    sigma: torch.Tensor,
    sigma_next: torch.Tensor,
    *,
    noise_level: float,
    sigma_max: torch.Tensor | float,
    noise: torch.Tensor | None = None,
    prev_sample: torch.Tensor | None = None,
) -> StepOutput:
    """Flow-GRPO SDE step s -> s_next (Liu et al. 2025), see the module docstring for the equations.

    ``sigma_max`` replaces ``sigma`` in ``1 - sigma`` where ``sigma == 1``. With
    ``noise_level == 0`` this is the Euler step ``x + v (s_next - s)``.
    """
    v, x = velocity.float(), x_t.float()
    dt = sigma_next - sigma
    if noise_level == 0:
        return _finish(x + v * dt, torch.zeros_like(dt), None, prev_sample)
    denom = 1 - torch.where(sigma == 1, torch.as_tensor(sigma_max, dtype=sigma.dtype), sigma)
    sigma_t = torch.sqrt(sigma / denom) * noise_level
    mean = x * (1 + sigma_t**2 / (2 * sigma) * dt) + v * (1 + sigma_t**2 * (1 - sigma) / (2 * sigma)) * dt
    std = sigma_t * torch.sqrt(-dt)
    return _finish(mean, std, noise, prev_sample)
