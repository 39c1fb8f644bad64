"""Render results/REPORT.md and results/figures/ from the results files alone.

Per paper and scale: the claims with their computed verdicts, the measured metrics (with n and
95% CI) beside the paper's reported numbers where they measure the same thing, the paper's own
figures, and a metrics figure drawn here. Then a HELM-style summary (models x scenarios, mean win
rate) and an AGIEval-style per-exam table for every metric keyed `<model>/<scenario>/<metric>`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from harness.results import latest_runs
from papers import SCALES

VERDICT_MARK = {"reproduced": "✅ reproduced", "not reproduced": "❌ not reproduced", "inconclusive": "➖ inconclusive"}


def _fmt(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def markdown_table(rows: list[dict]) -> list[str]:
    """Rows of text as a markdown table; `|` and newlines inside cells are escaped."""
    if not rows:
        return []
    columns = list(dict.fromkeys(c for row in rows for c in row))

    def cell(x) -> str:
        return str(x if x is not None else "").replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows])


def metrics_figure(record, out: Path) -> Path | None:
    """Horizontal bars of every scalar metric with its 95% CI (one panel per paper and scale)."""
    rows = [(k, m) for k, m in record.metrics.items() if isinstance(m.get("value"), (int, float))]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    names = [k for k, _ in rows]
    values = [m["value"] for _, m in rows]
    low = [m["value"] - m["ci_low"] if m.get("ci_low") is not None else 0 for _, m in rows]
    high = [m["ci_high"] - m["value"] if m.get("ci_high") is not None else 0 for _, m in rows]
    ax.barh(range(len(rows)), values, xerr=[low, high], color="#4c72b0", capsize=3)
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(f"{record.paper} ({record.scale}): measured metrics, 95% CI", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def paper_section(record, figures_dir: Path, root: Path) -> list[str]:
    lines = [f"### {record.paper} — {record.scale} scale", ""]
    dirty = " (dirty tree)" if record.git.get("dirty") else ""
    lines.append(f"Run {record.finished}, {record.wall_time_s:.0f} s, seeds {record.seeds}, "
                 f"git `{str(record.git.get('sha', 'unknown'))[:10]}`{dirty}, {record.environment.get('device', '')}.")
    lines += ["", "| claim | statement | source | verdict | evidence |", "|---|---|---|---|---|"]
    for c in record.claims:
        lines.append(f"| {c['id']} | {c['statement']} | {c.get('source', '')} | "
                     f"{VERDICT_MARK.get(c['status'], c['status'])} | {c.get('explanation', '')} |")
    reported = {r["id"]: r for r in record.reported}
    lines += ["", "| metric | measured | 95% CI | n | paper reports | source |", "|---|---|---|---|---|---|"]
    for key, m in record.metrics.items():
        rid = (m.get("extra") or {}).get("reported_id", key)
        r = reported.get(rid)
        ci = f"[{_fmt(m.get('ci_low'))}, {_fmt(m.get('ci_high'))}]" if m.get("ci_low") is not None else "–"
        paper_value = f"{_fmt(r['value'])} ({r.get('model', '')})" if r else "–"
        source = f"{r['table_figure']}{'' if r.get('verified') else ' (unverified)'}" if r else ""
        lines.append(f"| {key} | {_fmt(m.get('value'))} | {ci} | {_fmt(m.get('n'))} | {paper_value} | {source} |")
    if record.notes:
        lines += ["", *[f"> {line}" for line in record.notes.splitlines()]]
    for title, rows in ((record.extra or {}).get("tables") or {}).items():
        lines += ["", f"**{title}**", ""] + markdown_table(rows)
    figures = [Path(f) for f in record.figures]
    drawn = metrics_figure(record, figures_dir / f"{record.scale}_{record.paper}_metrics.png")
    if drawn:
        figures.append(drawn)
    for f in figures:
        rel = Path(f).resolve().relative_to(root.resolve()) if Path(f).resolve().is_relative_to(root.resolve()) else f
        lines += ["", f"![{Path(f).stem}]({rel})"]
    return lines + [""]


def helm_summary(records) -> list[str]:
    """Models x scenarios on each scenario's first metric, with HELM's mean win rate."""
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for record in records:
        for key, m in record.metrics.items():
            parts = key.split("/")
            if len(parts) >= 3 and isinstance(m.get("value"), (int, float)):
                model, scenario = parts[0], "/".join(parts[1:-1])
                table[model].setdefault(f"{scenario} {parts[-1]}", m["value"])
    if len(table) < 2:
        return []
    columns = sorted({c for row in table.values() for c in row})
    lower_better = ("ppl", "perplexity", "bpb", "bits_per_byte", "ece", "loss")

    def wins(model: str) -> float:
        rates = []
        for col in columns:
            if col not in table[model]:
                continue
            others = [m for m in table if m != model and col in table[m]]
            if not others:
                continue
            sign = -1 if any(t in col for t in lower_better) else 1
            rates.append(sum(sign * (table[model][col] - table[o][col]) > 0 for o in others) / len(others))
        return sum(rates) / len(rates) if rates else float("nan")

    lines = ["## HELM-style summary", "", "| model | mean win rate | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for model in sorted(table, key=wins, reverse=True):
        cells = " | ".join(_fmt(table[model].get(c)) for c in columns)
        lines.append(f"| {model} | {wins(model):.2f} | {cells} |")
    agieval = [c for c in columns if c.startswith("agieval/")]
    if agieval:
        lines += ["", "### AGIEval per exam", "", "| model | " + " | ".join(agieval) + " |", "|---|" + "---|" * len(agieval)]
        for model in sorted(table):
            lines.append(f"| {model} | " + " | ".join(_fmt(table[model].get(c)) for c in agieval) + " |")
    return lines + [""]


def render(root: str | Path = "results") -> Path:
    root = Path(root)
    figures_dir = root / "figures"
    lines = ["# repro — results report", "",
             "Rendered by `repro report` from `results/<scale>/*.json` only. Verdicts are computed from the "
             "measured numbers by each claim's predicate; at reduced scale a claim is about the direction and "
             "size of an effect, while absolute numbers are shown beside the paper's for context.", ""]
    any_records = False
    for scale in SCALES:
        runs = latest_runs(root, scale) if (root / scale).exists() else {}
        if not runs:
            continue
        any_records = True
        lines += [f"## Scale: {scale}", ""]
        for record in runs.values():
            lines += paper_section(record, figures_dir, root)
        # models of different scales share labels and never compete: one summary per scale
        lines += [line.replace("## HELM-style summary", f"## HELM-style summary — {scale} scale")
                  for line in helm_summary(list(runs.values()))]
    if not any_records:
        lines.append("No results recorded yet: run `repro run all` (or `tox -e reproduce-all`).")
    out = root / "REPORT.md"
    from repro.train import atomic_write_text

    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out
