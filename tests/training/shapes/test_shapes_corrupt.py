"""Corrupted renders: seeded, shaped like the ground truth, and only of kinds that are real mistakes."""

import numpy as np
import pytest

from training.shapes import corrupt, grammar, render


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("two red circles", "count"),
        ("a circle", "extra"),
        ("a green triangle", "color"),
        ("a blue square left of a yellow triangle", "position"),
        ("a red circle and a blue square", "missing"),
        ("a circle and a square", "shape"),
        ("a red circle moving right", "teleport"),
        ("a blue square falling", "reverse"),
        ("a green circle bouncing", "static"),
        ("a red cube", "view_solid"),
        ("a yellow sphere", "view_color"),
    ],
)
def test_corruptions_are_seeded_and_shaped_like_ground_truth(text, kind):
    spec = grammar.parse(text)
    a, what = corrupt.corrupt(spec, np.random.default_rng(3), kind=kind)
    b, what_again = corrupt.corrupt(spec, np.random.default_rng(3), kind=kind)
    assert np.array_equal(a, b) and what == what_again and what.startswith(kind)
    truth = render.render(spec, np.random.default_rng(3))
    assert a.shape == truth.shape and a.dtype == np.uint8
    assert not np.array_equal(a, truth)


def test_only_real_mistakes_are_offered():
    # "a circle" names no colour, so recolouring it would still be right.
    assert "color" not in corrupt.kinds_for(grammar.parse("a circle"))
    assert "position" not in corrupt.kinds_for(grammar.parse("a red circle and a blue square"))
    assert "position" in corrupt.kinds_for(grammar.parse("a red circle above a blue square"))
    with pytest.raises(ValueError):
        corrupt.corrupt(grammar.parse("a circle"), np.random.default_rng(0), kind="color")
    with pytest.raises(ValueError):
        corrupt.corrupt(grammar.parse("a red cube"), np.random.default_rng(0), "video")


def test_teleport_moves_one_frame_far():
    spec = grammar.parse("a red square moving down")
    clip, _ = corrupt.corrupt(spec, np.random.default_rng(0), kind="teleport")
    truth = render.render_video(spec, np.random.default_rng(0))
    changed = [k for k in range(len(clip)) if not np.array_equal(clip[k], truth[k])]
    assert len(changed) == 1
    k = changed[0]
    at = [np.argwhere(frame.max(axis=-1) > 0).mean(axis=0) for frame in (truth[k], clip[k])]
    assert np.hypot(*(at[1] - at[0])) >= corrupt.TELEPORT_MIN
