"""Pixel normalisation of the built-in pipelines: saved in the config, undone on output, clip range in pixels."""

import dataclasses

import numpy as np
import pytest
import torch

from tests.training.algorithms.tiny import PROMPTS, TINY_SPECS, WORDS
from training.algorithms.builders import build_pipeline, save_pipeline
from training.algorithms.loading import load_generator
from training.algorithms.sampling import generate


@pytest.mark.parametrize("name", ["shapes-image-eps", "shapes-image-flow"])
def test_normalised_pipeline_round_trips_and_decodes_to_pixels(tmp_path, name):
    spec = dataclasses.replace(TINY_SPECS[name], pixel_shift=-0.8, pixel_scale=0.4)
    path = save_pipeline(build_pipeline(name, WORDS, spec=spec), tmp_path / name)
    policy = load_generator(str(path))
    assert policy.pipeline.config.pixel_shift == -0.8 and policy.pipeline.config.pixel_scale == 0.4
    x = torch.tensor([[-0.5, 0.0, 4.5]])
    assert torch.allclose(policy.decode(x), torch.tensor([[-1.0, -0.8, 1.0]]))
    if name == "shapes-image-eps":
        # x0 is clipped where pixels leave [-1, 1]: (1 - (-0.8)) / 0.4 = 4.5 is the wider side.
        assert policy.scheduler.config.clip_sample_range == pytest.approx(4.5)
    ours = generate(policy, PROMPTS, seeds=[3, 4], steps=2)
    plain = policy.pipeline(
        PROMPTS, num_inference_steps=2, generator=[torch.Generator().manual_seed(s) for s in (3, 4)]
    )
    assert all(np.array_equal(a, b) for a, b in zip(ours, plain, strict=True))


def test_pixel_scale_must_be_positive():
    with pytest.raises(ValueError, match="pixel_scale"):
        dataclasses.replace(TINY_SPECS["shapes-image-eps"], pixel_scale=0.0)
