"""What the GRPO, DDPO, noise-block, mixed-precision and DPO tests share: the prompts' data, a
reward the tiny models can move, a fresh policy per test and a snapshot of its adapter."""

import numpy as np
import torch

from tests.training.algorithms.tiny import PROMPTS
from training.algorithms.loading import load_generator
from training.shapes import grammar

DATA = [(p, {"spec": grammar.parse(p).to_dict()}) for p in PROMPTS]


def brightness(media, prompts, metadata):
    """Mean pixel value in [0, 1]: a reward the tiny models can move within a few steps."""
    return np.array([m.astype(np.float64).mean() / 255.0 for m in media])


def fresh(saved_generators, name):
    """A policy of its own per test: training adds an adapter in place."""
    return load_generator(str(saved_generators[name]))


def lora_state(policy) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in policy.denoiser.named_parameters() if "lora_" in n}
