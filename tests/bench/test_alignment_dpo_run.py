"""The Diffusion-DPO benchmark end to end on the shipped epsilon image base, at toy sizes: which
prompts it trains on, and the win rate split by task adding up to the whole."""

from collections import Counter

import pytest
import torch

from bench.alignment_dpo import _training_specs, eval_scales, main, run
from bench.plot import write_plot
from tests.bench.svgxml import SVG, parse
from training.algorithms.loading import native_bf16
from training.shapes import evaluate, grammar

TOY = {
    "judgments": 12,
    "sample_steps": 2,
    "eval_prompts": 12,  # single object (3), two objects (6) and 3 of counting
    "eval_seeds": 2,
    "dpo_steps": 2,
    "batch": 2,
    "micro_batch": 1,
    "lr": 3e-2,
    "threads": 1,
}


def _parts_add_up(result: dict) -> None:
    by_task = result["by_task"]
    assert list(by_task) == ["single_object", "two_objects", "counting"]
    for key in ("wins", "ties", "losses"):
        assert sum(v[key] for v in by_task.values()) == result[key]
    assert [v["wins"] + v["ties"] + v["losses"] for v in by_task.values()] == [6, 12, 6]  # prompts x 2 seeds
    for v in [result, *by_task.values()]:
        n = v["wins"] + v["ties"] + v["losses"]
        assert v["win_rate"] == round((v["wins"] + 0.5 * v["ties"]) / n, 4)


def test_default_and_balanced_training_prompts(tmp_path):
    held_out = run(TOY | {"eval_scales": "2"})
    # the same samples with the adapter doubled: scale 1 is the headline, and both count every sample
    assert list(held_out["by_scale"]) == ["1", "2"]
    headline = {k: held_out[k] for k in ("win_rate", "wins", "ties", "losses", "win_rate_decisive")}
    trained = {"accuracy": held_out["trained_accuracy"], "mean_score": held_out["trained_mean_score"]}
    assert held_out["by_scale"]["1"] == headline | trained
    doubled = held_out["by_scale"]["2"]
    assert doubled["wins"] + doubled["ties"] + doubled["losses"] == 24
    assert doubled["mean_score"] != trained["mean_score"]  # the doubled adapter made other samples
    # every step is in the result (5 significant figures), and its plot draws them
    assert [s["step"] for s in held_out["steps"]] == [1, 2]
    assert held_out["steps"][-1]["loss"] == pytest.approx(held_out["train_last"]["loss"], abs=1e-4)
    svg = parse(write_plot(held_out, tmp_path / "dpo.svg").read_text())
    lines = [(p.get("data-series"), len(p.get("points").split())) for p in svg.iter(f"{SVG}polyline")]
    assert lines == [("step", 2), ("mean of 25 steps", 2), ("ln 2", 2), ("mean of 25 steps", 2), ("0.5", 2)] + [
        ("mean of 25 steps", 2)
    ]
    assert held_out["held_out"]["train_prompts"] == "held-out"
    assert held_out["device"] == "cpu"  # --device's default
    assert held_out["bf16_native"] is native_bf16("cpu")
    # the toy evaluates every single-object and two-object prompt, so none of those is trained
    assert not {"single_object", "two_objects"} & set(held_out["held_out"]["train_tasks"])
    assert held_out["held_out"]["seeds_only_tasks"] == []
    _parts_add_up(held_out)

    balanced = run(TOY | {"judgments": 48, "train_prompts": "balanced"})
    assert balanced["held_out"]["train_prompts"] == "balanced"
    assert set(balanced["held_out"]["train_tasks"]) == set(grammar.TASKS)
    # every single-object and two-object prompt is evaluated, so those trained on evaluation prompts
    assert {"single_object", "two_objects"} <= set(balanced["held_out"]["seeds_only_tasks"])
    _parts_add_up(balanced)


def test_balanced_draws_cover_every_task_and_hold_out_the_rest():
    all_eval = {s.text for s in evaluate.eval_specs("image")}
    default = _training_specs("image", all_eval, 600, seed=0)
    assert not {s.text for s in default} & all_eval
    assert set(Counter(s.task for s in default)) == {"counting", "position", "color_attr"}

    balanced = _training_specs("image", all_eval, 600, seed=0, mode="balanced")
    counts = Counter(s.task for s in balanced)
    assert set(counts) == set(grammar.TASKS) and min(counts.values()) > 600 / 6 / 2
    # the tasks with prompts left still train on none of their evaluation prompts
    for task in ("counting", "position", "color_attr"):
        assert not {s.text for s in balanced if s.task == task} & all_eval
    assert _training_specs("image", all_eval, 600, seed=0, mode="balanced") == balanced  # seeded

    with pytest.raises(ValueError, match="train-prompts"):
        _training_specs("image", all_eval, 10, seed=0, mode="everything")


def test_eval_scales_are_checked_before_any_work(capsys):
    assert eval_scales("2, 4,2") == [1.0, 2.0, 4.0]
    assert eval_scales([1, 0.5]) == [1.0, 0.5]
    for bad in ("0", "-1", "nan", "two"):
        with pytest.raises(ValueError, match="eval-scales"):
            eval_scales(bad)
    with pytest.raises(SystemExit):
        main(["--eval-scales", "0"])
    assert "positive and finite" in capsys.readouterr().err


def _saved_adapter(directory, *, identity: bool):
    """An adapter on the shipped epsilon base: B = 0 (the base itself) or random A and B."""
    from bench.alignment_dpo import DEFAULT_BASE
    from training.algorithms.loading import load_generator

    policy = load_generator(str(DEFAULT_BASE))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        policy.add_adapter(rank=2, init=identity)
    return str(policy.save_adapter(directory))


def test_a_saved_adapter_is_judged_without_training(tmp_path, capsys):
    judge = {k: TOY[k] for k in ("sample_steps", "eval_prompts", "eval_seeds", "threads")}
    same = run(judge | {"adapter": _saved_adapter(tmp_path / "same", identity=True)})
    # an adapter whose update is zero draws exactly the base's samples: every verdict a tie
    assert (same["wins"], same["ties"], same["losses"], same["win_rate"]) == (0, 24, 0, 0.5)
    assert same["judgments"] is None and same["steps"] == [] and same["train_last"] == {}
    assert same["adapter"] == str(tmp_path / "same") and same["held_out"]["samples_per_model"] == 24
    _parts_add_up(same)

    other = run(judge | {"adapter": _saved_adapter(tmp_path / "other", identity=False)})
    assert other["ties"] < 24  # a random update changes samples
    assert other["base_mean_score"] == same["base_mean_score"]  # against the same base samples
    _parts_add_up(other)

    with pytest.raises(FileNotFoundError, match="no LoRA adapter"):
        run(judge | {"adapter": str(tmp_path / "nothing-here")})
    with pytest.raises(SystemExit):
        main(["--adapter", str(tmp_path / "same"), "--plot", str(tmp_path / "p.svg")])
    assert "with --adapter nothing is trained" in capsys.readouterr().err
