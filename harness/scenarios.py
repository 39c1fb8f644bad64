"""Scenarios: a task plus an adaptation, run against an LM (HELM-style), with metrics and CIs.

``Scenario(task, shots, template, instructions, seed, agieval_format, perturbation, limit, ...)``
fixes every choice that changes a prompt; ``run_scenario(lm, scenario)`` builds the prompts, sends
lm-eval-shaped requests through the LM interface (``harness/lm.py``) and scores them:

================  ======================================  =======================================
task kind         request                                 metrics
================  ======================================  =======================================
multiple_choice   loglikelihood of every verbalised choice acc, acc_norm (logprob / characters),
                  (rank classification)                   ece (softmax over choices), p_gold,
                                                          + mcc / f1 where the task lists them
regression        the same over the buckets 0..5           pearson, spearman (expected bucket), acc
generation        generate_until(task stop strings)       em / f1 / bleu / rouge per the task;
                  or, for scorer="greedy" (LAMBADA),      acc (is_greedy) and target ppl
                  loglikelihood's is_greedy flag
perplexity        loglikelihood_rolling_with_counts       perplexity, bits_per_byte, word_perplexity
preference        loglikelihood of both final turns       acc = P(chosen > rejected), acc_norm
================  ======================================  =======================================

Rules that make runs comparable and honest:

* Scored items: the task's eval items shuffled with ``eval_seed`` (0 by default, independent of
  the exemplar ``seed``), first ``limit`` kept, so every variant of a task scores the same items
  and ``per_item`` rows can be paired across runs.
* Exemplars come only from the task's exemplar pool (never the eval split); each item draws its
  own k exemplars, in a random order, from ``Random(seed, item uid)``: the same seed gives the same
  prompts whatever ``limit`` or request order. Tasks with published demonstrations (AGIEval) use
  them in order.
* A perturbation rewrites the item's input fields (never exemplars or references), seeded per item.

``run_robustness`` reruns a scenario under each perturbation and reports the worst-case accuracy
(an item counts only if it is right in every variant). ``SCENARIOS`` names the defaults per task;
``get_scenario("sst2", shots=5)`` or ``get_scenario("sst2:5shot")`` builds one.

Metrics come from ``harness/metrics.py`` and perturbations from ``harness/perturb.py``; both are
imported inside functions so this module imports without them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import random
import re
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from repro.data.tasks import Record, Task, Template, UNSCRAMBLE_INSTRUCTION, get_task, list_tasks

__all__ = [
    "AGIEVAL_FORMATS",
    "PreparedItem",
    "RobustnessResult",
    "SCENARIOS",
    "Scenario",
    "ScenarioResult",
    "get_scenario",
    "prepare",
    "run_robustness",
    "run_scenario",
]

AGIEVAL_FORMATS = ("zero_shot", "few_shot", "zero_shot_cot", "few_shot_cot")
PROTOCOLS = ("rank", "generate")
_COT_GEN_TOKS = 256  # the official runs allow 2,000; small models rarely need more than this


# --------------------------------------------------------------------------------------------
# Scenario


@dataclass(frozen=True)
class Scenario:
    """A task and every adaptation choice that shapes its prompts (see the module doc)."""

    task: str
    shots: int = 0
    template: str | int = 0
    instructions: str | None = None  # prefix before everything, separated by a blank line
    seed: int = 0  # exemplar sampling and order; perturbation randomness
    agieval_format: str | None = None  # zero_shot | few_shot | zero_shot_cot | few_shot_cot
    perturbation: str | None = None
    limit: int | None = None
    protocol: str = "rank"  # multiple choice: rank classification, or generate-and-parse (AGIEval)
    max_gen_toks: int | None = None  # overrides the task's
    eval_seed: int = 0  # the shuffle that picks the first `limit` items; kept apart from `seed`
    name: str | None = None

    def __post_init__(self) -> None:
        task = get_task(self.task)
        if self.shots < 0:
            raise ValueError("shots must be >= 0")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}")
        if self.agieval_format is not None:
            if not task.name.startswith("agieval/"):
                raise ValueError(f"agieval_format applies to AGIEval tasks, not {task.name!r}")
            if self.agieval_format not in AGIEVAL_FORMATS:
                raise ValueError(f"agieval_format must be one of {AGIEVAL_FORMATS}")
            if self.agieval_format.startswith("zero_shot") and self.shots:
                raise ValueError(f"{self.agieval_format} takes no exemplars (shots={self.shots})")
        if self.shots and task.exemplar_split is None and task.exemplar_source is None:
            raise ValueError(f"task {task.name!r} is zero-shot only (no exemplar pool)")
        if self.shots and task.kind in ("perplexity", "preference"):
            raise ValueError(f"{task.kind} tasks take no exemplars")
        task.template(self.template_name)  # fail early on an unknown template

    @property
    def template_name(self) -> str | int:
        return self.agieval_format or self.template

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        parts = [self.task]
        if self.agieval_format:
            parts.append(self.agieval_format)
        elif self.template not in (0, get_task(self.task).template(0).name):
            parts.append(str(self.template))
        if self.shots:
            parts.append(f"{self.shots}shot")
        if self.perturbation:
            parts.append(self.perturbation)
        return ":".join(parts)

    def settings(self) -> dict[str, Any]:
        task = get_task(self.task)
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["template"] = task.template(self.template_name).name
        out["task_info"] = task.describe()
        return out

    def replace(self, **changes: Any) -> Scenario:
        return dataclasses.replace(self, **changes)


# --------------------------------------------------------------------------------------------
# Prompt construction


@dataclass
class PreparedItem:
    record: Record  # the (possibly perturbed) item
    context: str
    exemplar_uids: list[str]


def _item_seed(*parts: Any) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def _selected(task: Task, scenario: Scenario) -> list[int]:
    pool = task.eval_pool()
    order = list(range(len(pool)))
    random.Random(f"eval|{scenario.eval_seed}").shuffle(order)
    return order if scenario.limit is None else order[: scenario.limit]


def _shots(task: Task, scenario: Scenario) -> int:
    """AGIEval few-shot formats use all published demonstrations unless `shots` asks for fewer."""
    if scenario.agieval_format and scenario.agieval_format.startswith("few_shot") and not scenario.shots:
        return len(task.exemplar_pool())
    return scenario.shots


def _exemplars(task: Task, scenario: Scenario, uid: str, k: int) -> list[Record]:
    if k == 0:
        return []
    pool = task.exemplar_pool()
    if k > len(pool):
        raise ValueError(f"{k} shots requested but task {task.name!r} has {len(pool)} exemplars")
    if task.fixed_exemplars:
        return [pool[i] for i in range(k)]
    rng = random.Random(f"exemplars|{scenario.seed}|{uid}")
    return [pool[i] for i in rng.sample(range(len(pool)), k)]  # sample() returns a random order


def _perturbed(task: Task, record: Record, scenario: Scenario) -> Record:
    if not scenario.perturbation:
        return record
    if not task.perturb_fields:
        raise ValueError(f"task {task.name!r} declares no fields a perturbation may rewrite")
    from harness.perturb import perturb

    out = dict(record)
    for f in task.perturb_fields:
        if isinstance(out.get(f), str) and out[f]:
            out[f] = perturb(out[f], scenario.perturbation, _item_seed(scenario.seed, record["uid"], f))
    return out


def prepare(scenario: Scenario) -> list[PreparedItem]:
    """The scored items with their full contexts (instructions + exemplars + item prompt)."""
    task = get_task(scenario.task)
    template = task.template(scenario.template_name)
    k = _shots(task, scenario)
    pool = task.eval_pool()
    items = []
    for i in _selected(task, scenario):
        record = pool[i]
        exemplars = _exemplars(task, scenario, record["uid"], k)
        shown = _perturbed(task, record, scenario)
        context = task.assemble(template, exemplars, shown)
        if scenario.instructions:
            context = scenario.instructions.rstrip("\n") + "\n\n" + context
        items.append(PreparedItem(shown, context, [e["uid"] for e in exemplars]))
    return items


# --------------------------------------------------------------------------------------------
# Results


@dataclass
class ScenarioResult:
    name: str
    settings: dict[str, Any]
    metrics: dict[str, Any]  # name -> MetricResult
    n: int
    per_item: list[dict[str, Any]]  # kept for paired comparisons (keyed by `uid`)
    efficiency: Any = None

    def to_dict(self) -> dict[str, Any]:
        def plain(m: Any) -> Any:
            return m.to_dict() if hasattr(m, "to_dict") else m

        return {"name": self.name, "settings": self.settings, "n": self.n,
                "metrics": {k: plain(v) for k, v in self.metrics.items()},
                "efficiency": plain(self.efficiency), "per_item": self.per_item}

    def value(self, metric: str) -> float:
        return float(self.metrics[metric].value)


@dataclass
class RobustnessResult:
    name: str
    base: ScenarioResult
    perturbed: dict[str, ScenarioResult]
    worst_case: Any  # MetricResult

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "worst_case": self.worst_case.to_dict(), "base": self.base.to_dict(),
                "perturbed": {k: v.to_dict() for k, v in self.perturbed.items()}}


# --------------------------------------------------------------------------------------------
# Metric helpers (thin adapters over harness.metrics)


def _metrics():
    from harness import metrics

    return metrics


def _named(result: Any, name: str) -> Any:
    """The metric under our key (e.g. accuracy() of the normalised predictions is "acc_norm")."""
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        try:
            return dataclasses.replace(result, name=name)
        except (TypeError, ValueError):
            return result
    return result


def _mean_metric(name: str, values: Sequence[float]) -> Any:
    """A mean with a normal-approximation 95% CI, for quantities metrics.py has no helper for
    (cheap at any n, unlike a bootstrap over thousands of items)."""
    n = len(values)
    mean = sum(values) / n if n else float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n) if n else float("nan")
    return _metrics().MetricResult(name, mean, n, mean - half, mean + half, {"ci": "normal approximation"})


def _lm_metric(fn_name: str, nlls: Sequence[float], counts: Sequence[int]) -> Any:
    """perplexity / bits_per_byte / word_perplexity from per-document sums: the value is the
    corpus-level exp(sum nll / sum n); passing documents lets the CI resample them."""
    fn = getattr(_metrics(), fn_name)
    return fn([float(x) for x in nlls], [int(c) for c in counts])


def _softmax(xs: Sequence[float]) -> list[float]:
    top = max(xs)
    exps = [math.exp(x - top) for x in xs]
    total = sum(exps)
    return [e / total for e in exps]


def _argmax(xs: Sequence[float]) -> int:
    return max(range(len(xs)), key=lambda i: (xs[i], -i))  # ties: the first choice


def _stats(lm: Any) -> tuple[float | None, float | None]:
    stats = getattr(lm, "stats", None)
    if stats is None:
        return None, None
    get = stats.get if isinstance(stats, Mapping) else lambda k: getattr(stats, k, None)
    tokens, seconds = get("tokens"), get("seconds")
    return (float(tokens) if tokens is not None else None, float(seconds) if seconds is not None else None)


# --------------------------------------------------------------------------------------------
# Runners per kind


def _gen_args(task: Task, template: Template, scenario: Scenario, cot: bool = False) -> dict[str, Any]:
    default = _COT_GEN_TOKS if cot else task.max_gen_toks
    return {"until": list(template.stop or task.stop), "max_gen_toks": scenario.max_gen_toks or default}


def _run_rank(lm, task: Task, template: Template, items: list[PreparedItem]) -> tuple[dict, list[dict], int]:
    requests, spans = [], []
    for it in items:
        conts = template.continuations(it.record)
        spans.append((len(requests), len(conts)))
        requests += [(it.context, c) for c in conts]
    results = lm.loglikelihood(requests) if requests else []
    M = _metrics()
    rows, correct, correct_norm, conf, preds, golds = [], [], [], [], [], []
    for it, (start, n) in zip(items, spans, strict=True):
        lls = [float(results[start + j][0]) for j in range(n)]
        # lm-eval's acc_norm divides by the length of the choice itself, not of the continuation
        # with its target delimiter (the leading space): " no" counts 2, as in lm-eval, not 3
        lengths = [max(1, len(requests[start + j][1].removeprefix(" "))) for j in range(n)]
        probs = _softmax(lls)
        gold = int(it.record["label"])
        pred, pred_norm = _argmax(lls), _argmax([ll / L for ll, L in zip(lls, lengths)])
        row = {"uid": it.record["uid"], "label": gold, "pred": pred, "pred_norm": pred_norm,
               "correct": pred == gold, "correct_norm": pred_norm == gold, "logprobs": lls,
               "p_gold": probs[gold], "confidence": max(probs), "exemplars": it.exemplar_uids}
        if task.kind == "regression":
            row["expected"] = sum(p * float(c) for p, c in zip(probs, template.choice_list(it.record)))
            row["score"] = float(it.record["score"])
        rows.append(row)
        correct.append(row["correct"])
        correct_norm.append(row["correct_norm"])
        conf.append(row["confidence"])
        preds.append(pred)
        golds.append(gold)
    metrics = {
        "acc": _named(M.accuracy(correct), "acc"),
        "acc_norm": _named(M.accuracy(correct_norm), "acc_norm"),
        "ece": _named(M.expected_calibration_error(conf, correct, n_bins=10), "ece"),
        "p_gold": _mean_metric("p_gold", [r["p_gold"] for r in rows]),
    }
    if "mcc" in task.metrics:
        metrics["mcc"] = _named(M.matthews_corrcoef(preds, golds), "mcc")
    if "f1" in task.metrics:
        metrics["f1"] = _named(M.f1_binary(preds, golds), "f1")
    if task.kind == "regression":
        expected, scores = [r["expected"] for r in rows], [r["score"] for r in rows]
        metrics["pearson"] = _named(M.pearson(expected, scores), "pearson")
        metrics["spearman"] = _named(M.spearman(expected, scores), "spearman")
    return metrics, rows, len(requests)


def _generation_metrics(task: Task, preds: list[str], refs: list[list[str]], correct: list[bool]) -> dict:
    M = _metrics()
    out: dict[str, Any] = {}
    for name in task.metrics:
        if name == "em":
            # tasks with their own answer check (AGIEval letters, MATH equivalence) score with it
            out["em"] = (_named(M.accuracy(correct), "em") if task.is_correct
                         else _named(M.exact_match(preds, refs), "em"))
        elif name == "f1":
            out["f1"] = _named(M.f1(preds, refs), "f1")
        elif name == "bleu":
            out["bleu"] = _named(M.bleu(preds, refs), "bleu")
        elif name == "rouge":
            out.update(M.rouge(preds, refs))
    return out


def _run_generate(lm, task: Task, template: Template, items: list[PreparedItem], scenario: Scenario,
                  tname: str) -> tuple[dict, list[dict], int]:
    cot = tname.endswith("_cot")
    args = _gen_args(task, template, scenario, cot)
    outputs = lm.generate_until([(it.context, dict(args)) for it in items]) if items else []
    n_requests = len(items)
    reasoning = [None] * len(items)
    if template.stage2:  # zero-shot CoT: feed the reasoning back with the answer-extraction suffix
        reasoning = list(outputs)
        stage2 = [(f"{it.context}\n{r}\n{template.stage2}", {"until": list(task.stop),
                   "max_gen_toks": scenario.max_gen_toks or task.max_gen_toks})
                  for it, r in zip(items, reasoning, strict=True)]
        outputs = lm.generate_until(stage2) if stage2 else []
        n_requests += len(stage2)
    mc = task.kind == "multiple_choice"
    rows, preds, refs, correct = [], [], [], []
    for it, out, why in zip(items, outputs, reasoning, strict=True):
        pred = task.predict(out, it.record, tname)
        references = [it.record["choices"][int(it.record["label"])]] if mc else list(it.record["references"])
        ok = task.correct(pred, it.record) if (task.is_correct or not mc) else pred.strip() in references
        row = {"uid": it.record["uid"], "completion": out, "prediction": pred, "references": references,
               "correct": bool(ok), "exemplars": it.exemplar_uids}
        if why is not None:
            row["reasoning"] = why
        rows.append(row)
        preds.append(pred)
        refs.append(references)
        correct.append(bool(ok))
    M = _metrics()
    metrics = ({"acc": _named(M.accuracy(correct), "acc")} if mc
               else _generation_metrics(task, preds, refs, correct))
    return metrics, rows, n_requests


def _run_greedy(lm, task: Task, template: Template, items: list[PreparedItem]) -> tuple[dict, list[dict], int]:
    """LAMBADA as GPT-2/lm-eval score it: right iff greedy decoding would produce the target."""
    requests = [(it.context, template.answer(it.record)) for it in items]
    results = lm.loglikelihood(requests) if requests else []
    rows = [{"uid": it.record["uid"], "target": it.record["target"], "logprob": float(ll), "correct": bool(g),
             "exemplars": it.exemplar_uids} for it, (ll, g) in zip(items, results, strict=True)]
    M = _metrics()
    metrics = {"acc": _named(M.accuracy([r["correct"] for r in rows]), "acc"),
               # lm-eval's LAMBADA perplexity: exp of the mean target NLL per item
               "ppl": _named(_lm_metric("perplexity", [-r["logprob"] for r in rows], [1] * len(rows)), "ppl")}
    return metrics, rows, len(requests)


def _run_perplexity(lm, items: list[PreparedItem]) -> tuple[dict, list[dict], int]:
    texts = [it.record["text"] for it in items]
    results = lm.loglikelihood_rolling_with_counts(texts) if texts else []
    rows = []
    for it, text, (logprob, n_tokens) in zip(items, texts, results, strict=True):
        rows.append({"uid": it.record["uid"], "nll": -float(logprob), "tokens": int(n_tokens),
                     "bytes": len(text.encode("utf-8")), "words": len(text.split())})
    nll = [r["nll"] for r in rows]
    metrics = {
        "perplexity": _named(_lm_metric("perplexity", nll, [r["tokens"] for r in rows]), "perplexity"),
        "bits_per_byte": _named(_lm_metric("bits_per_byte", nll, [r["bytes"] for r in rows]), "bits_per_byte"),
        "word_perplexity": _named(_lm_metric("word_perplexity", nll, [r["words"] for r in rows]),
                                  "word_perplexity"),
    }
    return metrics, rows, len(texts)


def _run_preference(lm, items: list[PreparedItem]) -> tuple[dict, list[dict], int]:
    requests = []
    for it in items:
        r = it.record
        requests += [(r["prefix_chosen"], r["chosen"]), (r["prefix_rejected"], r["rejected"])]
    results = lm.loglikelihood(requests) if requests else []
    rows = []
    for i, it in enumerate(items):
        lc, lr = float(results[2 * i][0]), float(results[2 * i + 1][0])
        nc, nr = max(1, len(it.record["chosen"])), max(1, len(it.record["rejected"]))
        # strict: a tie is not a preference for the chosen reply
        rows.append({"uid": it.record["uid"], "logprob_chosen": lc, "logprob_rejected": lr,
                     "correct": lc > lr, "correct_norm": lc / nc > lr / nr})
    M = _metrics()
    metrics = {"acc": _named(M.accuracy([r["correct"] for r in rows]), "acc"),
               "acc_norm": _named(M.accuracy([r["correct_norm"] for r in rows]), "acc_norm")}
    return metrics, rows, len(requests)


def run_scenario(lm: Any, scenario: Scenario | str) -> ScenarioResult:
    """Build the scenario's prompts, query `lm`, and score (see the module doc)."""
    if isinstance(scenario, str):
        scenario = get_scenario(scenario)
    task = get_task(scenario.task)
    template = task.template(scenario.template_name)
    tname = template.name
    items = prepare(scenario)
    tokens0, seconds0 = _stats(lm)
    wall0 = time.perf_counter()
    if task.kind == "perplexity":
        metrics, rows, n_req = _run_perplexity(lm, items)
    elif task.kind == "preference":
        metrics, rows, n_req = _run_preference(lm, items)
    elif task.kind in ("multiple_choice", "regression"):
        generate = task.kind == "multiple_choice" and (scenario.protocol == "generate" or tname.endswith("_cot"))
        if generate:
            metrics, rows, n_req = _run_generate(lm, task, template, items, scenario, tname)
        else:
            metrics, rows, n_req = _run_rank(lm, task, template, items)
    elif task.scorer == "greedy":
        metrics, rows, n_req = _run_greedy(lm, task, template, items)
    else:
        metrics, rows, n_req = _run_generate(lm, task, template, items, scenario, tname)
    wall = time.perf_counter() - wall0
    tokens1, seconds1 = _stats(lm)
    params = getattr(lm, "num_parameters", None)
    if tokens0 is not None and tokens1 is not None:
        seconds = (seconds1 - seconds0) if seconds0 is not None and seconds1 is not None else wall
        efficiency = _metrics().efficiency(tokens1 - tokens0, seconds, n_req, params)
    else:  # an LM without counters: report what we can measure ourselves
        efficiency = {"tokens": None, "seconds": wall, "n_requests": n_req, "n_params": params}
    settings = scenario.settings()
    settings["shots_used"] = _shots(task, scenario)
    settings["lm"] = getattr(lm, "name", type(lm).__name__)
    return ScenarioResult(scenario.label, settings, metrics, len(rows), rows, efficiency)


def run_robustness(lm: Any, scenario: Scenario | str, kinds: Iterable[str] | None = None) -> RobustnessResult:
    """The scenario clean and under each perturbation; worst case = right in every variant."""
    if isinstance(scenario, str):
        scenario = get_scenario(scenario)
    if get_task(scenario.task).kind == "perplexity":
        raise ValueError("robustness is an accuracy under perturbation; perplexity tasks have none")
    if kinds is None:
        from harness.perturb import PERTURBATIONS

        kinds = PERTURBATIONS
    base = run_scenario(lm, scenario.replace(perturbation=None))
    perturbed = {k: run_scenario(lm, scenario.replace(perturbation=k)) for k in kinds}
    order = [r["uid"] for r in base.per_item]

    def aligned(result: ScenarioResult) -> list[bool]:
        by_uid = {r["uid"]: bool(r["correct"]) for r in result.per_item}
        return [by_uid[u] for u in order]

    table = {"identity": aligned(base), **{k: aligned(v) for k, v in perturbed.items()}}
    worst = _named(_metrics().worst_case_accuracy(table), "worst_case_acc")
    return RobustnessResult(f"{scenario.label}:robustness", base, perturbed, worst)


# --------------------------------------------------------------------------------------------
# Registry of named scenarios

# GPT-3's few-shot K (papers.md §6): 50 for arithmetic, 100 for the word tasks; LAMBADA 15.
_GPT3_FEWSHOT = {"arithmetic": 50, "word_scramble": 100}


def _default_scenarios() -> dict[str, Scenario]:
    out: dict[str, Scenario] = {}

    def add(name: str, **kw: Any) -> None:
        out[name] = Scenario(name=name, **kw)

    for name in list_tasks():
        task = get_task(name)
        if task.kind == "perplexity":
            add(f"{name}_ppl", task=name)
        elif name.startswith("agieval/"):
            add(name, task=name, agieval_format="zero_shot")
            for fmt in AGIEVAL_FORMATS:
                add(f"{name}:{fmt}", task=name, agieval_format=fmt)
        elif name.startswith("gpt3/"):
            instructions = UNSCRAMBLE_INSTRUCTION if task.cluster == "word_scramble" else None
            add(name, task=name)
            add(f"{name}:oneshot", task=name, shots=1)
            add(f"{name}:fewshot", task=name, shots=_GPT3_FEWSHOT[task.cluster])
            if instructions:
                add(f"{name}:instructed", task=name, instructions=instructions)
                add(f"{name}:instructed_oneshot", task=name, shots=1, instructions=instructions)
        elif name == "lambada":
            add("lambada", task=name)
            add("lambada:fewshot", task=name, template="fill_in_blank", shots=15)
        elif task.kind in ("multiple_choice", "regression"):
            add(name, task=name)
            add(f"{name}:5shot", task=name, shots=5)
            if "options" in task.template_names:
                add(f"{name}:options", task=name, template="options")
            if "gpt1_very" in task.template_names:
                add(f"{name}:gpt1_very", task=name, template="gpt1_very")
        elif task.kind == "generation":
            add(name, task=name)
            add(f"{name}:1shot", task=name, shots=1)
        else:
            add(name, task=name)
    return out


SCENARIOS: dict[str, Scenario] = _default_scenarios()

_SHOT_SUFFIX = re.compile(r"^(?P<base>.+?):(?:(?P<k>\d+)shots?|(?P<word>zeroshot|oneshot|fewshot))$")


def get_scenario(name: str, **overrides: Any) -> Scenario:
    """A named scenario (``SCENARIOS``), a task name (its defaults), or ``"<task>:<k>shot"``;
    keyword overrides replace fields (e.g. ``get_scenario("sst2", shots=5, limit=100)``)."""
    if name in SCENARIOS:
        base = SCENARIOS[name]
        renamed = {"name": None} if overrides else {}
        return base.replace(**{**renamed, **overrides})
    m = _SHOT_SUFFIX.match(name)
    if m and (m["base"] in SCENARIOS or m["base"] in list_tasks()):
        k = int(m["k"]) if m["k"] else {"zeroshot": 0, "oneshot": 1, "fewshot": 5}[m["word"]]
        return get_scenario(m["base"], **{"shots": k, **overrides})
    if name in list_tasks():
        return Scenario(task=name, **overrides)
    close = difflib.get_close_matches(name, list(SCENARIOS), n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    raise KeyError(f"unknown scenario {name!r}{hint} (SCENARIOS has {len(SCENARIOS)} names)")
