"""Atomic training checkpoints: temp directory, fsync, rename; sha256 recorded; safe loads.

A checkpoint is a directory ``<run_dir>/checkpoint-<step>/`` holding ``state.pt`` (trainable
tensors, optimizer state, random-generator states, the step) and ``meta.json`` (step, sha256 of
``state.pt``, free-form metadata). It is written under a temporary name, every file and the
directory are fsynced, and only then renamed into place, so a reader never sees half a
checkpoint: a crash leaves either the previous checkpoint or the new one. Loads use
``torch.load(weights_only=True)`` (no pickled code runs) and check the sha256 first.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

STATE_FILE = "state.pt"
META_FILE = "meta.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    sha256: str


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, write) -> None:
    with open(path, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def save_checkpoint(
    run_dir: str | Path, step: int, state: dict, *, meta: dict | None = None, keep: int = 2
) -> Checkpoint:
    """Write ``state`` (tensors, dicts, lists, numbers, strings) as checkpoint ``step`` atomically.

    Older checkpoints beyond the ``keep`` newest are removed after the new one is in place.
    """
    if step < 0:
        raise ValueError(f"step must be non-negative, got {step}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / f"checkpoint-{step}"
    tmp = run_dir / f".tmp-checkpoint-{step}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_synced(tmp / STATE_FILE, lambda fh: torch.save(state, fh))
        digest = sha256_file(tmp / STATE_FILE)
        record = {"step": step, "sha256": digest, "meta": meta or {}}
        _write_synced(tmp / META_FILE, lambda fh: fh.write(json.dumps(record, indent=2, sort_keys=True).encode()))
        _fsync_dir(tmp)
        if final.exists():  # a rerun of the same step replaces it
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old.path, ignore_errors=True)
    return Checkpoint(final, step, digest)


def list_checkpoints(run_dir: str | Path) -> list[Checkpoint]:
    """Complete checkpoints under ``run_dir``, oldest first (temporary directories are ignored)."""
    run_dir = Path(run_dir)
    found = []
    if not run_dir.is_dir():
        return found
    for child in run_dir.iterdir():
        match = _NAME.match(child.name)
        if not match or not (child / META_FILE).is_file() or not (child / STATE_FILE).is_file():
            continue
        record = json.loads((child / META_FILE).read_text())
        found.append(Checkpoint(child, int(match.group(1)), record["sha256"]))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(run_dir: str | Path) -> Checkpoint | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


class CorruptCheckpoint(ValueError):
    pass


def load_checkpoint(path: str | Path, *, expected_sha256: str | None = None, map_location="cpu") -> dict:
    """The state saved in checkpoint directory ``path``, after checking its sha256.

    ``expected_sha256`` (e.g. the value stored in the database) must match when given; the value
    in ``meta.json`` must always match.
    """
    path = Path(path)
    record = json.loads((path / META_FILE).read_text())
    actual = sha256_file(path / STATE_FILE)
    for expected in (record["sha256"], expected_sha256):
        if expected is not None and expected != actual:
            raise CorruptCheckpoint(f"checkpoint {path} has sha256 {actual}, expected {expected}")
    return torch.load(path / STATE_FILE, map_location=map_location, weights_only=True)
