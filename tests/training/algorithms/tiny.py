"""Sizes and prompts of the tiny generators the algorithm tests build (not the shipped defaults)."""

from training.algorithms.builders import GeneratorSpec, TextEncoderSpec

_SENTENCE = "a one two three red blue green yellow circle circles square squares triangle left of right and"
WORDS = _SENTENCE.split()
PROMPTS = ["a red circle", "two blue squares"]

_TEXT = TextEncoderSpec(hidden_size=16, layers=1, heads=2, intermediate_size=32, max_length=8)
# Smaller than the shipped defaults so the whole suite runs in well under a minute on 2 cores.
TINY_SPECS = {
    "shapes-image-eps": GeneratorSpec("shapes-image-eps", resolution=16, channels=(16, 32), heads=2, text=_TEXT),
    "shapes-image-flow": GeneratorSpec(
        "shapes-image-flow", resolution=16, heads=2, flow_layers=1, flow_head_dim=8, text=_TEXT
    ),
    "shapes-video": GeneratorSpec("shapes-video", resolution=8, channels=(16, 16), heads=2, frames=3, text=_TEXT),
    "shapes-multiview": GeneratorSpec(
        "shapes-multiview", resolution=8, channels=(16, 16), heads=2, frames=4, text=_TEXT
    ),
}
