"""Which prompts the RL benchmark trains on: held out from evaluation, or every task equally often."""

from collections import Counter

import pytest

from bench.alignment_rl import prompt_sets
from training.shapes import evaluate, grammar


def test_held_out_image_prompts_exclude_every_evaluation_prompt():
    train, eval_specs, held_out = prompt_sets("image", 4, "held-out")
    all_eval = {s.text for s in evaluate.eval_specs("image")}
    assert not {s.text for s in train} & all_eval
    # single object, two objects and colours have 3, 6 and 12 prompts, all of them evaluated
    assert Counter(s.task for s in train) == {"counting": 48 - 32, "position": 288 - 32, "color_attr": 72 - 32}
    assert held_out == ["counting", "position", "color_attr"]
    assert len(eval_specs) == 3 + 4 * 5


def test_balanced_image_prompts_draw_every_task_equally_often():
    train, _, held_out = prompt_sets("image", 4, "balanced")
    counts = Counter(s.task for s in train)
    assert set(counts) == set(grammar.TASKS)
    assert len(set(counts.values())) == 1  # a uniform draw over the list picks each task with p = 1/6
    all_eval = {s.text for s in evaluate.eval_specs("image")}
    for task in held_out:  # where a task has prompts left, none of its evaluation prompts is trained
        assert not {s.text for s in train if s.task == task} & all_eval
    for task in set(grammar.TASKS) - set(held_out):  # where it has none, all of its prompts are
        assert {s.text for s in train if s.task == task} == {s.text for s in grammar.all_specs(task)}
    # within a task every prompt is equally likely
    per_prompt = Counter(s.text for s in train)
    for task in grammar.TASKS:
        assert len({per_prompt[s.text] for s in train if s.task == task}) == 1


def test_multiview_trains_on_its_evaluation_prompts_and_says_so():
    for mode in ("held-out", "balanced"):
        train, eval_specs, held_out = prompt_sets("multiview", None, mode)
        assert {s.text for s in train} == {s.text for s in eval_specs} and held_out == []


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="train-prompts"):
        prompt_sets("image", 4, "everything")
