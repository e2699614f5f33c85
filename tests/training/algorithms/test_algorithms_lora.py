import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.training.algorithms.tiny import PROMPTS
from training.algorithms.loading import load_generator
from training.algorithms.lora import adapter_scaled, load_lora


def _inputs(policy):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *policy.sample_shape, generator=g)
    t = policy.sampling_scheduler().timesteps[0] if policy.family == "epsilon" else torch.tensor(500.0)
    return x, torch.as_tensor(t), policy.encode(PROMPTS)


@pytest.mark.parametrize("name", ["shapes-image-eps", "shapes-image-flow", "shapes-video"])
def test_lora_save_load_and_disable(name, saved_generators, tmp_path):
    policy = load_generator(str(saved_generators[name]))
    x, t, cond = _inputs(policy)
    with torch.no_grad():
        base = policy.predict(x, t, cond)

        policy.add_adapter(rank=2, init=False)  # a random, non-identity adapter
        params = policy.trainable_parameters()
        assert params and all(p.requires_grad for p in params)
        assert sum(p.requires_grad for p in policy.denoiser.parameters()) == len(params)
        adapted = policy.predict(x, t, cond)
        assert not torch.allclose(adapted, base, atol=1e-4)
        with policy.disable_adapter():
            torch.testing.assert_close(policy.predict(x, t, cond), base, atol=0, rtol=0)
        torch.testing.assert_close(policy.predict(x, t, cond), adapted, atol=0, rtol=0)

        adapter_dir = policy.save_adapter(tmp_path / "adapter")
        assert (adapter_dir / "adapter_model.safetensors").is_file()
        reloaded = load_generator(str(saved_generators[name]), adapter=str(adapter_dir))
        assert reloaded.adapter == str(adapter_dir)
        torch.testing.assert_close(reloaded.predict(x, t, cond), adapted, atol=1e-6, rtol=0)
        with reloaded.disable_adapter():
            torch.testing.assert_close(reloaded.predict(x, t, cond), base, atol=1e-6, rtol=0)


def test_gaussian_init_adapter_starts_at_the_base(saved_generators):
    policy = load_generator(str(saved_generators["shapes-image-eps"]))
    x, t, cond = _inputs(policy)
    with torch.no_grad():
        base = policy.predict(x, t, cond)
        policy.add_adapter(rank=4)
        torch.testing.assert_close(policy.predict(x, t, cond), base, atol=0, rtol=0)


def test_loading_a_missing_adapter_fails_clearly(saved_generators, tmp_path):
    policy = load_generator(str(saved_generators["shapes-image-eps"]))
    with pytest.raises(FileNotFoundError, match="no LoRA adapter"):
        load_lora(policy.denoiser, tmp_path)


def test_an_adapter_missing_weights_is_refused(saved_generators, tmp_path):
    policy = load_generator(str(saved_generators["shapes-image-eps"]))
    policy.add_adapter(rank=2)
    adapter_dir = policy.save_adapter(tmp_path / "adapter")
    weights = adapter_dir / "adapter_model.safetensors"
    state = load_file(str(weights))
    dropped = sorted(state)[0]
    del state[dropped]
    save_file(state, str(weights))
    fresh = load_generator(str(saved_generators["shapes-image-eps"]))
    with pytest.raises(ValueError, match="is incomplete: no weights for") as refused:
        load_lora(fresh.denoiser, adapter_dir)
    assert dropped.rsplit(".", 1)[0] in str(refused.value)


@pytest.mark.parametrize("name", ["shapes-image-eps", "shapes-image-flow"])
def test_a_scaled_adapter_is_the_update_times_the_factor(name, saved_generators):
    policy = load_generator(str(saved_generators[name]))
    x, t, cond = _inputs(policy)
    with torch.no_grad():
        base = policy.predict(x, t, cond)
        policy.add_adapter(rank=2, init=False)
        adapted = policy.predict(x, t, cond)
        with adapter_scaled(policy.denoiser, 0.0):
            torch.testing.assert_close(policy.predict(x, t, cond), base, atol=1e-6, rtol=0)
        with adapter_scaled(policy.denoiser, 2.0):
            doubled = policy.predict(x, t, cond)
        # the same as doubling every B by hand
        Bs = {n: p.clone() for n, p in policy.denoiser.named_parameters() if "lora_B" in n}
        for n, p in policy.denoiser.named_parameters():
            if n in Bs:
                p.mul_(2.0)
        torch.testing.assert_close(doubled, policy.predict(x, t, cond), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(doubled, adapted, atol=1e-4)
        for n, p in policy.denoiser.named_parameters():
            if n in Bs:
                p.copy_(Bs[n])
        # restored on the way out, also when the body raises
        with pytest.raises(RuntimeError), adapter_scaled(policy.denoiser, 3.0):
            raise RuntimeError
        torch.testing.assert_close(policy.predict(x, t, cond), adapted, atol=0, rtol=0)
    with pytest.raises(ValueError, match="finite"), adapter_scaled(policy.denoiser, float("nan")):
        pass
