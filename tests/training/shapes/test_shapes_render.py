"""Ground-truth renders: shapes, determinism, flat palette colours, layout rules and motion physics."""

import numpy as np
import pytest

from training.shapes import grammar, render, verify
from training.shapes.grammar import ObjectSpec, PromptSpec
from training.shapes.render_views import render_views

PALETTE = {tuple(c) for c in render.PALETTE.values()} | {render.BACKGROUND}


def _spec(text):
    return grammar.parse(text)


def test_images_are_32x32_rgb_flat_palette_and_seeded():
    rng = np.random.default_rng(0)
    for _ in range(200):
        spec = grammar.sample_prompt(rng)
        seed = int(rng.integers(1 << 30))
        image = render.render_image(spec, np.random.default_rng(seed))
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert {tuple(p) for p in image.reshape(-1, 3)} <= PALETTE
        assert np.array_equal(image, render.render(spec, np.random.default_rng(seed), "image"))


def test_objects_keep_a_gap_so_components_stay_apart():
    rng = np.random.default_rng(1)
    for _ in range(100):
        image = render.render_image(_spec("four red squares"), rng)
        objs = verify.detect(image[None])
        assert len(objs) == 4  # same colour, yet four components: they never touch
        assert np.all(objs.area == (objs.x1 - objs.x0 + 1) ** 2)


def test_relative_positions_have_a_clear_margin():
    rng = np.random.default_rng(2)
    for relation, (sx, sy) in {"left of": (-1, 0), "right of": (1, 0), "above": (0, -1), "below": (0, 1)}.items():
        spec = _spec(f"a red circle {relation} a blue square")
        for _ in range(30):
            objs = verify.detect(render.render_image(spec, rng)[None])
            red, blue = np.argmin(objs.color), np.argmax(objs.color)  # red is colour 0, blue 2
            dx, dy = objs.cx[red] - objs.cx[blue], objs.cy[red] - objs.cy[blue]
            along = dx * sx + dy * sy
            assert along >= render.RELATION_MIN_OFFSET - 1
            assert abs(dx * sy + dy * sx) <= 0.5 * along + 1


@pytest.mark.parametrize("frames", [8, 12, 16])
def test_videos_have_the_requested_frames(frames):
    clip = render.render_video(_spec("a red circle moving right"), np.random.default_rng(0), frames=frames)
    assert clip.shape == (frames, 32, 32, 3) and clip.dtype == np.uint8
    with pytest.raises(ValueError):
        render.render_video(_spec("a red circle moving right"), np.random.default_rng(0), frames=4)


def _centres(clip):
    objs = verify.detect(clip)
    assert len(objs) == len(clip)  # one object in every frame
    return objs.cx, objs.cy, objs.y1


def test_falling_accelerates_and_bouncing_reverses_at_the_floor():
    rng = np.random.default_rng(3)
    for _ in range(50):
        _, cy, _ = _centres(render.render_video(_spec("a red square falling"), rng))
        steps = np.diff(cy)
        assert np.all(steps >= 0) and steps[-3:].sum() > 2 * steps[:3].sum()
        _, cy, bottom = _centres(render.render_video(_spec("a blue circle bouncing"), rng))
        k = int(np.argmax(cy))
        assert 0 < k < len(cy) - 1 and bottom[k] == 31  # touches the floor
        assert cy[k] - cy[k:].min() >= 2 and cy[k] - cy[0] >= 8


def test_motions_stay_inside_the_frame_and_under_the_speed_limit():
    rng = np.random.default_rng(4)
    for motion in grammar.MOTIONS:
        for _ in range(40):
            cx, cy, _ = _centres(
                render.render_video(PromptSpec("motion", (ObjectSpec("triangle", "green"),), motion=motion), rng)
            )
            assert np.hypot(np.diff(cx), np.diff(cy)).max() <= render.MAX_SPEED + 1


@pytest.mark.parametrize("views", [4, 6, 8])
def test_view_rings_show_the_solid_in_its_hue(views):
    spec = _spec("a yellow cylinder")
    ring = render_views(spec, np.random.default_rng(0), views=views)
    assert ring.shape == (views, 32, 32, 3) and ring.dtype == np.uint8
    assert np.array_equal(ring, render.render_views(spec, np.random.default_rng(0), views=views))
    cls = verify.classify_colors(ring)
    assert set(np.unique(cls)) == {-1, grammar.COLORS.index("yellow")}  # shading keeps the hue
    lit = ring[cls >= 0].astype(float)
    assert lit.max(axis=1).min() < 0.8 * lit.max(axis=1).max()  # and it is visibly shaded


def test_a_sphere_looks_the_same_from_every_side():
    ring = render_views(_spec("a red sphere"), np.random.default_rng(5), views=6)
    areas = (ring.max(axis=-1) > 0).sum(axis=(1, 2))
    assert areas.max() - areas.min() <= 0.05 * areas.max()


def test_a_cube_changes_width_around_the_ring():
    ring = render_views(_spec("a red cube"), np.random.default_rng(6), views=8, yaw=0.0)
    widths = [np.ptp(np.nonzero(v.max(axis=-1))[1]) + 1 for v in ring]
    assert max(widths) >= 1.25 * min(widths)  # face-on vs corner-on


def test_render_dispatch_refuses_the_wrong_modality():
    rng = np.random.default_rng(0)
    assert render.render(_spec("a red cube"), rng).shape == (6, 32, 32, 3)
    assert render.render(_spec("a red circle falling"), rng).shape == (12, 32, 32, 3)
    with pytest.raises(ValueError):
        render.render(_spec("a red cube"), rng, "image")
    with pytest.raises(ValueError):
        render.render_image(_spec("a red circle falling"), rng)
