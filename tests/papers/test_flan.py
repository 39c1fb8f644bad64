"""FLAN: the smoke scale end to end, the run plan's hold-outs, verdicts that follow the metrics (over
seeds, with δ and the majority-class floor), and claims that depend on the scale alone."""

import zlib

import numpy as np
import pytest

import papers
from harness.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, STATUSES, deltas
from harness.metrics import MetricResult
from harness.results import read_run
from harness.runner import run_paper
from harness.scenarios import Scenario, prepare
from harness.seeds import across_seeds
from papers import flan
from repro.data.tasks import get_task

pytestmark = pytest.mark.flan


def test_flan_smoke_run_records_every_claim_metric(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    paper = papers.get_paper("flan")
    record = read_run(run_paper(paper, "smoke", root=tmp_path, quiet=True))
    claims = paper.claims("smoke")
    keys = {k for c in claims for k in c.predicate.keys()}
    for key in keys:
        metric = record.metrics[key]
        assert metric["n"] > 0 and metric["ci_low"] <= metric["value"] <= metric["ci_high"], key
    assert {c["id"] for c in record.claims} == {"F-C1", "F-C2", "F-C3", "F-C4", "F-C5"}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    assert [f["name"] for f in record.extra["plots"]] == ["zero_shot"]  # declared; the report draws them
    assert record.metrics["zero_shot/nli/flan"]["extra"]["reported_id"] == "nli_avg"


def test_plan_never_tunes_on_a_held_out_cluster():
    for scale, s in flan.SCALES.items():
        runs = flan.plan(s)
        assert len({r.label for r in runs}) == len(runs)
        for r in runs:
            assert not set(r.train_clusters) & set(r.held_out), (scale, r.label)
            assert set(r.eval_clusters) <= set(r.held_out) or r.is_base
        assert {r.size for r in runs if r.is_base} == set(s.sizes)
        assert len(s.sizes) >= 3 and s.n_clusters[-1] == len(s.clusters) - 1


IDS = [f"t|{i}" for i in range(400)]


def _arm(p: float, tag: str, seeds=(0, 1, 2)) -> MetricResult:
    """Per-item correctness with mean ~p on the same 400 items, measured on three seeds (each its own draw)."""
    per_seed = {}
    for s in seeds:
        rng = np.random.default_rng(zlib.crc32(f"{tag}|{p}|{s}".encode()))
        per_seed[s] = flan.item_metric((rng.random(len(IDS)) < p).astype(float).tolist(), IDS)
    return across_seeds("acc", per_seed)


def _floor(p: float = 0.3) -> MetricResult:
    """The majority class on the same items: the same answers on every seed."""
    values = [float(i < p * len(IDS)) for i in range(len(IDS))]
    return across_seeds("acc", {s: flan.item_metric(values, IDS) for s in (0, 1, 2)})


def _spread(value: float, half: float) -> MetricResult:
    return across_seeds("template_std", {s: MetricResult("template_std", value + 0.002 * s, 400,
                                                         value + 0.002 * s - half, value + 0.002 * s + half)
                                         for s in (0, 1, 2)})


def _synthetic(good: bool, scale: str = "smoke") -> dict:
    """Every metric the claims read, over three seeds: the preferred arm at 0.9 (good) or 0.5 (bad),
    the other at 0.5 / 0.9, the majority class at 0.3 (below both: every floor holds)."""
    s = flan.SCALES[scale]
    hi, lo = (0.9, 0.5) if good else (0.5, 0.9)
    m = {"heldout_avg/flan": _arm(hi, "flan"), "heldout_avg/base": _arm(lo, "base"), "majority/heldout_avg": _floor()}
    m.update({f"majority/{c}": _floor() for c in s.held_out})
    ks = np.linspace(lo, hi, len(s.n_clusters))
    for k, p in zip(s.n_clusters, ks):
        m[f"clusters/{k}/acc"] = _arm(float(p), f"clusters{k}")
    for z in s.sizes:
        m[f"size/{z.label}/base"], m[f"size/{z.label}/flan"] = _arm(hi, f"{z.label}b"), _arm(lo, f"{z.label}f")
    m["format/instructions"] = _arm(hi, "instructions")
    m["format/no_template"], m["format/dataset_name"] = _arm(lo, "no_template"), _arm(lo, "dataset_name")
    m[f"few_shot/{s.held_out[0]}/flan"] = _arm(0.8, "few")
    m["spread/zero_shot"], m["spread/few_shot"] = (_spread(0.2, 0.05), _spread(0.02, 0.01)) if good else \
        (_spread(0.02, 0.01), _spread(0.2, 0.05))
    return m


def test_verdicts_follow_synthetic_metrics():
    paper = flan.FLAN()
    good, bad = _synthetic(True), _synthetic(False)
    for claim in paper.claims("smoke"):
        assert claim.check(good).status == REPRODUCED, (claim.id, claim.check(good).explanation)
        assert claim.check(bad).status == NOT_REPRODUCED, (claim.id, claim.check(bad).explanation)


def test_equal_arms_are_inconclusive_and_identical_arms_not_reproduced():
    """Two arms drawn at the same accuracy: the interval reaches beyond ±δ (inconclusive); the same
    arm twice: the interval is 0, inside ±δ (not reproduced: no effect as large as the claim's)."""
    fc4 = next(c for c in flan.FLAN().claims("smoke") if c.id == "F-C4")
    m = _synthetic(True)
    m["format/no_template"], m["format/dataset_name"] = _arm(0.9, "other"), _arm(0.9, "other2")
    assert fc4.check(m).status == INCONCLUSIVE
    m["format/no_template"] = m["format/dataset_name"] = m["format/instructions"]
    assert fc4.check(m).status == NOT_REPRODUCED


def test_a_comparison_of_models_at_the_majority_class_is_not_read():
    """F-C4 at the cpu scale once read 'reproduced' in part on a 0.8-point gap between near-constant
    models. The instruction-tuned model at the majority class: inconclusive, although the comparison
    alone (instructions far above the other formats) would be reproduced."""
    claims = {c.id: c for c in flan.FLAN().claims("cpu")}
    abl = flan.SCALES["cpu"].held_out[0]
    m = _synthetic(True, "cpu")
    m["format/instructions"] = _floor()  # answers the majority class everywhere
    m["format/no_template"], m["format/dataset_name"] = _arm(0.05, "nt"), _arm(0.05, "dn")
    verdict = claims["F-C4"].check(m)
    assert verdict.status == INCONCLUSIVE and verdict.evidence["claim"]["status"] == REPRODUCED
    assert "condition does not hold" in verdict.explanation
    # the same for a size whose base is at the floor (F-C3), and a few-shot model at the floor (F-C5):
    # a constant model has no spread over templates at all
    z = flan.SCALES["cpu"].sizes[0].label
    m[f"size/{z}/base"], m[f"size/{z}/flan"] = _floor(), _arm(0.05, "f")
    assert claims["F-C3"].check(m).status == INCONCLUSIVE
    m[f"few_shot/{abl}/flan"] = _floor()
    assert claims["F-C5"].check(m).status == INCONCLUSIVE


def test_claims_are_a_pure_function_of_the_scale():
    registered = papers.get_paper("flan")
    for scale in flan.SCALES:
        fresh = flan.FLAN()
        before = [(c.id, c.predicate.keys()) for c in fresh.claims(scale)]
        for other in flan.SCALES:
            fresh.claims(other)
        assert [(c.id, c.predicate.keys()) for c in fresh.claims(scale)] == before
        assert [(c.id, c.predicate.keys()) for c in registered.claims(scale)] == before
        assert [c.id for c in fresh.claims(scale)] == ["F-C1", "F-C2", "F-C3", "F-C4", "F-C5"]
    assert not vars(flan.FLAN())  # nothing for measure() to leave behind


@pytest.mark.parametrize("scale", list(flan.SCALES))
def test_every_comparison_states_a_delta_and_its_source(scale):
    for claim in flan.FLAN().claims(scale):
        stated = deltas(claim.predicate)
        assert stated and all(d is not None and d > 0 for d in stated), claim.id
        assert claim.delta_source.strip(), claim.id
    assert flan.ACC_DELTA < 0.07  # below the paper's smallest cluster gain (6.8 points), in fraction units


def test_measure_takes_one_seed():
    with pytest.raises(ValueError, match="one seed"):
        flan.FLAN().measure("smoke", [0, 1])


def test_majority_items_answer_each_task_with_its_most_frequent_training_label():
    s = flan.SCALES["smoke"]
    ids = [f"{t}|{it.record['uid']}" for t in flan.flan_tasks("nli")
           for it in prepare(Scenario(t, template=flan.eval_templates(s, t)[0], limit=s.eval_items))]
    values = flan.majority_items(s, "nli", ids)
    assert len(values) == len(ids) and set(values) <= {0.0, 1.0}
    for task in flan.flan_tasks("nli"):
        labels = [int(r["label"]) for r in get_task(task).exemplar_pool()]
        common = max(set(labels), key=labels.count)
        golds = {it.record["uid"]: int(it.record["label"])
                 for it in prepare(Scenario(task, template=flan.eval_templates(s, task)[0], limit=s.eval_items))}
        assert [v for i, v in zip(ids, values) if i.startswith(task + "|")] == \
            [float(golds[i.split("|", 1)[1]] == common) for i in ids if i.startswith(task + "|")]


def test_template_spread_and_fc5_verdict():
    # templates x items: zero-shot templates disagree (0.9 vs 0.1), few-shot ones agree
    n = 40
    zero = {"t1": {str(i): i % 10 != 0 for i in range(n)}, "t2": {str(i): i % 10 == 0 for i in range(n)}}
    few = {"t1": {str(i): i % 2 == 0 for i in range(n)}, "t2": {str(i): i % 2 == 0 for i in range(n)}}
    scores = {"nli": {"0": {"flan/rte": zero}, "1": {"flan/rte": few}}}
    z, f = flan.template_spread(scores, "nli", 0), flan.template_spread(scores, "nli", 1)
    assert z.value == pytest.approx(0.4) and f.value == 0.0 and z.ci_low > 0
    fc5 = next(c for c in flan.FLAN().claims("smoke") if c.id == "F-C5")
    learned = {"few_shot/nli/flan": _arm(0.8, "few"), "majority/nli": _floor()}
    assert fc5.check({**learned, "spread/zero_shot": z, "spread/few_shot": f}).status == REPRODUCED
    assert fc5.check({**learned, "spread/zero_shot": f, "spread/few_shot": z}).status == NOT_REPRODUCED


def test_cluster_items_average_templates_per_item():
    scores = {"nli": {"0": {"flan/rte": {"a": {"1": True, "2": False}, "b": {"1": True, "2": True}},
                            "flan/wnli": {"a": {"7": False}, "b": {"7": False}}}}}
    values, ids = flan.cluster_items(scores, "nli")
    assert values == [1.0, 0.5, 0.0] and ids == ["flan/rte|1", "flan/rte|2", "flan/wnli|7"]
