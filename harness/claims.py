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
default the project's copy, ``harness/reference/reported.yaml``).
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

from harness.metrics import MetricResult, _plain, display_factor, paired_bootstrap_diff, paired_bootstrap_ratio
from harness.seeds import SeedInterval, power_note, seed_interval, seeds_of

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
    "deltas",
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


class UnknownMetricError(KeyError):
    """A claim names a metric key the paper never produced: a typo or a renamed metric, which
    would otherwise read as "inconclusive: not measured" forever."""


def _metric(measured: Mapping[str, Any], key: str) -> MetricResult:
    if key not in measured:
        import difflib

        close = difflib.get_close_matches(key, [str(k) for k in measured], n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else "the paper's measure() never produces it"
        raise UnknownMetricError(f"a claim reads metric {key!r}, which is not among the measured metrics; {hint} "
                                 "(a metric a scale does not measure must be present with the value None)")
    if measured[key] is None:
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
    """A point estimate of a derived quantity (difference, ratio) with its interval; `seeds` is
    the interval over training seeds it came from (None when the metrics do not say)."""

    point: float
    lo: float
    hi: float
    method: str
    seeds: SeedInterval | None = None

    @property
    def single_seed(self) -> bool:
        return self.seeds is not None and self.seeds.seeds < 2

    def flipped(self) -> "_Interval":
        """The same interval for the negated quantity (B - A instead of A - B)."""
        s = self.seeds
        if s is not None:
            s = SeedInterval(-s.point, -s.hi, -s.lo, s.method, s.seeds, s.seed_sd, s.item_var, s.df, s.item_df)
        return _Interval(-self.point, -self.hi, -self.lo, self.method, s)

    def as_dict(self) -> dict[str, Any]:
        out = {"point": self.point, "ci_low": self.lo, "ci_high": self.hi, "method": self.method}
        if self.seeds is not None:
            out.update(seeds=self.seeds.seeds, seed_sd=self.seeds.seed_sd, item_var=self.seeds.item_var)
        return out


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
    """Interval of A - B: over training seeds when the metrics carry them (`harness.seeds`: seeds
    paired, plus the test set's variance); else paired bootstrap over items when possible, else
    from the two CIs' endpoints."""
    seeded = seed_interval(a, b)
    if seeded is not None:
        if not (math.isfinite(seeded.lo) and math.isfinite(seeded.hi)):
            raise _Unavailable(f"{a_key} - {b_key} has no interval (one seed, no per-item values, no CI)")
        return _Interval(seeded.point, seeded.lo, seeded.hi, seeded.method, seeded)
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


def _fmt(x: float | None, factor: float = 1.0) -> str:
    """A number as explanations print it: x `factor` (100 for percentage-type metrics, see
    harness.metrics.display_factor), four significant digits."""
    return "nan" if x is None or not math.isfinite(x) else f"{x * factor:.4g}"


def _fmt_interval(iv: _Interval, factor: float = 1.0) -> str:
    return f"{_fmt(iv.point, factor)} [{_fmt(iv.lo, factor)}, {_fmt(iv.hi, factor)}]"


def _one_seed_rule(single_seed: bool, status: str, why: str, extra: dict[str, Any]) -> tuple[str, str]:
    """One training seed per arm never decides: the verdict becomes inconclusive and keeps, in
    `extra`, what it would have read."""
    if single_seed and status != INCONCLUSIVE:
        extra["single_seed_reading"] = status
        return INCONCLUSIVE, f"one training seed per arm cannot decide a training-time effect (it would read {status}: {why})"
    return status, why


def _decide(gain: _Interval, delta: float | None, threshold: float = 0.0,
            factor: float = 1.0) -> tuple[str, str, dict[str, Any]]:
    """The one verdict rule of every comparison. `gain` is the effect's interval signed so that
    positive is the claimed direction; `delta` the claim's minimum effect of interest (stated
    before the run, in the metric's units); `threshold` a margin the effect must clear (0 mostly).

    reproduced      the interval lies beyond the threshold in the claimed direction (if it lies
                    wholly below threshold + delta too: reproduced, qualified as smaller than delta);
    not reproduced  it lies beyond the threshold the other way, or wholly inside threshold +- delta
                    (an equivalence test: no effect as large as the claim's);
    inconclusive    neither; with the power note (what the current seeds can detect, how many seeds
                    an effect of delta needs). One training seed never decides a training-time claim.

    The explanation prints numbers x `factor` (the metric's display unit); evidence keeps them raw.
    """
    extra: dict[str, Any] = {}
    t = threshold
    t_shown, d_shown = t * factor, (delta or 0.0) * factor
    if gain.lo > t:
        status, why = REPRODUCED, "the interval lies beyond " + (f"the margin {t_shown:g}" if t else "0") + " in the claimed direction"
        if delta and gain.hi < t + delta:
            extra["smaller_than_delta"] = True
            why += f", but wholly below δ = {d_shown:g}: a real effect, smaller than the claim's"
    elif gain.hi < t:
        status, why = NOT_REPRODUCED, "the interval lies beyond " + (f"the margin {t_shown:g}" if t else "0") + " in the opposite direction"
    elif delta and gain.lo > t - delta and gain.hi < t + delta:
        status, why = NOT_REPRODUCED, f"the interval lies within ±δ = {d_shown:g}: no effect as large as the claim's"
    else:
        status = INCONCLUSIVE
        why = "the interval contains " + (f"the margin {t_shown:g}" if t else "0") + (
            f" and reaches beyond ±δ = {d_shown:g}" if delta else " (no δ stated: no equivalence test)")
    status, why = _one_seed_rule(gain.single_seed, status, why, extra)
    if status == INCONCLUSIVE and gain.seeds is not None:
        extra["power"] = power_note(gain.seeds, delta, factor, threshold=t)
        why += "; " + extra["power"].get("advice", f"minimum detectable effect "
                                                  f"{_fmt(extra['power'].get('minimum_detectable_effect'), factor)}")
    return status, why, extra


RULE = ("reproduced if the interval lies beyond 0 in the claimed direction, not reproduced if it lies beyond 0 "
        "the other way or wholly within ±δ, inconclusive otherwise; one training seed never decides")


def _delta(delta: float | None) -> float | None:
    if delta is None:
        return None
    if not (isinstance(delta, (int, float)) and delta > 0 and math.isfinite(delta)):
        raise ValueError(f"delta (the minimum effect of interest) must be a positive number, not {delta!r}")
    return float(delta)


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
    except (_Unavailable, UnknownMetricError):
        return False


@dataclass
class _Greater(Predicate):
    a_key: str
    b_key: str
    margin: float = 0.0
    delta: float | None = None

    def keys(self) -> tuple[str, ...]:
        return (self.a_key, self.b_key)

    def describe(self) -> str:
        factor = display_factor(self.a_key, self.b_key)
        m = f" + {self.margin * factor:g}" if self.margin else ""
        d = f", δ = {self.delta * factor:g}" if self.delta else ""
        return f"{self.a_key} > {self.b_key}{m}{d}: the 95% interval of {self.a_key} - {self.b_key} decides ({RULE})"

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        a, b = metrics[self.a_key], metrics[self.b_key]
        diff, factor = _difference(self.a_key, a, self.b_key, b), display_factor(self.a_key, self.b_key)
        status, why, extra = _decide(diff, self.delta, self.margin, factor)
        evidence = {"metrics": {self.a_key: _summary(a), self.b_key: _summary(b)}, "difference": diff.as_dict(),
                    "margin": self.margin, "delta": self.delta, "method": diff.method, **extra}
        return Verdict(status, evidence, f"{self.a_key} - {self.b_key} = {_fmt_interval(diff, factor)}; {why}")


def greater(a_key: str, b_key: str, margin: float = 0.0, *, delta: float | None = None) -> Predicate:
    """A > B (+ margin), in the metric's own units; `delta` is the claim's minimum effect of
    interest (see `_decide`). For lower-is-better metrics (perplexity, ECE) state the claim the
    other way round: ``greater("ppl_small", "ppl_large")``."""
    return _Greater(a_key, b_key, float(margin), _delta(delta))


@dataclass
class _Sign(Predicate):
    a_key: str
    b_key: str
    expected_sign: int
    delta: float | None = None

    def keys(self) -> tuple[str, ...]:
        return (self.a_key, self.b_key)

    def describe(self) -> str:
        sign = ">" if self.expected_sign > 0 else "<"
        d = f", δ = {self.delta * display_factor(self.a_key, self.b_key):g}" if self.delta else ""
        return f"{self.a_key} {sign} {self.b_key}{d}: the 95% interval of the difference decides ({RULE})"

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        a, b = metrics[self.a_key], metrics[self.b_key]
        diff, factor = _difference(self.a_key, a, self.b_key, b), display_factor(self.a_key, self.b_key)
        status, why, extra = _decide(diff if self.expected_sign > 0 else diff.flipped(), self.delta, factor=factor)
        evidence = {"metrics": {self.a_key: _summary(a), self.b_key: _summary(b)}, "difference": diff.as_dict(),
                    "expected_sign": self.expected_sign, "delta": self.delta, "method": diff.method, **extra}
        return Verdict(status, evidence, f"{self.a_key} - {self.b_key} = {_fmt_interval(diff, factor)}; {why}")


def sign_of_difference(a_key: str, b_key: str, expected_sign: int | str, *, delta: float | None = None) -> Predicate:
    """The difference A - B has the expected sign (+1 / -1, or "+" / "-")."""
    table = {1: 1, -1: -1, "+": 1, "-": -1, "positive": 1, "negative": -1}
    if expected_sign not in table:
        raise ValueError(f"expected_sign must be +1 or -1 (use approximately_equal for 'no difference'), "
                         f"not {expected_sign!r}")
    return _Sign(a_key, b_key, table[expected_sign], _delta(delta))


@dataclass
class _ApproxEqual(Predicate):
    a_key: str
    b_key: str
    tolerance: float

    def keys(self) -> tuple[str, ...]:
        return (self.a_key, self.b_key)

    def describe(self) -> str:
        t = self.tolerance * display_factor(self.a_key, self.b_key)
        return (f"|{self.a_key} - {self.b_key}| <= {t:g}: reproduced if the 95% CI of the difference lies within "
                f"[-{t:g}, {t:g}], not reproduced if it lies entirely outside, inconclusive otherwise")

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        a, b = metrics[self.a_key], metrics[self.b_key]
        diff, factor = _difference(self.a_key, a, self.b_key, b), display_factor(self.a_key, self.b_key)
        t = self.tolerance
        extra: dict[str, Any] = {}
        if diff.lo >= -t and diff.hi <= t:
            status, why = REPRODUCED, f"the CI lies within ±{t * factor:g}"
        elif diff.lo > t or diff.hi < -t:
            status, why = NOT_REPRODUCED, f"the CI lies entirely outside ±{t * factor:g}"
        else:
            status, why = INCONCLUSIVE, f"the CI is too wide to decide against ±{t * factor:g}"
        status, why = _one_seed_rule(diff.single_seed, status, why, extra)
        evidence = {"metrics": {self.a_key: _summary(a), self.b_key: _summary(b)}, "difference": diff.as_dict(),
                    "tolerance": t, "method": diff.method, **extra}
        return Verdict(status, evidence, f"{self.a_key} - {self.b_key} = {_fmt_interval(diff, factor)}; {why}")


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
        extra: dict[str, Any] = {}
        one_seed = any(len(seeds_of(m) or [0, 1]) < 2 for m in (a, b))
        status, why = _one_seed_rule(one_seed, status, why, extra)
        evidence = {"metrics": {self.a_key: _summary(a), self.b_key: _summary(b)}, "ratio": ratio.as_dict(),
                    "reported_ratio": self.reported_ratio, "band": [lo, hi], "method": ratio.method, **extra}
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
    delta: float | None = None

    def keys(self) -> tuple[str, ...]:
        return self.keys_in_order

    def describe(self) -> str:
        d = f", δ = {self.delta * display_factor(*self.keys_in_order):g} for last - first" if self.delta else ""
        return (f"{' -> '.join(self.keys_in_order)} {self.direction}{d}: the interval of last - first decides ({RULE}); "
                f"not reproduced also if any consecutive step's interval lies beyond {self.tolerance:g} against the "
                "claimed direction (a significant reversal)")

    def _gain(self, prev_key: str, prev: MetricResult, next_key: str, nxt: MetricResult) -> _Interval:
        """Interval of the change in the claimed direction (positive = as claimed)."""
        d = _difference(next_key, nxt, prev_key, prev)
        return d.flipped() if self.direction == "decreasing" else d

    def _evaluate(self, metrics: dict[str, MetricResult]) -> Verdict:
        keys = self.keys_in_order
        steps = []
        for prev_key, next_key in zip(keys, keys[1:]):
            gain = self._gain(prev_key, metrics[prev_key], next_key, metrics[next_key])
            steps.append({"from": prev_key, "to": next_key, "gain": gain.as_dict(),
                          "reversed": gain.hi < -self.tolerance, "_single": gain.single_seed})
        ends = self._gain(keys[0], metrics[keys[0]], keys[-1], metrics[keys[-1]])
        factor = display_factor(*keys)
        status, why, extra = _decide(ends, self.delta, factor=factor)
        reversed_steps = [f"{s['from']}->{s['to']}" for s in steps if s["reversed"]]
        if reversed_steps and status != NOT_REPRODUCED:
            if any(s["_single"] for s in steps):
                extra["single_seed_reading"] = NOT_REPRODUCED
                status, why = INCONCLUSIVE, (f"one training seed per arm cannot decide a training-time effect (a "
                                             f"significant reversal at {', '.join(reversed_steps)} would read not reproduced)")
            else:
                status, why = NOT_REPRODUCED, f"significant move against the claimed direction at {', '.join(reversed_steps)}"
        for s in steps:
            del s["_single"]
        evidence = {"metrics": {k: _summary(metrics[k]) for k in keys}, "steps": steps, "ends": ends.as_dict(),
                    "direction": self.direction, "tolerance": self.tolerance, "delta": self.delta, **extra}
        values = ", ".join(f"{k}={_fmt(metrics[k].value, factor)}" for k in keys)
        return Verdict(status, evidence, f"{values}; last - first (as claimed) = {_fmt_interval(ends, factor)}: {why}")


def monotone(keys_in_order: Sequence[str], direction: str = "increasing", tolerance: float = 0.0, *,
             delta: float | None = None) -> Predicate:
    """The metric moves in `direction` along a sweep (model sizes, steps, ...), keys in sweep order.
    One rule for every sweep: the interval of last - first decides as any comparison does
    (`_decide`, with `delta`), and a consecutive step whose interval lies beyond `tolerance`
    against the direction (a significant reversal) makes it not reproduced."""
    if direction not in ("increasing", "decreasing"):
        raise ValueError("direction must be 'increasing' or 'decreasing'")
    if len(keys_in_order) < 2:
        raise ValueError("a monotone claim needs at least two points")
    if tolerance < 0:
        raise ValueError("tolerance must be >= 0")
    return _Monotone(tuple(keys_in_order), direction, float(tolerance), _delta(delta))


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


def deltas(predicate: Predicate) -> list[float | None]:
    """The δ of every comparison in a predicate tree, in order (None where a comparison has none;
    equivalence and ratio-band predicates carry their tolerance instead)."""
    if isinstance(predicate, _AllOf):
        return [d for p in predicate.parts for d in deltas(p)]
    if isinstance(predicate, _Provided):
        return deltas(predicate.claim)  # the condition is a validity gate, not the claimed effect
    if isinstance(predicate, (_Greater, _Sign, _Monotone)):
        return [predicate.delta]
    return []


@dataclass
class Claim:
    id: str
    statement: str
    source: str
    paper: str
    predicate: Predicate
    reported: dict[str, Any] = field(default_factory=dict)
    # Where the claim's δ (the minimum effect of interest, in each comparison's own units, written
    # before the run) comes from: the paper's effect scaled to ours, or a stated practical threshold.
    delta_source: str = ""

    def __post_init__(self) -> None:
        stated = deltas(self.predicate)
        if any(d is not None for d in stated) and not self.delta_source:
            raise ValueError(f"claim {self.id}: say where its δ comes from (delta_source=...)")

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
        record = {"id": self.id, "statement": self.statement, "source": self.source, **v}
        stated = deltas(self.predicate)
        if stated:
            record.update(delta=None if all(d is None for d in stated) else [d for d in stated],
                          delta_source=self.delta_source or "no δ stated")
        return record


def check_claims(claims: Sequence[Claim], measured: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Results-file entries for every claim."""
    return [c.record(measured) for c in claims]


# --------------------------------------------------------------------------------------------
# Reported numbers


def reference_path() -> Path:
    """reported.yaml: ``$REPRO_REFERENCE`` (the file, or a directory holding it), else the project's
    own copy, ``harness/reference/reported.yaml``."""
    env = os.environ.get("REPRO_REFERENCE")
    if env:
        p = Path(env).expanduser()
        return p / "reported.yaml" if p.is_dir() else p
    return Path(__file__).resolve().parent / "reference" / "reported.yaml"


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
