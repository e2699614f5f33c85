"""Shared by the training tests (pure ML code, shapes-world commands, the shipped weights)."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    # One thread: the small models gain nothing from two, and when anything else runs on the two
    # cores (a Celery worker under test, a second job) two OpenMP threads each wait on the other
    # and a step gets tens of times slower.
    torch.set_num_threads(1)
