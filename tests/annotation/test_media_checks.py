"""Media type decided from content: sniffing, full decoding, limits. No database needed."""

import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from annotation import media_checks
from annotation.demo_media import write_mp4
from annotation.media_checks import MediaError, MediaLimits, check_media, sniff_mime

LIMITS = MediaLimits(
    max_image_bytes=1_000_000, max_image_pixels=1_000_000, max_video_bytes=10_000_000, max_video_seconds=30
)
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def _pixels(h: int = 40, w: int = 60) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def _image(path, fmt: str, h: int = 40, w: int = 60):
    Image.fromarray(_pixels(h, w)).save(path, format=fmt)
    return path


def _frames(t: int = 12, h: int = 32, w: int = 48) -> np.ndarray:
    frames = np.full((t, h, w, 3), 240, dtype=np.uint8)
    for i in range(t):
        frames[i, 8:20, 2 + 2 * i : 12 + 2 * i] = (200, 30, 30)
    return frames


@pytest.mark.parametrize(
    ("fmt", "suffix", "mime"),
    [("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg"), ("WEBP", "webp", "image/webp")],
)
def test_supported_images_are_accepted_with_their_mime(tmp_path, fmt, suffix, mime):
    path = _image(tmp_path / f"a.{suffix}", fmt)
    info = check_media(path, expected_kind="image", limits=LIMITS)
    assert (info.kind, info.mime, info.width, info.height) == ("image", mime, 60, 40)
    assert info.duration is None and info.frames is None
    assert sniff_mime(path) == mime


def test_text_renamed_png_is_refused(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("this is not an image\n", encoding="utf-8")
    with pytest.raises(MediaError, match=r"not a PNG/JPEG/WebP image \(content looks like text\)"):
        check_media(path, expected_kind="image", limits=LIMITS)
    assert sniff_mime(path) is None


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        check_media(path, expected_kind="image", limits=LIMITS)


def test_gif_is_named_and_refused(tmp_path):
    path = _image(tmp_path / "a.png", "GIF")
    with pytest.raises(MediaError, match="GIF"):
        check_media(path, expected_kind="image", limits=LIMITS)


def test_extension_is_ignored_png_named_jpg(tmp_path):
    path = _image(tmp_path / "really_png.jpg", "PNG")
    assert check_media(path, expected_kind="image", limits=LIMITS).mime == "image/png"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_is_refused(tmp_path, fmt):
    whole = _image(tmp_path / "whole", fmt, h=120, w=120).read_bytes()
    cut = tmp_path / "cut.img"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(MediaError, match="truncated or corrupt"):
        check_media(cut, expected_kind="image", limits=LIMITS)


def test_corrupt_png_body_is_refused(tmp_path):
    data = bytearray(_image(tmp_path / "a.png", "PNG").read_bytes())
    data[60:80] = b"\x00" * 20  # inside the image data, so the chunk checksum no longer matches
    path = tmp_path / "b.png"
    path.write_bytes(bytes(data))
    with pytest.raises(MediaError):
        check_media(path, expected_kind="image", limits=LIMITS)


def test_over_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    path = _image(tmp_path / "big.png", "PNG", h=50, w=80)
    limits = MediaLimits(max_image_bytes=10**6, max_image_pixels=3999, max_video_bytes=10**6, max_video_seconds=1)

    def no_load(self):
        raise AssertionError("pixels were decoded before the size check")

    monkeypatch.setattr(Image.Image, "load", no_load)
    with pytest.raises(MediaError, match=r"image is 80x50 pixels, above the limit of 3,999"):
        check_media(path, expected_kind="image", limits=limits)


def test_decompression_bomb_is_refused(tmp_path):
    # A tiny file that claims a huge canvas: Pillow's own bomb guard fires before ours can.
    path = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(path, optimize=True)
    assert path.stat().st_size < 200_000
    limits = MediaLimits(max_image_bytes=10**6, max_image_pixels=10**9, max_video_bytes=1, max_video_seconds=1)
    with pytest.raises(MediaError, match="pixels"):
        check_media(path, expected_kind="image", limits=limits)


def test_over_byte_limit_is_refused(tmp_path):
    path = _image(tmp_path / "a.png", "PNG")
    limits = MediaLimits(max_image_bytes=100, max_image_pixels=10**6, max_video_bytes=10**6, max_video_seconds=1)
    with pytest.raises(MediaError, match="bytes, above the limit of 100"):
        check_media(path, expected_kind="image", limits=limits)


def test_image_when_video_expected_is_refused_clearly(tmp_path):
    path = _image(tmp_path / "clip.mp4", "PNG")
    with pytest.raises(MediaError, match=r"^expected a video, found an image \(image/png\)$"):
        check_media(path, expected_kind="video", limits=LIMITS)


@needs_ffmpeg
def test_mp4_from_write_mp4_is_accepted(tmp_path):
    poster = write_mp4(tmp_path / "clip.mp4", _frames(t=12), fps=6)
    info = check_media(tmp_path / "clip.mp4", expected_kind="video", limits=LIMITS)
    assert (info.kind, info.mime, info.width, info.height) == ("video", "video/mp4", 48, 32)
    assert info.frames == 12
    assert info.duration == pytest.approx(2.0, abs=0.2)
    assert poster == tmp_path / "clip.png"
    assert check_media(poster, expected_kind="image", limits=LIMITS).mime == "image/png"


@needs_ffmpeg
def test_write_mp4_pads_odd_sides(tmp_path):
    write_mp4(tmp_path / "odd.mp4", _frames(t=4, h=31, w=45))
    info = check_media(tmp_path / "odd.mp4", expected_kind="video", limits=LIMITS)
    assert (info.width, info.height) == (46, 32)
    assert Image.open(tmp_path / "odd.png").size == (45, 31)


@needs_ffmpeg
def test_truncated_mp4_is_refused(tmp_path):
    write_mp4(tmp_path / "clip.mp4", _frames(t=16))
    data = (tmp_path / "clip.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="video is truncated or unreadable"):
        check_media(cut, expected_kind="video", limits=LIMITS)


@needs_ffmpeg
def test_video_when_image_expected_is_refused_clearly(tmp_path):
    write_mp4(tmp_path / "clip.mp4", _frames(t=4))
    lying = (tmp_path / "clip.mp4").rename(tmp_path / "still.png")
    with pytest.raises(MediaError, match=r"^expected an image, found a video \(video/mp4\)$"):
        check_media(lying, expected_kind="image", limits=LIMITS)


@needs_ffmpeg
def test_too_long_video_is_refused(tmp_path):
    write_mp4(tmp_path / "clip.mp4", _frames(t=12), fps=2)
    limits = MediaLimits(max_image_bytes=10**6, max_image_pixels=10**6, max_video_bytes=10**7, max_video_seconds=5)
    with pytest.raises(MediaError, match=r"video is 6.0 s long, above the limit of 5 s"):
        check_media(tmp_path / "clip.mp4", expected_kind="video", limits=limits)


def _encoders() -> str:
    if shutil.which("ffmpeg") is None:
        return ""
    return subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


@needs_ffmpeg
@pytest.mark.parametrize("encoder", ["libvpx", "libvpx-vp9"])
def test_webm_is_accepted(tmp_path, encoder):
    if f" {encoder} " not in _encoders():
        pytest.skip(f"this ffmpeg has no {encoder} encoder")
    write_mp4(tmp_path / "src.mp4", _frames(t=8))
    webm = tmp_path / "clip.bin"  # no telling extension: the content decides
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(tmp_path / "src.mp4"), "-c:v", encoder, "-f", "webm", str(webm)],
        check=True,
        capture_output=True,
    )
    info = check_media(webm, expected_kind="video", limits=LIMITS)
    assert (info.mime, info.width, info.height) == ("video/webm", 48, 32)
    assert info.duration == pytest.approx(1.0, abs=0.2)


def test_missing_ffprobe_is_a_clear_error(tmp_path, monkeypatch):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 64)
    monkeypatch.setattr(media_checks.shutil, "which", lambda name: None)
    with pytest.raises(MediaError, match="requires ffmpeg"):
        check_media(clip, expected_kind="video", limits=LIMITS)


def test_sniff_mime_on_missing_file_is_none(tmp_path):
    assert sniff_mime(tmp_path / "nope.png") is None
