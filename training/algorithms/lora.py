"""LoRA adapters on any denoiser (UNet2D, UNet3D, SD3 transformer) through peft, in place.

diffusers' ``PeftAdapterMixin`` is not on every model class (``UNet3DConditionModel`` lacks it),
so this module talks to peft directly: ``inject_adapter_in_model`` keeps the module's type and
call signature, and the adapter is saved in peft's own layout (``adapter_config.json`` +
``adapter_model.safetensors``). The frozen base weights are the reference policy: inside
:func:`adapter_disabled` the model computes exactly the base output.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file

ADAPTER_NAME = "default"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
# Attention projections of diffusers' Attention blocks (UNets and the SD3 joint blocks).
DEFAULT_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def _tuner_layers(model: torch.nn.Module) -> list[BaseTunerLayer]:
    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def has_adapter(model: torch.nn.Module) -> bool:
    return bool(_tuner_layers(model))


def add_lora(
    model: torch.nn.Module,
    *,
    rank: int = 4,
    alpha: float | None = None,
    target_modules: Sequence[str] = DEFAULT_TARGETS,
    init: str | bool = "gaussian",
) -> LoraConfig:
    """Inject a trainable LoRA adapter; freezes the base weights.

    With ``init="gaussian"`` peft draws A ~ N(0, 1/r) and sets B = 0, so the adapted model equals
    the base at initialisation (``init=False`` gives a random, non-identity B for tests).
    """
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha if alpha is not None else rank,
        target_modules=list(target_modules),
        init_lora_weights=init,
    )
    model.requires_grad_(False)
    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    model.peft_config = {ADAPTER_NAME: config}
    return config


def lora_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The adapter's trainable parameters (``lora_A``/``lora_B`` weights)."""
    return [p for n, p in model.named_parameters() if "lora_" in n]


def save_lora(model: torch.nn.Module, directory: str | Path) -> Path:
    """Write the adapter's config and weights (safetensors) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config: LoraConfig = model.peft_config[ADAPTER_NAME]
    config.save_pretrained(str(directory))
    state = get_peft_model_state_dict(model, adapter_name=ADAPTER_NAME)
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(directory / WEIGHTS_FILE))
    return directory


def load_lora(model: torch.nn.Module, directory: str | Path) -> LoraConfig:
    """Inject the adapter saved in ``directory`` into ``model`` and load its weights."""
    directory = Path(directory)
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(f"no LoRA adapter ({CONFIG_FILE}, {WEIGHTS_FILE}) in {directory}")
    config = LoraConfig.from_pretrained(str(directory))
    model.requires_grad_(False)
    inject_adapter_in_model(config, model, adapter_name=ADAPTER_NAME)
    model.peft_config = {ADAPTER_NAME: config}
    state = load_file(str(directory / WEIGHTS_FILE))
    result = set_peft_model_state_dict(model, state, adapter_name=ADAPTER_NAME)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"adapter in {directory} does not fit this model: unexpected keys {unexpected[:3]}")
    # the layers its own config injected but its file has no weights for would silently stay at init
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if missing:
        raise ValueError(f"adapter in {directory} is incomplete: no weights for {missing[:3]}")
    return config


@contextlib.contextmanager
def adapter_disabled(model: torch.nn.Module) -> Iterator[None]:
    """Run the base model (the reference policy) with every LoRA layer bypassed.

    A no-op when the model has no adapter. Adapters are re-enabled even if the body raises.
    """
    layers = _tuner_layers(model)
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


@contextlib.contextmanager
def adapter_scaled(model: torch.nn.Module, factor: float) -> Iterator[None]:
    """Run the model with every LoRA layer's update multiplied by ``factor`` (0: the base model,
    1: as trained, 2: the adapter applied twice as strongly), through peft's per-layer scaling.

    Used to ask whether an adapter's direction helps beyond its trained size. The scalings are
    restored even if the body raises.
    """
    if not math.isfinite(factor):
        raise ValueError(f"adapter scale must be finite, got {factor}")
    layers = _tuner_layers(model)
    saved = [dict(layer.scaling) for layer in layers]
    try:
        for layer in layers:
            for name in layer.scaling:
                layer.scaling[name] *= factor
        yield
    finally:
        for layer, scaling in zip(layers, saved, strict=True):
            layer.scaling.clear()
            layer.scaling.update(scaling)
