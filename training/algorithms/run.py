"""The loop shared by every trainer: seeded randomness, per-step callbacks, checkpoints and resume.

Every algorithm's entry point ``train_x(config, components, data, *, run_dir, on_step,
should_stop)`` drives one :class:`Run`:

    run = Run.for_config(config, run_dir, on_step=on_step, should_stop=should_stop)
    start = run.resume(modules={"denoiser": unet}, optimizer=opt)
    for step in run.steps(start, optimizer=opt, lr_at=schedule):  # ends early on should_stop
        ... draw data from run.rng / noise from run.generator ...
        run.end_step(step, metrics, modules=..., optimizer=...)
    run.close(modules=..., optimizer=...)
    return run.result(...)

All randomness a trainer uses comes from ``run.rng`` (numpy) and ``run.generator`` (torch, CPU),
whose states are saved with the trainable tensors and the optimizer, so a run stopped after step
k and resumed reproduces an uninterrupted run exactly (on CPU, same thread count).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from training.algorithms.checkpoint import Checkpoint, latest_checkpoint, load_checkpoint, save_checkpoint


def warmup_cosine_lr(step: int, *, steps: int, warmup_steps: int, lr: float, min_lr_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``lr * min_lr_ratio`` at the last step: a pure function
    of the step, so a resumed run needs no scheduler state."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, steps - warmup_steps - 1)
    progress = min(1.0, (step - warmup_steps) / span)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def cosine_schedule(config) -> Callable[[int], float]:
    """:func:`warmup_cosine_lr` with a config's ``steps``, ``warmup_steps``, ``lr`` and ``min_lr_ratio``."""
    return lambda step: warmup_cosine_lr(
        step, steps=config.steps, warmup_steps=config.warmup_steps, lr=config.lr, min_lr_ratio=config.min_lr_ratio
    )


@dataclass(frozen=True)
class StepInfo:
    """What ``on_step`` receives after every optimisation step (``step`` counts from 1)."""

    step: int
    total: int
    metrics: dict[str, float]
    elapsed: float


@dataclass
class TrainResult:
    steps: int  # optimisation steps done (including those before a resume)
    stopped: bool  # should_stop ended the run early
    metrics: dict[str, float]  # the last step's metrics
    history: list[dict] = field(default_factory=list)  # every step's metrics (this process only)
    checkpoint: Checkpoint | None = None
    summary: dict = field(default_factory=dict)  # algorithm-specific results (e.g. held-out accuracy)


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of parameters that require grad (what a checkpoint must keep)."""
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def load_trainable_state(module: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    params = dict(module.named_parameters())
    expected = {n for n, p in params.items() if p.requires_grad}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"checkpoint does not fit the model: missing {missing[:3]}, unexpected {extra[:3]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


class Run:
    def __init__(
        self,
        run_dir: str | Path | None,
        *,
        total_steps: int,
        seed: int,
        checkpoint_every: int = 0,
        keep_checkpoints: int = 2,
        on_step: Callable[[StepInfo], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.total_steps = total_steps
        self.checkpoint_every = checkpoint_every
        self.keep = keep_checkpoints
        self.on_step = on_step
        self.should_stop = should_stop
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator("cpu").manual_seed(seed)
        self.history: list[dict] = []
        self.last_metrics: dict[str, float] = {}
        self.stopped = False
        self.steps_done = 0
        self.checkpoint: Checkpoint | None = None
        self.extra: dict = {}  # algorithm state to keep across a resume (tensors, numbers, lists)
        self._started = time.perf_counter()

    @classmethod
    def for_config(
        cls,
        config,
        run_dir: str | Path | None,
        *,
        on_step: Callable[[StepInfo], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Run:
        """A run of a trainer's config: its ``steps``, ``seed`` and ``checkpoint_every``."""
        return cls(
            run_dir,
            total_steps=config.steps,
            seed=config.seed,
            checkpoint_every=config.checkpoint_every,
            on_step=on_step,
            should_stop=should_stop,
        )

    # -- randomness ------------------------------------------------------------------------------
    def _random_state(self) -> dict:
        return {"torch": self.generator.get_state(), "numpy": json.dumps(self.rng.bit_generator.state)}

    def _set_random_state(self, state: dict) -> None:
        self.generator.set_state(state["torch"])
        self.rng.bit_generator.state = json.loads(state["numpy"])

    # -- checkpoints -----------------------------------------------------------------------------
    def resume(self, *, modules: Mapping[str, torch.nn.Module], optimizer: torch.optim.Optimizer | None) -> int:
        """Load the newest checkpoint in ``run_dir`` if there is one; return the step to start at."""
        if self.run_dir is None:
            return 0
        found = latest_checkpoint(self.run_dir)
        if found is None:
            return 0
        state = load_checkpoint(found.path)
        for name, module in modules.items():
            load_trainable_state(module, state["modules"][name])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
        self._set_random_state(state["random"])
        self.extra = state.get("extra", {})
        self.steps_done = int(state["step"])
        self.checkpoint = found
        return self.steps_done

    def save(self, step: int, *, modules: Mapping[str, torch.nn.Module], optimizer, meta: dict | None = None):
        if self.run_dir is None:
            return None
        state = {
            "step": step,
            "modules": {name: trainable_state(m) for name, m in modules.items()},
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "random": self._random_state(),
            "extra": self.extra,
        }
        self.checkpoint = save_checkpoint(self.run_dir, step, state, meta=meta, keep=self.keep)
        return self.checkpoint

    # -- the loop --------------------------------------------------------------------------------
    def stopping(self) -> bool:
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
        return self.stopped

    def steps(
        self, start: int, *, optimizer: torch.optim.Optimizer | None = None, lr_at: Callable[[int], float] | None = None
    ) -> Iterator[int]:
        """The 0-based steps from ``start`` to ``total_steps``, ending early once ``should_stop``
        says so; with ``lr_at`` each step's learning rate is set on ``optimizer`` first."""
        if lr_at is not None and optimizer is None:
            raise ValueError("Run.steps: lr_at sets the learning rate on an optimizer; pass optimizer= too")
        for step in range(start, self.total_steps):
            if self.stopping():
                return
            if lr_at is not None:
                lr = lr_at(step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            yield step

    def end_step(self, step: int, metrics: Mapping[str, float], *, modules, optimizer) -> None:
        """Record metrics of 0-based ``step``, report them, checkpoint when due (and at the end)."""
        clean = {k: float(v) for k, v in metrics.items()}
        for key, value in clean.items():
            if not math.isfinite(value):
                raise FloatingPointError(f"{key} is {value} at step {step + 1}; stopping before it spreads")
        self.steps_done = step + 1
        self.last_metrics = clean
        self.history.append({"step": step + 1, **clean})
        if self.on_step is not None:
            self.on_step(StepInfo(step + 1, self.total_steps, clean, time.perf_counter() - self._started))
        due = self.checkpoint_every and (step + 1) % self.checkpoint_every == 0
        if due or step + 1 == self.total_steps:
            self.save(step + 1, modules=modules, optimizer=optimizer, meta={"metrics": clean})

    def close(self, *, modules, optimizer) -> None:
        """After the loop: a run stopped early checkpoints where it stopped, so it can resume."""
        if self.steps_done and (self.checkpoint is None or self.checkpoint.step != self.steps_done):
            self.save(self.steps_done, modules=modules, optimizer=optimizer, meta={"metrics": self.last_metrics})

    def result(self, **summary) -> TrainResult:
        return TrainResult(
            steps=self.steps_done,
            stopped=self.stopped,
            metrics=self.last_metrics,
            history=self.history,
            checkpoint=self.checkpoint,
            summary=summary,
        )
