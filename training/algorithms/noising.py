"""Clean media into a model's space, and the shared noising of preference pairs.

Used by the trainers that score denoising errors (Diffusion-DPO): uint8 media become ``x0`` in the
model's space (pixel models undo their ``pixel_shift``/``pixel_scale``; latent models encode with
the VAE), and a pair is noised at one shared ``(eps, t)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from training.algorithms.loading import Policy

# ------------------------------------------------------------------------------------------------


def media_shape(policy: Policy) -> tuple[int, ...]:
    """The uint8 media shape the policy trains on (pixels; latents times the VAE's downscale)."""
    spatial = policy.sample_shape[-2:]
    if policy.vae is not None:
        factor = 2 ** (len(policy.vae.config.block_out_channels) - 1)
        spatial = tuple(s * factor for s in spatial)
    if len(policy.sample_shape) == 4:
        return (policy.sample_shape[1], *spatial, 3)
    return (*spatial, 3)


def media_to_pixels(media: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 channels-last media to float pixels in [-1, 1], channels first: ``(B, 3, H, W)`` or
    ``(B, 3, T, H, W)`` (the inverse of :func:`training.algorithms.pipelines.to_uint8`)."""
    x = torch.from_numpy(np.stack(media)).float() / 127.5 - 1.0
    return x.permute(0, 3, 1, 2).contiguous() if x.ndim == 4 else x.permute(0, 4, 1, 2, 3).contiguous()


@torch.no_grad()
def encode_media(policy: Policy, media: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The clean sample ``x0`` in the model's space as ``(mean, std)``; ``std`` is None when ``x0`` is
    deterministic (pixel space). Inverse of :meth:`Policy.decode`: pixel models undo their
    ``pixel_shift``/``pixel_scale``; latent models encode with the VAE, whose posterior is sampled
    per step (as SD training scripts do) and scaled as ``(z - shift_factor) * scaling_factor``."""
    pixels = media_to_pixels(media).to(policy.device)
    if policy.vae is None:
        config = policy.pipeline.config if policy.pipeline is not None else {}
        shift, scale = float(config.get("pixel_shift", 0.0)), float(config.get("pixel_scale", 1.0))
        return ((pixels - shift) / scale).to(policy.dtype), None
    video = pixels.ndim == 5
    if video:  # (B, C, F, H, W): encode frame by frame, like Policy.decode
        b, c, f, h, w = pixels.shape
        pixels = pixels.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
    dist = policy.vae.encode(pixels.to(policy.vae.dtype)).latent_dist
    scale = policy.vae.config.scaling_factor
    shift = getattr(policy.vae.config, "shift_factor", None) or 0.0
    mean, std = (dist.mean - shift) * scale, dist.std * scale
    if video:
        mean, std = (t.reshape(b, f, *t.shape[1:]).permute(0, 2, 1, 3, 4) for t in (mean, std))
    return mean.to(policy.dtype), std.to(policy.dtype)


@dataclass(frozen=True)
class NoisedPairs:
    """A stacked ``[winners; losers]`` batch at one noisy point per pair (``2B`` rows each)."""

    x_t: torch.Tensor
    timesteps: torch.Tensor  # what the denoiser is given
    target: torch.Tensor
    noise: torch.Tensor

    def pairs(self, lo: int, hi: int) -> NoisedPairs:
        """Pairs ``lo:hi`` alone, still stacked ``[winners; losers]`` (all of them: no copy)."""
        b = self.x_t.shape[0] // 2
        if lo == 0 and hi == b:
            return self
        rows = torch.cat([torch.arange(lo, hi), torch.arange(b + lo, b + hi)]).to(self.x_t.device)
        return NoisedPairs(*(t.index_select(0, rows) for t in (self.x_t, self.timesteps, self.target, self.noise)))


def noise_pairs(
    policy: Policy, x0_w: torch.Tensor, x0_l: torch.Tensor, generator: torch.Generator, scheduler=None
) -> NoisedPairs:
    """Noise winners and losers with the SAME noise and timestep per pair (Wallace et al. 2023,
    sec. 4: both terms of the DPO loss are evaluated at one shared ``(eps, t)``; independent draws
    would swamp the small error differences the loss compares with noise of the same size).

    Draws come from ``generator`` (CPU) so a run is reproducible and resumable on any device.
    ``scheduler``: the policy's training scheduler, to reuse one across steps (default: a fresh one).
    """
    b = x0_w.shape[0]
    x0 = torch.cat([x0_w, x0_l])
    noise = torch.randn(x0_w.shape, generator=generator).to(x0.device, x0.dtype)
    noise = torch.cat([noise, noise])
    scheduler = scheduler if scheduler is not None else policy.training_scheduler()
    n_train = scheduler.config.num_train_timesteps
    idx = torch.randint(0, n_train, (b,), generator=generator).repeat(2)
    if policy.family == "flow":
        sigma = scheduler.sigmas[idx].to(x0.device, x0.dtype).reshape(-1, *([1] * (x0.ndim - 1)))
        x_t = (1 - sigma) * x0 + sigma * noise
        return NoisedPairs(x_t, scheduler.timesteps[idx].to(x0.device), noise - x0, noise)
    t = idx.to(x0.device)
    x_t = scheduler.add_noise(x0, noise, t)
    kind = policy.prediction_type
    if kind == "epsilon":
        target = noise
    elif kind == "v_prediction":
        target = scheduler.get_velocity(x0, noise, t)
    elif kind == "sample":
        target = x0
    else:
        raise ValueError(f"unsupported prediction_type {kind!r}")
    return NoisedPairs(x_t, t, target, noise)


def per_sample_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||target - prediction||^2`` averaged over all non-batch dimensions, in float32."""
    err = (prediction.float() - target.float()) ** 2
    return err.mean(dim=tuple(range(1, err.ndim)))
