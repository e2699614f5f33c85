"""Backbones of the reward model and the model itself: media + prompt -> one score per head.

A backbone maps ``(media, prompts)`` to a media feature and a text feature of the same width
(``feature_dim``); :class:`RewardModel` fuses them as ``[m, t, m * t]`` (the element-wise product
lets a small MLP measure agreement between the two, as the dot product does in CLIP-style scorers
such as PickScore) and puts one linear head per criterion on a shared trunk.

Two backbones:

* :class:`ShapesBackbone`, pure torch, for the shapes world. Per frame, a small conv encoder sees
  RGB, the difference to the previous frame (motion, view changes) and two coordinate channels
  (CoordConv, Liu et al. 2018, "An Intriguing Failing of Convolutional Neural Networks and the
  CoordConv Solution"), so pooled features can carry positions. The prompt is encoded by a word
  embedding with positions and one transformer layer (a bag of words cannot tell "a red circle and
  a blue square" from "a blue circle and a red square"), and it modulates every conv stage by FiLM
  (Perez et al. 2018, "FiLM: Visual Reasoning with a General Conditioning Layer": ``h * (1 + gamma)
  + beta``), so the encoder looks for what the prompt names. Frame features then pass a temporal
  convolution (:class:`TemporalPool`), since the verifier judges motion direction and view
  consistency; optionally the prompt's words also attend to every location of every frame
  (cross-attention, as BLIP's text encoder does in ImageReward). GroupNorm, no BatchNorm and no
  dropout: a checkpoint of the trainable tensors is the whole state, and the training loop draws
  no randomness in the model.
* :class:`ClipBackbone`, a ``transformers`` ``CLIPModel`` loaded with ``from_pretrained(path)``;
  frames are resized to the vision tower's size and normalised with CLIP's statistics, per-frame
  image embeddings pass the same temporal pooling. The towers can be frozen.

Media are channel-last: ``(B, H, W, 3)`` images or ``(B, T, H, W, 3)`` clips and view rings, uint8
(divided by 255) or floats already in [0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from training.algorithms.tokenizer import DEFAULT_MAX_LENGTH, build_word_tokenizer, encode_prompts

OVERALL = "overall"
CONFIG_FILE = "reward_model.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
FORMAT = "loupe-reward-model"
# OpenAI CLIP's image statistics (CLIPImageProcessor's defaults).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def media_tensor(media, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(B, T, H, W, 3)`` float32 in [0, 1] from a tensor, an array or a list of equal-shape arrays.

    Images ``(B, H, W, 3)`` get ``T = 1``; uint8 is divided by 255, floats are taken as [0, 1]."""
    if isinstance(media, list | tuple):
        media = np.stack([np.asarray(m) for m in media])
    x = torch.as_tensor(media)
    if x.ndim == 4:
        x = x.unsqueeze(1)
    if x.ndim != 5 or x.shape[-1] != 3:
        raise ValueError(f"media must be (B, H, W, 3) or (B, T, H, W, 3), got {tuple(x.shape)}")
    x = x.to(device)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


class TemporalPool(nn.Module):
    """``(B, T, C) -> (B, D)``: a temporal convolution (kernel 3, sees neighbouring frames or views)
    then mean and max over time. With ``T = 1`` it is a per-image projection."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size=3, padding=1)
        self.out = nn.Linear(2 * out_dim, out_dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.conv(frames.transpose(1, 2)))  # (B, D, T)
        return self.out(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


@dataclass(frozen=True)
class ShapesBackboneSpec:
    """Sizes of the built-in backbone. ``channels``: conv widths (first stage stride 1, then 2)."""

    channels: tuple[int, ...] = (16, 32, 64)
    feature_dim: int = 64
    text_dim: int = 32
    text_heads: int = 2
    max_length: int = DEFAULT_MAX_LENGTH
    cross_attention: bool = True

    def __post_init__(self) -> None:
        if not self.channels or any(c < 4 or c % 4 for c in self.channels):
            raise ValueError(f"channels must be multiples of 4 (GroupNorm uses 4 groups), got {self.channels}")
        if self.feature_dim < 1 or self.text_dim < 1 or self.text_dim % self.text_heads:
            raise ValueError("feature_dim and text_dim must be positive; text_dim divisible by text_heads")
        if self.max_length < 3:
            raise ValueError(f"max_length must be at least 3 (<bos> word <eos>), got {self.max_length}")


class TextEncoder(nn.Module):
    """Word embedding + learned positions + one pre-norm transformer layer, masked mean pooled."""

    def __init__(self, vocab_size: int, spec: ShapesBackboneSpec) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, spec.text_dim)
        self.positions = nn.Embedding(spec.max_length, spec.text_dim)
        self.layer = nn.TransformerEncoderLayer(
            spec.text_dim, spec.text_heads, 2 * spec.text_dim, dropout=0.0, batch_first=True, norm_first=True
        )

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``(B, L, text_dim)`` token states (padding positions are not to be read)."""
        pos = torch.arange(ids.shape[1], device=ids.device)
        return self.layer(self.tokens(ids) + self.positions(pos), src_key_padding_mask=~mask)


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).to(h.dtype)
    return (h * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class ShapesBackbone(nn.Module):
    """The built-in image/video/multi-view encoder of the shapes world (see the module docstring)."""

    kind = "shapes"

    def __init__(self, vocabulary: Sequence[str], spec: ShapesBackboneSpec | None = None) -> None:
        super().__init__()
        self.spec = spec or ShapesBackboneSpec()
        self.vocabulary = list(vocabulary)
        self.tokenizer = build_word_tokenizer(self.vocabulary, max_length=self.spec.max_length)
        self._token_cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.text = TextEncoder(len(self.tokenizer), self.spec)
        widths = (8, *self.spec.channels)  # RGB, frame difference, (x, y)
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=1 if i == 0 else 2, padding=1, bias=False)
            for i in range(len(self.spec.channels))
        )
        self.norms = nn.ModuleList(nn.GroupNorm(4, c) for c in self.spec.channels)
        self.film = nn.Linear(self.spec.text_dim, 2 * sum(self.spec.channels))
        self.temporal = TemporalPool(2 * self.spec.channels[-1], self.spec.feature_dim)
        self.text_out = nn.Linear(self.spec.text_dim, self.spec.feature_dim)
        self.feature_dim = self.spec.feature_dim
        if self.spec.cross_attention:
            last = self.spec.channels[-1]
            self.cross = nn.MultiheadAttention(
                self.spec.text_dim, self.spec.text_heads, kdim=last, vdim=last, batch_first=True
            )
            self.cross_out = nn.Linear(self.spec.text_dim, self.spec.feature_dim)

    def token_ids(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, mask) of the prompts; each prompt is tokenized once (a training run sees the same
        few hundred prompts thousands of times)."""
        new = [p for p in dict.fromkeys(prompts) if p not in self._token_cache]
        if new:
            enc = encode_prompts(self.tokenizer, new, max_length=self.spec.max_length)
            for p, ids, mask in zip(new, enc["input_ids"], enc["attention_mask"].bool(), strict=True):
                self._token_cache[p] = (ids, mask)
        ids, masks = zip(*(self._token_cache[p] for p in prompts), strict=True)
        return torch.stack(ids), torch.stack(masks)

    def encode_text(self, prompts: Sequence[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Token states ``(B, L, text_dim)`` and their mask."""
        ids, mask = self.token_ids(prompts)
        mask = mask.to(device)
        return self.text(ids.to(device), mask), mask

    def _frame_inputs(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h, w, _ = x.shape
        frames = x.permute(0, 1, 4, 2, 3)  # (B, T, 3, H, W)
        diff = frames - torch.cat([frames[:, :1], frames[:, :-1]], dim=1)  # zero for the first frame
        ys = torch.linspace(-1, 1, h, device=x.device).view(h, 1).expand(h, w)
        xs = torch.linspace(-1, 1, w, device=x.device).view(1, w).expand(h, w)
        coords = torch.stack([xs, ys]).expand(b, t, 2, h, w)
        return torch.cat([frames, diff, coords], dim=2).reshape(b * t, 8, h, w)

    def forward(self, media: torch.Tensor, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        b, t = media.shape[:2]
        tokens, mask = self.encode_text(prompts, media.device)
        text = masked_mean(tokens, mask)  # (B, text_dim)
        film = self.film(text).repeat_interleave(t, dim=0).split([2 * c for c in self.spec.channels], dim=1)
        h = self._frame_inputs(media)
        for conv, norm, mod in zip(self.convs, self.norms, film, strict=True):
            gamma, beta = mod.chunk(2, dim=1)
            h = norm(conv(h)) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
            h = F.silu(h)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1).view(b, t, -1)
        media_feature = self.temporal(pooled)
        if self.spec.cross_attention:
            # Each prompt word looks for its object among all locations of all frames (as BLIP's
            # cross-attention does in ImageReward); pooling keeps counts, attention keeps binding.
            places = h.flatten(2).transpose(1, 2).reshape(b, -1, h.shape[1])  # (B, T*h*w, C)
            found, _ = self.cross(tokens, places, places, need_weights=False)
            media_feature = media_feature + self.cross_out(masked_mean(found, mask))
        return media_feature, self.text_out(text)

    def describe(self) -> dict:
        return {"kind": self.kind, "spec": asdict(self.spec), "vocabulary": self.vocabulary}


class ClipBackbone(nn.Module):
    """A ``transformers`` CLIP model as backbone; per-frame image embeddings, temporal pooling.

    ``freeze_vision`` / ``freeze_text`` stop gradients into the towers (and their projections);
    CLIP's ``logit_scale`` is always frozen since the heads, not a cosine, make the score."""

    kind = "clip"

    def __init__(
        self, clip, tokenizer, *, feature_dim: int = 64, freeze_vision: bool = True, freeze_text: bool = False
    ) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.freeze_vision, self.freeze_text = freeze_vision, freeze_text
        self.clip.logit_scale.requires_grad_(False)
        for module in (clip.vision_model, clip.visual_projection):
            module.requires_grad_(not freeze_vision)
        for module in (clip.text_model, clip.text_projection):
            module.requires_grad_(not freeze_text)
        dim = clip.config.projection_dim
        self.temporal = TemporalPool(dim, feature_dim)
        self.text_out = nn.Linear(dim, feature_dim)
        self.feature_dim = feature_dim
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs) -> ClipBackbone:
        """CLIP weights and tokenizer from a local directory (a Hub name works where online)."""
        from transformers import AutoTokenizer, CLIPModel

        clip = CLIPModel.from_pretrained(str(path))
        # from_pretrained may leave tensors memory-mapped at arbitrary file offsets; BLAS kernels
        # round differently on unaligned buffers, so a saved and reloaded model would not score
        # bit-identically. Fresh (aligned) copies make scores independent of where weights came from.
        for tensor in [*clip.parameters(), *clip.buffers()]:
            tensor.data = tensor.data.clone()
        return cls(clip, AutoTokenizer.from_pretrained(str(path)), **kwargs)

    def forward(self, media: torch.Tensor, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, h, w, _ = media.shape
        size = self.clip.config.vision_config.image_size
        frames = media.permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w)
        if (h, w) != (size, size):
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        pixels = (frames - self.mean) / self.std
        image = self.clip.visual_projection(self.clip.vision_model(pixel_values=pixels).pooler_output)
        max_length = min(self.tokenizer.model_max_length, self.clip.config.text_config.max_position_embeddings)
        enc = encode_prompts(self.tokenizer, list(prompts), max_length=max_length)
        text_out = self.clip.text_model(
            input_ids=enc["input_ids"].to(media.device), attention_mask=enc["attention_mask"].to(media.device)
        )
        text = self.clip.text_projection(text_out.pooler_output)
        return self.temporal(image.view(b, t, -1)), self.text_out(text)

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "clip_config": self.clip.config.to_dict(),
            "feature_dim": self.feature_dim,
            "freeze_vision": self.freeze_vision,
            "freeze_text": self.freeze_text,
        }


class RewardModel(nn.Module):
    """Backbone + shared trunk + one linear head per criterion (``overall`` first).

    ``forward(media, prompts)`` returns ``{head: (B,) scores}``. Scores are Bradley-Terry logits:
    only differences mean anything (``P(a preferred to b) = sigmoid(r_a - r_b)``)."""

    def __init__(self, backbone: nn.Module, criteria: Sequence[str] = (), hidden: int = 64) -> None:
        super().__init__()
        names = (OVERALL, *criteria)
        if len(set(names)) != len(names) or any(not n or not n.isidentifier() for n in names):
            raise ValueError(f"criteria must be distinct identifiers other than {OVERALL!r}, got {tuple(criteria)}")
        self.backbone = backbone
        self.criteria = tuple(criteria)
        self.hidden = hidden
        dim = backbone.feature_dim
        self.trunk = nn.Sequential(nn.Linear(3 * dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU())
        # No bias: a BT loss sees only score differences, so a bias would get no gradient at all.
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, 1, bias=False) for name in names})

    @property
    def head_names(self) -> tuple[str, ...]:
        return (OVERALL, *self.criteria)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(self, media, prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        x = media_tensor(media, self.device)
        if x.shape[0] != len(prompts):
            raise ValueError(f"{x.shape[0]} media but {len(prompts)} prompts")
        m, t = self.backbone(x, prompts)
        h = self.trunk(torch.cat([m, t, m * t], dim=1))
        return {name: head(h).squeeze(-1) for name, head in self.heads.items()}

    @torch.no_grad()
    def score(self, media, prompts: Sequence[str], *, criterion: str = OVERALL, batch_size: int = 64) -> np.ndarray:
        """Scores of one head as float64, in eval mode and batches (for rewards and evaluation)."""
        if criterion not in self.heads:
            raise ValueError(f"unknown criterion {criterion!r}; this model has {self.head_names}")
        was_training = self.training
        self.eval()
        try:
            out = [
                self(media[i : i + batch_size], prompts[i : i + batch_size])[criterion].double().cpu()
                for i in range(0, len(prompts), batch_size)
            ]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy() if out else np.zeros(0)


def save_reward_model(model: RewardModel, directory: str | Path) -> Path:
    """Write ``model.safetensors`` (every tensor) and ``reward_model.json`` (what rebuilds it)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "format": FORMAT,
        "version": 1,
        "criteria": list(model.criteria),
        "hidden": model.hidden,
        "backbone": model.backbone.describe(),
    }
    if isinstance(model.backbone, ClipBackbone):
        model.backbone.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
    save_model(model, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return directory


def load_reward_model(directory: str | Path, *, device: str | torch.device = "cpu") -> RewardModel:
    """Rebuild a model written by :func:`save_reward_model` (safetensors only: no pickled code)."""
    directory = Path(directory)
    record = json.loads((directory / CONFIG_FILE).read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{directory} does not hold a reward model (format {record.get('format')!r})")
    desc = record["backbone"]
    if desc["kind"] == ShapesBackbone.kind:
        spec = ShapesBackboneSpec(**{**desc["spec"], "channels": tuple(desc["spec"]["channels"])})
        backbone = ShapesBackbone(desc["vocabulary"], spec)
    elif desc["kind"] == ClipBackbone.kind:
        from transformers import AutoTokenizer, CLIPConfig, CLIPModel

        clip = CLIPModel(CLIPConfig.from_dict(desc["clip_config"]))
        tokenizer = AutoTokenizer.from_pretrained(str(directory / TOKENIZER_DIR))
        backbone = ClipBackbone(
            clip,
            tokenizer,
            feature_dim=desc["feature_dim"],
            freeze_vision=desc["freeze_vision"],
            freeze_text=desc["freeze_text"],
        )
    else:
        raise ValueError(f"unknown backbone kind {desc['kind']!r}")
    model = RewardModel(backbone, record["criteria"], hidden=record["hidden"])
    load_model(model, str(directory / WEIGHTS_FILE), device=str(device))
    return model.to(device).eval()
