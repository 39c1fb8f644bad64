"""Run one paper at one scale: measure, check every claim, record the result.

The paper module produces measured metrics; this module — not the paper — computes each claim's
verdict (harness.claims) and writes results/<scale>/<paper>.json through the results store, which
keeps the earlier run in results/history/.
"""

from __future__ import annotations

from pathlib import Path

from harness.claims import check_claims, load_reported
from harness.results import RunRecord, write_run


def run_paper(paper, scale: str, seeds: list[int] | None = None, root: str | Path = "results", quiet: bool = False) -> Path:
    seeds = list(seeds) if seeds else list(getattr(paper, "default_seeds", {}).get(scale, [0]))
    record = RunRecord.start(paper.name, scale, seeds, configs={})
    paper.figures_dir = Path(root) / "figures"
    measured = paper.measure(scale, seeds)
    record.configs = measured.configs
    from harness.results import configs_hash

    record.configs_hash = configs_hash(measured.configs)
    record.metrics = {k: (v.to_dict() if hasattr(v, "to_dict") else dict(v)) for k, v in measured.metrics.items()}
    record.claims = check_claims(paper.claims(), measured.metrics)
    record.reported = load_reported(paper.reported_key) if paper.reported_key else []
    record.figures = list(measured.figures)
    record.notes = "\n".join(measured.notes)
    if getattr(measured, "tables", None):
        record.extra = {**(record.extra or {}), "tables": measured.tables}
    path = write_run(record.finish(), root)
    if not quiet:
        print(f"{paper.name} @ {scale}: {record.wall_time_s:.0f} s -> {path}")
        for claim in record.claims:
            print(f"  {claim['id']:<8} {claim['status']:<15} {claim.get('explanation', '')}")
    return path
