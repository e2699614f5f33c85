"""The policy-gradient estimators against hand-computed values, and the rollout/update helpers.

The DDIM log-prob against an independent Gaussian density is covered in
test_algorithms_sampling.py; here the flow step with zero noise is checked at the training level
(the per-sample transitions the update recomputes equal the scheduler's Euler step).
"""

import dataclasses
import io
import math

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from tests.training.algorithms.tiny import PROMPTS
from training.algorithms import policy_gradient as pg
from training.algorithms.sampling import trajectory_log_prob
from training.algorithms.steps import gaussian_log_prob

# --- group advantages (GRPO) ------------------------------------------------------------------------

REWARDS = [1.0, 3.0, 5.0, 2.0, 2.0, 0.0, 4.0]
GROUPS = [0, 0, 0, 1, 1, 2, 2]


def test_group_advantages_hand_computed():
    out = pg.group_advantages(REWARDS, GROUPS, eps=0.0)
    # group 0: mean 3, population std sqrt(8/3) -> (-2, 0, 2) / sqrt(8/3) = -+sqrt(3/2)
    # group 1: no spread -> dropped, advantage 0; group 2: mean 2, std 2 -> (-1, 1)
    s = math.sqrt(1.5)
    assert out.advantages.tolist() == pytest.approx([-s, 0.0, s, 0.0, 0.0, -1.0, 1.0], abs=1e-12)
    assert out.dropped.tolist() == [False, False, False, True, True, False, False]
    assert out.zero_std_fraction == pytest.approx(1 / 3)
    assert out.advantages.dtype == torch.float64


def test_group_advantages_eps_and_global_std():
    eps = 1e-4
    out = pg.group_advantages(REWARDS, GROUPS, eps=eps)
    assert out.advantages[0].item() == pytest.approx(-2 / (math.sqrt(8 / 3) + eps), abs=1e-12)
    # global std over all seven rewards (the dropped group's included): var = 59/7 - (17/7)^2 = 124/49
    glob = pg.group_advantages(REWARDS, GROUPS, eps=0.0, global_std=True)
    std = math.sqrt(124) / 7
    assert glob.advantages.tolist() == pytest.approx([-2 / std, 0, 2 / std, 0, 0, -2 / std, 2 / std], abs=1e-12)
    assert glob.dropped.tolist() == out.dropped.tolist()


def test_group_advantages_all_equal_and_bad_input():
    out = pg.group_advantages([0.5, 0.5, 1.0, 1.0], ["a", "a", "b", "b"])
    assert out.dropped.all() and out.zero_std_fraction == 1.0
    assert torch.equal(out.advantages, torch.zeros(4, dtype=torch.float64))
    with pytest.raises(ValueError):
        pg.group_advantages([1.0, 2.0], [0])


# --- per-prompt stat tracking (DDPO) ----------------------------------------------------------------


def test_prompt_stat_tracker_hand_computed():
    tracker = pg.PromptStatTracker(buffer_size=3, min_count=2, eps=0.0)
    # p has 2 rewards (>= min_count): its own mean 2, std 1. q has 1: batch stats, mean 3, std sqrt(8/3).
    adv = tracker.update(["p", "p", "q"], [1.0, 3.0, 5.0])
    assert adv.tolist() == pytest.approx([-1.0, 1.0, math.sqrt(1.5)], abs=1e-12)
    # p's buffer [1, 3, 7]: mean 11/3, std sqrt(56)/3; q's [5, 1]: mean 3, std 2
    adv = tracker.update(["p", "q"], [7.0, 1.0])
    assert adv.tolist() == pytest.approx([10 / math.sqrt(56), -1.0], abs=1e-12)
    # p's buffer keeps the last 3: [3, 7, 9], mean 19/3, std sqrt(56)/3
    adv = tracker.update(["p"], [9.0])
    assert adv.tolist() == pytest.approx([8 / math.sqrt(56)], abs=1e-12)
    assert tracker.state_dict() == {"prompts": ["p", "q"], "rewards": [[3.0, 7.0, 9.0], [5.0, 1.0]]}


def test_prompt_stat_tracker_state_survives_a_safe_checkpoint():
    tracker = pg.PromptStatTracker(buffer_size=4, min_count=3)
    tracker.update(["a", "b", "a"], [0.1, 0.7, 0.3])
    buf = io.BytesIO()
    torch.save({"extra": tracker.state_dict()}, buf)
    buf.seek(0)
    restored = pg.PromptStatTracker(buffer_size=4, min_count=3)
    restored.load_state_dict(torch.load(buf, weights_only=True)["extra"])
    assert restored.buffers == tracker.buffers
    np.testing.assert_array_equal(restored.update(["a", "b"], [0.9, 0.2]), tracker.update(["a", "b"], [0.9, 0.2]))


# --- clipped loss, KL ---------------------------------------------------------------------------------


def test_clipped_loss_at_ratio_one():
    lp = torch.tensor([-3.0])
    out = pg.clipped_policy_loss(lp, lp.clone(), torch.tensor([-1.0]), clip_range=1e-4, adv_clip=5.0)
    assert out.loss.item() == 1.0  # TRL's DDPO test_loss: advantage -1, ratio 1
    assert out.ratio.item() == 1.0 and out.clipfrac.item() == 0.0 and out.approx_kl.item() == 0.0
    capped = pg.clipped_policy_loss(lp, lp.clone(), torch.tensor([10.0]), clip_range=1e-4, adv_clip=5.0)
    assert capped.loss.item() == -5.0  # the advantage is clipped to 5


def test_clipped_loss_takes_the_pessimistic_branch():
    ratio = torch.tensor([1.5, 1.5, 0.5, 0.5], dtype=torch.float64)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    old = torch.zeros(4, dtype=torch.float64)
    lp = ratio.log().requires_grad_(True)
    out = pg.clipped_policy_loss(lp, old, adv, clip_range=0.2, adv_clip=5.0)
    # max(-A r, -A clip(r)): -1.2 (clipped), 1.5, -0.5, 0.8 (clipped)
    assert out.loss.item() == pytest.approx((-1.2 + 1.5 - 0.5 + 0.8) / 4, abs=1e-12)
    assert out.clipfrac.item() == 1.0
    assert out.approx_kl.item() == pytest.approx(0.5 * (2 * math.log(1.5) ** 2 + 2 * math.log(0.5) ** 2) / 4)
    out.loss.backward()
    # clipped branches carry no gradient; the others d(-A r)/d lp = -A r, over the batch mean
    assert lp.grad.tolist() == pytest.approx([0.0, 1.5 / 4, -0.5 / 4, 0.0], abs=1e-12)


def test_clipped_loss_gradcheck():
    g = torch.Generator().manual_seed(0)
    old = torch.randn(6, dtype=torch.float64, generator=g)
    # ratios well inside or outside the clip range (finite differences must not cross the kink)
    delta = torch.tensor([0.01, -0.02, 0.5, -0.5, 0.03, 0.4], dtype=torch.float64)
    lp = (old + delta).requires_grad_(True)
    adv = torch.tensor([1.0, -2.0, 0.5, -1.0, 7.0, -0.3], dtype=torch.float64)

    def f(x):
        return pg.clipped_policy_loss(x, old, adv, clip_range=0.2, adv_clip=5.0).loss

    assert torch.autograd.gradcheck(f, (lp,))


def test_gaussian_kl():
    mean, ref = torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2)
    assert pg.gaussian_kl(mean, ref, torch.tensor(2.0)).tolist() == pytest.approx([(1 / 8 + 4 / 8) / 2])
    g = torch.Generator().manual_seed(0)
    m, r = (
        torch.randn(3, 2, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 2, 4, generator=g, dtype=torch.float64),
    )
    std = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64).reshape(3, 1, 1)
    exact = torch.distributions.kl_divergence(torch.distributions.Normal(m, std), torch.distributions.Normal(r, std))
    torch.testing.assert_close(pg.gaussian_kl(m, r, std), exact.mean(dim=(1, 2)), atol=1e-12, rtol=0)
    assert torch.equal(pg.gaussian_kl(m, m.clone(), std), torch.zeros(3, dtype=torch.float64))
    assert torch.equal(
        pg.gaussian_kl(m, r, torch.zeros(3, 1, 1, dtype=torch.float64)), torch.zeros(3, dtype=torch.float64)
    )


# --- plans and rollouts ------------------------------------------------------------------------------


def test_make_plan():
    plan = pg.make_plan(np.random.default_rng(0), [0, 2, 5, 7, 9], sampler_steps=4, train_steps=3, batch_size=2)
    assert [len(c) for c in plan.chunks] == [2, 2, 1]
    assert sorted(torch.cat(plan.chunks).tolist()) == [0, 2, 5, 7, 9]
    for steps in plan.steps:
        assert steps.shape[1] == 3
        for row in steps.tolist():
            assert len(set(row)) == 3 and all(0 <= s < 4 for s in row)
    again = pg.make_plan(np.random.default_rng(0), [0, 2, 5, 7, 9], sampler_steps=4, train_steps=3, batch_size=2)
    assert all(torch.equal(a, b) for a, b in zip(plan.steps, again.steps, strict=True))
    assert pg.make_plan(np.random.default_rng(0), [], sampler_steps=4, train_steps=3, batch_size=2).chunks == []
    early = pg.make_plan(
        np.random.default_rng(1), range(6), sampler_steps=10, train_steps=3, batch_size=0, earliest=True
    )
    assert all(sorted(row) == [0, 1, 2] for row in early.steps[0].tolist())
    window = pg.make_plan(np.random.default_rng(2), range(8), sampler_steps=10, train_steps=2, batch_size=0, window=4)
    rows = window.steps[0].tolist()
    assert all(len(set(row)) == 2 and all(0 <= s < 4 for s in row) for row in rows)
    assert len({s for row in rows for s in row}) > 2  # drawn from the whole window, not its first two
    with pytest.raises(ValueError, match="cannot train 5 of 4"):
        pg.make_plan(np.random.default_rng(0), range(2), sampler_steps=10, train_steps=5, batch_size=0, window=4)


def test_one_clipped_update_moves_a_gaussian_policy_toward_the_reward():
    """The sign of the whole estimator on a one-step toy: x ~ N(mu, 1), reward -(x - 2)^2, mu = 0."""
    mu = torch.zeros(1, requires_grad=True)
    x = torch.randn(256, 1, generator=torch.Generator().manual_seed(0))
    rewards = -((x[:, 0] - 2) ** 2)
    adv = pg.group_advantages(rewards.numpy(), [0] * 256).advantages
    old = gaussian_log_prob(x, torch.zeros(256, 1), torch.tensor(1.0))
    loss = pg.clipped_policy_loss(gaussian_log_prob(x, mu.expand(256, 1), torch.tensor(1.0)), old, adv, 0.2, 5.0)
    assert loss.ratio.eq(1).all()
    loss.loss.backward()
    assert mu.grad.item() < 0  # gradient descent raises mu, toward the reward's peak at 2


def test_flow_transition_without_noise_is_the_euler_step(policies):
    """What the update recomputes (per-sample steps, a row subset of the batch) at noise level 0
    is ``FlowMatchEulerDiscreteScheduler.step``."""
    policy = policies["shapes-image-flow"]
    traj = pg.rollout(policy, PROMPTS * 2, seeds=[1, 2, 3, 4], steps=3, eta=0.7, guidance=1.0)
    rows, idx = torch.tensor([3, 0, 2]), torch.tensor([2, 0, 1])
    with torch.no_grad():
        out = pg._transition(policy, dataclasses.replace(traj, eta=0.0), rows, idx)
        for k, (b, i) in enumerate(zip(rows.tolist(), idx.tolist(), strict=True)):
            sched = FlowMatchEulerDiscreteScheduler.from_config(policy.scheduler.config)
            sched.set_timesteps(3)  # fresh: step() finds its index from the timestep
            x, t = traj.latents[b : b + 1, i], sched.timesteps[i]
            v = policy.predict(x, t, traj.cond.index(torch.tensor([b])))
            expected = sched.step(v, t, x).prev_sample
            torch.testing.assert_close(out.mean[k : k + 1], expected, atol=1e-6, rtol=0)
    assert torch.equal(out.log_prob, torch.zeros(3))


def test_rollout_in_chunks_and_with_a_shared_start(policies):
    policy = policies["shapes-image-flow"]
    whole = pg.rollout(policy, PROMPTS * 2, seeds=[1, 2, 3, 4], steps=2, eta=0.7, guidance=1.0)
    chunked = pg.rollout(policy, PROMPTS * 2, seeds=[1, 2, 3, 4], steps=2, eta=0.7, guidance=1.0, batch_size=3)
    assert chunked.prompts == whole.prompts and chunked.seeds == whole.seeds and len(chunked.media) == 4
    # equal up to float rounding only: a batch's composition may change the last bits
    torch.testing.assert_close(chunked.latents, whole.latents, atol=1e-5, rtol=0)
    torch.testing.assert_close(chunked.cond.embeds, whole.cond.embeds, atol=0, rtol=0)

    shared = pg.rollout(
        policy, PROMPTS * 2, seeds=[1, 2, 3, 4], start_seeds=[7, 7, 8, 8], steps=2, eta=0.7, guidance=1.0
    )
    assert torch.equal(shared.latents[0, 0], shared.latents[1, 0])
    assert not torch.equal(shared.latents[0, 0], shared.latents[2, 0])
    assert not torch.allclose(shared.latents[0, -1], shared.latents[1, -1])
    with torch.no_grad():
        for i in range(2):
            torch.testing.assert_close(
                trajectory_log_prob(policy, shared, i), shared.log_probs[:, i], atol=1e-5, rtol=0
            )


def test_score_checks_the_reward():
    traj = dataclasses.make_dataclass("T", ["media", "prompts"])([np.zeros((2, 2, 3))] * 2, ["a", "b"])
    assert pg.score(lambda m, p, d: [0.5, 1.0], traj, [{}, {}]).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError):
        pg.score(lambda m, p, d: [0.5], traj, [{}, {}])
    with pytest.raises(FloatingPointError):
        pg.score(lambda m, p, d: [0.5, float("nan")], traj, [{}, {}])
