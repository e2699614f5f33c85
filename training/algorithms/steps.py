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

**Noise in a subspace** (``block`` b > 1). The step noise can be confined to the images that are
constant on b x b tiles of the last two (spatial) dimensions: an orthonormal basis ``e_k`` of that
subspace has ``1 / b`` on one tile of one channel (frame, view) and 0 elsewhere, so a sample's
coordinates are ``b * (tile mean)`` (:func:`block_coords`). The step is then
``x_{t-1} = mean + std * sum_k z_k e_k`` with ``z ~ N(0, I)`` in those coordinates, and
deterministic (the mean) in the complement. Each tile direction gets the same variance as under
full noise; only the directions finer than a tile lose theirs. What it buys: the score-function
gradient of a step is ``A (x_{t-1} - mean) / std^2 . d mean / d theta``, and every noise dimension
that does not change the reward adds variance to it without signal; where the reward is decided
at the scale of objects (which colour, where, how many), tiles keep the signal and drop most of
that variance (3,072 dimensions of a 3 x 32 x 32 image become 48 with b = 8). To keep the flow
SDE's marginals with noise only in the subspace, its score correction is projected too (a
diffusion matrix ``g^2 P`` needs the drift ``v - g^2 / 2 P score``), and DDIM keeps the
complement's direction coefficient at ``sqrt(1 - a_prev)`` (no noise there). Log-probabilities and
the KL are then means over the subspace's dimensions, the density of the step in its coordinates.
``block`` 1 is the ordinary full-noise step, computed exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass(frozen=True)
class StepOutput:
    """One Gaussian transition: the sample taken, its log-prob ``(B,)``, the mean and the std."""

    prev_sample: torch.Tensor
    log_prob: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    block: int = 1  # the noise lives on block x block tiles (see the module docstring)


def _check_block(shape: torch.Size | tuple[int, ...], block: int) -> None:
    if block < 1:
        raise ValueError(f"noise block must be >= 1, got {block}")
    if len(shape) < 3 or shape[-1] % block or shape[-2] % block:
        raise ValueError(f"noise block {block} does not tile a sample of shape {tuple(shape[1:])}")


def block_shape(shape: torch.Size | tuple[int, ...], block: int) -> tuple[int, ...]:
    """The shape of the coordinates of a batch of ``shape`` in the ``block`` subspace."""
    if block == 1:
        return tuple(shape)
    _check_block(shape, block)
    return (*shape[:-2], shape[-2] // block, shape[-1] // block)


def block_coords(x: torch.Tensor, block: int) -> torch.Tensor:
    """Coordinates of ``x`` in the orthonormal basis of images constant on ``block`` x ``block``
    tiles of its last two dimensions: ``block`` times each tile's mean. ``block`` 1: ``x`` itself."""
    if block == 1:
        return x
    _check_block(x.shape, block)
    h, w = x.shape[-2:]
    pooled = F.avg_pool2d(x.reshape(-1, 1, h, w), block) * block
    return pooled.reshape(*x.shape[:-2], h // block, w // block)


def block_embed(z: torch.Tensor, block: int) -> torch.Tensor:
    """The image whose :func:`block_coords` are ``z``: each tile constant at ``z / block``."""
    if block == 1:
        return z
    return z.repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1) / block


def block_project(x: torch.Tensor, block: int) -> torch.Tensor:
    """The orthogonal projection of ``x`` on the ``block`` subspace (each tile replaced by its mean)."""
    return block_embed(block_coords(x, block), block)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, block: int = 1) -> torch.Tensor:
    """Per-sample mean over non-batch dims of ``log N(x; mean, std^2)``
    ``= -(x - mean)^2 / (2 std^2) - log std - log sqrt(2 pi)``; zeros where ``std == 0``. With
    ``block`` > 1 the same in the subspace's coordinates (``x - mean`` through :func:`block_coords`):
    the density of a step whose noise lives on tiles."""
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    safe = torch.where(std > 0, std, torch.ones_like(std))
    lp = -(block_coords(x - mean, block) ** 2) / (2 * safe**2) - torch.log(safe) - LOG_SQRT_2PI
    lp = torch.where(std > 0, lp, torch.zeros_like(lp))
    return lp.mean(dim=tuple(range(1, lp.ndim)))


def _finish(mean, std, noise, prev_sample, block: int = 1) -> StepOutput:
    """``noise`` is in the subspace's coordinates (:func:`block_shape`), the full shape for block 1."""
    if prev_sample is None:
        prev_sample = mean + std * block_embed(noise, block) if noise is not None else mean
    prev_sample = prev_sample.float()
    return StepOutput(prev_sample, gaussian_log_prob(prev_sample.detach(), mean, std, block), mean, std, block)


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
    block: int = 1,
) -> StepOutput:
    """DDIM step x_t -> x_{t-1} (Song et al. 2021, eq. 12 and 16) with its DDPO log-prob.

    ``alpha_t``/``alpha_prev`` are alpha-bar at t and at the previous timestep, broadcastable to
    ``x_t``. Give ``noise`` to sample, or ``prev_sample`` to score a given transition. ``block``
    > 1 puts the noise on tiles (module docstring); ``noise`` is then in the tiles' coordinates.
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
    if block == 1:
        mean = alpha_prev**0.5 * x0 + (1 - alpha_prev - std**2) ** 0.5 * eps
    else:  # the complement has no noise, so its direction coefficient stays sqrt(1 - a_prev)
        noisy, plain = (1 - alpha_prev - std**2) ** 0.5, (1 - alpha_prev) ** 0.5
        mean = alpha_prev**0.5 * x0 + plain * eps + block_project((noisy - plain) * eps, block)
    return _finish(mean, std, noise if eta > 0 else None, prev_sample, block)


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
    block: int = 1,
) -> StepOutput:
    """Flow-GRPO SDE step s -> s_next (Liu et al. 2025), see the module docstring for the equations.

    ``sigma_max`` replaces ``sigma`` in ``1 - sigma`` where ``sigma == 1``. With
    ``noise_level == 0`` this is the Euler step ``x + v (s_next - s)``. ``block`` > 1 puts the
    noise, and with it the score correction, on tiles; ``noise`` is then in the tiles' coordinates.
    """
    v, x = velocity.float(), x_t.float()
    dt = sigma_next - sigma
    if noise_level == 0:
        return _finish(x + v * dt, torch.zeros_like(dt), None, prev_sample, block)
    denom = 1 - torch.where(sigma == 1, torch.as_tensor(sigma_max, dtype=sigma.dtype), sigma)
    sigma_t = torch.sqrt(sigma / denom) * noise_level
    if block == 1:
        mean = x * (1 + sigma_t**2 / (2 * sigma) * dt) + v * (1 + sigma_t**2 * (1 - sigma) / (2 * sigma)) * dt
    else:
        mean = x + v * dt + block_project(sigma_t**2 / (2 * sigma) * (x + (1 - sigma) * v), block) * dt
    std = sigma_t * torch.sqrt(-dt)
    return _finish(mean, std, noise, prev_sample, block)
