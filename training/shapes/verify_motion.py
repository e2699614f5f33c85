"""Verifier for clips: the object in every frame, its shape and colour, its motion and plausibility.

The motion is read from the centre trajectory of the (largest) object:
- left/right/up/down: a net displacement of at least 3 px (scaled) along one axis, never stepping
  back along it, with little drift across it; "down" at roughly constant speed.
- falling: downwards with increasing speed. A quadratic fit y = a + b t + c t^2 gives the
  acceleration, normalised by the net drop: 2 c (T-1)^2 / drop is 2 for a fall from rest and 0 at
  constant speed, so 1 separates them.
- bouncing: goes down to the floor (its lowest row near the bottom edge), then back up, rising less
  than it fell (a bounce loses energy; a clip played backwards would gain it).
Plausibility: the object is there in every frame, keeps its size, and never jumps further than a
real motion of the world can move it in one frame (renders stay under 5 px per frame).
"""

from __future__ import annotations

import numpy as np

from training.shapes.grammar import COLORS, PromptSpec
from training.shapes.verify import Verdict, classify_shapes, detect, scale_of, verdict

MIN_TRAVEL = 3.0  # px at 32x32: less than this net displacement is standing still
MAX_STEP = 8.0  # px per frame: more is a teleport
MAJORITY = 0.75  # share of frames that must show the right shape / colour


def classify_motion(cx: np.ndarray, cy: np.ndarray, bottom: np.ndarray, height: int, scale: float = 1.0) -> str:
    """One of grammar.MOTIONS, "static" or "unknown", from per-frame centres and lowest rows."""
    n = len(cx)
    dx, dy = cx[-1] - cx[0], cy[-1] - cy[0]
    tol = 0.5 * scale  # steps against the direction of travel up to this are rounding
    k = int(np.argmax(cy))
    descent = cy[k] - cy[0]
    rise = cy[k] - cy[k:].min()
    if (
        0 < k < n - 1
        and descent >= 4 * scale
        and 2 * scale <= rise <= 0.9 * descent
        and bottom[k] >= height - 1 - 2 * scale
        and np.all(np.diff(cy[: k + 1]) >= -tol)
        and abs(dx) <= 0.5 * descent
    ):
        return "bouncing"
    travel = MIN_TRAVEL * scale
    if max(abs(dx), abs(dy)) < travel:
        return "static"
    if abs(dx) >= travel and abs(dy) <= 0.35 * abs(dx) and np.all(np.diff(cx) * np.sign(dx) >= -tol):
        return "right" if dx > 0 else "left"
    if abs(dy) >= travel and abs(dx) <= 0.35 * abs(dy) and np.all(np.diff(cy) * np.sign(dy) >= -tol):
        if dy < 0:
            return "up"
        t = np.arange(n, dtype=float)
        c = np.polyfit(t, cy, 2)[0]
        return "falling" if 2 * c * (n - 1) ** 2 / dy >= 1.0 else "down"
    return "unknown"


def verify_video(spec: PromptSpec, clip: np.ndarray) -> Verdict:
    if clip.ndim != 4 or clip.shape[0] < 2:
        raise ValueError(f"a clip is (T, H, W, 3) with T >= 2, got {clip.shape}")
    n, h, w = clip.shape[:3]
    scale = scale_of(h, w)
    obj = spec.objects[0]
    objs = detect(clip)
    shapes = classify_shapes(objs)
    per_frame = [objs.in_frame(k) for k in range(n)]
    present = all(len(p) >= 1 for p in per_frame)
    # The largest object of each frame stands for "the" object where there are several.
    main = [p[np.argmax(objs.area[p])] if len(p) else -1 for p in per_frame]
    right_shape = sum(m >= 0 and shapes[m] == obj.shape for m in main)
    right_colour = sum(m >= 0 and COLORS[objs.color[m]] == obj.color for m in main)
    clauses = {
        "object": all(len(p) == 1 for p in per_frame),
        "shape": right_shape >= MAJORITY * n,
        "color": right_colour >= MAJORITY * n,
        "motion": False,
        "plausible": False,
    }
    motion = "missing"
    if present:
        m = np.array(main)
        cx, cy, area = objs.cx[m], objs.cy[m], objs.area[m].astype(float)
        motion = classify_motion(cx, cy, objs.y1[m], h, scale)
        clauses["motion"] = motion == spec.motion
        steps = np.hypot(np.diff(cx), np.diff(cy))
        clauses["plausible"] = bool(steps.max() <= MAX_STEP * scale and area.max() <= 1.6 * area.min())
    return verdict(clauses, motion=motion, shapes=[shapes[m] if m >= 0 else None for m in main])
