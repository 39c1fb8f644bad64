"""Pre-training and fine-tuning objectives as pure functions over token ids.

Each function turns token ids into (inputs, targets) for one paper's objective. Randomness comes
only from the ``torch.Generator`` argument, so a result is a function of (arguments, generator
state): seed the generator per example (or per shard) for reproducible data. Defaults are the
papers' values:

- :func:`pack_causal_lm`           GPT-1/2/3: documents joined by eos, cut into fixed blocks.
- :func:`mask_tokens_mlm`          BERT: 15% of tokens selected, 80% [MASK] / 10% random / 10% kept.
- :func:`nsp_pairs`                BERT: segment pairs, 50% actual next segment, 50% random.
- :func:`span_corruption`          T5: 15% noise in spans of mean length 3, one sentinel per span.
- :func:`prefix_lm`                T5's prefix LM (inputs = random prefix, targets = the rest).
- :func:`deshuffle`                T5's deshuffling (inputs = shuffled tokens, targets = original).
- :func:`bert_style_denoising`     T5's "BERT-style" variant (15% iid: 90% mask / 10% random;
                                   targets = the whole original sequence).
- :func:`seq2seq_pairs`            teacher-forced encoder-decoder batch (T5 / Transformer).
- :func:`prompt_completion_batch`  its decoder-only counterpart: prompt + completion in one row,
                                   the loss on the completion only (FLAN, SFT, PEFT, T5's LM rows);
                                   :func:`fit_prompt_completion` cuts a pair to a context.

Labels use -100 (:data:`IGNORE_INDEX`) for positions without a loss, as
``torch.nn.functional.cross_entropy`` and ``transformers`` expect.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch

__all__ = [
    "IGNORE_INDEX",
    "pack_causal_lm",
    "mask_tokens_mlm",
    "NspExample",
    "nsp_pairs",
    "random_spans_noise_mask",
    "span_corruption",
    "prefix_lm",
    "deshuffle",
    "bert_style_denoising",
    "seq2seq_pairs",
    "fit_prompt_completion",
    "prompt_completion_batch",
]

IGNORE_INDEX = -100

Tensor = torch.Tensor


# --------------------------------------------------------------------------------------------
# small helpers on the generator (python-style draws, but from torch's seeded stream)


def _uniform(generator: torch.Generator) -> float:
    return float(torch.rand((), generator=generator))


def _randint(generator: torch.Generator, low: int, high: int) -> int:
    """Uniform integer in [low, high], both ends included (like ``random.randint``)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _as_1d_long(tokens: Tensor | Sequence[int]) -> Tensor:
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    if tokens.dim() != 1:
        raise ValueError(f"expected a 1-D token sequence, got shape {tuple(tokens.shape)}")
    return tokens


def _append(tokens: Tensor, token_id: int | None) -> Tensor:
    if token_id is None:
        return tokens
    return torch.cat([tokens, tokens.new_tensor([token_id])])


def _allowed_random_ids(vocab_size: int, excluded: Iterable[int | None]) -> Tensor:
    """The ids a "random token" replacement may draw: the vocabulary minus ``excluded``."""
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    ids = [i for i in excluded if i is not None and 0 <= i < vocab_size]
    if ids:
        allowed[torch.tensor(ids)] = False
    candidates = allowed.nonzero().squeeze(1)
    if candidates.numel() == 0:
        raise ValueError("no token id is left to draw random replacements from")
    return candidates


# --------------------------------------------------------------------------------------------
# GPT: causal LM packing


def pack_causal_lm(docs: Iterable[Sequence[int]], block_size: int, eos_id: int) -> tuple[Tensor, Tensor]:
    """Pack documents into ``(inputs, labels)`` blocks of shape ``(n_blocks, block_size)``.

    As GPT-2/nanoGPT: every document is followed by ``eos_id`` (so the model learns where a
    document ends and never attends across a boundary without seeing one), the stream is cut into
    windows of ``block_size + 1`` tokens, ``inputs = window[:-1]``, ``labels = window[1:]``.
    Consecutive windows share their boundary token (stride ``block_size``): the last label of one
    block is the first input of the next, so every token but the first is predicted exactly once.
    The ragged tail that cannot fill a block is dropped.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    stream = torch.tensor(list(itertools.chain.from_iterable((*d, eos_id) for d in docs)), dtype=torch.long)
    n_blocks = max(0, (stream.numel() - 1) // block_size)
    used = stream[: n_blocks * block_size + 1]
    if n_blocks == 0:
        empty = torch.empty(0, block_size, dtype=torch.long)
        return empty, empty.clone()
    return used[:-1].view(n_blocks, block_size), used[1:].view(n_blocks, block_size)


# --------------------------------------------------------------------------------------------
# BERT: masked LM and next sentence prediction


def mask_tokens_mlm(
    input_ids: Tensor,
    *,
    vocab_size: int,
    mask_id: int,
    special_ids: Iterable[int],
    generator: torch.Generator,
    mlm_prob: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
    pad_id: int | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's masked-LM corruption. Returns ``(inputs, labels)``, same shape as ``input_ids``.

    Per sequence (last dimension) ``max(1, round(mlm_prob * n))`` of its ``n`` maskable tokens are
    selected, as BERT's ``create_pretraining_data.py`` does (a fixed count rather than iid coin
    flips). Special tokens, pad and [MASK] itself are never selected. Of the selected tokens
    ``mask_frac`` (80%) become ``mask_id``, ``random_frac`` (10%) a random non-special id, and the
    rest (10%) stay unchanged, so the model cannot tell which visible tokens it is scored on.
    ``labels`` holds the original id at selected positions and -100 elsewhere.
    """
    if not 0.0 <= mlm_prob <= 1.0:
        raise ValueError(f"mlm_prob must be in [0, 1], got {mlm_prob}")
    if mask_frac < 0 or random_frac < 0 or mask_frac + random_frac > 1.0:
        raise ValueError(f"need mask_frac, random_frac >= 0 and sum <= 1, got {mask_frac}, {random_frac}")
    ids = torch.as_tensor(input_ids, dtype=torch.long)
    if ids.dim() == 0:
        raise ValueError("input_ids must have at least one dimension")
    rows = ids.reshape(-1, ids.shape[-1])

    never = [*special_ids, mask_id, pad_id]
    never_ids = torch.tensor([i for i in never if i is not None], dtype=torch.long)
    maskable = ~torch.isin(rows, never_ids)

    # Exactly k_r tokens per row r: rank uniform scores, non-maskable ones pushed past the end.
    n_maskable = maskable.sum(dim=1)
    k = torch.round(n_maskable.double() * mlm_prob).long().clamp(min=1)
    k = torch.minimum(k, n_maskable)
    scores = torch.rand(rows.shape, generator=generator).masked_fill(~maskable, 2.0)
    ranks = scores.argsort(dim=1).argsort(dim=1)
    selected = ranks < k.unsqueeze(1)

    # One uniform per token decides mask / random / keep; drawn for all tokens so the stream
    # of random numbers does not depend on the content.
    action = torch.rand(rows.shape, generator=generator)
    to_mask = selected & (action < mask_frac)
    to_random = selected & (action >= mask_frac) & (action < mask_frac + random_frac)
    pool = _allowed_random_ids(vocab_size, never)
    random_ids = pool[torch.randint(pool.numel(), rows.shape, generator=generator)]

    inputs = rows.clone()
    inputs[to_mask] = mask_id
    inputs[to_random] = random_ids[to_random]
    labels = torch.where(selected, rows, torch.full_like(rows, IGNORE_INDEX))
    return inputs.view(ids.shape), labels.view(ids.shape)


class NspExample(NamedTuple):
    input_ids: Tensor  # [CLS] A [SEP] B [SEP]
    token_type_ids: Tensor  # 0 for [CLS] A [SEP], 1 for B [SEP]
    is_next: bool  # True when B is the segment that actually follows A


def nsp_pairs(
    sentences_by_doc: Sequence[Sequence[Sequence[int]]],
    generator: torch.Generator,
    max_len: int,
    cls_id: int,
    sep_id: int,
    *,
    nsp_prob: float = 0.5,
    short_seq_prob: float = 0.1,
) -> list[NspExample]:
    """BERT's next-sentence-prediction pairs, following ``create_instances_from_document``.

    For each document, consecutive sentences are gathered into a chunk until it reaches the target
    length (``max_len - 3``; with probability ``short_seq_prob`` a shorter random target, so the
    model also sees short inputs). A random prefix of the chunk's sentences is segment A. With
    probability ``nsp_prob`` B is a run of sentences from a random *other* document and the chunk's
    unused sentences are put back; otherwise B is the rest of the chunk. The pair is truncated to
    fit ``[CLS] A [SEP] B [SEP]`` by trimming the longer segment at a random end. Examples come out
    in document order: shuffle them downstream. Needs at least two non-empty documents.

    One deviation from BERT's script: there, a chunk of a single sentence (every chunk, when the
    short target is shorter than a sentence) always gets a random B, which skews the classes
    (39-47% IsNext on the short documents of our tests, against the paper's 50%). Here such a chunk with an IsNext
    draw takes the following sentence as B, and a document's last sentence left alone in a chunk
    is dropped (decided before the coin is drawn). Every example is then IsNext with probability
    exactly ``1 - nsp_prob``.
    """
    max_tokens = max_len - 3  # room for [CLS], [SEP], [SEP]
    if max_tokens < 2:
        raise ValueError(f"max_len={max_len} is too small for [CLS] A [SEP] B [SEP]")
    docs = [[list(s) for s in doc if len(s) > 0] for doc in sentences_by_doc]
    docs = [d for d in docs if d]
    if len(docs) < 2:
        raise ValueError("next sentence prediction needs at least two non-empty documents")

    examples = []
    for doc_index, doc in enumerate(docs):
        target_len = max_tokens
        if _uniform(generator) < short_seq_prob:
            target_len = _randint(generator, 2, max_tokens)
        chunk: list[list[int]] = []
        chunk_len = 0
        i = 0
        while i < len(doc):
            chunk.append(doc[i])
            chunk_len += len(doc[i])
            if i == len(doc) - 1 or chunk_len >= target_len:
                if len(chunk) == 1 and i == len(doc) - 1:
                    break  # a lone last sentence has no next sentence (see the docstring)
                is_next = _uniform(generator) >= nsp_prob
                if is_next and len(chunk) == 1:  # B = the following sentence
                    i += 1
                    chunk.append(doc[i])
                a_end = _randint(generator, 1, len(chunk) - 1) if len(chunk) >= 2 else 1
                tokens_a = [t for s in chunk[:a_end] for t in s]
                if not is_next:
                    tokens_b = _random_segment(docs, doc_index, target_len - len(tokens_a), generator)
                    i -= len(chunk) - a_end  # put the unused sentences back for the next chunk
                else:
                    tokens_b = [t for s in chunk[a_end:] for t in s]
                _truncate_pair(tokens_a, tokens_b, max_tokens, generator)
                input_ids = [cls_id, *tokens_a, sep_id, *tokens_b, sep_id]
                token_types = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
                examples.append(
                    NspExample(torch.tensor(input_ids), torch.tensor(token_types), is_next)
                )
                chunk, chunk_len = [], 0
            i += 1
    return examples


def _random_segment(docs: list[list[list[int]]], exclude: int, target_len: int, generator) -> list[int]:
    """Sentences from a random document other than ``exclude``, from a random start, until
    ``target_len`` tokens (at least one sentence)."""
    other = _randint(generator, 0, len(docs) - 2)
    other += other >= exclude  # uniform over the other documents
    doc = docs[other]
    tokens: list[int] = []
    for sentence in doc[_randint(generator, 0, len(doc) - 1) :]:
        tokens.extend(sentence)
        if len(tokens) >= target_len:
            break
    return tokens


def _truncate_pair(tokens_a: list[int], tokens_b: list[int], max_tokens: int, generator) -> None:
    """Trim the longer segment, from a random end, until both fit (in place, as BERT)."""
    while len(tokens_a) + len(tokens_b) > max_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        # BERT trims the front sometimes too, so the model does not learn that a segment always
        # starts at a sentence boundary
        if _uniform(generator) < 0.5:
            del longer[0]
        else:
            longer.pop()


# --------------------------------------------------------------------------------------------
# T5: denoising objectives on a 1-D token sequence


def random_spans_noise_mask(
    length: int,
    *,
    generator: torch.Generator,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
) -> Tensor:
    """T5's ``random_spans_noise_mask``: a boolean mask with ``round(length * noise_density)``
    noise tokens in ``round(noise / mean_span_length)`` spans.

    The sequence alternates non-noise / noise spans, starting with non-noise (so it always ends
    with a noise span, as in T5); span lengths are uniformly random compositions. Degenerate cases
    as T5: at least one noise token and one non-noise token, at least one span; a sequence of
    length < 2 gets no noise. We also cap the spans at the non-noise count (T5 assumes it).
    """
    if length < 2 or noise_density <= 0.0:
        return torch.zeros(length, dtype=torch.bool)
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_span_length), 1)
    num_nonnoise = length - num_noise
    num_spans = min(num_spans, num_noise, num_nonnoise)
    noise_lengths = _random_segmentation(num_noise, num_spans, generator)
    nonnoise_lengths = _random_segmentation(num_nonnoise, num_spans, generator)
    lengths = torch.stack([nonnoise_lengths, noise_lengths], dim=1).reshape(-1)
    is_noise = torch.tensor([False, True]).repeat(num_spans)
    return is_noise.repeat_interleave(lengths)


def _random_segmentation(num_items: int, num_segments: int, generator: torch.Generator) -> Tensor:
    """Split ``num_items`` into ``num_segments`` non-empty parts, uniformly over compositions."""
    cuts = torch.randperm(num_items - 1, generator=generator)[: num_segments - 1] + 1
    bounds = torch.cat([torch.tensor([0]), cuts.sort().values, torch.tensor([num_items])])
    return bounds.diff()


def span_corruption(
    tokens: Tensor | Sequence[int],
    *,
    generator: torch.Generator,
    noise_density: float = 0.15,
    mean_span_length: float = 3.0,
    sentinel_ids: Sequence[int],
    eos_id: int,
) -> tuple[Tensor, Tensor]:
    """T5's span corruption. Returns 1-D ``(inputs, targets)``.

    Each noise span (see :func:`random_spans_noise_mask`) is replaced in ``inputs`` by one
    sentinel, ``sentinel_ids[i]`` for the i-th span (pass ``<extra_id_0>, <extra_id_1>, ...``);
    ``targets`` is, for each span, its sentinel followed by the dropped tokens:

        tokens   Thank you for inviting me to your party last week
        inputs   Thank you <X> me to your party <Y> week </s>
        targets  <X> for inviting <Y> last </s>

    Both end with ``eos_id`` and the targets carry no final sentinel: that is what T5's code does
    (seqio appends EOS to each feature), although the paper's Figure 2 shows a closing ``<Z>``.
    """
    tokens = _as_1d_long(tokens)
    mask = random_spans_noise_mask(
        tokens.numel(), generator=generator, noise_density=noise_density, mean_span_length=mean_span_length
    )
    starts = mask & ~torch.cat([mask.new_zeros(1), mask[:-1]])  # first token of each noise span
    num_spans = int(starts.sum())
    sentinels = torch.as_tensor(sentinel_ids, dtype=torch.long).reshape(-1)
    if num_spans > sentinels.numel():
        raise ValueError(f"{num_spans} noise spans but only {sentinels.numel()} sentinel ids")
    if num_spans == 0:  # too short to corrupt
        return _append(tokens.clone(), eos_id), _append(tokens[:0], eos_id)
    sentinels = sentinels[:num_spans]

    # inputs: keep non-noise tokens; the first token of each span becomes its sentinel
    inputs = tokens.clone()
    inputs[starts] = sentinels
    inputs = inputs[~mask | starts]

    # targets: every noise token, each span preceded by its sentinel
    noise_tokens, noise_starts = tokens[mask], starts[mask]
    positions = torch.arange(noise_tokens.numel()) + noise_starts.long().cumsum(0)
    targets = torch.empty(noise_tokens.numel() + num_spans, dtype=torch.long)
    targets[positions] = noise_tokens
    targets[positions[noise_starts] - 1] = sentinels
    return _append(inputs, eos_id), _append(targets, eos_id)


def prefix_lm(
    tokens: Tensor | Sequence[int], *, generator: torch.Generator, eos_id: int | None = None
) -> tuple[Tensor, Tensor]:
    """T5's prefix-LM objective: ``inputs = tokens[:k]``, ``targets = tokens[k:]``.

    ``k`` is uniform in ``[1, len - 1]`` (T5's ``random_prefix_noise_mask``), so both sides are
    non-empty whenever ``len >= 2``; a single token goes to the targets. T5 appends EOS to both
    sides: pass ``eos_id`` to do the same.
    """
    tokens = _as_1d_long(tokens)
    n = tokens.numel()
    split = _randint(generator, min(1, n - 1), n - 1) if n >= 1 else 0
    return _append(tokens[:split], eos_id), _append(tokens[split:], eos_id)


def deshuffle(
    tokens: Tensor | Sequence[int], *, generator: torch.Generator, eos_id: int | None = None
) -> tuple[Tensor, Tensor]:
    """T5's deshuffling objective: ``inputs`` = the tokens in a uniformly random order,
    ``targets`` = the original sequence. Pass ``eos_id`` to append EOS to both, as T5 does."""
    tokens = _as_1d_long(tokens)
    shuffled = tokens[torch.randperm(tokens.numel(), generator=generator)]
    return _append(shuffled, eos_id), _append(tokens.clone(), eos_id)


def bert_style_denoising(
    tokens: Tensor | Sequence[int],
    *,
    generator: torch.Generator,
    mask_id: int,
    vocab_size: int,
    noise_density: float = 0.15,
    random_frac: float = 0.1,
    special_ids: Iterable[int] = (),
    eos_id: int | None = None,
) -> tuple[Tensor, Tensor]:
    """T5's "BERT-style" objective for an encoder-decoder (paper section 3.3.1, Table 3).

    Each token is corrupted independently with probability ``noise_density`` (T5's
    ``iid_noise_mask``); a corrupted token becomes a random token with probability ``random_frac``
    and ``mask_id`` otherwise (T5's ``noise_token_to_random_token_or_sentinel``: 90% / 10%, with
    ``<extra_id_0>`` as the mask). ``targets`` is the whole original sequence. Random tokens are
    drawn from the vocabulary minus ``special_ids`` (T5 skips its 3 reserved ids: pass
    pad/eos/unk). Pass ``eos_id`` to append EOS to both sides.
    """
    tokens = _as_1d_long(tokens)
    noise = torch.rand(tokens.shape, generator=generator) < noise_density
    use_random = torch.rand(tokens.shape, generator=generator) < random_frac
    pool = _allowed_random_ids(vocab_size, special_ids)
    random_ids = pool[torch.randint(pool.numel(), tokens.shape, generator=generator)]
    inputs = torch.where(noise, torch.where(use_random, random_ids, torch.full_like(tokens, mask_id)), tokens)
    return _append(inputs, eos_id), _append(tokens.clone(), eos_id)


# --------------------------------------------------------------------------------------------
# supervised encoder-decoder batches


def seq2seq_pairs(
    src: Sequence[Sequence[int]],
    tgt: Sequence[Sequence[int]],
    *,
    pad_id: int,
    max_len: int,
    eos_id: int,
    decoder_start_id: int | None = None,
    max_target_len: int | None = None,
) -> dict[str, Tensor]:
    """A teacher-forced encoder-decoder batch, padded to the longest sequence on each side.

    Each source and target is truncated to ``max_len`` (``max_target_len`` for targets) with
    ``eos_id`` as its last token (appended after trimming, as seqio does; a trailing eos already
    present is not doubled). Returns
    ``input_ids``/``attention_mask`` (B, S) padded with ``pad_id``/0;
    ``labels`` (B, T): the target, padded with -100 so padding carries no loss;
    ``decoder_input_ids`` (B, T): the labels shifted right behind ``decoder_start_id`` (default
    ``pad_id``, T5's convention), padded with ``pad_id``. So position t of the decoder sees the
    target up to t-1 and is trained to predict target token t.
    """
    if len(src) != len(tgt):
        raise ValueError(f"{len(src)} sources but {len(tgt)} targets")
    if not src:
        raise ValueError("empty batch")
    max_target_len = max_len if max_target_len is None else max_target_len
    if max_len < 1 or max_target_len < 1:
        raise ValueError("max_len and max_target_len must be >= 1")
    start = pad_id if decoder_start_id is None else decoder_start_id
    sources = [_trim_with_eos(s, max_len, eos_id) for s in src]
    targets = [_trim_with_eos(t, max_target_len, eos_id) for t in tgt]
    n, s_len, t_len = len(sources), max(map(len, sources)), max(map(len, targets))

    input_ids = torch.full((n, s_len), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, s_len), dtype=torch.long)
    labels = torch.full((n, t_len), IGNORE_INDEX, dtype=torch.long)
    decoder_input_ids = torch.full((n, t_len), pad_id, dtype=torch.long)
    for row, (source, target) in enumerate(zip(sources, targets)):
        input_ids[row, : len(source)] = torch.tensor(source)
        attention_mask[row, : len(source)] = 1
        labels[row, : len(target)] = torch.tensor(target)
        decoder_input_ids[row, : len(target)] = torch.tensor([start, *target[:-1]])
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "decoder_input_ids": decoder_input_ids,
        "labels": labels,
    }


def _trim_with_eos(seq: Sequence[int], max_len: int, eos_id: int) -> list[int]:
    seq = [int(t) for t in seq]
    if seq and seq[-1] == eos_id:
        seq.pop()
    return seq[: max_len - 1] + [eos_id]


def fit_prompt_completion(prompt: Sequence[int], completion: Sequence[int], block: int) -> tuple[list[int], list[int]]:
    """A (prompt, completion) pair cut to fit a ``block``-token training row: the completion keeps
    its first ``block // 2`` tokens, the prompt its last tokens (the end of a prompt is what the
    completion follows). One row is ``block + 1`` tokens: ``block`` inputs, shifted targets."""
    if block < 2:
        raise ValueError(f"block must be >= 2, got {block}")
    completion = [int(t) for t in completion][: block // 2]
    keep = block + 1 - len(completion)
    prompt = [int(t) for t in prompt]
    return prompt[len(prompt) - keep:] if len(prompt) > keep else prompt, completion


def prompt_completion_batch(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]], *, pad_id: int, attention_mask: bool = False
) -> dict[str, Tensor]:
    """A teacher-forced decoder-only batch: row r is ``prompt + completion`` (right-padded with
    ``pad_id``), position t predicts token t + 1, and only the completion's tokens carry a loss
    (``labels`` is -100 on the prompt and on padding). Every prompt needs at least one token (the
    first completion token is predicted from the prompt's last).

    Padding sits on the right, so under causal attention no real position sees it: the mask changes
    nothing a loss reads, and the unmasked path is the faster one. ``attention_mask=True`` adds it
    for models that need it (an HF model that derives positions from it)."""
    if not pairs:
        raise ValueError("empty batch")
    if any(len(p) == 0 for p, _ in pairs):
        raise ValueError("every prompt needs at least one token: the first completion token is predicted from it")
    length = max(len(p) + len(c) for p, c in pairs) - 1
    input_ids = torch.full((len(pairs), length), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), length), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(pairs), length), dtype=torch.long)
    for row, (prompt, completion) in enumerate(pairs):
        full = torch.tensor([*prompt, *completion], dtype=torch.long)
        input_ids[row, : len(full) - 1] = full[:-1]
        mask[row, : len(full) - 1] = 1
        labels[row, len(prompt) - 1 : len(full) - 1] = full[len(prompt):]
    out = {"input_ids": input_ids, "labels": labels}
    if attention_mask:
        out["attention_mask"] = mask
    return out
