"""The prompt grammar: fixed evaluation sets, structured specs that round-trip, texts that parse back."""

import json

import numpy as np
import pytest

from training.shapes import grammar, render, verify
from training.shapes.grammar import ObjectSpec, PromptSpec

ALL_TASKS = (*grammar.TASKS, grammar.VIDEO_TASK, grammar.MULTIVIEW_TASK)


def test_task_types_are_the_contract():
    assert grammar.TASKS == ("single_object", "two_objects", "counting", "colors", "position", "color_attr")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a circle", PromptSpec("single_object", (ObjectSpec("circle"),))),
        ("a circle and a square", PromptSpec("two_objects", (ObjectSpec("circle"), ObjectSpec("square")))),
        ("two red circles", PromptSpec("counting", (ObjectSpec("circle", "red", 2),))),
        ("one yellow triangle", PromptSpec("counting", (ObjectSpec("triangle", "yellow", 1),))),
        ("four blue squares", PromptSpec("counting", (ObjectSpec("square", "blue", 4),))),
        ("a green triangle", PromptSpec("colors", (ObjectSpec("triangle", "green"),))),
        (
            "a blue square left of a yellow triangle",
            PromptSpec(
                "position", (ObjectSpec("square", "blue"), ObjectSpec("triangle", "yellow")), relation="left of"
            ),
        ),
        (
            "a red circle below a green square",
            PromptSpec("position", (ObjectSpec("circle", "red"), ObjectSpec("square", "green")), relation="below"),
        ),
        (
            "a red circle and a blue square",
            PromptSpec("color_attr", (ObjectSpec("circle", "red"), ObjectSpec("square", "blue"))),
        ),
        ("a red circle moving right", PromptSpec("motion", (ObjectSpec("circle", "red"),), motion="right")),
        ("a blue square falling", PromptSpec("motion", (ObjectSpec("square", "blue"),), motion="falling")),
        ("a green circle bouncing", PromptSpec("motion", (ObjectSpec("circle", "green"),), motion="bouncing")),
        ("a red cube", PromptSpec("solid", (ObjectSpec("cube", "red"),))),
        ("a blue pyramid", PromptSpec("solid", (ObjectSpec("pyramid", "blue"),))),
    ],
)
def test_texts_parse_to_their_structure(text, expected):
    assert grammar.parse(text) == expected
    assert expected.text == text


@pytest.mark.parametrize("task", ALL_TASKS)
def test_every_spec_round_trips_through_text_and_json(task):
    for spec in grammar.all_specs(task):
        assert grammar.parse(spec.text) == spec
        data = json.loads(json.dumps(spec.to_dict()))
        assert PromptSpec.from_dict(data) == spec
        assert data["text"] == spec.text and data["task"] == task


@pytest.mark.parametrize(
    "text",
    [
        "two circles",  # counting names a colour
        "a purple circle",
        "a circle and a circle",  # two objects are two different shapes
        "a red circle and a red square",  # colour attribution uses two colours
        "five red circles",
        "a red circle moving sideways",
        "a red cube left of a blue sphere",
        "a circle left of",
        "",
    ],
)
def test_texts_outside_the_grammar_are_refused(text):
    with pytest.raises(ValueError):
        grammar.parse(text)


def test_specs_validate_their_structure():
    with pytest.raises(ValueError):
        PromptSpec("colors", (ObjectSpec("circle"),))  # colours task without a colour
    with pytest.raises(ValueError):
        PromptSpec("motion", (ObjectSpec("circle", "red"),))  # no motion
    with pytest.raises(ValueError):
        PromptSpec("solid", (ObjectSpec("circle", "red"),))  # a flat shape is not a solid
    with pytest.raises(ValueError):
        PromptSpec("counting", (ObjectSpec("circle", "red", 5),))


@pytest.mark.parametrize("task", ALL_TASKS)
def test_eval_prompts_are_fixed_distinct_and_of_the_task(task):
    first, second = grammar.eval_prompts(task), grammar.eval_prompts(task)
    assert first == second
    assert len(first) == min(grammar.EVAL_PER_TASK, len(grammar.all_specs(task)))
    assert len(set(first)) == len(first)
    assert all(spec.task == task for spec in first)


def test_eval_sets_have_the_expected_sizes():
    sizes = {task: len(grammar.eval_prompts(task)) for task in grammar.TASKS}
    # single_object and two_objects have only 3 and 6 distinct prompts with three shapes.
    assert sizes == {
        "single_object": 3,
        "two_objects": 6,
        "counting": 32,
        "colors": 12,
        "position": 32,
        "color_attr": 32,
    }


def test_eval_prompts_for_modalities():
    image = grammar.eval_prompts_for_modality("image")
    assert [s.task for s in image[:6]] == list(grammar.TASKS)  # interleaved: any prefix is balanced
    assert sorted(image, key=lambda s: s.text) == sorted(
        [s for t in grammar.TASKS for s in grammar.eval_prompts(t)], key=lambda s: s.text
    )
    video = grammar.eval_prompts_for_modality("video")
    assert len(video) == 48 and len(set(video)) == 48
    assert {m: sum(s.motion == m for s in video) for m in grammar.MOTIONS} == dict.fromkeys(grammar.MOTIONS, 8)
    assert [s.motion for s in video[:6]] == list(grammar.MOTIONS)
    views = grammar.eval_prompts_for_modality("multiview")
    assert len(views) == 16 and {s.solid for s in views} == set(grammar.SOLIDS)
    assert all(s.modality == "multiview" for s in views)
    with pytest.raises(ValueError):
        grammar.eval_prompts_for_modality("audio")


def test_sample_prompt_is_seeded_and_respects_modality_and_task():
    a = [grammar.sample_prompt(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    images = [grammar.sample_prompt(rng) for _ in range(600)]
    assert {s.task for s in images} == set(grammar.TASKS)
    assert all(grammar.sample_prompt(rng, task="position").task == "position" for _ in range(20))
    assert all(grammar.sample_prompt(rng, modality="video").motion in grammar.MOTIONS for _ in range(20))
    assert all(grammar.sample_prompt(rng, modality="multiview").solid in grammar.SOLIDS for _ in range(20))


def test_vocabulary_covers_every_text():
    vocab = grammar.vocabulary()
    assert vocab == sorted(set(vocab))
    used = {word for task in ALL_TASKS for spec in grammar.all_specs(task) for word in spec.text.split()}
    assert used == set(vocab)


@pytest.mark.parametrize("task", ["two_objects", "color_attr", "position", "counting", "colors"])
def test_meaning_is_equal_exactly_for_rewordings(task):
    # Two prompts mean the same exactly when a render of one satisfies the other.
    specs = grammar.all_specs(task)
    rng = np.random.default_rng(0)
    renders = {s.text: render.render(s, rng) for s in specs}
    for a in specs[:24]:
        for b in specs:
            same = grammar.meaning(a) == grammar.meaning(b)
            assert same == (verify.verify(b, renders[a.text]).score == 1.0), (a.text, b.text)
    assert grammar.meaning(grammar.parse("a red circle left of a blue square")) == grammar.meaning(
        grammar.parse("a blue square right of a red circle")
    )


@pytest.mark.parametrize("task", [*grammar.TASKS, grammar.VIDEO_TASK, grammar.MULTIVIEW_TASK])
def test_neighbours_ask_for_something_else_one_edit_away(task):
    rng = np.random.default_rng(1)
    for spec in grammar.all_specs(task)[::7]:
        near = grammar.neighbours(spec)
        assert near and len({grammar.meaning(n) for n in near}) == len(near)
        for n in near:
            assert grammar.meaning(n) != grammar.meaning(spec)
            assert grammar.parse(n.text) == n
            # A render of the neighbour does not satisfy the prompt: it asks for something else.
            assert verify.verify(spec, render.render(n, rng)).score < 1.0, (spec.text, n.text)
    assert {n.text for n in grammar.neighbours(grammar.parse("a red circle left of a blue square"))} >= {
        "a red circle right of a blue square",
        "a blue circle left of a red square",
        "a red circle",
        "a blue square",
        "a red triangle left of a blue square",
    }
    assert {n.text for n in grammar.neighbours(grammar.parse("two red circles"))} >= {
        "one red circle",
        "three red circles",
    }
