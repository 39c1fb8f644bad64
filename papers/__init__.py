"""Paper modules: one per paper, each declaring its scales, recipe, reported numbers and claims.

A paper module subclasses `Paper` and registers itself:

    @register
    class GPT2(Paper):
        name = "gpt2"
        reported_key = "gpt2_radford2019"         # the paper's key in reported.yaml
        citation = "Radford et al. 2019"
        def claims(self, scale) -> list[Claim]: ...  # a pure function of the scale
        def plots(self, scale) -> list[Figure]: ...  # its figures over metric keys (harness.plots), pure too
        def measure(self, scale, seeds) -> Measured: ...  # trains + evaluates, returns metrics

`run(paper, scale, seeds)` times `measure`, checks every claim against the measured metrics, and
writes `results/<scale>/<paper>.json` through the results store: the verdicts are computed there,
never written by a paper.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.scales import SCALES  # noqa: F401  (the scales a paper declares its recipes for)


@dataclass
class Measured:
    """What a paper's recipe produced: metrics by key (MetricResult-like dicts), the configs
    used, figure paths, and free-form notes (e.g. which claims a scale cannot address)."""

    metrics: dict[str, Any]
    configs: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # titled tables of text the report prints as they are (e.g. translation samples): title -> rows
    tables: dict[str, list[dict[str, str]]] = field(default_factory=dict)


class Paper:
    name: str = ""
    reported_key: str = ""
    citation: str = ""
    default_seeds: dict[str, list[int]] = {"smoke": [0], "cpu": [0], "gpu": [0]}
    figures_dir: Path = Path("results") / "figures"  # the runner points this into its results root

    def claims(self, scale: str) -> list:
        """The paper's claims as checked at `scale`: a pure function of the scale (never of state
        left by a `measure()` call), so a results file can be re-checked and a report rendered
        without running anything."""
        raise NotImplementedError

    def measure(self, scale: str, seeds: list[int]) -> Measured:
        raise NotImplementedError

    def save_figure(self, fig, filename: str) -> Path:
        """Write a matplotlib figure into the results' figures folder, close it, return its path."""
        import matplotlib.pyplot as plt

        out = self.figures_dir / filename
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
        plt.close(fig)
        return out


def one_seed(seeds: list[int]) -> int:
    """The seed of a `measure()` call. The runner (`harness.runner.measure_seeds`) calls measure()
    once per training seed and merges every metric over seeds, so a list of several is a mistake."""
    if len(seeds) != 1:
        raise ValueError(f"measure() takes one seed, not {seeds}: harness.runner.measure_seeds calls it "
                         "once per seed and merges every metric over seeds")
    return seeds[0]


PAPERS: dict[str, Paper] = {}


def register(cls: type[Paper]) -> type[Paper]:
    PAPERS[cls.name] = cls()
    return cls


def discover() -> dict[str, Paper]:
    """Import every module under papers/ so each registers itself."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")
    return PAPERS


def get_paper(name: str) -> Paper:
    discover()
    if name not in PAPERS:
        import difflib

        close = difflib.get_close_matches(name, PAPERS, n=3)
        known = ", ".join(sorted(PAPERS)) or "none yet"
        hint = f"did you mean {', '.join(close)}?" if close else f"registered: {known}"
        raise KeyError(f"unknown paper {name!r}; {hint}")
    return PAPERS[name]
