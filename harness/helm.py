"""A HELM-style core: one fixed set of scenarios scored on every model that can be scored.

HELM (Liang et al. 2022) compares models on a *fixed* core of scenarios, each scored for several
metric groups (accuracy, calibration, robustness, efficiency), and ranks them by mean win rate:
per scenario, the share of the other models a model beats, averaged over scenarios. A table that
put each paper's own metrics side by side instead would be nearly all empty cells, since no two
papers score the same things. Here the core is declared once (`CORE`, `AGIEVAL_EXAMS`), every model
is scored on all of it with the same limits, and the record is written to results/helm/SCALE.json
for the report to render, so the table never mixes scales or models that saw different items.

What the groups mean here:
- accuracy: the scenario's headline metric (accuracy; bits per byte for language modelling,
  lower is better), zero-shot, on the first `limit` test items of each scenario;
- calibration: expected calibration error of the multiple-choice scenarios (10 bins);
- robustness: worst-case accuracy over the harness's perturbations (an item counts only when
  the model is right on the clean item and on every perturbed copy), as HELM's invariance check;
- efficiency: tokens scored per second over the whole core, measured, with the parameter count.

An encoder-decoder has no unconditional text distribution, so its language-modelling cell is "n/a"
(recorded with the reason), never a number computed some other way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.scenarios import get_scenario, run_robustness, run_scenario


@dataclass(frozen=True)
class CoreScenario:
    name: str  # column label
    scenario: str  # harness scenario name
    metric: str  # the headline metric of the accuracy group
    lower_is_better: bool = False
    robustness: bool = False  # also scored under perturbations (multiple choice only)


CORE: tuple[CoreScenario, ...] = (
    CoreScenario("wikitext2", "wikitext2_ppl", "bits_per_byte", lower_is_better=True),
    CoreScenario("lambada", "lambada", "acc"),
    CoreScenario("sst2", "sst2", "acc", robustness=True),
    CoreScenario("rte", "rte", "acc", robustness=True),
    CoreScenario("mrpc", "mrpc", "acc", robustness=True),
    CoreScenario("arithmetic", "rg/basic_arithmetic", "acc", robustness=True),
    CoreScenario("syllogism", "rg/syllogism", "acc", robustness=True),
)
# AGIEval's English multiple-choice exams, zero-shot: their own table, since at these sizes they
# sit at chance and would otherwise dominate the accuracy win rate with noise
AGIEVAL_EXAMS = ("lsat-ar", "lsat-lr", "lsat-rc", "logiqa-en", "sat-math", "sat-en", "aqua-rat", "gaokao-english")
GROUPS = ("accuracy", "calibration", "robustness", "efficiency")


def _plain(metric: Any) -> dict[str, Any]:
    return metric.to_dict() if hasattr(metric, "to_dict") else dict(metric)


def score_model(lm: Any, limit: int, exam_limit: int, progress=None) -> dict[str, Any]:
    """Every core scenario and AGIEval exam on `lm`: {"scenarios": {name: cell}, "agieval": {exam:
    acc}, "efficiency": {...}}. A cell holds the headline metric, its ECE and worst-case accuracy
    where they apply, or `na` with the reason the model cannot be scored on it."""
    cells: dict[str, Any] = {}
    tokens = seconds = 0.0
    for core in CORE:
        scenario = get_scenario(core.scenario, limit=limit)
        try:
            result = run_robustness(lm, scenario) if core.robustness else None
            clean = result.base if result else run_scenario(lm, scenario)
        except NotImplementedError as e:  # e.g. an encoder-decoder on a perplexity scenario
            cells[core.name] = {"na": str(e).split(":")[-1].split(".")[0].strip()}
            if progress:
                progress(core.name)
            continue
        cell = {"metric": core.metric, "value": clean.value(core.metric), "n": clean.n,
                "headline": _plain(clean.metrics[core.metric])}
        if "ece" in clean.metrics:
            cell["ece"] = clean.value("ece")
        if result:
            cell["worst_case_acc"] = float(result.worst_case.value)
        eff = _plain(clean.efficiency) if clean.efficiency is not None else {}
        extra = eff.get("extra") or eff
        if extra.get("tokens") and extra.get("seconds"):
            tokens, seconds = tokens + extra["tokens"], seconds + extra["seconds"]
        cells[core.name] = cell
        if progress:
            progress(core.name)
    exams = {}
    for exam in AGIEVAL_EXAMS:
        out = run_scenario(lm, get_scenario(f"agieval/{exam}", limit=exam_limit))
        exams[exam] = {"value": out.value("acc"), "n": out.n}
    return {"scenarios": cells, "agieval": exams,
            "efficiency": {"tokens": tokens, "seconds": seconds,
                           "tokens_per_second": tokens / seconds if seconds else None,
                           "params": getattr(lm, "num_parameters", None)}}


def _group_values(scores: dict[str, Any], group: str) -> dict[str, tuple[float, bool]]:
    """{column: (value, lower_is_better)} of one model in one metric group."""
    cells = scores["scenarios"]
    out: dict[str, tuple[float, bool]] = {}
    for core in CORE:
        cell = cells.get(core.name) or {}
        if "na" in cell:
            continue
        if group == "accuracy":
            out[core.name] = (cell["value"], core.lower_is_better)
        elif group == "calibration" and "ece" in cell:
            out[core.name] = (cell["ece"], True)
        elif group == "robustness" and "worst_case_acc" in cell:
            out[core.name] = (cell["worst_case_acc"], False)
    if group == "efficiency" and scores["efficiency"].get("tokens_per_second"):
        out["tokens_per_second"] = (scores["efficiency"]["tokens_per_second"], False)
    return out


def mean_win_rates(models: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """HELM's mean win rate per model and metric group: for each column, the share of the other
    models scored on it that this model beats (ties count half), averaged over the columns."""
    rates: dict[str, dict[str, float | None]] = {m: {} for m in models}
    for group in GROUPS:
        values = {m: _group_values(s, group) for m, s in models.items()}
        for m in models:
            per_column = []
            for column, (mine, lower) in values[m].items():
                others = [values[o][column][0] for o in models if o != m and column in values[o]]
                others = [x for x in others if _number(x)]
                if not others or not _number(mine):
                    continue
                sign = -1.0 if lower else 1.0
                beats = sum(1.0 if sign * (mine - x) > 0 else 0.5 if mine == x else 0.0 for x in others)
                per_column.append(beats / len(others))
            rates[m][group] = sum(per_column) / len(per_column) if per_column else None
    return rates


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def helm_record(scale: str, models: dict[str, dict[str, Any]], limit: int, exam_limit: int) -> dict[str, Any]:
    return {"scale": scale, "limit": limit, "exam_limit": exam_limit,
            "core": [c.__dict__ for c in CORE], "agieval_exams": list(AGIEVAL_EXAMS),
            "models": models, "mean_win_rate": mean_win_rates(models)}


def helm_path(root: str | Path, scale: str) -> Path:
    return Path(root) / "helm" / f"{scale}.json"


def write_helm(record: dict[str, Any], root: str | Path = "results") -> Path:
    from repro.train import atomic_write_text

    path = helm_path(root, record["scale"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(_finite(record), indent=2, allow_nan=False) + "\n")
    return path


def _finite(x: Any) -> Any:
    """`x` with every NaN or infinite float as None (null): JSON has no NaN, and an ECE over no
    items or a throughput over no measured time is missing, not a number."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def read_helm(root: str | Path, scale: str) -> dict[str, Any] | None:
    path = helm_path(root, scale)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); re-run `repro helm "
                         f"--scale {scale}` to write it again") from None


def _pct(x: Any) -> str:
    return "–" if not _number(x) else f"{100 * x:.1f}"


def _rate(x: Any) -> str:
    return "–" if not _number(x) else f"{x:.2f}"


def summary_lines(record: dict[str, Any]) -> list[str]:
    """The report's HELM section from a helm record: mean win rates and headline metrics per model,
    then calibration and robustness per multiple-choice scenario, then the AGIEval exams (only the
    models scored on them). Accuracies are percentages, as the papers print them."""
    models, rates = record["models"], record["mean_win_rate"]
    order = sorted(models, key=lambda m: -(rates[m].get("accuracy") or 0))
    core = [CoreScenario(**c) for c in record["core"]]

    def headline(cell: dict, c: CoreScenario) -> str:
        if not cell or "na" in cell:
            return "n/a"
        return f"{cell['value']:.3f}" if c.lower_is_better else _pct(cell["value"])

    head = [f"{c.name} ({'bits/byte ↓' if c.lower_is_better else 'acc %'})" for c in core]
    lines = [f"Each model scored zero-shot on the same {record['limit']} items per scenario (AGIEval: "
             f"{record['exam_limit']} per exam) by `repro helm --scale {record['scale']}`. Mean win rate: "
             "per scenario, the share of the other models a model beats, averaged (HELM's ranking); "
             "calibration is ECE (lower is better), robustness worst-case accuracy under the harness's "
             "perturbations, efficiency tokens scored per second. n/a: the model cannot be scored on it "
             "(an encoder-decoder has no unconditional text distribution).", "",
             "| model | params | win rate: accuracy | calibration | robustness | efficiency | " + " | ".join(head) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(core)]
    for m in order:
        r, cells = rates[m], models[m]["scenarios"]
        params = models[m].get("params") or models[m]["efficiency"].get("params")
        lines.append(f"| {m} | {'–' if not params else f'{params / 1e6:.2f}M'} | " +
                     " | ".join(_rate(r.get(g)) for g in GROUPS) + " | " +
                     " | ".join(headline(cells.get(c.name), c) for c in core) + " |")
    robust = [c for c in core if c.robustness]
    if robust:
        lines += ["", "| model | " + " | ".join(f"{c.name} ECE | {c.name} worst-case %" for c in robust) + " |",
                  "|---|" + "---|---|" * len(robust)]
        for m in order:
            cells = models[m]["scenarios"]
            row = []
            for c in robust:
                cell = cells.get(c.name) or {}
                row += [_rate(cell.get("ece")) if "na" not in cell else "n/a",
                        _pct(cell.get("worst_case_acc")) if "na" not in cell else "n/a"]
            lines.append(f"| {m} | " + " | ".join(row) + " |")
    exams = record.get("agieval_exams") or []
    scored = [m for m in order if any(_number((models[m].get("agieval") or {}).get(e, {}).get("value")) for e in exams)]
    if scored:
        lines += ["", "AGIEval, English multiple-choice exams, zero-shot accuracy % (chance is 20-25%):", "",
                  "| model | " + " | ".join(exams) + " |", "|---|" + "---|" * len(exams)]
        for m in scored:
            lines.append(f"| {m} | " + " | ".join(_pct(models[m]["agieval"].get(e, {}).get("value")) for e in exams) + " |")
    return lines
