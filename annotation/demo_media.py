"""Synthetic demo media: simple coloured shapes drawn with numpy and Pillow, videos encoded by ffmpeg.

The demo campaigns need prompts whose right answer anyone can see at a glance, and samples that
are sometimes wrong in a known way (colour, shape, count, position, motion, view consistency), so
that a new installation has something real to judge without downloading a model. Everything is
seeded by the arguments, so the same call always draws the same pictures.

No torch and no Django: this runs on the web side (`demo_setup`) and in workers alike.
"""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 48, 49),
    "green": (46, 160, 67),
    "blue": (40, 100, 214),
    "yellow": (236, 190, 20),
    "purple": (136, 68, 186),
    "orange": (240, 124, 24),
}
SHAPES = ("circle", "square", "triangle")
SOLIDS = ("cube", "pyramid", "prism")
BACKGROUND = (243, 241, 235)
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
MODALITY_CODES = {"image": 1, "video": 2, "multiview": 3}
IMAGE_SIZE = 128
VIDEO_SIZE = 96
VIDEO_FRAMES = 16
VIDEO_FPS = 8
N_VIEWS = 6
_SUPERSAMPLE = 2  # drawn at twice the size and shrunk, so edges are smooth without a renderer
_ENCODE_TIMEOUT_S = 120


# --- encoding ---------------------------------------------------------------------------------


def write_mp4(path: Path, frames: np.ndarray, fps: int = 8) -> Path:
    """Encode (T, H, W, 3) uint8 frames as a browser-playable H.264 MP4; returns the poster PNG's path.

    yuv420p halves the chroma resolution, so H.264 needs even sides: odd ones are padded by
    repeating the last row or column. `+faststart` puts the index first, so playback starts
    before the whole file has arrived.
    """
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("writing videos requires ffmpeg, which was not found on this machine")
    _, height, width, _ = frames.shape
    padded = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    out_h, out_w = padded.shape[1:3]
    raw_in = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{out_w}x{out_h}", "-r", str(int(fps)), "-i", "pipe:0"]
    h264 = ["-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
    args = [ffmpeg, "-v", "error", "-y", *raw_in, *h264, "-movflags", "+faststart", "-f", "mp4", f"file:{path}"]
    done = subprocess.run(
        args, input=np.ascontiguousarray(padded).tobytes(), capture_output=True, timeout=_ENCODE_TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode {path.name}: {done.stderr.decode('utf-8', 'replace').strip()}")
    poster = path.with_suffix(".png")
    Image.fromarray(frames[0]).save(poster)
    return poster


# --- drawing flat shapes ----------------------------------------------------------------------


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, colour: str, x: float, y: float, r: float) -> None:
    s = _SUPERSAMPLE
    x, y, r = x * s, y * s, r * s
    fill = COLOURS[colour]
    outline = tuple(int(c * 0.6) for c in fill)
    if shape == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=outline, width=s)
    elif shape == "square":
        h = r * 0.86  # a square of the circle's area reads as the same size
        draw.rectangle([x - h, y - h, x + h, y + h], fill=fill, outline=outline, width=s)
    else:
        points = [(x, y - r * 1.05), (x + r, y + r * 0.75), (x - r, y + r * 0.75)]
        draw.polygon(points, fill=fill, outline=outline, width=s)


def _render(objects: list[tuple[str, str, float, float, float]], size: int) -> np.ndarray:
    """objects: (shape, colour, x, y, radius) in output pixels."""
    big = Image.new("RGB", (size * _SUPERSAMPLE, size * _SUPERSAMPLE), BACKGROUND)
    draw = ImageDraw.Draw(big)
    for shape, colour, x, y, r in objects:
        _draw_shape(draw, shape, colour, x, y, r)
    return np.asarray(big.resize((size, size), Image.Resampling.LANCZOS))


def _other(rng: np.random.Generator, options, *exclude: str) -> str:
    choices = [o for o in options if o not in exclude]
    return str(choices[int(rng.integers(len(choices)))])


def _pick(rng: np.random.Generator, options) -> str:
    return str(options[int(rng.integers(len(options)))])


# --- image prompts ----------------------------------------------------------------------------

_OFFSETS = {"left of": (-1, 0), "right of": (1, 0), "above": (0, -1), "below": (0, 1)}


def _image_spec(rng: np.random.Generator, index: int) -> tuple[str, dict]:
    if index % 2 == 0:
        ca, cb = rng.choice(list(COLOURS), size=2, replace=False)
        sa, sb = _pick(rng, SHAPES), _pick(rng, SHAPES)
        relation = _pick(rng, list(_OFFSETS))
        spec = {"type": "relation", "a": {"colour": str(ca), "shape": sa}, "relation": relation}
        spec["b"] = {"colour": str(cb), "shape": sb}
        return f"a {ca} {sa} {relation} a {cb} {sb}", spec
    count = int(rng.integers(2, 5))
    colour, shape = _pick(rng, list(COLOURS)), _pick(rng, SHAPES)
    return f"{NUMBER_WORDS[count]} {colour} {shape}s", {
        "type": "count",
        "count": count,
        "colour": colour,
        "shape": shape,
    }


def _image_errors(spec: dict) -> tuple[str, ...]:
    return ("colour", "shape", "position") if spec["type"] == "relation" else ("colour", "shape", "count")


def _draw_image(spec: dict, error: str | None, rng: np.random.Generator) -> np.ndarray:
    size = IMAGE_SIZE
    if spec["type"] == "relation":
        a, b = dict(spec["a"]), dict(spec["b"])
        if error == "colour":
            a["colour"] = _other(rng, list(COLOURS), a["colour"], b["colour"])
        elif error == "shape":
            a["shape"] = _other(rng, SHAPES, a["shape"])
        dx, dy = _OFFSETS[spec["relation"]]
        if error == "position":
            dx, dy = -dx, -dy
        gap = 26 + rng.uniform(-4, 4)
        cx, cy = size / 2 + rng.uniform(-6, 6), size / 2 + rng.uniform(-6, 6)
        r = 15 + rng.uniform(-2, 2)
        objects = [
            (a["shape"], a["colour"], cx + dx * gap, cy + dy * gap, r),
            (b["shape"], b["colour"], cx - dx * gap, cy - dy * gap, r),
        ]
        return _render(objects, size)
    count, colour, shape = spec["count"], spec["colour"], spec["shape"]
    if error == "count":
        count = count + 1 if count < 4 and (count == 2 or rng.random() < 0.5) else count - 1
    elif error == "colour":
        colour = _other(rng, list(COLOURS), colour)
    elif error == "shape":
        shape = _other(rng, SHAPES, shape)
    r = 12 + rng.uniform(-1.5, 1.5)
    return _render([(shape, colour, x, y, r) for x, y in _spread(rng, count, size, r)], size)


def _spread(rng: np.random.Generator, count: int, size: int, r: float) -> list[tuple[float, float]]:
    """Non-overlapping positions; falls back to a row if random placement keeps colliding."""
    margin = r + 6
    for _ in range(200):
        points = rng.uniform(margin, size - margin, size=(count, 2))
        gaps = np.linalg.norm(points[:, None] - points[None], axis=-1) + np.eye(count) * size
        if gaps.min() > 2.6 * r:
            return [(float(x), float(y)) for x, y in points]
    step = (size - 2 * margin) / max(count - 1, 1)
    return [(margin + i * step, size / 2) for i in range(count)]


# --- video prompts ----------------------------------------------------------------------------

_MOTIONS = ("left to right", "right to left", "top to bottom", "bottom to top", "bouncing")
_REVERSED = {
    "left to right": "right to left",
    "right to left": "left to right",
    "top to bottom": "bottom to top",
    "bottom to top": "top to bottom",
    "bouncing": "still",
}


def _video_spec(rng: np.random.Generator, index: int) -> tuple[str, dict]:
    colour, shape, motion = _pick(rng, list(COLOURS)), _pick(rng, SHAPES), _MOTIONS[index % len(_MOTIONS)]
    text = f"a {colour} {shape} bouncing up and down" if motion == "bouncing" else f"a {colour} {shape} moving {motion}"
    return text, {"type": "motion", "colour": colour, "shape": shape, "motion": motion}


def _draw_video(spec: dict, error: str | None, rng: np.random.Generator) -> np.ndarray:
    size, n = VIDEO_SIZE, VIDEO_FRAMES
    colour, shape, motion = spec["colour"], spec["shape"], spec["motion"]
    if error == "colour":
        colour = _other(rng, list(COLOURS), colour)
    elif error == "shape":
        shape = _other(rng, SHAPES, shape)
    elif error == "direction":
        motion = _REVERSED[motion]
    elif error == "still":
        motion = "still"
    r = 11 + rng.uniform(-1.5, 1.5)
    lo, hi = r + 6, size - r - 6
    across = size / 2 + rng.uniform(-12, 12)
    t = np.linspace(0.0, 1.0, n)
    path = {
        "left to right": [(lo + (hi - lo) * u, across) for u in t],
        "right to left": [(hi - (hi - lo) * u, across) for u in t],
        "top to bottom": [(across, lo + (hi - lo) * u) for u in t],
        "bottom to top": [(across, hi - (hi - lo) * u) for u in t],
        # Two bounces on a floor: |sin| gives the sharp turn at the bottom a bounce has.
        "bouncing": [(across, hi - (hi - lo) * abs(np.sin(2 * np.pi * u))) for u in t],
        "still": [(across, size / 2)] * n,
    }[motion]
    return np.stack([_render([(shape, colour, x, y, r)], size) for x, y in path])


# --- multi-view prompts -----------------------------------------------------------------------


def _solid(name: str) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    if name == "cube":
        verts = np.array([(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
        faces = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
        return verts * 0.9, faces
    if name == "pyramid":
        verts = np.array([(-1, -1, -1), (1, -1, -1), (1, -1, 1), (-1, -1, 1), (0, 1.1, 0)], dtype=float)
        return verts, [(0, 1, 2, 3), (0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 0, 4)]
    tri = [(-1.1, -0.9), (1.1, -0.9), (0.0, 1.0)]
    verts = np.array([(x, y, z) for z in (-1, 1) for x, y in tri], dtype=float)
    return verts, [(0, 1, 2), (3, 4, 5), (0, 1, 4, 3), (1, 2, 5, 4), (2, 0, 3, 5)]


def _draw_solid(name: str, colour: str, azimuth: float, size: int, elevation: float = 0.42) -> np.ndarray:
    """Project a convex solid and fill its faces towards the camera, shaded by a fixed light."""
    verts, faces = _solid(name)
    ca, sa, ce, se = np.cos(azimuth), np.sin(azimuth), np.cos(elevation), np.sin(elevation)
    turn = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])
    tilt = np.array([[1, 0, 0], [0, ce, -se], [0, se, ce]])  # tips the top towards the camera at +z
    cam = verts @ turn.T @ tilt.T
    centre = cam.mean(axis=0)
    light = np.array([-0.45, 0.75, 0.5]) / np.linalg.norm([-0.45, 0.75, 0.5])
    s = _SUPERSAMPLE
    scale, depth = size * 0.26 * s, 7.0  # mild perspective, so the ring of views reads as 3-D
    big = Image.new("RGB", (size * s, size * s), BACKGROUND)
    draw = ImageDraw.Draw(big)
    shadow = size * s / 2
    draw.ellipse([shadow - scale * 1.3, size * s * 0.8, shadow + scale * 1.3, size * s * 0.92], fill=(222, 219, 210))
    drawn = []
    for face in faces:
        pts = cam[list(face)]
        normal = np.cross(pts[1] - pts[0], pts[2] - pts[0])
        if normal @ (pts.mean(axis=0) - centre) < 0:  # face lists are unordered; point normals outwards
            normal = -normal
        normal /= np.linalg.norm(normal)
        if normal[2] > 1e-6:
            drawn.append((pts[:, 2].mean(), pts, normal))
    base = np.array(COLOURS[colour], dtype=float)
    for _, pts, normal in sorted(drawn, key=lambda item: item[0]):
        shade = 0.4 + 0.6 * max(0.0, float(normal @ light))
        fill = tuple(int(c) for c in np.clip(base * shade, 0, 255))
        k = depth / (depth - pts[:, 2])
        poly = [
            (size * s / 2 + x * kk * scale, size * s / 2 - y * kk * scale)
            for (x, y), kk in zip(pts[:, :2], k, strict=True)
        ]
        draw.polygon(poly, fill=fill, outline=tuple(int(c * 0.55) for c in fill), width=s)
    return np.asarray(big.resize((size, size), Image.Resampling.LANCZOS))


def _multiview_spec(rng: np.random.Generator, index: int) -> tuple[str, dict]:
    colour, solid = _pick(rng, list(COLOURS)), SOLIDS[index % len(SOLIDS)]
    return f"a {colour} {solid}", {"type": "solid", "colour": colour, "solid": solid, "views": N_VIEWS}


def _draw_views(spec: dict, error: str | None, rng: np.random.Generator) -> list[np.ndarray]:
    colour, solid = spec["colour"], spec["solid"]
    if error == "colour":
        colour = _other(rng, list(COLOURS), colour)
    elif error == "shape":
        solid = _other(rng, SOLIDS, solid)
    start = rng.uniform(0, 2 * np.pi)
    angles = [start + 2 * np.pi * k / N_VIEWS for k in range(N_VIEWS)]
    if error == "order":
        angles[1], angles[3] = angles[3], angles[1]
    odd = int(rng.integers(1, N_VIEWS)) if error == "inconsistent" else -1
    other = _other(rng, list(COLOURS), colour)
    return [_draw_solid(solid, other if k == odd else colour, a, IMAGE_SIZE) for k, a in enumerate(angles)]


# --- the manifest -----------------------------------------------------------------------------

_ERRORS = {
    "image": None,  # depends on the prompt type, see _image_errors
    "video": ("colour", "shape", "direction", "still"),
    "multiview": ("colour", "shape", "order", "inconsistent"),
}
_SPECS = {"image": _image_spec, "video": _video_spec, "multiview": _multiview_spec}


def _model_label(j: int) -> str:
    return f"demo-{chr(ord('a') + j)}" if j < 26 else f"demo-{j}"


def _error_rate(j: int) -> float:
    """Later demo models are worse, so the demo rankings have something to find."""
    return min(0.15 + 0.3 * j, 0.85)


def build_demo_manifest(out_dir: Path, *, modality: str, n_prompts: int, samples_per_prompt: int) -> Path:
    """Draw demo media under `out_dir` and write `manifest.jsonl` there (format: services/imports.py)."""
    if modality not in MODALITY_CODES:
        raise ValueError(f"modality must be one of {', '.join(MODALITY_CODES)}, not {modality!r}")
    if n_prompts < 1 or samples_per_prompt < 2:
        raise ValueError("need at least one prompt and at least two samples per prompt to compare")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    code = MODALITY_CODES[modality]
    lines = []
    for i in range(n_prompts):
        # One generator per prompt, so prompt i is the same whatever n_prompts is.
        rng = np.random.default_rng([code, i])
        text, spec = _SPECS[modality](rng, i)
        possible = _image_errors(spec) if modality == "image" else _ERRORS[modality]
        errors: list[str | None] = []
        for j in range(samples_per_prompt):
            wrong = rng.random() < _error_rate(j)
            if i == 0:  # the gold pair: sample 0 exactly right, sample 1 wrong at a glance
                wrong = j == 1 or (j > 1 and wrong)
            plain = i == 0 and j == 1
            errors.append(_pick(rng, ("colour", "shape") if plain else possible) if wrong else None)
        samples = []
        for j, error in enumerate(errors):
            seed = code * 1_000_000 + i * 1_000 + j
            sample_rng = np.random.default_rng(seed)
            stem = f"p{i:03d}_s{j}"
            entry: dict = {"model": _model_label(j), "seed": seed}
            if modality == "image":
                rel = f"img/{stem}.png"
                _save_png(out_dir / rel, _draw_image(spec, error, sample_rng))
                entry["image"] = rel
            elif modality == "video":
                rel = f"vid/{stem}.mp4"
                (out_dir / "vid").mkdir(exist_ok=True)
                write_mp4(out_dir / rel, _draw_video(spec, error, sample_rng), fps=VIDEO_FPS)
                entry["video"], entry["poster"] = rel, f"vid/{stem}.png"
            else:
                rels = [f"mv/{stem}/view_{k:02d}.png" for k in range(N_VIEWS)]
                for rel, view in zip(rels, _draw_views(spec, error, sample_rng), strict=True):
                    _save_png(out_dir / rel, view)
                entry["views"] = rels
            samples.append(entry)
        line: dict = {
            "prompt": text,
            "metadata": {"source": "loupe-demo", "spec": spec, "sample_errors": errors},
            "samples": samples,
        }
        if i == 0:
            line["gold"] = {"pair": [0, 1], "answer": "first"}
        lines.append(json.dumps(line, sort_keys=True))
    manifest = out_dir / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def _save_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
