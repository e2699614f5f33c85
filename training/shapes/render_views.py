"""Multi-view ground truth: a ring of views of one coloured solid, from a small rasteriser of our own.

The camera orbits the object at a fixed elevation (ELEVATION_DEG) with an orthographic projection;
view k of V looks from azimuth 360*k/V plus the object's own random yaw. Triangles are culled when
they face away and the rest are rasterised at pixel centres with a z-buffer (all solids are convex,
so culling alone would do; the z-buffer makes shared edges deterministic). Lambert shading scales
the palette colour by a factor in [AMBIENT, 1], which leaves its chromaticity, and so its colour
class, unchanged.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from training.shapes.grammar import PromptSpec
from training.shapes.render import BACKGROUND, PALETTE, SIZE

ELEVATION_DEG = 25.0
AMBIENT = 0.5
# Pixels per model unit, per solid; chosen so the largest silhouette (cube from a corner, the
# cylinder's height) fits the frame with room for a 2 px offset.
SCALES = {"cube": (12.0, 16.0), "pyramid": (14.0, 19.0), "sphere": (15.0, 22.0), "cylinder": (9.0, 12.0)}
CYLINDER_HEIGHT = 1.5  # in diameters: tall enough that its silhouette is never as squat as a cube's
PYRAMID_HEIGHT = 1.0  # in base sides


def _quad(a, b, c, d) -> list:
    return [(a, b, c), (a, c, d)]


@cache
def mesh(solid: str) -> np.ndarray:
    """(T, 3, 3) triangles of a unit-sized solid centred on the origin, y up, faces wound outwards."""
    tris: list = []
    if solid == "cube":
        v = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
        faces = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
        for f in faces:
            tris += [tuple(v[i] for i in t) for t in _quad(*f)]
    elif solid == "pyramid":
        h = PYRAMID_HEIGHT
        base = [np.array([x, -h / 2, z]) for x, z in ((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5))]
        apex = np.array([0.0, h / 2, 0.0])
        tris += [(base[i], base[(i + 1) % 4], apex) for i in range(4)]
        tris += _quad(*base)
    elif solid == "sphere":
        n_lon, n_lat = 24, 12
        lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat + 1)
        lon = np.linspace(0, 2 * np.pi, n_lon + 1)
        ring_r, height = np.cos(lat)[:, None], np.repeat(np.sin(lat)[:, None], n_lon + 1, 1)
        p = 0.5 * np.stack([ring_r * np.cos(lon), height, ring_r * np.sin(lon)], axis=-1)
        for i in range(n_lat):
            for j in range(n_lon):
                tris += _quad(p[i, j], p[i, j + 1], p[i + 1, j + 1], p[i + 1, j])
    elif solid == "cylinder":
        n, h = 20, CYLINDER_HEIGHT / 2
        ang = np.linspace(0, 2 * np.pi, n + 1)
        ring = 0.5 * np.stack([np.cos(ang), np.zeros_like(ang), np.sin(ang)], axis=-1)
        lo, hi = ring + [0, -h, 0], ring + [0, h, 0]
        for j in range(n):
            tris += _quad(lo[j], lo[j + 1], hi[j + 1], hi[j])
            tris += [(np.array([0, h, 0]), hi[j], hi[j + 1]), (np.array([0, -h, 0]), lo[j + 1], lo[j])]
    else:
        raise ValueError(f"unknown solid {solid!r}")
    t = np.array(tris, dtype=float)
    t = t[np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1) > 1e-12]  # drop pole slivers
    # Orient every face outwards: the solids are convex and centred, so outwards is away from 0.
    normal = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    flip = np.einsum("ij,ij->i", normal, t.mean(axis=1)) < 0
    t[flip] = t[flip][:, ::-1]
    return t


def cameras(azimuths: np.ndarray, elevation: float = np.radians(ELEVATION_DEG)) -> np.ndarray:
    """(V, 3, 3): per view, rows screen right, screen up and towards the camera (orthonormal)."""
    sa, ca = np.sin(azimuths), np.cos(azimuths)
    se, ce = np.sin(elevation), np.cos(elevation)
    zero = np.zeros_like(sa)
    right = np.stack([ca, zero, -sa], axis=-1)
    up = np.stack([-se * sa, np.full_like(sa, ce), -se * ca], axis=-1)  # toward x right
    toward = np.stack([ce * sa, np.full_like(sa, se), ce * ca], axis=-1)
    return np.stack([right, up, toward], axis=1)


@cache
def _unit_normals(solid: str) -> np.ndarray:
    t = mesh(solid)
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def rasterise(tris: np.ndarray, shade: np.ndarray, view: np.ndarray, n_views: int, size: int) -> np.ndarray:
    """Z-buffered rasterisation of screen-space triangles.

    tris: (T, 3, 3) with pixel x, pixel y (down) and depth (larger is nearer); shade: (T, 3) RGB
    floats; view: (T,) view index. Returns (n_views, size, size, 3) floats, NaN where empty.
    """
    xy = tris[:, :, :2]
    # Pixel (px, py) is covered when its centre (px + .5, py + .5) is inside: scan only each
    # triangle's bounding box, expanded into one flat list of (triangle, pixel) candidates.
    x0 = np.clip(np.ceil(xy[:, :, 0].min(1) - 0.5), 0, size).astype(int)
    x1 = np.clip(np.floor(xy[:, :, 0].max(1) - 0.5), -1, size - 1).astype(int)
    y0 = np.clip(np.ceil(xy[:, :, 1].min(1) - 0.5), 0, size).astype(int)
    y1 = np.clip(np.floor(xy[:, :, 1].max(1) - 0.5), -1, size - 1).astype(int)
    nx, ny = np.maximum(x1 - x0 + 1, 0), np.maximum(y1 - y0 + 1, 0)
    counts = nx * ny
    tri = np.repeat(np.arange(len(tris)), counts)
    k = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    px = x0[tri] + k % nx[tri]
    py = y0[tri] + k // nx[tri]
    cx, cy = px + 0.5, py + 0.5
    a, b, c = xy[tri, 0], xy[tri, 1], xy[tri, 2]

    def edge(p, q):  # twice the signed area of (p, q, centre)
        return (q[:, 0] - p[:, 0]) * (cy - p[:, 1]) - (q[:, 1] - p[:, 1]) * (cx - p[:, 0])

    w0, w1, w2 = edge(b, c), edge(c, a), edge(a, b)
    area = w0 + w1 + w2
    sign = np.sign(area)
    eps = 1e-9
    inside = (np.abs(area) > eps) & (w0 * sign >= -eps) & (w1 * sign >= -eps) & (w2 * sign >= -eps)
    tri, px, py = tri[inside], px[inside], py[inside]
    bary = np.stack([w0, w1, w2], axis=1)[inside] / area[inside, None]
    depth = np.einsum("ij,ij->i", bary, tris[tri, :, 2])
    pixel = (view[tri] * size + py) * size + px
    order = np.lexsort((-depth, pixel))  # nearest first within each pixel
    first = np.unique(pixel[order], return_index=True)[1]
    won = order[first]
    out = np.full((n_views * size * size, 3), np.nan)
    out[pixel[won]] = shade[tri[won]]
    return out.reshape(n_views, size, size, 3)


def render_views(
    spec: PromptSpec, rng: np.random.Generator, views: int = 6, size: int = SIZE, *, yaw: float | None = None
) -> np.ndarray:
    """(views, size, size, 3) uint8: the spec's solid seen from a ring of `views` azimuths."""
    if spec.modality != "multiview":
        raise ValueError(f"{spec.text!r} is a {spec.modality} prompt")
    if views < 3:
        raise ValueError("a ring needs at least 3 views")
    obj = spec.objects[0]
    lo, hi = SCALES[obj.shape]
    scale = float(rng.uniform(lo, hi)) * size / SIZE
    yaw = float(rng.uniform(0, 2 * np.pi)) if yaw is None else yaw
    offset = rng.uniform(-1.5, 1.5, size=2) * size / SIZE
    light = np.array([-0.45, 0.55, 0.7]) + rng.uniform(-0.1, 0.1, size=3)
    light /= np.linalg.norm(light)
    return render_ring(obj.shape, obj.color, views, size, scale, yaw, offset, light)


def render_ring(solid, color, views, size, scale, yaw, offset, light) -> np.ndarray:
    """The ring for explicit parameters (render_views draws them; corrupt.py reuses them)."""
    model = mesh(solid) * scale
    normals = _unit_normals(solid)
    cams = cameras(yaw + 2 * np.pi * np.arange(views) / views)
    n_cam = np.einsum("tj,vij->vti", normals, cams)  # (V, T, 3)
    front = n_cam[..., 2] > 1e-9  # faces turned towards the camera
    view, tri = np.nonzero(front)
    pts = np.einsum("tkj,vij->vtki", model, cams)[view, tri]  # (F, 3 corners, right/up/toward)
    screen = np.empty_like(pts)
    screen[..., 0] = size / 2 + offset[0] + pts[..., 0]
    screen[..., 1] = size / 2 + offset[1] - pts[..., 1]
    screen[..., 2] = pts[..., 2]
    # The light is fixed to the camera, so every view is lit alike and shading stays comparable.
    lambert = np.clip(n_cam[view, tri] @ light, 0, 1)
    shade = np.array(PALETTE[color], float)[None, :] * (AMBIENT + (1 - AMBIENT) * lambert)[:, None]
    img = rasterise(screen, shade, view, views, size)
    out = np.where(np.isnan(img), np.array(BACKGROUND, float), img)
    return np.rint(out).astype(np.uint8)
