"""Step noise on tiles (``noise_block``): the subspace's algebra, the step Gaussians in its
coordinates computed independently, the flow SDE and DDIM steps equal to the full-noise step in
the subspace and to the deterministic step outside it, and rollouts and GRPO on the tiny models
with the exact invariants (recomputed log-probs, ratio 1, KL 0) kept."""

import math

import pytest
import torch

from tests.training.algorithms.rl_helpers import DATA, brightness, fresh, lora_state
from tests.training.algorithms.tiny import PROMPTS
from training.algorithms import policy_gradient as pg
from training.algorithms.grpo import GRPOConfig, train_grpo
from training.algorithms.pg_loop import prepare_policy
from training.algorithms.sampling import sample_with_logprobs, trajectory_log_prob
from training.algorithms.steps import (
    block_coords,
    block_embed,
    block_project,
    block_shape,
    ddim_step,
    flow_sde_step,
    gaussian_log_prob,
)


def _basis(channels: int, size: int, block: int) -> torch.Tensor:
    """The orthonormal basis of block-constant images, built element by element: (K, C, H, W)."""
    vectors = []
    for c in range(channels):
        for i in range(size // block):
            for j in range(size // block):
                e = torch.zeros(channels, size, size, dtype=torch.float64)
                e[c, i * block : (i + 1) * block, j * block : (j + 1) * block] = 1.0 / block
                vectors.append(e)
    return torch.stack(vectors)


def test_coordinates_are_those_of_an_orthonormal_basis():
    basis = _basis(2, 8, 4)  # 2 channels x 2 x 2 tiles
    flat = basis.reshape(len(basis), -1)
    assert torch.equal(flat @ flat.T, torch.eye(8, dtype=torch.float64))
    x = torch.randn(3, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    coords = block_coords(x, 4)
    assert coords.shape == (3, 2, 2, 2) == block_shape(x.shape, 4)
    torch.testing.assert_close(coords.reshape(3, -1), x.reshape(3, -1) @ flat.T, rtol=0, atol=1e-12)
    # embedding is the inverse on the subspace, and the projection is idempotent and self-adjoint
    torch.testing.assert_close(block_coords(block_embed(coords, 4), 4), coords, rtol=0, atol=1e-12)
    p = block_project(x, 4)
    torch.testing.assert_close(block_project(p, 4), p, rtol=0, atol=1e-12)
    y = torch.randn(3, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close((block_project(y, 4) * x).sum(), (y * p).sum(), rtol=0, atol=1e-10)
    # a tile is 1/4 of each side: the embedded unit coordinate is 1/4 on its 16 pixels
    z = torch.zeros(1, 1, 2, 2)
    z[0, 0, 1, 0] = 1.0
    e = block_embed(z, 4)
    assert e.sum() == 4.0 and e[0, 0, 4:, :4].eq(0.25).all()
    assert torch.equal(block_coords(x, 1), x) and block_shape(x.shape, 1) == tuple(x.shape)


@pytest.mark.parametrize(("shape", "block"), [((2, 3, 8, 8), 3), ((2, 3, 8, 6), 4), ((2, 8), 2), ((2, 3, 8, 8), 0)])
def test_a_block_that_does_not_tile_is_refused(shape, block):
    with pytest.raises(ValueError, match="noise block"):
        block_shape(shape, block)


def test_log_prob_is_the_gaussian_density_in_the_tiles_coordinates():
    x = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    mean = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    std = torch.tensor([0.5, 2.0]).reshape(2, 1, 1, 1)
    got = gaussian_log_prob(x, mean, std, block=2)
    basis = _basis(1, 4, 2).reshape(4, -1)
    for b in range(2):
        coords = basis @ (x[b] - mean[b]).double().reshape(-1)  # 4 coordinates
        s = float(std[b])
        expected = sum(-(c**2) / (2 * s * s) - math.log(s) - 0.5 * math.log(2 * math.pi) for c in coords.tolist()) / 4
        normal = torch.distributions.Normal(torch.zeros(4), s).log_prob(coords.float()).mean()
        assert got[b].item() == pytest.approx(expected, abs=1e-5)
        assert got[b].item() == pytest.approx(normal.item(), abs=1e-5)
    # only the tile means of x - mean count: a change that averages to 0 on every tile changes nothing
    wiggle = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(2, 2).reshape(1, 1, 4, 4)
    assert torch.equal(gaussian_log_prob(x + wiggle, mean, std, block=2), got)
    assert gaussian_log_prob(x, mean, torch.tensor(0.0), block=2).eq(0).all()  # zero std: defined as 0


def test_flow_step_on_tiles_is_the_sde_in_the_subspace_and_euler_outside_it():
    g = torch.Generator().manual_seed(4)
    v, x = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    sigma, sigma_next = torch.tensor(0.75), torch.tensor(0.5)
    z = torch.randn(2, 3, 2, 2, generator=g)
    kwargs = {"noise_level": 0.7, "sigma_max": 0.9}
    tiles = flow_sde_step(v, x, sigma, sigma_next, noise=z, block=4, **kwargs)
    full = flow_sde_step(v, x, sigma, sigma_next, noise=torch.zeros_like(x), **kwargs)
    euler = flow_sde_step(v, x, sigma, sigma_next, noise_level=0.0, sigma_max=0.9)
    torch.testing.assert_close(block_project(tiles.mean, 4), block_project(full.mean, 4), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        tiles.mean - block_project(tiles.mean, 4), x + v * -0.25 - block_project(x + v * -0.25, 4), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(euler.mean, x + v * -0.25, rtol=0, atol=0)
    assert torch.equal(tiles.std, full.std)
    # the noise moved only the tile means, by std * z in coordinates
    torch.testing.assert_close(block_coords(tiles.prev_sample - tiles.mean, 4), tiles.std * z, rtol=0, atol=1e-6)
    torch.testing.assert_close(
        block_project(tiles.prev_sample - tiles.mean, 4), tiles.prev_sample - tiles.mean, rtol=0, atol=1e-6
    )
    lp = -(z**2) / 2 - torch.log(tiles.std) - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(tiles.log_prob, lp.mean(dim=(1, 2, 3)), rtol=0, atol=1e-5)
    assert tiles.block == 4 and full.block == 1


def test_ddim_step_on_tiles_keeps_the_deterministic_step_outside_the_subspace():
    g = torch.Generator().manual_seed(5)
    eps, x = torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 3, 8, 8, generator=g)
    a_t, a_prev = torch.tensor(0.3), torch.tensor(0.6)
    tiles = ddim_step(eps, x, a_t, a_prev, eta=1.0, block=2, prev_sample=x)
    full = ddim_step(eps, x, a_t, a_prev, eta=1.0, prev_sample=x)
    plain = ddim_step(eps, x, a_t, a_prev, eta=0.0)  # eta 0: DDIM's deterministic step
    torch.testing.assert_close(block_project(tiles.mean, 2), block_project(full.mean, 2), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        tiles.mean - block_project(tiles.mean, 2), plain.mean - block_project(plain.mean, 2), rtol=0, atol=1e-6
    )
    assert torch.equal(tiles.std, full.std) and tiles.std > 0


@pytest.mark.parametrize(
    ("name", "eta"), [("shapes-image-eps", 1.0), ("shapes-image-flow", 0.7), ("shapes-video-flow", 0.7)]
)
def test_rollouts_on_tiles_record_log_probs_the_trainer_recomputes(name, eta, policies):
    policy = policies[name]
    kwargs = {"seeds": [1, 2], "steps": 3, "eta": eta, "guidance": 2.0}
    traj = sample_with_logprobs(policy, PROMPTS, noise_block=4, **kwargs)
    assert traj.noise_block == 4 and torch.isfinite(traj.log_probs).all()
    with torch.no_grad():
        for i in range(3):
            torch.testing.assert_close(trajectory_log_prob(policy, traj, i), traj.log_probs[:, i], atol=1e-5, rtol=0)
            # what each step added beyond its mean is constant on every 4 x 4 tile
            out = pg._transition(policy, traj, torch.arange(2), torch.tensor([i, i]))
            jump = traj.latents[:, i + 1] - out.mean
            torch.testing.assert_close(block_project(jump, 4), jump, atol=1e-5, rtol=0)
            # the noise is really there (later steps of these 3-step schedules have stds down to 0.01)
            assert i > 0 or jump.abs().max() > 0.05
    full = sample_with_logprobs(policy, PROMPTS, **kwargs)
    assert torch.equal(full.latents[:, 0], traj.latents[:, 0]) and not torch.equal(full.latents, traj.latents)
    assert torch.equal(sample_with_logprobs(policy, PROMPTS, noise_block=1, **kwargs).latents, full.latents)
    with pytest.raises(ValueError, match="noise block 3"):
        sample_with_logprobs(policy, PROMPTS, noise_block=3, **kwargs)


def test_grpo_on_tiles_keeps_ratio_one_and_kl_zero_then_moves_only_the_adapter(saved_generators, tmp_path):
    policy = fresh(saved_generators, "shapes-image-flow")
    components = pg.RLComponents(policy, brightness)
    tiny = {"prompts_per_step": 2, "group_size": 2, "sampler_steps": 2, "timestep_fraction": 0.5, "lora_rank": 2}
    config = GRPOConfig(steps=1, guidance=2.0, kl_beta=0.04, noise_block=4, learning_rate=1e-2, **tiny)
    prepare_policy(components, config)
    base = {n: p.detach().clone() for n, p in policy.denoiser.named_parameters() if "lora_" not in n}
    before = lora_state(policy)
    seen = []
    train_grpo(config, components, DATA, run_dir=tmp_path, on_step=seen.append)
    metrics = seen[0].metrics
    assert metrics["ratio_mean"] == 1.0 and metrics["kl"] == 0.0 and metrics["clipfrac"] == 0.0
    assert 0.0 <= metrics["rollout_logprob_dev"] < 1e-4
    after = lora_state(policy)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    assert all(torch.equal(p, base[n]) for n, p in policy.denoiser.named_parameters() if "lora_" not in n)


def test_noise_block_is_validated():
    with pytest.raises(ValueError, match="noise_block"):
        GRPOConfig(noise_block=0)
    assert GRPOConfig().noise_block == 1 and GRPOConfig(noise_block=8).to_dict()["noise_block"] == 8
