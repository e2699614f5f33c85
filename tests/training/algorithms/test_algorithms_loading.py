import json

import numpy as np
import pytest
import torch

from tests.training.algorithms.tiny import PROMPTS, TINY_SPECS, WORDS
from training.algorithms import loading
from training.algorithms.builders import (
    BUILTIN_NAMES,
    DEFAULT_SPECS,
    build_pipeline,
    safetensors_bytes,
    save_pipeline,
)
from training.algorithms.loading import load_generator
from training.algorithms.sampling import generate

EXPECTED = {
    # name: (family, modality, frames, media shape for the tiny spec)
    "shapes-image-eps": ("epsilon", "image", 1, (16, 16, 3)),
    "shapes-image-flow": ("flow", "image", 1, (16, 16, 3)),
    "shapes-video": ("epsilon", "video", 3, (3, 8, 8, 3)),
    "shapes-multiview": ("epsilon", "views", 4, (4, 8, 8, 3)),
    "shapes-video-flow": ("flow", "video", 3, (3, 8, 8, 3)),
    "shapes-multiview-flow": ("flow", "views", 4, (4, 8, 8, 3)),
    "shapes-video-stacked": ("flow", "video", 3, (3, 8, 8, 3)),
}
FLOW_3D = ["shapes-video-flow", "shapes-multiview-flow", "shapes-video-stacked"]


@pytest.mark.parametrize("name", [*BUILTIN_NAMES, *FLOW_3D])
def test_saved_pipeline_loads_and_generates_uint8(name, saved_generators, policies):
    index = json.loads((saved_generators[name] / "model_index.json").read_text())
    assert index["_class_name"].startswith("Shapes")
    assert list(saved_generators[name].rglob("*.safetensors"))
    policy = policies[name]
    family, modality, frames, shape = EXPECTED[name]
    assert (policy.family, policy.modality, policy.frames) == (family, modality, frames)
    media = generate(policy, PROMPTS, seeds=[0, 1], steps=2, guidance=2.0)
    assert len(media) == 2
    assert all(m.dtype == np.uint8 and m.shape == shape for m in media)


@pytest.mark.parametrize("name", [*BUILTIN_NAMES, *FLOW_3D])
def test_generate_matches_the_plain_pipeline_call(name, policies):
    """Our sampler does the same work as the pipeline's own diffusers loop (the benchmark baseline)."""
    policy = policies[name]
    generators = [torch.Generator().manual_seed(s) for s in (3, 4)]
    expected = policy.pipeline(PROMPTS, num_inference_steps=2, generator=generators, guidance_scale=1.5)
    got = generate(policy, PROMPTS, seeds=[3, 4], steps=2, guidance=1.5)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("name", ["shapes-image-eps", "shapes-image-flow", "shapes-multiview"])
def test_generation_is_deterministic_per_seed(name, policies):
    policy = policies[name]
    first = generate(policy, ["a red circle"] * 3, seeds=[7, 7, 8], steps=2)
    again = generate(policy, ["a red circle"], seeds=[7], steps=2)
    np.testing.assert_array_equal(first[0], first[1])
    # Across batch sizes the kernels may differ in the last float bit: allow one uint8 level.
    assert _max_diff(first[0], again[0]) <= 1
    assert not np.array_equal(first[0], first[2])
    batched = generate(policy, ["a red circle"] * 3, seeds=[7, 7, 8], steps=2, batch_size=2)
    assert _max_diff(batched[2], first[2]) <= 1


def test_prompts_and_seeds_must_pair_up(policies):
    with pytest.raises(ValueError, match="2 prompts but 1 seeds"):
        generate(policies["shapes-image-eps"], PROMPTS, seeds=[1], steps=1)


def test_builtin_names_resolve_to_the_weights_directory(tmp_path, monkeypatch, saved_generators):
    monkeypatch.setattr(loading, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match="shapes-image-flow"):
        load_generator("shapes-image-flow")
    save_pipeline(build_pipeline("shapes-image-flow", WORDS, spec=TINY_SPECS["shapes-image-flow"]), tmp_path / "x")
    (tmp_path / "x").rename(tmp_path / "shapes-image-flow")
    policy = load_generator("shapes-image-flow", dtype=torch.float32)
    assert policy.family == "flow" and policy.source == "shapes-image-flow"
    assert not any(p.requires_grad for p in policy.denoiser.parameters())


def test_default_sizes_fit_the_repository_budget(tmp_path):
    """The four shipped bases (default specs, fp32) must stay within 25 MB of safetensors together."""
    words = WORDS + [f"w{i}" for i in range(60)]  # a generous vocabulary
    sizes = {}
    for name in DEFAULT_SPECS:
        pipe = build_pipeline(name, words)
        sizes[name] = safetensors_bytes(save_pipeline(pipe, tmp_path / name))
    assert sum(sizes.values()) <= 25 * 1024 * 1024, sizes


def test_flow_model_with_a_unet_backbone(tmp_path):
    """The flow family comes from the scheduler: a UNet with the flow-matching scheduler saves, loads
    as a flow policy, and our sampler still equals the pipeline's own loop."""
    import dataclasses

    from diffusers import FlowMatchEulerDiscreteScheduler, UNet2DConditionModel

    spec = dataclasses.replace(TINY_SPECS["shapes-image-eps"], name="shapes-image-flow", flow_backbone="unet")
    path = save_pipeline(build_pipeline("shapes-image-flow", WORDS, spec=spec), tmp_path / "flow-unet")
    policy = load_generator(str(path))
    assert policy.family == "flow" and policy.prediction_type == "flow"
    assert isinstance(policy.denoiser, UNet2DConditionModel)
    assert isinstance(policy.scheduler, FlowMatchEulerDiscreteScheduler)
    generators = [torch.Generator().manual_seed(s) for s in (3, 4)]
    expected = policy.pipeline(PROMPTS, num_inference_steps=2, generator=generators, guidance_scale=1.5)
    got = generate(policy, PROMPTS, seeds=[3, 4], steps=2, guidance=1.5)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="flow_backbone"):
        dataclasses.replace(spec, flow_backbone="dit")


def test_frame_conditioning_tells_each_frame_its_time(policies):
    """Video frames get two channels, sin and cos of pi*k/(T-1): frame 0 at (0, 1), the middle of
    five at (1, 0), the last at (0, -1); the denoiser sees exactly those channels after the sample."""
    from training.algorithms.pipelines import denoiser_forward, frame_condition

    cond = frame_condition(2, 5, 3, 4)
    assert cond.shape == (2, 2, 5, 3, 4)
    torch.testing.assert_close(cond[0, :, 0, 0, 0], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(cond[0, :, 2, 1, 1], torch.tensor([1.0, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(cond[1, :, 4, 2, 3], torch.tensor([0.0, -1.0]), atol=1e-6, rtol=0)
    policy = policies["shapes-video-flow"]
    assert policy.frame_conditioned and not policy.view_conditioned
    assert policy.denoiser.config.in_channels == 5 and policy.modality == "video"
    assert not policies["shapes-video"].frame_conditioned and not policies["shapes-multiview"].frame_conditioned
    x = torch.randn(1, 3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500])
    embeds = policy.encode(["a red circle"]).embeds
    with torch.no_grad():
        got = denoiser_forward(policy.denoiser, x, t, embeds, frame_conditioned=True)
        want = policy.denoiser(
            torch.cat([x, frame_condition(1, 3, 8, 8)], dim=1), t, encoder_hidden_states=embeds, return_dict=False
        )[0]
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_frame_stacked_video_denoiser_sees_the_clip_as_channels(policies):
    """The frame-stacked video model is a 2D UNet over 3 x frames channels: a (B, 3, T, H, W) sample
    goes through it as (B, 3T, H, W) and comes back in the clip's shape, and nothing else differs."""
    import dataclasses

    from diffusers import UNet2DConditionModel

    from training.algorithms.builders import GeneratorSpec
    from training.algorithms.pipelines import denoiser_forward, frames_stacked

    policy = policies["shapes-video-stacked"]
    assert isinstance(policy.denoiser, UNet2DConditionModel) and policy.denoiser.config.in_channels == 9
    assert policy.sample_shape == (3, 3, 8, 8) and not policy.frame_conditioned
    assert frames_stacked(policy.denoiser) and not frames_stacked(policies["shapes-image-flow"].denoiser)
    x = torch.randn(2, 3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500, 20])
    embeds = policy.encode(PROMPTS).embeds
    with torch.no_grad():
        got = denoiser_forward(policy.denoiser, x, t, embeds)
        want = policy.denoiser(x.reshape(2, 9, 8, 8), t, encoder_hidden_states=embeds, return_dict=False)[0]
    assert got.shape == x.shape
    assert torch.equal(got, want.reshape(2, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="video_backbone"):
        dataclasses.replace(TINY_SPECS["shapes-video-stacked"], video_backbone="dit")
    with pytest.raises(ValueError, match="frame_conditioned"):
        GeneratorSpec("shapes-video", frames=8, video_backbone="unet2d", frame_conditioned=True)
