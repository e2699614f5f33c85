"""DDPO (PPO-style RLHF) on the tiny generators: ratio 1 and KL 0 before the first update, any
reward function (a weighted sum with the verifier here), the prompt statistics checkpointed so a
resume is exact, and a short run in which the reward rises."""

import numpy as np
import pytest
import torch

from tests.training.algorithms.rl_helpers import DATA, brightness, fresh, lora_state
from tests.training.algorithms.tiny import PROMPTS
from training.algorithms import policy_gradient as pg
from training.algorithms.checkpoint import latest_checkpoint, load_checkpoint
from training.algorithms.ppo import PPOConfig, batch_advantages, train_ppo
from training.shapes import grammar, verify

GENERATORS = ["shapes-image-eps", "shapes-image-flow", "shapes-video", "shapes-multiview"]
TINY = {"prompts_per_step": 2, "samples_per_prompt": 2, "sampler_steps": 2, "timestep_fraction": 0.5, "lora_rank": 2}


def verifier(media, prompts, metadata):
    return np.array(
        [verify.verify(grammar.PromptSpec.from_dict(d["spec"]), m).score for m, d in zip(media, metadata, strict=True)]
    )


def weighted(media, prompts, metadata):
    """A composed reward: 0.7 verifier + 0.3 brightness."""
    return 0.7 * verifier(media, prompts, metadata) + 0.3 * brightness(media, prompts, metadata)


@pytest.mark.parametrize("kwargs", [{"samples_per_prompt": 0}, {"min_count": 0}, {"buffer_size": 0}, {"adv_eps": -1}])
def test_config_is_validated(kwargs):
    with pytest.raises(ValueError):
        PPOConfig(**kwargs)


def test_batch_advantages():
    assert batch_advantages(np.array([1.0, 3.0]), 0.0).tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("name", GENERATORS)
def test_first_update_has_ratio_one_and_kl_zero(name, saved_generators, tmp_path):
    reward = weighted if name.startswith("shapes-image") else brightness
    seen = []
    config = PPOConfig(steps=1, guidance=2.0, kl_beta=0.1, **TINY)
    result = train_ppo(
        config, pg.RLComponents(fresh(saved_generators, name), reward), DATA, run_dir=tmp_path, on_step=seen.append
    )
    metrics = seen[0].metrics
    assert metrics["ratio_dev_first"] == 0.0 and metrics["ratio_mean"] == 1.0
    assert metrics["kl"] == 0.0 and metrics["clipfrac"] == 0.0
    assert metrics["kept_fraction"] == 1.0 and metrics["updates"] == 1  # DDPO drops nothing
    assert {"reward_mean", "reward_std", "policy_loss", "lr", "adv_abs_mean"} <= set(metrics)
    assert result.steps == 1 and (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_stop_and_resume_equal_an_uninterrupted_run(saved_generators, tmp_path):
    # min_count 3 with 2 samples per prompt: the first step uses batch statistics, later ones the
    # per-prompt buffers, so a resume that lost the tracker's state would diverge.
    config = PPOConfig(
        steps=3,
        min_count=3,
        buffer_size=4,
        inner_epochs=2,
        train_batch_size=2,
        kl_beta=0.1,
        clip_range=0.1,
        learning_rate=1e-2,
        **TINY,
    )
    straight = fresh(saved_generators, "shapes-image-eps")
    full = train_ppo(config, pg.RLComponents(straight, brightness), DATA, run_dir=tmp_path / "a")

    seen = []
    first = train_ppo(
        config,
        pg.RLComponents(fresh(saved_generators, "shapes-image-eps"), brightness),
        DATA,
        run_dir=tmp_path / "b",
        on_step=lambda info: seen.append(info.step),
        should_stop=lambda: len(seen) >= 1,
    )
    assert first.stopped and first.steps == 1 and seen == [1]
    saved = load_checkpoint(latest_checkpoint(tmp_path / "b").path)["extra"]["advantage_state"]
    assert sorted(saved["prompts"]) == sorted(PROMPTS) and all(len(r) == 2 for r in saved["rewards"])

    resumed = fresh(saved_generators, "shapes-image-eps")
    rest = train_ppo(
        config,
        pg.RLComponents(resumed, brightness),
        DATA,
        run_dir=tmp_path / "b",
        on_step=lambda info: seen.append(info.step),
    )
    assert seen == [1, 2, 3] and rest.steps == 3
    a, b = lora_state(straight), lora_state(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    assert full.history[1:] == rest.history


def test_reward_rises_on_a_reward_the_tiny_model_can_move(saved_generators):
    # Per-prompt history makes DDPO noisier than GRPO here: a lower lr with more passes is stable.
    config = PPOConfig(
        steps=30,
        prompts_per_step=2,
        samples_per_prompt=4,
        min_count=4,
        sampler_steps=4,
        learning_rate=1e-2,
        clip_range=0.2,
        inner_epochs=4,
        kl_beta=0.0,
        lora_rank=4,
    )
    policy = fresh(saved_generators, "shapes-image-flow")
    result = train_ppo(config, pg.RLComponents(policy, brightness), DATA, run_dir=None)
    rewards = [h["reward_mean"] for h in result.history]
    assert np.mean(rewards[-3:]) > np.mean(rewards[:2]) + 0.05, rewards
    assert result.metrics["kl"] > 0 and result.metrics["clipfrac"] >= 0
