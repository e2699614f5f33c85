"""Demo media: manifests parse, every file passes the content checks, and drawing is deterministic."""

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from annotation.demo_media import build_demo_manifest
from annotation.media_checks import MediaLimits, check_media

LIMITS = MediaLimits(max_image_bytes=10**6, max_image_pixels=10**6, max_video_bytes=10**7, max_video_seconds=30)
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def _lines(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize("modality", ["image", pytest.param("video", marks=needs_ffmpeg), "multiview"])
def test_manifest_lines_parse_and_files_pass_checks(tmp_path, modality):
    manifest = build_demo_manifest(tmp_path, modality=modality, n_prompts=4, samples_per_prompt=3)
    assert manifest == tmp_path / "manifest.jsonl"
    lines = _lines(manifest)
    assert len(lines) == 4
    for i, line in enumerate(lines):
        assert set(line) <= {"prompt", "metadata", "samples", "gold"}
        assert line["prompt"] and line["metadata"]["spec"]["type"]
        assert [s["model"] for s in line["samples"]] == ["demo-a", "demo-b", "demo-c"]
        errors = line["metadata"]["sample_errors"]
        assert len(errors) == 3
        if i == 0:
            # The gold pair is unambiguous: the first sample is right, the second is not.
            assert line["gold"] == {"pair": [0, 1], "answer": "first"}
            assert errors[0] is None and errors[1] is not None
        else:
            assert "gold" not in line
        for sample in line["samples"]:
            if modality == "image":
                info = check_media(tmp_path / sample["image"], expected_kind="image", limits=LIMITS)
                assert (info.mime, info.width, info.height) == ("image/png", 128, 128)
            elif modality == "video":
                info = check_media(tmp_path / sample["video"], expected_kind="video", limits=LIMITS)
                assert (info.mime, info.frames, info.width) == ("video/mp4", 16, 96)
                assert info.duration == pytest.approx(2.0, abs=0.1)
                poster = check_media(tmp_path / sample["poster"], expected_kind="image", limits=LIMITS)
                assert poster.mime == "image/png"
            else:
                assert len(sample["views"]) == 6
                for rel in sample["views"]:
                    assert check_media(tmp_path / rel, expected_kind="image", limits=LIMITS).mime == "image/png"


def _digest(folder: Path, pattern: str) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob(pattern)):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("modality", ["image", "multiview"])
def test_same_arguments_draw_the_same_media(tmp_path, modality):
    a = build_demo_manifest(tmp_path / "a", modality=modality, n_prompts=3, samples_per_prompt=3)
    b = build_demo_manifest(tmp_path / "b", modality=modality, n_prompts=3, samples_per_prompt=3)
    assert a.read_text() == b.read_text()
    assert _digest(tmp_path / "a", "*.png") == _digest(tmp_path / "b", "*.png")


def test_wrong_samples_differ_from_right_ones(tmp_path):
    manifest = build_demo_manifest(tmp_path, modality="image", n_prompts=1, samples_per_prompt=2)
    first = _lines(manifest)[0]
    right, wrong = (np.asarray(Image.open(tmp_path / s["image"]), dtype=int) for s in first["samples"])
    assert np.abs(right - wrong).sum() > 0


@needs_ffmpeg
def test_video_demo_is_fast(tmp_path):
    started = time.monotonic()
    build_demo_manifest(tmp_path, modality="video", n_prompts=12, samples_per_prompt=3)
    assert time.monotonic() - started < 30  # a few seconds normally; generous for slow CI machines


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="modality"):
        build_demo_manifest(tmp_path, modality="audio", n_prompts=1, samples_per_prompt=2)
    with pytest.raises(ValueError, match="two samples"):
        build_demo_manifest(tmp_path, modality="image", n_prompts=1, samples_per_prompt=1)
