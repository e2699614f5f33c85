"""bench.plot: rounded ticks, exact coordinates, escaped text, the RL result's panels, the command."""

import json
import math

import pytest

from bench import plot
from tests.bench.svgxml import SVG, parse


def test_ticks_are_rounded_steps_covering_the_range():
    assert plot.ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert plot.ticks(0.43, 0.455) == [0.43, 0.435, 0.44, 0.445, 0.45, 0.455]
    assert plot.ticks(-3.67, -3.52) == [-3.7, -3.65, -3.6, -3.55, -3.5]
    assert plot.ticks(0.0, 37.0) == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert plot.ticks(1.0, 0.0) == plot.ticks(0.0, 1.0)
    assert plot.ticks(3.0, 3.0) == [2.5, 3.0, 3.5]  # a flat series still gets an axis
    with pytest.raises(ValueError, match="finite"):
        plot.ticks(0.0, math.nan)


def _polylines(text: str) -> dict[str, list[tuple[float, float]]]:
    root = parse(text)
    return {
        line.get("data-series"): [tuple(map(float, xy.split(","))) for xy in line.get("points").split()]
        for line in root.iter(f"{SVG}polyline")
    }


def test_points_land_on_the_axes_ticks_exactly():
    panel = plot.Panel("p", "x", "y", (plot.Series("s", ((0.0, 0.0), (5.0, 0.5), (10.0, 1.0))),))
    text = plot.svg([panel], title="t")
    # plotting area: x from LEFT (70) to WIDTH - RIGHT (700); y from 30 + TOP (70) down to 30 + 240 - 45 (225)
    assert _polylines(text) == {"s": [(70.0, 225.0), (385.0, 147.5), (700.0, 70.0)]}
    root = parse(text)
    assert root.get("height") == "270"
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert labels == ["0", "2", "4", "6", "8", "10", "0", "0.2", "0.4", "0.6", "0.8", "1"]


def test_text_is_escaped_and_empty_panels_are_left_out():
    title = 'GRPO on <base> & "friends"'
    full = plot.Panel("a < b", "x", "y", (plot.Series("x & y", ((0.0, 1.0), (1.0, 2.0))),))
    empty = plot.Panel("empty", "x", "y", (plot.Series("none", ()),))
    root = parse(plot.svg([empty, full], title=title))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert title in texts and "a < b" in texts and "x & y" in texts and "empty" not in texts
    assert [line.get("data-series") for line in root.iter(f"{SVG}polyline")] == ["x & y"]
    with pytest.raises(ValueError, match="nothing to plot"):
        plot.svg([empty], title="t")


def _result(*, learned: bool) -> dict:
    steps = [
        {"step": 1, "reward_mean": -3.6 if learned else 0.3, "reward_verifier": 0.30, "kl": 0.0},
        {"step": 2, "reward_mean": -3.5 if learned else 0.4, "reward_verifier": 0.35, "kl": 2e-5},
    ]
    curve = [
        {"minutes": 0.0, "step": 0, "accuracy": 0.4, "mean_score": 0.8},
        {"minutes": 1.5, "step": 2, "accuracy": 0.45, "mean_score": 0.85, "gained": 3, "lost": 1},
    ]
    gap = {"reward_first": -3.6, "reward_last": -3.5} if learned else None
    return {
        "algo": "ppo",
        "base": "b",
        "modality": "video",
        "family": "eps",
        "reward": "r",
        "curve": curve,
        "steps": steps,
        "reward_gap": gap,
    }


def test_rl_panels_show_the_verifier_apart_only_with_a_learned_reward():
    titles = [p.title for p in plot.rl_panels(_result(learned=False))]
    assert titles == ["Held-out evaluation", "Rollout reward (r)", "KL to the base"]
    panels = plot.rl_panels(_result(learned=True))
    assert [p.title for p in panels][2] == "Verifier score of the same rollouts"
    assert panels[0].series[0].points == ((0.0, 0.4), (1.5, 0.45))
    assert panels[1].series[0].points == ((1.0, -3.6), (2.0, -3.5))
    assert panels[2].series[0].points == ((1.0, 0.30), (2.0, 0.35))
    assert panels[3].series[0].points == ((1.0, 0.0), (2.0, 2e-5))


def test_the_command_plots_a_saved_output_and_refuses_other_results(tmp_path, capsys):
    saved = tmp_path / "run.txt"
    saved.write_text("progress line\n{not json\n" + json.dumps(_result(learned=True)) + "\n")
    out = tmp_path / "run.svg"
    assert plot.main([str(saved), "-o", str(out)]) == 0
    assert set(_polylines(out.read_text())) == {"accuracy", "mean score", "mean reward", "verifier", "KL"}

    other = tmp_path / "dpo.txt"
    other.write_text(json.dumps({"algo": "dpo", "win_rate": 0.5}) + "\n")
    assert plot.main([str(other), "-o", str(tmp_path / "dpo.svg")]) == 2
    assert not (tmp_path / "dpo.svg").exists()
    assert not list(tmp_path.glob("*.tmp"))
    assert "not a result that plots" in capsys.readouterr().err
    assert plot.main([str(tmp_path / "missing.txt"), "-o", str(tmp_path / "m.svg")]) == 2


def test_running_mean_averages_the_window_before_each_value():
    assert plot.running_mean([1.0, 2.0, 3.0, 4.0, 5.0], 2) == [1.0, 1.5, 2.5, 3.5, 4.5]
    assert plot.running_mean([1.0, 2.0, 6.0], 5) == [1.0, 1.5, 3.0]
    assert plot.running_mean([4.0, 8.0], 1) == [4.0, 8.0]
    with pytest.raises(ValueError, match="window"):
        plot.running_mean([1.0], 0)


def test_dpo_panels_draw_the_steps_against_their_reference_levels():
    steps = [
        {"step": k, "loss": 0.75 - 0.125 * k, "implicit_acc": 0.5 + 0.25 * k, "mse_gap": 2.0**-k} for k in (1, 2, 3)
    ]
    loss, accuracy, gap = plot.dpo_panels({"algo": "dpo", "steps": steps})
    assert loss.series[0].points == ((1.0, 0.625), (2.0, 0.5), (3.0, 0.375))
    assert loss.series[2].points == ((1.0, math.log(2)), (3.0, math.log(2)))  # the loss at initialisation
    # fewer steps than the window: the running mean of all so far
    assert [y for _, y in accuracy.series[0].points] == [0.75, 0.875, 1.0]
    assert accuracy.series[1].points == ((1.0, 0.5), (3.0, 0.5))
    assert [y for _, y in gap.series[0].points] == [0.5, 0.375, 0.875 / 3]
    panels, title = plot.panels_for({"algo": "dpo", "base": "b", "modality": "image", "steps": steps})
    assert title == "Diffusion-DPO on b (image)" and len(panels) == 3


def test_non_finite_points_are_skipped():
    diverged = plot.Panel("loss", "step", "loss", (plot.Series("s", ((1.0, 0.7), (2.0, math.nan), (3.0, 0.6))),))
    gone = plot.Panel("gone", "step", "y", (plot.Series("g", ((1.0, math.inf),)),))
    text = plot.svg([diverged, gone], title="t")
    assert [len(points) for points in _polylines(text).values()] == [2]
    assert "gone" not in text
    with pytest.raises(ValueError, match="finite"):
        plot.svg([gone], title="t")


def test_a_failed_plot_after_a_run_is_said_not_raised(tmp_path, capsys):
    result = _result(learned=False)
    assert plot.plot_after_run(result, None) == 0
    assert plot.plot_after_run(result, str(tmp_path / "ok.svg")) == 0 and (tmp_path / "ok.svg").is_file()
    assert plot.plot_after_run({"algo": "dpo"}, str(tmp_path / "no.svg")) == 1
    assert "plot not written: not a result that plots" in capsys.readouterr().err
    assert not (tmp_path / "no.svg").exists()
