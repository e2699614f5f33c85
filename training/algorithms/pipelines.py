"""Minimal diffusers pipelines for the built-in shapes generators (pixel space, no VAE).

No stock diffusers pipeline fits a pixel-space text-conditional model without a VAE, so each
family gets a small ``DiffusionPipeline`` subclass. They exist so the tiny models are saved and
loaded by the same ``save_pretrained``/``from_pretrained`` code path as real models, and so that
``pipe(prompts, ...)`` is a plain diffusers sampling loop (``scheduler.step``) that the benchmark
uses as its baseline. Training and RL never call ``__call__``; they go through
:class:`training.algorithms.loading.Policy`.

Tensor layout: images ``(B, C, H, W)``; videos and view sets ``(B, C, F, H, W)`` (the layout of
``UNet3DConditionModel``; a frame-stacked 2D UNet sees them as ``(B, C*F, H, W)`` inside
:func:`denoiser_forward` alone). Pixels live in ``[-1, 1]``.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils.torch_utils import randn_tensor

from training.algorithms.tokenizer import encode_prompts

VIEW_CHANNELS = 2  # sin and cos of the view's angle on the ring


def _angle_channels(angles: torch.Tensor, batch: int, height: int, width: int, device, dtype) -> torch.Tensor:
    """``(B, 2, len(angles), H, W)``: sin and cos of each frame's angle, constant over the frame."""
    cond = torch.stack([angles.sin(), angles.cos()])  # (2, T)
    cond = cond[None, :, :, None, None].expand(batch, VIEW_CHANNELS, len(angles), height, width)
    return cond.to(device=device, dtype=dtype or torch.float32)


def view_condition(batch: int, num_views: int, height: int, width: int, *, device=None, dtype=None) -> torch.Tensor:
    """Constant channels telling each view of a ring where it sits: ``(B, 2, V, H, W)``.

    View ``v`` of ``V`` is at angle ``2*pi*v/V``; its two channels hold ``sin`` and ``cos`` of
    that angle. The channels are concatenated to the noisy views before the UNet, so the
    denoiser knows the order of the ring (a 3D UNet's temporal attention alone does not).
    """
    angles = torch.arange(num_views, dtype=torch.float32) * (2 * math.pi / num_views)
    return _angle_channels(angles, batch, height, width, device, dtype)


def frame_condition(batch: int, num_frames: int, height: int, width: int, *, device=None, dtype=None) -> torch.Tensor:
    """Constant channels telling each frame of a clip when it is: ``(B, 2, T, H, W)``.

    Frame ``k`` of ``T`` is at angle ``pi*k/(T-1)`` on a half circle (so the first and last frames
    stay apart); its two channels hold ``sin`` and ``cos`` of that angle. Without them each frame's
    spatial layers cannot tell where in the clip they are, and only the temporal layers (which do
    not see the prompt) know the order, so a motion word like "left" binds very slowly.
    """
    angles = torch.arange(num_frames, dtype=torch.float32) * (math.pi / max(num_frames - 1, 1))
    return _angle_channels(angles, batch, height, width, device, dtype)


def frames_stacked(denoiser: torch.nn.Module, sample: torch.Tensor | None = None) -> bool:
    """Whether `denoiser` is a 2D UNet taking whole clips with their frames stacked as channels
    (``sample`` 5D, or, without a sample, a 2D UNet over more than three channels)."""
    if not denoiser.__class__.__name__.startswith("UNet2D"):
        return False
    if sample is not None:
        return sample.ndim == 5
    return int(denoiser.config.out_channels) > 3


def denoiser_forward(
    denoiser: torch.nn.Module,
    sample: torch.Tensor,
    timestep: torch.Tensor,
    prompt_embeds: torch.Tensor,
    pooled_embeds: torch.Tensor | None = None,
    *,
    view_conditioned: bool = False,
    frame_conditioned: bool = False,
) -> torch.Tensor:
    """One forward pass of a UNet2D/UNet3D/SD3 transformer, returning its raw prediction.

    ``timestep`` is broadcast to the batch. SD3 transformers also take the pooled text embedding;
    view-conditioned 3D UNets get :func:`view_condition` channels appended to their input,
    frame-conditioned ones :func:`frame_condition` channels.
    """
    batch = sample.shape[0]
    if frames_stacked(denoiser, sample):
        # A frame-stacked video denoiser: the clip's frames are channels of one 2D UNet pass.
        _, channels, frames, height, width = sample.shape
        flat = sample.reshape(batch, channels * frames, height, width)
        out = denoiser_forward(denoiser, flat, timestep, prompt_embeds, pooled_embeds)
        return out.reshape(batch, -1, frames, height, width)
    t = timestep if torch.is_tensor(timestep) else torch.tensor(timestep)
    t = t.to(sample.device).reshape(-1).expand(batch) if t.numel() == 1 else t.to(sample.device)
    if denoiser.__class__.__name__.startswith("SD3Transformer"):
        return denoiser(
            hidden_states=sample,
            timestep=t,
            encoder_hidden_states=prompt_embeds,
            pooled_projections=pooled_embeds,
            return_dict=False,
        )[0]
    if view_conditioned or frame_conditioned:
        _, _, frames, height, width = sample.shape
        make = view_condition if view_conditioned else frame_condition
        cond = make(batch, frames, height, width, device=sample.device, dtype=sample.dtype)
        sample = torch.cat([sample, cond], dim=1)
    return denoiser(sample, t, encoder_hidden_states=prompt_embeds, return_dict=False)[0]


def to_uint8(pixels: torch.Tensor) -> list[np.ndarray]:
    """``[-1, 1]`` pixels to uint8 channels-last arrays, one per sample.

    ``(B, C, H, W)`` gives ``(H, W, C)`` arrays; ``(B, C, F, H, W)`` gives ``(F, H, W, C)``.
    """
    x = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    x = x.permute(0, 2, 3, 1) if x.ndim == 4 else x.permute(0, 2, 3, 4, 1)
    return [a.cpu().numpy() for a in x]


class _ShapesPipeline(DiffusionPipeline):
    """Shared plain sampler: text encoding, optional CFG, ``scheduler.step`` loop, uint8 output."""

    denoiser_name = "unet"
    view_conditioned = False

    @property
    def frame_conditioned(self) -> bool:
        """A video denoiser taking :func:`frame_condition` channels (its input is wider than its output)."""
        config = self.denoiser.config
        return not self.view_conditioned and config.in_channels > getattr(config, "out_channels", config.in_channels)

    @property
    def denoiser(self) -> torch.nn.Module:
        return getattr(self, self.denoiser_name)

    def _register_pixels(self, pixel_shift: float, pixel_scale: float) -> None:
        if pixel_scale <= 0:
            raise ValueError(f"pixel_scale must be positive, got {pixel_scale}")
        self.register_to_config(pixel_shift=float(pixel_shift), pixel_scale=float(pixel_scale))

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """The model's normalised space back to pixels in [-1, 1]."""
        return x * self.config.get("pixel_scale", 1.0) + self.config.get("pixel_shift", 0.0)

    def frames(self) -> int:
        return 1

    def sample_shape(self) -> tuple[int, ...]:
        cfg = self.denoiser.config
        size = cfg.sample_size
        channels = cfg.out_channels if cfg.out_channels is not None else cfg.in_channels
        if frames_stacked(self.denoiser):
            return (channels // self.frames(), self.frames(), size, size)
        if self.frames() > 1 or self.denoiser.__class__.__name__.startswith("UNet3D"):
            return (channels, self.frames(), size, size)
        return (channels, size, size)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = encode_prompts(self.tokenizer, prompts).input_ids.to(self.device)
        out = self.text_encoder(ids)
        return out.last_hidden_state, out.pooler_output

    @torch.no_grad()
    def __call__(
        self,
        prompts: list[str] | str,
        *,
        num_inference_steps: int = 20,
        generator: torch.Generator | list[torch.Generator] | None = None,
        guidance_scale: float = 1.0,
        eta: float = 0.0,
    ) -> list[np.ndarray]:
        """Sample with the saved scheduler; returns one uint8 channels-last array per prompt."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        embeds, pooled = self.encode(prompts)
        if guidance_scale != 1.0:
            neg, neg_pooled = self.encode([""] * len(prompts))
            embeds, pooled = torch.cat([neg, embeds]), torch.cat([neg_pooled, pooled])
        dtype = self.denoiser.dtype
        x = randn_tensor((len(prompts), *self.sample_shape()), generator=generator, device=self.device, dtype=dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        x = x * getattr(self.scheduler, "init_noise_sigma", 1.0)
        step_kwargs = {"eta": eta, "generator": generator} if "eta" in _step_params(self.scheduler) else {}
        for t in self.scheduler.timesteps:
            model_in = torch.cat([x, x]) if guidance_scale != 1.0 else x
            out = denoiser_forward(
                self.denoiser,
                model_in,
                t,
                embeds.to(dtype),
                pooled.to(dtype),
                view_conditioned=self.view_conditioned,
                frame_conditioned=self.frame_conditioned,
            )
            if guidance_scale != 1.0:
                uncond, cond = out.chunk(2)
                out = uncond + guidance_scale * (cond - uncond)
            x = self.scheduler.step(out, t, x, **step_kwargs, return_dict=False)[0]
        return to_uint8(self.to_pixels(x))


def _step_params(scheduler) -> set[str]:
    return set(inspect.signature(scheduler.step).parameters)


class ShapesImagePipeline(_ShapesPipeline):
    """Pixel-space image model with a ``UNet2DConditionModel``: epsilon prediction with a DDIM/DDPM
    scheduler, or velocity prediction with ``FlowMatchEulerDiscreteScheduler`` (a flow-matching UNet)."""

    def __init__(self, unet, scheduler, text_encoder, tokenizer, pixel_shift: float = 0.0, pixel_scale: float = 1.0):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        self._register_pixels(pixel_shift, pixel_scale)


class ShapesFlowPipeline(_ShapesPipeline):
    """Flow-matching pixel-space image model: ``SD3Transformer2DModel`` + ``FlowMatchEulerDiscreteScheduler``."""

    denoiser_name = "transformer"

    def __init__(
        self, transformer, scheduler, text_encoder, tokenizer, pixel_shift: float = 0.0, pixel_scale: float = 1.0
    ):
        super().__init__()
        self.register_modules(
            transformer=transformer, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer
        )
        self._register_pixels(pixel_shift, pixel_scale)


class ShapesVideoPipeline(_ShapesPipeline):
    """Pixel-space video model over ``num_frames`` frames (epsilon or flow matching, by its
    scheduler): a ``UNet3DConditionModel`` over the frame axis (one with two more input than output
    channels is frame-conditioned, :func:`frame_condition`), or a frame-stacked
    ``UNet2DConditionModel`` over 3 x ``num_frames`` channels (:func:`frames_stacked`; the shipped
    base)."""

    def __init__(
        self,
        unet,
        scheduler,
        text_encoder,
        tokenizer,
        num_frames: int = 8,
        pixel_shift: float = 0.0,
        pixel_scale: float = 1.0,
    ):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        self.register_to_config(num_frames=num_frames)
        self._register_pixels(pixel_shift, pixel_scale)

    def frames(self) -> int:
        return int(self.config.num_frames)


class ShapesMultiviewPipeline(_ShapesPipeline):
    """A ring of ``num_views`` views as a sequence: ``UNet3DConditionModel`` over the view axis.

    Views attend to each other through the 3D UNet's temporal layers, and each view's place on the
    ring enters as two extra input channels (:func:`view_condition`).
    """

    view_conditioned = True

    def __init__(
        self,
        unet,
        scheduler,
        text_encoder,
        tokenizer,
        num_views: int = 6,
        pixel_shift: float = 0.0,
        pixel_scale: float = 1.0,
    ):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler, text_encoder=text_encoder, tokenizer=tokenizer)
        self.register_to_config(num_views=num_views)
        self._register_pixels(pixel_shift, pixel_scale)

    def frames(self) -> int:
        return int(self.config.num_views)


PIPELINE_CLASSES = {
    cls.__name__: cls for cls in (ShapesImagePipeline, ShapesFlowPipeline, ShapesVideoPipeline, ShapesMultiviewPipeline)
}
