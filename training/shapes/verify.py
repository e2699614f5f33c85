"""Exact verifier of the shapes world, from pixels: per-clause results and a score in [0, 1].

Pipeline: classify each pixel's colour (background, a palette colour, or unclassifiable), label
8-connected components of equal colour, drop dust, and describe each object by its colour, shape
(from geometry), centre and box. Images are judged here; video clips in verify_motion.py and view
rings in verify_views.py. Nothing assumes 32x32: pixel thresholds scale with min(H, W) / 32.

Score: the fraction of satisfied clauses, in the manner of Flow-GRPO's GenEval reward. A clause about
an object's attributes (colour, position) is only satisfied when the object itself was found in the
right number, so a missing or miscounted object never earns credit for its attributes, and only a
render that satisfies every clause scores 1.0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.shapes.grammar import COLORS, PromptSpec
from training.shapes.render import PALETTE

BRIGHTNESS_MIN = 64  # darker pixels are background (the background is black)
CHROMA_MAX_DISTANCE = 0.3  # beyond this from every palette chromaticity a pixel is unclassifiable
DUST_AREA = 6  # components smaller than this (at 32x32) are noise, not objects
_CHROMA = np.array([PALETTE[c] for c in COLORS], float)
_CHROMA /= _CHROMA.max(axis=1, keepdims=True)
_CHROMA_F32 = _CHROMA.astype(np.float32)
_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


@dataclass(frozen=True)
class Verdict:
    score: float
    clauses: dict[str, bool]
    details: dict = field(default_factory=dict, compare=False)

    @property
    def correct(self) -> bool:
        return all(self.clauses.values())


def verdict(clauses: dict[str, bool], **details) -> Verdict:
    clauses = {k: bool(v) for k, v in clauses.items()}
    return Verdict(sum(clauses.values()) / len(clauses), clauses, details)


def as_uint8(media) -> np.ndarray:
    """uint8 RGB; floats are taken as [0, 1] when they fit there, else as [0, 255]."""
    arr = np.asarray(media)
    if arr.dtype == np.uint8:
        return arr
    arr = arr.astype(float)
    if arr.size and np.nanmax(arr) <= 1.0 + 1e-6:
        arr = arr * 255
    return np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)


def classify_colors(media: np.ndarray) -> np.ndarray:
    """Per pixel: -1 background, -2 unclassifiable, else the index into grammar.COLORS.

    Colours are compared by chromaticity (RGB over its largest channel), so a shaded face of a
    solid keeps the class of its flat colour; dark pixels are background whatever their hue."""
    rgb = media[..., :3]
    bright = np.maximum(np.maximum(rgb[..., 0], rgb[..., 1]), rgb[..., 2])  # faster than max(axis=-1)
    out = np.full(bright.shape, -1, dtype=np.int64)
    lit = bright >= BRIGHTNESS_MIN
    # Only the lit pixels (a small share of a frame) need the colour distances.
    px = rgb[lit].astype(np.float32) / bright[lit, None].astype(np.float32)
    dist2 = ((px[:, None, :] - _CHROMA_F32[None]) ** 2).sum(axis=-1)
    nearest = dist2.argmin(axis=-1)
    ok = dist2[np.arange(len(px)), nearest] <= CHROMA_MAX_DISTANCE**2
    out[lit] = np.where(ok, nearest, -2)
    return out


def label(cls: np.ndarray) -> np.ndarray:
    """8-connected labels of equal-class pixels in a (N, H, W) class map (class < 0 is unlabelled).

    Each pixel's label is the smallest flat index in its component (unlabelled: N*H*W). Labels
    spread by taking the minimum over same-class neighbours, with pointer jumping (a label is the
    index of a pixel of the same component, so following it is a shortcut) to cut the rounds."""
    n_img, h, w = cls.shape
    big = cls.size
    fg = cls >= 0
    padded_cls = np.pad(cls, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
    same = [(padded_cls[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] == cls) & fg for dy, dx in _OFFSETS]
    # One padded buffer whose border stays `big`; its interior is the current labelling.
    padded = np.full((n_img, h + 2, w + 2), big, dtype=np.int64)
    lab = padded[:, 1:-1, 1:-1]
    lab[fg] = np.flatnonzero(fg)
    idx = np.flatnonzero(fg)
    while True:
        before = lab.copy()
        for (dy, dx), ok in zip(_OFFSETS, same, strict=True):
            np.minimum(lab, padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w], out=lab, where=ok)
        flat = lab.reshape(-1)
        for _ in range(3):
            flat[idx] = flat[flat[idx]]
        lab[...] = flat.reshape(lab.shape)
        if np.array_equal(before, lab):
            return lab.copy()


@dataclass(frozen=True)
class Objects:
    """Detected objects (one row each) of a stack of N frames, views or a single image."""

    frame: np.ndarray  # which image of the stack
    color: np.ndarray  # index into grammar.COLORS
    area: np.ndarray
    cx: np.ndarray  # centre of mass, pixels
    cy: np.ndarray
    x0: np.ndarray  # inclusive bounding box
    x1: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    lower: np.ndarray  # share of the pixels below the box's middle row (a triangle's weight sits low)
    labels: np.ndarray  # (N, H, W) component id per pixel, -1 where none
    n_frames: int

    def __len__(self) -> int:
        return len(self.area)

    def in_frame(self, k: int) -> np.ndarray:
        return np.flatnonzero(self.frame == k)


def detect(stack: np.ndarray) -> Objects:
    """Objects in a (N, H, W, 3) uint8 stack."""
    n, h, w = stack.shape[:3]
    cls = classify_colors(stack)
    lab = label(cls)
    fg = lab.reshape(-1) < lab.size
    roots, comp = np.unique(lab.reshape(-1)[fg], return_inverse=True)
    pix = np.flatnonzero(fg)
    ys, xs = (pix // w) % h, pix % w
    area = np.bincount(comp, minlength=len(roots))
    keep = area >= max(3, round(DUST_AREA * scale_of(h, w) ** 2))
    x0 = np.full(len(roots), w)
    y0 = np.full(len(roots), h)
    x1 = np.full(len(roots), -1)
    y1 = np.full(len(roots), -1)
    np.minimum.at(x0, comp, xs)
    np.minimum.at(y0, comp, ys)
    np.maximum.at(x1, comp, xs)
    np.maximum.at(y1, comp, ys)
    mid = (y0 + y1) / 2
    below = np.bincount(comp, weights=ys > mid[comp], minlength=len(roots))
    above = np.bincount(comp, weights=ys < mid[comp], minlength=len(roots))
    # Renumber the kept components 0..K-1 so labels index the rows directly.
    new_id = np.full(len(roots), -1)
    new_id[keep] = np.arange(int(keep.sum()))
    labels = np.full(lab.size, -1)
    labels[pix] = new_id[comp]
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = np.where(below + above > 0, below / (below + above), 0.5)
    return Objects(
        frame=(roots // (h * w))[keep],
        color=cls.reshape(-1)[roots][keep],
        area=area[keep],
        cx=(np.bincount(comp, weights=xs + 0.5) / area)[keep],
        cy=(np.bincount(comp, weights=ys + 0.5) / area)[keep],
        x0=x0[keep],
        x1=x1[keep],
        y0=y0[keep],
        y1=y1[keep],
        lower=lower[keep],
        labels=labels.reshape(n, h, w),
        n_frames=n,
    )


def scale_of(h: int, w: int) -> float:
    return min(h, w) / 32


SHAPES = ("circle", "square", "triangle")
# An object is the shape whose template it overlaps most, if that overlap (intersection over union)
# reaches this; ground truth matches its own template exactly (1.0), and the nearest other template
# of a rendered shape reaches at most 0.86 (a circle against a square at 9 px).
TEMPLATE_IOU_MIN = 0.75


def shape_template(shape: str, h: int, w: int) -> np.ndarray:
    """An (h, w) mask of `shape` filling that box, tested at pixel centres: the renderer's
    `shape_mask` generalised to a box that need not be square (equal to it when h == w)."""
    j, i = np.mgrid[0:h, 0:w] + 0.5
    a, b = w / 2, h / 2
    if shape == "square":
        return np.ones((h, w), bool)
    if shape == "circle":
        return ((i - a) * b) ** 2 + ((j - b) * a) ** 2 <= (a * b) ** 2
    if shape == "triangle":
        # Apex up, base on the bottom row.
        return np.abs(i - a) * h <= a * j + 1e-9
    raise ValueError(f"unknown shape {shape!r}")


def classify_shapes(objs: Objects) -> np.ndarray:
    """Flat shape name per object: "circle", "square", "triangle" or "unknown".

    Each object is compared with the three shapes drawn in its bounding box, by intersection over
    union of the pixels, and takes the best match when it is at least TEMPLATE_IOU_MIN and the box
    is not too elongated. Whole-shape overlap, unlike a single fill ratio, is not tipped over by a
    few stray edge pixels: a square missing its four corner pixels is still closer to a square."""
    out = np.full(len(objs), "unknown", dtype=object)
    for k in range(len(objs)):
        h = int(objs.y1[k] - objs.y0[k] + 1)
        w = int(objs.x1[k] - objs.x0[k] + 1)
        if not 0.7 <= w / h <= 1.43:
            continue
        box = objs.labels[objs.frame[k], objs.y0[k] : objs.y1[k] + 1, objs.x0[k] : objs.x1[k] + 1] == k
        area = int(box.sum())
        ious = []
        for shape in SHAPES:
            t = shape_template(shape, h, w)
            inter = int((box & t).sum())
            ious.append(inter / (area + int(t.sum()) - inter))
        best = int(np.argmax(ious))
        if ious[best] >= TEMPLATE_IOU_MIN:
            out[k] = SHAPES[best]
    return out


def relation_holds(relation: str, a: tuple[float, float], b: tuple[float, float], scale: float = 1.0) -> bool:
    """a <relation> b from centres (x, y down): the offset along the named axis is at least 3 px
    (scaled) and at least as large as the offset across it (a 45-degree cone)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    along, across = {"left of": (dx, dy), "right of": (-dx, dy), "above": (dy, dx), "below": (-dy, dx)}[relation]
    return along >= 3 * scale and abs(across) <= along


def verify_image(spec: PromptSpec, image: np.ndarray) -> Verdict:
    image = as_uint8(image)
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 3:
        raise ValueError(f"an image is (H, W, 3), got {image.shape}")
    objs = detect(image[None])
    shapes = classify_shapes(objs)
    colours = np.array(COLORS, dtype=object)[objs.color] if len(objs) else np.array([], dtype=object)
    found = [np.flatnonzero(shapes == g.shape) for g in spec.objects]
    clauses = {
        "object": all(len(f) >= 1 for f in found),
        # Exactly the requested numbers, and nothing else in the picture.
        "count": all(len(f) == g.count for f, g in zip(found, spec.objects, strict=True))
        and len(objs) == sum(g.count for g in spec.objects),
    }
    if any(g.color for g in spec.objects):
        clauses["color"] = all(
            len(f) >= 1 and all(colours[i] == g.color for i in f) for f, g in zip(found, spec.objects, strict=True)
        )
    if spec.relation:
        a, b = found
        clauses["position"] = (
            len(a) == 1
            and len(b) == 1
            and relation_holds(
                spec.relation,
                (objs.cx[a[0]], objs.cy[a[0]]),
                (objs.cx[b[0]], objs.cy[b[0]]),
                scale_of(*image.shape[:2]),
            )
        )
    return verdict(clauses, shapes=list(shapes), colors=list(colours), centres=list(zip(objs.cx, objs.cy, strict=True)))


def verify(spec: PromptSpec, media) -> Verdict:
    """Judge `media` against `spec`: an image (H, W, 3), a clip (T, H, W, 3) for a motion prompt or
    a view ring (V, H, W, 3) for a solid prompt; uint8, or floats in [0, 1]."""
    if spec.modality == "image":
        return verify_image(spec, media)
    if spec.modality == "video":
        from training.shapes.verify_motion import verify_video

        return verify_video(spec, as_uint8(media))
    from training.shapes.verify_views import verify_views

    return verify_views(spec, as_uint8(media))
