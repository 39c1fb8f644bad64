"""Training objectives: invariants (property tests) and the papers' rates (statistical tests)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.data.objectives import (
    IGNORE_INDEX,
    bert_style_denoising,
    deshuffle,
    fit_prompt_completion,
    mask_tokens_mlm,
    nsp_pairs,
    pack_causal_lm,
    prefix_lm,
    prompt_completion_batch,
    random_spans_noise_mask,
    seq2seq_pairs,
    span_corruption,
)

FAST = settings(max_examples=60, deadline=None)

# a toy vocabulary: 0 pad, 1 eos, 2 [CLS], 3 [SEP], 4 [MASK], real tokens 5.., T5-style sentinels
# at the top (<extra_id_0> = 999, <extra_id_1> = 998, ...)
PAD, EOS, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIALS = [PAD, EOS, CLS, SEP, MASK]
VOCAB = 1000
SENTINELS = [VOCAB - 1 - i for i in range(100)]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tokens_strategy(max_len: int = 300):
    return st.lists(st.integers(5, VOCAB - 101), max_size=max_len)


# ------------------------------------------------------------------------------ causal LM packing


@FAST
@given(docs=st.lists(st.lists(st.integers(5, 50), max_size=30), max_size=12), block_size=st.integers(1, 16))
def test_pack_causal_lm_shifts_and_totals(docs, block_size):
    inputs, labels = pack_causal_lm(docs, block_size, EOS)
    stream = [t for d in docs for t in (*d, EOS)]
    n_blocks = max(0, (len(stream) - 1) // block_size)
    assert inputs.shape == labels.shape == (n_blocks, block_size)
    used = n_blocks * block_size
    # every input's next token is its label, across block boundaries too; only the tail is dropped
    assert inputs.flatten().tolist() == stream[:used]
    assert labels.flatten().tolist() == stream[1 : used + 1]
    assert len(stream) - 1 - used < block_size


def test_pack_causal_lm_example():
    inputs, labels = pack_causal_lm([[10, 11, 12], [13]], block_size=2, eos_id=EOS)
    assert inputs.tolist() == [[10, 11], [12, EOS]]
    assert labels.tolist() == [[11, 12], [EOS, 13]]


# ------------------------------------------------------------------------------ BERT masked LM


def _mlm_batch(seed: int = 0, rows: int = 64, length: int = 512) -> torch.Tensor:
    g = gen(seed)
    ids = torch.randint(5, VOCAB, (rows, length), generator=g)
    ids[:, 0] = CLS
    ids[:, length // 2] = SEP
    ids[:, -1] = SEP
    for r in range(0, rows, 4):  # some padded rows
        ids[r, length - 50 :] = PAD
    return ids


def _mlm(ids, seed, **kw):
    return mask_tokens_mlm(ids, vocab_size=VOCAB, mask_id=MASK, special_ids=[CLS, SEP, EOS], pad_id=PAD,
                           generator=gen(seed), **kw)


def test_mlm_rates_match_bert():
    ids = _mlm_batch()
    original = ids.clone()
    inputs, labels = _mlm(ids, seed=1)
    assert torch.equal(ids, original)  # pure: the argument is not modified

    special = torch.isin(ids, torch.tensor(SPECIALS))
    selected = labels != IGNORE_INDEX
    assert not (selected & special).any()
    assert (selected.sum() / (~special).sum()).item() == pytest.approx(0.15, abs=0.003)

    n = selected.sum().item()
    masked = (inputs == MASK) & selected
    changed = (inputs != ids) & selected & ~masked
    kept = (inputs == ids) & selected
    assert masked.sum().item() / n == pytest.approx(0.8, abs=0.03)
    assert changed.sum().item() / n == pytest.approx(0.1, abs=0.02)
    # "kept" also holds the few random draws that hit the original token (1 in ~995)
    assert kept.sum().item() / n == pytest.approx(0.1, abs=0.02)
    # random replacements never produce special tokens
    assert not torch.isin(inputs[changed], torch.tensor(SPECIALS)).any()
    # labels carry the original token where selected, -100 elsewhere; unselected input untouched
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])


def test_mlm_is_deterministic_given_the_seed():
    ids = _mlm_batch(rows=8, length=128)
    a, b, c = _mlm(ids, seed=7), _mlm(ids, seed=7), _mlm(ids, seed=8)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@FAST
@given(tokens=st.lists(st.integers(0, 60), min_size=1, max_size=80), seed=st.integers(0, 2**31))
def test_mlm_selects_round_15_percent_of_maskable_tokens(tokens, seed):
    ids = torch.tensor(tokens)
    inputs, labels = mask_tokens_mlm(ids, vocab_size=61, mask_id=MASK, special_ids=[CLS, SEP], pad_id=PAD,
                                     generator=gen(seed))
    maskable = ~torch.isin(ids, torch.tensor([PAD, CLS, SEP, MASK]))
    selected = labels != IGNORE_INDEX
    n = int(maskable.sum())
    assert int(selected.sum()) == (max(1, round(0.15 * n)) if n else 0)
    assert not (selected & ~maskable).any()
    assert torch.equal(inputs[~selected], ids[~selected])


# ------------------------------------------------------------------------------ BERT NSP


def _nsp_docs(n_docs: int = 80, n_sentences: int = 30, seed: int = 0) -> list[list[list[int]]]:
    """Token = doc * 10_000 + position in doc, so a token says where it came from."""
    g = gen(seed)
    docs = []
    for d in range(n_docs):
        pos, doc = 0, []
        for _ in range(n_sentences):
            length = int(torch.randint(4, 16, (), generator=g))
            doc.append([d * 10_000 + 10 + p for p in range(pos, pos + length)])
            pos += length
        docs.append(doc)
    return docs


def test_nsp_pairs_structure_and_balance():
    docs = _nsp_docs()
    examples = nsp_pairs(docs, gen(0), max_len=64, cls_id=CLS, sep_id=SEP)
    assert len(examples) > 500
    for ex in examples:
        ids, types = ex.input_ids.tolist(), ex.token_type_ids.tolist()
        assert len(ids) == len(types) <= 64
        assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2
        first_sep = ids.index(SEP)
        a, b = ids[1:first_sep], ids[first_sep + 1 : -1]
        assert a and b
        assert types == [0] * (first_sep + 1) + [1] * (len(b) + 1)
        doc_a, doc_b = {t // 10_000 for t in a}, {t // 10_000 for t in b}
        assert len(doc_a) == 1 and len(doc_b) == 1
        if ex.is_next:  # B is the continuation of A in the same document
            assert doc_a == doc_b and min(b) > max(a)
        else:
            assert doc_a != doc_b
    is_next = sum(ex.is_next for ex in examples) / len(examples)
    assert is_next == pytest.approx(0.5, abs=0.05)  # ~550 examples: sd 0.02


def test_nsp_pairs_deterministic_and_needs_two_docs():
    docs = _nsp_docs(n_docs=5, n_sentences=10)
    a = nsp_pairs(docs, gen(3), 32, CLS, SEP)
    b = nsp_pairs(docs, gen(3), 32, CLS, SEP)
    assert [(x.input_ids.tolist(), x.is_next) for x in a] == [(x.input_ids.tolist(), x.is_next) for x in b]
    with pytest.raises(ValueError):
        nsp_pairs(docs[:1], gen(0), 32, CLS, SEP)


# ------------------------------------------------------------------------------ T5 span corruption


def _merge(inputs: list[int], targets: list[int]) -> list[int]:
    """Put each span from the targets back in place of its sentinel in the inputs."""
    assert inputs[-1] == EOS and targets[-1] == EOS
    sentinel_set = set(SENTINELS)
    spans: dict[int, list[int]] = {}
    current = None
    for t in targets[:-1]:
        if t in sentinel_set:
            current = spans.setdefault(t, [])
        else:
            current.append(t)
    out: list[int] = []
    for t in inputs[:-1]:
        out.extend(spans.pop(t) if t in sentinel_set else [t])
    assert not spans  # every target span was used exactly once
    return out


@settings(max_examples=100, deadline=None)
@given(
    tokens=tokens_strategy(),
    seed=st.integers(0, 2**31),
    density=st.sampled_from([0.15, 0.3, 0.5]),
    mean_span=st.sampled_from([1.0, 3.0, 8.0]),
)
def test_span_corruption_reconstructs_the_original(tokens, seed, density, mean_span):
    inputs, targets = span_corruption(tokens, generator=gen(seed), noise_density=density,
                                      mean_span_length=mean_span, sentinel_ids=SENTINELS, eos_id=EOS)
    assert _merge(inputs.tolist(), targets.tolist()) == tokens
    # sentinels are used in order, <extra_id_0> first
    used = [t for t in inputs.tolist() if t in set(SENTINELS)]
    assert used == SENTINELS[: len(used)]
    assert [t for t in targets.tolist() if t in set(SENTINELS)] == used


def test_span_corruption_example_shape():
    inputs, targets = span_corruption(list(range(10, 30)), generator=gen(0), sentinel_ids=SENTINELS, eos_id=EOS)
    # 20 tokens: round(3.0) noise tokens in round(3 / 3) = 1 span, which T5 puts at the end
    assert inputs.tolist()[-2:] == [SENTINELS[0], EOS]
    assert targets.tolist()[0] == SENTINELS[0] and len(targets) == 1 + 3 + 1


def test_span_corruption_rates_match_t5():
    g = gen(0)
    noise = total = spans = 0
    for _ in range(400):
        length = int(torch.randint(100, 600, (), generator=g))
        inputs, targets = span_corruption(torch.arange(5, 5 + length), generator=g,
                                          sentinel_ids=SENTINELS, eos_id=EOS)
        n_spans = int(torch.isin(targets, torch.tensor(SENTINELS)).sum())
        noise += len(targets) - 1 - n_spans
        spans += n_spans
        total += length
    assert noise / total == pytest.approx(0.15, abs=0.003)
    assert noise / spans == pytest.approx(3.0, abs=0.1)


@FAST
@given(length=st.integers(0, 400), seed=st.integers(0, 2**31))
def test_random_spans_noise_mask_counts(length, seed):
    mask = random_spans_noise_mask(length, generator=gen(seed))
    assert mask.shape == (length,)
    if length < 2:
        assert not mask.any()
        return
    num_noise = min(max(round(length * 0.15), 1), length - 1)
    assert int(mask.sum()) == num_noise
    assert not mask[0] and mask[-1]  # non-noise first, noise last, as T5
    starts = int((mask[1:] & ~mask[:-1]).sum())
    assert starts == min(max(round(num_noise / 3.0), 1), num_noise, length - num_noise)


def test_too_few_sentinels_is_an_error():
    with pytest.raises(ValueError):
        span_corruption(list(range(5, 505)), generator=gen(0), sentinel_ids=SENTINELS[:3], eos_id=EOS)


# ------------------------------------------------------------------------------ other T5 objectives


@FAST
@given(tokens=tokens_strategy(100), seed=st.integers(0, 2**31))
def test_prefix_lm_splits_the_sequence(tokens, seed):
    inputs, targets = prefix_lm(tokens, generator=gen(seed), eos_id=EOS)
    assert inputs[-1] == EOS and targets[-1] == EOS
    assert inputs[:-1].tolist() + targets[:-1].tolist() == tokens
    if len(tokens) >= 2:
        assert len(inputs) > 1 and len(targets) > 1


def test_prefix_lm_split_point_is_spread_out():
    splits = {len(prefix_lm(list(range(5, 15)), generator=gen(s))[0]) for s in range(200)}
    assert splits == set(range(1, 10))


@FAST
@given(tokens=tokens_strategy(100), seed=st.integers(0, 2**31))
def test_deshuffle_is_a_permutation(tokens, seed):
    inputs, targets = deshuffle(tokens, generator=gen(seed))
    assert sorted(inputs.tolist()) == sorted(tokens)
    assert targets.tolist() == tokens


def test_deshuffle_shuffles():
    tokens = list(range(5, 25))
    assert any(deshuffle(tokens, generator=gen(s))[0].tolist() != tokens for s in range(3))


def test_bert_style_denoising_rates():
    tokens = torch.randint(5, VOCAB - 100, (100_000,), generator=gen(0))
    inputs, targets = bert_style_denoising(tokens, generator=gen(1), mask_id=SENTINELS[0], vocab_size=VOCAB,
                                           special_ids=SPECIALS, eos_id=EOS)
    assert torch.equal(targets[:-1], tokens) and targets[-1] == EOS and inputs[-1] == EOS
    inputs = inputs[:-1]
    changed = inputs != tokens
    masked = inputs == SENTINELS[0]
    assert changed.float().mean().item() == pytest.approx(0.15, abs=0.005)
    assert (masked.sum() / changed.sum()).item() == pytest.approx(0.9, abs=0.02)
    assert not torch.isin(inputs[changed & ~masked], torch.tensor(SPECIALS)).any()


# ------------------------------------------------------------------------------ seq2seq batches


@FAST
@given(
    pairs=st.lists(st.tuples(st.lists(st.integers(5, 50), max_size=20), st.lists(st.integers(5, 50), max_size=20)),
                   min_size=1, max_size=6),
    max_len=st.integers(1, 24),
)
def test_seq2seq_pairs_teacher_forcing(pairs, max_len):
    src, tgt = [p[0] for p in pairs], [p[1] for p in pairs]
    start = 7
    batch = seq2seq_pairs(src, tgt, pad_id=PAD, max_len=max_len, eos_id=EOS, decoder_start_id=start)
    ids, attn, dec, labels = (batch[k] for k in ("input_ids", "attention_mask", "decoder_input_ids", "labels"))
    assert ids.shape == attn.shape and dec.shape == labels.shape
    for i, (s, t) in enumerate(zip(src, tgt)):
        s_exp = s[: max_len - 1] + [EOS]
        t_exp = t[: max_len - 1] + [EOS]
        n, m = len(s_exp), len(t_exp)
        assert ids[i, :n].tolist() == s_exp and (ids[i, n:] == PAD).all()
        assert attn[i, :n].all() and not attn[i, n:].any()
        assert labels[i, :m].tolist() == t_exp and (labels[i, m:] == IGNORE_INDEX).all()
        # decoder input = labels shifted right behind the start token
        assert dec[i, 0] == start and dec[i, 1:m].tolist() == t_exp[:-1]
        assert (dec[i, m:] == PAD).all()


def test_seq2seq_pairs_defaults_and_no_double_eos():
    batch = seq2seq_pairs([[5, 6, EOS]], [[8, EOS]], pad_id=PAD, max_len=8, eos_id=EOS)
    assert batch["input_ids"].tolist() == [[5, 6, EOS]]
    assert batch["labels"].tolist() == [[8, EOS]]
    assert batch["decoder_input_ids"].tolist() == [[PAD, 8]]  # T5 starts decoding from pad
    with pytest.raises(ValueError):
        seq2seq_pairs([[5]], [], pad_id=PAD, max_len=8, eos_id=EOS)


@FAST
@given(pairs=st.lists(st.tuples(st.lists(st.integers(5, 50), min_size=1, max_size=20),
                                st.lists(st.integers(5, 50), min_size=1, max_size=20)), min_size=1, max_size=6),
       mask=st.booleans())
def test_prompt_completion_batch_puts_the_loss_on_the_completion_only(pairs, mask):
    batch = prompt_completion_batch(pairs, pad_id=PAD, attention_mask=mask)
    ids, labels = batch["input_ids"], batch["labels"]
    assert ("attention_mask" in batch) == mask
    for i, (prompt, completion) in enumerate(pairs):
        full = prompt + completion
        n = len(full) - 1
        assert ids[i, :n].tolist() == full[:-1] and (ids[i, n:] == PAD).all()
        scored = labels[i][labels[i] != IGNORE_INDEX].tolist()
        assert scored == completion  # exactly the completion, in order
        # each scored position predicts the next token of the row (teacher forcing)
        where = (labels[i] != IGNORE_INDEX).nonzero().flatten().tolist()
        assert all(labels[i, t] == full[t + 1] for t in where) and where[0] == len(prompt) - 1
        if mask:
            assert batch["attention_mask"][i].tolist() == [1] * n + [0] * (ids.shape[1] - n)
        # a row does not depend on the rows beside it, only on the batch's width
        alone = prompt_completion_batch([(prompt, completion)], pad_id=PAD)
        assert ids[i, :n].tolist() == alone["input_ids"][0].tolist()
        assert labels[i, :n].tolist() == alone["labels"][0].tolist()


@FAST
@given(prompt=st.lists(st.integers(5, 50), min_size=1, max_size=60),
       completion=st.lists(st.integers(5, 50), min_size=1, max_size=60), block=st.integers(2, 40))
def test_fit_prompt_completion_keeps_the_prompts_end_and_the_completions_start(prompt, completion, block):
    p, c = fit_prompt_completion(prompt, completion, block)
    assert len(p) + len(c) <= block + 1 and p and c
    assert c == completion[: len(c)] and p == prompt[len(prompt) - len(p):]
    if len(prompt) + len(completion) <= block + 1 and len(completion) <= block // 2:
        assert (p, c) == (prompt, completion)  # a pair that fits is left whole


def test_prompt_completion_batch_rejects_an_empty_prompt_or_batch():
    with pytest.raises(ValueError, match="prompt"):
        prompt_completion_batch([([], [5, 6])], pad_id=PAD)
    with pytest.raises(ValueError, match="empty"):
        prompt_completion_batch([], pad_id=PAD)


def test_objectives_do_not_touch_global_rng():
    torch.manual_seed(0)
    before = torch.rand(3)
    torch.manual_seed(0)
    span_corruption(list(range(5, 100)), generator=gen(1), sentinel_ids=SENTINELS, eos_id=EOS)
    mask_tokens_mlm(torch.arange(5, 100), vocab_size=VOCAB, mask_id=MASK, special_ids=[], generator=gen(1))
    nsp_pairs(_nsp_docs(3, 5), gen(1), 32, CLS, SEP)
    prefix_lm([5, 6, 7], generator=gen(1))
    deshuffle([5, 6, 7], generator=gen(1))
    assert torch.equal(torch.rand(3), before)
