"""Verifier for view rings: every view shows the same solid in the stated colour.

Each view's object is classified by silhouette features measured on its mask:
- top: the silhouette's width 15% of the way down, over its full width. A pyramid's apex makes it
  narrow (<= 0.35 on ground truth); every other solid is >= 0.56 there.
- side: how much of the height the outermost columns cover. Cubes and cylinders have vertical
  edges at their left and right extremes (>= 0.58); a sphere's outline only grazes them (<= 0.47).
- aspect: height over width. The cylinder is 1.5 diameters tall (>= 1.60); a cube seen from any
  azimuth at this elevation stays within 1.00-1.42.
These hold at any yaw and any number of views, so a single wrong view is caught on its own.
"""

from __future__ import annotations

import numpy as np

from training.shapes.grammar import COLORS, PromptSpec
from training.shapes.verify import Verdict, detect, scale_of, verdict

AREA_SPREAD = 1.6  # a view's area within this factor of the median (a cube's varies by up to 1.3)
CENTRE_SPREAD = 4.0  # px at 32x32: a view's centre this close to the median centre


def silhouette_features(mask: np.ndarray) -> dict[str, float]:
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    h, w = y1 - y0 + 1, x1 - x0 + 1
    box = mask[y0 : y1 + 1, x0 : x1 + 1]
    rows, cols = box.sum(axis=1), box.sum(axis=0)
    return {
        "aspect": h / w,
        "fill": float(box.mean()),
        "top": rows[int(0.15 * h)] / w,
        "side": (cols[0] + cols[-1]) / (2 * h),
    }


def classify_solid(f: dict[str, float]) -> str:
    if f["top"] < 0.45:
        return "pyramid" if 0.6 <= f["aspect"] <= 1.4 else "unknown"
    if f["side"] < 0.53:
        return "sphere" if 0.8 <= f["aspect"] <= 1.25 else "unknown"
    if f["aspect"] >= 1.51:
        return "cylinder" if f["aspect"] <= 2.4 else "unknown"
    return "cube" if f["aspect"] >= 0.85 else "unknown"


def verify_views(spec: PromptSpec, ring: np.ndarray) -> Verdict:
    if ring.ndim != 4 or ring.shape[0] < 2:
        raise ValueError(f"a view ring is (V, H, W, 3) with V >= 2, got {ring.shape}")
    n, h, w = ring.shape[:3]
    scale = scale_of(h, w)
    obj = spec.objects[0]
    objs = detect(ring)
    per_view = [objs.in_frame(k) for k in range(n)]
    solids, colours, areas, centres = [], [], [], []
    for k, p in enumerate(per_view):
        if not len(p):
            solids.append(None)
            colours.append(None)
            continue
        m = p[np.argmax(objs.area[p])]
        solids.append(classify_solid(silhouette_features(objs.labels[k] == m)))
        colours.append(COLORS[objs.color[m]])
        areas.append(float(objs.area[m]))
        centres.append((objs.cx[m], objs.cy[m]))
    all_present = all(len(p) >= 1 for p in per_view)
    consistent = all_present and len(set(solids)) == 1 and len(set(colours)) == 1 and "unknown" not in solids
    if consistent:
        med_area = float(np.median(areas))
        med_centre = np.median(np.array(centres), axis=0)
        consistent = (
            max(areas) <= AREA_SPREAD * med_area
            and min(areas) >= med_area / AREA_SPREAD
            and float(np.max(np.linalg.norm(np.array(centres) - med_centre, axis=1))) <= CENTRE_SPREAD * scale
        )
    clauses = {
        "views": all(len(p) == 1 for p in per_view),
        "shape": sum(s == obj.shape for s in solids) > n / 2,
        "color": sum(c == obj.color for c in colours) > n / 2,
        "consistent_views": consistent,
    }
    return verdict(clauses, solids=solids, colors=colours)
