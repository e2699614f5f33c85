"""Plots of benchmark results as standalone SVG files: `python -m bench.plot RESULT -o PLOT.svg`.

RESULT is a file holding a benchmark's output (its last JSON line is read, so the whole stdout of a
run can be saved and passed as it is). The alignment RL benchmark (`bench.alignment_rl`, GRPO and
PPO) draws, one panel each and sharing nothing but the file:

- the held-out verifier accuracy and mean score over wall time (the benchmark's curve);
- the rollouts' reward per step and, with a learned reward, the verifier's score of the same rollouts
  in their own panel (a learned reward that rises while the verifier does not is over-optimisation,
  and the two scales differ);
- the KL to the base per step.

`bench.alignment_rl --plot PLOT.svg` writes the same file at the end of a run. The SVG is built
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


@dataclass(frozen=True)
class Series:
    name: str
    points: tuple[tuple[float, float], ...]
    markers: bool = False  # a dot at every point (sparse series such as evaluations)


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
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{px(x)},{py(y)}" for x, y in series.points)
        out.append(
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.5" '
            f"data-series={quoteattr(series.name)}/>"
        )
        if series.markers:
            out.extend(f'<circle cx="{px(x)}" cy="{py(y)}" r="3" fill="{colour}"/>' for x, y in series.points)
        # a swatch, then the name (style= beats the sheet's text colour; a fill= attribute would not)
        out.append(
            f'<line x1="{legend_x - 7 * len(series.name) - 20}" y1="{top + 18}" '
            f'x2="{legend_x - 7 * len(series.name) - 6}" y2="{top + 18}" stroke="{colour}" stroke-width="3"/>'
        )
        out.append(
            f'<text x="{legend_x}" y="{top + 22}" class="legend" text-anchor="end" style="fill:{colour}">'
            f"{escape(series.name)}</text>"
        )
        legend_x -= 34 + 7 * len(series.name)
    return out


def svg(panels: list[Panel], *, title: str) -> str:
    """One SVG document: ``title`` above the panels, stacked top to bottom. Panels without points
    are left out; at least one must have some."""
    drawn = [p for p in panels if any(s.points for s in p.series)]
    if not drawn:
        raise ValueError("nothing to plot: no panel has a point")
    height = 30 + PANEL_HEIGHT * len(drawn)
    body = [f'<text x="{LEFT}" y="20" class="heading">{escape(title)}</text>']
    for i, panel in enumerate(drawn):
        body.extend(
            _panel_svg(
                Panel(panel.title, panel.x_label, panel.y_label, tuple(s for s in panel.series if s.points)),
                30 + i * PANEL_HEIGHT,
            )
        )
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


def rl_panels(result: dict) -> list[Panel]:
    """The panels of a `bench.alignment_rl` result (see the module's docstring)."""
    curve = result.get("curve") or []
    steps = result.get("steps") or []
    learned = result.get("reward_gap") is not None  # a learned reward, the verifier scored apart

    def per_step(key: str) -> tuple[tuple[float, float], ...]:
        return tuple((float(s["step"]), float(s[key])) for s in steps if key in s)

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
            "learned reward" if learned else "verifier score",
            (Series("mean reward", per_step("reward_mean")),),
        ),
    ]
    if learned:
        panels.append(
            Panel(
                "Verifier score of the same rollouts",
                "step",
                "verifier score",
                (Series("verifier", per_step("reward_verifier")),),
            )
        )
    panels.append(Panel("KL to the base", "step", "KL", (Series("KL", per_step("kl")),)))
    return panels


def rl_title(result: dict) -> str:
    algo = str(result.get("algo", "rl")).upper()
    return f"{algo} on {result.get('base', 'the base')} ({result.get('modality', '')}, {result.get('family', '')})"


def write_rl_plot(result: dict, path: str | Path) -> Path:
    """Write the SVG of a `bench.alignment_rl` result to ``path`` (atomically: a partial file never
    stands in for a plot)."""
    path = Path(path)
    text = svg(rl_panels(result), title=rl_title(result))
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    return path


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
        result = last_json(Path(args.result).read_text(encoding="utf-8"))
        if "curve" not in result or "steps" not in result:
            raise ValueError("not a bench.alignment_rl result (no curve and steps): only GRPO and PPO runs plot")
        write_rl_plot(result, args.output)
    except (OSError, ValueError) as error:
        print(f"bench.plot: {error}", file=sys.stderr)
        return 2
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
