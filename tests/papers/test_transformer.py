"""Transformer at the smoke scale end to end (the results file's shape, a computed verdict for
every claim, the samples table in the report), and the recipe's pieces on their own."""

import pytest

import papers
from harness.claims import STATUSES
from harness.report import render
from harness.results import read_run
from harness.runner import run_paper
from papers.transformer import SCALES, Variant, train_config


@pytest.mark.transformer
def test_transformer_smoke_run_records_metrics_verdicts_and_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    record = read_run(run_paper(papers.get_paper("transformer"), "smoke", root=tmp_path, quiet=True))
    for label in ("base", "single_head", "smaller", "bigger", "no_dropout", "no_label_smoothing",
                  "learned_positions", "gru_attention"):
        for key in ("test/bleu", "dev/perplexity", "train/perplexity"):
            m = record.metrics[f"{label}/{key}"]
            assert m["n"] > 0 and m["ci_low"] <= m["value"] <= m["ci_high"], (label, key)
    bleu = record.metrics["base/test/bleu"]
    assert bleu["extra"]["signature"].startswith("nrefs:1|case:mixed") and bleu["extra"]["reported_id"] == "t3_base_bleu"
    assert {c["id"] for c in record.claims} == {"T-C1", "T-C3", "T-C4", "T-C5", "T-C6", "T-C7"}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    samples = record.extra["tables"]["Translation samples (test_2016_flickr)"]
    assert len(samples) == SCALES["smoke"].n_samples and all(row["source (en)"] for row in samples)
    report = render(tmp_path).read_text()
    assert "Translation samples" in report and samples[0]["reference (de)"].replace("|", "\\|") in report
    assert (tmp_path / "figures" / "smoke_transformer_ablations.png").exists()


def test_recipe_is_the_papers():
    s = SCALES["cpu"]
    cfg = train_config(Variant("base"), s, seed=0)
    assert cfg.betas == (0.9, 0.98) and cfg.eps == 1e-9 and cfg.schedule == "inverse_sqrt"
    assert cfg.label_smoothing == 0.1 and cfg.weight_decay == 0.0
    assert cfg.lr == pytest.approx(s.d_model**-0.5 * s.warmup_steps**-0.5)  # §5.3's peak
    assert train_config(Variant("x", label_smoothing=0.0), s, 0).label_smoothing == 0.0


def test_single_head_keeps_d_model():
    from papers.transformer import model_for, variants

    s = SCALES["smoke"]
    by_label = {v.label: v for v in variants(s)}
    base, single = model_for(by_label["base"], s, 100), model_for(by_label["single_head"], s, 100)
    assert single.config.n_head == 1 and single.config.d_model == base.config.d_model
    # h * d_k = d_model both ways: the same parameter count (Table 3 A keeps compute fixed)
    assert sum(p.numel() for p in single.parameters()) == sum(p.numel() for p in base.parameters())


# ----------------------------------------------------------------------------------------------
# Claims: a pure function of the scale, a δ with its source on every comparison


def _claim_shape(claims):
    from harness.claims import deltas

    return [(c.id, c.predicate.keys(), deltas(c.predicate), c.delta_source) for c in claims]


def test_claims_are_a_pure_function_of_the_scale():
    from papers.transformer import Transformer

    fresh = Transformer()  # no measure() has run on it
    for scale in SCALES:
        first, again = _claim_shape(fresh.claims(scale)), _claim_shape(fresh.claims(scale))
        assert first == again and first == _claim_shape(Transformer().claims(scale))
        assert [c[0] for c in first] == ["T-C1", "T-C3", "T-C4", "T-C5", "T-C6", "T-C7"]


def test_every_comparison_has_a_positive_delta_and_every_claim_its_source():
    from harness.claims import deltas
    from papers.transformer import CPU_LEVELS, Transformer, scaled_delta

    for scale in SCALES:
        for claim in Transformer().claims(scale):
            assert all(d is not None and d > 0 for d in deltas(claim.predicate)), claim.id
            assert claim.delta_source.strip(), claim.id
    by_id = {c.id: c for c in Transformer().claims("cpu")}
    assert deltas(by_id["T-C1"].predicate) == [0.7]  # Table 3 A: 0.9 of 25.8 BLEU, times our 19.8
    assert scaled_delta(0.9, 25.8, "bleu") == pytest.approx(0.9 / 25.8 * CPU_LEVELS["bleu"], rel=0.3)
    assert deltas(by_id["T-C6"].predicate) == []  # an equivalence claim keeps its own tolerance


def test_measure_takes_the_one_seed_the_runner_passes():
    from papers.transformer import Transformer

    with pytest.raises(ValueError, match="one seed"):
        Transformer().measure("smoke", [0, 1])


def test_no_claim_is_read_before_the_base_model_translates():
    """The validity condition: multi-head clearly beating single-head says nothing while the base
    model is below BASE_BLEU_MIN; past it, the same gap is read."""
    from harness.claims import INCONCLUSIVE, REPRODUCED
    from harness.metrics import MetricResult
    from harness.seeds import across_seeds
    from papers.transformer import BASE_BLEU_MIN, Transformer

    def seeded(values):
        return across_seeds("bleu", {s: MetricResult("bleu", v, 1000, v - 0.5, v + 0.5) for s, v in enumerate(values)})

    claim = {c.id: c for c in Transformer().claims("cpu")}["T-C1"]
    threshold = across_seeds("threshold", {s: MetricResult.exact("threshold", BASE_BLEU_MIN) for s in range(3)})
    for base, expected in (([10.0, 10.4, 10.2], INCONCLUSIVE), ([20.0, 20.4, 20.2], REPRODUCED)):
        metrics = {"base/test/bleu": seeded(base), "single_head/test/bleu": seeded([b - 5 for b in base]),
                   "threshold/bleu": threshold}
        assert claim.check(metrics).status == expected
