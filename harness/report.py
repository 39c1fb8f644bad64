"""Render results/REPORT.md and results/figures/ from the results files alone.

Per paper and scale: the claims with their computed verdicts, the measured metrics (with n and
95% CI) beside the paper's reported numbers where they measure the same thing, the paper's own
figures, and a forest plot of the claims' effects drawn here. Then a HELM-style summary (models x scenarios, mean win
rate) and an AGIEval-style per-exam table for every metric keyed `<model>/<scenario>/<metric>`.
"""

from __future__ import annotations

from pathlib import Path

from harness.claims import REPRODUCED
from harness.metrics import display_factor
from harness.results import latest_runs
from harness.scales import SCALES
from harness.stability import stability_of

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


def _save(fig, out: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def forest_figure(record, out: Path) -> Path | None:
    """One row per comparison a verdict rests on: the effect and its 95% interval in units of the
    claim's δ (so every row shares one axis whatever its metric), the zero line and the ±δ band,
    coloured by the claim's verdict. Rows without a stated δ are drawn in their own units on a
    second panel. Drawn from the results file alone."""
    colors = {"reproduced": "#2a9d8f", "not reproduced": "#e76f51", "inconclusive": "#8d99ae"}
    scaled, raw = [], []
    for c in record.claims:
        for what, iv in _effects(c.get("evidence", {})):
            point, low, high = iv.get("point"), iv.get("ci_low"), iv.get("ci_high")
            if point is None:
                continue
            if what == "ratio":  # no effect is a ratio of 1
                point, low, high = (None if v is None else v - 1 for v in (point, low, high))
            delta = iv.get("delta") and iv["delta"] * iv["factor"]  # δ in the effect's displayed unit
            row = (f"{c['id']}: {what}", point, low, high, colors.get(c["status"], "black"))
            if delta:
                scaled.append((row[0], point / delta, None if low is None else low / delta,
                               None if high is None else high / delta, row[4]))
            else:
                raw.append(row)
    if not scaled and not raw:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(rows, unit) for rows, unit in ((scaled, "effect / δ (shaded: ±δ)"), (raw, "effect (no δ stated)")) if rows]
    height = 0.32 * max(len(rows) for rows, _ in panels) + 1.4
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), height), squeeze=False)
    for ax, (rows, unit) in zip(axes[0], panels):
        for y, (_, point, low, high, color) in enumerate(rows):
            err = [[point - low if low is not None else 0], [high - point if high is not None else 0]]
            ax.errorbar([point], [y], xerr=err, fmt="o", color=color, capsize=3)
        if rows is scaled:
            ax.axvspan(-1, 1, color="#e9ecef", zorder=0)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel(unit, fontsize=9)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=s) for s, c in colors.items()]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle(f"{record.paper} ({record.scale}): each claim's effect with its 95% interval", fontsize=10)
    return _save(fig, out)


PERCENT_NOTE = ("Accuracies, F1, MCC, correlations and GLUE averages are shown x100 (percent, or points for their "
                "differences), as the papers print them; ROUGE and BLEU are 0-100 already.")


def _scaled(x, factor: float):
    return x * factor if isinstance(x, (int, float)) and not isinstance(x, bool) else x


def _effects(evidence: dict) -> list[tuple[str, dict]]:
    """(label, interval) of every comparison a verdict rests on, through all_of and provided."""
    if "claim" in evidence and "condition" in evidence:  # provided(condition, claim)
        return _effects(evidence["claim"].get("evidence", {}))
    if "parts" in evidence:
        return [e for part in evidence["parts"] for e in _effects(part.get("evidence", {}))]
    for key, label in (("difference", "difference"), ("ends", "last − first, as claimed"), ("ratio", "ratio")):
        if isinstance(evidence.get(key), dict):
            names = list(evidence.get("metrics", {}))
            what = f"{names[0]} − {names[1]}" if key == "difference" and len(names) == 2 else label
            factor = 1.0 if key == "ratio" else display_factor(*names)  # a ratio has no unit
            iv = {k: _scaled(v, factor) for k, v in evidence[key].items()}
            power = dict(evidence.get("power") or {})
            if "minimum_detectable_effect" in power:
                power["minimum_detectable_effect"] = _scaled(power["minimum_detectable_effect"], factor)
            return [(what, {**iv, "delta": evidence.get("delta"), "power": power, "factor": factor})]
    return []


def _condition(evidence: dict) -> tuple[str, list[tuple[str, dict]]] | None:
    """(its status, its comparisons) of the validity condition of a provided(condition, claim)."""
    if "claim" in evidence and "condition" in evidence:
        condition = evidence["condition"]
        return condition.get("status", ""), _effects(condition.get("evidence", {}))
    return None


def claim_card(c: dict, seeds: list, stability: dict | None) -> list[str]:
    """One claim as a reader needs it: the statement and its source, δ and where it comes from,
    each effect with its interval and method, the seeds, why the verdict is what it is, what would
    decide it when open, whether another seed set agreed, and the paper's own numbers."""
    lines = [f"#### {c['id']} — {VERDICT_MARK.get(c['status'], c['status'])}", "",
             f"*{c['statement']}* ({c.get('source', '')})", ""]
    effects = _effects(c.get("evidence", {}))
    factor = effects[0][1]["factor"] if effects else 1.0
    if c.get("delta") is not None:
        stated = ", ".join("–" if d is None else f"{d * factor:g}" for d in c["delta"])
        lines.append(f"- δ (minimum effect of interest, stated before the run): {stated} — {c.get('delta_source', '')}")
    elif "delta_source" in c:
        lines.append("- δ: none stated (no equivalence test: the claim can only be reproduced or refuted by sign)")
    if (condition := _condition(c.get("evidence", {}))) is not None:
        status, parts = condition
        held = "holds" if status == REPRODUCED else "does not hold"
        for what, iv in parts:  # what the verdict was gated on, beside what it compares
            lines.append(f"- validity condition ({held}) {what}: {_fmt(iv.get('point'))} [{_fmt(iv.get('ci_low'))}, "
                         f"{_fmt(iv.get('ci_high'))}] — {iv.get('method', '')}")
    for what, iv in effects:
        lines.append(f"- effect {what}: {_fmt(iv.get('point'))} [{_fmt(iv.get('ci_low'))}, {_fmt(iv.get('ci_high'))}]"
                     f" — {iv.get('method', '')}")
        power = iv.get("power") or {}
        if power.get("minimum_detectable_effect") is not None or power.get("advice"):
            mde = power.get("minimum_detectable_effect")
            lines.append("  - power: " + (f"minimum detectable effect {_fmt(mde)} at 80% power; " if mde is not None else "")
                         + power.get("advice", ""))
    lines.append(f"- seeds: {', '.join(map(str, seeds))}")
    lines.append(f"- verdict: {c.get('explanation', '')}")
    if stability:
        row = next((r for r in stability["claims"] if r["id"] == c["id"]), None)
        if row:
            held = "held" if row["agree"] else ("**flipped to the opposite**" if row["opposite"] else "changed")
            lines.append(f"- stability: {held} on seeds {', '.join(map(str, stability['second_seeds']))} "
                         f"({row['second']})")
    reported = (c.get("evidence") or {}).get("reported")
    if reported:
        lines.append("- the paper reports: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in reported.items()))
    return lines


def open_claims_section(runs: dict, scale: str) -> list[str]:
    """Per open claim, what would decide it (harness.open_claims): a recipe change where a validity
    condition fails, more test items, or more seeds, with how many."""
    from harness.open_claims import BLOCKERS, COUNT_WORDS, claim_needs

    needs = {(paper, cid): n for paper, record in runs.items() for cid, n in claim_needs(record).items()}
    if not needs:
        return []
    counts = {k: sum(n["blocker"] == k for n in needs.values()) for k in BLOCKERS}
    lines = [f"### What would decide the open claims ({scale} scale)", "",
             "Read from each comparison's stored interval (`repro open PAPER --scale " + scale + "` lists every "
             "comparison): " + ", ".join(f"{v} {COUNT_WORDS[k]}" for k, v in counts.items() if v) + ". A claim whose validity "
             "condition fails needs its models to learn more; seeds and items help only once it holds.", "",
             "| paper | claim | would decide it |", "|---|---|---|"]
    for (paper, cid), n in needs.items():
        lines.append(f"| {paper} | {cid} | {n['needs']} |")
    return lines + [""]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def verdict_summary(runs_by_scale: dict, root: Path) -> list[str]:
    """Papers x verdict counts per scale, the seeds and wall time of each run, and how many
    verdicts held on a second seed set. The shared bases' training time (results/bases/SCALE.json)
    is its own row, since every paper that fine-tunes them reuses one training."""
    lines = ["| paper | scale | reproduced | not reproduced | inconclusive | held across seed sets | seeds | wall time |",
             "|---|---|---|---|---|---|---|---|"]
    for scale, runs in runs_by_scale.items():
        totals, held_total, checked, wall = [0, 0, 0], 0, 0, 0.0
        for record in runs.values():
            counts = [sum(c["status"] == s for c in record.claims)
                      for s in ("reproduced", "not reproduced", "inconclusive")]
            totals = [a + b for a, b in zip(totals, counts)]
            wall += record.wall_time_s or 0.0
            stability, stale = stability_of(root, record)
            held = "stale" if stale else "not run"
            if stability:
                held = f"{stability['agreeing']} of {stability['total']}"
                held_total, checked = held_total + stability["agreeing"], checked + stability["total"]
            lines.append(f"| {record.paper} | {scale} | {counts[0]} | {counts[1]} | {counts[2]} | {held} | "
                         f"{len(record.seeds)} | {_minutes(record.wall_time_s or 0.0)} |")
        bases = _bases_seconds(root, scale)
        if bases:
            lines.append(f"| shared bases | {scale} | | | | | | {_minutes(bases)} |")
        if len(runs) > 1:
            lines.append(f"| **all {len(runs)}** | {scale} | **{totals[0]}** | **{totals[1]}** | **{totals[2]}** | "
                         f"{f'{held_total} of {checked}' if checked else 'not run'} | | {_minutes(wall + bases)} |")
    return lines + ["", "Wall time: each results file's own run (a paper run that found its stages in the artifact "
                        "cache is faster than a cold one); shared bases: their training seconds, summed over the bases "
                        "and divided by the two that train at once.", ""]


def _bases_seconds(root: Path, scale: str) -> float:
    import json

    path = root / "bases" / f"{scale}.json"
    if not path.is_file():
        return 0.0
    record = json.loads(path.read_text())
    return sum(b.get("seconds") or 0.0 for b in record.get("bases", [])) / 2


def paper_section(record, figures_dir: Path, root: Path) -> list[str]:
    lines = [f"### {record.paper} — {record.scale} scale", ""]
    dirty = " (dirty tree)" if record.git.get("dirty") else ""
    lines.append(f"Run {record.finished}, {record.wall_time_s:.0f} s, seeds {record.seeds}, "
                 f"git `{str(record.git.get('sha', 'unknown'))[:10]}`{dirty}, {record.environment.get('device', '')}.")
    stability, stale = stability_of(root, record)
    if stale:
        lines.append(f"Seed-set stability: {stale}.")
    if stability:
        # second_results is relative to the results root, where REPORT.md lives: a working link
        kept = stability.get("second_results") and (root / stability["second_results"]).is_file()
        second = f" ([their results file]({stability['second_results']}))" if kept else ""
        lines.append(f"Re-run on seeds {stability['second_seeds']}{second}: {stability['agreeing']} of "
                     f"{stability['total']} verdicts held.")
    for c in record.claims:
        lines += [""] + claim_card(c, record.seeds, stability)
    reported = {r["id"]: r for r in record.reported}
    lines += ["", PERCENT_NOTE, "", "| metric | measured | 95% CI | n | paper reports | source |", "|---|---|---|---|---|---|"]
    for key, m in record.metrics.items():
        if m is None:  # not measured at this scale
            continue
        rid = (m.get("extra") or {}).get("reported_id", key)
        r = reported.get(rid)
        factor = display_factor(key)
        ci = f"[{_fmt(_scaled(m.get('ci_low'), factor))}, {_fmt(_scaled(m.get('ci_high'), factor))}]" \
            if m.get("ci_low") is not None else "–"
        paper_value = f"{_fmt(r['value'])} ({r.get('model', '')})" if r else "–"
        source = f"{r['table_figure']}{'' if r.get('verified') else ' (unverified)'}" if r else ""
        lines.append(f"| {key} | {_fmt(_scaled(m.get('value'), factor))} | {ci} | {_fmt(m.get('n'))} | {paper_value} | {source} |")
    if record.notes:
        lines += ["", *[f"> {line}" for line in record.notes.splitlines()]]
    for title, rows in ((record.extra or {}).get("tables") or {}).items():
        lines += ["", f"**{title}**", ""] + markdown_table(rows)
    from harness.plots import Figure, draw

    declared = [Figure.from_dict(d) for d in (record.extra or {}).get("plots") or []]
    # declared figures are drawn here from the metrics; a figure the run drew itself (from data that
    # is not a metric, e.g. a training curve) is kept unless a declared one now has its name
    redrawn = {f"{record.scale}_{record.paper}_{spec.name}.png" for spec in declared}
    figures = [Path(f) for f in record.figures if Path(f).name not in redrawn]
    for spec in declared:
        drawn = draw(spec, record.metrics, figures_dir / f"{record.scale}_{record.paper}_{spec.name}.png")
        if drawn:
            figures.append(drawn)
    drawn = forest_figure(record, figures_dir / f"{record.scale}_{record.paper}_forest.png")
    if drawn:
        figures.append(drawn)
    for f in figures:
        f = Path(f)  # recorded as figures/NAME (relative to the results root), or drawn here under root
        rel = f.relative_to(root) if f.is_relative_to(root) else f
        if rel.is_absolute() and rel.resolve().is_relative_to(root.resolve()):
            rel = rel.resolve().relative_to(root.resolve())
        lines += ["", f"![{f.stem}]({rel})"]
    return lines + [""]


def helm_section(root: Path, scale: str) -> list[str]:
    """The HELM-style core of `scale` (results/helm/SCALE.json, written by `repro helm`)."""
    from harness.helm import read_helm, summary_lines

    record = read_helm(root, scale)
    if not record or not record.get("models"):
        return []
    return [f"## HELM-style core — {scale} scale", ""] + summary_lines(record) + [""]


def bases_figure(record: dict, out: Path) -> Path:
    """Held-out loss against training tokens, one panel per family, each base's target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(row["family"] for row in record["bases"]))
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.4), squeeze=False)
    for ax, family in zip(axes[0], families):
        for i, row in enumerate(r for r in record["bases"] if r["family"] == family):
            color = f"C{i}"
            tokens, losses = zip(*row["curve"])
            ax.plot(tokens, losses, marker=".", color=color, label=f"{row['name']} (s{row['seed']})")
            ax.axhline(row["target"], color=color, linestyle="--", linewidth=0.8)
        ax.axhline(row["unigram_val_loss"], color="grey", linestyle=":", linewidth=0.8, label="unigram")
        ax.set_xscale("log")
        ax.set_xlabel("training tokens")
        ax.set_ylabel("held-out loss (nats/token)")
        ax.set_title(f"{family} ({row['objective']})", fontsize=10)
        ax.legend(fontsize=7)
    fig.suptitle(f"Shared bases ({record['scale']}): learning curves; dashed: each base's target", fontsize=10)
    return _save(fig, out)


def bases_section(root: Path, figures_dir: Path) -> list[str]:
    """The shared bases of each scale recorded by `repro bases --record`: a table, the decoder
    family's alpha_N beside Kaplan's, and the learning curves."""
    import json

    lines = []
    for path in sorted((root / "bases").glob("*.json")):
        record = json.loads(path.read_text())
        if record["scale"] == "smoke":
            continue  # smoke bases only exercise the code path
        lines += [f"## Shared bases — {record['scale']} scale", "",
                  "Pre-trained once on the mixture (" + ", ".join(f"{d} {s}" for d, s in record["mixture"]["train"])
                  + "; held out: " + ", ".join(f"{d} {s}" for d, s in record["mixture"]["held_out"])
                  + ") and reused by the papers that fine-tune. A base that misses its target fails the run.", ""]
        lines += markdown_table([{
            "base": row["name"], "seed": row["seed"], "params": f"{row['params']:,}", "tokens": f"{row['tokens']:,}",
            "tokens/param": f"{row['tokens_per_param']:.1f}", "held-out loss": f"{row['val_loss']:.3f}",
            "target": f"{row['target']:.3f}", "unigram": f"{row['unigram_val_loss']:.3f}",
            "reached": "yes" if row["reached"] else "**MISSED**",
            "tokens/s": _fmt(row["tokens_per_second"]), "precision": row["precision"]} for row in record["bases"]])
        fit = record.get("decoder_scaling")
        if fit:
            lines += ["", f"Decoder family: L(N) = (N_c/N)^α_N fitted over non-embedding N = {fit['non_embedding_params']}: "
                          f"α_N = {fit['alpha_N']:.3f} (Kaplan et al. {fit['kaplan_alpha_N']}), R² = {fit['r2']:.3f}."]
        figure = bases_figure(record, figures_dir / f"bases_{record['scale']}.png")
        lines += ["", f"![learning curves](figures/{figure.name})", ""]
    return lines


README_BEGIN = "<!-- verdicts: written by `repro report` from the results files; edits here are overwritten -->"
README_END = "<!-- /verdicts -->"


def update_readme(readme: str | Path, root: str | Path = "results") -> bool:
    """Replace the block between README_BEGIN and README_END in `readme` with the verdict table of
    the results under `root`, so the README never states a verdict by hand. False when the README
    has no such block (nothing is written)."""
    readme, root = Path(readme), Path(root)
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if README_BEGIN not in text or README_END not in text:
        return False
    runs = {sc: latest_runs(root, sc) for sc in SCALES if sc != "smoke" and (root / sc).exists()}
    runs = {sc: r for sc, r in runs.items() if r}
    table = verdict_summary(runs, root) if runs else ["No cpu or gpu results recorded yet.", ""]
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    from repro.train import atomic_write_text

    atomic_write_text(readme, head + README_BEGIN + "\n" + "\n".join(table) + README_END + tail)
    return True


def render(root: str | Path = "results") -> Path:
    root = Path(root)
    figures_dir = root / "figures"
    lines = ["# repro — results report", "",
             "Rendered by `repro report` from `results/<scale>/*.json` only. Verdicts are computed from the "
             "measured numbers by each claim's predicate; at reduced scale a claim is about the direction and "
             "size of an effect, while absolute numbers are shown beside the paper's for context.", ""]
    # the scales that decide claims first; smoke (the pipeline end to end, numbers that mean
    # nothing) in an appendix
    order = [sc for sc in ("gpu", "cpu") if sc in SCALES] + [sc for sc in SCALES if sc not in ("gpu", "cpu")]
    runs_by_scale = {sc: latest_runs(root, sc) for sc in order if (root / sc).exists()}
    runs_by_scale = {sc: runs for sc, runs in runs_by_scale.items() if runs}
    any_records = bool(runs_by_scale)
    if any_records:
        lines += ["## Verdicts", ""] + verdict_summary(runs_by_scale, root)
        for scale, runs in runs_by_scale.items():
            if scale != "smoke":  # smoke numbers mean nothing: nothing to plan from them
                lines += open_claims_section(runs, scale)
    lines += bases_section(root, figures_dir)
    from harness.helm import helm_path

    scales = [sc for sc in order if sc in runs_by_scale or helm_path(root, sc).is_file()]
    for scale in scales:
        runs = runs_by_scale.get(scale, {})
        title = "## Appendix: smoke scale (pipeline checks; the numbers mean nothing)" if scale == "smoke" else f"## Scale: {scale}"
        lines += [title, ""]
        for record in runs.values():
            lines += paper_section(record, figures_dir, root)
        # models of different scales share labels and never compete: one core table per scale
        lines += helm_section(root, scale)
    if not any_records:
        lines.append("No results recorded yet: run `repro run all` (or `tox -e reproduce-all`).")
    out = root / "REPORT.md"
    from repro.train import atomic_write_text

    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out
