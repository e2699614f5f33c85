"""Tiny generators shared by the algorithm tests: built from configs, saved once per session."""

import pytest

from tests.training.algorithms.tiny import TINY_SPECS, WORDS
from training.algorithms.builders import build_pipeline, save_pipeline
from training.algorithms.loading import load_generator


@pytest.fixture(scope="session")
def saved_generators(tmp_path_factory) -> dict:
    """Built-in name -> directory of a freshly initialised tiny pipeline saved with save_pretrained."""
    root = tmp_path_factory.mktemp("generators")
    out = {}
    for name, spec in TINY_SPECS.items():
        out[name] = save_pipeline(build_pipeline(name, WORDS, spec=spec, seed=0), root / name)
    return out


@pytest.fixture(scope="session")
def policies(saved_generators) -> dict:
    return {name: load_generator(str(path)) for name, path in saved_generators.items()}
