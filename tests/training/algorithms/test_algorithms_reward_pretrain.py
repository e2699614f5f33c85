"""Caption-matching pre-training of the reward model: the candidates, the loss by hand, what trains,
exact resume, and that matching is learned at all."""

import numpy as np
import pytest
import torch

from training.algorithms.reward_backbones import OVERALL
from training.algorithms.reward_model import RewardModelConfig, build_reward_model
from training.algorithms.reward_pretrain import (
    CaptionPretrainConfig,
    caption_accuracy,
    caption_batch,
    pretrain_reward_model,
)
from training.algorithms.run import Run
from training.shapes import grammar, verify

TINY = {"channels": (8, 8), "feature_dim": 16, "text_dim": 8, "hidden": 16}


@pytest.mark.parametrize("modality", ["image", "video", "multiview"])
def test_groups_put_the_true_pairing_first_then_prompts_asking_for_something_else(modality):
    batch = caption_batch(np.random.default_rng(3), modality, 24, 6, 3, 3)
    assert len(batch.groups) == 48
    near_seen = 0
    for text_group, image_group in zip(batch.groups[::2], batch.groups[1::2], strict=True):
        own_index, own_text = text_group[0]
        own = grammar.parse(own_text)
        assert verify.verify(own, batch.media[own_index]).score == 1.0  # ground truth of its caption
        # Which caption is it: one render, its caption, then up to 6 captions asking for other things.
        assert {i for i, _ in text_group} == {own_index}
        others = [grammar.parse(t) for _, t in text_group[1:]]
        meanings = {grammar.meaning(o) for o in others}
        assert grammar.meaning(own) not in meanings and len(meanings) == len(others) <= 6
        near = {grammar.meaning(n) for n in grammar.neighbours(own)}
        assert len(meanings & near) >= min(3, len(near))  # three of them one edit away
        near_seen += len(meanings & near)
        # Which render is it: one caption, its render, then renders of up to 3 other prompts, none
        # of which satisfies the caption.
        assert image_group[0] == (own_index, own_text) and {t for _, t in image_group} == {own_text}
        assert 2 <= len(image_group) <= 4
        for i, _ in image_group[1:]:
            assert verify.verify(own, batch.media[i]).score < 1.0
    assert near_seen > 0
    again = caption_batch(np.random.default_rng(3), modality, 24, 6, 3, 3)
    assert again.groups == batch.groups
    assert all(np.array_equal(a, b) for a, b in zip(batch.media, again.media, strict=True))


def test_loss_is_the_mean_log_of_the_group_sizes_when_scores_are_equal():
    # With the overall head zeroed every pairing scores the same: the cross-entropy of each group is
    # ln(its size): 8, or fewer for prompts with few alternatives ("a circle and a square").
    model = build_reward_model(RewardModelConfig(**TINY))
    with torch.no_grad():
        model.heads[OVERALL].weight.zero_()
    config = CaptionPretrainConfig(steps=1, batch_size=16, negatives=7, lr=1e-9, warmup_steps=0, seed=4)
    result = pretrain_reward_model(config, model)
    # The batch the run drew: the same seeded generator the run starts from.
    batch = caption_batch(Run(None, total_steps=1, seed=config.seed).rng, "image", 16, 7, 7, config.near_negatives)
    sizes = [len(g) for g in batch.groups]
    assert max(sizes) == 8 and min(sizes) >= 3
    assert result.history[0]["loss"] == pytest.approx(float(np.mean(np.log(sizes))), rel=1e-6)
    assert result.history[0]["accuracy"] == 0.0  # ties are not wins


def test_one_step_changes_every_parameter():
    model = build_reward_model(RewardModelConfig(**TINY))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    pretrain_reward_model(CaptionPretrainConfig(steps=1, batch_size=8, weight_decay=0.0, warmup_steps=0), model)
    for name, p in model.named_parameters():
        assert not torch.equal(before[name], p), name


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    config = CaptionPretrainConfig(steps=6, batch_size=6, negatives=3, checkpoint_every=2, eval_renders=16)
    full_model = build_reward_model(RewardModelConfig(**TINY))
    full = pretrain_reward_model(config, full_model, run_dir=tmp_path / "full")
    done = []
    cut_model = build_reward_model(RewardModelConfig(**TINY))
    first = pretrain_reward_model(
        config, cut_model, run_dir=tmp_path / "cut", on_step=done.append, should_stop=lambda: len(done) >= 3
    )
    assert first.stopped and first.steps == 3 and "caption_accuracy" not in first.summary
    resumed_model = build_reward_model(RewardModelConfig(**TINY))
    resumed = pretrain_reward_model(config, resumed_model, run_dir=tmp_path / "cut")
    assert resumed.steps == 6 and [h["step"] for h in resumed.history] == [4, 5, 6]
    assert resumed.history == full.history[3:]
    for (name, a), (_, b) in zip(full_model.named_parameters(), resumed_model.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    assert resumed.summary["caption_accuracy"] == full.summary["caption_accuracy"]


def test_caption_matching_is_learned():
    # 200 steps of a small model: the true pairing ranks first in its group of 4 (caption among
    # captions, render among renders) far more often than before training (about 1 in 4, chance).
    model = build_reward_model(RewardModelConfig(channels=(8, 16), feature_dim=16, text_dim=8, hidden=16))
    batch = caption_batch(np.random.default_rng(99), "image", 256, 3, 3)
    before = caption_accuracy(model, batch)
    pretrain_reward_model(CaptionPretrainConfig(steps=200, batch_size=16, negatives=3, lr=5e-3), model)
    after = caption_accuracy(model, batch)
    # Chance is 0.25 (standard error 0.027 on 256 groups). Seeded and on one thread, the trained
    # figure still depends on the CPU's float kernels: 0.58 on 64 groups on one host, 0.46 on 64 and
    # 0.49 on 256 on another, 0.26 before on both. The full-size model in the benchmark reaches 0.96
    # in groups of 8.
    assert before < 0.32 and after >= 0.40, (before, after)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": 0}, "steps"),
        ({"negatives": 0}, "negatives"),
        ({"image_negatives": -1}, "image_negatives"),
        ({"near_negatives": -1}, "near_negatives"),
        ({"lr": 0.0}, "lr"),
        ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
        ({"grad_clip": -1.0}, "non-negative"),
        ({"modality": "audio"}, "modality"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CaptionPretrainConfig(**kwargs)


def test_data_must_be_none():
    with pytest.raises(ValueError, match="data=None"):
        pretrain_reward_model(CaptionPretrainConfig(steps=1), build_reward_model(RewardModelConfig(**TINY)), [1])
