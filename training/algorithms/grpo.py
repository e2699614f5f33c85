"""GRPO for diffusion and flow models (Flow-GRPO, Liu et al. 2025; DanceGRPO, Xue et al. 2025).

Each step draws ``prompts_per_step`` prompts and samples a group of ``group_size`` stochastic
rollouts per prompt (the Flow-GRPO SDE for flow models, DDIM with eta > 0 for epsilon models),
scores them with the reward, normalises rewards within each group (groups with no spread are
dropped), and takes PPO-clipped steps on a random ``timestep_fraction`` of each rollout's
denoising steps, with a KL penalty to the reference (the frozen base under the LoRA adapter).

The loop itself is :func:`training.algorithms.pg_loop.train_policy_gradient`; DDPO
(:mod:`training.algorithms.ppo`) runs the same loop with per-prompt advantage tracking instead of groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.algorithms.pg_loop import PolicyGradientConfig, PromptData, train_policy_gradient
from training.algorithms.policy_gradient import RLComponents, group_advantages
from training.algorithms.run import StepInfo, TrainResult


@dataclass(frozen=True)
class GRPOConfig(PolicyGradientConfig):
    """GRPO settings (see :class:`PolicyGradientConfig` for the shared ones).

    ``group_size`` rollouts per prompt; advantages ``(r - mean_group) / (std + adv_eps)`` with the
    std of the group, or of the whole batch when ``global_std`` (Flow-GRPO's default).
    ``same_initial_noise`` gives a group one x_T (DanceGRPO's ``init_same_noise``), so rewards
    differ only through the SDE noise. ``kl_beta`` 0.04 is Flow-GRPO's GenEval setting.
    """

    group_size: int = 8
    global_std: bool = False
    adv_eps: float = 1e-4
    same_initial_noise: bool = False
    kl_beta: float = 0.04

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (a group of one has no spread), got {self.group_size}")
        if self.adv_eps < 0:
            raise ValueError(f"adv_eps must be >= 0, got {self.adv_eps}")


def train_grpo(
    config: GRPOConfig,
    components: RLComponents,
    data: PromptData,
    *,
    run_dir: str | Path | None,
    on_step: Callable[[StepInfo], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Fine-tune ``components.policy`` (a LoRA adapter is added if it has none) with GRPO.

    ``data`` is a list of ``(prompt, metadata)``; the reward gets each sample's metadata (e.g. the
    prompt's structured spec for a verifier). Metrics every step: reward mean/std, policy loss,
    KL, ratio mean, clip fraction, zero-std group fraction, lr (and more, see
    :func:`train_policy_gradient`). The adapter is saved in peft format to ``run_dir/"adapter"``.
    """

    def advantages(rewards: np.ndarray, prompts: list[str], groups: list[int]):
        g = group_advantages(rewards, groups, eps=config.adv_eps, global_std=config.global_std)
        return g.advantages.numpy(), ~g.dropped.numpy(), {"zero_std_groups": g.zero_std_fraction}

    return train_policy_gradient(
        config,
        components,
        data,
        samples_per_prompt=config.group_size,
        advantages=advantages,
        same_initial_noise=config.same_initial_noise,
        run_dir=run_dir,
        on_step=on_step,
        should_stop=should_stop,
    )
