"""The base generators shipped in training/weights/: intact (SHA256SUMS), recorded (training.json
names the command that reproduces them), within the size budget, and trained (their samples are
shapes the verifier can read, far above an untrained model's)."""

import hashlib
import json
from pathlib import Path

import pytest

from training.algorithms.builders import DEFAULT_SPECS, build_pipeline, safetensors_bytes
from training.algorithms.loading import WEIGHTS_DIR, load_generator, policy_from_pipeline
from training.algorithms.sampling import generate
from training.shapes import grammar, verify
from training.shapes.evaluate import eval_specs
from training.shapes.train_base import MODALITY

SHIPPED = ["shapes-image-eps", "shapes-image-flow", "shapes-video", "shapes-multiview"]


def _sums() -> dict[str, str]:
    lines = (Path(WEIGHTS_DIR) / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split("  ") for line in lines)}


def test_every_shipped_file_matches_its_checksum_and_fits_the_budget():
    sums = _sums()
    on_disk = {str(p.relative_to(WEIGHTS_DIR)) for p in Path(WEIGHTS_DIR).rglob("*.safetensors")}
    assert set(sums) == on_disk
    for name, digest in sums.items():
        assert hashlib.sha256((Path(WEIGHTS_DIR) / name).read_bytes()).hexdigest() == digest, name
    total = sum(safetensors_bytes(Path(WEIGHTS_DIR) / name) for name in SHIPPED)
    assert total <= 25 * 1024 * 1024


@pytest.mark.parametrize("name", SHIPPED)
def test_training_record_names_the_command_that_made_it(name):
    record = json.loads((Path(WEIGHTS_DIR) / name / "training.json").read_text())
    config = record["config"]
    assert record["command"] == (
        f"python manage.py shapes_train_base --model {name} --steps {config['steps']}"
        f" --batch-size {config['batch_size']} --seed {config['seed']} --threads {record['threads']}"
    )
    assert record["seconds"] > 0 and record["torch"]


def _probe_specs(name: str):
    """Eight evaluation prompts: the colour prompts (one shape of one colour) for images, the first
    eight of the modality otherwise."""
    modality = MODALITY[name]
    if modality == "image":
        return [s for s in eval_specs("image", prompts_per_task=None) if s.task == "colors"][:8]
    return eval_specs(modality)[:8]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_base_draws_what_the_verifier_can_read(name):
    """On eight evaluation prompts, the trained base earns several times the verifier score of the
    same architecture untrained."""
    specs = _probe_specs(name)
    prompts, seeds = [s.text for s in specs], list(range(len(specs)))

    def mean_score(policy) -> float:
        media = generate(policy, prompts, seeds=seeds, steps=10)
        return sum(verify.verify(s, m).score for s, m in zip(specs, media, strict=True)) / len(specs)

    trained = load_generator(name)
    untrained = build_pipeline(name, grammar.vocabulary(), spec=DEFAULT_SPECS[name])
    assert trained.family == ("epsilon" if name == "shapes-image-eps" else "flow")
    assert mean_score(trained) >= 0.5 > 0.2 >= mean_score(policy_from_pipeline(untrained))
