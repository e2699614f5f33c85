"""Load any generator (built-in shapes model, local pipeline directory, hub id) as a :class:`Policy`.

``load_generator`` is the single entry point: the built-in names resolve to
``training/weights/<name>/`` in this repository; anything else goes to diffusers'
``from_pretrained`` (a local directory, or a hub id that is already in the local cache: nothing
is downloaded on purpose here). The samplers and the training algorithms only ever see the
``Policy`` interface, so a real ``StableDiffusionPipeline`` and the tiny shapes models are
generated, scored and fine-tuned by the same code.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.utils.torch_utils import randn_tensor

from training.algorithms import lora
from training.algorithms.builders import BUILTIN_NAMES
from training.algorithms.pipelines import PIPELINE_CLASSES, denoiser_forward, to_uint8
from training.algorithms.tokenizer import encode_prompts

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
# a config's ``mixed_precision`` -> the dtype the denoiser's forwards autocast to (None: full precision).
# bf16 only: fp16 gradients would need loss scaling, and bf16 keeps fp32's range.
MIXED_PRECISION: dict[str, torch.dtype | None] = {"no": None, "bf16": torch.bfloat16}
Family = Literal["epsilon", "flow"]
Modality = Literal["image", "video", "views"]


@dataclass
class TextCondition:
    """Encoded prompts: token embeddings ``(B, L, D)`` and, for SD3-style models, pooled ``(B, D')``."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.embeds.shape[0]

    def cat(self, other: TextCondition) -> TextCondition:
        pooled = None if self.pooled is None else torch.cat([self.pooled, other.pooled])
        return TextCondition(torch.cat([self.embeds, other.embeds]), pooled)

    def index(self, idx) -> TextCondition:
        return TextCondition(self.embeds[idx], None if self.pooled is None else self.pooled[idx])


@dataclass(eq=False)
class Policy:
    """A text-to-media diffusion model as the samplers and the training algorithms see it.

    Fields
        denoiser: the network being sampled/trained (``UNet2DConditionModel``, ``UNet3DConditionModel``
            or ``SD3Transformer2DModel``); a LoRA adapter, if any, is injected into it in place.
        scheduler: the pipeline's scheduler (its config defines the noise schedule).
        family: ``"epsilon"`` (DDPM-style noise schedule, eps/v/x0 prediction per the scheduler's
            ``prediction_type``) or ``"flow"`` (rectified flow, ``x_s = (1-s) x0 + s eps``, predicts
            ``v = eps - x0``).
        modality / frames: ``"image"`` (frames 1), ``"video"`` (frames), ``"views"`` (views of a ring).
        sample_shape: shape of one sample's state ``x`` (pixels, or latents when ``vae`` is set):
            ``(C, H, W)`` for images, ``(C, F, H, W)`` for videos and view sets.
        vae: optional autoencoder; ``decode`` maps latents to pixels with it.

    Interface (all tensors on ``device``)
        ``encode(prompts) -> TextCondition`` and ``unconditional(n)`` (the empty prompt, for CFG);
        ``predict(x, t, cond, guidance=1.0)`` -> the denoiser's output (eps or v), with classifier-free
        guidance when ``guidance != 1``; differentiable, so the algorithms train through it;
        ``initial_noise(generators)`` -> ``x_T`` (one generator per sample, so each seed is reproducible);
        ``sampling_scheduler()`` (DDIM or flow Euler) and ``training_scheduler()`` (DDPM or flow)
        return fresh scheduler instances; ``decode(x) -> pixels in [-1, 1]``; ``to_media(x)`` -> uint8;
        ``disable_adapter()`` is a context manager under which the denoiser is the frozen base
        (the reference policy); ``add_adapter``/``save_adapter``/``trainable_parameters`` manage LoRA.
    """

    denoiser: torch.nn.Module
    scheduler: Any
    family: Family
    modality: Modality
    frames: int
    sample_shape: tuple[int, ...]
    text_encoder: torch.nn.Module | None = None
    tokenizer: Any = None
    vae: torch.nn.Module | None = None
    view_conditioned: bool = False
    frame_conditioned: bool = False
    pipeline: DiffusionPipeline | None = None
    source: str = ""
    adapter: str | None = None
    _uncond: TextCondition | None = field(default=None, repr=False)
    _autocast: torch.dtype | None = field(default=None, repr=False)  # set inside mixed_precision()

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.denoiser.parameters()).dtype

    @property
    def prediction_type(self) -> str:
        return "flow" if self.family == "flow" else self.scheduler.config.get("prediction_type", "epsilon")

    # --- text conditioning -------------------------------------------------------------------
    def token_ids(self, prompts: list[str]) -> torch.Tensor:
        """The tokenizer's padded ids of `prompts`, on the policy's device (training encodes them
        with gradients; :meth:`encode` without)."""
        return encode_prompts(self.tokenizer, prompts).input_ids.to(self.device)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> TextCondition:
        prompts = list(prompts)
        if self.pipeline is not None and getattr(self.pipeline, "text_encoder_3", None) is not None:
            # SD3-style pipelines have three encoders; their own encode_prompt combines them.
            embeds, _, pooled, _ = self.pipeline.encode_prompt(
                prompt=prompts, prompt_2=None, prompt_3=None, device=self.device, do_classifier_free_guidance=False
            )
            return TextCondition(embeds.to(self.dtype), pooled.to(self.dtype))
        out = self.text_encoder(self.token_ids(prompts))
        pooled = getattr(out, "pooler_output", None)
        return TextCondition(out.last_hidden_state.to(self.dtype), None if pooled is None else pooled.to(self.dtype))

    def unconditional(self, n: int) -> TextCondition:
        """The empty prompt's embedding repeated ``n`` times (cached)."""
        if self._uncond is None:
            self._uncond = self.encode([""])
        u = self._uncond
        return TextCondition(
            u.embeds.expand(n, *u.embeds.shape[1:]), None if u.pooled is None else u.pooled.expand(n, -1)
        )

    # --- the denoiser --------------------------------------------------------------------------
    def predict(
        self,
        x: torch.Tensor,
        t: torch.Tensor | float,
        cond: TextCondition,
        *,
        guidance: float = 1.0,
        uncond: TextCondition | None = None,
    ) -> torch.Tensor:
        """Model output at ``(x, t)``; with ``guidance != 1`` classifier-free guidance (Ho & Salimans 2022):
        ``out = out(x, t, "") + guidance * (out(x, t, prompt) - out(x, t, ""))``, one batched forward."""
        if guidance == 1.0:
            return self._forward(x, t, cond)
        uncond = uncond if uncond is not None else self.unconditional(len(cond))
        t2 = torch.cat([t, t]) if torch.is_tensor(t) and t.ndim == 1 and t.numel() > 1 else t
        out_u, out_c = self._forward(torch.cat([x, x]), t2, uncond.cat(cond)).chunk(2)
        return out_u + guidance * (out_c - out_u)

    def _forward(self, x: torch.Tensor, t, cond: TextCondition) -> torch.Tensor:
        def forward() -> torch.Tensor:
            return denoiser_forward(
                self.denoiser,
                x.to(self.dtype),
                t,
                cond.embeds,
                cond.pooled,
                view_conditioned=self.view_conditioned,
                frame_conditioned=self.frame_conditioned,
            )

        if self._autocast is None:
            return forward()
        with torch.autocast(self.device.type, dtype=self._autocast):
            out = forward()
        return out.to(self.dtype)  # losses and log-densities stay in the policy's precision

    # --- schedulers, noise, decoding -------------------------------------------------------------
    def sampling_scheduler(self):
        """A fresh deterministic sampler scheduler: DDIM (epsilon) or flow-matching Euler (flow)."""
        if self.family == "flow":
            return FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config)
        return DDIMScheduler.from_config(self.scheduler.config)

    def training_scheduler(self):
        """A fresh scheduler for ``add_noise`` during training: DDPM (epsilon) or flow matching."""
        if self.family == "flow":
            return FlowMatchEulerDiscreteScheduler.from_config(self.scheduler.config)
        return DDPMScheduler.from_config(self.scheduler.config)

    def initial_noise(self, generators: list[torch.Generator]) -> torch.Tensor:
        """``x_T`` of shape ``(B, *sample_shape)``, drawn per sample from its own generator."""
        shape = (len(generators), *self.sample_shape)
        return randn_tensor(shape, generator=list(generators), device=self.device, dtype=self.dtype)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Final state to pixels in ``[-1, 1]``: identity in pixel space, VAE decode in latent space."""
        if self.vae is None:
            if self.pipeline is not None and hasattr(self.pipeline, "to_pixels"):
                return self.pipeline.to_pixels(x)  # our pixel-space models may work in a normalised space
            return x
        scale = self.vae.config.scaling_factor
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        if x.ndim == 5:  # (B, C, F, h, w): decode frame by frame
            b, c, f, h, w = x.shape
            frames = x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
            pixels = self.vae.decode((frames / scale + shift).to(self.vae.dtype)).sample
            return pixels.reshape(b, f, *pixels.shape[1:]).permute(0, 2, 1, 3, 4)
        return self.vae.decode((x / scale + shift).to(self.vae.dtype)).sample

    @torch.no_grad()
    def to_media(self, x: torch.Tensor) -> list[np.ndarray]:
        """uint8 channels-last arrays: image ``(H, W, 3)``, video ``(T, H, W, 3)``, views ``(V, H, W, 3)``."""
        return to_uint8(self.decode(x))

    # --- adapters ---------------------------------------------------------------------------------
    def disable_adapter(self) -> contextlib.AbstractContextManager:
        """Context manager: inside it the denoiser is the frozen base model (no-op without adapter)."""
        return lora.adapter_disabled(self.denoiser)

    def add_adapter(self, **kwargs) -> None:
        """Inject a fresh trainable LoRA (see :func:`training.algorithms.lora.add_lora`)."""
        lora.add_lora(self.denoiser, **kwargs)

    def save_adapter(self, directory: str | Path) -> Path:
        return lora.save_lora(self.denoiser, directory)

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """LoRA parameters when an adapter is present, otherwise every denoiser parameter."""
        if lora.has_adapter(self.denoiser):
            return lora.lora_parameters(self.denoiser)
        return list(self.denoiser.parameters())

    @contextlib.contextmanager
    def mixed_precision(self, mode: str) -> Iterator[None]:
        """Inside it the denoiser's forwards run under autocast in ``mode``'s dtype (``"bf16"``) and
        :meth:`predict` returns the policy's dtype; with ``"no"`` they run in full precision. The weights,
        their gradients and the optimiser stay in full precision. Restores the previous mode on exit."""
        dtype = mixed_precision_dtype(mode)
        if dtype is torch.bfloat16 and not native_bf16(self.device):
            warnings.warn(EMULATED_BF16.format(device=self.device), RuntimeWarning, stacklevel=3)
        previous, self._autocast = self._autocast, dtype
        try:
            yield
        finally:
            self._autocast = previous

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Dropout off for rollouts and log-prob recomputation; restores the previous mode."""
        was_training = self.denoiser.training
        self.denoiser.eval()
        try:
            yield
        finally:
            self.denoiser.train(was_training)


def mixed_precision_dtype(mode: str) -> torch.dtype | None:
    """The autocast dtype of a config's ``mixed_precision`` (None for ``"no"``); refuses other values."""
    if mode not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISION)}, got {mode!r}")
    return MIXED_PRECISION[mode]


EMULATED_BF16 = (
    "mixed_precision='bf16' on {device}, which has no native bfloat16 arithmetic: autocast emulates it "
    "(on an AVX2 CPU without AVX-512 BF16 the shapes denoiser's forward was measured 13 times slower than "
    "in float32); use mixed_precision='no' here"
)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes in bfloat16 natively (a CUDA GPU that supports it; a CPU with
    oneDNN's bf16 path, i.e. AVX-512 BF16 or AMX), so that ``mixed_precision="bf16"`` speeds the
    forwards up rather than emulating them."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return True  # other accelerators: autocast decides; nothing measured here


def resolve_source(source: str) -> str:
    """A built-in name to its weights directory; anything else is returned unchanged."""
    if source in BUILTIN_NAMES:
        path = WEIGHTS_DIR / source
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"built-in generator {source!r} has no weights at {path}")
        return str(path)
    return source


def _load_pipeline(source: str) -> DiffusionPipeline:
    index = Path(source) / "model_index.json"
    if index.is_file():
        class_name = json.loads(index.read_text()).get("_class_name")
        if class_name in PIPELINE_CLASSES:
            return PIPELINE_CLASSES[class_name].from_pretrained(source)
    return DiffusionPipeline.from_pretrained(source)


def policy_from_pipeline(pipe: DiffusionPipeline, *, source: str = "", frames: int | None = None) -> Policy:
    """Wrap a loaded pipeline: pick its denoiser, family, modality and sample shape."""
    denoiser = getattr(pipe, "transformer", None)
    if denoiser is None:
        denoiser = getattr(pipe, "unet", None)
    if denoiser is None:
        raise ValueError(f"{type(pipe).__name__} has neither a unet nor a transformer")
    family: Family = "flow" if "FlowMatch" in type(pipe.scheduler).__name__ else "epsilon"
    is_3d = type(denoiser).__name__.startswith("UNet3D")
    cfg = denoiser.config
    channels = cfg.out_channels if getattr(cfg, "out_channels", None) else cfg.in_channels
    size = cfg.sample_size  # latent units when the pipeline has a VAE
    if type(pipe).__name__ in PIPELINE_CLASSES:
        frames = pipe.frames()
        shape = pipe.sample_shape()
        modality: Modality = "views" if pipe.view_conditioned else ("video" if len(shape) == 4 else "image")
    else:
        modality = "video" if is_3d else "image"
        frames = frames or (16 if is_3d else 1)
        shape = (channels, frames, size, size) if is_3d else (channels, size, size)
    return Policy(
        denoiser=denoiser,
        scheduler=pipe.scheduler,
        family=family,
        modality=modality,
        frames=frames,
        sample_shape=shape,
        text_encoder=getattr(pipe, "text_encoder", None),
        tokenizer=getattr(pipe, "tokenizer", None),
        vae=getattr(pipe, "vae", None),
        view_conditioned=bool(getattr(pipe, "view_conditioned", False)),
        frame_conditioned=bool(getattr(pipe, "frame_conditioned", False)),
        pipeline=pipe,
        source=source,
    )


def load_generator(
    source: str,
    *,
    adapter: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    frames: int | None = None,
) -> Policy:
    """Load a generator as a :class:`Policy`.

    ``source``: a built-in name (``shapes-image-eps``, ``shapes-image-flow``, ``shapes-video``,
    ``shapes-multiview``; weights under ``training/weights/<name>/``), a local pipeline directory,
    or a hub id resolved by ``DiffusionPipeline.from_pretrained`` (only cached models work offline).
    ``adapter``: a directory holding a LoRA adapter saved by :meth:`Policy.save_adapter`.
    ``frames``: frame count for third-party video pipelines (default 16); ignored for built-ins.
    Every module is put in eval mode with gradients off; training enables what it trains.
    """
    resolved = resolve_source(source)
    pipe = _load_pipeline(resolved)
    if device is not None or dtype is not None:
        pipe = pipe.to(device=device, dtype=dtype)
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    policy = policy_from_pipeline(pipe, source=source, frames=frames)
    if adapter is not None:
        lora.load_lora(policy.denoiser, adapter)
        policy.denoiser.to(device=policy.device, dtype=policy.dtype)
        policy.adapter = str(adapter)
    return policy
