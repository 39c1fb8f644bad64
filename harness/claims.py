"""Claims: a paper's statement, a predicate over measured metrics, and a computed verdict.

A :class:`Claim` pairs an id (as in ``reported.yaml`` / ``papers.md``, e.g. "T-C1"), the statement,
its table/figure and the paper's numbers with a *predicate*. ``claim.check(measured)`` evaluates the
predicate on a ``{key: MetricResult | MetricResult-dict}`` mapping and returns a :class:`Verdict`:

* ``reproduced``      - the confidence interval of the effect lies entirely on the claimed side;
* ``not reproduced``  - it lies entirely on the other side;
* ``inconclusive``    - it straddles the boundary (CIs overlap), a metric is missing, or a metric
                        has no CI (a point estimate alone never decides a verdict).

How the interval of a difference A - B is formed (``evidence["method"]``):

* **paired** - both metrics carry per-item values (``extra["items"]``, equal length, equal
  ``extra["item_ids"]`` when given, mean equal to ``value``): bootstrap CI of mean(A) - mean(B)
  resampling items jointly (``metrics.paired_bootstrap_diff``);
* **CI endpoints** - otherwise, [A.lo - B.hi, A.hi - B.lo]. Its lower end is > 0 exactly when the
  two CIs do not overlap with A above; it is conservative (wider than a proper CI of the difference).

Predicates (factories; each object has ``evaluate(measured) -> Verdict``, ``describe()`` and
``keys()``): :func:`greater`, :func:`sign_of_difference`, :func:`approximately_equal`,
:func:`within_ratio`, :func:`monotone`, :func:`all_of`. Their exact rules are in their docstrings
and are repeated in every verdict's ``evidence["rule"]``.

``load_reported(paper)`` reads ``reported.yaml`` (``$REPRO_REFERENCE``, a file or its directory;
default ``<repo>/../shared/reference/reported.yaml``).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.metrics import MetricResult, _plain, paired_bootstrap_diff, paired_bootstrap_ratio

__all__ = [
    "INCONCLUSIVE",
    "NOT_REPRODUCED",
    "REPRODUCED",
    "STATUSES",
    "Claim",
    "Predicate",
    "Verdict",
    "all_of",
    "approximately_equal",
    "check_claims",
    "greater",
    "load_reported",
    "monotone",
    "provided",
    "reference_path",
    "reported_papers",
    "sign_of_difference",
    "within_ratio",
]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
STATUSES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)


@dataclass
class Verdict:
    status: str
    evidence: dict[str, Any]
    explanation: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "evidence": _plain(self.evidence), "explanation": self.explanation}


# --------------------------------------------------------------------------------------------
# Reading measured metrics


class _Unavailable(Exception):
    """A metric a predicate needs is missing or unusable; becomes an inconclusive verdict."""


def _metric(measured: Mapping[str, Any], key: str) -> MetricResult:
    if key not in measured or measured[key] is None:
        raise _Unavailable(f"metric {key} was not measured")
    m = measured[key]
    if isinstance(m, MetricResult):
        return m
    if isinstance(m, Mapping):
        try:
            return MetricResult.from_dict({"name": key, **m})
        except (TypeError, ValueError) as e:
            raise _Unavailable(f"metric {key} could not be read ({e})") from e
    if isinstance(m, (int, float)) and not isinstance(m, bool):
        # a bare number has no uncertainty attached: usable as evidence, never decisive
        return MetricResult(key, float(m), 1, None, None, {"bare_number": True})
    raise _Unavailable(f"metric {key} has an unsupported type {type(m).__name__}")


def _summary(m: MetricResult) -> dict[str, Any]:
    return {"value": m.value, "ci_low": m.ci_low, "ci_high": m.ci_high, "n": m.n}


@dataclass
class _Interval:
    """A point estimate of a derived quantity (difference, ratio) with its interval."""

    point: float
    lo: float
    hi: float
    method: str

    def as_dict(self) -> dict[str, Any]:
        return {"point": self.point, "ci_low": self.lo, "ci_high": self.hi, "method": self.method}


def _pairable(a: MetricResult, b: MetricResult) -> bool:
    ia, ib = a.items, b.items
    if not ia or not ib or len(ia) != len(ib):
        return False
    ids_a, ids_b = a.extra.get("item_ids"), b.extra.get("item_ids")
    if ids_a is not None and ids_b is not None and list(ids_a) != list(ids_b):
        return False
    # items must be what `value` averages (not, say, raw per-item stats of a corpus metric)
    return all(math.isclose(float(np.mean(m.items)), m.value, rel_tol=1e-9, abs_tol=1e-9) for m in (a, b))


def _require_ci(*metrics: tuple[str, MetricResult]) -> None:
    for key, m in metrics:
        if not math.isfinite(m.value):
            raise _Unavailable(f"metric {key} has no finite value")
        if not m.has_ci:
            raise _Unavailable(f"metric {key} has no confidence interval (a point estimate cannot decide)")


def _difference(a_key: str, a: MetricResult, b_key: str, b: MetricResult) -> _Interval:
    """Interval of A - B: paired bootstrap when possible, else from the two CIs' endpoints."""
    if _pairable(a, b):
        d = paired_bootstrap_diff(a.items, b.items)
        if d.has_ci:
            return _Interval(d.value, d.ci_low, d.ci_high, f"paired bootstrap over {d.n} items")
    _require_ci((a_key, a), (b_key, b))
    return _Interval(a.value - b.value, a.ci_low - b.ci_high, a.ci_high - b.ci_low,
                     "CI endpoints [A.lo - B.hi, A.hi - B.lo] (conservative)")


def _side(interval: _Interval, threshold: float) -> str:
    if interval.lo > threshold:
        return "above"
    if interval.hi < threshold:
        return "below"
    return "straddles"


def _fmt(x: float | None) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _fmt_interval(iv: _Interval) -> str:
    return f"{_fmt(iv.point)} [{_fmt(iv.lo)}, {_fmt(iv.hi)}]"


# --------------------------------------------------------------------------------------------
# Predicates


class Predicate:
    """Base: subclasses implement ``_evaluate`` on resolved metrics and ``describe``."""

    def keys(self) -> tuple[str, ...]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        raise NotImplementedError

    def evaluate(self, measured: Mapping[str, Any]) -> Verdict:
        """Resolve this predicate's metrics and decide; never raises for missing/unusable data."""
        try:
            metrics = {k: _metric(measured, k) for k in self.keys()}
            verdict = self._evaluate(metrics)
        except _Unavailable as why:
            available = {k: _summary(_metric(measured, k)) for k in self.keys() if _is_readable(measured, k)}
            return Verdict(INCONCLUSIVE, {"rule": self.describe(), "metrics": available}, str(why))
        verdict.evidence.setdefault("rule", self.describe())
        return verdict


def _is_readable(measured: Mapping[str, Any], key: str) -> bool:
    try:
        _metric(measured, key)
        return True
    except _Unavailable:
        return False


@dataclass
class _Greater(Predicate):
    a_key: str
    b_key: str
    margin: float = 0.0

    def keys(self) -> tuple[str, ...]:
        return (self.a_key, self.b_key)

    def describe(self) -> str:
        m = f" + {self.margin:g}" if self.margin else ""
        return (f"{self.a_key} > {self.b_key}{m}: reproduced if the 95% CI of {self.a_key} - {self.b_key} lies "
                f"above {self.margin:g}, not reproduced if it lies below, inconclusive if it contains it")

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        a, b = metrics[self.a_key], metrics[self.b_key]
        diff = _difference(self.a_key, a, self.b_key, b)
        side = _side(diff, self.margin)
        status = {"above": REPRODUCED, "below": NOT_REPRODUCED, "straddles": INCONCLUSIVE}[side]
        word = {"above": "above", "below": "below", "straddles": "contains"}[side]
        explanation = (f"{self.a_key} - {self.b_key} = {_fmt_interval(diff)}; the CI {word} "
                       f"{'the margin ' if self.margin else ''}{self.margin:g}")
        evidence = {"metrics": {self.a_key: _summary(a), self.b_key: _summary(b)}, "difference": diff.as_dict(),
                    "margin": self.margin, "method": diff.method}
        return Verdict(status, evidence, explanation)


def greater(a_key: str, b_key: str, margin: float = 0.0) -> Predicate:
    """A > B (+ margin), in the metric's own units. For lower-is-better metrics (perplexity, ECE)
    state the claim the other way round: ``greater("ppl_small", "ppl_large")``."""
    return _Greater(a_key, b_key, float(margin))


@dataclass
class _Sign(Predicate):
    a_key: str
    b_key: str
    expected_sign: int

    def keys(self) -> tuple[str, ...]:
        return (self.a_key, self.b_key)

    def describe(self) -> str:
        sign = ">" if self.expected_sign > 0 else "<"
        return (f"sign({self.a_key} - {self.b_key}) is {'+' if self.expected_sign > 0 else '-'} "
                f"({self.a_key} {sign} {self.b_key}): decided by whether the 95% CI of the difference excludes 0")

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        a, b = metrics[self.a_key], metrics[self.b_key]
        diff = _difference(self.a_key, a, self.b_key, b)
        side = _side(diff, 0.0)
        expected = "above" if self.expected_sign > 0 else "below"
        sign = "+" if self.expected_sign > 0 else "-"
        if side == "straddles":
            status, why = INCONCLUSIVE, "its CI contains 0"
        elif side == expected:
            status, why = REPRODUCED, f"its CI excludes 0 on the expected ({sign}) side"
        else:
            status, why = NOT_REPRODUCED, "its CI excludes 0 on the opposite side"
        evidence = {"metrics": {self.a_key: _summary(a), self.b_key: _summary(b)}, "difference": diff.as_dict(),
                    "expected_sign": self.expected_sign, "method": diff.method}
        return Verdict(status, evidence, f"{self.a_key} - {self.b_key} = {_fmt_interval(diff)}; {why}")


def sign_of_difference(a_key: str, b_key: str, expected_sign: int | str) -> Predicate:
    """The difference A - B has the expected sign (+1 / -1, or "+" / "-")."""
    table = {1: 1, -1: -1, "+": 1, "-": -1, "positive": 1, "negative": -1}
    if expected_sign not in table:
        raise ValueError(f"expected_sign must be +1 or -1 (use approximately_equal for 'no difference'), "
                         f"not {expected_sign!r}")
    return _Sign(a_key, b_key, table[expected_sign])


@dataclass
class _ApproxEqual(Predicate):
    a_key: str
    b_key: str
    tolerance: float

    def keys(self) -> tuple[str, ...]:
        return (self.a_key, self.b_key)

    def describe(self) -> str:
        t = self.tolerance
        return (f"|{self.a_key} - {self.b_key}| <= {t:g}: reproduced if the 95% CI of the difference lies within "
                f"[-{t:g}, {t:g}], not reproduced if it lies entirely outside, inconclusive otherwise")

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        a, b = metrics[self.a_key], metrics[self.b_key]
        diff = _difference(self.a_key, a, self.b_key, b)
        t = self.tolerance
        if diff.lo >= -t and diff.hi <= t:
            status, why = REPRODUCED, f"the CI lies within ±{t:g}"
        elif diff.lo > t or diff.hi < -t:
            status, why = NOT_REPRODUCED, f"the CI lies entirely outside ±{t:g}"
        else:
            status, why = INCONCLUSIVE, f"the CI is too wide to decide against ±{t:g}"
        evidence = {"metrics": {self.a_key: _summary(a), self.b_key: _summary(b)}, "difference": diff.as_dict(),
                    "tolerance": t, "method": diff.method}
        return Verdict(status, evidence, f"{self.a_key} - {self.b_key} = {_fmt_interval(diff)}; {why}")


def approximately_equal(a_key: str, b_key: str, tolerance: float) -> Predicate:
    """"About equal" claims (e.g. T-C6, learned vs sinusoidal positions): the difference is
    within ±tolerance, in the metric's units. With unpaired CIs the test is conservative, so small
    samples give "inconclusive" rather than a false "reproduced"."""
    if not tolerance > 0:
        raise ValueError("tolerance must be positive")
    return _ApproxEqual(a_key, b_key, float(tolerance))


@dataclass
class _WithinRatio(Predicate):
    a_key: str
    b_key: str
    reported_ratio: float
    band: float
    relative: bool = True

    def keys(self) -> tuple[str, ...]:
        return (self.a_key, self.b_key)

    def _band(self) -> tuple[float, float]:
        r = self.reported_ratio
        if self.relative:
            return (r * (1 - self.band), r * (1 + self.band)) if r >= 0 else (r * (1 + self.band), r * (1 - self.band))
        return r - self.band, r + self.band

    def describe(self) -> str:
        lo, hi = self._band()
        how = f"±{self.band:.0%} of" if self.relative else f"±{self.band:g} around"
        return (f"{self.a_key} / {self.b_key} within {how} the paper's ratio {self.reported_ratio:g} (= [{lo:.4g}, "
                f"{hi:.4g}]): reproduced if the ratio's 95% CI lies inside, not reproduced if it lies entirely "
                f"outside, inconclusive otherwise")

    def _ratio(self, a: MetricResult, b: MetricResult) -> _Interval:
        if _pairable(a, b):
            r = paired_bootstrap_ratio(a.items, b.items)
            if r.has_ci:
                return _Interval(r.value, r.ci_low, r.ci_high, f"paired bootstrap over {r.n} items")
        _require_ci((self.a_key, a), (self.b_key, b))
        if not (b.ci_low > 0 and a.ci_low >= 0):
            raise _Unavailable(f"ratio {self.a_key}/{self.b_key} needs positive CIs; "
                               f"{self.b_key} CI [{_fmt(b.ci_low)}, {_fmt(b.ci_high)}]")
        return _Interval(a.value / b.value, a.ci_low / b.ci_high, a.ci_high / b.ci_low,
                         "CI endpoints [A.lo / B.hi, A.hi / B.lo] (conservative)")

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        a, b = metrics[self.a_key], metrics[self.b_key]
        ratio = self._ratio(a, b)
        lo, hi = self._band()
        if lo <= ratio.lo and ratio.hi <= hi:
            status, why = REPRODUCED, "inside"
        elif ratio.hi < lo or ratio.lo > hi:
            status, why = NOT_REPRODUCED, "entirely outside"
        else:
            status, why = INCONCLUSIVE, "partly outside"
        evidence = {"metrics": {self.a_key: _summary(a), self.b_key: _summary(b)}, "ratio": ratio.as_dict(),
                    "reported_ratio": self.reported_ratio, "band": [lo, hi], "method": ratio.method}
        return Verdict(status, evidence, f"{self.a_key}/{self.b_key} = {_fmt_interval(ratio)}, {why} the band "
                                         f"[{lo:.4g}, {hi:.4g}] around the paper's {self.reported_ratio:g}")


def within_ratio(a_key: str, b_key: str, reported_ratio: float, band: float, relative: bool = True) -> Predicate:
    """The measured ratio A/B is within ±band of the paper's ratio: relative (``band=0.1`` means
    ±10% of it) by default, absolute with ``relative=False``."""
    if not band >= 0:
        raise ValueError("band must be >= 0")
    return _WithinRatio(a_key, b_key, float(reported_ratio), float(band), relative)


@dataclass
class _Monotone(Predicate):
    keys_in_order: tuple[str, ...]
    direction: str = "increasing"
    tolerance: float = 0.0
    steps: str = "ci"

    def keys(self) -> tuple[str, ...]:
        return self.keys_in_order

    def describe(self) -> str:
        step_rule = ("every consecutive step's 95% CI lies strictly on the " + self.direction + " side of 0"
                     if self.steps == "ci" else
                     f"the means are ordered (each step moves {self.direction}, reversals up to {self.tolerance:g} "
                     "forgiven) and the CI of last - first excludes 0 in that direction")
        return (f"{' -> '.join(self.keys_in_order)} {self.direction}: reproduced if {step_rule}; not reproduced if "
                f"the CI of last - first, or of any step, lies beyond {self.tolerance:g} on the opposite side; "
                f"inconclusive otherwise")

    def _gain(self, prev_key: str, prev: MetricResult, next_key: str, nxt: MetricResult) -> _Interval:
        """Interval of the change in the claimed direction (positive = as claimed)."""
        d = _difference(next_key, nxt, prev_key, prev)
        if self.direction == "decreasing":
            return _Interval(-d.point, -d.hi, -d.lo, d.method)
        return d

    def _step_status(self, gain: _Interval) -> str:
        if gain.lo > 0:
            return "moves"
        if gain.hi < -self.tolerance:
            return "reversed"
        return "unresolved"

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        keys = self.keys_in_order
        steps = []
        for prev_key, next_key in zip(keys, keys[1:]):
            gain = self._gain(prev_key, metrics[prev_key], next_key, metrics[next_key])
            steps.append({"from": prev_key, "to": next_key, "gain": gain.as_dict(), "status": self._step_status(gain),
                          "_gain": gain})
        ends = self._gain(keys[0], metrics[keys[0]], keys[-1], metrics[keys[-1]])
        ends_status = self._step_status(ends)
        reversed_steps = [f"{s['from']}->{s['to']}" for s in steps if s["status"] == "reversed"]
        if ends_status == "reversed" or reversed_steps:
            where = "the ends" if ends_status == "reversed" else ", ".join(reversed_steps)
            status, why = NOT_REPRODUCED, f"significant move against the claimed direction at {where}"
        elif self.steps == "ci":
            unresolved = [f"{s['from']}->{s['to']}" for s in steps if s["status"] != "moves"]
            if not unresolved:
                status, why = REPRODUCED, f"every step is {self.direction} beyond CI overlap"
            elif ends_status != "moves":
                status, why = INCONCLUSIVE, "the CIs of the two ends overlap"
            else:
                status, why = INCONCLUSIVE, f"ends differ, but CIs overlap at {', '.join(unresolved)}"
        else:
            unordered = [f"{s['from']}->{s['to']}" for s in steps if not s["_gain"].point > -self.tolerance]
            if ends_status != "moves":
                status, why = INCONCLUSIVE, "the CIs of the two ends overlap"
            elif unordered:
                status, why = INCONCLUSIVE, f"means out of order at {', '.join(unordered)}"
            else:
                status, why = REPRODUCED, f"means ordered and the ends' CIs separated ({self.direction})"
        for s in steps:
            del s["_gain"]
        evidence = {"metrics": {k: _summary(metrics[k]) for k in keys}, "steps": steps,
                    "ends": {"gain": ends.as_dict(), "status": ends_status}, "direction": self.direction,
                    "tolerance": self.tolerance, "step_rule": self.steps}
        values = ", ".join(f"{k}={_fmt(metrics[k].value)}" for k in keys)
        return Verdict(status, evidence, f"{values}: {why}")


def monotone(keys_in_order: Sequence[str], direction: str = "increasing", tolerance: float = 0.0,
             steps: str = "ci") -> Predicate:
    """The metric moves in `direction` along a sweep (model sizes, steps, ...), keys in sweep order.

    Each step's change is an interval (paired or from CI endpoints, as for ``greater``); "gain" is
    the change in the claimed direction. A step *moves* when its gain CI is > 0, is *reversed* when
    it is < -tolerance, and is *unresolved* otherwise; the same applies to last vs first ("ends").

    * not reproduced: the ends, or any step, are reversed (a significant move the wrong way);
    * reproduced, ``steps="ci"`` (default, strict): every step moves;
      ``steps="means"``: the means are ordered (no step's point gain <= -tolerance) and the ends move;
    * inconclusive: anything else (in particular, overlapping CIs at the ends).
    """
    if direction not in ("increasing", "decreasing"):
        raise ValueError("direction must be 'increasing' or 'decreasing'")
    if steps not in ("ci", "means"):
        raise ValueError("steps must be 'ci' or 'means'")
    if len(keys_in_order) < 2:
        raise ValueError("a monotone claim needs at least two points")
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    return _Monotone(tuple(keys_in_order), direction, float(tolerance), steps)


@dataclass
class _AllOf(Predicate):
    parts: tuple[Predicate, ...]

    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(k for p in self.parts for k in p.keys()))

    def describe(self) -> str:
        return ("all of: (" + "); (".join(p.describe() for p in self.parts) + "): reproduced if every part is, "
                "not reproduced if any part is not, inconclusive otherwise")

    def evaluate(self, measured: Mapping[str, Any]) -> Verdict:
        # parts resolve their own metrics, so one missing metric does not hide the other parts' evidence
        verdicts = [p.evaluate(measured) for p in self.parts]
        statuses = [v.status for v in verdicts]
        if NOT_REPRODUCED in statuses:
            status = NOT_REPRODUCED
        elif all(s == REPRODUCED for s in statuses):
            status = REPRODUCED
        else:
            status = INCONCLUSIVE
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in STATUSES if statuses.count(s))
        first_bad = next((v.explanation for v in verdicts if v.status == status), "") if status != REPRODUCED else ""
        explanation = f"{len(verdicts)} parts: {counts}" + (f"; e.g. {first_bad}" if first_bad else "")
        return Verdict(status, {"rule": self.describe(), "parts": [v.to_dict() for v in verdicts]}, explanation)


def all_of(*predicates: Predicate) -> Predicate:
    """Every part must hold (e.g. T-C5: label smoothing worsens PPL *and* improves BLEU)."""
    if not predicates:
        raise ValueError("all_of needs at least one predicate")
    return _AllOf(tuple(predicates))


@dataclass
class _Provided(Predicate):
    condition: Predicate
    claim: Predicate

    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.condition.keys(), *self.claim.keys())))

    def describe(self) -> str:
        return (f"provided that ({self.condition.describe()}): ({self.claim.describe()}); inconclusive while the "
                "condition does not hold")

    def evaluate(self, measured: Mapping[str, Any]) -> Verdict:
        condition = self.condition.evaluate(measured)
        claim = self.claim.evaluate(measured)
        evidence = {"rule": self.describe(), "condition": condition.to_dict(), "claim": claim.to_dict()}
        if condition.status != REPRODUCED:
            return Verdict(INCONCLUSIVE, evidence, f"the condition does not hold ({condition.explanation}); "
                                                   f"the comparison alone: {claim.status} ({claim.explanation})")
        return Verdict(claim.status, evidence, claim.explanation)


def provided(condition: Predicate, claim: Predicate) -> Predicate:
    """A claim that only means something under a condition: e.g. "B beats A" where B must first beat
    the constant-answer baseline, or a preference claim where the judge must agree with humans. The
    verdict is the claim's when the condition holds, inconclusive otherwise (never "not reproduced":
    a failed condition says the test cannot be read, not that the paper is wrong)."""
    return _Provided(condition, claim)


# --------------------------------------------------------------------------------------------
# Claims


@dataclass
class Claim:
    id: str
    statement: str
    source: str
    paper: str
    predicate: Predicate
    reported: dict[str, Any] = field(default_factory=dict)

    def check(self, measured: Mapping[str, Any]) -> Verdict:
        """Evaluate the predicate on measured metrics; the verdict is computed, never supplied."""
        verdict = self.predicate.evaluate(measured)
        verdict.evidence.setdefault("rule", self.predicate.describe())
        if self.reported:
            verdict.evidence["reported"] = dict(self.reported)
        return verdict

    def record(self, measured: Mapping[str, Any]) -> dict[str, Any]:
        """The claim's entry for a results file: id, statement, source, status, evidence, explanation."""
        v = self.check(measured).to_dict()
        return {"id": self.id, "statement": self.statement, "source": self.source, **v}


def check_claims(claims: Sequence[Claim], measured: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Results-file entries for every claim."""
    return [c.record(measured) for c in claims]


# --------------------------------------------------------------------------------------------
# Reported numbers


def reference_path() -> Path:
    """reported.yaml: ``$REPRO_REFERENCE`` (the file, or a directory holding it), else
    ``<repo>/../shared/reference/reported.yaml``."""
    env = os.environ.get("REPRO_REFERENCE")
    if env:
        p = Path(env).expanduser()
        return p / "reported.yaml" if p.is_dir() else p
    return Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "reported.yaml"


@functools.lru_cache(maxsize=4)
def _load_entries(path: str, mtime: float) -> tuple[dict[str, Any], ...]:
    import yaml

    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    entries = doc.get("entries") if isinstance(doc, Mapping) else doc
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of entries (under 'entries:'), found {type(entries).__name__}")
    return tuple(dict(e) for e in entries)


def _entries() -> tuple[dict[str, Any], ...]:
    path = reference_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"reported numbers not found at {path}; set REPRO_REFERENCE to reported.yaml (or its directory)")
    return _load_entries(str(path), path.stat().st_mtime)


def reported_papers() -> list[str]:
    """Paper keys present in reported.yaml, sorted."""
    return sorted({str(e["paper"]) for e in _entries()})


def load_reported(paper: str | None = None) -> list[dict[str, Any]]:
    """Entries of reported.yaml (paper, id, dataset, metric, value, model, table_figure, verified,
    source), all or one paper's; an unknown paper key raises KeyError naming the known ones."""
    entries = [dict(e) for e in _entries()]
    if paper is None:
        return entries
    chosen = [e for e in entries if e.get("paper") == paper]
    if not chosen:
        raise KeyError(f"no reported numbers for paper {paper!r}; known papers: {', '.join(reported_papers())}")
    return chosen
