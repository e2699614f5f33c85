"""Atomic checkpoints and the shared training loop: sha256 checks, pruning, exact resume."""

import json
import os

import pytest
import torch

from training.algorithms.checkpoint import (
    CorruptCheckpoint,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
    sha256_file,
)
from training.algorithms.run import Run


def test_save_and_load_round_trip(tmp_path):
    tmp_path = tmp_path / "run"
    state = {"w": torch.arange(6.0).reshape(2, 3), "step": 3, "nested": {"xs": [1, 2]}}
    ckpt = save_checkpoint(tmp_path, 3, state, meta={"loss": 0.5})
    assert ckpt.path == tmp_path / "checkpoint-3" and ckpt.step == 3
    assert ckpt.sha256 == sha256_file(ckpt.path / "state.pt")
    loaded = load_checkpoint(ckpt.path, expected_sha256=ckpt.sha256)
    assert torch.equal(loaded["w"], state["w"]) and loaded["nested"] == {"xs": [1, 2]}
    assert json.loads((ckpt.path / "meta.json").read_text())["meta"] == {"loss": 0.5}
    # No temporary directory is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint-3"]


def test_tampered_or_unexpected_state_is_refused(tmp_path):
    ckpt = save_checkpoint(tmp_path, 1, {"w": torch.ones(2)})
    with pytest.raises(CorruptCheckpoint, match="expected"):
        load_checkpoint(ckpt.path, expected_sha256="0" * 64)
    with open(ckpt.path / "state.pt", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(CorruptCheckpoint):
        load_checkpoint(ckpt.path)


def test_pickled_code_is_not_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    ckpt = save_checkpoint(tmp_path, 1, {"ok": torch.ones(1)})
    torch.save({"evil": Evil()}, ckpt.path / "state.pt")
    meta = json.loads((ckpt.path / "meta.json").read_text())
    meta["sha256"] = sha256_file(ckpt.path / "state.pt")
    (ckpt.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(Exception, match="Weights only load failed|Unsupported global"):
        load_checkpoint(ckpt.path)


def test_keeps_only_the_newest_and_ignores_partial_writes(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, {"s": torch.tensor(step)}, keep=2)
    (tmp_path / ".tmp-checkpoint-4-99").mkdir()  # a crash mid-write
    (tmp_path / "checkpoint-5").mkdir()  # renamed by something else without files: not complete
    assert [c.step for c in list_checkpoints(tmp_path)] == [2, 3]
    assert latest_checkpoint(tmp_path).step == 3
    assert latest_checkpoint(tmp_path / "missing") is None


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    tmp_path = tmp_path / "run"
    save_checkpoint(tmp_path, 1, {"s": torch.tensor(1)})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, {"s": torch.tensor(2)})
    assert [c.step for c in list_checkpoints(tmp_path)] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-1"]


def _train(run_dir, total, stop_after=None, seed=0):
    """A toy regression trained through Run; data and noise come from the run's generators."""
    torch.manual_seed(123)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    model[0].bias.requires_grad_(False)  # a frozen tensor is not checkpointed nor changed
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.05)
    seen = []
    run = Run(
        run_dir,
        total_steps=total,
        seed=seed,
        checkpoint_every=2,
        on_step=seen.append,
        should_stop=(lambda: len(seen) >= stop_after) if stop_after else None,
    )
    start = run.resume(modules={"model": model}, optimizer=opt)
    for step in run.steps(start, optimizer=opt, lr_at=lambda step: 0.05 / (step + 1)):
        x = torch.randn(8, 4, generator=run.generator)
        noise = float(run.rng.normal())
        loss = ((model(x).squeeze(1) - (x.sum(1) + noise)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        metrics = {"loss": loss.item(), "lr": opt.param_groups[0]["lr"]}
        run.end_step(step, metrics, modules={"model": model}, optimizer=opt)
    run.close(modules={"model": model}, optimizer=opt)
    return model, run.result(), seen


def test_resume_reproduces_an_uninterrupted_run_exactly(tmp_path):
    straight, result, seen = _train(tmp_path / "a", 7)
    assert result.steps == 7 and not result.stopped and [s.step for s in seen] == list(range(1, 8))
    assert seen[-1].total == 7 and "loss" in seen[-1].metrics
    assert [s.metrics["lr"] for s in seen] == [0.05 / k for k in range(1, 8)]  # set before each step

    _, first, _ = _train(tmp_path / "b", 7, stop_after=3)  # stops after step 3: not a checkpoint step
    assert first.stopped and first.steps == 3 and first.checkpoint.step == 3
    resumed, second, seen2 = _train(tmp_path / "b", 7)
    assert [s.step for s in seen2] == [4, 5, 6, 7] and second.steps == 7
    assert seen2[0].metrics["lr"] == 0.05 / 4  # the schedule is a function of the step: nothing to restore
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b), name


def test_non_finite_metrics_stop_the_run(tmp_path):
    run = Run(tmp_path, total_steps=3, seed=0)
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        run.end_step(0, {"loss": float("nan")}, modules={}, optimizer=None)


def test_a_checkpoint_from_another_model_is_refused(tmp_path):
    _train(tmp_path, 2)
    other = torch.nn.Linear(4, 1)
    run = Run(tmp_path, total_steps=2, seed=0)
    with pytest.raises(ValueError, match="does not fit"):
        run.resume(modules={"model": other}, optimizer=None)


def test_a_learning_rate_schedule_needs_its_optimizer(tmp_path):
    run = Run(tmp_path, total_steps=3, seed=0)
    with pytest.raises(ValueError, match="pass optimizer="):
        next(run.steps(0, lr_at=lambda step: 0.1))
    assert list(run.steps(0)) == [0, 1, 2]  # without a schedule no optimizer is needed
