"""Diffusion-DPO: loss values computed by hand, the shared-noise invariant, and the trainer on every
tiny generator (pixel space, flow, video, multi-view, and a latent StableDiffusionPipeline)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import StableDiffusionPipeline
from peft.tuners.tuners_utils import BaseTunerLayer

from tests.training.algorithms.rl_helpers import lora_state
from tests.training.algorithms.tiny import tiny_sd_pipeline
from training.algorithms.dpo import (
    DPOConfig,
    PreferencePair,
    dpo_logits,
    dpo_loss,
    encode_media,
    implicit_accuracy,
    media_shape,
    noise_pairs,
    pair_from_choice,
    pair_from_labels,
    per_sample_mse,
    prepare_adapter,
    simulated_pairs,
    train_dpo,
)
from training.algorithms.loading import load_generator
from training.algorithms.noising import NoisedPairs
from training.shapes import grammar, render

LN2_F32 = float(torch.tensor(2.0).log())  # ln 2 as float32 arithmetic gives it
NAMES = ["shapes-image-eps", "shapes-image-flow", "shapes-video", "shapes-multiview"]


def _pairs(policy, n: int, seed: int = 0, prompt: str = "a red circle") -> list[PreferencePair]:
    rng = np.random.default_rng(seed)
    shape = media_shape(policy)
    return [
        PreferencePair(prompt, rng.integers(0, 256, shape, dtype=np.uint8), rng.integers(0, 256, shape, dtype=np.uint8))
        for _ in range(n)
    ]


def _config(**kw) -> DPOConfig:
    base = {"steps": 2, "batch_size": 2, "lr": 1e-3, "lora_rank": 2, "weight_decay": 0.0}
    return DPOConfig(**(base | kw))


# --- pure losses ------------------------------------------------------------------------------------


def test_losses_at_initialisation():
    logits = dpo_logits(*(torch.full((4,), 0.3) for _ in range(4)))
    assert torch.equal(logits, torch.zeros(4))
    assert dpo_loss(logits, 2500.0, "sigmoid").item() == LN2_F32
    assert dpo_loss(logits, 2500.0, "hinge").item() == 1.0
    assert dpo_loss(logits, 2500.0, "ipo").item() == pytest.approx(1 / (4 * 2500.0**2), rel=1e-6)  # (0 - 1/(2b))^2
    assert implicit_accuracy(logits).item() == 0.5


def test_losses_hand_computed():
    # logits = ref_diff - model_diff = [1e-3, -2e-3]; beta 1000 -> beta * logits = [1, -2]
    logits = dpo_logits(
        torch.tensor([0.0, 0.002], dtype=torch.float64),
        torch.tensor([0.0, 0.0], dtype=torch.float64),
        torch.tensor([0.001, 0.0], dtype=torch.float64),
        torch.tensor([0.0, 0.0], dtype=torch.float64),
    )
    torch.testing.assert_close(logits, torch.tensor([1e-3, -2e-3], dtype=torch.float64))
    softplus = [math.log1p(math.exp(-1.0)), math.log1p(math.exp(2.0))]  # -log sigmoid(1), -log sigmoid(-2)
    assert dpo_loss(logits, 1000.0, "sigmoid").item() == pytest.approx(sum(softplus) / 2, abs=1e-12)
    assert sum(softplus) / 2 == pytest.approx(1.2200948492805978)
    assert dpo_loss(logits, 1000.0, "hinge").item() == pytest.approx((0.0 + 3.0) / 2, abs=1e-12)
    # IPO target 1/(2*1000) = 5e-4: ((1e-3 - 5e-4)^2 + (-2e-3 - 5e-4)^2) / 2
    assert dpo_loss(logits, 1000.0, "ipo").item() == pytest.approx((2.5e-7 + 6.25e-6) / 2, rel=1e-9)
    assert implicit_accuracy(torch.tensor([1.0, 0.0, 0.0, -1.0, 2.0])).item() == pytest.approx(0.6)
    with pytest.raises(ValueError, match="unknown DPO loss kind"):
        dpo_loss(logits, 1.0, "cpo")


@pytest.mark.parametrize("kind", ["sigmoid", "ipo", "hinge"])
def test_loss_gradcheck_float64(kind):
    g = torch.Generator().manual_seed(1)
    errs = [(torch.rand(5, generator=g, dtype=torch.float64) * 0.1).requires_grad_() for _ in range(4)]
    beta = 7.0  # |beta * logits| < 1: away from the hinge's kink

    def f(mw, ml, rw, rl):
        return dpo_loss(dpo_logits(mw, ml, rw, rl), beta, kind)

    assert torch.autograd.gradcheck(f, errs, eps=1e-6, atol=1e-8)


@pytest.mark.parametrize(("kind", "expected"), [("sigmoid", 0.5), ("hinge", 1.0), ("ipo", None)])
def test_gradient_at_initialisation_pushes_winner_error_down(kind, expected):
    # dL/d(model_err_w) per pair at logits 0 (mean over n pairs): sigmoid sigma(0) * beta = beta / 2,
    # hinge beta, IPO 2 * (1 / (2 beta)) = 1 / beta. Positive: descent lowers the winner's error.
    beta, n = 40.0, 4
    mw = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    ml = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    zeros = torch.zeros(n, dtype=torch.float64)
    dpo_loss(dpo_logits(mw, ml, zeros, zeros), beta, kind).backward()
    per_pair = expected * beta if expected is not None else 1 / beta
    torch.testing.assert_close(mw.grad, torch.full((n,), per_pair / n, dtype=torch.float64))
    torch.testing.assert_close(ml.grad, -mw.grad)


def test_beta_convention_equals_the_original_form():
    # Original (SalesforceAIResearch/DiffusionDPO): -logsigmoid(-0.5 * beta_dpo * (model_diff - ref_diff)),
    # so beta_dpo = 5000 there is beta = 2500 here (and in diffusers' SD1.5 script).
    g = torch.Generator().manual_seed(0)
    mw, ml, rw, rl = (torch.rand(64, generator=g) * 1e-3 for _ in range(4))
    original = -F.logsigmoid(-0.5 * 5000.0 * ((mw - ml) - (rw - rl))).mean()
    ours = dpo_loss(dpo_logits(mw, ml, rw, rl), 2500.0)
    torch.testing.assert_close(ours, original, atol=1e-6, rtol=0)
    # Swapping winner and loser negates the logits: sigma(bx) + sigma(-bx) = 1.
    logits = dpo_logits(mw, ml, rw, rl)
    torch.testing.assert_close(dpo_logits(ml, mw, rl, rw), -logits)
    torch.testing.assert_close(torch.sigmoid(2500 * logits) + torch.sigmoid(-2500 * logits), torch.ones(64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_large_beta_in_half_precision_stays_finite(dtype):
    logits = torch.tensor([-0.5, 0.5, 0.0], dtype=dtype)
    for kind in ("sigmoid", "ipo", "hinge"):
        assert torch.isfinite(dpo_loss(logits, 1e6, kind))
    assert dpo_loss(logits, 1e6, "sigmoid").item() == pytest.approx((0.5e6 + 0.0 + math.log(2)) / 3, rel=1e-6)


# --- config and data ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"steps": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"beta": 0.0},
        {"beta": math.inf},
        {"loss": "cpo"},
        {"lora_rank": 0},
        {"lora_alpha": -1.0},
        {"weight_decay": -1.0},
        {"max_grad_norm": -1.0},
        {"warmup": -1},
        {"uncond_rate": 1.0},
        {"checkpoint_every": -1},
        {"micro_batch": -1},
    ],
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        DPOConfig(**bad)


def test_config_round_trips_through_json_and_names_unknown_fields():
    config = DPOConfig(steps=3, beta=100.0, loss="ipo")
    assert DPOConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="beta_dpo"):
        DPOConfig.from_dict({"beta_dpo": 5000})


def test_pairs_put_the_preferred_media_first_and_drop_ties():
    a, b = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert pair_from_choice("p", a, b, "first").winner is a
    assert pair_from_choice("p", a, b, "second").winner is b
    assert pair_from_choice("p", a, b, "tie") is None and pair_from_choice("p", a, b, "both_bad") is None
    assert pair_from_labels("p", a, b, 1.0).winner is a
    assert pair_from_labels("p", a, b, 0.0).winner is b  # label_0 == 0: image 1 first
    assert pair_from_labels("p", a, b, 0.5) is None
    with pytest.raises(ValueError, match="uint8"):
        PreferencePair("p", a.astype(np.float32), b)
    with pytest.raises(ValueError, match="differ in shape"):
        PreferencePair("p", a, np.zeros((4, 5, 3), np.uint8))


# --- model space and noising --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["shapes-image-eps", "shapes-video"])
def test_encode_media_inverts_decode(name, policies):
    policy = policies[name]
    media = _pairs(policy, 1)[0]
    mean, std = encode_media(policy, [media.winner, media.loser])
    assert std is None and mean.shape == (2, *policy.sample_shape)
    back = policy.to_media(mean)
    assert np.array_equal(back[0], media.winner) and np.array_equal(back[1], media.loser)


@pytest.mark.parametrize("name", ["shapes-image-eps", "shapes-image-flow"])
def test_winner_and_loser_share_noise_and_timestep(name, policies):
    policy = policies[name]
    g = torch.Generator().manual_seed(0)
    x0_w, x0_l = torch.randn(3, *policy.sample_shape), torch.randn(3, *policy.sample_shape)
    out = noise_pairs(policy, x0_w, x0_l, g)
    assert torch.equal(out.noise[:3], out.noise[3:]) and torch.equal(out.timesteps[:3], out.timesteps[3:])
    assert len(set(out.timesteps[:3].tolist())) > 1  # but pairs differ from each other
    shape = (-1, 1, 1, 1)
    if policy.family == "flow":
        s = (out.timesteps / 1000).reshape(shape)  # shift 1: sigma = timestep / num_train_timesteps
        torch.testing.assert_close(out.x_t, (1 - s) * torch.cat([x0_w, x0_l]) + s * out.noise)
        torch.testing.assert_close(out.target, out.noise - torch.cat([x0_w, x0_l]))
    else:
        abar = policy.training_scheduler().alphas_cumprod[out.timesteps].reshape(shape)
        torch.testing.assert_close(out.x_t, abar.sqrt() * torch.cat([x0_w, x0_l]) + (1 - abar).sqrt() * out.noise)
        assert torch.equal(out.target, out.noise)


def test_trainer_feeds_shared_noise_and_runs_the_reference_without_adapter(saved_generators):
    # A pair whose winner equals its loser: with shared noise and timestep both halves of the stacked
    # batch are the same input, so model_diff and ref_diff are exactly 0 and the loss stays ln 2.
    policy = load_generator(str(saved_generators["shapes-image-eps"]))
    same = _pairs(policy, 1)[0]
    calls = []

    def hook(module, args, kwargs):
        tuners = [m for m in module.modules() if isinstance(m, BaseTunerLayer)]
        calls.append((torch.is_grad_enabled(), tuners[0].disable_adapters, args[0].clone(), args[1].clone()))

    policy.denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    result = train_dpo(
        _config(lr=1e-1), policy, [PreferencePair("a red circle", same.winner, same.winner)], run_dir=None
    )
    assert [(grad, disabled) for grad, disabled, _, _ in calls] == [(False, True), (True, False)] * 2
    for _, _, x, t in calls:
        assert torch.equal(x[:2], x[2:]) and torch.equal(t[:2], t[2:])
    assert [h["loss"] for h in result.history] == [LN2_F32, LN2_F32]
    assert all(h["model_diff"] == 0.0 and h["ref_diff"] == 0.0 for h in result.history)
    assert not any(m.disable_adapters for m in policy.denoiser.modules() if isinstance(m, BaseTunerLayer))


# --- the trainer --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    """A tiny latent StableDiffusionPipeline (VAE, CLIP text encoder) saved with save_pretrained."""
    pipe = tiny_sd_pipeline()
    path = tmp_path_factory.mktemp("tiny-sd-dpo")
    pipe.save_pretrained(path)
    return path


def _source(name, saved_generators, sd_dir) -> str:
    return str(sd_dir if name == "sd" else saved_generators[name])


@pytest.mark.parametrize("name", [*NAMES, "sd"])
def test_runs_on_every_generator_and_starts_at_ln2(name, saved_generators, sd_dir, tmp_path):
    policy = load_generator(_source(name, saved_generators, sd_dir))
    seen = []
    result = train_dpo(_config(uncond_rate=0.5), policy, _pairs(policy, 3), run_dir=tmp_path, on_step=seen.append)
    assert [s.step for s in seen] == [1, 2] and result.steps == 2 and not result.stopped
    first = result.history[0]
    assert first["loss"] == LN2_F32 and first["implicit_acc"] == 0.5  # LoRA B = 0: policy == reference
    assert first["model_diff"] == first["ref_diff"] and first["model_mse"] == first["ref_mse"]
    assert set(first) >= {"loss", "implicit_acc", "model_diff", "ref_diff", "lr", "grad_norm"}
    assert result.history[1]["loss"] != LN2_F32  # the first step moved the adapter
    assert result.summary["final"] == result.metrics and result.checkpoint.step == 2
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def test_latent_pipeline_adapter_loads_with_load_lora_weights(sd_dir, tmp_path):
    policy = load_generator(str(sd_dir))
    result = train_dpo(_config(lr=1e-2, lora_alpha=4.0), policy, _pairs(policy, 2), run_dir=tmp_path)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *policy.sample_shape, generator=g)
    t, cond = torch.tensor([10, 500]), policy.encode(["a red circle", "two blue squares"])
    with torch.no_grad():
        trained = policy.predict(x, t, cond)
        with policy.disable_adapter():
            base = policy.predict(x, t, cond)
    assert not torch.allclose(trained, base, atol=1e-5)

    pipe = StableDiffusionPipeline.from_pretrained(str(sd_dir))
    pipe.load_lora_weights(result.summary["adapter"])  # diffusers' own loader, alpha 4 / rank 2 kept
    with torch.no_grad():
        out = pipe.unet(x, t, encoder_hidden_states=cond.embeds).sample
    torch.testing.assert_close(out, trained, atol=1e-5, rtol=1e-5)


def test_cached_encodings_train_like_per_step_encoding(sd_dir):
    # The cache samples latents from the VAE posterior it stored; per-step encoding recomputes it. Same
    # draws from the run's generator, so the runs agree up to float reassociation in batched encoders
    # (~1e-7 in the errors, which beta = 2500 magnifies to ~1e-4 in the loss).
    runs = []
    for cache in (True, False):
        policy = load_generator(str(sd_dir))
        data = _pairs(policy, 3)
        runs.append(train_dpo(_config(steps=3, uncond_rate=0.5, cache_encodings=cache), policy, data, run_dir=None))
    for cached, direct in zip(runs[0].history, runs[1].history, strict=True):
        assert cached.keys() == direct.keys()
        for key in cached:
            assert cached[key] == pytest.approx(direct[key], rel=1e-3, abs=1e-6), key


def test_shapes_adapter_loads_with_load_lora(saved_generators, tmp_path):
    source = str(saved_generators["shapes-image-flow"])
    policy = load_generator(source)
    result = train_dpo(_config(lr=1e-2), policy, _pairs(policy, 2), run_dir=tmp_path)
    reloaded = load_generator(source, adapter=result.summary["adapter"])
    x, t = torch.randn(2, *policy.sample_shape, generator=torch.Generator().manual_seed(0)), torch.tensor(500.0)
    cond = policy.encode(["a red circle", "a"])
    with torch.no_grad():
        torch.testing.assert_close(reloaded.predict(x, t, cond), policy.predict(x, t, cond), atol=1e-6, rtol=0)


def _frozen(policy) -> dict[str, torch.Tensor]:
    modules = {"denoiser": policy.denoiser, "text": policy.text_encoder}
    return {
        # peft moves an adapted layer's weight to "<layer>.base_layer.weight"; compare by the original name
        f"{k}.{n.replace('.base_layer', '')}": p.detach().clone()
        for k, m in modules.items()
        for n, p in m.named_parameters()
        if "lora_" not in n
    }


def test_first_step_moves_every_lora_b_and_nothing_frozen(saved_generators):
    # With peft's gaussian init B = 0, so dL/dA = B^T (...) = 0 at step 0: only B moves on the first step
    # (weight decay 0 here, else AdamW's decoupled decay would shrink A without any gradient). Once B is
    # non-zero, A gets gradient, so after a second step every A has moved too.
    policy = load_generator(str(saved_generators["shapes-image-eps"]))
    frozen = _frozen(policy)
    config, pairs = _config(steps=1, lr=1e-2), _pairs(policy, 2)
    prepare_adapter(policy, config)  # the seeded adapter the run starts from (train_dpo keeps it)
    initial = lora_state(policy)
    train_dpo(config, policy, pairs, run_dir=None)
    after_one = lora_state(policy)
    assert len(after_one) == len(initial) > 0
    for name, value in after_one.items():
        if "lora_B" in name:
            assert (value != 0).all(), name  # every element of every B moved (Adam: ~lr * sign(grad))
        else:
            assert "lora_A" in name and torch.equal(value, initial[name]), name
    for name, value in _frozen(policy).items():
        assert torch.equal(value, frozen[name]), name

    train_dpo(_config(steps=1, lr=1e-2, seed=1), policy, pairs, run_dir=None)  # the same adapter, trained on
    for name, value in lora_state(policy).items():
        assert not torch.equal(value, after_one[name]), name
    for name, value in _frozen(policy).items():
        assert torch.equal(value, frozen[name]), name


def test_resume_equals_an_uninterrupted_run(saved_generators, tmp_path):
    source = str(saved_generators["shapes-image-eps"])
    config = _config(steps=4, uncond_rate=0.3, warmup=2, weight_decay=1e-2)

    full = load_generator(source)
    data = _pairs(full, 5)
    whole = train_dpo(config, full, data, run_dir=tmp_path / "whole")

    first = load_generator(source)
    done = []
    stopped = train_dpo(
        config, first, data, run_dir=tmp_path / "split", on_step=done.append, should_stop=lambda: len(done) >= 2
    )
    assert stopped.stopped and stopped.steps == 2 and stopped.checkpoint.step == 2

    second = load_generator(source)
    resumed = train_dpo(config, second, data, run_dir=tmp_path / "split")
    assert resumed.steps == 4 and [h["step"] for h in resumed.history] == [3, 4]
    assert resumed.history == whole.history[2:]
    expected = lora_state(full)
    for name, value in lora_state(second).items():
        assert torch.equal(value, expected[name]), name


def test_micro_batches_accumulate_the_same_step(saved_generators):
    # 5 pairs a step as chunks of 2, 2 and 1: the same draws, the same mean loss and one optimiser step,
    # so the adapter and the metrics agree with the whole batch up to float reassociation in the denoiser
    # (~1e-7 in the errors, which beta = 2500 magnifies to ~1e-4 in the loss).
    source = str(saved_generators["shapes-image-eps"])
    runs, adapters = [], []
    for micro in (0, 2):
        policy = load_generator(source)
        config = _config(steps=3, batch_size=5, micro_batch=micro, uncond_rate=0.4, lr=1e-2)
        runs.append(train_dpo(config, policy, _pairs(policy, 7), run_dir=None))
        adapters.append(lora_state(policy))
    for whole, chunked in zip(runs[0].history, runs[1].history, strict=True):
        assert whole.keys() == chunked.keys()
        for key in whole:
            assert chunked[key] == pytest.approx(whole[key], rel=1e-3, abs=1e-6), key
    # grad_norm above is the accumulated gradient's norm before clipping: a wrong weighting shows there.
    # Adam divides each coordinate by its gradient's running RMS, so where a gradient is near zero the
    # reassociation can change that coordinate's step by up to two learning rates: compare the whole
    # update (trained minus the seeded start) as one vector instead of coordinate by coordinate.
    start = load_generator(source)
    prepare_adapter(start, config)
    initial = lora_state(start)
    moved = [torch.cat([(a[n] - initial[n]).flatten() for n in sorted(initial)]) for a in adapters]
    assert moved[0].norm() > 1e-2  # the steps did move it
    assert torch.nn.functional.cosine_similarity(moved[0], moved[1], dim=0) > 0.9999
    assert moved[1].norm() == pytest.approx(moved[0].norm().item(), rel=1e-3)

    x = torch.arange(4 * 3, dtype=torch.float32).reshape(4, 3)  # 2 pairs: rows [w0, w1, l0, l1]
    part = NoisedPairs(x, torch.arange(4), -x, x + 1).pairs(1, 2)
    assert part.x_t.tolist() == [x[1].tolist(), x[3].tolist()] and part.timesteps.tolist() == [1, 3]


def test_overfitting_one_pair_drives_implicit_accuracy_to_one(saved_generators):
    policy = load_generator(str(saved_generators["shapes-image-eps"]))
    pair = _pairs(policy, 1, seed=3)
    config = _config(steps=40, batch_size=8, lr=1e-2, lora_rank=4)
    result = train_dpo(config, policy, pair, run_dir=None)
    assert result.history[0]["implicit_acc"] == 0.5
    assert sum(h["loss"] for h in result.history[-5:]) / 5 < 0.5 * LN2_F32

    # 128 fresh (noise, timestep) draws: the adapter prefers the winner on every draw where the image
    # survives the noise. Near t = T, sqrt(abar_t) < 0.05 leaves winner and loser nearly the same
    # input, which no model separates, so there the sign of the logits is a coin toss.
    g = torch.Generator().manual_seed(123)
    x0 = encode_media(policy, [pair[0].winner, pair[0].loser])[0]
    noised = noise_pairs(policy, x0[:1].repeat(128, 1, 1, 1), x0[1:].repeat(128, 1, 1, 1), g)
    cond = policy.encode(["a red circle"] * 256)
    with torch.no_grad(), policy.eval_mode():
        model = per_sample_mse(policy.predict(noised.x_t, noised.timesteps, cond), noised.target)
        with policy.disable_adapter():
            ref = per_sample_mse(policy.predict(noised.x_t, noised.timesteps, cond), noised.target)
    logits = dpo_logits(*model.chunk(2), *ref.chunk(2))
    signal = noised.timesteps[:128] < 700
    assert signal.sum() > 60 and implicit_accuracy(logits[signal]).item() == 1.0
    assert implicit_accuracy(logits).item() >= 0.95


def test_rejects_media_of_the_wrong_shape_and_empty_data(policies):
    policy = policies["shapes-video"]
    wrong = _pairs(policies["shapes-image-eps"], 1)
    with pytest.raises(ValueError, match=r"needs \(3, 8, 8, 3\)"):
        train_dpo(_config(), policy, wrong, run_dir=None)
    with pytest.raises(ValueError, match="at least one"):
        train_dpo(_config(), policy, [], run_dir=None)


# --- pairs from simulated judgments --------------------------------------------------------------


def test_simulated_pairs_follow_the_verifier(policies, monkeypatch):
    # Even seeds give a correct render, odd seeds a black image: a rater of accuracy 1 always prefers
    # the render; sample generation itself is covered by the sampling tests.
    specs = [
        grammar.PromptSpec("colors", (grammar.ObjectSpec(s, c),)) for s in ("circle", "square") for c in ("red", "blue")
    ]
    by_text = {s.text: s for s in specs}

    def fake_generate(policy, prompts, *, seeds, **kw):
        rng = np.random.default_rng(0)
        black = np.zeros((32, 32, 3), np.uint8)
        return [
            render.render_image(by_text[p], rng) if s % 2 == 0 else black for p, s in zip(prompts, seeds, strict=True)
        ]

    monkeypatch.setattr("training.algorithms.sampling.generate", fake_generate)
    pairs, stats = simulated_pairs(policies["shapes-image-eps"], specs, seed=0, accuracy=1.0)
    assert stats == {"judgments": 4, "pairs": 4, "ties_dropped": 0, "agree_with_verifier": 4}
    assert all(p.winner.any() and not p.loser.any() for p in pairs)
    assert [p.prompt for p in pairs] == [s.text for s in specs]

    _, noisy = simulated_pairs(policies["shapes-image-eps"], specs * 50, seed=1, accuracy=0.85)
    assert noisy["pairs"] == 200 and 0.75 < noisy["agree_with_verifier"] / 200 < 0.95
