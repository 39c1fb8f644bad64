"""The GLUE pieces shared by GPT-1, BERT and PEFT that read the data mirror: SST-2's held-out
whole sentences, a second test set kept apart from the training pool."""

import pytest

from papers.glue import TASKS, heldout_sentences, load_rows


def _runs(sentence: str) -> set[str]:
    t = sentence.split()
    return {" ".join(t[i:j]) for i in range(len(t)) for j in range(i + 1, len(t) + 1)}


def test_sst2_heldout_sentences_are_whole_and_nothing_inside_them_is_trained_on():
    from repro.data import load

    phrases = [r["sentence"].strip() for r in load("glue/sst2", "train")]
    pool, held = heldout_sentences("sst2", 50, seed=3)
    assert len(held) == 50 and not set(pool) & set(held)
    held_text = {phrases[i] for i in held}
    # whole: no other training phrase contains a held-out sentence as a run of its tokens
    longest = sorted(set(phrases), key=len, reverse=True)[:3000]
    for x in held_text:
        assert not any(x != y and f" {x} " in f" {y} " for y in longest), x
    # no training phrase is a held-out sentence or a run of tokens inside one
    inside = set().union(*(_runs(x) for x in held_text))
    assert not {phrases[i] for i in pool} & inside
    assert len(pool) > 60_000  # 50 sentences take only their own phrases out of 67,349
    assert heldout_sentences("sst2", 50, seed=3) == (pool, held)  # seeded
    assert heldout_sentences("sst2", 50, seed=4)[1] != held


def test_load_rows_scores_dev_then_the_heldout_sentences_and_trains_on_the_pool():
    train, evaluated = load_rows(TASKS["sst2"], 200, 10, seed=0, heldout=30)
    _, held = heldout_sentences("sst2", 30)
    _, dev = load_rows(TASKS["sst2"], 200, 10, seed=0)
    assert evaluated[:10] == dev and len(evaluated) == 40
    held_text = {r["sentence"].strip() for r in evaluated[10:]}
    inside = set().union(*(_runs(x) for x in held_text))
    assert len(train) == 200 and not {r["sentence"].strip() for r in train} & inside
    assert load_rows(TASKS["sst2"], 200, 10, seed=0, heldout=30) == (train, evaluated)


def test_heldout_sentences_name_the_fix_for_a_task_without_phrases_or_too_many():
    with pytest.raises(ValueError, match="pass heldout=0"):
        heldout_sentences("rte", 10)
    with pytest.raises(ValueError, match="held-out sentences asked for"):
        heldout_sentences("sst2", 10**6)
