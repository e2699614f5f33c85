"""Importing a round of samples from a JSONL manifest or a folder.

Two phases. First everything is read and checked (columns, paths, media type from content, that
the media matches the campaign's modality); every problem is collected with the line it came from
and the import is refused as a whole. Only then are files copied into storage under generated
names and rows written, in one transaction; if anything fails there, the copied files are removed
too. So an import is all or nothing.

Manifest, one JSON object per line (paths relative to the manifest's folder):

    {"prompt": "a red circle", "metadata": {...}, "gold": {"pair": [0, 1], "answer": "first"},
     "samples": [{"model": "base-v1", "seed": 0, "image": "img/p0_a.png"},
                 {"model": "base-v2", "video": "vid/p0_b.mp4", "poster": "vid/p0_b.png"},
                 {"model": "base-v3", "views": ["mv/p0_c/view_00.png", "..."]}]}

Folder: one sub-folder per prompt holding `prompt.txt` (optional `metadata.json`), and per model
either `<model>.<png|jpg|webp|mp4|webm>` or a folder `<model>/` of view images (sorted by name).
A folder that holds a `manifest.jsonl` is read as that manifest.
"""

import itertools
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from annotation import media_checks
from annotation.errors import Invalid
from annotation.models import Campaign, Choice, Comparison, Prompt, Round, Sample
from training.models import Generator, Modality, ModelVersion

LINE_KEYS = {"prompt", "metadata", "samples", "gold"}
SAMPLE_KEYS = {"model", "seed", "settings", "image", "video", "poster", "views"}
KIND_BY_MODALITY = {Modality.IMAGE: "image", Modality.VIDEO: "video", Modality.MULTIVIEW: "views"}
MAX_ERRORS_SHOWN = 20
EXTENSION_BY_MIME = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
}


class ImportRefused(Invalid):
    """The whole import was refused; `errors` lists every problem found, with where it was."""

    def __init__(self, errors: list[str]) -> None:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f"\n... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        super().__init__("Import refused, nothing was written:\n" + "\n".join(shown) + more)
        self.errors = errors


@dataclass
class _Media:
    path: Path
    mime: str


@dataclass
class _SampleIn:
    model: str
    seed: int | None
    settings: dict
    files: list[_Media]
    poster: _Media | None = None


@dataclass
class _PromptIn:
    where: str
    text: str
    metadata: dict
    samples: list[_SampleIn] = field(default_factory=list)
    gold: tuple[int, int, str] | None = None


def _limits() -> "media_checks.MediaLimits":
    return media_checks.MediaLimits(
        max_image_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
        max_image_pixels=settings.LOUPE_MAX_IMAGE_PIXELS,
        max_video_bytes=settings.LOUPE_MAX_VIDEO_BYTES,
        max_video_seconds=settings.LOUPE_MAX_VIDEO_SECONDS,
    )


def _resolve(base: Path, rel: object, where: str, errors: list[str]) -> Path | None:
    if not isinstance(rel, str) or not rel:
        errors.append(f"{where}: a media path must be a non-empty string")
        return None
    try:
        candidate = (base / rel).resolve()
    except (OSError, ValueError):  # e.g. an embedded NUL byte, or a symlink loop
        errors.append(f"{where}: path {rel!r} is not a usable file name")
        return None
    if Path(rel).is_absolute() or not candidate.is_relative_to(base.resolve()):
        errors.append(f"{where}: path {rel!r} must be relative and inside the manifest's folder")
        return None
    if not candidate.is_file():
        errors.append(f"{where}: file {rel!r} not found")
        return None
    return candidate


def _check(path: Path, kind: str, where: str, errors: list[str]) -> _Media | None:
    expected = "image" if kind in ("image", "views", "poster") else "video"
    try:
        info = media_checks.check_media(path, expected_kind=expected, limits=_limits())
    except media_checks.MediaError as exc:
        errors.append(f"{where}: {path.name}: {exc}")
        return None
    return _Media(path=path, mime=info.mime)


def _known_keys(raw: dict, allowed: set[str], where: str, errors: list[str]) -> bool:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        listed = ", ".join(map(repr, unknown))
        errors.append(f"{where}: unknown column {listed} (allowed: {', '.join(sorted(allowed))})")
    return not unknown


def _parse_sample(raw: object, base: Path, kind: str, where: str, errors: list[str]) -> _SampleIn | None:
    if not isinstance(raw, dict):
        errors.append(f"{where}: a sample must be an object")
        return None
    if not _known_keys(raw, SAMPLE_KEYS, where, errors):
        return None
    model = raw.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 100:
        errors.append(f"{where}: 'model' must be a non-empty label of at most 100 characters")
        return None
    present = [k for k in ("image", "video", "views") if k in raw]
    if present != [kind]:
        want = {"image": "an 'image'", "video": "a 'video'", "views": "a 'views' list"}[kind]
        errors.append(
            f"{where}: this campaign compares {kind}; each sample needs exactly {want} (found: {present or 'none'})"
        )
        return None
    seed = raw.get("seed")
    # bool is an int to Python, and the column is a signed 64-bit integer.
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not -(2**63) <= seed < 2**63):
        errors.append(f"{where}: 'seed' must be an integer")
        return None
    sample_settings = raw.get("settings") or {}
    if not isinstance(sample_settings, dict):
        errors.append(f"{where}: 'settings' must be an object")
        return None
    rels = raw[kind] if kind == "views" else [raw[kind]]
    if kind == "views" and (not isinstance(rels, list) or not (2 <= len(rels) <= 32)):
        errors.append(f"{where}: 'views' must be a list of 2 to 32 image paths in view order")
        return None
    files = []
    for rel in rels:
        path = _resolve(base, rel, where, errors)
        media = _check(path, kind, where, errors) if path else None
        if media is None:
            return None
        files.append(media)
    poster = None
    if "poster" in raw:
        if kind != "video":
            errors.append(f"{where}: 'poster' is only for videos")
            return None
        path = _resolve(base, raw["poster"], where, errors)
        poster = _check(path, "poster", where, errors) if path else None
        if poster is None:
            return None
    return _SampleIn(model=model.strip(), seed=seed, settings=sample_settings, files=files, poster=poster)


def _parse_gold(raw: object, n_samples: int, where: str, errors: list[str]) -> tuple[int, int, str] | None:
    if raw is None:
        return None
    ok = (
        isinstance(raw, dict)
        and set(raw) == {"pair", "answer"}
        and isinstance(raw["pair"], list)
        and len(raw["pair"]) == 2
        and all(isinstance(i, int) and 0 <= i < n_samples for i in raw["pair"])
        and raw["pair"][0] != raw["pair"][1]
        and raw["answer"] in Choice.values
    )
    if not ok:
        errors.append(
            f'{where}: \'gold\' must be {{"pair": [i, j], "answer": one of {", ".join(Choice.values)}}} '
            f"with two different sample indexes below {n_samples}"
        )
        return None
    return raw["pair"][0], raw["pair"][1], raw["answer"]


def _parse_entry(data: object, base: Path, kind: str, where: str, errors: list[str]) -> _PromptIn | None:
    if not isinstance(data, dict):
        errors.append(f"{where}: each line must be a JSON object")
        return None
    if not _known_keys(data, LINE_KEYS, where, errors):
        return None
    text = data.get("prompt")
    if not isinstance(text, str) or not text.strip():
        errors.append(f"{where}: 'prompt' must be non-empty text")
        return None
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        errors.append(f"{where}: 'metadata' must be an object")
        return None
    samples_raw = data.get("samples")
    if not isinstance(samples_raw, list) or len(samples_raw) < 2:
        errors.append(f"{where}: 'samples' must list at least two samples to compare")
        return None
    entry = _PromptIn(where=where, text=text.strip(), metadata=metadata)
    before = len(errors)
    for i, raw in enumerate(samples_raw):
        sample = _parse_sample(raw, base, kind, f"{where}, sample {i}", errors)
        if sample is not None:
            entry.samples.append(sample)
    entry.gold = _parse_gold(data.get("gold"), len(samples_raw), where, errors)
    return entry if len(errors) == before else None


def _read_manifest(path: Path, kind: str, errors: list[str]) -> list[_PromptIn]:
    entries = []
    # Decoded line by line, so a stray non-UTF-8 byte is reported with its line instead of crashing.
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            where = f"line {number}"
            try:
                line = raw_line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                errors.append(f"{where}: not UTF-8 text")
                continue
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                errors.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
                continue
            entry = _parse_entry(data, path.parent, kind, where, errors)
            if entry is not None:
                entries.append(entry)
    return entries


def _folder_as_lines(folder: Path, kind: str, errors: list[str]) -> list[tuple[str, dict]]:
    """Turn the folder layout into manifest-shaped entries (relative to `folder`)."""
    lines = []
    exts = {"image": {".png", ".jpg", ".jpeg", ".webp"}, "video": {".mp4", ".webm"}}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        where = f"folder {sub.name!r}"
        prompt_file = sub / "prompt.txt"
        if not prompt_file.is_file():
            errors.append(f"{where}: missing prompt.txt")
            continue
        try:
            data: dict = {"prompt": prompt_file.read_text(encoding="utf-8-sig").strip(), "samples": []}
        except UnicodeDecodeError:
            errors.append(f"{where}: prompt.txt is not UTF-8 text")
            continue
        if (sub / "metadata.json").is_file():
            try:
                data["metadata"] = json.loads((sub / "metadata.json").read_text(encoding="utf-8-sig"))
            except UnicodeDecodeError:
                errors.append(f"{where}: metadata.json is not UTF-8 text")
                continue
            except json.JSONDecodeError as exc:
                errors.append(f"{where}: metadata.json is not valid JSON ({exc.msg})")
                continue
        for item in sorted(sub.iterdir()):
            rel = str(item.relative_to(folder))
            if kind == "views" and item.is_dir():
                views = sorted(str(v.relative_to(folder)) for v in item.iterdir() if v.is_file())
                data["samples"].append({"model": item.name, "views": views})
            elif (
                kind != "views" and item.is_file() and item.suffix.lower() in exts[kind] and ".poster" not in item.name
            ):
                sample = {"model": item.stem, kind: rel}
                poster = item.with_name(item.stem + ".poster.png")
                if kind == "video" and poster.is_file():
                    sample["poster"] = str(poster.relative_to(folder))
                data["samples"].append(sample)
        lines.append((where, data))
    if not lines and not errors:
        errors.append(f"{folder}: no prompt folders found (expected sub-folders with prompt.txt)")
    return lines


def round_import_check(*, campaign: Campaign, source: Path) -> list[_PromptIn]:
    """Read and check everything; raise ImportRefused listing every problem. Writes nothing."""
    kind = KIND_BY_MODALITY[campaign.modality]
    errors: list[str] = []
    source = Path(source)
    if source.is_dir() and (source / "manifest.jsonl").is_file():
        source = source / "manifest.jsonl"
    if source.is_file():
        entries = _read_manifest(source, kind, errors)
    elif source.is_dir():
        entries = []
        for where, data in _folder_as_lines(source, kind, errors):
            entry = _parse_entry(data, source, kind, where, errors)
            if entry is not None:
                entries.append(entry)
    else:
        raise ImportRefused([f"{source}: no such file or folder"])
    if not entries and not errors:
        errors.append(f"{source}: the manifest is empty")
    if errors:
        raise ImportRefused(errors)
    return entries


def _store(media: _Media, round_id: int, written: list[str]) -> str:
    # The extension follows the checked content, not the supplied name (a PNG called .jpg stays a PNG).
    name = f"rounds/{round_id}/{uuid.uuid4().hex}{EXTENSION_BY_MIME[media.mime]}"
    with media.path.open("rb") as handle:
        stored = default_storage.save(name, File(handle))
    written.append(stored)
    return stored


def _version_for(label: str, modality: str, cache: dict[str, ModelVersion]) -> ModelVersion:
    if label not in cache:
        generator, _ = Generator.objects.get_or_create(
            name=f"imported-{modality}", defaults={"modality": modality, "family": Generator.Family.EXTERNAL}
        )
        cache[label], _ = ModelVersion.objects.get_or_create(generator=generator, name=label)
    return cache[label]


def round_import(*, campaign: Campaign, source: Path, max_pairs_per_prompt: int = 10) -> Round:
    """Create an open round from a manifest or folder; all or nothing (see the module docstring)."""
    if max_pairs_per_prompt < 1:
        raise Invalid("max_pairs_per_prompt must be at least 1.")
    entries = round_import_check(campaign=campaign, source=source)
    kind = KIND_BY_MODALITY[campaign.modality]
    written: list[str] = []
    try:
        with transaction.atomic():
            campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)  # serialise round numbers
            number = (campaign.rounds.order_by("-number").values_list("number", flat=True).first() or 0) + 1
            round_ = Round.objects.create(
                campaign=campaign, number=number, status=Round.Status.OPEN, source=str(source)[:500]
            )
            versions: dict[str, ModelVersion] = {}
            comparisons = []
            for entry in entries:
                prompt = Prompt.objects.create(round=round_, text=entry.text, metadata=entry.metadata)
                samples = []
                for s in entry.samples:
                    samples.append(
                        Sample.objects.create(
                            prompt=prompt,
                            round=round_,
                            model_version=_version_for(s.model, campaign.modality, versions),
                            seed=s.seed,
                            settings=s.settings,
                            kind=kind,
                            files=[_store(m, round_.id, written) for m in s.files],
                            mime_types=[m.mime for m in s.files],
                            poster=_store(s.poster, round_.id, written) if s.poster else "",
                        )
                    )
                comparisons += _pairs(round_, prompt, samples, entry.gold, campaign.overlap, max_pairs_per_prompt)
            Comparison.objects.bulk_create(comparisons)
            round_.model_versions.set(versions.values())
            round_.samples_per_prompt = max(len(e.samples) for e in entries)
            round_.save(update_fields=["samples_per_prompt"])
            return round_
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise


def _pairs(round_, prompt, samples, gold, overlap, cap) -> list[Comparison]:
    """All pairs of a prompt's samples, pairs across models first, capped; the gold pair always."""
    pairs = list(itertools.combinations(range(len(samples)), 2))
    pairs.sort(key=lambda ij: samples[ij[0]].model_version_id == samples[ij[1]].model_version_id)
    chosen = pairs[:cap]
    if gold is not None:
        i, j, _ = gold
        chosen = [p for p in chosen if set(p) != {i, j}][: cap - 1] + [(i, j)]
    out = []
    for i, j in chosen:
        is_gold = gold is not None and (i, j) == gold[:2]
        out.append(
            Comparison(
                round=round_,
                prompt=prompt,
                sample_first=samples[i],
                sample_second=samples[j],
                overlap=overlap,
                is_gold=is_gold,
                gold_answer=gold[2] if is_gold else "",
            )
        )
    return out
