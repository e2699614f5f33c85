"""Mixed precision (``mixed_precision="bf16"``): the denoiser's forwards autocast inside
``Policy.mixed_precision`` only, outputs and losses stay float32, and the trainers' exact invariants
(ratio 1, KL 0, DPO loss ln 2, exact resume) hold in bf16 as in fp32."""

import math
import warnings

import numpy as np
import pytest
import torch

from tests.training.algorithms.rl_helpers import DATA, brightness, lora_state
from tests.training.algorithms.tiny import PROMPTS
from training.algorithms import loading
from training.algorithms import policy_gradient as pg
from training.algorithms.dpo import DPOConfig, PreferencePair, train_dpo
from training.algorithms.grpo import GRPOConfig, train_grpo
from training.algorithms.loading import load_generator, mixed_precision_dtype, native_bf16
from training.algorithms.pg_loop import prepare_policy
from training.algorithms.ppo import PPOConfig

# the bf16 runs here warn on CPUs without native bf16 (as they should); the warning has its own test
pytestmark = pytest.mark.filterwarnings("ignore:mixed_precision='bf16' on:RuntimeWarning")

TINY = {"prompts_per_step": 2, "group_size": 2, "sampler_steps": 2, "lora_rank": 2}


def _inputs(policy):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, *policy.sample_shape, generator=g)
    return x, torch.tensor(500.0), policy.encode(PROMPTS)


def _watch(policy) -> list[torch.dtype]:
    """The output dtype of every forward of the denoiser's first linear layer, in order."""
    seen: list[torch.dtype] = []
    first_linear = next(m for m in policy.denoiser.modules() if isinstance(m, torch.nn.Linear))
    first_linear.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    return seen


def test_modes_are_checked_everywhere():
    assert mixed_precision_dtype("no") is None and mixed_precision_dtype("bf16") is torch.bfloat16
    for make in (GRPOConfig, PPOConfig, DPOConfig):
        assert make().mixed_precision == "no"
        with pytest.raises(ValueError, match="mixed_precision must be one of no, bf16, got 'fp16'"):
            make(mixed_precision="fp16")


def test_native_bf16_reads_the_hardware():
    assert native_bf16("cpu") is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert native_bf16(torch.device("cpu")) is native_bf16("cpu")


@pytest.mark.parametrize("native", [False, True])
def test_bf16_warns_where_it_would_be_emulated(native, saved_generators, monkeypatch):
    """bf16 autocast on a CPU without native bf16 was measured 13x slower than fp32: the run is told,
    once per call site, and still runs as configured; "no" never warns."""
    monkeypatch.setattr(loading, "native_bf16", lambda device: native)
    policy = load_generator(str(saved_generators["shapes-image-flow"]))
    x, t, cond = _inputs(policy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad(), policy.mixed_precision("bf16"):
            out = policy.predict(x, t, cond)
        with policy.mixed_precision("no"):
            pass
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    if native:
        assert messages == []
    else:
        assert messages == [loading.EMULATED_BF16.format(device="cpu")]
        assert caught[0].filename == __file__  # points at the caller, not at contextlib
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["shapes-image-eps", "shapes-image-flow"])
def test_only_the_forwards_inside_the_context_autocast(name, saved_generators):
    policy = load_generator(str(saved_generators[name]))
    x, t, cond = _inputs(policy)
    inner = _watch(policy)
    with torch.no_grad():
        full = policy.predict(x, t, cond)
        with policy.mixed_precision("bf16"):
            half = policy.predict(x, t, cond)
            with policy.mixed_precision("no"):  # nested: "no" switches it off, and the exit restores bf16
                again = policy.predict(x, t, cond)
            guided = policy.predict(x, t, cond, guidance=2.0)
        after = policy.predict(x, t, cond)
    assert inner == [torch.float32, torch.bfloat16, torch.float32, torch.bfloat16, torch.float32]
    assert half.dtype == guided.dtype == torch.float32  # what losses and log-densities are computed in
    assert torch.equal(after, full) and torch.equal(again, full)
    assert not torch.equal(half, full)
    assert ((half - full).norm() / full.norm()).item() < 2e-2  # bf16 keeps 8 bits of mantissa
    assert all(p.dtype == torch.float32 for p in policy.denoiser.parameters())  # weights untouched


def test_grpo_in_bf16_keeps_its_exact_invariants_and_resumes_exactly(saved_generators, tmp_path):
    config = GRPOConfig(steps=2, kl_beta=0.04, learning_rate=1e-2, mixed_precision="bf16", **TINY)
    policy = load_generator(str(saved_generators["shapes-image-flow"]))
    components = pg.RLComponents(policy, brightness)
    prepare_policy(components, config)
    start = lora_state(policy)
    inner, seen, in_callback = _watch(policy), [], []
    x, t, cond = _inputs(policy)

    def on_step(info):
        seen.append(info)
        with torch.no_grad():  # what a caller evaluates between steps runs in full precision
            policy.predict(x, t, cond)
        in_callback.append(inner[-1])

    train_grpo(config, components, DATA, run_dir=tmp_path / "a", on_step=on_step)
    assert in_callback == [torch.float32, torch.float32]
    assert inner.count(torch.bfloat16) == len(inner) - 2  # every forward of the steps; the callbacks' two are fp32
    first = seen[0].metrics
    # old log-probs come from the same bf16 forward as the update's: the ratio is exactly 1, and
    # policy and reference are the same network before the first update: the KL is exactly 0
    assert first["ratio_dev_first"] == 0.0 and first["ratio_mean"] == 1.0 and first["kl"] == 0.0
    trained = lora_state(policy)
    assert all(not torch.equal(trained[n], start[n]) for n in start if "lora_B" in n)
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in policy.denoiser.parameters())

    stopped = []
    again = load_generator(str(saved_generators["shapes-image-flow"]))
    train_grpo(
        config,
        pg.RLComponents(again, brightness),
        DATA,
        run_dir=tmp_path / "b",
        on_step=stopped.append,
        should_stop=lambda: len(stopped) >= 1,
    )
    resumed = load_generator(str(saved_generators["shapes-image-flow"]))
    train_grpo(config, pg.RLComponents(resumed, brightness), DATA, run_dir=tmp_path / "b")
    assert all(torch.equal(v, lora_state(resumed)[n]) for n, v in trained.items())


def test_dpo_in_bf16_starts_at_ln2_and_learns(saved_generators):
    policy = load_generator(str(saved_generators["shapes-image-eps"]))
    rng = np.random.default_rng(0)
    shape = policy.sample_shape[1:] + (3,)
    pairs = [
        PreferencePair(PROMPTS[i % 2], rng.integers(0, 256, shape, dtype=np.uint8), np.zeros(shape, np.uint8))
        for i in range(4)
    ]
    config = DPOConfig(steps=8, batch_size=4, lr=5e-2, beta=50.0, lora_rank=2, mixed_precision="bf16")
    inner = _watch(policy)
    result = train_dpo(config, policy, pairs, run_dir=None)
    assert inner and set(inner) == {torch.bfloat16}  # every forward of every step, policy and reference
    first, last = result.history[0], result.history[-1]
    # the adapter starts with B = 0, so the policy's bf16 forward is the reference's, bit for bit
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-7) and first["implicit_acc"] == 0.5
    assert first["model_mse"] == first["ref_mse"]
    assert last["loss"] < first["loss"]
