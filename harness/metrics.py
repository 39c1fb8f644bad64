"""Metrics with sample sizes and bootstrap confidence intervals.

Every metric returns a :class:`MetricResult` (name, value, n, ci_low, ci_high, extra). The CI is a
seeded percentile bootstrap (95%, 1000 resamples by default) over the *units the metric averages
over*: items for accuracy / EM / F1 / calibration, sentences for corpus BLEU (recomputed from the
resampled sentence statistics, not averaged), documents for ROUGE and perplexity, pairs for
correlations. Resampling is vectorised with numpy: one ``(resamples, n)`` index matrix per chunk.

Scales (chosen so a metric key means the same thing wherever it is produced):

====================================  ===============================================
accuracy, EM, F1, F1-binary, ECE,     fractions in [0, 1] (``extra["scale"] = "fraction"``);
worst-case accuracy                   EM/F1 are 0-1 so that "em" from ``accuracy`` (tasks with
                                      their own answer check) and from ``exact_match`` agree
MCC, Pearson, Spearman                [-1, 1]
BLEU, ROUGE-1/2/L                     0-100, as sacrebleu and the papers print them
perplexity, word perplexity, bpb      their natural units (>= 1, >= 1, bits per UTF-8 byte)
====================================  ===============================================

Per-item values are kept in ``extra["items"]`` for metrics that are a plain mean over items, so
``paired_bootstrap_diff`` (and ``harness.claims``) can compare two systems on the same items. Corpus
metrics (perplexity, BLEU) keep linearised items (``LINEARISED``: each item's first-order influence,
mean = the metric), which serve the same paired comparisons.

A metric with no uncertainty estimate (e.g. a perplexity from corpus totals only) has
``ci_low = ci_high = None``; a deterministic quantity (parameter count) can be made with
:meth:`MetricResult.exact`, whose CI is the point itself.
"""

from __future__ import annotations

import fnmatch
import math
import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "MetricResult",
    "accuracy",
    "argmax_length_normalised",
    "bits_per_byte",
    "bleu",
    "bootstrap_ci",
    "efficiency",
    "exact_match",
    "expected_calibration_error",
    "f1",
    "f1_binary",
    "length_normalised_accuracy",
    "log_of",
    "matthews_corrcoef",
    "mean_with_ci",
    "normalize_answer",
    "over_prompts",
    "paired_bootstrap_diff",
    "paired_bootstrap_ratio",
    "power_law_fit",
    "pearson",
    "perplexity",
    "rouge",
    "spearman",
    "word_perplexity",
    "worst_case_accuracy",
]

DEFAULT_RESAMPLES = 1000
# Metrics the papers print as percentages (accuracy 92.7, MCC 52.1, ROUGE-L 34.2): measured and
# stored as fractions, displayed x100 wherever a number is shown (claims' explanations, the report,
# figures), so ours sit in the paper's unit and every metric has one unit everywhere
# (ROUGE is not here: harness.metrics.rouge already reports 0-100.) A key names its unit by its last
# part; T0's prompt statistics (median, mean, spread), BERT's steps_avg and the size sweeps' effect
# are accuracies too. Keys whose last part names an arm (FLAN's .../base, .../flan) or a gap
# (PEFT's .../gap, a GLUE-score gap in one place and a ROUGE gap in another) cannot say their unit
# by name: the paper that writes them declares them with `declare_percent`, next to its claims.
PERCENT_METRICS = frozenset({"acc", "acc_norm", "accuracy", "median_acc", "heldout_acc", "f1", "mcc", "pearson",
                             "spearman", "exact_match", "avg", "over_majority", "worst_case_acc", "median", "mean",
                             "spread", "steps_avg", "effect"})
# fnmatch patterns over whole keys ("*" spans "/" too), declared by papers; see declare_percent.
_PERCENT_PATTERNS: set[str] = set()


def declare_percent(*patterns: str) -> None:
    """Declare that metric keys matching these fnmatch patterns (whole key, ``*`` also matches
    ``/``) hold percentage-type fractions, displayed x100 like PERCENT_METRICS. A paper calls
    this at import, beside the claims that read those keys, so the report, the figures and the
    claims' explanations all show them in one unit."""
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern:
            raise ValueError(f"declare_percent takes non-empty key patterns, not {pattern!r}")
        _PERCENT_PATTERNS.add(pattern)


def is_percent(key: str) -> bool:
    """Whether a metric key holds a percentage-type fraction (shown x100)."""
    return key.rsplit("/", 1)[-1] in PERCENT_METRICS or any(fnmatch.fnmatchcase(key, p) for p in _PERCENT_PATTERNS)


def display_factor(*keys: str) -> float:
    """100 when every metric key names a percentage-type metric (is_percent), else 1."""
    return 100.0 if keys and all(is_percent(k) for k in keys) else 1.0

DEFAULT_SEED = 0
CONFIDENCE = 0.95
# Keep each (resamples x n) index block below this many entries (~40 MB of int64 indices).
_MAX_BLOCK = 5_000_000


# --------------------------------------------------------------------------------------------
# The result object


def _plain(x: Any) -> Any:
    """JSON-ready copy: numpy scalars/arrays to Python, NaN/inf to None (JSON has no NaN)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(float(x)) else None
    return x


@dataclass
class MetricResult:
    """One measured number with its sample size and 95% CI (None when not estimable)."""

    name: str
    value: float
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_ci(self) -> bool:
        return self.ci_low is not None and self.ci_high is not None

    @property
    def items(self) -> list[float] | None:
        """Per-item values whose mean is ``value`` (None for corpus-level metrics)."""
        return self.extra.get("items")

    @classmethod
    def exact(cls, name: str, value: float, **extra: Any) -> MetricResult:
        """A quantity known without sampling error (parameter count, FLOPs): CI = the point."""
        return cls(name, float(value), 1, float(value), float(value), {"exact": True, **extra})

    @classmethod
    def timing(cls, name: str, value: float, **extra: Any) -> MetricResult:
        """A wall-clock measurement (tokens/s, seconds): a property of the machine and its load as much
        as of the code, so it has no CI and `harness.regress` does not compare it across machines;
        speed regressions are the benchmarks' job (ratios against a reference measured in the same run)."""
        return cls(name, float(value), 1, None, None, {"timing": True, **extra})

    def to_dict(self, include_items: bool = True) -> dict[str, Any]:
        extra = dict(self.extra)
        if not include_items:
            extra.pop("items", None)
        return {"name": self.name, "value": _plain(self.value), "n": int(self.n),
                "ci_low": _plain(self.ci_low), "ci_high": _plain(self.ci_high), "extra": _plain(extra)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetricResult:
        value = d.get("value")
        return cls(str(d.get("name", "")), float("nan") if value is None else float(value), int(d.get("n", 0)),
                   None if d.get("ci_low") is None else float(d["ci_low"]),
                   None if d.get("ci_high") is None else float(d["ci_high"]),
                   dict(d.get("extra") or {}))


# --------------------------------------------------------------------------------------------
# Bootstrap machinery


def _index_blocks(n: int, n_resamples: int, seed: int):
    """Yield (block, n) index matrices covering `n_resamples` resamples, from one seeded stream.

    Blocking bounds memory for large n; the stream is the same whatever the block size."""
    rng = np.random.default_rng(seed)
    per_block = max(1, _MAX_BLOCK // max(n, 1))
    done = 0
    while done < n_resamples:
        b = min(per_block, n_resamples - done)
        yield rng.integers(0, n, size=(b, n))
        done += b


def _resampled_sums(columns: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Column sums of `columns` (n, k) under each bootstrap resample of its rows -> (resamples, k).

    Most metrics are a function of a few per-item sums (matches and counts, sums of x, y, xy, ...),
    so one pass over the resampled sums gives every resample's value without a Python loop."""
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim == 1:
        columns = columns[:, None]
    n, k = columns.shape
    out = np.empty((n_resamples, k))
    row = 0
    for idx in _index_blocks(n, n_resamples, seed):
        for j in range(k):
            out[row:row + len(idx), j] = columns[idx, j].sum(axis=1)
        row += len(idx)
    return out


def _resampled_group_sums(groups: np.ndarray, weights: np.ndarray, n_groups: int, n_resamples: int,
                           seed: int) -> np.ndarray:
    """Per-group sums of `weights` under each resample -> (resamples, n_groups).

    Equivalent to ``_resampled_sums`` on one-hot columns (bins, confusion cells) and drawing the
    same indices, but one bincount per block instead of one gather per group."""
    groups = np.asarray(groups, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    n = len(groups)
    out = np.empty((n_resamples, n_groups))
    row = 0
    for idx in _index_blocks(n, n_resamples, seed):
        b = len(idx)
        cells = (groups[idx] + (np.arange(b) * n_groups)[:, None]).ravel()
        out[row:row + b] = np.bincount(cells, weights=weights[idx].ravel(), minlength=b * n_groups).reshape(b, n_groups)
        row += b
    return out


def _percentile_ci(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return None, None
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(samples, [tail, 100.0 - tail])
    return float(lo), float(hi)


def bootstrap_ci(columns: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray], *,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                 confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """Percentile CI of ``statistic(sums)`` where ``sums`` are resampled column sums.

    ``statistic`` maps a (resamples, k) array of column sums to (resamples,) values; it must also
    accept the (1, k) full-sample sums, which is how point values are computed below."""
    columns = np.asarray(columns, dtype=np.float64)
    if len(columns) == 0:
        return None, None
    return _percentile_ci(statistic(_resampled_sums(columns, n_resamples, seed)), confidence)


def _full(columns: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray]) -> float:
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim == 1:
        columns = columns[:, None]
    return float(statistic(columns.sum(axis=0, keepdims=True))[0])


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), np.nan)


def _ratio_of_sums(sums: np.ndarray) -> np.ndarray:
    return _safe_div(sums[:, 0], sums[:, 1])


def mean_with_ci(name: str, values: Sequence[float], *, n_resamples: int = DEFAULT_RESAMPLES,
                 seed: int = DEFAULT_SEED, keep_items: bool = True, **extra: Any) -> MetricResult:
    """Mean of per-item values with a bootstrap CI; the building block of accuracy/EM/F1."""
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    n = len(x)
    if n == 0:
        return MetricResult(name, float("nan"), 0, None, None, {**extra, "empty": True})
    lo, hi = _percentile_ci(_resampled_sums(x, n_resamples, seed)[:, 0] / n)
    info: dict[str, Any] = {**extra, "ci_method": "percentile bootstrap over items",
                            "n_resamples": n_resamples, "seed": seed}
    if keep_items:
        info["items"] = x.tolist()
    return MetricResult(name, float(x.mean()), n, lo, hi, info)


def paired_bootstrap_diff(a_items: Sequence[float], b_items: Sequence[float], *, name: str = "diff",
                          n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """mean(a) - mean(b) over the same items, with a CI from resampling items jointly.

    Pairing removes the item-difficulty variance both systems share, so it is far tighter than
    comparing two independent CIs."""
    a = np.asarray([float(v) for v in a_items], dtype=np.float64)
    b = np.asarray([float(v) for v in b_items], dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same items: {len(a)} vs {len(b)} values")
    result = mean_with_ci(name, a - b, n_resamples=n_resamples, seed=seed, keep_items=False)
    result.extra["ci_method"] = "paired percentile bootstrap over items"
    if len(a):
        # how often the resampled difference is <= 0: a one-sided bootstrap p-value for a > b
        sums = _resampled_sums(a - b, n_resamples, seed)[:, 0]
        result.extra["frac_resamples_le_0"] = float(np.mean(sums <= 0))
    return result


def paired_bootstrap_ratio(a_items: Sequence[float], b_items: Sequence[float], *, name: str = "ratio",
                           n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """mean(a) / mean(b) over the same items, with a CI from resampling items jointly
    (NaN resamples, where mean(b) is 0, are dropped from the percentiles)."""
    a = np.asarray([float(v) for v in a_items], dtype=np.float64)
    b = np.asarray([float(v) for v in b_items], dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same items: {len(a)} vs {len(b)} values")
    if len(a) == 0:
        return MetricResult(name, float("nan"), 0, None, None, {"empty": True})
    value = float(_ratio_of_sums(np.array([[a.sum(), b.sum()]]))[0])
    lo, hi = _percentile_ci(_ratio_of_sums(_resampled_sums(np.stack([a, b], axis=1), n_resamples, seed)))
    return MetricResult(name, value, len(a), lo, hi, {"ci_method": "paired percentile bootstrap over items",
                                                      "n_resamples": n_resamples, "seed": seed})


def over_prompts(name: str, per_dataset: Sequence[np.ndarray], reduce: str = "median", *,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """A statistic across prompts (templates), averaged over datasets: T0's median accuracy over a
    dataset's prompts, FLAN's spread (standard deviation) over templates.

    ``per_dataset``: one (prompts x items) array of per-item scores per dataset, every prompt
    scored on the same items. Per dataset, each prompt's mean over items is reduced over prompts
    (``median``, ``std`` (population), ``mean``, ``iqr``); the value is the mean over datasets.
    CI: percentile bootstrap resampling items within each dataset, the same items for every
    prompt, so a prompt's accuracy and its rank among prompts move together."""
    reducers = {"median": lambda a: float(np.median(a)), "std": lambda a: float(np.std(a)),
                "mean": lambda a: float(np.mean(a)),
                "iqr": lambda a: float(np.subtract(*np.percentile(a, [75, 25])))}
    if reduce not in reducers:
        raise ValueError(f"reduce must be one of {sorted(reducers)}, not {reduce!r}")
    mats = [np.asarray(m, dtype=np.float64) for m in per_dataset]
    if not mats or any(m.ndim != 2 or m.shape[1] == 0 for m in mats):
        raise ValueError("over_prompts needs, per dataset, a non-empty (prompts x items) array")
    f = reducers[reduce]

    def stat(index_sets) -> float:
        return float(np.mean([f(m[:, idx].mean(1)) for m, idx in zip(mats, index_sets)]))

    value = stat([np.arange(m.shape[1]) for m in mats])
    rng = np.random.default_rng(seed)
    samples = [stat([rng.integers(0, m.shape[1], m.shape[1]) for m in mats]) for _ in range(n_resamples)]
    lo, hi = np.percentile(samples, [2.5, 97.5])
    return MetricResult(name, value, sum(m.shape[1] for m in mats), float(lo), float(hi),
                        {"ci_method": "percentile bootstrap over items (within dataset)", "n_resamples": n_resamples,
                         "templates": int(mats[0].shape[0]), "reduce": reduce, "datasets": len(mats)})


# --------------------------------------------------------------------------------------------
# Accuracy family


def accuracy(correct: Sequence[bool], *, n_resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED) -> MetricResult:
    """Fraction of items answered correctly."""
    return mean_with_ci("accuracy", [bool(c) for c in correct], n_resamples=n_resamples, seed=seed,
                        scale="fraction")


def _length(text: str, unit: str) -> int:
    if unit == "bytes":
        return len(text.encode("utf-8"))
    if unit == "chars":
        return len(text)
    raise ValueError(f"unit must be 'chars' or 'bytes', not {unit!r}")


def argmax_length_normalised(logprobs: Sequence[float], choices: Sequence[str], unit: str = "chars") -> int:
    """Index of the choice with the highest log-probability per unit of length.

    lm-eval's ``acc_norm`` divides by the *byte* length of the continuation (UTF-8); ``unit="chars"``
    (the default here, what the harness scenarios use) is identical for ASCII text and differs only
    for multi-byte characters. Empty choices count as length 1; ties go to the first choice."""
    if len(logprobs) != len(choices) or not choices:
        raise ValueError("need one log-probability per choice, and at least one choice")
    scores = [float(lp) / max(1, _length(c, unit)) for lp, c in zip(logprobs, choices)]
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def length_normalised_accuracy(logprobs: Sequence[Sequence[float]], choices: Sequence[Sequence[str]],
                               gold: Sequence[int], *, unit: str = "chars",
                               n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """Accuracy when each item's prediction is :func:`argmax_length_normalised` of its choices."""
    if not (len(logprobs) == len(choices) == len(gold)):
        raise ValueError("logprobs, choices and gold must have one entry per item")
    correct = [argmax_length_normalised(lp, ch, unit) == int(g) for lp, ch, g in zip(logprobs, choices, gold)]
    result = accuracy(correct, n_resamples=n_resamples, seed=seed)
    result.name = "acc_norm"
    result.extra["length_unit"] = unit
    return result


def worst_case_accuracy(correct_by_perturbation: Mapping[str, Sequence[bool]], *, mode: str = "item",
                        n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """Robustness: accuracy in the worst case over perturbations of the same items.

    ``mode="item"`` (default, HELM's definition and what ``harness.scenarios.run_robustness``
    documents): an item counts as correct only if it is correct under *every* perturbation, so the
    value is <= the minimum per-perturbation accuracy. ``mode="aggregate"``: the minimum over
    perturbations of each perturbation's accuracy. Both numbers are always in ``extra``; include
    the clean run (e.g. key "identity") in the mapping if it should count."""
    if not correct_by_perturbation:
        raise ValueError("worst_case_accuracy needs at least one perturbation")
    table = {k: [bool(c) for c in v] for k, v in correct_by_perturbation.items()}
    lengths = {len(v) for v in table.values()}
    per_kind = {k: (sum(v) / len(v) if v else float("nan")) for k, v in table.items()}
    worst_kind = min(per_kind, key=lambda k: per_kind[k])
    if mode == "item":
        if len(lengths) != 1:
            raise ValueError(f"item-level worst case needs the same items under every perturbation: {lengths}")
        per_item = [all(col) for col in zip(*table.values())]
        result = mean_with_ci("worst_case_accuracy", per_item, n_resamples=n_resamples, seed=seed)
    elif mode == "aggregate":
        result = accuracy(table[worst_kind], n_resamples=n_resamples, seed=seed)
        result.name = "worst_case_accuracy"
    else:
        raise ValueError(f"mode must be 'item' or 'aggregate', not {mode!r}")
    result.extra.update({"mode": mode, "scale": "fraction", "per_perturbation": per_kind,
                         "worst_perturbation": worst_kind,
                         "min_accuracy_over_perturbations": per_kind[worst_kind]})
    return result


# --------------------------------------------------------------------------------------------
# SQuAD-style EM / F1


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD v1.1 normalisation: lowercase, drop punctuation, drop articles, squeeze whitespace.

    Note: '-' is punctuation here, so "-12" and "12" compare equal; tasks whose answers are signed
    numbers should score with their own answer check (``accuracy`` of a task-specific match)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _as_refs(ref: str | Sequence[str]) -> list[str]:
    refs = [ref] if isinstance(ref, str) else list(ref)
    if not refs:
        raise ValueError("every item needs at least one reference")
    return refs


def _token_f1(pred: str, ref: str) -> float:
    p, r = normalize_answer(pred).split(), normalize_answer(ref).split()
    if not p or not r:
        return float(p == r)  # both empty: a match; one empty: nothing in common
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _check_pairs(preds: Sequence[str], refs: Sequence[Any]) -> None:
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} reference entries")


def exact_match(preds: Sequence[str], refs: Sequence[str | Sequence[str]], *,
                n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """Fraction of predictions equal (after normalisation) to any of their references."""
    _check_pairs(preds, refs)
    scores = [max(float(normalize_answer(p) == normalize_answer(r)) for r in _as_refs(ref))
              for p, ref in zip(preds, refs)]
    return mean_with_ci("exact_match", scores, n_resamples=n_resamples, seed=seed,
                        scale="fraction", normalisation="squad")


def f1(preds: Sequence[str], refs: Sequence[str | Sequence[str]], *,
       n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """Mean over items of the best token-overlap F1 against any reference (SQuAD)."""
    _check_pairs(preds, refs)
    scores = [max(_token_f1(p, r) for r in _as_refs(ref)) for p, ref in zip(preds, refs)]
    return mean_with_ci("f1", scores, n_resamples=n_resamples, seed=seed, scale="fraction",
                        normalisation="squad")


# --------------------------------------------------------------------------------------------
# BLEU and ROUGE


def _reference_streams(refs: Sequence[str | Sequence[str]]) -> list[list[str | None]]:
    """Per-item references -> sacrebleu's reference streams (stream j = j-th reference of every
    item), padding with None where an item has fewer references (sacrebleu skips None)."""
    per_item = [_as_refs(r) for r in refs]
    width = max((len(r) for r in per_item), default=1)
    return [[r[j] if j < len(r) else None for r in per_item] for j in range(width)]


def bleu(hyps: Sequence[str], refs: Sequence[str | Sequence[str]], *, tokenize: str | None = None,
         lowercase: bool = False, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """Corpus BLEU (0-100) with sacrebleu's defaults (13a tokenizer, exp smoothing).

    ``refs[i]`` holds the reference(s) of hypothesis i (a string or a list of strings). The CI
    resamples sentences and recomputes corpus BLEU from their summed n-gram statistics (the same
    statistics sacrebleu's own bootstrap uses), so it is a CI of corpus BLEU, not of a mean."""
    from sacrebleu.metrics import BLEU

    _check_pairs(hyps, refs)
    kwargs: dict[str, Any] = {"lowercase": lowercase}
    if tokenize is not None:
        kwargs["tokenize"] = tokenize
    metric = BLEU(**kwargs)
    streams = _reference_streams(refs)
    n = len(hyps)
    if n == 0:
        return MetricResult("bleu", float("nan"), 0, None, None, {"empty": True})
    score = metric.corpus_score(list(hyps), streams)
    signature = str(metric.get_signature())
    stats = np.asarray(metric._extract_corpus_statistics(list(hyps), streams), dtype=np.float64)
    sums = _resampled_sums(stats, n_resamples, seed)
    # BLEU from summed stats is not a simple ratio; sacrebleu's scorer takes integer stat vectors
    samples = np.array([metric._compute_score_from_stats(list(map(int, row))).score for row in sums])
    lo, hi = _percentile_ci(samples)
    info = {"signature": signature, "scale": "0-100", "bp": float(score.bp), "sys_len": int(score.sys_len),
            "ref_len": int(score.ref_len), "precisions": [float(p) for p in score.precisions],
            "ci_method": "percentile bootstrap over sentences (corpus BLEU recomputed)",
            "n_resamples": n_resamples, "seed": seed}
    items = bleu_items(stats, float(score.score))
    if items is not None:
        info.update({"items": _rounded(items), "items_method": LINEARISED})
    return MetricResult("bleu", float(score.score), n, lo, hi, info)


def bleu_items(stats: np.ndarray, score: float, order: int = 4) -> np.ndarray | None:
    """Each sentence's first-order influence on corpus BLEU (`LINEARISED`), from sacrebleu's
    per-sentence statistics [hypothesis length, reference length, matches 1..order, totals 1..order].
    ln BLEU = min(0, 1 - R/C) + mean_n (ln M_n - ln T_n) over the corpus sums, so a sentence moves it
    by mean_n (m_n/M_n - t_n/T_n) n-fold, plus, under the brevity penalty, R c / C^2 - r / C n-fold.
    None when an n-gram order has no match at all: there BLEU rests on sacrebleu's smoothing, which
    has no such expansion."""
    stats = np.asarray(stats, dtype=np.float64)
    n = len(stats)
    if n < 2 or score <= 0:
        return None
    sums = stats.sum(axis=0)
    hyp, ref, matches, totals = stats[:, 0], stats[:, 1], stats[:, 2 : 2 + order], stats[:, 2 + order : 2 + 2 * order]
    if np.any(sums[2 : 2 + order] == 0) or np.any(sums[2 + order : 2 + 2 * order] == 0) or sums[0] == 0:
        return None
    influence = np.mean(n * matches / sums[2 : 2 + order] - n * totals / sums[2 + order : 2 + 2 * order], axis=1)
    if sums[0] < sums[1]:  # the brevity penalty exp(1 - R/C) applies
        influence += n * (sums[1] * hyp / sums[0] ** 2 - ref / sums[0])
    return score * (1 + influence - influence.mean())  # the mean is 0 up to rounding; keep it exact


def _seed_and_item_sums(stats: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Sums of per-(training seed, item) statistics `stats` (S, n, k) under a two-level bootstrap:
    each resample draws S seeds and n items with replacement -> (resamples, k). Resampling seeds
    puts run-to-run variation into the CI, not only test-set variation."""
    S, n, k = stats.shape
    rng = np.random.default_rng(seed)
    out = np.empty((n_resamples, k))
    for r in range(n_resamples):
        seeds, items = rng.integers(0, S, S), rng.integers(0, n, n)
        out[r] = stats[seeds][:, items].sum(axis=(0, 1))
    return out


def bleu_over_seeds(hyps_by_seed: Sequence[Sequence[str]], refs: Sequence[str | Sequence[str]], *,
                    n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """Corpus BLEU (sacrebleu defaults) of models trained with different seeds, pooled: the n-gram
    statistics of every seed's translation of every sentence are summed. The CI is a two-level
    bootstrap (seeds, then sentences). With one seed the value equals `bleu(hyps, refs)`."""
    from sacrebleu.metrics import BLEU

    if not hyps_by_seed:
        raise ValueError("bleu_over_seeds needs the hypotheses of at least one seed")
    for hyps in hyps_by_seed:
        _check_pairs(hyps, refs)
    metric, streams = BLEU(), _reference_streams(refs)
    stats = np.stack([np.asarray(metric._extract_corpus_statistics(list(h), streams), dtype=np.float64)
                      for h in hyps_by_seed])
    total = metric._compute_score_from_stats(list(map(int, stats.sum(axis=(0, 1)))))
    samples = np.array([metric._compute_score_from_stats(list(map(int, row))).score
                        for row in _seed_and_item_sums(stats, n_resamples, seed)])
    lo, hi = _percentile_ci(samples)
    per_seed = [metric._compute_score_from_stats(list(map(int, s.sum(axis=0)))).score for s in stats]
    return MetricResult("bleu", float(total.score), len(refs), lo, hi, {
        "signature": str(metric.get_signature()), "scale": "0-100", "per_seed": per_seed,
        "n_seeds": len(hyps_by_seed), "bp": float(total.bp),
        "ci_method": "two-level percentile bootstrap over seeds and sentences (corpus BLEU recomputed)",
        "n_resamples": n_resamples, "seed": seed})


def perplexity_over_seeds(nll_by_seed: Sequence[Sequence[float]], n_tokens: Sequence[float], *,
                          n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """exp(sum NLL / sum tokens) over the same documents scored by models of several seeds, with a
    two-level bootstrap CI (seeds, then documents)."""
    nll = np.asarray(nll_by_seed, dtype=np.float64)
    if nll.ndim != 2 or nll.shape[1] != len(n_tokens) or not len(n_tokens):
        raise ValueError(f"need (seeds, documents) NLLs matching {len(n_tokens)} token counts, got {nll.shape}")
    counts = np.broadcast_to(np.asarray(n_tokens, dtype=np.float64), nll.shape)
    stats = np.stack([nll, counts], axis=-1)
    value = float(np.exp(nll.sum() / counts.sum()))
    lo, hi = _percentile_ci(np.exp(_ratio_of_sums(_seed_and_item_sums(stats, n_resamples, seed))))
    per_seed = [float(np.exp(row.sum() / counts[0].sum())) for row in nll]
    return MetricResult("perplexity", value, len(n_tokens), lo, hi, {
        "per_seed": per_seed, "n_seeds": len(nll), "n_tokens": float(counts[0].sum()),
        "ci_method": "two-level percentile bootstrap over seeds and documents",
        "n_resamples": n_resamples, "seed": seed})


ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def rouge(hyps: Sequence[str], refs: Sequence[str | Sequence[str]], *, rouge_types: Sequence[str] = ROUGE_TYPES,
          n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> dict[str, MetricResult]:
    """ROUGE F-measures (0-100), mean over documents, via rouge-score with the Porter stemmer.

    With several references per document the best-scoring one counts (rouge-score's score_multi).
    Keys are the rouge-score type names ("rouge1", "rouge2", "rougeL"); CIs resample documents."""
    from rouge_score import rouge_scorer

    _check_pairs(hyps, refs)
    scorer = rouge_scorer.RougeScorer(list(rouge_types), use_stemmer=True)
    per_type: dict[str, list[float]] = {t: [] for t in rouge_types}
    for hyp, ref in zip(hyps, refs):
        scores = scorer.score_multi(_as_refs(ref), hyp)
        for t in rouge_types:
            per_type[t].append(100.0 * scores[t].fmeasure)
    return {t: mean_with_ci(t, per_type[t], n_resamples=n_resamples, seed=seed, scale="0-100",
                            measure="F", stemmer=True) for t in rouge_types}


# --------------------------------------------------------------------------------------------
# Language-model likelihood metrics


def _per_document(nll: float | Sequence[float], counts: float | Sequence[float]) -> tuple[np.ndarray, np.ndarray, bool]:
    """(nll per document, count per document, whether per-document values were given)."""
    scalar = np.ndim(nll) == 0 and np.ndim(counts) == 0
    x = np.atleast_1d(np.asarray(nll, dtype=np.float64))
    c = np.atleast_1d(np.asarray(counts, dtype=np.float64))
    if x.shape != c.shape:
        raise ValueError(f"need one count per document: {x.shape} nll values vs {c.shape} counts")
    if np.any(c < 0):
        raise ValueError("token / byte / word counts cannot be negative")
    return x, c, not scalar


# How a corpus metric's per-item values are made: not a mean over items, but each item's first-order
# influence on the metric (the delta method), so that their mean is the metric and var / n its
# sampling variance; a difference of two systems' items on the same items is the paired difference.
LINEARISED = "linearised: each item's first-order influence on the corpus metric (delta method); mean = value"


def _slope(f: Callable[[np.ndarray], np.ndarray], x: float) -> float:
    """f'(x) by a central difference (the transforms here are smooth: exp, a scale factor)."""
    h = 1e-6 * max(1.0, abs(x))
    with np.errstate(over="ignore"):
        return float((f(np.array([x + h]))[0] - f(np.array([x - h]))[0]) / (2 * h))


def _rounded(values: np.ndarray, digits: int = 7) -> list[float]:
    """Per-item values as stored in results files: 7 significant digits, far below any CI."""
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64)]


def _corpus_rate(name: str, nll: float | Sequence[float], counts: float | Sequence[float],
                 transform: Callable[[np.ndarray], np.ndarray], unit: str, *, n_resamples: int,
                 seed: int) -> MetricResult:
    """transform(sum nll / sum count) with a CI from resampling documents.

    Passing totals (two scalars) gives the value with no CI: one corpus total says nothing about
    how it would vary with other documents."""
    x, c, per_doc = _per_document(nll, counts)
    total_nll, total = float(x.sum()), float(c.sum())
    if total <= 0:
        raise ValueError(f"{name} needs a positive number of {unit}")
    with np.errstate(over="ignore"):  # exp of a huge loss is inf, reported as such
        value = float(transform(np.array([total_nll / total]))[0])
    info: dict[str, Any] = {"total_nll_nats": total_nll, f"n_{unit}": total}
    lo = hi = None
    if per_doc and len(x) > 1:
        rates = _ratio_of_sums(_resampled_sums(np.stack([x, c], axis=1), n_resamples, seed))
        with np.errstate(over="ignore"):
            lo, hi = _percentile_ci(transform(rates))
        # Per-document items, so that two models scored on the same documents compare paired, document
        # by document, and the documents' common difficulty cancels (`harness.claims`, `harness.seeds`).
        # The rate sum(nll) / sum(count) is a ratio of means; its linearisation around the corpus rate r,
        # r_i = r + (nll_i - r count_i) / mean(count), has mean r and var(r_i) / n is the delta-method
        # variance of the ratio (a long document weighs more, a document's length itself is no noise).
        # The metric's items carry that through transform(r) the same way (its slope at r).
        rate = total_nll / total
        rate_items = rate + (x - rate * c) / (total / len(x))
        slope = _slope(transform, rate)
        info.update({"ci_method": "percentile bootstrap over documents", "n_resamples": n_resamples,
                     "seed": seed, "n_documents": len(x), "rate_items": _rounded(rate_items)})
        if math.isfinite(value) and math.isfinite(slope):
            info["items"] = _rounded(value + slope * (rate_items - rate))
            info["items_method"] = LINEARISED
    else:
        info["ci_method"] = "none (corpus totals only; pass per-document lists for a CI)"
    return MetricResult(name, value, int(total) if per_doc is False else len(x), lo, hi, info)


def perplexity(total_nll_nats: float | Sequence[float], n_tokens: float | Sequence[float], *,
               n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """exp(total NLL in nats / number of predicted tokens).

    Pass two totals, or per-document lists (nll of each document, tokens of each) for a CI that
    resamples documents. ``n`` is the number of documents (or of tokens, for totals)."""
    return _corpus_rate("perplexity", total_nll_nats, n_tokens, np.exp, "tokens",
                        n_resamples=n_resamples, seed=seed)


def log_of(metric: MetricResult) -> MetricResult:
    """ln of a perplexity (nats per token or word), its interval carried through (ln is monotone).
    ln(perplexity) is the mean of the per-document terms `rate_items`, which become its items: the
    claims then compare two models paired over the same documents instead of adding two intervals."""
    if metric.name not in ("perplexity", "word_perplexity"):
        raise ValueError(f"log_of takes a perplexity (exp of nats per unit), not {metric.name!r}")
    ln = lambda x: None if x is None else math.log(x)  # noqa: E731
    extra = {k: v for k, v in metric.extra.items() if k not in ("items", "reported_id", "rate_items")}
    if "rate_items" in metric.extra:
        extra["items"] = metric.extra["rate_items"]
    return MetricResult(f"log_{metric.name}", ln(metric.value), metric.n, ln(metric.ci_low), ln(metric.ci_high),
                        {**extra, "transform": f"ln({metric.name})"})


def word_perplexity(total_nll_nats: float | Sequence[float], n_words: float | Sequence[float], *,
                    n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """exp(total NLL / number of words): tokenizer-independent, as lm-eval's word_perplexity."""
    return _corpus_rate("word_perplexity", total_nll_nats, n_words, np.exp, "words",
                        n_resamples=n_resamples, seed=seed)


def bits_per_byte(total_nll_nats: float | Sequence[float], n_bytes: float | Sequence[float], *,
                  n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """total NLL / (UTF-8 bytes * ln 2): nats to bits, per byte of raw text (GPT-2 / lm-eval
    accounting), which compares models with different tokenizers."""
    return _corpus_rate("bits_per_byte", total_nll_nats, n_bytes, lambda r: r / math.log(2), "bytes",
                        n_resamples=n_resamples, seed=seed)


# --------------------------------------------------------------------------------------------
# Correlations and classification scores (GLUE: STS-B, CoLA, MRPC)


def _paired_arrays(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"need two equal-length 1-d sequences, got {a.shape} and {b.shape}")
    return a, b


def _pearson_from_sums(s: np.ndarray) -> np.ndarray:
    """Pearson r from sums of (1, x, y, x^2, y^2, xy) per row."""
    n, sx, sy, sxx, syy, sxy = (s[:, i] for i in range(6))
    cov = n * sxy - sx * sy
    var = (n * sxx - sx * sx) * (n * syy - sy * sy)
    with np.errstate(invalid="ignore"):
        return _safe_div(cov, np.sqrt(np.clip(var, 0, None)))


def _moment_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # centre first: the sums-of-powers formula loses precision on large offsets
    a, b = a - a.mean(), b - b.mean()
    return np.stack([np.ones_like(a), a, b, a * a, b * b, a * b], axis=1)


def _correlation_result(name: str, value: float, n: int, lo, hi, n_resamples: int, seed: int) -> MetricResult:
    return MetricResult(name, value, n, lo, hi, {"ci_method": "percentile bootstrap over pairs",
                                                 "n_resamples": n_resamples, "seed": seed, "scale": "-1..1"})


def pearson(x: Sequence[float], y: Sequence[float], *, n_resamples: int = DEFAULT_RESAMPLES,
            seed: int = DEFAULT_SEED) -> MetricResult:
    """Pearson correlation (NaN when either side is constant)."""
    a, b = _paired_arrays(x, y)
    if len(a) < 2:
        return _correlation_result("pearson", float("nan"), len(a), None, None, n_resamples, seed)
    cols = _moment_columns(a, b)
    lo, hi = bootstrap_ci(cols, _pearson_from_sums, n_resamples=n_resamples, seed=seed)
    return _correlation_result("pearson", _full(cols, _pearson_from_sums), len(a), lo, hi, n_resamples, seed)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank), like scipy's rankdata."""
    order = np.argsort(x, axis=-1, kind="mergesort")
    sorted_x = np.take_along_axis(x, order, axis=-1)
    n = x.shape[-1]
    # run boundaries of equal values, per row
    new_run = np.concatenate([np.ones(sorted_x.shape[:-1] + (1,), bool),
                              sorted_x[..., 1:] != sorted_x[..., :-1]], axis=-1)
    run_id = np.cumsum(new_run, axis=-1) - 1
    # offset each row's run ids so one bincount averages the positions of every run of ties
    rows = int(np.prod(sorted_x.shape[:-1], dtype=np.int64))
    flat_runs = (run_id.reshape(rows, n) + (np.arange(rows) * n)[:, None]).ravel()
    pos = np.tile(np.arange(1, n + 1, dtype=np.float64), rows)
    mean_pos = np.bincount(flat_runs, weights=pos) / np.maximum(np.bincount(flat_runs), 1)
    ranks_sorted = mean_pos[flat_runs].reshape(sorted_x.shape)
    out = np.empty_like(ranks_sorted)
    np.put_along_axis(out, order, ranks_sorted, axis=-1)
    return out


def spearman(x: Sequence[float], y: Sequence[float], *, n_resamples: int = DEFAULT_RESAMPLES,
             seed: int = DEFAULT_SEED) -> MetricResult:
    """Spearman rank correlation = Pearson of average ranks; each resample is re-ranked."""
    a, b = _paired_arrays(x, y)
    n = len(a)
    if n < 2:
        return _correlation_result("spearman", float("nan"), n, None, None, n_resamples, seed)
    value = _full(_moment_columns(_ranks(a), _ranks(b)), _pearson_from_sums)
    samples = []
    for idx in _index_blocks(n, n_resamples, seed):
        ra, rb = _ranks(a[idx]), _ranks(b[idx])
        ra -= ra.mean(axis=1, keepdims=True)
        rb -= rb.mean(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            samples.append((ra * rb).sum(1) / np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1)))
    lo, hi = _percentile_ci(np.concatenate(samples))
    return _correlation_result("spearman", value, n, lo, hi, n_resamples, seed)


def _confusion_cells(preds: Sequence[Any], golds: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """Each item's (gold, pred) cell index in a flattened k x k confusion matrix."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions but {len(golds)} gold labels")
    labels = sorted(set(golds) | set(preds), key=repr)
    index = {lab: i for i, lab in enumerate(labels)}
    k = len(labels)
    return np.array([index[g] * k + index[p] for p, g in zip(preds, golds)], dtype=np.int64), labels


def _mcc_from_confusion(s: np.ndarray) -> np.ndarray:
    """Matthews correlation (multi-class, Gorodkin's R_K) from flattened k x k confusion rows."""
    k = int(round(math.sqrt(s.shape[1])))
    c = s.reshape(-1, k, k)  # [gold, pred]
    t, p = c.sum(axis=2), c.sum(axis=1)
    total, correct = c.sum(axis=(1, 2)), np.trace(c, axis1=1, axis2=2)
    num = correct * total - (t * p).sum(axis=1)
    den = np.sqrt((total ** 2 - (p * p).sum(axis=1)) * (total ** 2 - (t * t).sum(axis=1)))
    # sklearn's convention: 0 when a marginal is constant (undefined correlation)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def matthews_corrcoef(preds: Sequence[Any], golds: Sequence[Any], *, n_resamples: int = DEFAULT_RESAMPLES,
                      seed: int = DEFAULT_SEED) -> MetricResult:
    """Matthews correlation coefficient (CoLA's metric), in [-1, 1]; 0 when undefined."""
    cells, labels = _confusion_cells(preds, golds)
    n, k2 = len(cells), len(labels) ** 2
    if n == 0:
        return MetricResult("mcc", float("nan"), 0, None, None, {"empty": True})
    full = np.bincount(cells, minlength=k2).astype(np.float64)[None, :]
    # resampled confusion matrices -> resampled MCCs
    sums = _resampled_group_sums(cells, np.ones(n), k2, n_resamples, seed)
    lo, hi = _percentile_ci(_mcc_from_confusion(sums))
    return MetricResult("mcc", float(_mcc_from_confusion(full)[0]), n, lo, hi,
                        {"labels": [str(x) for x in labels], "scale": "-1..1",
                         "ci_method": "percentile bootstrap over items", "n_resamples": n_resamples, "seed": seed})


def _f1_from_counts(s: np.ndarray) -> np.ndarray:
    tp, fp, fn = s[:, 0], s[:, 1], s[:, 2]
    den = 2 * tp + fp + fn
    return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1.0), 0.0)


def f1_binary(preds: Sequence[Any], golds: Sequence[Any], *, positive: Any = 1,
              n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> MetricResult:
    """F1 of the positive class (MRPC, QQP), a fraction in [0, 1]; 0 when there are no positives
    predicted or gold (sklearn's zero_division=0)."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions but {len(golds)} gold labels")
    p = np.array([x == positive for x in preds], dtype=np.float64)
    g = np.array([x == positive for x in golds], dtype=np.float64)
    if len(p) == 0:
        return MetricResult("f1", float("nan"), 0, None, None, {"empty": True})
    cols = np.stack([p * g, p * (1 - g), (1 - p) * g], axis=1)
    lo, hi = bootstrap_ci(cols, _f1_from_counts, n_resamples=n_resamples, seed=seed)
    return MetricResult("f1", _full(cols, _f1_from_counts), len(p), lo, hi,
                        {"positive": _plain(positive), "scale": "fraction",
                         "ci_method": "percentile bootstrap over items", "n_resamples": n_resamples, "seed": seed})


# --------------------------------------------------------------------------------------------
# A benchmark average (GLUE's "Avg"): the mean of each task's own score


def resampled_score(score: str, preds: Sequence[Any], golds: Sequence[Any], *,
                    n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """`score` ("acc", "mcc", "f1", "pearson") of (preds, golds) under each bootstrap resample of
    the items -> (n_resamples,): the draws `accuracy`, `matthews_corrcoef`, `f1_binary` and
    `pearson` take their CIs from, with the same seed."""
    if score == "pearson":
        a, b = _paired_arrays(preds, golds)
        return _pearson_from_sums(_resampled_sums(_moment_columns(a, b), n_resamples, seed))
    p, g = np.asarray(preds).tolist(), np.asarray(golds).tolist()
    if len(p) != len(g):
        raise ValueError(f"{len(p)} predictions but {len(g)} gold labels")
    if score == "mcc":
        cells, labels = _confusion_cells(p, g)
        return _mcc_from_confusion(_resampled_group_sums(cells, np.ones(len(cells)), len(labels) ** 2, n_resamples, seed))
    pa, ga = np.asarray(p) == 1, np.asarray(g) == 1
    if score == "f1":
        cols = np.stack([pa & ga, pa & ~ga, ~pa & ga], axis=1).astype(float)
        return _f1_from_counts(_resampled_sums(cols, n_resamples, seed))
    if score == "acc":
        return _resampled_sums((np.asarray(p) == np.asarray(g)).astype(float), n_resamples, seed)[:, 0] / len(p)
    raise ValueError(f"unknown score {score!r}; resampled_score knows acc, mcc, f1, pearson")


def mean_of_scores(parts: Sequence[tuple[str, Sequence[Any], Sequence[Any], MetricResult]], *,
                   name: str = "avg_score", n_resamples: int = 1000, undefined_as: float | None = None,
                   **extra: Any) -> MetricResult:
    """The mean of several tasks' scores, each given as (score, preds, golds, its MetricResult).

    CI: each task's items are resampled independently (the tasks are independent samples) and
    the resampled scores averaged per resample. A score that is undefined (NaN: a Pearson
    correlation of constant predictions) makes the mean NaN, unless `undefined_as` gives the
    value it counts as (0.0: "no correlation", the convention MCC already follows)."""
    if not parts:
        raise ValueError("mean_of_scores needs at least one task")

    def defined(x):
        return x if undefined_as is None else np.nan_to_num(x, nan=undefined_as)

    values = defined(np.array([m.value for *_, m in parts], dtype=float))
    samples = np.mean([defined(resampled_score(score, p, g, n_resamples=n_resamples, seed=i))
                       for i, (score, p, g, _) in enumerate(parts)], axis=0)
    lo, hi = _percentile_ci(samples)
    if undefined_as is not None:
        extra["undefined_as"] = undefined_as
    return MetricResult(name, float(np.mean(values)), sum(m.n for *_, m in parts), lo, hi, {
        **extra, "ci_method": "percentile bootstrap, each task's items resampled independently, scores averaged",
        "n_resamples": n_resamples})


# --------------------------------------------------------------------------------------------
# Calibration


def _bin_index(conf: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    if binning == "equal_width":
        # bins (b/K, (b+1)/K]; a confidence of exactly 0 joins the first bin
        return np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    if binning == "equal_mass":
        # ~n/K items per bin, split in sorted order (ties may straddle a boundary)
        order = np.argsort(conf, kind="mergesort")
        idx = np.empty(len(conf), dtype=np.int64)
        idx[order] = np.arange(len(conf)) * n_bins // max(len(conf), 1)
        return idx
    raise ValueError(f"binning must be 'equal_width' or 'equal_mass', not {binning!r}")


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10, *,
                               binning: str = "equal_width", n_resamples: int = DEFAULT_RESAMPLES,
                               seed: int = DEFAULT_SEED) -> MetricResult:
    """ECE = sum over bins of (bin size / n) * |mean confidence - accuracy| (a fraction).

    ``binning="equal_width"`` (default): K bins of width 1/K. ``"equal_mass"``: K bins holding
    equally many items, which is what HELM's ``ece_10_bin`` actually computes; its bins are fixed
    from the full sample and reused for the bootstrap. The CI resamples items; note that binned ECE
    is biased upwards at small n (a perfectly calibrated model scores > 0)."""
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray([bool(c) for c in correct], dtype=np.float64)
    if conf.shape != ok.shape:
        raise ValueError(f"{len(conf)} confidences but {len(ok)} correctness flags")
    if np.any((conf < 0) | (conf > 1)):
        raise ValueError("confidences must lie in [0, 1]")
    n = len(conf)
    if n == 0:
        return MetricResult("ece", float("nan"), 0, None, None, {"empty": True})
    bins = _bin_index(conf, n_bins, binning)
    # ECE = (1/n) * sum_b |sum_{i in b} (conf_i - correct_i)|: only per-bin signed gap sums are needed
    gap = conf - ok
    value = float(np.abs(np.bincount(bins, weights=gap, minlength=n_bins)).sum() / n)
    resampled = _resampled_group_sums(bins, gap, n_bins, n_resamples, seed)
    lo, hi = _percentile_ci(np.abs(resampled).sum(axis=1) / n)
    counts = np.bincount(bins, minlength=n_bins)
    return MetricResult("ece", value, n, lo, hi, {
        "n_bins": n_bins, "binning": binning, "scale": "fraction", "bin_counts": counts.tolist(),
        "mean_confidence": float(conf.mean()), "accuracy": float(ok.mean()),
        "ci_method": "percentile bootstrap over items", "n_resamples": n_resamples, "seed": seed})


# --------------------------------------------------------------------------------------------
# Efficiency


def efficiency(tokens: float | None, seconds: float | None, n_requests: int, n_params: int | None) -> MetricResult:
    """Throughput of an evaluation: value = tokens per second (NaN when time is unknown or zero).

    ``extra`` carries tokens, seconds, requests, latency per request and the parameter count.
    Timings are single measurements, so there is no CI."""
    tps = (float(tokens) / float(seconds)) if tokens is not None and seconds else float("nan")
    latency = (float(seconds) / n_requests) if seconds is not None and n_requests else None
    return MetricResult("tokens_per_second", tps, int(n_requests), None, None, {
        "timing": True, "tokens": None if tokens is None else float(tokens), "seconds": None if seconds is None else float(seconds),
        "n_requests": int(n_requests), "tokens_per_second": None if math.isnan(tps) else tps,
        "latency_s_per_request": latency, "n_params": None if n_params is None else int(n_params)})


def power_law_fit(n_params: list[int], losses: list[float]) -> tuple[float, float, float]:
    """L(N) = (N_c / N)^alpha  <=>  log L = alpha log N_c - alpha log N; returns (alpha, N_c, R^2)."""
    x, y = np.log(np.asarray(n_params, float)), np.log(np.asarray(losses, float))
    slope, intercept = np.polyfit(x, y, 1)
    pred = slope * x + intercept
    r2 = 1 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12)
    alpha = -slope
    try:
        n_c = math.exp(intercept / alpha) if alpha else math.inf
    except OverflowError:  # a near-flat fit: N_c is beyond any float
        n_c = math.inf
    return float(alpha), float(n_c), float(r2)
