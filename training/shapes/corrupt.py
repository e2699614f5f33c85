"""Deliberately wrong renders, to show that the verifier catches mistakes (and to train against them).

`corrupt(spec, rng, modality)` returns (media, what): a render that differs from the spec in one
stated way. Each kind is offered only where it changes something the prompt asks for: recolouring
"a circle" (no colour named) would still be a correct render, so it is never chosen.
"""

from __future__ import annotations

import copy

import numpy as np

from training.shapes import render as r
from training.shapes.grammar import COLORS, MOTIONS, RELATIONS, SHAPES, SOLIDS, PromptSpec
from training.shapes.render_views import render_views

IMAGE_KINDS = ("count", "color", "position", "shape", "missing", "extra")
VIDEO_KINDS = ("motion", "static", "teleport", "reverse", "vanish", "color", "shape")
VIEW_KINDS = ("solid", "color", "view_color", "view_solid", "view_missing")
_OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
TELEPORT_MIN = 12  # px: a jump well beyond the verifier's per-frame limit (8 px)


def _other(options, current, rng: np.random.Generator, exclude=()):
    choices = [o for o in options if o != current and o not in exclude]
    return choices[int(rng.integers(len(choices)))]


def kinds_for(spec: PromptSpec) -> tuple[str, ...]:
    """The corruption kinds that are mistakes for this spec."""
    if spec.modality == "video":
        return VIDEO_KINDS
    if spec.modality == "multiview":
        return VIEW_KINDS
    kinds = ["count" if spec.task == "counting" else "extra", "shape", "missing"]
    if any(o.color for o in spec.objects):
        kinds.append("color")
    if spec.relation:
        kinds.append("position")
    return tuple(kinds)


def corrupt(spec: PromptSpec, rng: np.random.Generator, modality: str | None = None, kind: str | None = None):
    """(media, what): a wrong render of `spec` of the given (or a random applicable) kind."""
    modality = modality or spec.modality
    if modality != spec.modality:
        raise ValueError(f"{spec.text!r} is a {spec.modality} prompt, not {modality}")
    kinds = kinds_for(spec)
    kind = kind or kinds[int(rng.integers(len(kinds)))]
    if kind not in kinds:
        raise ValueError(f"{kind!r} is not a mistake for {spec.text!r}")
    if modality == "image":
        return _corrupt_image(spec, rng, kind)
    if modality == "video":
        return _corrupt_video(spec, rng, kind)
    return _corrupt_views(spec, rng, kind)


def _items(spec: PromptSpec, rng: np.random.Generator) -> list[list]:
    """Per group, the (shape, colour) of each object, colours drawn where the prompt names none."""
    return [
        [[o.shape, o.color or tuple(r.PALETTE)[int(rng.integers(len(r.PALETTE)))]] for _ in range(o.count)]
        for o in spec.objects
    ]


def _corrupt_image(spec: PromptSpec, rng: np.random.Generator, kind: str):
    groups = _items(spec, rng)
    relation = spec.relation
    g = int(rng.integers(len(groups)))
    named = [o.shape for o in spec.objects]
    if kind in ("count", "extra"):
        n = len(groups[g])
        new_n = n + 1 if n == 1 or rng.random() < 0.5 else n - 1
        groups[g] = [list(groups[g][0]) for _ in range(new_n)]
        relation = None
        what = f"{kind}: {new_n} {named[g]}(s) instead of {n}"
    elif kind == "shape":
        new = _other(SHAPES, named[g], rng, exclude=named)
        for item in groups[g]:
            item[0] = new
        what = f"shape: {new} instead of {named[g]}"
    elif kind == "missing":
        groups[g] = []
        relation = None
        what = f"missing: no {named[g]}"
    elif kind == "color":
        if len(groups) == 2 and rng.random() < 0.5:
            colours = [groups[0][0][1], groups[1][0][1]]
            groups[0][0][1], groups[1][0][1] = colours[1], colours[0]
            what = "color: the two colours swapped"
        else:
            new = _other(COLORS, spec.objects[g].color, rng, exclude=[o.color for o in spec.objects])
            # Recolour one object or all of them: either way the group is not all the named colour.
            targets = groups[g] if rng.random() < 0.5 else groups[g][:1]
            for item in targets:
                item[1] = new
            what = f"color: {new} on {len(targets)} {named[g]}(s) instead of {spec.objects[g].color}"
    elif kind == "position":
        relation = _other(RELATIONS, spec.relation, rng) if rng.random() < 0.5 else _OPPOSITE[spec.relation]
        what = f"position: {relation} instead of {spec.relation}"
    else:
        raise ValueError(kind)
    items = [tuple(item) for group in groups for item in group]
    if relation and (len(groups[0]) != 1 or len(groups[1]) != 1):
        relation = None
    return r.render_items(items, rng, relation=relation), what


def _corrupt_video(spec: PromptSpec, rng: np.random.Generator, kind: str):
    obj = spec.objects[0]
    if kind == "motion":
        new = _other(MOTIONS, spec.motion, rng)
        return r.render_motion(obj.shape, obj.color, new, rng), f"motion: {new} instead of {spec.motion}"
    if kind == "color":
        new = _other(COLORS, obj.color, rng)
        return r.render_motion(obj.shape, new, spec.motion, rng), f"color: {new} instead of {obj.color}"
    if kind == "shape":
        new = _other(SHAPES, obj.shape, rng)
        return r.render_motion(new, obj.color, spec.motion, rng), f"shape: {new} instead of {obj.shape}"
    clip = r.render_video(spec, rng)
    n = len(clip)
    if kind == "static":
        k = int(rng.integers(n))
        return np.repeat(clip[k : k + 1], n, axis=0), f"static: frame {k} held"
    if kind == "reverse":
        return clip[::-1].copy(), "reverse: played backwards"
    k = int(rng.integers(1, n - 1))
    if kind == "vanish":
        clip[k] = r.BACKGROUND
        return clip, f"vanish: no object in frame {k}"
    if kind == "teleport":
        # Shift one frame's object as far as the frame allows on both axes (at least ~15 px, since
        # an object is under 10 px); every other frame stays where the motion put it.
        ys, xs = np.nonzero(clip[k].max(axis=-1) > 0)
        room_x = (-int(xs.min()), r.SIZE - 1 - int(xs.max()))
        room_y = (-int(ys.min()), r.SIZE - 1 - int(ys.max()))
        dx = max(room_x, key=abs)
        dy = max(room_y, key=abs)
        if np.hypot(dx, dy) < TELEPORT_MIN:
            raise AssertionError("no room to teleport")  # cannot happen for objects under 10 px
        clip[k] = np.roll(clip[k], (dy, dx), axis=(0, 1))
        return clip, f"teleport: frame {k} jumps by ({dx}, {dy})"
    raise ValueError(kind)


def _corrupt_views(spec: PromptSpec, rng: np.random.Generator, kind: str):
    obj = spec.objects[0]
    if kind in ("solid", "color"):
        other = _other(SOLIDS if kind == "solid" else COLORS, obj.shape if kind == "solid" else obj.color, rng)
        shape, colour = (other, obj.color) if kind == "solid" else (obj.shape, other)
        wrong = PromptSpec(spec.task, (type(obj)(shape, colour),))
        return render_views(wrong, rng), f"{kind}: {other} in every view"
    # One view replaced by the same view (same yaw, scale, light) of another colour or solid: a copy
    # of the generator replays the same draws for the wrong ring.
    twin = copy.deepcopy(rng)
    ring = render_views(spec, rng)
    v = int(rng.integers(len(ring)))
    if kind == "view_missing":
        ring[v] = r.BACKGROUND
        return ring, f"view_missing: view {v} empty"
    if kind == "view_color":
        new = _other(COLORS, obj.color, rng)
        wrong = PromptSpec(spec.task, (type(obj)(obj.shape, new),))
    elif kind == "view_solid":
        new = _other(SOLIDS, obj.shape, rng)
        wrong = PromptSpec(spec.task, (type(obj)(new, obj.color),))
    else:
        raise ValueError(kind)
    ring[v] = render_views(wrong, twin, views=len(ring))[v]
    return ring, f"{kind}: view {v} shows {wrong.text}"
