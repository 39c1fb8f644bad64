"""The shared (prompt, answer) batcher for decoders (repro.data.text_to_text.prompt_answer_batches):
order, epochs, where the loss falls, and the cut to the context."""

import pytest

from repro.data.objectives import IGNORE_INDEX
from repro.data.text_to_text import prompt_answer_batches


class WordTok:
    """One id per whitespace word (ids from 3), eos 1, pad 0."""

    eos_token_id, pad_token_id = 1, 0

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [self.vocab.setdefault(w, 3 + len(self.vocab)) for w in text.split()]}


PAIRS = [(f"question {i} is", f"answer{i}") for i in range(5)]


def answers_in(batch, tok) -> list[int]:
    """Each row's first supervised token (the answer's id)."""
    return [int(row[row != IGNORE_INDEX][0]) for row in batch["labels"]]


def test_rows_in_order_without_a_seed_and_a_permutation_per_epoch_with_one():
    tok = WordTok()
    in_order = prompt_answer_batches(PAIRS, tok, block=16, batch_size=2)
    ids = [tok(a)["input_ids"][0] for _, a in PAIRS]
    assert answers_in(in_order(0), tok) + answers_in(in_order(1), tok) == ids[:4]
    seeded = prompt_answer_batches(PAIRS, tok, block=16, batch_size=5, seed=3)
    first, second = answers_in(seeded(0), tok), answers_in(seeded(1), tok)
    assert sorted(first) == sorted(ids) and first == second  # every row once per epoch, the same order
    assert answers_in(prompt_answer_batches(PAIRS, tok, 16, 5, seed=3)(0), tok) == first  # seeded: reproducible


def test_the_loss_falls_on_the_answer_and_eos_only_and_long_prompts_keep_their_end():
    tok = WordTok()
    batch = prompt_answer_batches([("a b c d e f g h", "yes")], tok, block=4, batch_size=1)(0)
    yes, h = tok("yes")["input_ids"][0], tok("h")["input_ids"][0]
    labels = batch["labels"][0][batch["labels"][0] != IGNORE_INDEX].tolist()
    assert labels == [yes, tok.eos_token_id]
    assert batch["input_ids"].shape[1] == 4 and batch["input_ids"][0].tolist()[-2:] == [h, yes]
    with pytest.raises(ValueError, match="no \\(prompt, answer\\) pairs"):
        prompt_answer_batches([], tok, block=4, batch_size=1)
