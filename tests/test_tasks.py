"""The task registry: every registered task renders its templates over real mirror records with no
unfilled placeholders; eval and exemplar pools are disjoint by construction; LAMBADA's context/target
split, AGIEval's exam formats and answer parsing follow the references; mixtures are
examples-proportional with a cap and sample deterministically."""

from __future__ import annotations

import collections
import re

import pytest

from repro.data.resolver import DatasetNotFoundError
from repro.data.tasks import (
    Mixture,
    Task,
    Template,
    agieval_parse_letter,
    agieval_parse_math,
    get_task,
    list_tasks,
    math_equal,
    parse_split,
    register,
    unregister,
)


def _load_or_skip(fn, *args):
    try:
        return fn(*args)
    except DatasetNotFoundError as e:
        pytest.skip(f"mirror file absent: {str(e).splitlines()[0]}")


def _debrace(value):
    """Data may legitimately hold braces (LaTeX); remove them so only template braces could remain."""
    if isinstance(value, str):
        return value.replace("{", "").replace("}", "")
    if isinstance(value, list):
        return [_debrace(v) for v in value]
    return value


def _clean(record):
    return {k: _debrace(v) for k, v in record.items()}


# ---------------------------------------------------------------------------------------------
# Registry contents


def test_registry_has_every_family_the_brief_names():
    names = set(list_tasks())
    expected = {"wikitext2", "ptb", "tinyshakespeare", "webtext", "lambada", "sst2", "cola", "mrpc", "rte",
                "stsb", "wnli", "qnli", "multi30k_en_de", "xsum", "gpt3/two_digit_addition",
                "gpt3/cycle_letters_in_word", "hh_rlhf/helpful-base"}
    expected |= {f"agieval/{s}" for s in ("lsat-ar", "lsat-lr", "lsat-rc", "logiqa-en", "sat-math", "sat-en",
                                          "sat-en-without-passage", "aqua-rat", "gaokao-english", "math")}
    assert expected <= names
    assert "sst2" in list_tasks(cluster="sentiment") and "sst2" not in list_tasks(cluster="nli")
    assert set(list_tasks(cluster="nli")) == {"rte", "wnli", "qnli", "flan/rte", "flan/wnli", "flan/qnli"}


def test_unknown_task_names_close_matches():
    with pytest.raises(KeyError, match="sst2"):
        get_task("sst-2")
    with pytest.raises(KeyError, match="agieval/lsat-lr"):
        get_task("agieval/lsat_lr")


def test_every_task_keeps_eval_and_exemplars_apart_by_declaration():
    for name in list_tasks():
        t = get_task(name)
        assert t.exemplar_split != t.eval_split
        if t.exemplar_split is not None:
            (eb, es), (xb, xs) = parse_split(t.eval_split), parse_split(t.exemplar_split)
            if eb == xb:  # one file: two complementary slices
                assert es.stop is not None and xs.start == es.stop, name
        assert t.kind in {"multiple_choice", "generation", "perplexity", "preference", "regression"}
        if t.kind in ("multiple_choice", "regression"):
            assert "options" in t.template_names or name.startswith(("agieval/", "flan/", "rg/")), name


def test_same_split_exemplars_must_be_disjoint_slices():
    with pytest.raises(ValueError, match="differ"):
        Task("x", "", "generation", dict, (Template("t", "{input}"),), ("em",), "c", "test", "test")
    with pytest.raises(ValueError, match="slice"):
        Task("x", "", "generation", dict, (Template("t", "{input}"),), ("em",), "c", "test", "test[-5:]")
    rows = [{"input": str(i), "target": str(i), "references": [str(i)]} for i in range(10)]
    t = Task("x", "", "generation", dict, (Template("t", "{input}"),), ("em",), "c", "test[:-3]", "test[-4:]",
             loader=lambda split: rows)
    with pytest.raises(ValueError, match="overlaps"):
        t.eval_pool()


# ---------------------------------------------------------------------------------------------
# Templates over real records


@pytest.mark.parametrize("name", list_tasks())
def test_templates_render_without_unfilled_braces(name):
    task = get_task(name)
    records = _load_or_skip(lambda: list(task.examples(limit=3)))
    assert records, f"{name}: no eval records"
    exemplars = []
    if task.kind not in ("perplexity", "preference") and (task.exemplar_split or task.exemplar_source):
        pool = _load_or_skip(task.exemplar_pool)
        exemplars = [_clean(pool[i]) for i in range(min(2, len(pool)))]
    for template in task.templates:
        for record in map(_clean, records):
            for shots in ([[], exemplars] if exemplars else [[]]):
                text = task.assemble(template, shots, record)
                assert text.strip(), (name, template.name)
                assert "{" not in text and "}" not in text, (name, template.name, text[:300])
            if task.kind in ("multiple_choice", "regression"):
                conts = template.continuations(record)
                assert len(conts) >= 2 and 0 <= record["label"] < len(conts)
                assert all("{" not in c for c in conts)
            elif task.kind == "generation":
                assert record["references"] and "{" not in template.answer(record)


def test_canonical_records_carry_their_kind_fields():
    sst2 = get_task("sst2")
    rec = next(sst2.examples())
    assert rec["choices"] == ["negative", "positive"] and rec["label"] in (0, 1) and rec["uid"] == "validation:0"
    ppl = get_task("wikitext2")
    docs = list(ppl.examples(limit=2))
    assert docs[0]["text"].startswith("= Robert <unk> =") and len(docs[0]["text"]) > 1000
    assert docs[1]["text"].startswith("= ")  # a document is one article
    hh = next(get_task("hh_rlhf/helpful-base").examples())
    assert hh["prefix_chosen"].endswith("\n\nAssistant:") and hh["chosen"].startswith(" ")
    stsb = next(get_task("stsb").examples())
    assert stsb["choices"] == ["0", "1", "2", "3", "4", "5"] and stsb["label"] == round(stsb["score"])


# ---------------------------------------------------------------------------------------------
# Splits, held-out slices


def test_single_split_tasks_hold_out_a_fixed_recorded_slice():
    lam = get_task("lambada")
    assert (lam.eval_split, lam.exemplar_split) == ("test[:-153]", "test[-153:]")
    ev, ex = lam.eval_pool(), lam.exemplar_pool()
    assert (len(ev), len(ex)) == (5000, 153)
    assert set(ev.positions).isdisjoint(ex.positions) and max(ev.positions) < min(ex.positions)
    q = get_task("qnli")  # the mirror has no QNLI train
    assert (len(q.eval_pool()), len(q.exemplar_pool())) == (5000, 463)
    add = get_task("gpt3/two_digit_addition")
    assert (len(add.eval_pool()), len(add.exemplar_pool())) == (1900, 100)
    assert {r["uid"] for r in add.exemplar_pool()[:]}.isdisjoint(add.eval_pool().uid(i) for i in range(1900))


def test_lambada_context_and_target_split():
    lam = get_task("lambada")
    for rec in lam.examples(limit=20):
        assert rec["input"] + " " + rec["target"] == rec["text"]
        assert rec["target"] and " " not in rec["target"]
        template = lam.template(0)
        assert template.render(rec) == rec["input"] and template.answer(rec) == " " + rec["target"]
    assert lam.scorer == "greedy"


# ---------------------------------------------------------------------------------------------
# AGIEval formats (papers.md §12.3)


def test_agieval_few_shot_prompt_matches_the_documented_format():
    task = get_task("agieval/lsat-lr")
    demos = list(task.exemplar_pool())
    assert len(demos) == 3 and [d["uid"] for d in demos] == [f"few_shot_prompts/lsat-lr:{k}" for k in (1, 2, 3)]
    item = next(task.examples())
    prompt = task.assemble(task.template("few_shot"), demos, item)
    assert prompt.startswith("Here are the answers for the problems in the exam.\nProblem 1.   Consumer advocate:")
    assert prompt.count("Choose from the following options:    (A)") == 4
    assert f"The answer is therefore {demos[0]['gold']}\n\nProblem 2.   " in prompt
    assert "Explanation for Problem" not in prompt
    tail = (f"Problem 4.   {item['passage']} {item['question']}\n"
            f"Choose from the following options:    {' '.join(item['options'])}\n")
    assert prompt.endswith(tail)
    cot = task.assemble(task.template("few_shot_cot"), demos, item)
    assert "\nExplanation for Problem 1:   The consumer advocate" in cot
    assert re.search(r"Explanation for Problem 3:   .*\nThe answer is therefore [A-E]\n\nProblem 4\.   ", cot, re.S)
    assert "\n\n" not in demos[2]["explanation"]  # blank lines folded as the official loader does


def test_agieval_zero_shot_and_variants():
    task = get_task("agieval/lsat-ar")
    item = next(task.examples())
    zs = task.template("zero_shot").render(item)
    assert zs.startswith(item["passage"] + "Q: " + item["question"] + " Answer Choices: (A)")
    assert zs.endswith("\nA: Among A through E, the answer is")
    four = next(get_task("agieval/sat-math").examples())
    assert get_task("agieval/sat-math").template("zero_shot").render(four).endswith("Among A through D, the answer is")
    cot = task.template("zero_shot_cot")
    assert cot.render(item).endswith("\nLet's think step by step.")
    assert cot.stage2 == "Therefore, among A through E, the answer is"
    # SAT-En without passage reuses SAT-En's demonstrations with the passages removed
    wp = get_task("agieval/sat-en-without-passage")
    demos = list(wp.exemplar_pool())
    assert all(d["passage"] == "" for d in demos)
    assert wp.assemble(wp.template("few_shot"), demos, next(wp.examples())).split("\n")[1].startswith("Problem 1.    ")
    # MATH (cloze): 4 demonstrations, answers after "The answer is therefore"
    m = get_task("agieval/math")
    mdemos = list(m.exemplar_pool())
    mprompt = m.assemble(m.template("few_shot"), mdemos, next(m.examples()))
    assert len(mdemos) == 4 and "The answer is therefore [2,5)\n\nProblem 2.   " in mprompt
    assert "\nProblem 5.   " in mprompt
    assert m.template("zero_shot").render(next(m.examples())).endswith("\nA: The answer is")


def test_agieval_never_scores_a_demonstration():
    for s in ("lsat-lr", "lsat-rc", "logiqa-en", "sat-en"):
        task = get_task(f"agieval/{s}")
        demo_inputs = {d["input"] for d in task.exemplar_pool()}
        assert not demo_inputs & {r["input"] for r in task.examples()}


def test_agieval_answer_parsing():
    assert agieval_parse_letter(" (C) because ...", "zero_shot") == "C"
    assert agieval_parse_letter("The answer is therefore D", "few_shot") == "D"
    assert agieval_parse_letter("Blah A\nso the answer is (B)", "few_shot") == "B"
    assert agieval_parse_letter("Answer is A maybe\nThe answer is therefore E\n", "few_shot_cot") == "E"
    assert agieval_parse_letter("nothing here", "few_shot") == ""
    assert agieval_parse_math("so we get $\\boxed{\\frac{1}{2}}$.", "zero_shot") == "\\frac{1}{2}"
    assert agieval_parse_math("The answer is therefore [2,5)", "few_shot") == "[2,5)"
    assert agieval_parse_math("Reasoning\nThe answer is therefore 7\n", "few_shot_cot") == "7"
    assert agieval_parse_math("x = 12.", "zero_shot") == "12"
    assert math_equal("\\dfrac12", "\\frac{1}{2}") and math_equal("$5$", "5") and math_equal(".5", "0.5")
    assert not math_equal("3", "4")


# ---------------------------------------------------------------------------------------------
# Mixtures


@pytest.fixture
def toy_tasks():
    sizes = {"toy/a": 10, "toy/b": 100, "toy/c": 5000}
    made = []
    for name, n in sizes.items():
        rows = {"train": [{"input": f"{name} {i}", "target": "x"} for i in range(n)],
                "test": [{"input": f"{name} eval {i}", "target": "x"} for i in range(5)]}
        made.append(register(Task(name, "", "generation", lambda ex: {**ex, "references": [ex["target"]]},
                                  (Template("t", "{input}"),), ("em",), "toy", "test", "train",
                                  loader=rows.__getitem__), replace=True))
    yield made
    for t in made:
        unregister(t.name)


def test_mixture_rates_are_examples_proportional_with_a_cap(toy_tasks):
    capped = Mixture("m", ["toy/a", "toy/b", "toy/c"], cap=500)
    assert capped.sizes() == {"toy/a": 10, "toy/b": 100, "toy/c": 5000}
    assert capped.mixing_rates() == pytest.approx({"toy/a": 10 / 610, "toy/b": 100 / 610, "toy/c": 500 / 610})
    uncapped = Mixture("m", ["toy/a", "toy/b", "toy/c"], cap=None).mixing_rates()
    assert uncapped["toy/c"] == pytest.approx(5000 / 5110)
    explicit = Mixture("m", ["toy/a", "toy/b"], rates={"toy/a": 1, "toy/b": 3}).mixing_rates()
    assert explicit == pytest.approx({"toy/a": 0.25, "toy/b": 0.75})


def test_mixture_sample_is_deterministic_and_never_draws_eval_items(toy_tasks):
    mix = Mixture("m", ["toy/a", "toy/b", "toy/c"], cap=500)
    draws = mix.sample(3000, seed=1)
    again = mix.sample(3000, seed=1)
    assert [(t.name, r["uid"]) for t, r in draws] == [(t.name, r["uid"]) for t, r in again]
    other = mix.sample(3000, seed=2)
    assert [(t.name, r["uid"]) for t, r in draws] != [(t.name, r["uid"]) for t, r in other]
    counts = collections.Counter(t.name for t, _ in draws)
    for name, rate in mix.mixing_rates().items():
        assert abs(counts[name] / 3000 - rate) < 0.04
    assert all(r["uid"].startswith("train:") for _, r in draws)
    # without replacement within an epoch: toy/a's first 10 draws are 10 distinct examples
    a_uids = [r["uid"] for t, r in draws if t.name == "toy/a"]
    assert len(set(a_uids[:10])) == 10


def test_mixture_of_registered_tasks_uses_their_training_side():
    mix = Mixture("glue_small", ["rte", "wnli"], cap=1000)
    assert mix.sizes() == {"rte": 2490, "wnli": 635}
    assert mix.mixing_rates()["rte"] == pytest.approx(1000 / 1635)
    assert all(r["uid"].startswith("train:") for _, r in mix.sample(20, seed=0))
    with pytest.raises(ValueError, match="no training split"):
        Mixture("bad", ["hh_rlhf/helpful-base"])
