"""GPT-2 at the smoke scale end to end: the results file has the documented shape and every
claim got a computed verdict (whatever it is: smoke models are too small to show the effects)."""

import math

import pytest

import papers
from harness.claims import STATUSES
from harness.results import read_run
from harness.runner import run_paper

pytestmark = pytest.mark.gpt2


def test_gpt2_smoke_run_records_metrics_and_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    paper = papers.get_paper("gpt2")
    record = read_run(run_paper(paper, "smoke", root=tmp_path, quiet=True))
    labels = papers.gpt2.sweep("smoke")
    assert labels == ["L1d16", "L1d32", "L2d48"]  # the shared smoke decoder bases
    for label in labels:
        for key in ("webtext/perplexity", "wikitext2/word_perplexity", "ptb/word_perplexity",
                    "tinyshakespeare/bits_per_byte", "lambada/acc", "train_text/perplexity", "heldout_text/perplexity",
                    "webtext/log_perplexity", "wikitext2/log_word_perplexity", "heldout_text/log_perplexity"):
            metric = record.metrics[f"{label}/{key}"]
            assert metric["n"] > 0 and metric["ci_low"] <= metric["value"] <= metric["ci_high"], key
        ppl, log = record.metrics[f"{label}/webtext/perplexity"], record.metrics[f"{label}/webtext/log_perplexity"]
        assert log["value"] == pytest.approx(math.log(ppl["value"])) and log["ci_high"] == pytest.approx(math.log(ppl["ci_high"]))
    assert {c["id"] for c in record.claims} == {"G2-C1", "G2-C2", "G2-C4"}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    assert record.reported and all(r["table_figure"] for r in record.reported)
    assert [f["name"] for f in record.extra["plots"]] == ["sweep"]  # declared; the report draws them
    fit = record.metrics["power_law/alpha_N"]
    assert fit["extra"]["published"] == 0.076 and fit["extra"]["r2"] <= 1


def _claim_shape(claims):
    from harness.claims import deltas

    return [(c.id, c.predicate.keys(), deltas(c.predicate), c.delta_source) for c in claims]


def test_claims_are_a_pure_function_of_the_scale():
    from papers.gpt2 import GPT2, SCALES, sweep

    fresh = GPT2()  # no measure() has run on it
    for scale, s in SCALES.items():
        first, again = _claim_shape(fresh.claims(scale)), _claim_shape(fresh.claims(scale))
        assert first == again and first == _claim_shape(GPT2().claims(scale))
        assert [c[0] for c in first] == ["G2-C1", "G2-C2", "G2-C4"]
        keys = {k for c in first for k in c[1]}
        assert {f"{label}/webtext/log_perplexity" for label in sweep(scale)} <= keys  # the scale's own sweep


def test_every_comparison_has_a_positive_delta_and_every_claim_its_source():
    from harness.claims import deltas
    from papers.gpt2 import GPT2, SCALES

    for scale in SCALES:
        for claim in GPT2().claims(scale):
            ds = deltas(claim.predicate)
            assert ds and all(d is not None and d > 0 for d in ds), claim.id
            assert claim.delta_source.strip(), claim.id


def test_measure_takes_the_one_seed_the_runner_passes():
    from papers.gpt2 import GPT2

    with pytest.raises(ValueError, match="one seed"):
        GPT2().measure("smoke", [0, 1])


def test_the_sweep_delta_is_table3s_slope_over_our_decades():
    from papers.gpt2 import table3_delta

    # Table 3: ln(29.41 / 18.34) nats over log10(1542 / 117) decades; the cpu bases span L2d64 -> L4d128,
    # 12 * 2 * 64^2 = 98,304 -> 12 * 4 * 128^2 = 786,432: log10(8) decades
    assert table3_delta("cpu") == pytest.approx(0.4722 / 1.1199 * math.log10(8), abs=0.005)


def test_log_perplexities_compare_paired_over_documents():
    """Two models scored on the same documents: the documents' shared difficulty cancels in the
    paired difference, which an interval built from the two metrics' own intervals cannot do."""
    import numpy as np

    from harness.claims import greater
    from harness.metrics import MetricResult, perplexity
    from harness.seeds import across_seeds
    from papers.gpt2 import log_of

    rng = np.random.default_rng(0)
    tokens = rng.integers(50, 400, size=60)
    difficulty = rng.uniform(2.0, 6.0, size=60)  # nats per token, per document: far wider than the effect
    per_seed = {}
    for name, shift in (("small", 0.05), ("large", 0.0)):
        per_seed[name] = {s: log_of(perplexity(((difficulty + shift + rng.normal(0, 0.01, 60)) * tokens).tolist(),
                                               tokens.tolist())) for s in (0, 1, 2)}
    one = per_seed["small"][0]
    assert np.mean(one.items) == pytest.approx(one.value)  # ln(perplexity) is the mean of its items
    small, large = (across_seeds("log_perplexity", per_seed[k]) for k in ("small", "large"))
    assert small.ci_high - small.ci_low > 0.2  # each model's own interval is wide (the documents differ)...
    verdict = greater("small", "large", delta=0.01).evaluate({"small": small, "large": large})
    assert verdict.status == "reproduced"  # ...but the paired difference of 0.05 nats is resolved
    with pytest.raises(ValueError, match="perplexity"):
        log_of(MetricResult("bits_per_byte", 1.0, 1, None, None, {}))
