"""Plots of benchmark results as standalone SVG files: `python -m bench.plot RESULT -o PLOT.svg`.

RESULT is a file holding a benchmark's output (its last JSON line is read, so the whole stdout of a
run can be saved and passed as it is). The alignment RL benchmark (`bench.alignment_rl`, GRPO and
PPO) draws, one panel each:

- the held-out verifier accuracy and mean score over wall time (the benchmark's curve);
- the rollouts' reward per step and, with a learned or strict reward, the verifier's score of the same rollouts
  in their own panel (a learned reward that rises while the verifier does not is over-optimisation,
  and the two scales differ);
- the KL to the base per step.

Diffusion-DPO (`bench.alignment_dpo`) draws its loss, implicit accuracy and the policy's denoising
error against the reference's over the steps (:func:`dpo_panels`). `--plot PLOT.svg` on either
benchmark writes the same file at the end of a run. The SVG is built
here, with no plotting library: axes with rounded ticks, one polyline per series, a legend, every
text escaped. Pure functions, so that what a plot shows is tested exactly (tests/bench/test_plot.py).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

WIDTH = 720
PANEL_HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 45  # margins of a panel's plotting area, in pixels
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
FAINT, LEVEL = "#9ecae1", "#888888"  # each step's noisy figure under its running mean; reference levels
LEGEND_CHAR = 6.8  # estimated width of a legend character, in pixels


@dataclass(frozen=True)
class Series:
    name: str
    points: tuple[tuple[float, float], ...]
    markers: bool = False  # a dot at every point (sparse series such as evaluations)
    colour: str | None = None  # default: the panel's next colour
    dashed: bool = False  # a reference level (ln 2, chance) rather than a measurement


@dataclass(frozen=True)
class Panel:
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]


def ticks(low: float, high: float, intervals: int = 5) -> list[float]:
    """Rounded tick values covering [low, high]: a step of 1, 2 or 5 times a power of ten, chosen as
    the smallest such step that needs at most ``intervals`` intervals."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"ticks need finite bounds, got {low}, {high}")
    if high < low:
        low, high = high, low
    if high == low:  # a flat series: a unit-wide window around it
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / intervals
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        step = factor * power
        first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
        if last - first <= intervals:
            break
    return [round(k * step, 12) for k in range(first, last + 1)]


def _label(value: float) -> str:
    return f"{value:.6g}"


def _panel_svg(panel: Panel, top: float) -> list[str]:
    points = [p for s in panel.series for p in s.points]
    x_ticks = ticks(min(x for x, _ in points), max(x for x, _ in points))
    y_ticks = ticks(min(y for _, y in points), max(y for _, y in points))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    left, right = LEFT, WIDTH - RIGHT
    upper, lower = top + TOP, top + PANEL_HEIGHT - BOTTOM

    def px(x: float) -> float:
        return round(left + (x - x0) / (x1 - x0) * (right - left), 2)

    def py(y: float) -> float:
        return round(lower - (y - y0) / (y1 - y0) * (lower - upper), 2)

    out = [
        f'<text x="{left}" y="{top + 22}" class="title">{escape(panel.title)}</text>',
        f'<rect x="{left}" y="{upper}" width="{right - left}" height="{lower - upper}" class="frame"/>',
    ]
    for x in x_ticks:
        out.append(f'<line x1="{px(x)}" y1="{upper}" x2="{px(x)}" y2="{lower}" class="grid"/>')
        out.append(f'<text x="{px(x)}" y="{lower + 16}" class="tick" text-anchor="middle">{_label(x)}</text>')
    for y in y_ticks:
        out.append(f'<line x1="{left}" y1="{py(y)}" x2="{right}" y2="{py(y)}" class="grid"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4}" class="tick" text-anchor="end">{_label(y)}</text>')
    out.append(
        f'<text x="{(left + right) / 2}" y="{lower + 36}" class="axis" text-anchor="middle">'
        f"{escape(panel.x_label)}</text>"
    )
    out.append(
        f'<text x="16" y="{(upper + lower) / 2}" class="axis" text-anchor="middle" '
        f'transform="rotate(-90 16 {(upper + lower) / 2})">{escape(panel.y_label)}</text>'
    )
    legend_x = right
    for i, series in enumerate(panel.series):
        colour = series.colour or COLOURS[i % len(COLOURS)]
        stroke = f'stroke="{colour}" stroke-width="1.5"' + (' stroke-dasharray="5 4"' if series.dashed else "")
        coords = " ".join(f"{px(x)},{py(y)}" for x, y in series.points)
        out.append(f'<polyline points="{coords}" fill="none" {stroke} data-series={quoteattr(series.name)}/>')
        if series.markers:
            out.extend(f'<circle cx="{px(x)}" cy="{py(y)}" r="3" fill="{colour}"/>' for x, y in series.points)
        # the name right-aligned at legend_x, its swatch just left of it (the width is an estimate of
        # 12 px bold sans; style= beats the sheet's text colour, a fill= attribute would not)
        width = round(LEGEND_CHAR * len(series.name))
        out.append(
            f'<line x1="{legend_x - width - 22}" y1="{top + 18}" x2="{legend_x - width - 6}" y2="{top + 18}" '
            f'stroke="{colour}" stroke-width="3"/>'
        )
        out.append(
            f'<text x="{legend_x}" y="{top + 22}" class="legend" text-anchor="end" style="fill:{colour}">'
            f"{escape(series.name)}</text>"
        )
        legend_x -= width + 40
    return out


def _finite(panel: Panel) -> Panel:
    """The panel without non-finite points (a diverged loss) and the series left with none."""
    series = []
    for s in panel.series:
        points = tuple((x, y) for x, y in s.points if math.isfinite(x) and math.isfinite(y))
        if points:
            series.append(Series(s.name, points, s.markers, s.colour, s.dashed))
    return Panel(panel.title, panel.x_label, panel.y_label, tuple(series))


def svg(panels: list[Panel], *, title: str) -> str:
    """One SVG document: ``title`` above the panels, stacked top to bottom. Non-finite points are
    skipped, and panels left without points are left out; at least one must have some."""
    drawn = [p for p in map(_finite, panels) if p.series]
    if not drawn:
        raise ValueError("nothing to plot: no panel has a finite point")
    height = 30 + PANEL_HEIGHT * len(drawn)
    body = [f'<text x="{LEFT}" y="20" class="heading">{escape(title)}</text>']
    for i, panel in enumerate(drawn):
        body.extend(_panel_svg(panel, 30 + i * PANEL_HEIGHT))
    style = (
        "text{font-family:sans-serif;font-size:12px;fill:#222}.heading{font-size:15px;font-weight:bold}"
        ".title{font-size:13px;font-weight:bold}.tick{font-size:11px;fill:#555}"
        ".frame{fill:none;stroke:#888}.grid{stroke:#e4e4e4}.legend{font-weight:bold}"
    )
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}">',
            f"<style>{style}</style>",
            f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
            *body,
            "</svg>",
            "",
        ]
    )


def _per_step(steps: list[dict], key: str, window: int = 1) -> tuple[tuple[float, float], ...]:
    """(step, value) of every step record that has ``key``; with ``window`` > 1 the running mean."""
    kept = [s for s in steps if key in s]
    values = running_mean([float(s[key]) for s in kept], window)
    return tuple(zip((float(s["step"]) for s in kept), values, strict=True))


def rl_panels(result: dict) -> list[Panel]:
    """The panels of a `bench.alignment_rl` result (see the module's docstring)."""
    curve = result.get("curve") or []
    steps = result.get("steps") or []
    apart = result.get("reward_gap") is not None  # the reward is not the verifier's score, which is scored apart

    panels = [
        Panel(
            "Held-out evaluation",
            "minutes of training",
            "verifier",
            (
                Series("accuracy", tuple((p["minutes"], p["accuracy"]) for p in curve), markers=True),
                Series("mean score", tuple((p["minutes"], p["mean_score"]) for p in curve), markers=True),
            ),
        ),
        Panel(
            f"Rollout reward ({result.get('reward', 'reward')})",
            "step",
            "reward" if apart else "verifier score",
            (Series("mean reward", _per_step(steps, "reward_mean")),),
        ),
    ]
    if apart:
        panels.append(
            Panel(
                "Verifier score of the same rollouts",
                "step",
                "verifier score",
                (Series("verifier", _per_step(steps, "reward_verifier")),),
            )
        )
    panels.append(Panel("KL to the base", "step", "KL", (Series("KL", _per_step(steps, "kl")),)))
    return panels


def running_mean(values: list[float], window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    # a sum over each window rather than a running total: no rounding drift, and a window of 1 is the values
    return [sum(values[max(0, i + 1 - window) : i + 1]) / min(i + 1, window) for i in range(len(values))]


DPO_WINDOW = 25  # steps in the running means of the DPO panels: one batch's figures are noisy


def dpo_panels(result: dict) -> list[Panel]:
    """The panels of a `bench.alignment_dpo` result: the loss (each step and its running mean, with
    ln 2, the loss at initialisation), the implicit accuracy (running mean, with 0.5), and the
    policy's denoising error minus the reference's (rising means the adapter is getting worse at
    denoising as a whole while it separates winners from losers)."""
    steps = result.get("steps") or []
    x = [float(s["step"]) for s in steps]
    first, last = (x[0], x[-1]) if x else (0.0, 0.0)

    def level(name: str, value: float) -> Series:
        return Series(name, ((first, value), (last, value)) if x else (), colour=LEVEL, dashed=True)

    mean = f"mean of {DPO_WINDOW} steps"
    return [
        Panel(
            "Diffusion-DPO loss",
            "step",
            "loss",
            (
                Series("step", _per_step(steps, "loss"), colour=FAINT),
                Series(mean, _per_step(steps, "loss", DPO_WINDOW), colour=COLOURS[0]),
                level("ln 2", math.log(2)),
            ),
        ),
        Panel(
            "Implicit accuracy (winner's error falls more than the loser's)",
            "step",
            "share of pairs",
            (Series(mean, _per_step(steps, "implicit_acc", DPO_WINDOW)), level("0.5", 0.5)),
        ),
        Panel(
            "Denoising error of the policy minus the reference's",
            "step",
            "MSE difference",
            (Series(mean, _per_step(steps, "mse_gap", DPO_WINDOW)),),
        ),
    ]


def panels_for(result: dict) -> tuple[list[Panel], str]:
    """The panels and the title of a benchmark result: Diffusion-DPO's, or GRPO's and PPO's."""
    where = f"{result.get('base', 'the base')} ({result.get('modality', '')}"
    if result.get("algo") == "dpo" and "steps" in result:
        return dpo_panels(result), f"Diffusion-DPO on {where})"
    if "curve" in result and "steps" in result:
        return rl_panels(result), f"{str(result.get('algo', 'rl')).upper()} on {where}, {result.get('family', '')})"
    raise ValueError("not a result that plots: bench.alignment_rl (GRPO, PPO) and bench.alignment_dpo runs do")


def write_plot(result: dict, path: str | Path) -> Path:
    """Write the SVG of an alignment benchmark's result to ``path`` (atomically: a partial file never
    stands in for a plot)."""
    path = Path(path)
    panels, title = panels_for(result)
    text = svg(panels, title=title)
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)  # gone after the rename; a failed write leaves no stray file
    return path


def check_path(parser: argparse.ArgumentParser, path: str | None) -> None:
    """Refuse a ``--plot`` path with no folder to write in now, not after a long run."""
    if path and not Path(path).resolve().parent.is_dir():
        parser.error(f"--plot: no directory to write {path} in")


def plot_after_run(result: dict, path: str | None) -> int:
    """A benchmark's ``--plot``, once its result is printed: 0, or 1 with the reason on stderr (a plot
    that fails never costs the run's result)."""
    if not path:
        return 0
    try:
        print(f"plot: {write_plot(result, path)}", file=sys.stderr, flush=True)
    except (OSError, ValueError) as error:
        print(f"plot not written: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


def last_json(text: str) -> dict:
    """The last line of ``text`` that is a JSON object (a benchmark's result line)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError("no JSON object line found: pass a benchmark's output (its --json line)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("result", help="file with a benchmark's output (its last JSON line is read)")
    parser.add_argument("-o", "--output", required=True, help="SVG file to write")
    args = parser.parse_args(argv)
    try:
        write_plot(last_json(Path(args.result).read_text(encoding="utf-8")), args.output)
    except (OSError, ValueError) as error:
        print(f"bench.plot: {error}", file=sys.stderr)
        return 2
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
