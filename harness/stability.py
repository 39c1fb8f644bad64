"""Do the verdicts survive a re-run? `repro stability PAPER --scale cpu`.

A paper's committed results were measured on one set of training seeds. Stability re-runs the
paper on a disjoint set of the same size and compares, claim by claim, the two verdicts. A verdict
that another set of seeds flips was never a finding; the worst flip is reproduced <-> not
reproduced, which no honest interval should allow. The comparison is written to
results/stability/PAPER.json and shown beside each claim in the report.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from harness.claims import NOT_REPRODUCED, REPRODUCED
from harness.results import read_run, run_path

GOAL_AGREEMENT = 0.90  # the goal: at least 90% of claims agree across two seed sets


def disjoint_seeds(seeds: list[int]) -> list[int]:
    """As many seeds as `seeds`, none of them: the next ones after the largest."""
    start = max(seeds) + 1 if seeds else 0
    return list(range(start, start + max(len(seeds), 1)))


def compare_verdicts(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Per claim: both verdicts, whether they agree, and whether it is a flip between reproduced
    and not reproduced (the two decided verdicts)."""
    a = {c["id"]: c["status"] for c in first["claims"]}
    b = {c["id"]: c["status"] for c in second["claims"]}
    rows = []
    for claim_id in a:
        sa, sb = a[claim_id], b.get(claim_id, "missing")
        rows.append({"id": claim_id, "first": sa, "second": sb, "agree": sa == sb,
                     "opposite": {sa, sb} == {REPRODUCED, NOT_REPRODUCED}})
    agree = sum(r["agree"] for r in rows)
    return {"paper": first["paper"], "scale": first["scale"], "first_seeds": first["seeds"],
            "second_seeds": second["seeds"], "claims": rows, "agreeing": agree, "total": len(rows),
            "agreement": agree / len(rows) if rows else None,
            "opposite_flips": [r["id"] for r in rows if r["opposite"]],
            "goal": {"agreement": GOAL_AGREEMENT, "met": bool(rows) and agree / len(rows) >= GOAL_AGREEMENT
                     and not any(r["opposite"] for r in rows)},
            "first_git": first.get("git", {}).get("sha"), "second_git": second.get("git", {}).get("sha"),
            "first_started": first.get("started")}


def runs_root(root: str | os.PathLike) -> Path:
    """The results root of the second seed sets' runs (one SCALE/PAPER.json each, like results/)."""
    return Path(root) / "stability" / "runs"


def stability_path(root: str | os.PathLike, paper: str) -> Path:
    return Path(root) / "stability" / f"{paper}.json"


def write_stability(report: dict[str, Any], root: str | os.PathLike = "results") -> Path:
    """Atomically write results/stability/PAPER.json (a crash never leaves half a file)."""
    path = stability_path(root, report["paper"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_stability(root: str | os.PathLike, paper: str) -> dict[str, Any] | None:
    path = stability_path(root, paper)
    return json.loads(path.read_text()) if path.is_file() else None


def stability_of(root: str | os.PathLike, record) -> tuple[dict[str, Any] | None, str | None]:
    """(the stability comparison of `record`, a committed run, or None; why an existing comparison
    is not its). A comparison whose first run is another run (other commit or seeds: the recipe has
    been re-run since) says nothing about this one: it is reported stale, never as held."""
    stability = read_stability(root, record.paper) if record.scale != "smoke" else None
    if not stability or stability.get("scale") != record.scale:
        return None, None
    sha = (record.git or {}).get("sha")
    other_run = stability.get("first_started", record.started) != record.started  # files before it was kept: git, seeds
    if other_run or stability.get("first_git") != sha or list(stability.get("first_seeds") or []) != list(record.seeds):
        return None, (f"stale: results/stability/{record.paper}.json compares an earlier run (git "
                      f"`{str(stability.get('first_git'))[:10]}`, seeds {stability.get('first_seeds')}); run "
                      f"`repro stability {record.paper} --scale {record.scale}` again")
    return stability, None


def run_stability(paper, scale: str, root: str | os.PathLike = "results", seeds: list[int] | None = None,
                  quiet: bool = False) -> dict[str, Any]:
    """Re-run `paper` at `scale` on seeds disjoint from its committed results (or `seeds`), into
    results/stability/runs/ so the committed file stays, and write the comparison."""
    from harness.runner import run_paper

    committed = run_path(root, scale, paper.name)
    if not committed.is_file():
        raise FileNotFoundError(f"no committed results at {committed} to compare with; run "
                                f"`repro run {paper.name} --scale {scale}` first")
    first = read_run(committed).to_dict()
    second_seeds = list(seeds) if seeds else disjoint_seeds(first["seeds"])
    overlap = set(second_seeds) & set(first["seeds"])
    if overlap:
        raise ValueError(f"the second seed set must be disjoint from the committed {first['seeds']}; "
                         f"{sorted(overlap)} appear in both")
    # The second run is kept beside the comparison (results/stability/runs/SCALE/PAPER.json), not in a
    # scratch directory: its numbers are the evidence for the second column, and the committed file
    # at results/SCALE/PAPER.json stays the first run's.
    second_root = runs_root(root)
    second = read_run(run_paper(paper, scale, second_seeds, root=second_root, quiet=quiet)).to_dict()
    report = compare_verdicts(first, second)
    report["second_results"] = run_path(second_root, scale, paper.name).relative_to(Path(root)).as_posix()
    write_stability(report, root)
    return report
