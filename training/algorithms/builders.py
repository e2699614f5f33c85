"""Build the tiny built-in generators from configs and save them as pipeline directories.

Every model is made from hand-written small configs (nothing is downloaded): a ``CLIPTextModel``
text encoder, the local word-level tokenizer, a pixel-space denoiser (32x32 RGB, no VAE) and a
scheduler. ``build_pipeline(name, words)`` returns a fresh randomly initialised pipeline;
``save_pipeline`` writes it with ``save_pretrained`` (safetensors + ``model_index.json``), so it
loads back through :func:`training.algorithms.loading.load_generator` like any real model.

Sizes are kept small so the four trained bases fit the repo budget (<= 25 MB together).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import (
    DDIMScheduler,
    FlowMatchEulerDiscreteScheduler,
    SD3Transformer2DModel,
    UNet2DConditionModel,
    UNet3DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel

from training.algorithms.pipelines import (
    VIEW_CHANNELS,
    ShapesFlowPipeline,
    ShapesImagePipeline,
    ShapesMultiviewPipeline,
    ShapesVideoPipeline,
)
from training.algorithms.tokenizer import BOS, DEFAULT_MAX_LENGTH, EOS, PAD, build_word_tokenizer

BUILTIN_NAMES = ("shapes-image-eps", "shapes-image-flow", "shapes-video", "shapes-multiview")


@dataclass(frozen=True)
class TextEncoderSpec:
    """Tiny CLIP text encoder; ``max_length`` is also the tokenizer's padded length."""

    hidden_size: int = 32
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 64
    max_length: int = DEFAULT_MAX_LENGTH


@dataclass(frozen=True)
class GeneratorSpec:
    """Sizes of one tiny generator. ``frames`` is frames (video) or views (multi-view), else 1."""

    name: str
    resolution: int = 32
    channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 1
    heads: int = 4
    frames: int = 1
    flow_layers: int = 4
    flow_head_dim: int = 16
    train_timesteps: int = 1000
    flow_shift: float = 1.0
    # Denoiser of the flow-matching image model: "transformer" (SD3Transformer2DModel) or "unet"
    # (UNet2DConditionModel, as the epsilon model). The family comes from the scheduler either way.
    flow_backbone: str = "transformer"
    # Objective and sampler of the video and multi-view models: "epsilon" (DDPM noise prediction,
    # DDIM) or "flow" (flow matching, Euler with ``flow_shift``).
    family: str = "epsilon"
    # The model works on (pixels - pixel_shift) / pixel_scale, like a latent model's VAE scaling:
    # the shapes world's mostly black frames have a mean far from 0, which a small epsilon model
    # otherwise fails to learn at high noise (its samples drift to grey noise).
    pixel_shift: float = 0.0
    pixel_scale: float = 1.0
    text: TextEncoderSpec = field(default_factory=TextEncoderSpec)
    # Video only: append two channels telling each frame when it is (pipelines.frame_condition).
    frame_conditioned: bool = False
    # Video only: "unet3d" (UNet3DConditionModel over the frame axis) or "unet2d" (one
    # UNet2DConditionModel pass over the whole clip, its frames stacked as 3 x frames channels).
    video_backbone: str = "unet3d"

    def __post_init__(self) -> None:
        if self.pixel_scale <= 0:
            raise ValueError(f"pixel_scale must be positive, got {self.pixel_scale}")
        if self.flow_backbone not in ("transformer", "unet"):
            raise ValueError(f"flow_backbone must be 'transformer' or 'unet', got {self.flow_backbone!r}")
        if self.family not in ("epsilon", "flow"):
            raise ValueError(f"family must be 'epsilon' or 'flow', got {self.family!r}")
        if self.video_backbone not in ("unet3d", "unet2d"):
            raise ValueError(f"video_backbone must be 'unet3d' or 'unet2d', got {self.video_backbone!r}")
        if self.video_backbone == "unet2d" and self.frame_conditioned:
            raise ValueError(
                "a frame-stacked (unet2d) video model knows its frames by channel; frame_conditioned is for unet3d"
            )


DEFAULT_SPECS = {
    "shapes-image-eps": GeneratorSpec(name="shapes-image-eps"),
    # The flow base is a UNet with the flow-matching scheduler: on 2 CPU cores the tiny SD3 transformer
    # still drew round blobs after 6,000 steps (full evaluation at guidance 3: 0.066), where the UNet
    # draws crisp shapes within a few thousand. Shift 4: the shapes world is decided at high noise
    # (see training.shapes.train_base.shifted), as SD3 shifts towards noise at high resolution.
    "shapes-image-flow": GeneratorSpec(name="shapes-image-flow", flow_shift=4.0, flow_backbone="unet"),
    # Video and multi-view learn with flow matching too, for the same reason as the image flow base.
    # The video base is frame-stacked: one 2D UNet pass over the whole clip, its 8 frames as 24
    # channels. The 3D UNet over the frame axis (still supported: video_backbone="unet3d") costs
    # about ten times as much per clip and had not bound the motion word after 48k clips; the
    # stacked UNet sees every frame at every layer and trains on 2 CPU cores within a session
    # (training/weights/README.md).
    "shapes-video": GeneratorSpec(
        name="shapes-video", channels=(32, 64), frames=8, family="flow", flow_shift=4.0, video_backbone="unet2d"
    ),
    "shapes-multiview": GeneratorSpec(
        name="shapes-multiview", channels=(32, 48), frames=6, family="flow", flow_shift=4.0
    ),
}


def build_text_encoder(spec: TextEncoderSpec, words: Iterable[str], *, seed: int = 0):
    """Return ``(text_encoder, tokenizer)``: a tiny ``CLIPTextModel`` and the word tokenizer."""
    tokenizer = build_word_tokenizer(words, max_length=spec.max_length)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        max_position_embeddings=spec.max_length,
        hidden_act="gelu",
        projection_dim=spec.hidden_size,
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD),
        bos_token_id=tokenizer.convert_tokens_to_ids(BOS),
        # Not 2, so CLIP pools at the first EOS token rather than at argmax(input_ids).
        eos_token_id=tokenizer.convert_tokens_to_ids(EOS),
    )
    torch.manual_seed(seed)
    return CLIPTextModel(config).eval(), tokenizer


def epsilon_scheduler(spec: GeneratorSpec) -> DDIMScheduler:
    """DDIM over a linear-beta DDPM schedule; ``DDPMScheduler.from_config`` gives the training noise.

    ``clip_sample`` bounds the predicted x0 to the pixel range, which helps tiny pixel models.
    """
    return DDIMScheduler(
        num_train_timesteps=spec.train_timesteps,
        beta_schedule="linear",
        beta_start=0.0001,
        beta_end=0.02,
        clip_sample=True,
        # The pixel range [-1, 1] in the model's normalised space.
        clip_sample_range=max(abs(-1 - spec.pixel_shift), abs(1 - spec.pixel_shift)) / spec.pixel_scale,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


def flow_scheduler(spec: GeneratorSpec) -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=spec.train_timesteps, shift=spec.flow_shift)


def _scheduler(spec: GeneratorSpec):
    """The video or multi-view model's scheduler, by ``spec.family``."""
    return flow_scheduler(spec) if spec.family == "flow" else epsilon_scheduler(spec)


def _unet2d(spec: GeneratorSpec, cross_dim: int, *, channels: int = 3) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=spec.resolution,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=spec.channels,
        layers_per_block=spec.layers_per_block,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (len(spec.channels) - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (len(spec.channels) - 1) + ("UpBlock2D",),
        cross_attention_dim=cross_dim,
        attention_head_dim=spec.heads,
        norm_num_groups=8,
    )


def _unet3d(spec: GeneratorSpec, cross_dim: int, *, extra_in: int = 0) -> UNet3DConditionModel:
    return UNet3DConditionModel(
        sample_size=spec.resolution,
        in_channels=3 + extra_in,
        out_channels=3,
        block_out_channels=spec.channels,
        layers_per_block=spec.layers_per_block,
        down_block_types=("DownBlock3D",) + ("CrossAttnDownBlock3D",) * (len(spec.channels) - 1),
        up_block_types=("CrossAttnUpBlock3D",) * (len(spec.channels) - 1) + ("UpBlock3D",),
        cross_attention_dim=cross_dim,
        # Through the naming quirk of diffusers' UNets this is passed on as the number of heads, which
        # the 3D blocks use as the head *dimension* (heads = channels // it; `transformer_in` has 8 heads
        # of it). Larger values were measured slower on CPU here (4: 3.7 s, 16: 4.5 s per batch of 12).
        attention_head_dim=spec.heads,
        norm_num_groups=8,
    )


def _sd3(spec: GeneratorSpec, cross_dim: int) -> SD3Transformer2DModel:
    patch = 2
    return SD3Transformer2DModel(
        sample_size=spec.resolution,
        patch_size=patch,
        in_channels=3,
        out_channels=3,
        num_layers=spec.flow_layers,
        attention_head_dim=spec.flow_head_dim,
        num_attention_heads=spec.heads,
        joint_attention_dim=cross_dim,
        caption_projection_dim=spec.flow_head_dim * spec.heads,
        pooled_projection_dim=cross_dim,
        # The position table is stored in the checkpoint; size it to the patch grid, not SD3's 96.
        pos_embed_max_size=spec.resolution // patch,
    )


def build_pipeline(name: str, words: Iterable[str], *, spec: GeneratorSpec | None = None, seed: int = 0):
    """A freshly initialised tiny pipeline for built-in ``name`` over the vocabulary ``words``."""
    if name not in DEFAULT_SPECS and spec is None:
        raise ValueError(f"unknown built-in generator {name!r}; expected one of {', '.join(BUILTIN_NAMES)}")
    spec = spec or DEFAULT_SPECS[name]
    text_encoder, tokenizer = build_text_encoder(spec.text, words, seed=seed)
    cross = spec.text.hidden_size
    torch.manual_seed(seed + 1)
    kind = spec.name if spec.name in DEFAULT_SPECS else name
    pixels = {"pixel_shift": spec.pixel_shift, "pixel_scale": spec.pixel_scale}
    if kind == "shapes-image-eps":
        return ShapesImagePipeline(_unet2d(spec, cross), epsilon_scheduler(spec), text_encoder, tokenizer, **pixels)
    if kind == "shapes-image-flow":
        scheduler = flow_scheduler(spec)
        if spec.flow_backbone == "unet":
            return ShapesImagePipeline(_unet2d(spec, cross), scheduler, text_encoder, tokenizer, **pixels)
        return ShapesFlowPipeline(_sd3(spec, cross), scheduler, text_encoder, tokenizer, **pixels)
    if kind == "shapes-video":
        if spec.video_backbone == "unet2d":
            unet = _unet2d(spec, cross, channels=3 * spec.frames)
        else:
            unet = _unet3d(spec, cross, extra_in=VIEW_CHANNELS if spec.frame_conditioned else 0)
        return ShapesVideoPipeline(unet, _scheduler(spec), text_encoder, tokenizer, num_frames=spec.frames, **pixels)
    if kind == "shapes-multiview":
        unet = _unet3d(spec, cross, extra_in=VIEW_CHANNELS)
        return ShapesMultiviewPipeline(unet, _scheduler(spec), text_encoder, tokenizer, num_views=spec.frames, **pixels)
    raise ValueError(f"unknown built-in generator kind {kind!r}")


def save_pipeline(pipe, directory: str | Path, *, dtype: torch.dtype | None = None) -> Path:
    """``save_pretrained`` into ``directory`` (safetensors), optionally casting weights first."""
    directory = Path(directory)
    if dtype is not None:
        pipe = pipe.to(dtype=dtype)
    pipe.save_pretrained(directory, safe_serialization=True)
    return directory


def safetensors_bytes(directory: str | Path) -> int:
    """Total size of the ``*.safetensors`` files under a saved pipeline directory."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*.safetensors"))


def parameter_count(pipe) -> int:
    return sum(p.numel() for m in pipe.components.values() if isinstance(m, torch.nn.Module) for p in m.parameters())
