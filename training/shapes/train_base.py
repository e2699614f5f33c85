"""Training the built-in base generators on rendered ground truth.

Each base is a tiny diffusers pipeline (see `training.algorithms.builders`) trained from scratch,
text encoder included, with the plain denoising objective on renders of random grammar prompts:

- epsilon models: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, loss ||eps_theta(x_t, t, c) - eps||^2
  (Ho et al. 2020, eq. 14, the "simple" loss);
- flow models: x_s = (1 - s) x0 + s eps, loss ||v_theta(x_s, s, c) - (eps - x0)||^2 (rectified flow,
  Liu et al. 2022; the timestep fed to the transformer is 1000 s, as diffusers' flow scheduler uses).

10% of prompts are replaced by the empty prompt so that classifier-free guidance is available.
Deterministic for a seed, a torch build and a thread count: data and noise come from seeded
generators only. The steps are chosen so the bases are visibly right about shapes and colours but
only partly correct on the verifier, leaving room for feedback to help.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from training.algorithms.builders import DEFAULT_SPECS, build_pipeline
from training.algorithms.loading import policy_from_pipeline
from training.algorithms.pipelines import denoiser_forward
from training.shapes import grammar, render

MODALITY = {
    "shapes-image-eps": "image",
    "shapes-image-flow": "image",
    "shapes-video": "video",
    "shapes-multiview": "multiview",
}


DATA_STREAMS = ("sequential", "per-step")


@dataclass(frozen=True)
class BaseTrainConfig:
    steps: int
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.0
    uncond_rate: float = 0.1
    # Exponential moving average of the weights (what is saved and evaluated); 0 turns it off.
    ema_decay: float = 0.999
    seed: int = 0
    # How batches are drawn. "sequential": one generator runs through the whole run (the shipped
    # image and multi-view bases). "per-step": batch k comes from its own generator seeded with
    # (seed, k), so batches can be rendered ahead in worker processes and the run is the same
    # whatever the number of workers.
    data: str = "sequential"

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not 0 <= self.uncond_rate < 1:
            raise ValueError("uncond_rate must be in [0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ValueError("ema_decay must be in [0, 1)")
        if self.data not in DATA_STREAMS:
            raise ValueError(f"data must be one of {', '.join(DATA_STREAMS)}, got {self.data!r}")


# Steps and batch chosen per model (documented in training/weights/README.md with the time taken):
# the first evaluated checkpoint (every 1,000 steps; every 400 for video) whose full evaluation
# lands well inside the target band of 25-70% verifier accuracy.
DEFAULT_CONFIGS = {
    "shapes-image-eps": BaseTrainConfig(steps=8000, batch_size=32),
    "shapes-image-flow": BaseTrainConfig(steps=2000, batch_size=32),
    "shapes-video": BaseTrainConfig(steps=2800, batch_size=32, data="per-step"),
    "shapes-multiview": BaseTrainConfig(steps=1000, batch_size=12),
}


def render_batch(name: str, frames: int, rng: np.random.Generator, n: int) -> tuple[list[str], torch.Tensor]:
    """`n` random prompts of the model's modality and their ground-truth renders in [-1, 1], channels first."""
    modality = MODALITY[name]
    specs = [grammar.sample_prompt(rng, modality=modality) for _ in range(n)]
    if modality == "image":
        media = [render.render_image(spec, rng) for spec in specs]
    elif modality == "video":
        media = [render.render_video(spec, rng, frames=frames) for spec in specs]
    else:
        media = [render.render_views(spec, rng, views=frames) for spec in specs]
    x = torch.from_numpy(np.stack(media)).float() / 127.5 - 1.0
    # (B, H, W, C) -> (B, C, H, W); (B, T, H, W, C) -> (B, C, T, H, W)
    x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x.permute(0, 4, 1, 2, 3)
    return [spec.text for spec in specs], x.contiguous()


def step_batch(
    name: str, frames: int, seed: int, step: int, n: int, uncond_rate: float
) -> tuple[list[str], torch.Tensor]:
    """Batch `step` of a "per-step" run: prompts (the dropped ones empty) and renders, from a
    generator seeded with (seed, step) alone, so any process can draw it."""
    return _drawn(name, frames, np.random.default_rng([seed, step]), n, uncond_rate)


def _drawn(
    name: str, frames: int, rng: np.random.Generator, n: int, uncond_rate: float
) -> tuple[list[str], torch.Tensor]:
    """`n` prompts and renders from `rng`, then the prompts dropped for guidance emptied."""
    prompts, x = render_batch(name, frames, rng, n)
    drop = rng.random(n) < uncond_rate
    return ["" if d else p for p, d in zip(prompts, drop, strict=True)], x


class _Batches:
    """The training batches in step order.

    "sequential" draws each from the run's one generator. "per-step" draws batch k by
    `step_batch`; with `workers` > 0 a pool of processes renders the next batches ahead while the
    current one trains, so that a fast device never waits for the CPU to draw clips."""

    def __init__(self, name: str, config: BaseTrainConfig, frames: int, workers: int = 0):
        self.name, self.config, self.frames = name, config, frames
        self.rng = np.random.default_rng(config.seed)
        self.pool = None
        self.ahead: dict[int, object] = {}
        if workers and config.data == "per-step":
            import concurrent.futures
            import multiprocessing

            # Spawned, not forked: the parent may hold a CUDA context, which a fork must not copy.
            self.pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            self.depth = 2 * workers

    def get(self, step: int) -> tuple[list[str], torch.Tensor]:
        c = self.config
        if c.data == "sequential":
            return _drawn(self.name, self.frames, self.rng, c.batch_size, c.uncond_rate)
        if self.pool is None:
            return step_batch(self.name, self.frames, c.seed, step, c.batch_size, c.uncond_rate)
        for k in range(step, min(step + self.depth, c.steps)):
            if k not in self.ahead:
                self.ahead[k] = self.pool.submit(
                    step_batch, self.name, self.frames, c.seed, k, c.batch_size, c.uncond_rate
                )
        return self.ahead.pop(step).result()

    def close(self) -> None:
        if self.pool is not None:
            for future in self.ahead.values():
                future.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def pixel_stats(name: str, frames: int, n: int = 512) -> tuple[float, float]:
    """Mean and standard deviation of the model's ground-truth pixels (in [-1, 1]), from a fixed
    seed, rounded so that they are stable constants of the saved pipeline."""
    _, x = render_batch(name, frames, np.random.default_rng(12345), n)
    return round(float(x.mean()), 3), round(float(x.std()), 3)


def shifted(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    """A flow noise level through the scheduler's time shift, ``shift * s / (1 + (shift - 1) * s)``.

    Training draws its noise levels this way so that they follow the sampler's. A shift above 1
    spends more of both at high noise, where the shapes world decides what is drawn where: its
    coloured pixels stand about 4.7 standard deviations from the black background, so objects are
    already placed while the noise is still nine tenths of the sample."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def _lr_factor(step: int, config: BaseTrainConfig) -> float:
    """Linear warm-up, then constant: the first k steps of a long run equal a run of k steps, so a
    run can checkpoint along the way and any checkpoint is reproduced by `steps=k`."""
    return min(1.0, (step + 1) / config.warmup)


class _EMA:
    """Moving average of parameters with the usual warm-up, ``decay_k = min(decay, (1 + k) / (10 + k))``,
    so early averages are not dominated by the random initialisation. Small diffusion models sample far
    better from averaged weights than from the last iterate at a constant learning rate."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float) -> None:
        self.params, self.decay = params, decay
        self.shadow = [p.detach().clone() for p in params]

    def update(self, step: int) -> None:
        if not self.decay:
            return
        decay = min(self.decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1 - decay)

    def copy_to_params(self) -> list[torch.Tensor]:
        """Load the averages into the parameters; returns the live values to restore afterwards."""
        live = [p.detach().clone() for p in self.params]
        if self.decay:
            with torch.no_grad():
                for p, s in zip(self.params, self.shadow, strict=True):
                    p.copy_(s)
        return live

    def restore(self, live: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, v in zip(self.params, live, strict=True):
                p.copy_(v)


def train_base(
    name: str,
    config: BaseTrainConfig,
    *,
    on_step: Callable[[int, float], None] | None = None,
    on_checkpoint: Callable[[int, object], None] | None = None,
    checkpoint_every: int = 0,
    should_stop: Callable[[], bool] | None = None,
    spec=None,
    device: str | torch.device = "cpu",
    render_workers: int = 0,
):
    """Train built-in generator `name` from scratch; returns the trained pipeline (fp32, on CPU).

    ``device`` is where the networks train ("cuda" on a GPU machine). Data and noise are drawn on
    the CPU from the seeded generators whatever the device, so a GPU run sees the same batches as a
    CPU run; its weights differ by floating-point rounding, which compounds over training, so the
    two runs are alike in quality but not bitwise equal. ``render_workers`` renders a "per-step"
    run's batches ahead in that many processes; it changes the speed, never the batches."""
    if name not in MODALITY:
        raise ValueError(f"unknown built-in generator {name!r}; expected one of {', '.join(MODALITY)}")
    torch.manual_seed(config.seed)
    noise_gen = torch.Generator().manual_seed(config.seed + 1)
    spec = spec or DEFAULT_SPECS[name]  # tests pass smaller sizes of the same architecture
    shift, scale = pixel_stats(name, spec.frames)
    spec = dataclasses.replace(spec, pixel_shift=shift, pixel_scale=scale)
    pipe = build_pipeline(name, grammar.vocabulary(), spec=spec, seed=config.seed)
    device = torch.device(device)
    pipe.to(device)
    policy = policy_from_pipeline(pipe)
    frames = spec.frames
    modules = [policy.denoiser, policy.text_encoder]
    params = [p for m in modules for p in m.parameters()]
    for module in modules:
        module.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, config))
    ema = _EMA(params, config.ema_decay)
    alphas = None
    if policy.family == "epsilon":
        alphas = policy.training_scheduler().alphas_cumprod.float().to(device)
    n_train = policy.scheduler.config.num_train_timesteps
    shift_sigma = float(policy.scheduler.config.get("shift", 1.0)) if policy.family == "flow" else 1.0

    batches = _Batches(name, config, frames, render_workers)
    try:
        for step in range(config.steps):
            if should_stop is not None and should_stop():
                break
            prompts, x0 = batches.get(step)
            x0 = (x0 - shift) / scale
            text = policy.text_encoder(policy.token_ids(prompts))
            noise = torch.randn(x0.shape, generator=noise_gen).to(device)
            x0 = x0.to(device)
            shape = (-1,) + (1,) * (x0.ndim - 1)
            if policy.family == "epsilon":
                t = torch.randint(0, n_train, (x0.shape[0],), generator=noise_gen).to(device)
                abar = alphas[t].reshape(shape)
                x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
                target, timestep = noise, t
            else:
                s = shifted(torch.rand(x0.shape[0], generator=noise_gen), shift_sigma).to(device)
                x_t = (1 - s.reshape(shape)) * x0 + s.reshape(shape) * noise
                target, timestep = noise - x0, s * n_train
            out = denoiser_forward(
                policy.denoiser,
                x_t,
                timestep,
                text.last_hidden_state,
                text.pooler_output,
                view_conditioned=policy.view_conditioned,
                frame_conditioned=policy.frame_conditioned,
            )
            loss = torch.nn.functional.mse_loss(out.float(), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            ema.update(step)
            if on_step is not None:
                on_step(step, loss.item())
            if on_checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
                for module in modules:
                    module.eval()
                live = ema.copy_to_params()
                on_checkpoint(step + 1, pipe)
                ema.restore(live)
                for module in modules:
                    module.train()
    finally:
        batches.close()
    ema.copy_to_params()
    for module in modules:
        module.eval().requires_grad_(False)
    return pipe.to("cpu")


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start
