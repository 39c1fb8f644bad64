"""GPT-3: the task generator follows the published definitions and never writes an evaluated item;
the harness prompts have the released files' format; the smoke scale runs end to end and yields
every metric the claims read; the claims' verdicts follow the measured numbers."""

import random
import re

import numpy as np
import pytest

import papers
from harness.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, STATUSES, deltas
from harness.metrics import MetricResult, accuracy, mean_with_ci, paired_bootstrap_diff
from harness.results import read_run
from harness.runner import run_paper
from harness.seeds import across_seeds
from papers.gpt3 import (
    EVAL_STEMS,
    GPT3,
    R2_MIN,
    SCALES,
    SLUG,
    constant_answer,
    model_config,
    register_eval_tasks,
    task_name,
    train_config,
)
from repro.data import gpt3_tasks as g3
from repro.data.tasks import get_task

pytestmark = pytest.mark.gpt3

ARITH_RE = re.compile(r"\n\nQ: What is (\d+) (plus|minus|times) (\d+)\?\n\nA:")
THREE_OPS_RE = re.compile(r"\n\nQ: What is \(([1-9]) ([-+*]) ([1-9])\) ([-+*]) ([1-9])\?\n\nA:")
SUM_RE = re.compile(r"\n\nQ: What is the sum of the digits of the number (\d+)\?\n\nA:")
SCRAMBLE_RE = re.compile(r"\n([^\n]+) =")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
WORDS = ["establishment", "lantern", "kitchen", "mirrored", "quietly", "whispering", "wonderful", "tremble",
         "abcabcab", "reasonable", "haaaat"]


@pytest.fixture(scope="module")
def exclusion():
    return g3.Exclusion.from_files()


@pytest.fixture(scope="module")
def generator(exclusion):
    # the training word list deliberately holds evaluated target words too: the generator must drop them
    evaluated = sorted(exclusion.words)[:300]
    return g3.Generator(WORDS + evaluated, exclusion, seed=0)


def check_arithmetic(stem: str, context: str, completion: str) -> None:
    label, op, digits = g3.ARITHMETIC[stem]
    if op == "three_ops":
        m = THREE_OPS_RE.fullmatch(context)
        assert m, context
        a, o1, b, o2, c = m.groups()
        assert completion == f" {OPS[o2](OPS[o1](int(a), int(b)), int(c))}"
    elif op == "sum_of_digits":
        m = SUM_RE.fullmatch(context)
        assert m and 0 <= int(m[1]) < 10**digits, context
        assert completion == f" {sum(map(int, m[1]))}"
    else:
        m = ARITH_RE.fullmatch(context)
        assert m and m[2] == op, context
        a, b = int(m[1]), int(m[3])
        assert 0 <= a < 10**digits and 0 <= b < 10**digits  # uniform on [0, 10^n), no padding
        assert m[1] == str(a) and m[3] == str(b)
        assert completion == f" {a + b if op == 'plus' else a - b if op == 'minus' else a * b}"


def check_scramble(stem: str, context: str, completion: str) -> None:
    m = SCRAMBLE_RE.fullmatch(context)
    assert m and completion.startswith(" ") and completion[1:].isalpha(), (context, completion)
    s, w = m[1], completion[1:]
    lo, hi = g3.WORD_LENGTHS[stem]
    assert lo <= len(w) <= hi
    if stem == "cycle_letters_in_word":
        assert s != w and any(w[k:] + w[:k] == s for k in range(1, len(w)))
    elif stem == "mid_word_1_anagrams":
        assert s != w and s[0] == w[0] and s[-1] == w[-1] and sorted(s) == sorted(w)
    elif stem == "mid_word_2_anagrams":
        assert s[:2] == w[:2] and s[-2:] == w[-2:] and sorted(s) == sorted(w)
    elif stem == "random_insertion_in_word":
        assert s[0::2] == w and len(s) == 2 * len(w) - 1 and set(s[1::2]) <= set(g3.RI_CHARS)
    else:
        assert s == w[::-1]


def test_generated_items_follow_the_definitions(generator):
    for stem in g3.FAMILIES:
        for item in generator.items(stem, 300):
            (check_scramble if stem in g3.SCRAMBLE else check_arithmetic)(stem, item["context"], item["completion"])


def test_checks_accept_the_released_files_and_reject_wrong_items():
    # the same checks pass on OpenAI's own items (so the generator's format is the files')
    for stem in g3.FAMILIES:
        for row in g3.load_file(stem)[:300]:
            (check_scramble if stem in g3.SCRAMBLE else check_arithmetic)(stem, row["context"], row["completion"])
    with pytest.raises(AssertionError):
        check_arithmetic("two_digit_addition", "\n\nQ: What is 12 plus 7?\n\nA:", " 20")
    with pytest.raises(AssertionError):
        check_arithmetic("two_digit_addition", "\n\nQ: What is 120 plus 7?\n\nA:", " 127")
    with pytest.raises(AssertionError):
        check_scramble("mid_word_1_anagrams", "\nkitchen =", " kitchen")  # the identity is no anagram
    with pytest.raises(AssertionError):
        check_scramble("reversed_words", "\nnehctki =", " kitchen")


def test_scramble_transformations_on_one_word():
    rng = random.Random(0)
    word = "establishment"
    assert g3.scramble("reversed_words", word, rng) == "tnemhsilbatse"
    for _ in range(50):
        a1 = g3.scramble("mid_word_1_anagrams", word, rng)
        assert a1 != word and a1[0] == "e" and a1[-1] == "t" and sorted(a1) == sorted(word)
        a2 = g3.scramble("mid_word_2_anagrams", word, rng)
        assert a2[:2] == "es" and a2[-2:] == "nt" and sorted(a2) == sorted(word)
        cl = g3.scramble("cycle_letters_in_word", word, rng)
        assert cl != word and cl in word + word
        ri = g3.scramble("random_insertion_in_word", word, rng)
        assert ri[::2] == word and all(c in g3.RI_CHARS for c in ri[1::2])


def test_no_generated_item_is_an_evaluated_one(exclusion, generator):
    evaluated = {stem: {r["context"] for r in g3.load_file(stem)} for stem in g3.FAMILIES}
    all_contexts = set().union(*evaluated.values())
    assert all_contexts <= exclusion.contexts
    for stem in g3.FAMILIES:
        items = generator.items(stem, 4000)
        assert not {it["context"] for it in items} & all_contexts, stem
        if stem in g3.SCRAMBLE:
            assert not {it["completion"].strip() for it in items} & exclusion.words
    # the exclusion does work: without it, 2D+ (10,000 possible questions, 2,000 evaluated) collides
    free = g3.Generator(WORDS, g3.Exclusion(), seed=0).items("two_digit_addition", 4000)
    assert {it["context"] for it in free} & evaluated["two_digit_addition"]
    # and the word list drops evaluated target words
    assert not set(generator.words["reversed_words"]) & exclusion.words
    assert "abcabcab" in generator.words["reversed_words"] and set(WORDS) & exclusion.words


def test_word_list_is_frequency_ranked_and_excludes():
    text = "the lantern lantern lantern kitchen kitchen Capital quietly"
    assert g3.word_list([text], exclude={"kitchen"}, top=5) == ["lantern", "quietly"]


def test_generation_is_deterministic_for_a_seed(exclusion):
    a = g3.Generator(WORDS, exclusion, seed=1)
    b = g3.Generator(WORDS, exclusion, seed=1)
    c = g3.Generator(WORDS, exclusion, seed=2)
    for stem in ("three_digit_subtraction", "mid_word_2_anagrams", "random_insertion_in_word"):
        assert a.items(stem, 50) == b.items(stem, 50)
        assert a.items(stem, 50) != c.items(stem, 50)
        assert a.documents(stem, 5, 8) == b.documents(stem, 5, 8)


def test_documents_hold_varying_numbers_of_examples(generator):
    docs = generator.documents("two_digit_addition", 200, max_demos=6)
    counts = {doc.count("Q: What is") for doc in docs}
    assert counts == set(range(1, 8))  # 1 + j items, j = 0..6
    assert all(not d.startswith("\n") and d.endswith(tuple("0123456789")) for d in docs)


def test_harness_prompts_have_the_released_format_and_match_training_documents(generator):
    pools = {stem: generator.items(stem, 4, stream="exemplars", unique=True) for stem in EVAL_STEMS}
    with pytest.raises(ValueError, match="distinct"):  # 5 usable words have 5 reversals, not 50
        generator.items("reversed_words", 50, unique=True)
    register_eval_tasks(pools)
    for stem in ("two_digit_addition", "reversed_words"):
        task = get_task(task_name(stem))
        template = task.template(0)
        exemplars = list(task.exemplar_pool()[:3])
        record = task.eval_pool()[0]
        file_row = g3.load_file(stem)[0]
        assert record["context"] == file_row["context"] and record["target"] == file_row["completion"].strip()
        prompt = task.assemble(template, exemplars, record)
        # a k-shot prompt + the gold answer is exactly a training document with k demonstrations
        items = [(e["context"], " " + e["target"]) for e in exemplars] + [(record["context"], file_row["completion"])]
        assert prompt + file_row["completion"] == g3.document(items)
        zero = task.assemble(template, [], record)
        assert zero == file_row["context"].lstrip("\n")  # zero-shot: the file's context as is
        assert task.correct("-55", {"target": "-55"}) and not task.correct("55", {"target": "-55"})
    # exemplars come from the generated pool, never from the file
    task = get_task(task_name("two_digit_addition"))
    file_contexts = {r["context"] for r in g3.load_file("two_digit_addition")}
    assert not {e["context"] for e in task.exemplar_pool()} & file_contexts


def test_architecture_and_budget_are_gpt3s():
    for scale, s in SCALES.items():
        assert len(s.sizes) >= 4
        assert s.local_window < s.block_size  # banding matters: a full prompt exceeds the band
        steps = {train_config(s, size, 0).steps for size in s.sizes}
        assert len(steps) == 1  # one token budget for every size
        for size in s.sizes:
            c = model_config(s, size, 500)
            assert c.kind == "decoder" and c.attention_pattern == "alternating_banded"
            assert c.norm_placement == "pre" and c.positions == "learned" and c.activation.startswith("gelu")
            assert c.local_window == s.local_window and c.max_seq_len == s.block_size
        cfg = train_config(s, s.sizes[0], 0)
        assert cfg.schedule == "cosine" and cfg.min_lr_ratio == 0.1 and cfg.betas == (0.9, 0.95)
        assert cfg.weight_decay == 0.1 and cfg.grad_clip == 1.0


def _synthetic_measured(labels, few_minus_zero_grows: bool, floor: float = 0.01) -> dict:
    """Metrics shaped like GPT3.measure's, with accuracies chosen by hand."""
    n = 400
    measured = {}

    def acc(p, salt):
        rng = random.Random(salt)
        return accuracy([rng.random() < p for _ in range(n)])

    for i, m in enumerate(labels):
        gap = 0.1 * (i + 1) if few_minus_zero_grows else 0.4 - 0.1 * i
        zero, one, few = 0.1, 0.1 + gap / 2, 0.1 + gap
        measured[f"{m}/avg/zero/acc"] = acc(zero, f"{m}z")
        measured[f"{m}/avg/one/acc"] = acc(one, f"{m}o")
        measured[f"{m}/avg/few/acc"] = acc(few, f"{m}f")
        measured[f"{m}/gap/few_minus_zero"] = paired_bootstrap_diff(measured[f"{m}/avg/few/acc"].items,
                                                                    measured[f"{m}/avg/zero/acc"].items)
    measured["floor/avg/acc"] = acc(floor, "floor")
    return measured


def _over_seeds(per_seed: dict[int, dict]) -> dict:
    """The runner's merge: every metric over the seeds that measured it."""
    keys = next(iter(per_seed.values()))
    return {k: across_seeds(k, {seed: m[k] for seed, m in per_seed.items()}) for k in keys}


def test_claims_are_a_pure_function_of_the_scale():
    fresh = {scale: [(c.id, c.predicate.keys(), deltas(c.predicate)) for c in GPT3().claims(scale)] for scale in SCALES}
    paper = GPT3()
    for scale in ("cpu", "smoke", "gpu", "cpu"):
        assert [(c.id, c.predicate.keys(), deltas(c.predicate)) for c in paper.claims(scale)] == fresh[scale]
    for scale, s in SCALES.items():
        top = s.sizes[-1].label
        assert any(k.startswith(f"{top}/") for _, keys, _ in fresh[scale] for k in keys)
    assert [i for i, _, _ in fresh["cpu"]] == [f"G3-C{i}" for i in range(1, 7)]


def test_every_comparison_states_a_positive_delta_and_its_source():
    for scale in SCALES:
        for claim in GPT3().claims(scale):
            stated = deltas(claim.predicate)
            assert stated and all(d is not None and d > 0 for d in stated), (scale, claim.id, stated)
            assert claim.delta_source.strip(), claim.id
    # in the metric's own units: accuracy deltas are fractions, well below 1
    c1 = next(c for c in GPT3().claims("cpu") if c.id == "G3-C1")
    assert all(d < 0.2 for d in deltas(c1.predicate))


def test_constant_answer_is_the_most_frequent_target():
    assert constant_answer(["12", "7", "12", "-3"]) == "12"
    assert constant_answer(["b", "a"]) == "a"  # a tie goes to the first in sorted order


def test_floor_metrics_pair_item_by_item_with_the_gated_metrics():
    """The constant-answer floor is scored on the very items (and item ids) of the metrics the
    gated claims prefer, from a job shaped like size_job's (every answer wrong here)."""
    from harness.scenarios import Scenario, prepare
    from papers.gpt3 import eval_targets, floor_metrics, size_metrics

    s = SCALES["smoke"]
    register_eval_tasks({stem: [] for stem in EVAL_STEMS})

    def entry(task: str, limit: int) -> dict:
        uids = [it.record["uid"] for it in prepare(Scenario(task=task, limit=limit))]
        return {"uids": uids, "correct": [False] * len(uids), "samples": []}

    ev = {f"{stem}/{k}": entry(task_name(stem), s.eval_items) for stem in EVAL_STEMS for k in ("zero", "one", "few")}
    ev["lambada"] = entry("lambada", s.lambada_items)
    job = {"eval": ev, "params": 1000, "flops_per_token": 6000, "tokens": 100, "val_losses": [4.0, 3.9]}
    label = s.sizes[-1].label
    measured = {**size_metrics(label, 0, job, True, s), **floor_metrics(job, eval_targets())}
    for floor, key in (("floor/avg/acc", f"{label}/avg/few/acc"), ("floor/arith/2D/acc", f"{label}/arith/2D/few/acc"),
                       ("floor/RI/acc", f"{label}/RI/few/acc"), ("floor/lambada/acc", f"{label}/lambada/acc")):
        assert measured[floor].extra["item_ids"] == measured[key].extra["item_ids"], floor
        assert 0 < measured[floor].value <= 1  # the most frequent answer is right at least once
    # a model that gets nothing right is below its floor: G3-C1 cannot be read
    claims = {c.id: c for c in GPT3().claims("smoke")}
    gate = claims["G3-C1"].predicate.condition
    assert gate.evaluate(measured).status == NOT_REPRODUCED


def test_claim_verdicts_follow_the_numbers():
    labels = [s.label for s in SCALES["cpu"].sizes]
    claims = {c.id: c for c in GPT3().claims("cpu")}
    c1 = claims["G3-C1"]
    assert c1.check(_synthetic_measured(labels, True)).status == REPRODUCED
    # the same numbers but a gap that shrinks with size: the claim fails
    assert c1.check(_synthetic_measured(labels, False)).status == NOT_REPRODUCED
    c4 = claims["G3-C4"]
    top = labels[-1]
    rng = random.Random(0)
    easy = {f"{top}/{x}/few/acc": accuracy([rng.random() < 0.1 for _ in range(300)]) for x in ("CL", "A1", "A2")}
    measured = {**easy, f"{top}/RW/few/acc": accuracy([False] * 300), "threshold/near_zero": MetricResult.exact("t", 0.05),
                f"{top}/RI/few/acc": accuracy([rng.random() < 0.6 for _ in range(300)]),
                "floor/RI/acc": accuracy([True] + [False] * 299)}
    assert c4.check(measured).status == REPRODUCED
    measured[f"{top}/RI/few/acc"] = accuracy([rng.random() < 0.03 for _ in range(300)])  # RI hardest, above floor
    assert c4.check(measured).status == NOT_REPRODUCED
    measured[f"{top}/RI/few/acc"] = accuracy([True] + [False] * 299)  # RI at its floor: "easiest" cannot be read
    assert c4.check(measured).status == INCONCLUSIVE


def test_g3_c1_waits_for_a_model_above_the_constant_answer_floor():
    """At the cpu scale every size got <= 5 of the 1,500 pooled items right: below the floor a
    comparison counts lucky items, so the claim is read only once the largest model beats it."""
    labels = [s.label for s in SCALES["cpu"].sizes]
    c1 = next(c for c in GPT3().claims("cpu") if c.id == "G3-C1")
    assert c1.check(_synthetic_measured(labels, True, floor=0.01)).status == REPRODUCED
    verdict = c1.check(_synthetic_measured(labels, True, floor=0.6))  # the largest few-shot model is at 0.5
    assert verdict.status == INCONCLUSIVE and "condition does not hold" in verdict.explanation
    # over three seeds too: a model at its floor reads inconclusive however the settings compare
    per_seed = {}
    for seed in range(3):
        m = _synthetic_measured(labels, True, floor=0.6)
        for k, v in list(m.items()):  # paired by item within a seed, as measure() gives them
            if v.items is not None:
                v.extra["item_ids"] = [f"i{j}" for j in range(len(v.items))]
        per_seed[seed] = m
    assert c1.check(_over_seeds(per_seed)).status == INCONCLUSIVE


def _fit(seed: int, labels: list[str], r2: float) -> dict:
    """One seed's G3-C5 metrics as measure() emits them: held-out losses per size (paired windows)
    falling with size, and the loss-vs-compute fit's R^2 as a plain estimate (no interval)."""
    rng = np.random.default_rng(seed)
    ids = [f"window{j}" for j in range(32)]
    m = {f"{label}/val_loss": mean_with_ci("val_loss", (4.0 - 0.25 * i + rng.normal(0, 0.05, 32)).tolist(), item_ids=ids)
         for i, label in enumerate(labels)}
    m["power_law/r2"] = MetricResult("r2", r2, len(labels), None, None)
    m["threshold/r2"] = MetricResult.exact("threshold", R2_MIN)
    return m


def test_g3_c5_reads_r2_over_seeds_not_one_fit():
    labels = [s.label for s in SCALES["cpu"].sizes]
    c5 = next(c for c in GPT3().claims("cpu") if c.id == "G3-C5")
    one = _over_seeds({0: _fit(0, labels, 0.99)})
    assert not one["power_law/r2"].has_ci  # one fit is a point, not an interval
    assert c5.check(one).status == INCONCLUSIVE  # one training seed never decides
    good = _over_seeds({seed: _fit(seed, labels, r2) for seed, r2 in zip(range(3), (0.95, 0.97, 0.96))})
    assert good["power_law/r2"].has_ci and good["power_law/r2"].ci_low < 0.96 < good["power_law/r2"].ci_high
    assert c5.check(good).status == REPRODUCED
    poor = _over_seeds({seed: _fit(seed, labels, r2) for seed, r2 in zip(range(3), (0.55, 0.62, 0.6))})
    assert c5.check(poor).status == NOT_REPRODUCED
    # R^2 straddling the bar over three seeds: not decided on a point estimate either
    split = _over_seeds({seed: _fit(seed, labels, r2) for seed, r2 in zip(range(3), (0.8, 0.99, 0.93))})
    assert c5.check(split).status == INCONCLUSIVE


def test_gpt3_smoke_run_records_metrics_and_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    paper = papers.get_paper("gpt3")
    record = read_run(run_paper(paper, "smoke", root=tmp_path, quiet=True))
    labels = [s.label for s in SCALES["smoke"].sizes]
    for claim in paper.claims("smoke"):  # every metric a claim reads was measured
        missing = [k for k in claim.predicate.keys() if k not in record.metrics]
        assert not missing, (claim.id, missing)
    for m in labels:
        for stem in EVAL_STEMS:
            for setting in ("zero", "one", "few"):
                metric = record.metrics[f"{m}/{SLUG[stem]}/{setting}/acc"]
                assert metric["n"] == SCALES["smoke"].eval_items and metric["ci_low"] <= metric["value"] <= metric["ci_high"]
        assert record.metrics[f"{m}/lambada/acc"]["n"] == SCALES["smoke"].lambada_items
        assert record.metrics[f"{m}/sst2/k0/acc"]["n"] == SCALES["smoke"].sst2_items
    assert record.metrics[f"{labels[-1]}/2Dadd/few/acc"]["extra"]["reported_id"] == "arith_2Dadd_fewshot"
    assert {c["id"] for c in record.claims} == {f"G3-C{i}" for i in range(1, 7)}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    assert record.configs["few_k"] and 0.45 < record.configs["corpus"]["task_token_fraction"] < 0.55
    assert [f["name"] for f in record.extra["plots"]] == ["sweep", "compute_and_shots"]  # declared; the report draws them
