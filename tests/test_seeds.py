"""Seeds as the unit of evidence: intervals over training seeds and test items, a minimum effect
δ per comparison (with its equivalence test), power notes, and one seed never deciding."""

import math

import numpy as np
import pytest

import harness.claims as C
from harness import metrics as M
from harness.metrics import MetricResult, mean_with_ci
from harness.seeds import across_seeds, power_note, seed_interval

REP, NOT, INC = C.REPRODUCED, C.NOT_REPRODUCED, C.INCONCLUSIVE


def seeded(name, per_seed_items: dict[int, list[float]]) -> MetricResult:
    """A metric measured on several seeds, each a mean over the same items."""
    return across_seeds(name, {s: mean_with_ci(name, items) for s, items in per_seed_items.items()})


def arm(mean_by_seed: dict[int, float], n_items=200, item_sd=0.5, rng=None) -> dict[int, list[float]]:
    rng = rng or np.random.default_rng(0)
    base = rng.normal(0, item_sd, n_items)  # item difficulty, shared by every seed and arm
    return {s: list(base + mu) for s, mu in mean_by_seed.items()}


def test_across_seeds_keeps_every_seed_and_averages():
    m = seeded("acc", {0: [1, 0, 1, 1], 1: [0, 0, 1, 1], 2: [1, 1, 1, 1]})
    assert m.value == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert m.extra["seeds"] == [0, 1, 2] and m.extra["per_seed"] == [0.75, 0.5, 1.0]
    assert len(m.extra["seed_items"]) == 3 and m.ci_low < m.value < m.ci_high
    one = seeded("acc", {4: [1, 0, 1, 1]})
    assert one.extra["seeds"] == [4] and (one.ci_low, one.ci_high) == (mean_with_ci("acc", [1, 0, 1, 1]).ci_low,
                                                                       mean_with_ci("acc", [1, 0, 1, 1]).ci_high)


def test_a_bounded_metric_keeps_its_interval_inside_its_bounds():
    # two seeds' R^2 of a fit, as GPT-3's G3-C5 had them: the t-interval alone reaches past 1
    fits = {0: 0.98, 1: 0.72}
    free = across_seeds("r2", {s: MetricResult("r2", v, 4, None, None, {}) for s, v in fits.items()})
    bounded = across_seeds("r2", {s: MetricResult("r2", v, 4, None, None, {"bounds": [None, 1.0]})
                                  for s, v in fits.items()})
    assert free.ci_high > 1.0 and bounded.ci_high == 1.0
    assert bounded.ci_low == free.ci_low and bounded.value == free.value
    assert "bounds" in bounded.extra["ci_method"]
    inside = across_seeds("r2", {s: MetricResult("r2", v, 4, None, None, {"bounds": [None, 1.0]})
                                 for s, v in {0: 0.91, 1: 0.92, 2: 0.915}.items()})
    assert inside.ci_high < 1.0 and "bounds" not in inside.extra["ci_method"]


def test_the_paired_interval_is_the_t_interval_of_seed_differences_plus_the_item_term():
    a = seeded("a", {0: [1.0, 2.0, 3.0], 1: [2.0, 3.0, 4.0], 2: [1.5, 2.5, 3.5]})
    b = seeded("b", {0: [0.0, 1.0, 2.0], 1: [0.0, 1.0, 2.0], 2: [0.0, 1.0, 2.0]})
    iv = seed_interval(a, b)
    d = np.array([1.0, 2.0, 1.5])  # per-seed differences; every item differs by the same amount
    half = 4.302652729911275 * math.sqrt(d.var(ddof=1) / 3)  # t(0.975, 2)
    assert iv.seeds == 3 and iv.point == pytest.approx(1.5) and iv.item_var == pytest.approx(0.0)
    assert (iv.lo, iv.hi) == (pytest.approx(1.5 - half), pytest.approx(1.5 + half))


def test_item_noise_stays_when_seeds_agree_exactly():
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, 100)
    a = seeded("a", {s: list(noise + 0.1) for s in range(3)})
    b = seeded("b", {s: list(np.zeros(100)) for s in range(3)})
    iv = seed_interval(a, b)
    assert iv.seed_sd == pytest.approx(0.0, abs=1e-12) and iv.item_var == pytest.approx(noise.var(ddof=1) / 100)
    assert iv.lo < 0.1 < iv.hi and iv.hi - iv.lo > 0.1  # the test set's noise is not averaged away by seeds


def test_intervals_over_seeds_cover_the_true_effect():
    """Simulated arms: a true effect of 0.2, training noise per seed (sd 0.3) and item noise: the
    95% interval over 3 paired seeds must cover 0.2 about 95% of the time; the item-only bootstrap
    of one seed, blind to training noise, covers it far less often."""
    rng = np.random.default_rng(7)
    covered, covered_items_only, trials = 0, 0, 300
    for _ in range(trials):
        items = rng.normal(0, 0.5, 150)
        per_seed_a = {s: list(items + 0.2 + rng.normal(0, 0.3) + rng.normal(0, 0.1, 150)) for s in range(3)}
        per_seed_b = {s: list(items + rng.normal(0, 0.3) + rng.normal(0, 0.1, 150)) for s in range(3)}
        iv = seed_interval(seeded("a", per_seed_a), seeded("b", per_seed_b))
        covered += iv.lo <= 0.2 <= iv.hi
        # the item-level paired bootstrap of one seed's metrics (no seed information)
        d = C._difference("a", mean_with_ci("a", per_seed_a[0]), "b", mean_with_ci("b", per_seed_b[0]))
        covered_items_only += d.lo <= 0.2 <= d.hi
    assert covered / trials >= 0.92
    assert covered_items_only / trials < 0.6


def test_delta_rules_reproduced_smaller_than_delta_equivalent_opposite_and_open():
    def case(effects):
        a = seeded("a", arm({s: e for s, e in enumerate(effects)}, rng=np.random.default_rng(0)))
        b = seeded("b", arm({s: 0.0 for s in range(len(effects))}, rng=np.random.default_rng(0)))
        return {"a": a, "b": b}

    big = C.greater("a", "b", delta=0.5).evaluate(case([1.0, 1.1, 0.9]))
    assert big.status == REP and "smaller_than_delta" not in big.evidence
    small = C.greater("a", "b", delta=0.5).evaluate(case([0.10, 0.11, 0.09]))
    assert small.status == REP and small.evidence["smaller_than_delta"] and "smaller than the claim's" in small.explanation
    equivalent = C.greater("a", "b", delta=0.5).evaluate(case([0.01, -0.01, 0.0]))
    assert equivalent.status == NOT and "within ±δ" in equivalent.explanation
    opposite = C.greater("a", "b", delta=0.5).evaluate(case([-1.0, -1.1, -0.9]))
    assert opposite.status == NOT and "opposite direction" in opposite.explanation
    noisy = C.greater("a", "b", delta=0.5).evaluate(case([0.6, -0.5, 0.4]))
    assert noisy.status == INC
    power = noisy.evidence["power"]
    assert power["minimum_detectable_effect"] > 0.5 and power["seeds_needed"] > 3
    # no δ: nothing can be declared equivalent, and the verdict says so
    assert C.greater("a", "b").evaluate(case([0.01, -0.01, 0.0])).status == INC


def test_one_training_seed_never_decides_but_keeps_its_reading():
    a = seeded("a", arm({0: 1.0}))
    b = seeded("b", arm({0: 0.0}))
    v = C.greater("a", "b", delta=0.2).evaluate({"a": a, "b": b})
    assert v.status == INC and v.evidence["single_seed_reading"] == REP and "one training seed" in v.explanation
    assert "run at least 3 seeds" in v.evidence["power"]["advice"]
    sweep = C.monotone(["a", "b"], "decreasing").evaluate({"a": a, "b": b})
    assert sweep.status == INC and sweep.evidence["single_seed_reading"] == REP


def test_more_seeds_needed_for_a_smaller_delta_and_items_when_the_test_set_is_the_limit():
    a = seeded("a", arm({0: 0.3, 1: 0.1, 2: 0.2}))
    b = seeded("b", arm({0: 0.0, 1: 0.0, 2: 0.0}))
    iv = seed_interval(a, b)
    assert power_note(iv, 0.05)["seeds_needed"] is None or power_note(iv, 0.05)["seeds_needed"] >= \
        power_note(iv, 0.2)["seeds_needed"]
    noisy_items = seeded("a", {s: list(np.random.default_rng(s).normal(0, 5, 20)) for s in range(3)})
    flat = seeded("b", {s: [0.0] * 20 for s in range(3)})
    note = power_note(seed_interval(noisy_items, flat), 0.1)
    assert note["seeds_needed"] is None and "more test items" in note["advice"]


def test_a_large_measured_effect_hidden_by_the_seed_spread_asks_for_seeds_not_items():
    # InstructGPT's I-C3 as measured: delta 0.01 nats is below what the test set resolves, but the
    # measured 0.3 nats are hidden by the seed spread (sd ~0.14), not by the items
    ppo = seeded("ppo", arm({0: 6.25, 1: 6.55, 2: 6.45}, n_items=30, item_sd=0.02))
    sft = seeded("sft", arm({0: 6.10, 1: 6.12, 2: 6.10}, n_items=30, item_sd=0.02, rng=np.random.default_rng(1)))
    v = C.greater("ppo", "sft", delta=0.01).evaluate({"ppo": ppo, "sft": sft})
    power = v.evidence["power"]
    assert v.status == INC and power["seeds_needed"] is None and "more test items" in power["advice"]
    assert 3 < power["seeds_for_measured"] <= 10 and "the measured effect" in v.explanation
    # the advice is honest about its own premise: more seeds of the same spread do decide it
    more = {s: 6.1 + d for s, d in zip(range(8), [0.15, 0.45, 0.35, 0.3, 0.2, 0.4, 0.25, 0.35])}
    ppo8 = seeded("ppo", arm(more, n_items=30, item_sd=0.02))
    sft8 = seeded("sft", arm({s: 6.1 for s in range(8)}, n_items=30, item_sd=0.02, rng=np.random.default_rng(1)))
    assert C.greater("ppo", "sft", delta=0.01).evaluate({"ppo": ppo8, "sft": sft8}).status == REP
    # an effect within delta gets no such line
    flat = seeded("ppo", arm({0: 6.105, 1: 6.095, 2: 6.1}, n_items=30, item_sd=0.02))
    assert "seeds_for_measured" not in power_note(seed_interval(flat, sft), 0.01)


def test_unpaired_arms_use_welch():
    a = seeded("a", arm({0: 1.0, 1: 1.2, 2: 0.8}))
    b = seeded("b", arm({10: 0.0, 11: 0.1, 12: -0.1}))
    iv = seed_interval(a, b)
    assert "Welch" in iv.method and iv.lo > 0


def test_delta_must_be_positive():
    with pytest.raises(ValueError, match="minimum effect of interest"):
        C.greater("a", "b", delta=0)
    with pytest.raises(ValueError, match="minimum effect of interest"):
        C.monotone(["a", "b"], delta=-1)


def test_corpus_metrics_carry_their_test_set_noise_from_each_seeds_ci():
    """BLEU or perplexity have no per-item values; each seed's own CI stands in for the item term."""
    a = across_seeds("bleu", {s: MetricResult("bleu", v, 500, v - 2.0, v + 2.0) for s, v in enumerate([20.0, 20.1, 19.9])})
    b = across_seeds("bleu", {s: MetricResult("bleu", v, 500, v - 2.0, v + 2.0) for s, v in enumerate([19.0, 19.1, 18.9])})
    iv = seed_interval(a, b)
    assert iv.seed_sd == pytest.approx(0.0, abs=1e-9) and iv.item_var == pytest.approx(2 * (2.0 / 1.959964) ** 2, rel=1e-4)
    assert iv.lo < 0 < iv.hi  # a 1-point gap inside ±2-point test-set intervals is not decided by seeds agreeing
    assert "each seed's CI" in iv.method and a.ci_low < 20.0 - 1.0


def test_corpus_metrics_with_linearised_items_pair_over_the_test_set():
    """Perplexities of two arms on the same documents, three seeds each: their linearised items pair
    document by document, so the test-set term is the paired one (far below the two CIs added as if
    independent) and a steady 3% gap is decided."""
    rng = np.random.default_rng(1)
    counts = rng.integers(5, 60, size=300).astype(float)
    difficulty = rng.gamma(4.0, 1.0, size=300)

    def arm(shift):
        return across_seeds("perplexity", {s: M.perplexity((difficulty + shift + 0.01 * s) * counts, counts)
                                           for s in range(3)})

    a, b = arm(0.0), arm(0.03)
    iv = seed_interval(b, a)
    assert "test-set variance over 300 items" in iv.method
    independent = sum(((hi - lo) / (2 * 1.959964)) ** 2 for m in (a, b) for lo, hi in m.extra["per_seed_ci"][:1])
    assert iv.item_var < 0.05 * independent
    assert C.greater("b", "a").evaluate({"a": a, "b": b}).status == REP


def test_equivalence_and_ratio_claims_also_need_two_seeds_and_metric_facts_survive_the_merge():
    one_a, one_b = seeded("a", arm({0: 0.01})), seeded("b", arm({0: 0.0}))
    v = C.approximately_equal("a", "b", 0.5).evaluate({"a": one_a, "b": one_b})
    assert v.status == INC and v.evidence["single_seed_reading"] == REP
    r = C.within_ratio("a", "b", 1.0, 0.5).evaluate({"a": MetricResult("a", 2.0, 10, 1.9, 2.1, {"seeds": [0], "per_seed": [2.0]}),
                                                      "b": MetricResult("b", 2.0, 10, 1.9, 2.1, {"seeds": [0], "per_seed": [2.0]})})
    assert r.status == INC and r.evidence["single_seed_reading"] == REP
    merged = across_seeds("acc", {s: MetricResult("acc", 0.5 + s / 10, 4, 0.4, 0.9, {"reported_id": "t5_sst2", "x": s})
                                  for s in range(3)})
    assert merged.extra["reported_id"] == "t5_sst2" and "x" not in merged.extra  # shared facts kept, per-seed ones not


def test_two_seeds_that_agree_leave_the_item_noise_its_own_degrees_of_freedom():
    """Two seeds, near-identical training, 150 noisy items: the seed term is tiny, so the interval
    is near the item term's +-1.96 SE, not t(0.975, 1) = 12.7 standard errors wide; and it still covers the
    true effect ~95% of the time when the seeds do differ."""
    rng = np.random.default_rng(3)
    items = rng.normal(0, 1.0, 150)
    noise = rng.normal(0, 0.2, 150)  # the two arms' item-level disagreement, the same under both seeds
    a = seeded("a", {s: list(items + 0.3 + noise + 0.001 * s) for s in range(2)})
    b = seeded("b", {s: list(items) for s in range(2)})
    iv = seed_interval(a, b)
    item_only = 1.96 * math.sqrt(iv.item_var)
    assert (iv.hi - iv.lo) / 2 < 3 * item_only  # one t(0.975, 1) over both terms: ~6x
    covered, trials = 0, 300
    for _ in range(trials):
        items = rng.normal(0, 0.5, 150)
        per_a = {s: list(items + 0.2 + rng.normal(0, 0.1) + rng.normal(0, 0.2, 150)) for s in range(2)}
        per_b = {s: list(items + rng.normal(0, 0.1) + rng.normal(0, 0.2, 150)) for s in range(2)}
        iv = seed_interval(seeded("a", per_a), seeded("b", per_b))
        covered += iv.lo <= 0.2 <= iv.hi
    assert covered / trials >= 0.92
