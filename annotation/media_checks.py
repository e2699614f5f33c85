"""What a media file really is, decided from its content, never from its name.

Images are sniffed by magic bytes (PNG, JPEG, WebP only) and then fully decoded with Pillow, so a
truncated or corrupt file is refused before anyone is asked to judge it. Videos are sniffed (MP4,
WebM), probed with ffprobe and fully decoded with ffmpeg, for the same reason: a file that only
half plays wastes annotators' time and silently biases the judgments.

No Django here: the limits come in as arguments, so the module is usable from anywhere.
"""

import json
import os
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

PROBE_TIMEOUT_S = 30
DECODE_TIMEOUT_S = 300
_SNIFF_BYTES = 4096
_WEBM_DOCTYPE = re.compile(rb"\x42\x82.{1,8}webm", re.DOTALL)

IMAGE_MIMES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
VIDEO_MIMES = {"video/mp4", "video/webm"}
# What current browsers can play; anything else would show annotators a broken player.
PLAYABLE_VIDEO_CODECS = {"h264", "hevc", "vp8", "vp9", "av1"}
# ISO-BMFF brands that mark still images (HEIF/AVIF) rather than videos, though they share the ftyp box.
_STILL_IMAGE_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"}


@dataclass(frozen=True)
class MediaLimits:
    max_image_bytes: int
    max_image_pixels: int
    max_video_bytes: int
    max_video_seconds: float


@dataclass(frozen=True)
class MediaInfo:
    kind: str  # "image" or "video"
    mime: str
    width: int
    height: int
    duration: float | None
    frames: int | None


class MediaError(Exception):
    """Why a file was refused, as a short sentence for the person who supplied it."""


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(_SNIFF_BYTES)


def _sniff_bytes(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] not in _STILL_IMAGE_BRANDS:
        return "video/mp4"
    # Matroska shares WebM's EBML header; only the DocType element (id 0x4282) tells them apart.
    if head.startswith(b"\x1a\x45\xdf\xa3") and _WEBM_DOCTYPE.search(head[:128]):
        return "video/webm"
    return None


def sniff_mime(path: str | os.PathLike) -> str | None:
    """The supported MIME type the file's first bytes announce, or None. Does not decode."""
    try:
        return _sniff_bytes(_head(Path(path)))
    except OSError:
        return None


def _describe_unknown(head: bytes) -> str:
    """A guess at what an unsupported file is, so the refusal message helps fix it."""
    if not head:
        return "the file is empty"
    if head.startswith(b"GIF8"):
        return "content looks like a GIF image"
    if head[4:8] == b"ftyp":
        return "content looks like a HEIF/AVIF still image"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "content looks like a Matroska video that is not WebM"
    if head.startswith(b"%PDF"):
        return "content looks like a PDF"
    if head[:4] == b"RIFF":
        return "content looks like a RIFF file (AVI/WAV), not WebP"
    # A multi-byte character cut at the sniff boundary leaves a few replacement characters; allow them.
    text = head.decode("utf-8", errors="replace")
    if text.count("\ufffd") <= 3 and all(c.isprintable() or c in "\r\n\t\ufffd" for c in text):
        return "content looks like text"
    return "content is not a recognised media format"


def _kind_of(mime: str) -> str:
    return "image" if mime in IMAGE_MIMES else "video"


def _article(kind: str) -> str:
    return "an image" if kind == "image" else "a video"


def check_media(path: str | os.PathLike, *, expected_kind: str, limits: MediaLimits) -> MediaInfo:
    """Decide what `path` holds from its content and that it decodes fully; raise MediaError if not."""
    if expected_kind not in ("image", "video"):
        raise ValueError(f"expected_kind must be 'image' or 'video', not {expected_kind!r}")
    path = Path(path)
    try:
        size = path.stat().st_size
        head = _head(path)
    except OSError as exc:
        raise MediaError(f"cannot read the file ({exc.strerror or exc})")
    mime = _sniff_bytes(head)
    if mime is None:
        wanted = "a PNG/JPEG/WebP image" if expected_kind == "image" else "an MP4/WebM video"
        raise MediaError(f"not {wanted} ({_describe_unknown(head)})")
    found = _kind_of(mime)
    if found != expected_kind:
        raise MediaError(f"expected {_article(expected_kind)}, found {_article(found)} ({mime})")
    if found == "image":
        return _check_image(path, mime, size, limits)
    return _check_video(path, mime, size, limits)


def _check_image(path: Path, mime: str, size: int, limits: MediaLimits) -> MediaInfo:
    if size > limits.max_image_bytes:
        raise MediaError(f"image is {size:,} bytes, above the limit of {limits.max_image_bytes:,}")
    fmt = IMAGE_MIMES[mime]
    try:
        # Our own pixel limit is checked below, before any pixel is decoded; Pillow's warning is
        # redundant then, and its hard error (twice its limit) is reported in our words.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=[fmt]) as im:  # reads the header only
                width, height = im.size
                _check_pixels(width, height, limits)
                im.verify()
            with Image.open(path, formats=[fmt]) as im:
                im.load()  # verify() does not decode pixel data; a truncated file fails only here
    except MediaError:
        raise
    except Image.DecompressionBombError:
        raise MediaError(f"image is too large to decode safely (above {limits.max_image_pixels:,} pixels)")
    except Exception as exc:  # Pillow raises many exception types for damaged files
        raise MediaError(f"image is truncated or corrupt ({_short(str(exc) or type(exc).__name__)})")
    return MediaInfo(kind="image", mime=mime, width=width, height=height, duration=None, frames=None)


def _check_pixels(width: int, height: int, limits: MediaLimits, what: str = "image") -> None:
    if width <= 0 or height <= 0:
        raise MediaError(f"{what} has no pixels ({width}x{height})")
    if width * height > limits.max_image_pixels:
        raise MediaError(f"{what} is {width}x{height} pixels, above the limit of {limits.max_image_pixels:,} pixels")


_FFMPEG_PREFIX = re.compile(r"\[[\w:.-]+ @ 0x[0-9a-f]+\] ?")


def _short(message: str, limit: int = 200) -> str:
    # ffmpeg prefixes lines with a component and a memory address; neither helps the reader.
    line = " ".join(_FFMPEG_PREFIX.sub("", message).strip().splitlines()[:2])
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise MediaError(f"checking videos requires ffmpeg, and {name} was not found on this server")
    return found


def _run(args: list[str], timeout: int, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"video took longer than {timeout} s to {what}; refusing it")
    except OSError as exc:
        raise MediaError(f"could not run {Path(args[0]).name} ({exc.strerror or exc})")


def _check_video(path: Path, mime: str, size: int, limits: MediaLimits) -> MediaInfo:
    if size > limits.max_video_bytes:
        raise MediaError(f"video is {size:,} bytes, above the limit of {limits.max_video_bytes:,}")
    ffprobe, ffmpeg = _tool("ffprobe"), _tool("ffmpeg")
    # "file:" keeps a name starting with "-" from reading as an option, and the whitelist keeps a
    # crafted container from making ffmpeg open anything but local files.
    source = f"file:{path}"
    entries = "stream=codec_type,codec_name,width,height,nb_frames:format=duration,format_name"
    probe = _run(
        [ffprobe, "-v", "error", "-protocol_whitelist", "file", "-show_entries", entries, "-of", "json", source],
        PROBE_TIMEOUT_S,
        "probe",
    )
    stderr = probe.stderr.decode("utf-8", errors="replace").strip()
    if probe.returncode != 0 or stderr:
        raise MediaError(f"video is truncated or unreadable (ffprobe: {_short(stderr or 'no details')})")
    try:
        data = json.loads(probe.stdout or b"{}")
    except json.JSONDecodeError:
        raise MediaError("video is unreadable (ffprobe gave no usable answer)")
    fmt = data.get("format") or {}
    format_name = str(fmt.get("format_name", ""))
    if (mime == "video/webm") != ("webm" in format_name):
        raise MediaError(f"video container ({format_name or 'unknown'}) does not match its content type ({mime})")
    videos = [s for s in data.get("streams", []) if s.get("codec_type") == "video"]
    if not videos:
        raise MediaError(f"file holds no video stream ({mime})")
    stream = videos[0]
    codec = str(stream.get("codec_name", "unknown"))
    if codec not in PLAYABLE_VIDEO_CODECS:
        raise MediaError(
            f"video codec {codec} does not play in browsers (use one of {', '.join(sorted(PLAYABLE_VIDEO_CODECS))})"
        )
    width, height = int(stream.get("width") or 0), int(stream.get("height") or 0)
    _check_pixels(width, height, limits, what="video frame")
    duration = _float_or_none(fmt.get("duration"))
    if duration is None:
        raise MediaError("video has no readable duration")
    if duration > limits.max_video_seconds:
        raise MediaError(f"video is {duration:.1f} s long, above the limit of {limits.max_video_seconds:g} s")
    # ffprobe reads headers only; a file cut short after its index passes it. Decoding every frame
    # is the only way to know the whole video plays.
    decode = _run(
        [ffmpeg, "-nostdin", "-v", "error", "-xerror", "-protocol_whitelist", "file", "-i", source, "-f", "null", "-"],
        DECODE_TIMEOUT_S,
        "decode",
    )
    stderr = decode.stderr.decode("utf-8", errors="replace").strip()
    if decode.returncode != 0 or stderr:
        raise MediaError(f"video is truncated or unreadable (ffmpeg: {_short(stderr or 'decoding failed')})")
    frames = _int_or_none(stream.get("nb_frames"))
    return MediaInfo(kind="video", mime=mime, width=width, height=height, duration=duration, frames=frames)


def _float_or_none(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
