import math

import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

from tests.training.algorithms.tiny import PROMPTS
from training.algorithms.sampling import (
    generate_latents,
    make_schedule,
    sample_with_logprobs,
    trajectory_log_prob,
    transition,
)
from training.algorithms.steps import ddim_step, flow_sde_step, gaussian_log_prob

# --- hand-computed single steps -------------------------------------------------------------------


def test_gaussian_log_prob_hand_computed():
    x, mean = torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]])
    # per dimension: -(d^2)/(2*4) - ln 2 - ln sqrt(2 pi), with d = 1 and 2; then the mean of the two
    expected = -(1 / 8 + 4 / 8) / 2 - math.log(2) - 0.5 * math.log(2 * math.pi)
    got = gaussian_log_prob(x, mean, torch.tensor(2.0))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(-1.9245857, abs=1e-6)
    normal = torch.distributions.Normal(mean, 2.0).log_prob(x).mean()
    assert got.item() == pytest.approx(normal.item(), abs=1e-6)
    assert gaussian_log_prob(x, mean, torch.tensor(0.0)).item() == 0.0  # zero std: defined as 0


def test_ddim_step_hand_computed():
    # alpha-bar 0.25 -> 0.64, eps 0.5, x_t 1, eta 1 (Song et al. 2021, eq. 12 and 16)
    x0 = (1 - math.sqrt(0.75) * 0.5) / 0.5
    var = (0.36 / 0.75) * (1 - 0.25 / 0.64)
    assert var == pytest.approx(0.2925)
    mean = 0.8 * x0 + math.sqrt(1 - 0.64 - var) * 0.5
    assert mean == pytest.approx(1.0370835, abs=1e-6)
    out = ddim_step(
        torch.tensor([[0.5]]),
        torch.tensor([[1.0]]),
        torch.tensor(0.25),
        torch.tensor(0.64),
        eta=1.0,
        prev_sample=torch.tensor([[1.5]]),
    )
    assert out.mean.item() == pytest.approx(mean, abs=1e-6)
    assert out.std.item() == pytest.approx(math.sqrt(var), abs=1e-6)
    lp = -((1.5 - mean) ** 2) / (2 * var) - 0.5 * math.log(var) - 0.5 * math.log(2 * math.pi)
    assert out.log_prob.item() == pytest.approx(lp, abs=1e-5)


def test_flow_sde_step_hand_computed():
    # s 0.5 -> 0.25, noise level 0.5: sigma_s = 0.5 * sqrt(0.5 / 0.5) = 0.5, dt = -0.25
    # mean = x (1 + 0.25 / 1 * dt) + v (1 + 0.25 * 0.5 / 1) dt = 0.9375 x - 0.28125 v; std = 0.5 * 0.5
    out = flow_sde_step(
        torch.tensor([[2.0]]),
        torch.tensor([[1.0]]),
        torch.tensor(0.5),
        torch.tensor(0.25),
        noise_level=0.5,
        sigma_max=0.9,
        noise=torch.tensor([[1.0]]),
    )
    assert out.mean.item() == pytest.approx(0.9375 - 0.5625)
    assert out.std.item() == pytest.approx(0.25)
    assert out.prev_sample.item() == pytest.approx(0.375 + 0.25)
    assert out.log_prob.item() == pytest.approx(-0.5 - math.log(0.25) - 0.5 * math.log(2 * math.pi), abs=1e-6)


@pytest.mark.parametrize("set_alpha_to_one", [False, True])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_step_equals_diffusers_ddim_scheduler(set_alpha_to_one, prediction_type):
    sched = DDIMScheduler(
        set_alpha_to_one=set_alpha_to_one, steps_offset=1, clip_sample=True, prediction_type=prediction_type
    )
    sched.set_timesteps(5)
    g = torch.Generator().manual_seed(0)
    x, out, z = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))
    for t in sched.timesteps:
        prev_t = t - 1000 // 5
        a_prev = sched.alphas_cumprod[prev_t] if prev_t >= 0 else sched.final_alpha_cumprod
        ours = ddim_step(
            out, x, sched.alphas_cumprod[t], a_prev, eta=0.8, prediction_type=prediction_type, clip_range=1.0, noise=z
        )
        theirs = sched.step(out, t, x, eta=0.8, variance_noise=z).prev_sample
        torch.testing.assert_close(ours.prev_sample, theirs, atol=1e-6, rtol=0)


def test_flow_step_without_noise_equals_the_euler_scheduler():
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(4)
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    for i, t in enumerate(sched.timesteps):
        ours = flow_sde_step(v, x, sched.sigmas[i], sched.sigmas[i + 1], noise_level=0.0, sigma_max=sched.sigmas[1])
        theirs = sched.step(v, t, x).prev_sample
        torch.testing.assert_close(ours.prev_sample, theirs, atol=1e-6, rtol=0)
        assert torch.equal(ours.log_prob, torch.zeros(2))


# --- whole samplers on the tiny generators ----------------------------------------------------------

FAMILIES = [
    "shapes-image-eps",
    "shapes-image-flow",
    "shapes-video-flow",
    "shapes-multiview-flow",
    "shapes-video-stacked",
]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("guidance", [1.0, 2.5])
def test_zero_noise_sampler_equals_the_deterministic_sampler(name, guidance, policies):
    policy = policies[name]
    traj = sample_with_logprobs(policy, PROMPTS, seeds=[5, 6], steps=3, eta=0.0, guidance=guidance)
    plain = generate_latents(policy, PROMPTS, seeds=[5, 6], steps=3, guidance=guidance)
    assert traj.latents.shape == (2, 4, *policy.sample_shape)
    assert torch.allclose(traj.latents[:, -1], plain, atol=1e-5)
    assert torch.equal(traj.log_probs, torch.zeros(2, 3))


def test_ddim_rollouts_match_diffusers_ddim_with_the_same_noise(policies):
    """eta > 0: our DDPO step draws the same per-sample noise as DDIMScheduler.step with the generators."""
    policy = policies["shapes-image-eps"]
    traj = sample_with_logprobs(policy, PROMPTS, seeds=[5, 6], steps=3, eta=1.0)
    plain = generate_latents(policy, PROMPTS, seeds=[5, 6], steps=3, eta=1.0)
    assert torch.allclose(traj.latents[:, -1], plain, atol=1e-5)


ROLLOUTS = [
    ("shapes-image-eps", 1.0),
    ("shapes-image-flow", 0.7),
    ("shapes-video", 0.5),
    ("shapes-multiview", 1.0),
    ("shapes-video-flow", 0.7),
    ("shapes-multiview-flow", 0.7),
    ("shapes-video-stacked", 0.7),
]


@pytest.mark.parametrize(("name", "eta"), ROLLOUTS)
def test_recomputed_log_probs_equal_the_recorded_ones(name, eta, policies):
    policy = policies[name]
    traj = sample_with_logprobs(policy, PROMPTS, seeds=[1, 2], steps=3, eta=eta, guidance=2.0)
    assert traj.log_probs.shape == (2, 3) and torch.isfinite(traj.log_probs).all()
    assert len(traj.media) == 2 and traj.media[0].dtype.name == "uint8"
    with torch.no_grad():
        for i in range(3):
            torch.testing.assert_close(trajectory_log_prob(policy, traj, i), traj.log_probs[:, i], atol=1e-5, rtol=0)
        # one step per sample (DDPO shuffles timesteps per sample)
        idx = torch.tensor([2, 0])
        torch.testing.assert_close(
            trajectory_log_prob(policy, traj, idx), traj.log_probs[[0, 1], [2, 0]], atol=1e-5, rtol=0
        )
    different = sample_with_logprobs(policy, PROMPTS, seeds=[1, 3], steps=3, eta=eta, guidance=2.0)
    assert torch.equal(different.latents[0], traj.latents[0])
    assert not torch.equal(different.latents[1], traj.latents[1])


@pytest.mark.parametrize(("name", "eta"), [("shapes-image-eps", 1.0), ("shapes-image-flow", 0.7)])
def test_sde_window_is_stochastic_only_on_its_steps(name, eta, policies):
    """Window k: the first k steps draw noise and have log-probs; the rest are the plain
    deterministic step (log-prob 0) from where the window left off."""
    policy = policies[name]
    kwargs = {"seeds": [1, 2], "steps": 4, "eta": eta, "guidance": 2.0}
    traj = sample_with_logprobs(policy, PROMPTS, sde_window=2, **kwargs)
    assert traj.sde_window == 2
    assert (traj.log_probs[:, :2] != 0).all() and torch.equal(traj.log_probs[:, 2:], torch.zeros(2, 2))
    full = sample_with_logprobs(policy, PROMPTS, **kwargs)
    torch.testing.assert_close(traj.latents[:, :3], full.latents[:, :3], atol=0, rtol=0)  # same noise in the window
    with torch.no_grad():
        for i in (2, 3):
            out = transition(
                policy, traj.schedule, i, traj.latents[:, i], traj.latents[:, i + 1], traj.cond, eta=0.0, guidance=2.0
            )
            torch.testing.assert_close(out.mean, traj.latents[:, i + 1], atol=1e-6, rtol=0)
        torch.testing.assert_close(trajectory_log_prob(policy, traj, 1), traj.log_probs[:, 1], atol=1e-5, rtol=0)
    assert torch.equal(sample_with_logprobs(policy, PROMPTS, sde_window=4, **kwargs).latents, full.latents)
    with pytest.raises(ValueError, match="sde_window"):
        sample_with_logprobs(policy, PROMPTS, sde_window=-1, **kwargs)


def test_transition_log_prob_is_differentiable(policies):
    policy = policies["shapes-image-flow"]
    traj = sample_with_logprobs(policy, PROMPTS, seeds=[1, 2], steps=2, eta=0.7)
    params = list(policy.denoiser.parameters())[:3]
    for p in params:
        p.requires_grad_(True)
    try:
        out = transition(policy, traj.schedule, 1, traj.latents[:, 1], traj.latents[:, 2], traj.cond, eta=0.7)
        out.log_prob.sum().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    finally:
        for p in params:
            p.requires_grad_(False)
            p.grad = None


def test_schedule_matches_the_scheduler(policies):
    eps = make_schedule(policies["shapes-image-eps"], 4)
    assert eps.timesteps.tolist() == [751, 501, 251, 1]
    sched = policies["shapes-image-eps"].sampling_scheduler()
    assert eps.alpha_prev[-1].item() == pytest.approx(float(sched.final_alpha_cumprod))
    assert eps.alpha_t[0].item() == pytest.approx(sched.alphas_cumprod[751].item())
    flow = make_schedule(policies["shapes-image-flow"], 4)
    assert flow.sigmas.tolist() == pytest.approx(
        [1.0, 0.667, 0.334, 0.001, 0.0], abs=1e-6
    )  # linspace(1, 1/1000, 4), then 0
