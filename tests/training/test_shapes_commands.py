"""The two shapes-world commands end to end on small models: training saves a complete, checksummed
pipeline with the command that made it; evaluation prints per-task accuracy as one JSON object."""

import hashlib
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.training.algorithms.tiny import TINY_SPECS, WORDS
from training.algorithms.builders import build_pipeline, save_pipeline


def test_train_base_saves_a_checksummed_pipeline_with_its_command(tmp_path):
    out = io.StringIO()
    call_command(
        "shapes_train_base", "--model", "shapes-image-eps", "--steps", "2", "--batch-size", "2",
        "--threads", "1", "--out", str(tmp_path), stdout=out,
    )  # fmt: skip
    target = tmp_path / "shapes-image-eps"
    assert (target / "model_index.json").is_file()
    record = json.loads((target / "training.json").read_text())
    assert record["command"] == (
        "python manage.py shapes_train_base --model shapes-image-eps --steps 2 --batch-size 2 --seed 0 --threads 1"
    )
    assert record["threads"] == 1 and record["config"]["steps"] == 2 and record["device"] == "cpu"
    sums = (tmp_path / "SHA256SUMS").read_text().splitlines()
    files = sorted(target.rglob("*.safetensors"))
    assert len(sums) == len(files) >= 2
    for line in sums:
        digest, name = line.split("  ")
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tmp")]  # the staging folder is gone
    assert "Saved" in out.getvalue()


def test_train_base_refuses_an_unknown_model(tmp_path):
    with pytest.raises(CommandError, match="Unknown model 'shapes-audio'"):
        call_command("shapes_train_base", "--model", "shapes-audio", "--out", str(tmp_path))


def test_train_base_refuses_a_device_it_cannot_use_before_training(tmp_path):
    out = tmp_path / "weights"
    with pytest.raises(CommandError, match="Cannot train on device 'tpu:7'"):
        call_command("shapes_train_base", "--model", "shapes-image-eps", "--device", "tpu:7", "--out", str(out))
    assert not out.exists()


def test_eval_prints_accuracy_per_task_as_json(tmp_path):
    name = "shapes-image-eps"
    path = save_pipeline(build_pipeline(name, WORDS, spec=TINY_SPECS[name]), tmp_path / name)
    out = io.StringIO()
    call_command(
        "shapes_eval", "--model", str(path), "--prompts-per-task", "1", "--samples-per-prompt", "2",
        "--steps", "2", "--guidance", "2", "--json", stdout=out,
    )  # fmt: skip
    report = json.loads(out.getvalue().strip().splitlines()[-1])
    assert set(report["tasks"]) == {"single_object", "two_objects", "counting", "colors", "position", "color_attr"}
    assert report["samples"] == 12 and report["guidance"] == 2.0 and report["steps"] == 2
    assert 0 <= report["overall_accuracy"] <= 1 and 0 <= report["diversity"] <= 1
    assert report["k"] == 2 and all(row["pass_at_k"] >= row["accuracy"] for row in report["tasks"].values())


def test_eval_says_what_it_cannot_load(tmp_path):
    with pytest.raises(CommandError, match="Cannot load"):
        call_command("shapes_eval", "--model", str(tmp_path / "missing"))
