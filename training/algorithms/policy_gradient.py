"""Policy-gradient fine-tuning of diffusion models: the estimators, and the rollout and update steps
shared by GRPO (:mod:`training.algorithms.grpo`) and DDPO/PPO (:mod:`training.algorithms.ppo`).

Every denoising step is a Gaussian policy ``x_{t-1} ~ N(mean_theta(x_t), std^2)`` (DDPO, Black et
al. 2023, denoising as a multi-step MDP; the steps are in :mod:`training.algorithms.steps`), so a sampled trajectory has
per-step log-probabilities, and the PPO surrogate (Schulman et al. 2017, eq. 7) applies to every
step with the trajectory's advantage. The algorithms differ only in how rewards become advantages:
GRPO normalises within groups of samples of one prompt (:func:`group_advantages`), DDPO per prompt
over a history buffer (:class:`PromptStatTracker`).

Rewards are plain functions ``reward(media, prompts, metadata) -> scores`` (one float per sample).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from training.algorithms.loading import Policy
from training.algorithms.sampling import Trajectory, sample_with_logprobs, transition
from training.algorithms.steps import StepOutput, block_coords

RewardFn = Callable[[list[np.ndarray], list[str], list[dict]], np.ndarray]


@dataclass
class RLComponents:
    """What an RL trainer receives: the policy to fine-tune and the reward to maximise.

    ``policy`` gets a fresh LoRA adapter (identity at initialisation) unless it already has one;
    its frozen base is the KL reference. ``reward(media, prompts, metadata)`` returns one score
    per sample: a verifier, a learned reward model, or a weighted sum of several.
    """

    policy: Policy
    reward: RewardFn


# --- advantages -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupAdvantages:
    advantages: torch.Tensor  # (N,) float64; 0 for dropped samples
    dropped: torch.Tensor  # (N,) bool: the sample's group has no reward spread
    zero_std_fraction: float  # share of groups dropped (Flow-GRPO's ``zero_std_ratio``)


def group_advantages(
    rewards, group_ids: Sequence[Hashable], *, eps: float = 1e-4, global_std: bool = False
) -> GroupAdvantages:
    """Group-relative advantages, GRPO's outcome supervision (Shao et al. 2024, "DeepSeekMath",
    sec. 4.1.2: ``A_i = (r_i - mean(r)) / std(r)`` over a prompt's group) as used for images by
    Flow-GRPO (Liu et al. 2025) and DanceGRPO (Xue et al. 2025):

        A_i = (r_i - mean_{g(i)}(r)) / (std + eps),

    with the (population) std of the sample's group, or of the whole batch when ``global_std``
    (Flow-GRPO's default). A group whose rewards are all equal carries no learning signal (its
    advantages would be 0/eps); its samples are marked ``dropped`` and get advantage 0, so a
    trainer can skip them rather than spend forward passes on them.
    """
    r = torch.as_tensor(np.asarray(rewards, dtype=np.float64))
    if r.ndim != 1 or len(r) != len(group_ids):
        raise ValueError(f"{tuple(r.shape)} rewards for {len(group_ids)} group ids")
    groups: dict[Hashable, list[int]] = {}
    for i, g in enumerate(group_ids):
        groups.setdefault(g, []).append(i)
    adv = torch.zeros_like(r)
    dropped = torch.zeros(len(r), dtype=torch.bool)
    batch_std = r.std(unbiased=False) if len(r) else r.new_tensor(0.0)
    for members in groups.values():
        idx = torch.tensor(members)
        g = r[idx]
        if bool(g.max() == g.min()):
            dropped[idx] = True
            continue
        std = batch_std if global_std else g.std(unbiased=False)
        adv[idx] = (g - g.mean()) / (std + eps)
    zero = sum(bool(dropped[m[0]]) for m in groups.values())
    return GroupAdvantages(adv, dropped, zero / len(groups) if groups else 0.0)


class PromptStatTracker:
    """Per-prompt reward normalisation of DDPO (Black et al. 2023, "Training Diffusion Models with
    Reinforcement Learning", per-prompt stat tracking of its implementation details):

        A_i = (r_i - mean_p) / (std_p + eps),

    where mean_p and std_p are over the last ``buffer_size`` rewards of prompt p (the current
    batch's included), or over the whole current batch while prompt p has fewer than
    ``min_count`` rewards in its buffer. The history persists across steps, so its state is part of
    a checkpoint: :meth:`state_dict` holds only plain lists (``torch.load(weights_only=True)``).
    """

    def __init__(self, buffer_size: int = 16, min_count: int = 16, eps: float = 1e-6) -> None:
        if buffer_size < 1 or min_count < 1 or eps < 0:
            raise ValueError("buffer_size and min_count must be >= 1, eps >= 0")
        self.buffer_size, self.min_count, self.eps = buffer_size, min_count, eps
        self.buffers: dict[str, list[float]] = {}

    def update(self, prompts: Sequence[str], rewards) -> np.ndarray:
        """Add the batch's rewards to the buffers and return their advantages (float64)."""
        r = np.asarray(rewards, dtype=np.float64)
        if r.shape != (len(prompts),):
            raise ValueError(f"{r.shape} rewards for {len(prompts)} prompts")
        prompts = list(prompts)
        adv = np.zeros_like(r)
        for prompt in dict.fromkeys(prompts):
            idx = np.array([i for i, p in enumerate(prompts) if p == prompt])
            buffer = (self.buffers.get(prompt, []) + r[idx].tolist())[-self.buffer_size :]
            self.buffers[prompt] = buffer
            stats = r if len(buffer) < self.min_count else np.asarray(buffer)
            adv[idx] = (r[idx] - stats.mean()) / (stats.std() + self.eps)
        return adv

    def state_dict(self) -> dict:
        prompts = sorted(self.buffers)
        return {"prompts": prompts, "rewards": [list(self.buffers[p]) for p in prompts]}

    def load_state_dict(self, state: Mapping) -> None:
        self.buffers = {p: [float(x) for x in r] for p, r in zip(state["prompts"], state["rewards"], strict=True)}


# --- losses -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyLoss:
    loss: torch.Tensor  # scalar, differentiable
    ratio: torch.Tensor  # (B,) detached
    clipfrac: torch.Tensor  # share of samples with |ratio - 1| > clip_range
    approx_kl: torch.Tensor  # 0.5 mean (log_prob - old_log_prob)^2, a cheap KL(old || new) estimate


def clipped_policy_loss(
    log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, clip_range: float, adv_clip: float
) -> PolicyLoss:
    """PPO's clipped surrogate (Schulman et al. 2017, eq. 7), negated for minimisation, as in DDPO:

        L = mean_i max(-A_i rho_i, -A_i clip(rho_i, 1 - eps, 1 + eps)),  rho_i = exp(lp_i - lp_old_i),

    with advantages clipped to ``[-adv_clip, adv_clip]``. The max takes the pessimistic branch, so
    moving the ratio beyond the clip range in the advantage's favour earns nothing.
    """
    adv = advantages.to(log_prob.dtype).clamp(-adv_clip, adv_clip)
    diff = log_prob - old_log_prob
    ratio = torch.exp(diff)
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1 - clip_range, 1 + clip_range)
    loss = torch.maximum(unclipped, clipped).mean()
    with torch.no_grad():
        clipfrac = ((ratio - 1).abs() > clip_range).to(log_prob.dtype).mean()
        approx_kl = 0.5 * (diff**2).mean()
    return PolicyLoss(loss, ratio.detach(), clipfrac, approx_kl)


def gaussian_kl(mean: torch.Tensor, ref_mean: torch.Tensor, std: torch.Tensor, block: int = 1) -> torch.Tensor:
    """Per-sample KL(N(mean, std^2) || N(ref_mean, std^2)) averaged over dimensions, ``(B,)``:
    ``mean_d (mean - ref_mean)^2 / (2 std^2)`` (Flow-GRPO, Liu et al. 2025, the closed-form KL
    term of its objective: both policies share the step's std, so this is the exact KL of the step
    Gaussians). 0 where ``std == 0``. With ``block`` > 1 (noise on tiles) the same over the tiles'
    coordinates, where the step Gaussians live."""
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    safe = torch.where(std > 0, std, torch.ones_like(std))
    kl = block_coords(mean - ref_mean, block) ** 2 / (2 * safe**2)
    kl = torch.where(std > 0, kl, torch.zeros_like(kl))
    return kl.mean(dim=tuple(range(1, kl.ndim)))


# --- rollouts ---------------------------------------------------------------------------------------


def rollout(
    policy: Policy,
    prompts: list[str],
    *,
    seeds: Sequence[int],
    steps: int,
    eta: float,
    guidance: float,
    batch_size: int = 0,
    start_seeds: Sequence[int] | None = None,
    sde_window: int = 0,
    noise_block: int = 1,
) -> Trajectory:
    """Stochastic rollouts in chunks of ``batch_size`` (0: all at once), concatenated into one
    trajectory. ``start_seeds`` (one per sample) overrides the seed of x_T only (DanceGRPO's
    ``init_same_noise`` gives a group one x_T and different step noise); ``sde_window`` > 0 makes
    only the first that many steps stochastic and ``noise_block`` > 1 puts the step noise on tiles
    (see :func:`sample_with_logprobs`)."""
    size = batch_size or len(prompts)
    kwargs = {"steps": steps, "eta": eta, "guidance": guidance, "sde_window": sde_window, "noise_block": noise_block}
    parts = []
    for lo in range(0, len(prompts), size):
        sl = slice(lo, lo + size)
        starts = None
        if start_seeds is not None:
            starts = [torch.Generator("cpu").manual_seed(int(s)) for s in start_seeds[sl]]
        parts.append(
            sample_with_logprobs(policy, prompts[sl], seeds=list(seeds[sl]), start_generators=starts, **kwargs)
        )
    first = parts[0]
    cond = first.cond
    for p in parts[1:]:
        cond = cond.cat(p.cond)
    return Trajectory(
        prompts=[p for t in parts for p in t.prompts],
        seeds=[s for t in parts for s in t.seeds],
        latents=torch.cat([t.latents for t in parts]),
        log_probs=torch.cat([t.log_probs for t in parts]),
        schedule=first.schedule,
        eta=eta,
        guidance=guidance,
        cond=cond,
        media=[m for t in parts for m in t.media],
        sde_window=sde_window,
        noise_block=noise_block,
    )


def score(reward: RewardFn, traj: Trajectory, metadata: list[dict]) -> np.ndarray:
    """The reward of every rollout, checked: one finite float per sample."""
    values = np.asarray(reward(traj.media, traj.prompts, metadata), dtype=np.float64)
    if values.shape != (len(traj.prompts),):
        raise ValueError(f"reward returned shape {values.shape} for {len(traj.prompts)} samples")
    if not np.isfinite(values).all():
        raise FloatingPointError("reward returned a non-finite value")
    return values


# --- updates ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Which transitions are trained, in which batches: ``chunks[c]`` are sample indices and
    ``steps[c]`` ``(len(chunk), J)`` their denoising-step indices, one column per forward pass."""

    chunks: list[torch.Tensor]
    steps: list[torch.Tensor]


def make_plan(
    rng: np.random.Generator,
    samples,
    *,
    sampler_steps: int,
    train_steps: int,
    batch_size: int,
    earliest: bool = False,
    window: int = 0,
) -> Plan:
    """Shuffle ``samples`` into batches of ``batch_size`` (0: one batch) and give each sample its
    own random ``train_steps`` of the ``sampler_steps`` steps (DDPO's per-sample timestep shuffle;
    Flow-GRPO and DanceGRPO's ``timestep_fraction``), or with ``earliest`` the first (noisiest)
    ``train_steps``, in a random order; with ``window`` > 0 (an SDE window) they are drawn from
    the first ``window`` steps, the only stochastic ones. All randomness comes from ``rng``.

    Why ``earliest``: a step's log-prob gradient scales as 1/std, and a few-step DDIM's last jumps
    (to alpha-bar near 1) have std ~0.01, so their near-pure-noise gradients swamp the rest (on the
    tiny epsilon model, 4 steps: cosine with the pathwise reward gradient 0.3-0.4 for the first two
    steps, 0.1 overall). Training only early steps is the idea of Flow-GRPO-Fast's SDE window.
    """
    samples = np.asarray(samples, dtype=np.int64)
    order = samples[rng.permutation(len(samples))]
    pool = window or (train_steps if earliest else sampler_steps)
    if train_steps > pool or pool > sampler_steps:
        raise ValueError(f"cannot train {train_steps} of {pool} steps (of {sampler_steps})")
    steps = np.stack([rng.permutation(pool)[:train_steps] for _ in order]) if len(order) else None
    size = batch_size or max(len(order), 1)
    chunks, chunk_steps = [], []
    for lo in range(0, len(order), size):
        chunks.append(torch.from_numpy(order[lo : lo + size]))
        chunk_steps.append(torch.from_numpy(steps[lo : lo + size]))
    return Plan(chunks, chunk_steps)


def _transition(policy: Policy, traj: Trajectory, rows: torch.Tensor, idx: torch.Tensor) -> StepOutput:
    return transition(
        policy,
        traj.schedule,
        idx,
        traj.latents[rows, idx],
        traj.latents[rows, idx + 1],
        traj.cond.index(rows),
        eta=traj.eta,
        guidance=traj.guidance,
        noise_block=traj.noise_block,
    )


def old_log_probs(
    policy: Policy, traj: Trajectory, plan: Plan, *, include_first: bool = True
) -> list[torch.Tensor | None]:
    """Log-probs of the planned transitions under the current (pre-update) weights, ``(chunk, J)``.

    Recomputed rather than taken from the rollout because a forward pass's float rounding can
    depend on its batch composition (DanceGRPO's note on rollout vs training batch sizes): this
    pass makes exactly the forward calls the update will make, in the same batches and mode, so
    the importance ratio of the first update is exactly 1. Gradients stay enabled (the graph is
    dropped at once) because some kernels, e.g. attention backends on GPU, are chosen by whether
    their inputs require grad.

    With ``include_first=False`` the first chunk is left out (``None``): :func:`update` takes its old
    log-probs from that chunk's own training forward, which runs before any weight changes, so
    the recompute costs nothing when the plan is one chunk (the default, one update per batch).
    """
    out: list[torch.Tensor | None] = []
    with policy.eval_mode(), torch.enable_grad():
        for c, (rows, steps) in enumerate(zip(plan.chunks, plan.steps, strict=True)):
            if c == 0 and not include_first:
                out.append(None)
                continue
            lps = [_transition(policy, traj, rows, steps[:, j]).log_prob.detach() for j in range(steps.shape[1])]
            out.append(torch.stack(lps, 1))
    return out


METRICS = ("policy_loss", "kl", "ratio_mean", "clipfrac", "approx_kl")


@dataclass(frozen=True)
class UpdateSettings:
    clip_range: float
    adv_clip: float
    kl_beta: float
    max_grad_norm: float
    inner_epochs: int


def _train_forward(policy, traj, rows, idx, old, adv, s: UpdateSettings, n_slots: int):
    """One forward pass's loss (backpropagated, scaled to average over the chunk's slots) and stats.

    ``old`` None: the weights have not changed since the rollout, so this forward's own detached
    log-prob is the old one (returned as the third value)."""
    out = _transition(policy, traj, rows, idx)
    if old is None:
        old = out.log_prob.detach()
    pl = clipped_policy_loss(out.log_prob, old, adv, s.clip_range, s.adv_clip)
    # The KL is computed even when kl_beta is 0: it is the reward-hacking diagnostic reported
    # beside the reward.
    with torch.no_grad(), policy.disable_adapter():
        ref_mean = _transition(policy, traj, rows, idx).mean
    kl = gaussian_kl(out.mean, ref_mean, out.std, out.block).mean()
    ((pl.loss + s.kl_beta * kl) / n_slots).backward()
    return pl, kl.detach(), old


def update(
    policy,
    optimizer,
    traj: Trajectory,
    advantages: torch.Tensor,
    plan: Plan,
    old: list[torch.Tensor | None],
    s: UpdateSettings,
) -> dict[str, float]:
    """PPO updates: ``inner_epochs`` passes over the plan, one optimizer step per chunk after
    accumulating its slots' gradients. The KL to the reference (the same denoiser with its adapter
    disabled, no grad) is added with weight ``kl_beta``. Runs in eval mode (no dropout), as the
    rollout and :func:`old_log_probs` did, so the ratio measures only the weight change.

    ``old[0]`` may be None (see :func:`old_log_probs`): the first chunk's training forward then
    supplies it. Returns mean metrics, ``ratio_dev_first`` (max |ratio - 1| over the first chunk
    of the first pass, taken before any optimizer step: it must be exactly 0) and
    ``rollout_logprob_dev`` (max |log-prob the trainer computes - log-prob the sampler recorded|
    over that chunk: float rounding only, ~1e-6, when sampler and trainer agree on the policy).
    """
    params = [p for g in optimizer.param_groups for p in g["params"]]
    stats: dict[str, list[float]] = {}
    norms, first_dev, rollout_dev = [], 0.0, 0.0
    old = list(old)
    with policy.eval_mode():
        for epoch in range(s.inner_epochs):
            for c, (rows, steps) in enumerate(zip(plan.chunks, plan.steps, strict=True)):
                optimizer.zero_grad(set_to_none=True)
                slots = steps.shape[1]
                live, adv, taken = old[c] is None, advantages[rows], []
                for j in range(slots):
                    slot_old = None if live else old[c][:, j]
                    pl, kl, slot_old = _train_forward(policy, traj, rows, steps[:, j], slot_old, adv, s, slots)
                    taken.append(slot_old)
                    if epoch == 0 and c == 0:
                        first_dev = max(first_dev, float((pl.ratio - 1).abs().max()))
                        recorded = traj.log_probs[rows, steps[:, j]].to(slot_old.device)
                        rollout_dev = max(rollout_dev, float((slot_old - recorded).abs().max()))
                    values = {"policy_loss": pl.loss, "kl": kl, "ratio_mean": pl.ratio.mean(), "clipfrac": pl.clipfrac}
                    for key, value in {**values, "approx_kl": pl.approx_kl}.items():
                        stats.setdefault(key, []).append(float(value.detach()))
                if live:
                    old[c] = torch.stack(taken, 1)
                norms.append(float(torch.nn.utils.clip_grad_norm_(params, s.max_grad_norm)))
                optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    # With nothing trained (every group dropped) the ratio is 1 by definition; the rest are 0.
    metrics = {k: float(np.mean(stats[k])) if k in stats else float(k == "ratio_mean") for k in METRICS}
    metrics.update(grad_norm=float(np.mean(norms)) if norms else 0.0, ratio_dev_first=first_dev, updates=len(norms))
    metrics["rollout_logprob_dev"] = rollout_dev
    return metrics
