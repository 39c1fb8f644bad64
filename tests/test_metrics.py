"""harness.metrics and harness.perturb: identities, agreement with reference implementations
(sacrebleu, rouge-score, scipy, sklearn), calibration on simulated predictors, bootstrap CIs."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import metrics as M
from harness import perturb as P

FAST = settings(max_examples=25, deadline=None)
words = st.text(alphabet="abcdefghij ", min_size=1, max_size=30).filter(lambda s: s.strip())
sentences = st.lists(st.sampled_from(["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]),
                     min_size=4, max_size=12).map(" ".join)


# --------------------------------------------------------------------------------------------
# MetricResult


def test_metric_result_round_trip_and_json_safety():
    r = M.accuracy([True, False, True, True])
    d = r.to_dict()
    assert set(d) == {"name", "value", "n", "ci_low", "ci_high", "extra"}
    assert M.MetricResult.from_dict(d) == r
    assert "items" not in r.to_dict(include_items=False)["extra"]
    nan = M.MetricResult("x", float("nan"), 0, None, None, {"v": np.float64("inf")}).to_dict()
    assert nan["value"] is None and nan["extra"]["v"] is None  # JSON has no NaN / inf
    exact = M.MetricResult.exact("params", 1234)
    assert exact.ci_low == exact.ci_high == 1234.0 and exact.has_ci


# --------------------------------------------------------------------------------------------
# Accuracy family and bootstrap


@FAST
@given(st.lists(st.booleans(), min_size=1, max_size=60), st.randoms(use_true_random=False), st.integers(1, 7))
def test_accuracy_invariant_to_order_and_batching(correct, rnd, batch):
    shuffled = list(correct)
    rnd.shuffle(shuffled)
    batches = [shuffled[i:i + batch] for i in range(0, len(shuffled), batch)]
    pooled = M.accuracy([c for b in batches for c in b], n_resamples=100)
    assert pooled.value == pytest.approx(M.accuracy(correct, n_resamples=100).value)
    assert pooled.value == pytest.approx(sum(correct) / len(correct))
    assert pooled.n == len(correct)


@FAST
@given(st.lists(st.floats(0, 1), min_size=2, max_size=80), st.integers(0, 10_000))
def test_bootstrap_ci_contains_the_mean(values, seed):
    r = M.mean_with_ci("m", values, seed=seed, n_resamples=200)
    assert r.ci_low - 1e-12 <= r.value <= r.ci_high + 1e-12


def test_bootstrap_ci_is_seeded_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small = M.accuracy(rng.random(100) < 0.6)
    large = M.accuracy(rng.random(10_000) < 0.6)
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low) / 5  # ~ 1/sqrt(n)
    assert M.accuracy([1, 0, 1, 1], seed=3) == M.accuracy([1, 0, 1, 1], seed=3)
    assert M.accuracy([1, 0, 1, 1, 0, 1], seed=3) != M.accuracy([1, 0, 1, 1, 0, 1], seed=4)


def test_bootstrap_coverage_is_roughly_95_percent():
    rng = np.random.default_rng(1)

    def covers(seed: int) -> bool:
        r = M.mean_with_ci("m", rng.random(200) < 0.3, seed=seed, n_resamples=400)
        return r.ci_low <= 0.3 <= r.ci_high

    assert 85 <= sum(covers(i) for i in range(100)) <= 100


def test_paired_bootstrap_diff_is_tighter_than_unpaired_and_checks_lengths():
    rng = np.random.default_rng(2)
    difficulty = rng.random(400)
    a = difficulty < 0.62  # b is wrong on a subset of the items a gets right
    b = difficulty < 0.55
    d = M.paired_bootstrap_diff(a, b)
    assert d.value == pytest.approx(a.mean() - b.mean())
    assert d.ci_low > 0  # paired: the shared item difficulty cancels
    ra, rb = M.accuracy(a), M.accuracy(b)
    assert ra.ci_low < rb.ci_high  # unpaired CIs overlap for the same data
    with pytest.raises(ValueError, match="same items"):
        M.paired_bootstrap_diff([1, 0], [1])


def test_length_normalised_accuracy_and_argmax_units():
    # per-char: -3/3 = -1 beats -2/1 = -2, though the raw log-prob prefers the short choice
    assert M.argmax_length_normalised([-3.0, -2.0], ["abc", "d"]) == 0
    assert M.argmax_length_normalised([-1.0, -1.0], ["a", "b"]) == 0  # ties: first
    # "é" is 1 char but 2 UTF-8 bytes: the unit changes the decision
    assert M.argmax_length_normalised([-3.0, -1.0], ["éé", "a"], unit="chars") == 1  # -1.5 vs -1
    assert M.argmax_length_normalised([-3.0, -1.0], ["éé", "a"], unit="bytes") == 0  # -0.75 vs -1
    r = M.length_normalised_accuracy([[-3.0, -2.0], [-1.0, -5.0]], [["abc", "d"], ["x", "y"]], [0, 0])
    assert r.name == "acc_norm" and r.value == 1.0


def test_worst_case_accuracy_item_and_aggregate():
    table = {"identity": [1, 1, 1, 0], "typos": [1, 0, 1, 0], "uppercase": [0, 1, 1, 0]}
    item = M.worst_case_accuracy(table)
    assert item.value == pytest.approx(0.25)  # only item 2 survives every variant
    agg = M.worst_case_accuracy(table, mode="aggregate")
    assert agg.value == pytest.approx(0.5) == item.extra["min_accuracy_over_perturbations"]
    assert item.extra["per_perturbation"]["identity"] == 0.75
    assert item.value <= agg.value


# --------------------------------------------------------------------------------------------
# EM / F1


@FAST
@given(words)
def test_em_f1_identity(text):
    assert M.exact_match([text], [text]).value == 1.0
    assert M.f1([text], [[text, "zzz"]]).value == pytest.approx(1.0)


def test_squad_normalisation_and_multiple_references():
    assert M.normalize_answer("The  Cat, sat!") == "cat sat"
    assert M.exact_match(["the Eiffel Tower."], ["Eiffel tower"]).value == 1.0
    assert M.exact_match(["Paris"], [["London", "paris"]]).value == 1.0
    assert M.exact_match(["Paris"], [["London"]]).value == 0.0
    f = M.f1(["the cat sat"], [["a dog", "cat sat down"]])
    assert f.value == pytest.approx(2 * 1.0 * (2 / 3) / (1.0 + 2 / 3))  # best reference counts
    assert M.f1([""], [""]).value == 1.0 and M.f1(["x"], [""]).value == 0.0
    with pytest.raises(ValueError):
        M.exact_match(["a", "b"], ["a"])


# --------------------------------------------------------------------------------------------
# BLEU / ROUGE


@settings(max_examples=10, deadline=None)
@given(st.lists(sentences, min_size=1, max_size=6))
def test_bleu_of_identical_corpus_is_100(corpus):
    r = M.bleu(corpus, corpus, n_resamples=50)
    assert r.value == pytest.approx(100.0)
    assert "BLEU" in r.extra["signature"] or "nrefs" in r.extra["signature"]


def test_bleu_equals_sacrebleu_on_a_known_example():
    hyps = ["the cat sat on the mat", "there is a dog in the garden", "hello world"]
    refs = [["the cat is on the mat", "a cat sat on the mat"], ["a dog is in the garden", "there is a dog outside"],
            ["hello there world"]]
    r = M.bleu(hyps, refs)
    streams = [[r[0] for r in refs], [r[1] if len(r) > 1 else None for r in refs]]
    assert r.value == pytest.approx(sacrebleu.corpus_bleu(hyps, streams).score)
    single = M.bleu(hyps, [x[0] for x in refs])
    assert single.value == pytest.approx(sacrebleu.corpus_bleu(hyps, [[x[0] for x in refs]]).score)
    assert r.ci_low <= r.value <= r.ci_high and r.n == 3


@settings(max_examples=10, deadline=None)
@given(st.lists(sentences, min_size=1, max_size=5))
def test_rouge_of_identical_documents_is_100(docs):
    scores = M.rouge(docs, docs, n_resamples=50)
    assert set(scores) == {"rouge1", "rouge2", "rougeL"}
    for t in ("rouge1", "rougeL"):
        assert scores[t].value == pytest.approx(100.0)


def test_rouge_matches_rouge_score_and_takes_best_reference():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    hyps, refs = ["cats are running fast", "the weather is nice"], ["a cat runs fast", "nice weather today"]
    got = M.rouge(hyps, refs)
    for t in ("rouge1", "rouge2", "rougeL"):
        want = np.mean([scorer.score(r, h)[t].fmeasure for h, r in zip(hyps, refs)]) * 100
        assert got[t].value == pytest.approx(want)
    best = M.rouge(["a b c"], [["x y", "a b c"]])
    assert best["rouge1"].value == pytest.approx(100.0)


# --------------------------------------------------------------------------------------------
# Perplexity and bits per byte


@FAST
@given(st.floats(0.01, 20.0), st.integers(1, 10_000), st.integers(1, 50_000))
def test_perplexity_and_bpb_identities(nats_per_token, tokens, nbytes):
    nats = nats_per_token * tokens
    assert M.perplexity(nats, tokens).value == pytest.approx(math.exp(nats / tokens))
    assert M.bits_per_byte(nats, nbytes).value == pytest.approx(nats / nbytes / math.log(2))
    assert M.word_perplexity(nats, tokens).value == pytest.approx(math.exp(nats / tokens))
    # log2(ppl) * tokens == bpb * bytes == total bits
    assert math.log2(M.perplexity(nats, tokens).value) * tokens == pytest.approx(
        M.bits_per_byte(nats, nbytes).value * nbytes)


def test_per_document_lm_metrics_resample_documents():
    nll, tok, nbytes = [10.0, 30.0, 22.0, 15.0], [5, 10, 8, 6], [20, 41, 30, 25]
    ppl = M.perplexity(nll, tok)
    assert ppl.value == pytest.approx(math.exp(sum(nll) / sum(tok)))
    assert ppl.n == 4 and ppl.ci_low <= ppl.value <= ppl.ci_high
    totals = M.perplexity(sum(nll), sum(tok))
    assert totals.value == pytest.approx(ppl.value) and not totals.has_ci  # no documents, no CI
    bpb = M.bits_per_byte(nll, nbytes)
    assert bpb.value == pytest.approx(sum(nll) / sum(nbytes) / math.log(2))
    with pytest.raises(ValueError):
        M.perplexity([1.0, 2.0], [1])


def _bootstrap_se(metric: M.MetricResult) -> float:
    return (metric.ci_high - metric.ci_low) / (2 * 1.959964)


@FAST
@given(st.lists(st.tuples(st.floats(0.1, 50.0), st.integers(1, 60)), min_size=2, max_size=40))
def test_linearised_corpus_items_average_to_the_metric(docs):
    """Perplexity, word perplexity and bits per byte keep per-document items whose mean is the
    metric (and ln perplexity's items average to its log): the identity the paired claims rest on."""
    nll, counts = [x * c for x, c in docs], [c for _, c in docs]
    for metric in (M.perplexity(nll, counts), M.word_perplexity(nll, counts), M.bits_per_byte(nll, counts)):
        assert metric.extra["items_method"] == M.LINEARISED
        assert np.mean(metric.items) == pytest.approx(metric.value, rel=1e-5)
    log = M.log_of(M.perplexity(nll, counts))
    assert np.mean(log.items) == pytest.approx(log.value, rel=1e-5, abs=1e-6)


def test_linearised_items_give_the_bootstrap_standard_error_and_cancel_shared_difficulty():
    """var(items) / n, the delta method, is the bootstrap's standard error within 15% (perplexity over
    documents of unequal length, corpus BLEU over sentences); and two systems that differ by a
    constant per token compare paired: the documents' shared difficulty cancels, so the paired
    standard error is far below what the two CIs add up to."""
    rng = np.random.default_rng(0)
    counts = rng.integers(5, 60, size=400).astype(float)
    difficulty = rng.gamma(4.0, 1.0, size=400)
    nll_a = difficulty * counts
    nll_b = (difficulty + 0.05 + rng.normal(0, 0.02, size=400)) * counts
    a, b = M.perplexity(nll_a, counts), M.perplexity(nll_b, counts)
    se = np.std(a.items, ddof=1) / math.sqrt(len(a.items))
    assert se == pytest.approx(_bootstrap_se(a), rel=0.15)
    diff = np.asarray(b.items) - np.asarray(a.items)
    assert diff.mean() == pytest.approx(b.value - a.value, rel=1e-5)
    assert np.std(diff, ddof=1) / math.sqrt(len(diff)) < 0.1 * math.hypot(_bootstrap_se(a), _bootstrap_se(b))

    vocab = "the a cat dog sat on mat ran far away big red old new".split()
    py = random.Random(0)
    refs = [" ".join(py.choices(vocab, k=py.randint(6, 14))) for _ in range(300)]
    hyps = [" ".join(w if py.random() > 0.3 else py.choice(vocab) for w in r.split()[: py.randint(5, 14)]) for r in refs]
    bleu = M.bleu(hyps, refs)
    assert bleu.extra["items_method"] == M.LINEARISED and np.mean(bleu.items) == pytest.approx(bleu.value, rel=1e-5)
    assert np.std(bleu.items, ddof=1) / math.sqrt(len(hyps)) == pytest.approx(_bootstrap_se(bleu), rel=0.15)
    same = np.asarray(M.bleu(hyps, refs).items) - np.asarray(bleu.items)
    assert np.all(same == 0)  # the same system against itself: every sentence's difference is 0


def test_bleu_without_any_match_of_an_order_keeps_no_items():
    """With no 4-gram match anywhere, BLEU rests on sacrebleu's smoothing: no first-order expansion,
    so no items (the claims fall back to each seed's CI)."""
    bleu = M.bleu(["cat sat", "dog ran"], ["the cat sat down", "a dog ran off"])
    assert bleu.items is None and bleu.has_ci


# --------------------------------------------------------------------------------------------
# Correlations and classification scores


@FAST
@given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=3, max_size=40))
def test_correlations_match_scipy(pairs):
    stats = pytest.importorskip("scipy.stats")
    x, y = [float(a) for a, _ in pairs], [float(b) for _, b in pairs]
    if len(set(x)) < 2 or len(set(y)) < 2:
        assert math.isnan(M.pearson(x, y, n_resamples=20).value)
        return
    assert M.pearson(x, y, n_resamples=20).value == pytest.approx(stats.pearsonr(x, y)[0], abs=1e-9)
    assert M.spearman(x, y, n_resamples=20).value == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-9)


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn: "a single label was found"
@FAST
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=2, max_size=60))
def test_mcc_and_f1_match_sklearn(pairs):
    skm = pytest.importorskip("sklearn.metrics")
    preds, golds = [p for p, _ in pairs], [g for _, g in pairs]
    assert M.matthews_corrcoef(preds, golds, n_resamples=20).value == pytest.approx(
        skm.matthews_corrcoef(golds, preds), abs=1e-9)
    bp, bg = [min(p, 1) for p in preds], [min(g, 1) for g in golds]
    assert M.f1_binary(bp, bg, n_resamples=20).value == pytest.approx(
        skm.f1_score(bg, bp, zero_division=0), abs=1e-9)


def test_correlation_cis_bracket_the_value():
    rng = np.random.default_rng(3)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    for fn in (M.pearson, M.spearman):
        r = fn(x, y)
        assert r.ci_low < r.value < r.ci_high and r.ci_low > 0.5


# --------------------------------------------------------------------------------------------
# Calibration


def test_ece_of_calibrated_and_overconfident_predictors():
    rng = np.random.default_rng(4)
    conf = rng.random(20_000)
    calibrated = rng.random(20_000) < conf
    assert M.expected_calibration_error(conf, calibrated).value < 0.02
    assert M.expected_calibration_error(conf, calibrated, binning="equal_mass").value < 0.02
    over = np.clip(0.5 + conf / 2, 0, 1)  # claims 50-100% but is right only conf of the time
    e = M.expected_calibration_error(over, calibrated)
    assert e.value > 0.2 and e.ci_low > 0.2


def test_ece_exact_small_case():
    # one bin (all at 0.9) with 50% accuracy -> |0.9 - 0.5|
    e = M.expected_calibration_error([0.9, 0.9, 0.9, 0.9], [1, 0, 1, 0])
    assert e.value == pytest.approx(0.4)
    assert M.expected_calibration_error([0.0, 1.0], [0, 1]).value == pytest.approx(0.0)
    with pytest.raises(ValueError):
        M.expected_calibration_error([1.5], [1])


def test_efficiency():
    e = M.efficiency(1000, 2.0, 10, 5_000_000)
    assert e.value == 500.0 and e.extra["latency_s_per_request"] == 0.2 and e.extra["n_params"] == 5_000_000
    zero = M.efficiency(0.0, 0.0, 10, None)  # no time measured: no throughput, no crash
    assert math.isnan(zero.value) and zero.to_dict()["value"] is None


# --------------------------------------------------------------------------------------------
# Perturbations


@FAST
@given(st.text(max_size=80), st.sampled_from(P.PERTURBATIONS + (P.IDENTITY,)), st.integers(0, 2**31))
def test_perturb_is_deterministic(text, kind, seed):
    assert P.perturb(text, kind, seed) == P.perturb(text, kind, seed)


def test_perturbations_do_what_they_say():
    text = "I am sure it is fine. Do not worry, we will not fail."
    assert P.perturb(text, "identity", 1) == text
    assert P.perturb(text, "uppercase", 0) == text.upper()
    assert P.perturb(text, "lowercase", 0) == text.lower()
    assert P.contractions(text) == "I'm sure it's fine. Don't worry, we won't fail."
    assert P.expand_contractions(P.contractions(text)) == text
    assert P.expand_contractions("DON\u2019T") == "DO NOT"
    spaced = P.perturb(text, "extra_whitespace", 5)
    assert spaced.split() == text.split() and len(spaced) >= len(text)
    assert P.typos(text, random.Random(0), prob=0.0) == text
    noisy = P.perturb("the quick brown fox jumps over the lazy dog " * 5, "typos", 0)
    assert noisy != "the quick brown fox jumps over the lazy dog " * 5
    seeds = {P.perturb("the quick brown fox jumps over the lazy dog " * 5, "typos", s) for s in range(5)}
    assert len(seeds) > 1  # the seed matters
    with pytest.raises(KeyError, match="unknown perturbation"):
        P.perturb(text, "rot13", 0)


# ---- pooled over training seeds (Transformer T-C1/T-C5/T-C6)


def test_bleu_over_one_seed_is_bleu_and_over_seeds_is_the_pooled_corpus_score():
    hyps_a = ["the cat sat on the mat", "a dog runs in the park", "hello there world"]
    hyps_b = ["the cat is on the mat", "a dog is running in a park", "hello world"]
    refs = ["the cat sat on a mat", "a dog is running in the park", "hello there world"]
    assert M.bleu_over_seeds([hyps_a], refs).value == pytest.approx(M.bleu(hyps_a, refs).value)
    pooled = M.bleu_over_seeds([hyps_a, hyps_b], refs)
    # summing both seeds' n-gram statistics is sacrebleu's corpus BLEU of the two corpora joined
    joined = sacrebleu.corpus_bleu(hyps_a + hyps_b, [refs + refs]).score
    assert pooled.value == pytest.approx(joined)
    assert pooled.extra["per_seed"] == pytest.approx([M.bleu(hyps_a, refs).value, M.bleu(hyps_b, refs).value])
    assert pooled.ci_low <= pooled.value <= pooled.ci_high


def test_seed_to_seed_variation_widens_the_pooled_ci():
    rng = random.Random(0)
    words = "a the cat dog sat ran on in mat park".split()
    refs = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(60)]
    same = [list(refs), list(refs)]
    # one seed perfect, the other garbage: resampling seeds must show it
    garbage = [" ".join(rng.choice(words) for _ in range(8)) for _ in range(60)]
    apart = M.bleu_over_seeds([refs, garbage], refs)
    assert M.bleu_over_seeds(same, refs).ci_high - M.bleu_over_seeds(same, refs).ci_low < 1e-6
    assert apart.ci_high - apart.ci_low > 30


def test_perplexity_over_seeds_matches_perplexity_for_one_seed_and_checks_shapes():
    nll, counts = [3.0, 5.0, 2.0, 7.5], [2, 4, 1, 5]
    one = M.perplexity_over_seeds([nll], counts)
    assert one.value == pytest.approx(M.perplexity(nll, counts).value)
    two = M.perplexity_over_seeds([nll, [x * 2 for x in nll]], counts)
    assert two.value == pytest.approx(math.exp(sum(nll) * 3 / (2 * sum(counts))))
    with pytest.raises(ValueError, match="token counts"):
        M.perplexity_over_seeds([nll], counts[:2])


# --------------------------------------------------------------------------------------------
# A benchmark average (GLUE "Avg")


def test_resampled_score_draws_are_the_ones_each_metric_takes_its_ci_from():
    rng = np.random.default_rng(3)
    golds = rng.integers(0, 2, 150)
    preds = np.where(rng.random(150) < 0.75, golds, 1 - golds)
    x = rng.normal(size=150)
    y = x + rng.normal(size=150)
    for score, metric, a, b in [("acc", M.accuracy(preds == golds, seed=5), preds, golds),
                                ("mcc", M.matthews_corrcoef(preds.tolist(), golds.tolist(), seed=5), preds, golds),
                                ("f1", M.f1_binary(preds.tolist(), golds.tolist(), seed=5), preds, golds),
                                ("pearson", M.pearson(x, y, seed=5), x, y)]:
        lo, hi = np.percentile(M.resampled_score(score, a, b, seed=5), [2.5, 97.5])
        assert (lo, hi) == pytest.approx((metric.ci_low, metric.ci_high)), score
    with pytest.raises(ValueError, match="unknown score 'bleu'"):
        M.resampled_score("bleu", preds, golds)


def test_mean_of_scores_is_the_mean_with_a_ci_narrower_than_its_noisiest_part():
    rng = np.random.default_rng(0)
    golds = rng.integers(0, 2, 400)
    preds = np.where(rng.random(400) < 0.8, golds, 1 - golds)
    parts = [("acc", preds, golds, M.accuracy(preds == golds)),
             ("mcc", preds, golds, M.matthews_corrcoef(preds.tolist(), golds.tolist()))]
    avg = M.mean_of_scores(parts, tasks=["a", "b"])
    assert avg.value == pytest.approx((parts[0][3].value + parts[1][3].value) / 2)
    assert avg.ci_low < avg.value < avg.ci_high and avg.n == 800 and avg.extra["tasks"] == ["a", "b"]
    assert avg.ci_high - avg.ci_low < parts[1][3].ci_high - parts[1][3].ci_low  # averaging shrinks the MCC noise
    with pytest.raises(ValueError, match="at least one task"):
        M.mean_of_scores([])


def test_mean_of_scores_counts_an_undefined_correlation_only_when_told():
    rng = np.random.default_rng(1)
    golds = rng.random(200) * 5
    constant = np.full(200, 2.4)  # a model that answers one number: Pearson is undefined
    labels = rng.integers(0, 2, 200)
    parts = [("pearson", constant, golds, M.pearson(constant, golds)), ("acc", labels, labels, M.accuracy(labels == labels))]
    assert math.isnan(parts[0][3].value)
    assert math.isnan(M.mean_of_scores(parts).value)
    avg = M.mean_of_scores(parts, undefined_as=0.0)
    assert avg.value == pytest.approx(0.5) and avg.extra["undefined_as"] == 0.0
    assert avg.ci_low == pytest.approx(0.5) and avg.ci_high == pytest.approx(0.5)  # accuracy 1 in every resample
