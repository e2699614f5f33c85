"""PPO-style RLHF for diffusion models: DDPO (Black et al. 2023, "Training Diffusion Models with
Reinforcement Learning": DDPO_IS, the importance-sampled, clipped estimator, with per-prompt
stat tracking).

Rollouts are scored by any reward function: a learned reward model, the shapes verifier, or a
weighted sum of several (rewards are plain ``(media, prompts, metadata) -> scores`` functions).
Advantages are normalised per prompt over a history buffer (:class:`PromptStatTracker`, whose
state is checkpointed), or over the batch when ``per_prompt_tracking`` is off. Unlike GRPO no
sample is dropped. The update is the same PPO-clipped step on a random subset of denoising steps,
with an optional KL to the reference (``kl_beta``; the original DDPO had none), run by the loop
shared with GRPO (:func:`training.algorithms.grpo.train_policy_gradient`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.algorithms.pg_loop import PolicyGradientConfig, PromptData, train_policy_gradient
from training.algorithms.policy_gradient import PromptStatTracker, RLComponents
from training.algorithms.run import StepInfo, TrainResult


@dataclass(frozen=True)
class PPOConfig(PolicyGradientConfig):
    """DDPO settings (see :class:`~training.algorithms.grpo.PolicyGradientConfig` for the shared ones).

    ``samples_per_prompt`` rollouts of each of the ``prompts_per_step`` prompts drawn per step.
    With ``per_prompt_tracking`` a prompt's rewards are normalised by the mean/std of its last
    ``buffer_size`` rewards once it has ``min_count`` of them (batch statistics before that);
    otherwise by the batch's (DDPO's defaults: buffer 16, min_count 16). ``kl_beta`` weighs the KL
    to the reference, a guard against reward hacking of a learned reward model.
    """

    samples_per_prompt: int = 4
    per_prompt_tracking: bool = True
    buffer_size: int = 16
    min_count: int = 16
    adv_eps: float = 1e-6
    kl_beta: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples_per_prompt < 1 or self.buffer_size < 1 or self.min_count < 1:
            raise ValueError("samples_per_prompt, buffer_size and min_count must be >= 1")
        if self.adv_eps < 0:
            raise ValueError(f"adv_eps must be >= 0, got {self.adv_eps}")


def batch_advantages(rewards: np.ndarray, eps: float) -> np.ndarray:
    """DDPO without stat tracking: ``(r - mean(r)) / (std(r) + eps)`` over the whole batch."""
    r = np.asarray(rewards, dtype=np.float64)
    return (r - r.mean()) / (r.std() + eps)


class _BatchNormaliser:
    """The batch-statistics advantage with the tracker's interface (it has no state to keep)."""

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def update(self, prompts, rewards) -> np.ndarray:
        return batch_advantages(rewards, self.eps)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: Mapping) -> None:
        pass


def train_ppo(
    config: PPOConfig,
    components: RLComponents,
    data: PromptData,
    *,
    run_dir: str | Path | None,
    on_step: Callable[[StepInfo], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tune ``components.policy`` (a LoRA adapter is added if it has none) with DDPO.

    ``data`` is a list of ``(prompt, metadata)``; ``components.reward`` scores the rollouts. The
    prompt statistics are saved in every checkpoint (``Run.extra``) so resuming is exact. Metrics
    as for GRPO (:func:`~training.algorithms.grpo.train_policy_gradient`) plus ``adv_abs_mean``.
    The adapter is saved in peft format to ``run_dir/"adapter"``.
    """
    tracker = (
        PromptStatTracker(config.buffer_size, config.min_count, config.adv_eps)
        if config.per_prompt_tracking
        else _BatchNormaliser(config.adv_eps)
    )

    def advantages(rewards: np.ndarray, prompts: list[str], groups: list[int]):
        adv = tracker.update(prompts, rewards)
        return adv, np.ones(len(adv), dtype=bool), {"adv_abs_mean": float(np.abs(adv).mean())}

    return train_policy_gradient(
        config,
        components,
        data,
        samples_per_prompt=config.samples_per_prompt,
        advantages=advantages,
        state=tracker,
        run_dir=run_dir,
        on_step=on_step,
        should_stop=should_stop,
    )
