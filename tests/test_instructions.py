"""FLAN/T0 instruction tasks in the registry (repro.data.instructions): templates, OPTIONS,
reasoning-gym determinism and scoring, held-out clusters, examples-proportional mixing."""

import importlib
import random

import pytest

from repro.data import instructions as I
from repro.data.tasks import get_task, list_tasks

CLASSIFICATION = [f"flan/{n}" for n, spec in I.FLAN_DATASETS.items() if spec[2] is not None]
# cheap families (the heavier ones generate in seconds; the registry covers them all alike)
RG_SAMPLE = ["rg/gcd", "rg/count_bits", "rg/syllogism", "rg/letter_counting", "rg/family_relationships"]


@pytest.mark.parametrize("name", [f"flan/{n}" for n in I.FLAN_DATASETS] + RG_SAMPLE)
def test_ten_distinct_templates_some_turned_around(name):
    task = get_task(name)
    prompts = [t.prompt for t in task.templates]
    assert len(task.templates) >= 10
    assert len(set(prompts)) == len(prompts) and len(set(task.template_names)) == len(prompts)
    turned = I.turned_templates(task)
    assert 1 <= len(turned) <= 3  # FLAN: up to three per dataset turn the task around
    assert len(I.scored_templates(task)) >= 7


@pytest.mark.parametrize("name", CLASSIFICATION + RG_SAMPLE)
def test_options_suffix_lists_exactly_the_answer_options(name):
    task = get_task(name)
    for record in task.examples(limit=5):
        for tname in I.scored_templates(task):
            template = task.template(tname)
            prompt = template.render(record)
            options = I.options_in(prompt)
            assert options == template.choice_list(record) and len(options) >= 2, (tname, prompt)
            # rank classification scores exactly the listed strings
            assert [c.strip() for c in template.continuations(record)] == options
            assert template.answer(record).strip() == options[int(record["label"])]


def test_turned_templates_write_the_input_not_a_label():
    task = get_task("flan/sst2")
    record = next(task.examples())
    word = ("negative", "positive")[record["label"]]
    for tname in I.turned_templates(task):
        t = task.template(tname)
        assert word in t.render(record) and t.answer(record).strip() == record["sentence"].strip()
    rte = get_task("flan/rte")
    for record in rte.examples(limit=4):
        follows = "does not follow" not in rte.template("write_entailed").render(record)
        assert follows == (record["label"] == 0)  # RTE: label 0 = entailment


def test_reasoning_gym_is_deterministic_for_a_seed():
    rows = [dict(r) for r in get_task("rg/gcd").loader("test")[:20]]
    I.rg_dataset.cache_clear()
    I._rg_entries.cache_clear()
    again = I._rg_rows("gcd")("test")[:20]
    assert [(r["question"], r["choices"], r["label"]) for r in rows] == \
           [(r["question"], r["choices"], r["label"]) for r in again]
    other_seed = I._rg_rows("gcd")("train")[:20]
    assert [r["question"] for r in rows] != [r["question"] for r in other_seed]


@pytest.mark.parametrize("name", RG_SAMPLE)
def test_reasoning_gym_scorer_accepts_gold_rejects_wrong(name):
    task = get_task(name)
    for record in task.examples(limit=10):
        gold = record["choices"][record["label"]]
        assert task.correct(gold, record)
        wrong = [c for i, c in enumerate(record["choices"]) if i != record["label"]]
        assert wrong and not any(task.correct(w, record) for w in wrong)
        assert not task.correct("certainly not an answer", record)


def test_reasoning_gym_eval_items_are_not_training_items():
    task = get_task("rg/count_bits")
    train = {r["question"] for r in task.pool("train")}
    assert len(task.eval_pool()) > 200 and not any(r["question"] in train for r in task.examples())


def test_reasoning_gym_clusters_are_the_packages_own_grouping():
    import reasoning_gym

    assert importlib.metadata.version("reasoning-gym") == I.RG_VERSION
    for family, cluster in I.RG_CLUSTERS.items():
        assert get_task(f"rg/{family}").cluster == cluster
        dataset_cls = reasoning_gym.factory.DATASETS[family][0]
        assert dataset_cls.__module__.split(".")[1] == cluster, family


def test_held_out_cluster_is_absent_from_the_training_mixture():
    clusters = ["sentiment", "paraphrase", "arithmetic"]
    mixture = I.flan_mixture(clusters, held_out=["nli"])
    draws = mixture.sample(500, seed=3)
    assert {t.cluster for t, _ in draws} == set(clusters)
    assert not any(t.cluster == "nli" or t.name in I.flan_tasks("nli") for t in mixture.tasks)
    with pytest.raises(ValueError, match="held-out"):
        I.flan_mixture(["nli", "sentiment"], held_out=["nli"])


def test_mixing_rates_are_examples_proportional_with_a_cap():
    mixture = I.flan_mixture(["sentiment", "paraphrase", "logic"], cap=1500)
    sizes = mixture.sizes()
    assert sizes["flan/sst2"] > sizes["flan/mrpc"] > 1500 > sizes["rg/syllogism"]  # capped, capped, not
    capped = {n: min(k, 1500) for n, k in sizes.items()}
    total = sum(capped.values())
    for name, rate in mixture.mixing_rates().items():
        assert rate == pytest.approx(capped[name] / total)
    counts = {}
    for t, _ in mixture.sample(4000, seed=0):
        counts[t.name] = counts.get(t.name, 0) + 1
    for name, rate in mixture.mixing_rates().items():
        assert counts[name] / 4000 == pytest.approx(rate, abs=0.04)


def test_flan_pair_formats():
    task = get_task("flan/sst2")
    record = next(task.examples())
    rng = random.Random(0)
    seen = {I.flan_pair(task, record, rng)[0] for _ in range(60)}
    assert len(seen) >= 8  # a template drawn per example
    plain, answer = I.flan_pair(task, record, rng, "no_template")
    named, answer2 = I.flan_pair(task, record, rng, "dataset_name")
    assert plain.startswith(record["sentence"]) and "OPTIONS:" in plain and answer == answer2
    assert named.startswith("[SST-2]") and named.endswith(plain)


def test_p3_files_are_tasks_of_t0_training_types():
    names = [n for n in list_tasks() if n.startswith("p3/")]
    if not names:
        pytest.skip("the P3 sample is not in the data mirror")
    assert len(names) == len(I.p3_stems()) >= 250
    for name in names[::25]:  # every registered file splits into a training part and a held-out part
        task = get_task(name)
        assert len(task.pool(task.train_split)) >= I.P3_HELDOUT and len(task.eval_pool()) == I.P3_HELDOUT
    held_out_types = {"nli", "coreference", "sentence_completion", "word_sense"}
    assert not {get_task(n).cluster for n in names} & held_out_types
    task = get_task("p3/ag_news_classify")
    record = next(task.examples())
    assert task.cluster == "topic_classification" and "<|endoftext|>" not in record["target"]
    assert task.template(0).render(record).startswith(record["input"])
