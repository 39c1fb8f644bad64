"""harness.claims: every predicate can return each of the three verdicts, missing or CI-less
metrics give "inconclusive" (never an exception), paired items are used when present, and
reported.yaml loads by paper key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import claims as C
from harness.metrics import MetricResult, accuracy


def m(value: float, half: float | None = 0.5, name: str = "x") -> MetricResult:
    """A metric with a symmetric CI of half-width `half` (None: no CI)."""
    if half is None:
        return MetricResult(name, value, 10, None, None, {})
    return MetricResult(name, value, 10, value - half, value + half, {})


def statuses(predicate: C.Predicate, cases: list[dict]) -> list[str]:
    return [predicate.evaluate(c).status for c in cases]


REP, NOT, INC = C.REPRODUCED, C.NOT_REPRODUCED, C.INCONCLUSIVE


# --------------------------------------------------------------------------------------------
# Each predicate, each status


def test_greater_three_ways():
    p = C.greater("a", "b")
    assert statuses(p, [{"a": m(3), "b": m(1)}, {"a": m(1), "b": m(3)}, {"a": m(2), "b": m(1.5)}]) == [REP, NOT, INC]
    with_margin = C.greater("a", "b", margin=1.5)
    # A beats B clearly, but not by the claimed margin
    assert with_margin.evaluate({"a": m(2, 0.1), "b": m(1, 0.1)}).status == NOT
    assert with_margin.evaluate({"a": m(5, 0.1), "b": m(1, 0.1)}).status == REP


def test_percentage_metrics_are_explained_in_points_and_decided_on_fractions():
    p = C.greater("big/sst2/acc", "small/sst2/acc", delta=0.05)
    v = p.evaluate({"big/sst2/acc": m(0.80, 0.01), "small/sst2/acc": m(0.78, 0.01)})
    assert v.status == NOT  # 2 points [0, 4] lies inside ±5: an equivalence, decided on the raw fractions
    assert "= 2 [0, 4]" in v.explanation and "±δ = 5" in v.explanation
    assert v.evidence["difference"]["point"] == pytest.approx(0.02) and v.evidence["delta"] == 0.05
    assert "δ = 5" in p.describe()
    raw = C.greater("big/loss", "small/loss", delta=0.05).evaluate({"big/loss": m(0.80, 0.01), "small/loss": m(0.78, 0.01)})
    assert "±δ = 0.05" in raw.explanation  # other metrics keep their own unit


def test_keys_declared_percent_are_explained_in_points(monkeypatch):
    """A key whose last part names an arm (FLAN's zero_shot/nli/base) says nothing of its unit: the paper
    declares it, and from then on it reads in points like any accuracy, in claims and in figures."""
    from harness import metrics as M
    from harness.plots import _value

    monkeypatch.setattr(M, "_PERCENT_PATTERNS", set())
    p = C.greater("zs/nli/tuned", "zs/nli/base", delta=0.03)
    measured = {"zs/nli/tuned": m(0.60, 0.01), "zs/nli/base": m(0.50, 0.01)}
    assert "δ = 0.03" in p.describe() and M.display_factor("zs/nli/base") == 1.0
    M.declare_percent("zs/*/tuned", "zs/*/base")
    assert "δ = 3" in p.describe() and "= 10 [8, 12]" in p.evaluate(measured).explanation
    assert M.display_factor("zs/nli/base", "zs/nli/tuned") == 100.0
    assert M.display_factor("zs/nli/base", "zs/nli/params") == 1.0  # mixed units: shown as stored
    assert _value({"zs/nli/base": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}}, "zs/nli/base") == (50.0, 40.0, 60.0)
    with pytest.raises(ValueError, match="non-empty key patterns"):
        M.declare_percent("")


def test_papers_declare_every_accuracy_they_key_by_arm():
    """FLAN's arm-keyed accuracies, PEFT's GLUE gaps and InstructGPT's win rates read in points; the
    ROUGE gaps and parameter counts beside them keep their own units."""
    import papers
    from harness.metrics import display_factor

    papers.discover()  # each paper declares its keys at import

    for key in ("zero_shot/nli/base", "dataset/flan/rte/flan", "majority/heldout_avg", "spread/zero_shot",
                "glue/lora/gap", "sweep/t5lm_L2d32/prompt/gap", "win/ppo_vs_sft", "chance/pairwise"):
        assert display_factor(key) == 100.0, key
    for key in ("xsum/lora/gap", "size/L2d64/params", "cost/encoder/lora/trainable_share", "ppo/kl"):
        assert display_factor(key) == 1.0, key


def test_sign_of_difference_three_ways():
    p = C.sign_of_difference("a", "b", -1)
    assert statuses(p, [{"a": m(1), "b": m(3)}, {"a": m(3), "b": m(1)}, {"a": m(1), "b": m(1.2)}]) == [REP, NOT, INC]
    assert C.sign_of_difference("a", "b", "+").evaluate({"a": m(3), "b": m(1)}).status == REP
    with pytest.raises(ValueError, match="approximately_equal"):
        C.sign_of_difference("a", "b", 0)


def test_approximately_equal_three_ways():
    p = C.approximately_equal("a", "b", tolerance=1.0)
    cases = [{"a": m(25.8, 0.1), "b": m(25.7, 0.1)},  # diff CI [-0.1, 0.3] inside ±1
             {"a": m(28.0, 0.1), "b": m(25.7, 0.1)},  # diff CI [2.1, 2.5] outside
             {"a": m(25.8, 2.0), "b": m(25.7, 2.0)}]  # too wide to tell
    assert statuses(p, cases) == [REP, NOT, INC]


def test_within_ratio_three_ways():
    p = C.within_ratio("a", "b", reported_ratio=2.0, band=0.1)  # band [1.8, 2.2]
    cases = [{"a": m(20, 0.1), "b": m(10, 0.05)},   # ratio ~[1.985, 2.015]
             {"a": m(40, 0.1), "b": m(10, 0.05)},   # ~4: outside
             {"a": m(20, 3.0), "b": m(10, 0.5)}]    # [1.62, 2.42]: partly outside
    assert statuses(p, cases) == [REP, NOT, INC]
    # a denominator CI touching 0 makes the ratio undefined: inconclusive, not a crash
    assert p.evaluate({"a": m(1), "b": m(0.2)}).status == INC
    absolute = C.within_ratio("a", "b", reported_ratio=2.0, band=0.5, relative=False)
    assert absolute.evaluate({"a": m(22, 0.1), "b": m(10, 0.05)}).status == REP  # [1.5, 2.5]


def test_monotone_three_ways():
    up = C.monotone(["s", "m", "l"])
    ordered = {"s": m(1, 0.2), "m": m(2, 0.2), "l": m(3, 0.2)}
    reversed_ends = {"s": m(3, 0.2), "m": m(2, 0.2), "l": m(1, 0.2)}
    ends_overlap = {"s": m(1, 1), "m": m(1.5, 1), "l": m(2, 1)}
    assert statuses(up, [ordered, reversed_ends, ends_overlap]) == [REP, NOT, INC]
    # one rule for every sweep: the ends decide, an unresolved middle step does not block it
    middle_flat = {"s": m(1, 0.2), "m": m(2, 0.2), "l": m(2.1, 0.2)}
    assert up.evaluate(middle_flat).status == REP
    # a significant reversal in the middle breaks monotonicity even if the ends are fine
    dip = {"s": m(1, 0.1), "m": m(5, 0.1), "l": m(3, 0.1)}
    assert up.evaluate(dip).status == NOT
    # decreasing (e.g. perplexity falls with size), with a forgiven tiny reversal
    down = C.monotone(["n2", "n4", "n6", "n8"], direction="decreasing", tolerance=0.5)
    ppl = {"n2": m(6.11, 0.05), "n4": m(5.19, 0.05), "n6": m(4.92, 0.05), "n8": m(4.95, 0.05)}
    v = down.evaluate(ppl)
    assert v.status == REP and not v.evidence["steps"][-1]["reversed"]
    assert C.monotone(["n2", "n4", "n6", "n8"], direction="decreasing").evaluate(ppl).status == REP


def test_all_of_three_ways():
    # T-C5: label smoothing worsens PPL but improves BLEU
    p = C.all_of(C.greater("ppl_ls", "ppl_nols"), C.greater("bleu_ls", "bleu_nols"))
    both = {"ppl_ls": m(5, 0.3), "ppl_nols": m(4, 0.3), "bleu_ls": m(26, 0.3), "bleu_nols": m(25, 0.3)}
    one_refuted = {**both, "bleu_ls": m(20, 0.3)}
    one_unclear = {**both, "bleu_ls": m(25.2, 0.3)}
    assert statuses(p, [both, one_refuted, one_unclear]) == [REP, NOT, INC]
    assert len(p.evaluate(one_refuted).evidence["parts"]) == 2


def test_provided_reads_the_claim_only_when_its_condition_holds():
    # T5-C1: pre-training beats scratch, read only once the pre-trained model beats the majority class
    p = C.provided(C.greater("gain", "zero"), C.greater("pre", "scratch"))
    learned = {"gain": m(0.1, 0.02), "zero": m(0.0, 0.0), "pre": m(0.6, 0.02), "scratch": m(0.5, 0.02)}
    assert statuses(p, [learned, {**learned, "pre": m(0.4, 0.02)}, {**learned, "pre": m(0.51, 0.02)}]) == [REP, NOT, INC]
    # a failed or unclear condition makes the claim unreadable, never refuted, whatever the comparison says
    for gain in (m(-0.1, 0.02), m(0.01, 0.02)):
        for pre in (m(0.6, 0.02), m(0.4, 0.02)):
            v = p.evaluate({**learned, "gain": gain, "pre": pre})
            assert v.status == INC and "condition does not hold" in v.explanation
            assert v.evidence["claim"]["status"] in (REP, NOT)  # the comparison is still on record
    assert set(p.keys()) == {"gain", "zero", "pre", "scratch"}
    assert p.evaluate(dict.fromkeys(p.keys())).status == INC


# --------------------------------------------------------------------------------------------
# Honesty: missing data, no CI, paired items


@pytest.mark.parametrize("predicate", [
    C.greater("a", "b"), C.sign_of_difference("a", "b", 1), C.approximately_equal("a", "b", 1.0),
    C.within_ratio("a", "b", 1.0, 0.1), C.monotone(["a", "b"]), C.all_of(C.greater("a", "b")),
    C.provided(C.greater("a", "b"), C.greater("a", "b")),
])
def test_an_unmeasured_metric_is_inconclusive_and_an_unknown_key_an_error(predicate):
    v = predicate.evaluate({"a": m(3), "b": None})
    assert v.status == INC
    assert "metric b was not measured" in v.explanation or "metric b was not measured" in str(v.evidence)
    with pytest.raises(C.UnknownMetricError, match="'b', which is not among the measured metrics"):
        predicate.evaluate({"a": m(3)})


def test_a_misspelled_metric_key_names_the_close_match():
    with pytest.raises(C.UnknownMetricError, match="did you mean large/acc"):
        C.greater("larg/acc", "small/acc").evaluate({"large/acc": m(0.8), "small/acc": m(0.6)})


def test_point_estimates_without_ci_never_decide():
    v = C.greater("a", "b").evaluate({"a": m(100, None), "b": 1.0})
    assert v.status == INC and "confidence interval" in v.explanation
    exact = {"a": MetricResult.exact("a", 3e8), "b": MetricResult.exact("b", 1e8)}
    assert C.greater("a", "b").evaluate(exact).status == REP  # deterministic quantities may decide


def test_metric_dicts_are_accepted():
    measured = {"a": m(3).to_dict(), "b": {"value": 1.0, "ci_low": 0.5, "ci_high": 1.5, "n": 10}}
    assert C.greater("a", "b").evaluate(measured).status == REP


def test_paired_items_resolve_what_overlapping_cis_cannot():
    rng = np.random.default_rng(0)
    difficulty = rng.random(300)
    a, b = accuracy(difficulty < 0.60), accuracy(difficulty < 0.54)
    assert a.ci_low < b.ci_high  # separately, the CIs overlap
    v = C.greater("a", "b").evaluate({"a": a, "b": b})
    assert v.status == REP and v.evidence["method"].startswith("paired")
    stripped = {k: MetricResult(x.name, x.value, x.n, x.ci_low, x.ci_high, {}) for k, x in {"a": a, "b": b}.items()}
    assert C.greater("a", "b").evaluate(stripped).status == INC
    # different items (ids) must not be paired
    a.extra["item_ids"], b.extra["item_ids"] = list(range(300)), list(range(1, 301))
    assert C.greater("a", "b").evaluate({"a": a, "b": b}).evidence["method"].startswith("CI endpoints")


def test_claim_check_and_record():
    claim = C.Claim("T-C6", "Learned vs sinusoidal positions are about equal.", "Table 3 E",
                    "transformer_vaswani2017", C.approximately_equal("bleu_learned", "bleu_sin", 1.0),
                    reported={"bleu_learned": 25.7, "bleu_sin": 25.8})
    measured = {"bleu_learned": m(20.1, 0.2), "bleu_sin": m(20.0, 0.2)}
    v = claim.check(measured)
    assert v.status == REP and v.evidence["reported"]["bleu_sin"] == 25.8 and "rule" in v.evidence
    rec = claim.record(measured)
    assert set(rec) == {"id", "statement", "source", "status", "evidence", "explanation"}
    assert C.check_claims([claim], {"bleu_learned": None, "bleu_sin": None})[0]["status"] == INC
    with pytest.raises(ValueError):
        C.Verdict("probably", {}, "")


# --------------------------------------------------------------------------------------------
# reported.yaml


def test_load_reported_by_paper(tmp_path, monkeypatch):
    monkeypatch.delenv("REPRO_REFERENCE", raising=False)
    assert C.reference_path().is_relative_to(Path(C.__file__).parent)  # inside the project, no checkout beside it
    papers = C.reported_papers()
    assert "transformer_vaswani2017" in papers
    rows = C.load_reported("transformer_vaswani2017")
    assert rows and all(r["paper"] == "transformer_vaswani2017" for r in rows)
    assert {"id", "value", "metric", "table_figure", "verified", "source"} <= set(rows[0])
    with pytest.raises(KeyError, match="known papers"):
        C.load_reported("no_such_paper")


def test_the_project_copy_of_the_reported_numbers_matches_the_shared_reference(monkeypatch):
    import yaml

    shared = Path(C.__file__).resolve().parents[2] / "shared" / "reference" / "reported.yaml"
    if not shared.is_file():
        pytest.skip(f"no shared reference at {shared} to compare with")
    monkeypatch.delenv("REPRO_REFERENCE", raising=False)
    assert C.load_reported() == yaml.safe_load(shared.read_text())["entries"]


def test_load_reported_env_override_and_missing_file(tmp_path, monkeypatch):
    ref = tmp_path / "reported.yaml"
    ref.write_text("entries:\n- {paper: p1, id: x, dataset: d, metric: acc, value: 1.0, model: m,"
                   " table_figure: T1, verified: true, source: s}\n")
    monkeypatch.setenv("REPRO_REFERENCE", str(tmp_path))  # a directory works too
    assert C.load_reported("p1")[0]["id"] == "x" and C.reported_papers() == ["p1"]
    monkeypatch.setenv("REPRO_REFERENCE", str(tmp_path / "missing.yaml"))
    with pytest.raises(FileNotFoundError, match="REPRO_REFERENCE"):
        C.load_reported("p1")
