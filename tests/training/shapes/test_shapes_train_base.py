"""Base training is deterministic, and a checkpoint taken at step k equals a run of k steps, so the
shipped weights can be reproduced from the recorded command."""

import copy

import torch

from training.algorithms.builders import GeneratorSpec, TextEncoderSpec
from training.shapes.train_base import BaseTrainConfig, pixel_stats, shifted, train_base

SPEC = GeneratorSpec(
    "shapes-image-flow",
    heads=2,
    flow_layers=1,
    flow_head_dim=8,
    text=TextEncoderSpec(hidden_size=16, layers=1, heads=2, intermediate_size=32, max_length=12),
)


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in pipe.transformer.state_dict().items()} | {
        f"text.{k}": v.clone() for k, v in pipe.text_encoder.state_dict().items()
    }


def test_training_is_deterministic_and_checkpoints_equal_shorter_runs():
    config = BaseTrainConfig(steps=3, batch_size=4, warmup=2)
    losses = []
    checkpoints = {}
    first = train_base(
        "shapes-image-flow",
        config,
        spec=SPEC,
        on_step=lambda step, loss: losses.append(loss),
        on_checkpoint=lambda step, pipe: checkpoints.setdefault(step, copy.deepcopy(_weights(pipe))),
        checkpoint_every=2,
    )
    again = train_base("shapes-image-flow", config, spec=SPEC)
    shorter = train_base("shapes-image-flow", BaseTrainConfig(steps=2, batch_size=4, warmup=2), spec=SPEC)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    a, b, c = _weights(first), _weights(again), _weights(shorter)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(checkpoints[2][k], c[k]) for k in c)
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the third step changed something
    shift, scale = pixel_stats("shapes-image-flow", 1)
    assert first.config.pixel_shift == shift and first.config.pixel_scale == scale and -1 < shift < 0 < scale


def test_training_noise_levels_follow_the_samplers_shift():
    # The scheduler's sigmas are the shifted uniform grid; training maps its uniform draws the same way.
    from diffusers import FlowMatchEulerDiscreteScheduler

    plain = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0).sigmas.float()
    shifted_scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=4.0)
    assert torch.allclose(shifted(plain, 4.0), shifted_scheduler.sigmas.float(), atol=1e-6)
    grid = torch.linspace(0.0, 1.0, 11)
    assert shifted(torch.tensor(0.5, dtype=torch.float64), 4.0).item() == 0.8
    assert torch.equal(shifted(grid, 1.0), grid)


def test_per_step_batches_are_the_same_rendered_in_workers_or_in_process():
    """A "per-step" run draws batch k from (seed, k) alone: rendering ahead in a process pool
    changes nothing, a different seed or step changes the batch, and the weights of a run with two
    render workers equal those of a run without."""
    import pytest

    from training.shapes.train_base import _Batches, step_batch

    config = BaseTrainConfig(steps=4, batch_size=3, warmup=2, data="per-step", uncond_rate=0.5)
    pooled = _Batches("shapes-video", config, 8, workers=2)
    try:
        drawn = [pooled.get(k) for k in range(4)]
    finally:
        pooled.close()
    inline = _Batches("shapes-video", config, 8)
    for k, (prompts, x) in enumerate(drawn):
        again_prompts, again_x = inline.get(k)
        assert prompts == again_prompts and torch.equal(x, again_x)
        assert x.shape == (3, 3, 8, 32, 32) and -1 <= x.min() < x.max() <= 1
    assert not torch.equal(drawn[0][1], drawn[1][1])
    assert not torch.equal(drawn[0][1], step_batch("shapes-video", 8, 1, 0, 3, 0.5)[1])
    assert sum(p == "" for prompts, _ in drawn for p in prompts) > 0  # the unconditional share is drawn too

    image = BaseTrainConfig(steps=2, batch_size=4, warmup=2, data="per-step")
    a = _weights(train_base("shapes-image-flow", image, spec=SPEC, render_workers=2))
    b = _weights(train_base("shapes-image-flow", image, spec=SPEC))
    c = _weights(train_base("shapes-image-flow", BaseTrainConfig(steps=2, batch_size=4, warmup=2), spec=SPEC))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)  # a different stream from the sequential one
    with pytest.raises(ValueError, match="data must be one of"):
        BaseTrainConfig(steps=2, data="shuffled")
