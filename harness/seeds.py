"""Training seeds as the unit of evidence.

A claim about training (this objective beats that one, a bigger model is better) is a claim about
what training does, so its uncertainty has two sources: the training run (initialisation, data
order: a re-run with another seed moves the number) and the test set (another sample of items
would move it too). A bootstrap over test items alone measures only the second, and at our sizes
the first is usually the larger: rounding alone flipped five verdicts between two rounds.

`across_seeds` turns one metric measured on several training seeds into one `MetricResult` that
keeps each seed's value (and each seed's per-item values where the metric is a mean over items).
`seed_interval` gives the 95% interval of a difference between two such metrics:

    d_s   = A_s - B_s                       per seed s, paired by seed where both arms share it
    SE^2  = var_s(d_s) / k  +  var_i(D_i) / n
    CI    = mean_s(d_s) +- sqrt(t(0.975, k - 1)^2 var_s(d_s) / k  +  t(0.975, n - 1)^2 var_i(D_i) / n)

where D_i is item i's difference averaged over seeds. The first term is the seed-to-seed spread
(training noise measured on this test set); the second the test set's own sampling noise, which
no number of seeds removes because every seed is scored on the same items. The two are the
variance components of Bouthillier et al. 2021 ("Accounting for Variance in Machine Learning
Benchmarks", MLSys), and adding them is conservative: the per-seed differences already carry the
seed-by-item interaction once, the item term carries it again divided by k. The t quantile is
what keeps three seeds honest: a percentile bootstrap over three seeds has ten distinct resamples
and intervals far too narrow (the two-level bootstrap of Davison & Hinkley 1997, §3.8, needs tens
of top-level units to be trusted). Each term is widened by the quantile of its own degrees of
freedom, k - 1 for the seeds and n - 1 for the items: one t(k - 1) over both would stretch an
item variance known from 150 documents by t(0.975, 1) = 12.7 at two seeds. Welch-Satterthwaite's
pooled degrees of freedom (Satterthwaite 1946) are narrower still but under-cover at two or three
seeds (88% in a simulation, `tests/test_seeds.py`), because a seed variance that comes out small
by chance also buys large degrees of freedom; the per-term form covers >= 95% there.

The same variance gives the power note of an undecided claim: the minimum effect detectable at
80% power with the current seeds, and the number of seeds at which an effect of the claim's δ
would be.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.metrics import MetricResult

POWER = 0.80
CONFIDENCE = 0.95
MAX_SEEDS = 64  # a power estimate beyond this says "more seeds will not do it" in effect


def _t(q: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(q, df))


def _z(q: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(q))


def _as_metric(m: MetricResult | Mapping[str, Any], name: str) -> MetricResult:
    return m if isinstance(m, MetricResult) else MetricResult.from_dict({"name": name, **m})


def across_seeds(name: str, per_seed: Mapping[int, MetricResult | Mapping[str, Any]]) -> MetricResult:
    """One metric from its per-seed measurements: the mean over seeds, with every seed's value
    (and per-item values, when each seed's metric is a mean over the same items) kept in `extra`.
    Its CI is the one-sample version of `seed_interval`'s; with one seed, that seed's own CI."""
    if not per_seed:
        raise ValueError(f"{name}: no seed measured it")
    seeds = sorted(per_seed)
    metrics = [_as_metric(per_seed[s], name) for s in seeds]
    values = [m.value for m in metrics]
    extra: dict[str, Any] = {"seeds": seeds, "per_seed": values}
    first = metrics[0].extra
    per_seed_data = {"items", "item_ids", "seeds", "per_seed", "seed_items", "per_seed_ci"}
    for key, value in first.items():  # what the metric is (its scale, reported_id, ...): shared by every seed's copy
        if key not in per_seed_data and all(m.extra.get(key) == value for m in metrics[1:]):
            extra[key] = value
    if all(m.has_ci for m in metrics):  # each seed's own (test-set) interval: the item term of corpus metrics
        extra["per_seed_ci"] = [[m.ci_low, m.ci_high] for m in metrics]
    items = [m.items for m in metrics]
    ids = [m.extra.get("item_ids") for m in metrics]
    if all(i is not None for i in items) and len({len(i) for i in items}) == 1 and all(x == ids[0] for x in ids):
        extra["seed_items"] = [list(map(float, i)) for i in items]
        if ids[0] is not None:
            extra["item_ids"] = ids[0]
    if len(seeds) == 1:
        m = metrics[0]
        extra.update({k: v for k, v in m.extra.items() if k not in extra})
        return MetricResult(name, m.value, m.n, m.ci_low, m.ci_high, extra)
    value = float(np.mean(values))
    if first.get("timing") or not all(math.isfinite(v) for v in values):
        return MetricResult(name, value, metrics[0].n, None, None, extra)
    per_item = np.mean(np.asarray(extra["seed_items"], float), axis=0) if "seed_items" in extra else None
    item_term = None
    if per_item is None and "per_seed_ci" in extra:
        item_term = float(np.mean([((hi - lo) / (2 * _z(1 - (1 - CONFIDENCE) / 2))) ** 2
                                   for lo, hi in extra["per_seed_ci"]]))
    iv = _t_interval(np.asarray(values, float), per_item, f"t-interval over {len(seeds)} seeds", item_term)
    lo, hi = iv.lo, iv.hi
    # A bounded quantity (R^2 <= 1, an accuracy in [0, 1]) declares its bounds; a t-interval over
    # two or three seeds can reach past them (R^2 [0.33, 1.37]), which no value can: cut it there.
    low, high = first.get("bounds") or (None, None)
    cut_lo = lo if low is None else max(lo, low)
    cut_hi = hi if high is None else min(hi, high)
    extra["ci_method"] = iv.method + (f", cut at the metric's bounds [{low}, {high}]" if (cut_lo, cut_hi) != (lo, hi) else "")
    lo, hi = cut_lo, cut_hi
    return MetricResult(name, value, metrics[0].n, lo, hi, extra)


def seeds_of(m: MetricResult) -> list[int] | None:
    seeds = m.extra.get("seeds")
    return list(seeds) if seeds is not None else None


@dataclass
class SeedInterval:
    point: float
    lo: float
    hi: float
    method: str
    seeds: int  # k: seeds the interval rests on (paired, or the smaller arm's)
    seed_sd: float | None  # sd of the per-seed differences (None with one seed)
    item_var: float  # the test-set term var_i(D_i) / n (0 when items are not known)
    df: int  # k - 1, of the seed term
    item_df: float = math.inf  # n - 1, of the item term (inf: from bootstrap CIs, taken as known)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SeedInterval:
        """The interval `as_dict` stored (a results file's "difference"); the item degrees of freedom
        are not stored, so the test-set term reads as from bootstrap CIs (a normal quantile)."""
        k = int(d["seeds"])
        return cls(float(d["point"]), float(d["ci_low"]), float(d["ci_high"]), str(d.get("method", "")), k,
                   d.get("seed_sd"), float(d.get("item_var") or 0.0), int(d.get("df", k - 1)))

    def as_dict(self) -> dict[str, Any]:
        return {"point": self.point, "ci_low": self.lo, "ci_high": self.hi, "method": self.method, "seeds": self.seeds,
                "seed_sd": self.seed_sd, "item_var": self.item_var, "df": self.df}


def _half_width(q: float, seed_term: float, seed_df: float, item_term: float, item_df: float) -> float:
    """sqrt(t(q, seed_df)^2 seed_term + t(q, item_df)^2 item_term): each variance term (a squared
    standard error) widened by the quantile of its own degrees of freedom (module docstring)."""
    t_items = _z(q) if math.isinf(item_df) else _t(q, item_df)
    return math.sqrt(_t(q, seed_df) ** 2 * seed_term + t_items**2 * item_term)


def _item_term(per_item: np.ndarray | None) -> tuple[float, float] | None:
    """The test-set term var_i(D_i) / n and its degrees of freedom n - 1, or None without items."""
    if per_item is None or len(per_item) < 2:
        return None
    return float(np.var(per_item, ddof=1) / len(per_item)), len(per_item) - 1


def _t_interval(per_seed: np.ndarray, per_item: np.ndarray | None, method: str,
                item_term: float | None = None) -> SeedInterval:
    """mean(per_seed) +- the per-term half-width of var(per_seed)/k and var(per_item)/n: per_seed holds each
    seed's value (or paired difference), per_item each item's value averaged over seeds; without
    per-item values, `item_term` (from the seeds' own CIs) stands for the second term."""
    k = len(per_seed)
    item_var, item_df = 0.0, math.inf
    if (items := _item_term(per_item)) is not None:
        item_var, item_df = items
        method += f" + test-set variance over {len(per_item)} items"
    elif item_term is not None:
        item_var = item_term
        method += " + test-set variance from each seed's CI"
    sd = float(np.std(per_seed, ddof=1))
    half = _half_width(1 - (1 - CONFIDENCE) / 2, sd**2 / k, k - 1, item_var, item_df)
    point = float(np.mean(per_seed))
    return SeedInterval(point, point - half, point + half, method, k, sd, item_var, k - 1, item_df)


def seed_interval(a: MetricResult, b: MetricResult) -> SeedInterval | None:
    """The interval of A - B over training seeds (module docstring), or None when either metric
    does not say which seeds it came from. With one seed it is the test-set interval alone and
    `seeds` is 1: the caller must not decide a training-time claim on it."""
    sa, sb = seeds_of(a), seeds_of(b)
    if sa is None or sb is None:
        return None
    va, vb = dict(zip(sa, a.extra["per_seed"])), dict(zip(sb, b.extra["per_seed"]))
    common = sorted(set(sa) & set(sb))
    per_item = None
    ia, ib = a.extra.get("seed_items"), b.extra.get("seed_items")
    if ia is not None and ib is not None and len(ia[0]) == len(ib[0]) and a.extra.get("item_ids") == b.extra.get("item_ids"):
        per_item = np.mean(np.asarray(ia, float), axis=0) - np.mean(np.asarray(ib, float), axis=0)
    item_term = None  # for corpus metrics (BLEU, perplexity) with no per-item values
    if per_item is None and a.extra.get("per_seed_ci") and b.extra.get("per_seed_ci"):
        # each seed's CI half-width / 1.96 is its test-set standard error; the two arms' are added as
        # if independent, which overstates the paired difference's: conservative
        se2 = [np.mean([((hi - lo) / (2 * _z(1 - (1 - CONFIDENCE) / 2))) ** 2 for lo, hi in m.extra["per_seed_ci"]])
               for m in (a, b)]
        item_term = float(sum(se2))
    if len(common) >= 2:  # paired by seed: the same seed gives the same data order and shared init
        d = np.array([va[s] - vb[s] for s in common])
        return _t_interval(d, per_item, f"t-interval over {len(common)} paired seeds", item_term)
    if min(len(sa), len(sb)) >= 2:  # arms on different seeds: Welch's unpaired form, df from the smaller
        xa, xb = np.array(list(va.values())), np.array(list(vb.values()))
        k = min(len(xa), len(xb))
        seed_var = float(np.var(xa, ddof=1) / len(xa) + np.var(xb, ddof=1) / len(xb))
        item_var, item_df = _item_term(per_item) or (item_term or 0.0, math.inf)
        half = _half_width(1 - (1 - CONFIDENCE) / 2, seed_var, k - 1, item_var, item_df)
        point = float(xa.mean() - xb.mean())
        return SeedInterval(point, point - half, point + half, f"Welch t-interval over {len(xa)} and {len(xb)} "
                            "unpaired seeds", k, math.sqrt(seed_var * k), item_var, k - 1, item_df)
    point = float(np.mean(list(va.values())) - np.mean(list(vb.values())))
    if (items := _item_term(per_item)) is not None:
        item_var, _ = items
        half = _z(1 - (1 - CONFIDENCE) / 2) * math.sqrt(item_var)
        return SeedInterval(point, point - half, point + half, "one training seed: test-set interval only",
                            1, None, item_var, 0)
    if a.has_ci and b.has_ci:
        return SeedInterval(point, a.ci_low - b.ci_high, a.ci_high - b.ci_low, "one training seed: CI endpoints only",
                            1, None, 0.0, 0)
    return SeedInterval(point, -math.inf, math.inf, "one training seed, no interval", 1, None, 0.0, 0)


def power_note(iv: SeedInterval, delta: float | None, factor: float = 1.0, threshold: float = 0.0) -> dict[str, Any]:
    """What would decide the comparison: the minimum effect detectable at 80% power with the
    current seeds, and how many seeds an effect of size `delta` needs (None when the seed spread is
    unknown; "items" when the test set's own noise is already too large for `delta`). When the
    measured effect (the point's distance from `threshold`) exceeds delta, it also says how many seeds
    would detect an effect that large, if it is real: a measured effect far beyond a small delta is
    usually hidden by the seed spread, not the test set, and the delta advice alone would send the
    user after test items. Numbers are stored in the metric's units; the advice prints them x
    `factor` (harness.metrics.display_factor)."""
    note: dict[str, Any] = {"seeds": iv.seeds, "power": POWER}
    if iv.seeds < 2 or iv.seed_sd is None:
        note["advice"] = "one training seed: run at least 3 seeds per arm to estimate the seed-to-seed spread"
        return note
    def mde(k: int) -> float:  # the interval's half-width plus the power term, each per variance term
        seed_term = iv.seed_sd**2 / k
        return (_half_width(1 - (1 - CONFIDENCE) / 2, seed_term, k - 1, iv.item_var, iv.item_df)
                + _half_width(POWER, seed_term, k - 1, iv.item_var, iv.item_df))
    def items_hide(effect: float) -> bool:  # even infinitely many seeds leave the test-set term
        return (_z(1 - (1 - CONFIDENCE) / 2) + _z(POWER)) * math.sqrt(iv.item_var) >= effect
    def seeds_for(effect: float) -> int | None:
        return next((k for k in range(2, MAX_SEEDS + 1) if mde(k) <= effect), None)
    note["minimum_detectable_effect"] = mde(iv.seeds)
    advice = []
    if delta:
        if items_hide(delta):
            note["seeds_needed"] = None
            advice.append(f"the test set's own noise already hides an effect of {delta * factor:g}: more test items "
                          "are needed, not more seeds")
        else:
            need = seeds_for(delta)
            note["seeds_needed"] = need
            advice.append(f"about {need} seeds per arm would detect an effect of {delta * factor:g} at 80% power"
                          if need else f"more than {MAX_SEEDS} seeds would be needed for an effect of "
                                       f"{delta * factor:g}")
    measured = abs(iv.point - threshold)
    if measured > (delta or 0.0):
        hidden = items_hide(measured)
        need = None if hidden else seeds_for(measured)
        note["seeds_for_measured"] = need
        if hidden:
            advice.append(f"the test set's own noise hides the measured effect, {measured * factor:.3g}: more test "
                          "items would show whether it is real")
        elif need and need > iv.seeds:
            advice.append(f"the measured effect, {measured * factor:.3g}, if real, would be detected at 80% power "
                          f"with about {need} seeds per arm")
    if advice:
        note["advice"] = "; ".join(advice)
    return note
