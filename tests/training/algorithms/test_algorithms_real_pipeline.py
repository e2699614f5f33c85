"""A real diffusers pipeline (StableDiffusionPipeline with a VAE) loads and samples like the built-ins."""

import numpy as np
import pytest
import torch

from tests.training.algorithms.tiny import PROMPTS, tiny_sd_pipeline
from training.algorithms.loading import load_generator
from training.algorithms.sampling import generate, sample_with_logprobs, trajectory_log_prob


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    pipe = tiny_sd_pipeline()
    path = tmp_path_factory.mktemp("tiny-sd")
    pipe.save_pretrained(path)
    return path


def test_stable_diffusion_directory_loads_as_a_latent_policy(sd_dir):
    policy = load_generator(str(sd_dir))
    assert type(policy.pipeline).__name__ == "StableDiffusionPipeline"
    assert (policy.family, policy.modality, policy.frames) == ("epsilon", "image", 1)
    assert policy.sample_shape == (4, 8, 8) and policy.vae is not None
    media = generate(policy, PROMPTS, seeds=[0, 1], steps=2, guidance=3.0)
    assert [m.shape for m in media] == [(16, 16, 3), (16, 16, 3)]
    assert all(m.dtype == np.uint8 for m in media)

    # Same images as the stock pipeline call with the same per-sample generators (up to uint8 rounding).
    generators = [torch.Generator().manual_seed(s) for s in (0, 1)]
    stock = policy.pipeline(
        prompt=PROMPTS, num_inference_steps=2, generator=generators, guidance_scale=3.0, output_type="np"
    ).images
    for ours, theirs in zip(media, stock, strict=True):
        assert np.abs(ours.astype(int) - np.round(theirs * 255).astype(int)).max() <= 1


def test_stable_diffusion_log_prob_rollouts(sd_dir):
    policy = load_generator(str(sd_dir))
    traj = sample_with_logprobs(policy, PROMPTS, seeds=[0, 1], steps=2, eta=1.0, guidance=2.0)
    assert traj.latents.shape == (2, 3, 4, 8, 8)
    assert traj.media[0].shape == (16, 16, 3)
    with torch.no_grad():
        torch.testing.assert_close(trajectory_log_prob(policy, traj, 1), traj.log_probs[:, 1], atol=1e-5, rtol=0)
