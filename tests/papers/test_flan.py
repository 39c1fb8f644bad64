"""FLAN: the smoke scale end to end, the run plan's hold-outs, and verdicts that follow the metrics."""

import pytest

import papers
from harness.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, STATUSES
from harness.results import read_run
from harness.runner import run_paper
from papers import flan

pytestmark = pytest.mark.flan


def test_flan_smoke_run_records_every_claim_metric(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    paper = papers.get_paper("flan")
    record = read_run(run_paper(paper, "smoke", root=tmp_path, quiet=True))
    claims = paper.claims()
    keys = {k for c in claims for k in c.predicate.keys()}
    for key in keys:
        metric = record.metrics[key]
        assert metric["n"] > 0 and metric["ci_low"] <= metric["value"] <= metric["ci_high"], key
    assert {c["id"] for c in record.claims} == {"F-C1", "F-C2", "F-C3", "F-C4", "F-C5"}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    assert (tmp_path / "figures" / "smoke_flan.png").exists()
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


def _metric(values, ids=None):
    m = flan.item_metric([float(v) for v in values], ids or [f"t|{i}" for i in range(len(values))])
    return m


def _synthetic(good: bool) -> dict:
    s = flan.SCALES["smoke"]
    hi = [1, 1, 1, 1, 0, 1, 1, 1] * 8
    lo = [0, 0, 1, 0, 0, 0, 0, 1] * 8
    better, worse = (hi, lo) if good else (lo, hi)
    m = {"heldout_avg/flan": _metric(better), "heldout_avg/base": _metric(worse)}
    for i, k in enumerate(s.n_clusters):
        m[f"clusters/{k}/acc"] = _metric(worse if i == 0 else better)
    for z in s.sizes:
        m[f"size/{z.label}/base"], m[f"size/{z.label}/flan"] = _metric(better), _metric(worse)
    m["format/instructions"] = _metric(better)
    m["format/no_template"] = m["format/dataset_name"] = _metric(worse)
    return m


def test_verdicts_follow_synthetic_metrics():
    paper = flan.FLAN("smoke")
    good, bad = _synthetic(True), _synthetic(False)
    for claim in paper.claims():
        if claim.id == "F-C5":
            continue
        assert claim.check(good).status == REPRODUCED, claim.id
        assert claim.check(bad).status == NOT_REPRODUCED, claim.id
        same = {k: _metric([1, 0] * 16) for k in claim.predicate.keys()}
        assert claim.check(same).status == INCONCLUSIVE, claim.id


def test_template_spread_and_fc5_verdict():
    # templates x items: zero-shot templates disagree (0.9 vs 0.1), few-shot ones agree
    n = 40
    zero = {"t1": {str(i): i % 10 != 0 for i in range(n)}, "t2": {str(i): i % 10 == 0 for i in range(n)}}
    few = {"t1": {str(i): i % 2 == 0 for i in range(n)}, "t2": {str(i): i % 2 == 0 for i in range(n)}}
    scores = {"nli": {"0": {"flan/rte": zero}, "1": {"flan/rte": few}}}
    z, f = flan.template_spread(scores, "nli", 0), flan.template_spread(scores, "nli", 1)
    assert z.value == pytest.approx(0.4) and f.value == 0.0 and z.ci_low > 0
    fc5 = next(c for c in flan.FLAN("smoke").claims() if c.id == "F-C5")
    assert fc5.check({"spread/zero_shot": z, "spread/few_shot": f}).status == REPRODUCED
    assert fc5.check({"spread/zero_shot": f, "spread/few_shot": z}).status == NOT_REPRODUCED


def test_cluster_items_average_templates_per_item():
    scores = {"nli": {"0": {"flan/rte": {"a": {"1": True, "2": False}, "b": {"1": True, "2": True}},
                            "flan/wnli": {"a": {"7": False}, "b": {"7": False}}}}}
    values, ids = flan.cluster_items(scores, "nli")
    assert values == [1.0, 0.5, 0.0] and ids == ["flan/rte|1", "flan/rte|2", "flan/wnli|7"]
