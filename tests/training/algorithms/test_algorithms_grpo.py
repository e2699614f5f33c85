"""GRPO on the tiny generators: exact invariants (ratio 1, KL 0, only the adapter moves, exact
resume), the callbacks, and a short run in which the tiny model learns a reward it can move."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.training.algorithms.rl_helpers import DATA, brightness, fresh, lora_state
from tests.training.algorithms.tiny import PROMPTS
from training.algorithms import policy_gradient as pg
from training.algorithms.checkpoint import latest_checkpoint
from training.algorithms.grpo import GRPOConfig, train_grpo
from training.algorithms.pg_loop import prepare_policy

GENERATORS = [
    "shapes-image-eps",
    "shapes-image-flow",
    "shapes-video",
    "shapes-multiview",
    "shapes-video-flow",
    "shapes-multiview-flow",
    "shapes-video-stacked",
]
TINY = {"prompts_per_step": 2, "group_size": 2, "sampler_steps": 2, "timestep_fraction": 0.5, "lora_rank": 2}
# Settings under which the tiny flow model learns the brightness reward within 10 steps.
LEARNS = {
    "steps": 10,
    "prompts_per_step": 2,
    "group_size": 4,
    "sampler_steps": 4,
    "learning_rate": 3e-2,
    "clip_range": 0.2,
    "inner_epochs": 2,
    "kl_beta": 0.0,
    "lora_rank": 4,
}
METRICS = {"reward_mean", "reward_std", "policy_loss", "kl", "ratio_mean", "clipfrac", "zero_std_groups", "lr"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"steps": 0},
        {"group_size": 1},
        {"timestep_fraction": 0.0},
        {"eta": 0.0},
        {"clip_range": 0},
        {"kl_beta": -1},
        {"sde_window": -1},
        {"sde_window": 11, "sampler_steps": 10},
    ],
)
def test_config_is_validated(kwargs):
    with pytest.raises(ValueError):
        GRPOConfig(**kwargs)


def test_defaults():
    config = GRPOConfig(sampler_steps=10, timestep_fraction=0.6)
    assert config.train_steps == 6 and config.eta_for("flow") == 0.7 and config.eta_for("epsilon") == 1.0
    assert GRPOConfig(eta=0.3).eta_for("flow") == 0.3
    assert GRPOConfig(sampler_steps=10, sde_window=4, timestep_fraction=0.5).train_steps == 2


@pytest.mark.parametrize("name", GENERATORS)
def test_first_update_has_ratio_one_and_kl_zero(name, saved_generators, tmp_path):
    policy = fresh(saved_generators, name)
    components = pg.RLComponents(policy, brightness)
    config = GRPOConfig(steps=1, guidance=2.0, kl_beta=0.04, **TINY)
    prepare_policy(components, config)
    # The recomputed old log-probs equal, bit for bit, the training forward with gradients.
    traj = pg.rollout(policy, PROMPTS * 2, seeds=[1, 2, 3, 4], steps=2, eta=config.eta_for(policy.family), guidance=2.0)
    plan = pg.make_plan(np.random.default_rng(0), range(4), sampler_steps=2, train_steps=2, batch_size=0)
    old = pg.old_log_probs(policy, traj, plan)
    with policy.eval_mode():
        for j in range(2):
            new = pg._transition(policy, traj, plan.chunks[0], plan.steps[0][:, j])
            assert new.log_prob.requires_grad
            assert torch.equal(new.log_prob.detach(), old[0][:, j])
            with torch.no_grad(), policy.disable_adapter():
                ref = pg._transition(policy, traj, plan.chunks[0], plan.steps[0][:, j])
            assert torch.equal(pg.gaussian_kl(new.mean.detach(), ref.mean, new.std), torch.zeros(4))

    seen = []
    result = train_grpo(config, components, DATA, run_dir=tmp_path, on_step=seen.append)
    assert [info.step for info in seen] == [1] and seen[0].total == 1
    metrics = seen[0].metrics
    assert set(metrics) >= METRICS
    assert metrics["ratio_dev_first"] == 0.0 and metrics["ratio_mean"] == 1.0  # one batch: all before the update
    # The trainer's log-prob of each rollout transition is the sampler's, up to float rounding.
    assert 0.0 <= metrics["rollout_logprob_dev"] < 1e-4
    assert metrics["kl"] == 0.0 and metrics["clipfrac"] == 0.0 and metrics["approx_kl"] == 0.0
    assert metrics["updates"] == 1 and metrics["zero_std_groups"] == 0.0 and metrics["lr"] == config.learning_rate
    assert result.steps == 1 and not result.stopped and result.checkpoint.step == 1
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


@pytest.mark.parametrize("chunk", [0, 2])
def test_live_old_log_probs_train_as_the_recomputed_ones(chunk, saved_generators):
    """Taking the first chunk's old log-probs from its own training forward (what the loop does)
    trains exactly as recomputing them first, with one chunk and with several, over two passes."""
    config = GRPOConfig(steps=1, kl_beta=0.04, clip_range=0.2, **TINY)
    settings = pg.UpdateSettings(config.clip_range, config.adv_clip, config.kl_beta, config.max_grad_norm, 2)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    states, metrics = [], []
    for first in (True, False):
        policy = fresh(saved_generators, "shapes-image-flow")
        params = prepare_policy(pg.RLComponents(policy, brightness), config)
        torch.manual_seed(1)
        with torch.no_grad():  # a non-zero adapter, so the update's ratios leave 1
            for p in params:
                p.add_(0.1 * torch.randn_like(p))
        traj = pg.rollout(policy, PROMPTS * 2, seeds=[1, 2, 3, 4], steps=2, eta=0.7, guidance=1.0)
        plan = pg.make_plan(np.random.default_rng(0), range(4), sampler_steps=2, train_steps=2, batch_size=chunk)
        old = pg.old_log_probs(policy, traj, plan, include_first=first)
        assert (old[0] is None) == (not first) and all(o is not None for o in old[1:])
        optimizer = torch.optim.AdamW(params, lr=1e-2)
        metrics.append(pg.update(policy, optimizer, traj, adv, plan, old, settings))
        states.append(lora_state(policy))
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert metrics[0] == metrics[1] and metrics[0]["ratio_mean"] != 1.0


def test_one_step_moves_only_the_adapter(saved_generators, tmp_path):
    policy = fresh(saved_generators, "shapes-image-eps")
    components = pg.RLComponents(policy, brightness)
    # No weight decay: AdamW would shrink even a parameter whose gradient is exactly 0.
    config = GRPOConfig(steps=1, weight_decay=0.0, kl_beta=0.04, **TINY)
    prepare_policy(components, config)  # the adapter train_grpo would add, so its init can be seen
    before = {n: p.detach().clone() for n, p in policy.denoiser.named_parameters()}
    text = {n: p.detach().clone() for n, p in policy.text_encoder.named_parameters()}
    train_grpo(config, components, DATA, run_dir=tmp_path)
    after = dict(policy.denoiser.named_parameters())
    lora_a = [n for n in after if "lora_A" in n]
    lora_b = [n for n in after if "lora_B" in n]
    assert lora_a and len(lora_a) == len(lora_b)
    # LoRA starts with B = 0 ("gaussian" init), so d loss / d A = 0 on the first step: every B
    # receives gradient and moves, every A stays exactly where it was initialised.
    assert all(torch.equal(before[n], torch.zeros_like(before[n])) for n in lora_b)
    assert all(not torch.equal(after[n], before[n]) for n in lora_b)
    assert all(torch.equal(after[n], before[n]) for n in lora_a)
    for name, value in before.items():
        if "lora_" not in name:
            assert torch.equal(after[name], value), name  # the base model (the reference) is frozen
    assert all(torch.equal(p, text[n]) for n, p in policy.text_encoder.named_parameters())

    # A second step (resumed from the checkpoint): now that B != 0, A receives gradient and moves.
    train_grpo(dataclasses.replace(config, steps=2), components, DATA, run_dir=tmp_path)
    assert all(not torch.equal(after[n], before[n]) for n in lora_a)
    assert all(torch.equal(after[n], before[n]) for n in before if "lora_" not in n)


def test_stop_and_resume_equal_an_uninterrupted_run(saved_generators, tmp_path):
    # Several batches, two passes, a KL, a shared start: every piece of state must survive a resume.
    config = GRPOConfig(
        steps=3,
        inner_epochs=2,
        train_batch_size=3,
        kl_beta=0.1,
        clip_range=0.1,
        learning_rate=1e-2,
        same_initial_noise=True,
        **{**TINY, "group_size": 3},
    )
    straight = fresh(saved_generators, "shapes-image-flow")
    full = train_grpo(config, pg.RLComponents(straight, brightness), DATA, run_dir=tmp_path / "a")

    steps_seen = []
    first = train_grpo(
        config,
        pg.RLComponents(fresh(saved_generators, "shapes-image-flow"), brightness),
        DATA,
        run_dir=tmp_path / "b",
        on_step=lambda info: steps_seen.append(info.step),
        should_stop=lambda: len(steps_seen) >= 1,
    )
    assert first.stopped and first.steps == 1 and steps_seen == [1]
    assert latest_checkpoint(tmp_path / "b").step == 1
    resumed_policy = fresh(saved_generators, "shapes-image-flow")
    components = pg.RLComponents(resumed_policy, brightness)
    rest = train_grpo(config, components, DATA, run_dir=tmp_path / "b", on_step=lambda i: steps_seen.append(i.step))
    assert steps_seen == [1, 2, 3] and rest.steps == 3 and not rest.stopped
    a, b = lora_state(straight), lora_state(resumed_policy)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    assert full.history[1:] == rest.history
    assert full.metrics["kl"] > 0 and full.history[0]["ratio_dev_first"] == 0.0


def flat(media, prompts, metadata):
    """The same reward for every sample: no group has any spread."""
    return np.full(len(media), 0.25)


def test_groups_without_reward_spread_are_dropped(saved_generators, tmp_path):
    policy = fresh(saved_generators, "shapes-image-flow")
    seen = []
    config = GRPOConfig(steps=1, **TINY)
    train_grpo(config, pg.RLComponents(policy, flat), DATA, run_dir=None, on_step=seen.append)
    metrics = seen[0].metrics
    # every group scores the same: all are dropped and nothing is trained
    assert metrics["reward_mean"] == 0.25 and metrics["zero_std_groups"] == 1.0
    assert metrics["kept_fraction"] == 0.0 and metrics["updates"] == 0
    assert all(torch.equal(p, torch.zeros_like(p)) for n, p in lora_state(policy).items() if "lora_B" in n)


def test_reward_rises_on_a_reward_the_tiny_model_can_move(saved_generators):
    policy = fresh(saved_generators, "shapes-image-flow")
    config = GRPOConfig(**LEARNS)
    result = train_grpo(config, pg.RLComponents(policy, brightness), DATA, run_dir=None)
    rewards = [h["reward_mean"] for h in result.history]
    assert np.mean(rewards[-3:]) > np.mean(rewards[:2]) + 0.05, rewards
    assert result.metrics["kl"] > 0  # the policy moved away from the reference


def test_sde_window_trains_only_its_steps_and_still_learns(saved_generators):
    """With an SDE window of 2 of 4 steps the rollouts end deterministically; the reward still rises."""
    policy = fresh(saved_generators, "shapes-image-flow")
    config = GRPOConfig(sde_window=2, **LEARNS)
    assert config.train_steps == 2
    result = train_grpo(config, pg.RLComponents(policy, brightness), DATA, run_dir=None)
    rewards = [h["reward_mean"] for h in result.history]
    assert result.history[0]["ratio_dev_first"] == 0.0
    assert np.mean(rewards[-3:]) > np.mean(rewards[:2]) + 0.05, rewards
