"""Figures a paper declares and the report draws from a results file alone.

A paper says *what* to plot — which metric keys, against what, in which panel — as a `Figure`
built by `Paper.plots(scale)`, a pure function of the scale like its claims. The runner stores the
declaration in the results file (`extra.plots`) beside the metrics, and `repro report` draws every
figure from that file: a figure can be redrawn, restyled or checked without training anything, and
what it shows is exactly what the results say, intervals included.

    Figure("sweep", "GPT-2 size sweep", (
        Panel("WebText perplexity", x=("L2d64/params", "L3d96/params"), log_x=True, log_y=True,
              series=(Series("zero-shot", ("L2d64/webtext/perplexity", "L3d96/webtext/perplexity")),)),
    ))

`x` holds numbers, category labels, or metric keys (whose values are the x positions). A `bars`
panel draws one horizontal bar per key of its single series. Metrics the papers print as
percentages are drawn x100, as in the report's tables.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Series:
    label: str
    keys: tuple[str, ...]  # one metric key per x position
    dashed: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    series: tuple[Series, ...]
    x: tuple[Any, ...] = ()  # numbers, category labels or metric keys; empty for bars
    kind: str = "line"  # "line" (points with 95% intervals, joined) or "bars" (one bar per key)
    xlabel: str = ""
    ylabel: str = ""
    log_x: bool = False
    log_y: bool = False
    reference: float | None = None  # a horizontal line: chance, the majority class, a threshold


@dataclass(frozen=True)
class Figure:
    name: str  # file stem: figures/<scale>_<paper>_<name>.png
    title: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Figure:
        panels = tuple(Panel(**{**p, "series": tuple(Series(**{**s, "keys": tuple(s["keys"])}) for s in p["series"]),
                                "x": tuple(p.get("x") or ())}) for p in d["panels"])
        return cls(d["name"], d["title"], panels)


def _value(metrics: dict[str, Any], key: str) -> tuple[float, float, float] | None:
    """(value, low, high) of a metric in the displayed unit, or None when it was not measured."""
    from harness.metrics import display_factor  # the one rule for percentage-type metrics

    m = metrics.get(key)
    if not m or not isinstance(m.get("value"), (int, float)) or not math.isfinite(m["value"]):
        return None
    factor = display_factor(key)
    v = m["value"] * factor
    lo = m["ci_low"] * factor if isinstance(m.get("ci_low"), (int, float)) else v
    hi = m["ci_high"] * factor if isinstance(m.get("ci_high"), (int, float)) else v
    return v, lo, hi


def _x_positions(panel: Panel, metrics: dict[str, Any]) -> tuple[list[float], list[str] | None]:
    if all(isinstance(x, (int, float)) for x in panel.x):
        return [float(x) for x in panel.x], None
    if all(isinstance(x, str) and x in metrics for x in panel.x):
        return [(_value(metrics, x) or (math.nan,))[0] for x in panel.x], None
    return list(range(len(panel.x))), [str(x) for x in panel.x]


def draw(figure: Figure, metrics: dict[str, Any], out: Path) -> Path | None:
    """Draw `figure` from a results file's metrics into `out`; None when it has nothing measured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in figure.panels if any(_value(metrics, k) for s in p.series for k in s.keys)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 0.6, 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        # scales first: setting one afterwards resets the tick labels below. One x value on a log
        # axis gives it no width (nothing is drawn), so that panel stays linear
        one_x = len(set(panel.x)) < 2 and panel.kind != "bars"
        ax.set_xscale("log" if panel.log_x and not one_x else "linear")
        ax.set_yscale("log" if panel.log_y else "linear")
        if panel.kind == "bars":
            keys = [k for s in panel.series for k in s.keys]
            points = [(k, _value(metrics, k)) for k in keys]
            points = [(k, p) for k, p in points if p]
            ax.barh(range(len(points)), [p[0] for _, p in points],
                    xerr=[[p[0] - p[1] for _, p in points], [p[2] - p[0] for _, p in points]], capsize=3,
                    color="#4c72b0")
            ax.set_yticks(range(len(points)), [k for k, _ in points], fontsize=7)
            ax.invert_yaxis()
            if panel.reference is not None:
                ax.axvline(panel.reference, color="grey", linestyle=":", linewidth=1)
        else:
            xs, ticks = _x_positions(panel, metrics)
            for series in panel.series:
                pts = [(x, _value(metrics, k)) for x, k in zip(xs, series.keys)]
                pts = [(x, p) for x, p in pts if p and not math.isnan(x)]
                if not pts:
                    continue
                ax.errorbar([x for x, _ in pts], [p[0] for _, p in pts],
                            yerr=[[p[0] - p[1] for _, p in pts], [p[2] - p[0] for _, p in pts]],
                            marker="o", capsize=3, linestyle="--" if series.dashed else "-", label=series.label)
            if ticks:
                ax.set_xticks(xs, ticks, fontsize=8, rotation=30 if max(map(len, ticks)) > 6 else 0)
            if panel.reference is not None:
                ax.axhline(panel.reference, color="grey", linestyle=":", linewidth=1)
            if len(panel.series) > 1:
                ax.legend(fontsize=7)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
    fig.suptitle(f"{figure.title} (95% intervals)", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    from harness.report import _save

    return _save(fig, out)


def declared(paper, scale: str) -> list[dict[str, Any]]:
    """The figures `paper` declares at `scale`, as stored in its results file (none if it declares none)."""
    plots = getattr(paper, "plots", None)
    return [f.to_dict() for f in plots(scale)] if plots else []
