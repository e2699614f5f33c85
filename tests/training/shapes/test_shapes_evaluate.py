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


def test_correct_lists_every_sample_in_prompt_then_seed_order():
    report = evaluate.evaluate(_sampler(lambda i, k: k == 1), "image", samples_per_prompt=K, prompts_per_task=PER_TASK)
    assert report["correct"] == [k == 1 for _ in range(report["prompts"]) for k in range(K)]


def test_paired_change_counts_samples_gained_and_lost_with_the_exact_sign_test():
    def run(correct):
        return evaluate.evaluate(_sampler(correct), "image", samples_per_prompt=K, prompts_per_task=PER_TASK)

    first = run(lambda i, k: k == 0)
    n_prompts = PER_TASK * len(grammar.TASKS)
    more = evaluate.paired_change(first, run(lambda i, k: k < 2))
    assert more == {"samples": n_prompts * K, "gained": n_prompts, "lost": 0, "sign_test_p": 2 / 2**n_prompts}
    # as many gained as lost: the accuracy is unchanged and the sign test sees no change at all
    swapped = evaluate.paired_change(first, run(lambda i, k: k == 1))
    assert (swapped["gained"], swapped["lost"], swapped["sign_test_p"]) == (n_prompts, n_prompts, 1.0)
    # 3 gained, 1 lost: p = 2 * (C(4,0) + C(4,1)) / 2^4 = 0.625
    three_one = evaluate.paired_change(run(lambda i, k: k == 0 and i == 0), run(lambda i, k: k == 0 and i in (1, 2, 3)))
    assert (three_one["gained"], three_one["lost"], three_one["sign_test_p"]) == (3, 1, 0.625)
    assert evaluate.paired_change(first, first) == {
        "samples": n_prompts * K,
        "gained": 0,
        "lost": 0,
        "sign_test_p": 1.0,
    }


def test_paired_change_refuses_evaluations_of_different_samples():
    a = evaluate.evaluate(_sampler(lambda i, k: True), "image", samples_per_prompt=2, prompts_per_task=1)
    b = evaluate.evaluate(_sampler(lambda i, k: True), "image", samples_per_prompt=1, prompts_per_task=2)
    with pytest.raises(ValueError, match="same prompts"):
        evaluate.paired_change(a, b)
