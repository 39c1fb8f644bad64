"""Run one paper at one scale: measure, check every claim, record the result.

The paper module produces measured metrics; this module — not the paper — computes each claim's
verdict (harness.claims) and writes results/<scale>/<paper>.json through the results store, which
keeps the earlier run in results/history/.
"""

from __future__ import annotations

from pathlib import Path

from harness.claims import UnknownMetricError, check_claims, load_reported
from harness.results import RunRecord, write_run


def measure_seeds(paper, scale: str, seeds: list[int]):
    """Call the paper's recipe once per training seed and merge: every metric becomes a metric
    over seeds (`harness.seeds.across_seeds`), which keeps each seed's value. The runner owns the
    seed loop so that `--seeds 0 1 2` can never be silently reduced to the first seed. Figures,
    notes and tables are the last seed's; configs the first seed's, with the seeds listed."""
    from harness.seeds import across_seeds

    runs = [(seed, paper.measure(scale, [seed])) for seed in seeds]
    keys = list(dict.fromkeys(k for _, m in runs for k in m.metrics))
    metrics = {}
    for key in keys:
        per_seed = {seed: m.metrics[key] for seed, m in runs if m.metrics.get(key) is not None}
        metrics[key] = across_seeds(key, per_seed) if per_seed else None
    first, last = runs[0][1], runs[-1][1]
    last.metrics = metrics
    last.configs = {**first.configs, "seeds": list(seeds)} if len(seeds) > 1 else first.configs
    return last


def run_paper(paper, scale: str, seeds: list[int] | None = None, root: str | Path = "results", quiet: bool = False) -> Path:
    seeds = list(seeds) if seeds else list(getattr(paper, "default_seeds", {}).get(scale, [0]))
    record = RunRecord.start(paper.name, scale, seeds, configs={})
    paper.figures_dir = Path(root) / "figures"
    measured = measure_seeds(paper, scale, seeds)
    from harness.results import configs_hash, json_configs

    record.configs = json_configs(measured.configs)
    record.configs_hash = configs_hash(record.configs)
    record.metrics = {k: (v.to_dict() if hasattr(v, "to_dict") else (None if v is None else dict(v)))
                      for k, v in measured.metrics.items()}
    record.claims = check_claims(paper.claims(scale), measured.metrics)
    record.reported = load_reported(paper.reported_key) if paper.reported_key else []
    # relative to the results root (figures/NAME.png): a path into a scratch root (repro regress
    # re-runs in /tmp) would dangle once that root is gone
    record.figures = [f"figures/{Path(f).name}" for f in measured.figures]
    record.notes = "\n".join(measured.notes)
    if getattr(measured, "tables", None):
        record.extra = {**(record.extra or {}), "tables": measured.tables}
    from harness.plots import declared

    if declared(paper, scale):  # the figures the report draws from this file alone
        record.extra = {**(record.extra or {}), "plots": declared(paper, scale)}
    path = write_run(record.finish(), root)
    if not quiet:
        print(f"{paper.name} @ {scale}: {record.wall_time_s:.0f} s -> {path}")
        for claim in record.claims:
            print(f"  {claim['id']:<8} {claim['status']:<15} {claim.get('explanation', '')}")
    return path


# what across_seeds keeps per seed; the rest of a merged metric's extra describes the metric itself
_PER_SEED_KEYS = {"items", "item_ids", "seeds", "per_seed", "seed_items", "per_seed_ci", "ci_method"}


def remerged(m):
    """A metric merged over seeds, merged again from the per-seed values it stored (each seed's
    value, per-item values and test-set interval) under today's `across_seeds`: a recheck then
    recomputes the metric's interval too, not only the verdicts read from it. A one-seed or
    unmerged metric comes back as it is."""
    from harness.metrics import MetricResult
    from harness.seeds import across_seeds

    extra = m.extra or {}
    seeds, values = extra.get("seeds"), extra.get("per_seed")
    if not seeds or values is None or len(seeds) < 2 or len(values) != len(seeds) or None in values:
        return m  # a seed's non-finite value was stored as null: nothing to merge again
    shared = {k: v for k, v in extra.items() if k not in _PER_SEED_KEYS}
    per_seed = {}
    for i, seed in enumerate(seeds):
        own = dict(shared)
        if "seed_items" in extra:
            own["items"] = extra["seed_items"][i]
            if "item_ids" in extra:
                own["item_ids"] = extra["item_ids"]
        lo, hi = extra["per_seed_ci"][i] if "per_seed_ci" in extra else (None, None)
        per_seed[seed] = MetricResult(m.name, values[i], m.n, lo, hi, own)
    return across_seeds(m.name, per_seed)


def recheck_paper(paper, scale: str, root: str | Path = "results") -> tuple[Path, dict[str, tuple[str, str]]]:
    """Decide every claim of a recorded run again, from its stored metrics, under today's claim
    rules (`harness.claims`, `harness.seeds`): nothing is trained or scored. The measurements,
    configs and provenance stay as they were; the file says when and at which commit the verdicts
    were recomputed, and the previous file goes to history. Returns the path and, per claim,
    (verdict before, verdict now)."""
    from harness.metrics import MetricResult
    from harness.results import git_info, read_run, run_path, utc_now

    path = run_path(root, scale, paper.name)
    if not path.exists():
        raise FileNotFoundError(f"no results file {path}: run `repro run {paper.name} --scale {scale}` first")
    record = read_run(path)
    metrics = {k: None if v is None else remerged(MetricResult.from_dict(v)) for k, v in record.metrics.items()}
    record.metrics = {k: None if m is None else m.to_dict() for k, m in metrics.items()}
    before = {c["id"]: c["status"] for c in record.claims}
    try:
        record.claims = check_claims(paper.claims(scale), metrics)
    except UnknownMetricError as e:  # today's claims read a metric the recorded run never measured
        raise UnknownMetricError(f"{path} was measured by older code than today's claims: {e}; run it again "
                                 f"(`repro run {paper.name} --scale {scale}`) instead of rechecking") from None
    from harness.plots import declared

    record.extra = {**(record.extra or {}), "verdicts_rechecked": {"at": utc_now(), "git": git_info()}}
    if declared(paper, scale):  # today's declared figures, drawn by the report from the stored metrics
        record.extra["plots"] = declared(paper, scale)
    path = write_run(record, root)
    return path, {c["id"]: (before.get(c["id"], "-"), c["status"]) for c in record.claims}
