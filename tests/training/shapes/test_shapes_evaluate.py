"""Evaluation of a sampler: accuracy, pass@k and diversity, exact on hand-built samplers."""

import numpy as np
import pytest

from training.shapes import evaluate, grammar, render

K = 4
PER_TASK = 2


def _sampler(correct):
    """A sampler drawing the ground truth where `correct(prompt_index, sample_index)` holds, else a
    black image (which no prompt accepts); the indices come back from evaluate's seed scheme."""

    def generate(prompts, seeds):
        out = []
        for text, seed in zip(prompts, seeds, strict=True):
            i, k = divmod(seed - evaluate.EVAL_SEED, 1000)
            truth = render.render(grammar.parse(text), np.random.default_rng(seed))
            out.append(truth if correct(i, k) else np.zeros_like(truth))
        return out

    return generate


@pytest.mark.parametrize(
    ("correct", "accuracy", "pass_at_k"),
    [
        (lambda i, k: False, 0.0, 0.0),
        (lambda i, k: True, 1.0, 1.0),
        (lambda i, k: k == 0, 1 / K, 1.0),  # one right sample of four for every prompt
        (lambda i, k: i % 2 == 0, 0.5, 0.5),  # every sample of the first prompt of each task, none of the second
        (lambda i, k: i % 2 == 0 and k < 3, 3 / 8, 0.5),
    ],
)
def test_pass_at_k_counts_prompts_with_a_correct_sample(correct, accuracy, pass_at_k):
    report = evaluate.evaluate(_sampler(correct), "image", samples_per_prompt=K, prompts_per_task=PER_TASK)
    assert report["k"] == K and report["prompts"] == PER_TASK * len(grammar.TASKS)
    assert report["overall_accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert report["pass_at_k"] == pytest.approx(pass_at_k, abs=1e-12)
    for row in report["tasks"].values():
        assert row["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        assert row["pass_at_k"] == pytest.approx(pass_at_k, abs=1e-12)
        assert row["samples"] == PER_TASK * K


def test_pass_at_k_is_never_below_accuracy_and_one_sample_makes_them_equal():
    sampler = _sampler(lambda i, k: (i + k) % 3 == 0)
    report = evaluate.evaluate(sampler, "image", samples_per_prompt=1, prompts_per_task=3)
    for row in report["tasks"].values():
        assert row["pass_at_k"] == row["accuracy"]
