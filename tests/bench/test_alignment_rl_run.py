"""The RL benchmark end to end on the shipped video base, at toy sizes: the step limit holds, and
the adapters it keeps are the weights it evaluated (reloaded into the base, they score the same)."""

import pytest

from bench import alignment_rl
from bench.alignment_rl import WEIGHTS, _evaluator, main, run
from bench.plot import write_plot
from tests.bench.svgxml import SVG, parse
from training.algorithms.loading import load_generator, native_bf16

TOY = {
    "algo": "ppo",
    "modality": "video",
    "eval_prompts": 2,
    "eval_samples": 2,
    "eval_steps": 2,
    "sample_steps": 2,
    "sde_window": 1,
    "prompts_per_step": 2,
    "group_size": 2,
    "lr": 3e-2,
    "threads": 1,
}


def test_steps_limit_and_kept_adapters_reproduce_the_evaluation(tmp_path):
    keep = tmp_path / "adapters"
    live = tmp_path / "live.svg"
    result = run(TOY | {"steps": 2, "eval_every": 0.0, "minutes": 10.0, "keep_adapters": str(keep), "plot": str(live)})
    final = run(TOY | {"steps": 2, "eval_every": 100.0, "minutes": 10.0, "keep_adapters": str(tmp_path / "final")})

    assert result["train_steps"] == 2 and len(result["steps"]) == 2
    assert result["device"] == "cpu" and result["bf16_native"] is native_bf16("cpu")
    # an evaluation after each step (eval_every 0); the one after the last step is the final one
    assert [p["step"] for p in result["curve"]] == [0, 1, 2]
    assert sorted(p.name for p in keep.iterdir()) == ["step-1", "step-2"]
    assert result["kept_adapters"] == str(keep)
    # without evaluations during training: the final adapter is kept and the curve has two points
    assert [p["step"] for p in final["curve"]] == [0, 2]
    assert sorted(p.name for p in (tmp_path / "final").iterdir()) == ["step-2"]
    assert final["after"] == result["after"] | {"seconds": final["after"]["seconds"]}

    # training moved the score, so a kept base (or a stale adapter) would not reproduce it
    assert result["after"]["mean_score"] != result["before"]["mean_score"]
    policy = load_generator(str(WEIGHTS / "shapes-video"), adapter=str(keep / "step-2"))
    again = _evaluator(TOY, policy, "video", 2)()
    assert round(again["mean_score"], 4) == result["after"]["mean_score"]
    assert round(again["overall_accuracy"], 4) == result["after"]["accuracy"]
    assert round(again["mean_score"], 4) == result["curve"][2]["mean_score"]

    # the run plots: the curve's three evaluations and both steps' reward and KL; the plot drawn as
    # the run went (after each evaluation) ends the same as the one drawn from its result
    root = parse(write_plot(result, tmp_path / "run.svg").read_text())
    lines = {p.get("data-series"): p.get("points").split() for p in root.iter(f"{SVG}polyline")}
    assert {name: len(points) for name, points in lines.items()} == {
        "accuracy": 3,
        "mean score": 3,
        "mean reward": 2,
        "KL": 2,
    }
    assert live.read_text() == (tmp_path / "run.svg").read_text()


def test_a_plot_that_could_not_be_written_is_refused_before_the_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--plot", str(tmp_path / "missing" / "run.svg")])
    assert "no directory to write" in capsys.readouterr().err


def test_strict_verifier_reward_trains_on_accuracy_and_reports_the_score_beside_it():
    result = run(TOY | {"algo": "grpo", "verifier_reward": "strict", "steps": 2, "eval_every": 100.0, "minutes": 10.0})
    assert result["reward"] == "verifier, strict"
    assert len(result["steps"]) == 2
    for step in result["steps"]:
        # 2 prompts x 2 rollouts scored 0 or 1; the fraction of clauses is at least the verdict
        assert step["reward_mean"] * 4 == round(step["reward_mean"] * 4)
        assert step["reward_verifier"] >= step["reward_mean"]
    assert set(result["reward_gap"]) == {"reward_first", "reward_last", "verifier_first", "verifier_last"}


def test_an_unknown_verifier_reward_is_refused_before_the_base_loads(monkeypatch):
    def load_base(*args):
        raise AssertionError("the base was loaded before the reward was checked")

    monkeypatch.setattr(alignment_rl, "_load_base", load_base)
    with pytest.raises(ValueError, match="must be score or strict, got 'binary'"):
        run(TOY | {"algo": "grpo", "verifier_reward": "binary"})
