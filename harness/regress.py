"""Regression check: compare fresh results against a committed baseline.

A metric regresses when it moved by more than its tolerance (relative to the baseline value, with
an absolute floor for values near zero); a claim regresses when its verdict changed. Every failure
names the paper, the metric, the old and new values and the tolerance.

Timings (metrics marked ``extra["timing"]``, see `MetricResult.timing`) are not compared: a baseline
measured on one machine says nothing about the speed another machine should reach, and CI runners
share their cores. They must still be present. Speed is tracked by `benchmarks/` as ratios against a
reference measured in the same run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness.results import read_run

DEFAULT_REL_TOL = 0.05
# An absolute floor: a smoke model's near-zero scores (a reward of 0.0004) move by rounding alone
# between two machines, and 5% of almost nothing is no tolerance at all.
DEFAULT_ABS_TOL = 1e-3


@dataclass
class Regression:
    paper: str
    what: str  # "metric <name>" or "claim <id>"
    old: object
    new: object
    tolerance: str

    def __str__(self) -> str:
        return f"{self.paper}: {self.what} moved from {self.old} to {self.new} (tolerance {self.tolerance})"


def compare_runs(baseline: dict, fresh: dict, rel_tol: float = DEFAULT_REL_TOL, abs_tol: float = DEFAULT_ABS_TOL) -> list[Regression]:
    paper = baseline["paper"]
    found = []
    for name, old in baseline["metrics"].items():
        if name not in fresh["metrics"]:
            found.append(Regression(paper, f"metric {name}", "present", "missing", "present"))
            continue
        new = fresh["metrics"][name]
        if old is None or new is None:  # a metric this scale does not measure
            if (old is None) != (new is None):
                found.append(Regression(paper, f"metric {name}", old and old["value"], new and new["value"], "equal"))
            continue
        if (old.get("extra") or {}).get("timing"):
            continue
        a, b = old["value"], new["value"]
        if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
            if a != b:
                found.append(Regression(paper, f"metric {name}", a, b, "equal"))
            continue
        allowed = max(abs_tol, rel_tol * abs(a))
        if abs(b - a) > allowed:
            found.append(Regression(paper, f"metric {name}", round(a, 6), round(b, 6), f"±{allowed:.4g} ({rel_tol:.0%})"))
    new_claims = {c["id"]: c["status"] for c in fresh.get("claims", [])}
    for claim in baseline.get("claims", []):
        status = new_claims.get(claim["id"], "missing")
        if status != claim["status"]:
            found.append(Regression(paper, f"claim {claim['id']}", claim["status"], status, "same verdict"))
    return found


def compare_dirs(baseline_dir: str | Path, fresh_dir: str | Path, rel_tol: float = DEFAULT_REL_TOL,
                 papers: list[str] | None = None) -> list[Regression]:
    """Every baseline results file (or only those of `papers`) against the fresh one of that name."""
    baseline_dir, fresh_dir = Path(baseline_dir), Path(fresh_dir)
    found = []
    for path in sorted(baseline_dir.glob("*.json")):
        if papers is not None and path.stem not in papers:
            continue
        fresh_path = fresh_dir / path.name
        if not fresh_path.exists():
            found.append(Regression(path.stem, "results file", str(path), "missing", "present"))
            continue
        found += compare_runs(read_run(path).to_dict(), read_run(fresh_path).to_dict(), rel_tol)
    return found
