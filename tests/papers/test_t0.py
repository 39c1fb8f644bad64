"""T0: the smoke scale end to end, the training mixture's hold-outs and nesting, the prompt
statistics, and verdicts that follow the metrics."""

import numpy as np
import pytest

import papers
from harness.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, STATUSES, deltas
from harness.metrics import over_prompts
from harness.seeds import across_seeds
from harness.results import read_run
from harness.runner import run_paper
from papers import t0
from repro.data import instructions
from repro.data.instructions import P3_TASK_TYPE, p3_split

pytestmark = pytest.mark.t0


def test_t0_smoke_run_records_every_claim_metric(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    paper = papers.get_paper("t0")
    record = read_run(run_paper(paper, "smoke", root=tmp_path, quiet=True))
    keys = {k for c in paper.claims("smoke") for k in c.predicate.keys()}
    for key in keys:
        metric = record.metrics[key]
        assert metric["n"] > 0 and metric["ci_low"] <= metric["value"] <= metric["ci_high"], key
    assert {c["id"] for c in record.claims} == {"T0-C1", "T0-C2", "T0-C3", "T0-C4"}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    assert [f["name"] for f in record.extra["plots"]] == ["zero_shot"]  # declared; the report draws them
    largest = t0.SCALES["smoke"].sizes[-1].label
    assert record.metrics[f"size/{largest}/t0/rte/mean"]["extra"]["reported_id"] == "heldout_rte_t0"
    # every trained run saw P3 files, the sweeps' arms fewer than the full mixture
    files = record.configs["training_files"]
    main = t0.SCALES["smoke"].main.label
    assert len(files[f"t0_{main}_p1"]) < len(files[f"t0_{main}"])


def test_training_sets_are_nested_and_never_hold_a_held_out_type():
    stems = instructions.p3_stems()
    if not stems:
        pytest.skip("the P3 sample is not in REPRO_DATA")
    main = t0.SCALES["smoke"].main
    full = t0.training_stems(t0.MultitaskRun("all", main), seed=0)
    assert sorted(full) == sorted(stems)
    one = t0.training_stems(t0.MultitaskRun("p1", main, prompts=1), seed=0)
    three = t0.training_stems(t0.MultitaskRun("p3", main, prompts=3), seed=0)
    datasets = {p3_split(st)[0] for st in stems}
    assert sorted(p3_split(st)[0] for st in one) == sorted(datasets)  # one prompt of every dataset
    assert set(one) <= set(three) <= set(full)
    small = t0.training_stems(t0.MultitaskRun("d6", main, datasets=6), seed=0)
    larger = t0.training_stems(t0.MultitaskRun("d12", main, datasets=12), seed=0)
    assert len({p3_split(st)[0] for st in small}) == 6 and set(small) <= set(larger) <= set(full)
    # the sample holds no dataset of T0's held-out types, and the mixture builder would refuse one
    assert not {P3_TASK_TYPE[d] for d in datasets} & set(t0.HELD_OUT_TYPES)
    with pytest.raises(ValueError, match="asked"):
        t0.training_stems(t0.MultitaskRun("too_many", main, datasets=len(datasets) + 1), seed=0)


def test_mixture_refuses_held_out_task_types(monkeypatch):
    stems = instructions.p3_stems()
    if not stems:
        pytest.skip("the P3 sample is not in REPRO_DATA")
    stem = stems[0]
    monkeypatch.setitem(P3_TASK_TYPE, p3_split(stem)[0], "nli")
    with pytest.raises(ValueError, match="held-out task types"):
        t0.t0_mixture([stem], "leak")


def test_plan_covers_every_claim_metric_once():
    for scale, s in t0.SCALES.items():
        runs = t0.plan(s)
        assert len({r.label for r in runs}) == len(runs), scale
        assert {r.size for r in runs if not r.trained} == set(s.sizes)
        assert {r.size for r in runs if r.trained and r.prompts == t0.ALL and r.datasets == t0.ALL} == set(s.sizes)
        assert len(s.sizes) >= 2 and t0.ALL in s.prompts and t0.ALL in s.datasets


def test_encode_keeps_the_end_of_a_long_prompt():
    class Tok:
        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [[len(w) for w in t.split()] for t in texts]}

    assert t0.encode(Tok(), ["a bb ccc\ndddd  eeeee"], 3) == [[3, 4, 5]]


def test_over_prompts_median_and_spread():
    # dataset 1: prompts score 1.0, 0.5, 0.0 on two items; dataset 2: both prompts 0.5
    d1 = np.array([[1, 1], [1, 0], [0, 0]], dtype=float)
    d2 = np.array([[1, 0], [0, 1]], dtype=float)
    med = over_prompts("m", [d1, d2], "median")
    assert med.value == pytest.approx((0.5 + 0.5) / 2) and med.n == 4
    std = over_prompts("s", [d1, d2], "std")
    assert std.value == pytest.approx((np.std([1, 0.5, 0]) + 0.0) / 2)
    assert over_prompts("a", [d1, d2], "mean").value == pytest.approx((0.5 + 0.5) / 2)
    with pytest.raises(ValueError, match="reduce"):
        over_prompts("x", [d1], "max")
    with pytest.raises(ValueError, match="non-empty"):
        over_prompts("x", [np.zeros((2, 0))], "median")


def _scores(acc_by_prompt: list[float], n: int = 60) -> dict:
    """Held-out scores where prompt i answers the first acc_i * n items correctly, every dataset alike."""
    return {t: {f"p{i}": [j < round(a * n) for j in range(n)] for i, a in enumerate(acc_by_prompt)}
            for t in t0.HELD_OUT}


def _labels(majority_share: float = 0.5, n: int = 60) -> dict:
    """Gold labels per held-out dataset: the first `majority_share` of the items label 0, the rest 1."""
    return {t: [0 if j < round(majority_share * n) else 1 for j in range(n)] for t in t0.HELD_OUT}


# both above the one-answer baseline of _labels() (0.5): strong prompts agree, weak ones spread out
STRONG, WEAK = [0.9, 0.85, 0.95], [0.55, 0.95, 0.6]


def _synthetic(good: bool) -> dict:
    s = t0.SCALES["smoke"]
    strong, weak = _scores(STRONG), _scores(WEAK)
    better, worse = (strong, weak) if good else (weak, strong)
    m = {}
    for z in s.sizes:
        m.update(t0.run_metrics(f"size/{z.label}/base", worse))
        m.update(t0.run_metrics(f"size/{z.label}/t0", worse if z != s.sizes[-1] else better))
    for i, p in enumerate(sorted(s.prompts, key=lambda p: p or 10**9)):
        m.update(t0.run_metrics(f"prompts/{p or 'all'}", worse if i == 0 else better))
    for i, k in enumerate(sorted(s.datasets, key=lambda k: k or 10**9)):
        sub = t0.run_metrics("x", worse if i == 0 else better)
        m[f"datasets/{k or 'all'}/median"], m[f"datasets/{k or 'all'}/spread"] = sub["x/median"], sub["x/spread"]
    m[t0.MAJORITY] = t0.one_answer_baseline(_labels())
    return m


def test_verdicts_follow_synthetic_metrics():
    paper = t0.T0()
    good, bad = _synthetic(True), _synthetic(False)
    for claim in paper.claims("smoke"):
        if claim.id == "T0-C1":  # compares the main size, which is the largest at smoke
            assert t0.SCALES["smoke"].main == t0.SCALES["smoke"].sizes[-1]
        assert claim.check(good).status == REPRODUCED, claim.id
        assert claim.check(bad).status == NOT_REPRODUCED, claim.id
        flat = t0.run_metrics("x", _scores([0.5, 0.5, 0.5], n=8))
        same = {k: flat[f"x/{k.rsplit('/', 1)[1]}"] for k in claim.predicate.keys()}
        assert claim.check(same).status == INCONCLUSIVE, claim.id


def test_one_answer_baseline_pairs_with_the_mean_over_prompts():
    labels = _labels(0.6)
    base = t0.one_answer_baseline(labels)
    assert base.value == pytest.approx(0.6)
    # a model whose every prompt gives label 0 to every item scores exactly the baseline, item by item
    constant = {t: {"p0": [y == 0 for y in ys], "p1": [y == 0 for y in ys]} for t, ys in labels.items()}
    mean = t0.mean_over_prompts(constant)
    assert mean.extra["item_ids"] == base.extra["item_ids"] and mean.items == base.items


def test_claims_wait_for_a_model_above_the_one_answer_baseline():
    """Our cpu models give one label to every item (spread 0 over prompts): every claim is read only
    once the model it prefers beats the best such answer on the same items."""
    good = _synthetic(True)
    # the majority label now covers 95% of the items: no model in `good` beats answering it everywhere
    at_floor = {**good, t0.MAJORITY: t0.one_answer_baseline(_labels(0.95))}
    for claim in t0.T0().claims("smoke"):
        assert claim.check(good).status == REPRODUCED, claim.id
        verdict = claim.check(at_floor)
        assert verdict.status == INCONCLUSIVE and "condition does not hold" in verdict.explanation, claim.id


def test_claims_over_seeds_need_more_than_one_seed_and_the_floor():
    def seeds(measured: dict, k: int) -> dict:
        return {key: across_seeds(key, {s: m for s in range(k)}) for key, m in measured.items()}

    c1 = next(c for c in t0.T0().claims("smoke") if c.id == "T0-C1")
    assert c1.check(seeds(_synthetic(True), 1)).status == INCONCLUSIVE  # one training seed
    assert c1.check(seeds(_synthetic(True), 3)).status == REPRODUCED
    at_floor = {**_synthetic(True), t0.MAJORITY: t0.one_answer_baseline(_labels(0.95))}
    assert c1.check(seeds(at_floor, 3)).status == INCONCLUSIVE


def test_claims_are_a_pure_function_of_the_scale():
    fresh = {scale: [(c.id, c.predicate.keys(), deltas(c.predicate)) for c in t0.T0().claims(scale)]
             for scale in t0.SCALES}
    paper = t0.T0()
    for scale in ("cpu", "smoke", "gpu", "cpu"):
        assert [(c.id, c.predicate.keys(), deltas(c.predicate)) for c in paper.claims(scale)] == fresh[scale]
    for scale, s in t0.SCALES.items():
        keys = {k for _, ks, _ in fresh[scale] for k in ks}
        assert t0.MAJORITY in keys and all(f"size/{z.label}/t0/mean" in keys for z in s.sizes)
    assert [i for i, _, _ in fresh["cpu"]] == ["T0-C1", "T0-C2", "T0-C3", "T0-C4"]


def test_every_comparison_states_a_positive_delta_and_its_source():
    for scale in t0.SCALES:
        for claim in t0.T0().claims(scale):
            stated = deltas(claim.predicate)
            assert stated and all(d is not None and 0 < d < 0.2 for d in stated), (scale, claim.id, stated)
            assert claim.delta_source.strip(), claim.id
