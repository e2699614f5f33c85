"""Ground-truth renders of the shapes world: 32x32 images, short clips and (in render_views) view rings.

Every random choice (sizes, places, speeds) stays inside rules that keep the verifier exact: objects
never touch (a gap of at least 2 px, so 8-connected components stay apart), shapes are at least 7 px
across (small enough shapes lose their distinguishing geometry on a pixel grid), relative positions
have a clear margin, and moving objects stay wholly inside the frame. Colours are flat, with no
anti-aliasing, so every object pixel is exactly a palette colour.
"""

from __future__ import annotations

import numpy as np

from training.shapes.grammar import PromptSpec

SIZE = 32
# Far apart in chromaticity (colour with brightness divided out), so shaded 3D faces classify too.
PALETTE = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 210, 40),
}
BACKGROUND = (0, 0, 0)
MIN_SIDE = 7
GAP = 2
# Relative positions: the centre offset along the named axis is at least this many pixels, and the
# offset across it at most half of that, well inside the verifier's 45-degree cone.
RELATION_MIN_OFFSET = 8.0
# Speeds stay below this many pixels per frame, so the verifier can call bigger jumps teleports.
MAX_SPEED = 5.0


def shape_mask(shape: str, side: int) -> np.ndarray:
    """A side x side boolean mask of a shape, tested at pixel centres."""
    j, i = np.mgrid[0:side, 0:side] + 0.5
    half = side / 2
    if shape == "square":
        return np.ones((side, side), bool)
    if shape == "circle":
        return (i - half) ** 2 + (j - half) ** 2 <= half * half
    if shape == "triangle":
        # Apex up, base on the bottom row: the half-width grows linearly from the top.
        return np.abs(i - half) <= half * j / side + 1e-9
    raise ValueError(f"unknown shape {shape!r}")


def _paint(canvas: np.ndarray, shape: str, color: str, side: int, x: int, y: int) -> None:
    mask = shape_mask(shape, side)
    canvas[y : y + side, x : x + side][mask] = PALETTE[color]


def _random_color(rng: np.random.Generator) -> str:
    return tuple(PALETTE)[int(rng.integers(len(PALETTE)))]


def _place(rng: np.random.Generator, sides: list[int], tries: int = 400, accept=None) -> list[tuple[int, int]] | None:
    """Top-left corners for squares of the given sides, pairwise at least GAP apart; None if no luck.

    `accept(corners)` can reject a layout (relative positions)."""
    for _ in range(tries):
        corners = [(int(rng.integers(1, SIZE - s)), int(rng.integers(1, SIZE - s))) for s in sides]
        ok = all(
            _apart(corners[a], sides[a], corners[b], sides[b])
            for a in range(len(sides))
            for b in range(a + 1, len(sides))
        )
        if ok and (accept is None or accept(corners)):
            return corners
    return None


def _apart(p: tuple[int, int], sp: int, q: tuple[int, int], sq: int) -> bool:
    """Boxes separated by at least GAP background pixels along x or along y."""
    return p[0] + sp + GAP <= q[0] or q[0] + sq + GAP <= p[0] or p[1] + sp + GAP <= q[1] or q[1] + sq + GAP <= p[1]


def relation_holds_with_margin(relation: str, a_centre, b_centre) -> bool:
    dx, dy = b_centre[0] - a_centre[0], b_centre[1] - a_centre[1]
    along, across = {"left of": (dx, dy), "right of": (-dx, dy), "above": (dy, dx), "below": (-dy, dx)}[relation]
    return along >= RELATION_MIN_OFFSET and abs(across) <= 0.5 * along


def render_image(spec: PromptSpec, rng: np.random.Generator) -> np.ndarray:
    """A (32, 32, 3) uint8 image that satisfies `spec` exactly."""
    if spec.modality != "image":
        raise ValueError(f"{spec.text!r} is a {spec.modality} prompt")
    items = []  # (shape, colour) per object, in spec order
    for obj in spec.objects:
        for _ in range(obj.count):
            # Uncoloured prompts ("a circle") get any colour, chosen per object.
            items.append((obj.shape, obj.color or _random_color(rng)))
    return render_items(items, rng, relation=spec.relation)


def render_items(items: list[tuple[str, str]], rng: np.random.Generator, relation: str | None = None) -> np.ndarray:
    """An image of the given (shape, colour) objects, apart; with `relation`, items[0] relation items[1]."""
    accept = None
    if relation:

        def accept(corners):
            centres = [(x + s / 2, y + s / 2) for (x, y), s in zip(corners, sides, strict=True)]
            return relation_holds_with_margin(relation, centres[0], centres[1])

    # Large objects crowd the canvas: fewer objects may be bigger. Shrink until a layout fits.
    top = {1: 14, 2: 11, 3: 10, 4: 9}.get(len(items), 8)
    while True:
        sides = [int(rng.integers(MIN_SIDE, top + 1)) for _ in items]
        corners = _place(rng, sides, accept=accept)
        if corners is not None:
            break
        top = max(MIN_SIDE, top - 1)
    canvas = np.zeros((SIZE, SIZE, 3), np.uint8)
    canvas[:] = BACKGROUND
    for (shape, colour), side, (x, y) in zip(items, sides, corners, strict=True):
        _paint(canvas, shape, colour, side, x, y)
    return canvas


def trajectory(motion: str, side: int, rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames, 2) float top-left corners (x, y) of an object of `side` pixels following `motion`."""
    t = np.arange(frames, dtype=float)
    last = frames - 1
    lo, hi = 1, SIZE - 1 - side  # corner range that keeps the object inside with a 1 px border
    if motion in ("left", "right", "up", "down"):
        # Constant speed, covering 10-18 px; the other coordinate stays put.
        dist = float(rng.uniform(10, min(18.0, hi - lo, MAX_SPEED * last)))
        start = float(rng.uniform(lo, hi - dist))
        other = float(rng.integers(lo, hi + 1))
        path = start + dist * t / last
        if motion in ("left", "up"):
            path = path[::-1]
        xs, ys = (path, np.full(frames, other)) if motion in ("left", "right") else (np.full(frames, other), path)
        return np.stack([xs, ys], axis=1)
    x = np.full(frames, float(rng.integers(lo, hi + 1)))
    if motion == "falling":
        # From rest under constant gravity; it never reaches the floor within the clip.
        y0 = float(rng.uniform(lo, lo + 3))
        dist = float(rng.uniform(12, min(18.0, hi - 1 - y0, 0.5 * MAX_SPEED * last)))
        return np.stack([x, y0 + dist * (t / last) ** 2], axis=1)
    if motion == "bouncing":
        return np.stack([x, _bounce(side, rng, frames)], axis=1)
    raise ValueError(f"unknown motion {motion!r}")


def _bounce(side: int, rng: np.random.Generator, frames: int) -> np.ndarray:
    """Dropped from rest, hits the floor at an integer frame, rebounds with restitution e < 1."""
    floor = float(SIZE - side)  # corner y when the object's bottom row is the frame's last row
    impact = int(rng.integers(max(3, round(frames / 3)), max(3, round(frames / 2)) + 1))
    # The impact speed 2*drop/impact stays under MAX_SPEED; drop at least 9 px so it is plainly seen.
    drop = float(rng.uniform(9, max(9.0, min(16.0, 0.5 * MAX_SPEED * impact, floor - 1))))
    g = 2 * drop / impact**2
    e = float(rng.uniform(0.7, 0.85))
    ys = np.empty(frames)
    v = 0.0
    t0, y0 = 0.0, floor - drop
    for k in range(frames):
        tau = k - t0
        y = y0 + v * tau + 0.5 * g * tau * tau
        if y >= floor and k > 0:
            # Solve the floor contact inside this segment, then start the rebound from there.
            disc = v * v + 2 * g * (floor - y0)
            tc = (-v + np.sqrt(disc)) / g
            vin = v + g * tc
            t0, y0, v = t0 + tc, floor, -e * vin
            tau = k - t0
            y = min(floor, y0 + v * tau + 0.5 * g * tau * tau)
        ys[k] = y
    return ys


def render_video(spec: PromptSpec, rng: np.random.Generator, frames: int = 12) -> np.ndarray:
    """A (frames, 32, 32, 3) uint8 clip of one object following the spec's motion."""
    if spec.modality != "video":
        raise ValueError(f"{spec.text!r} is a {spec.modality} prompt")
    if frames < 8:
        raise ValueError("a clip needs at least 8 frames to show a motion")
    obj = spec.objects[0]
    return render_motion(obj.shape, obj.color, spec.motion, rng, frames)


def render_motion(shape: str, color: str, motion: str, rng: np.random.Generator, frames: int = 12) -> np.ndarray:
    side = int(rng.integers(MIN_SIDE, 10))
    corners = np.rint(trajectory(motion, side, rng, frames)).astype(int)
    clip = np.zeros((frames, SIZE, SIZE, 3), np.uint8)
    clip[:] = BACKGROUND
    for k, (x, y) in enumerate(corners):
        _paint(clip[k], shape, color, side, int(x), int(y))
    return clip


def render(spec: PromptSpec, rng: np.random.Generator, modality: str | None = None) -> np.ndarray:
    """Ground truth in the spec's modality (image, video or multi-view)."""
    modality = modality or spec.modality
    if modality != spec.modality:
        raise ValueError(f"{spec.text!r} is a {spec.modality} prompt, not {modality}")
    if modality == "image":
        return render_image(spec, rng)
    if modality == "video":
        return render_video(spec, rng)
    from training.shapes.render_views import render_views

    return render_views(spec, rng)


def render_views(spec: PromptSpec, rng: np.random.Generator, views: int = 6) -> np.ndarray:
    """A ring of views of the spec's solid (see render_views.py)."""
    from training.shapes import render_views as _views

    return _views.render_views(spec, rng, views=views)
