"""T5's text-to-text format of the registry's tasks, and the batchers that feed it to a model.

Shared by every recipe that writes a task as an input string and a target string (T5, T0, the
PEFT comparisons on the encoder-decoder bases):

- :func:`text_pair`  one record as T5's (input, target) (Raffel et al. 2020, Appendix D): the
  task's name as a prefix, each field as "name: text"; STS-B's score rounded to 0.2 and written as
  a literal number (§2.4); translation through the registry's "t5_prefix" template; summaries
  after "summarize: ".
- :func:`one_line`  whitespace runs as one space: a SentencePiece-style vocabulary sees words, not
  layout (our Unigram vocabulary has no newline piece).
- :func:`seq2seq_batch` and :func:`length_windowed_batches`  (source, target) token ids as
  training batches: an encoder-decoder batch, or source + target in one decoder row with the loss
  on the target (T5's Table 2 language-model rows).
- :func:`prompt_answer_batches`  (prompt, answer) strings as decoder-only training batches, each
  pair cut to the context: instruction tuning (FLAN) and the PEFT methods' decoder fine-tuning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from repro.data.objectives import fit_prompt_completion, prompt_completion_batch, seq2seq_pairs

TRANSLATION, SUMMARIZATION = "multi30k_en_de", "xsum"
# T5's text-to-text prefixes (Appendix D): the task name, then each field as "name: text"
PREFIX_FIELDS = {"sst2": ("sentence",), "cola": ("sentence",), "mrpc": ("sentence1", "sentence2"),
                 "stsb": ("sentence1", "sentence2"), "rte": ("sentence1", "sentence2")}
STSB_STEP = 0.2  # §2.4: STS-B scores rounded to the nearest 0.2 and written as a literal number


def one_line(text: str) -> str:
    """Whitespace runs (newlines included) as one space: SentencePiece sees words, not layout, and
    our Unigram vocabulary has no newline piece (it would be <unk>)."""
    return " ".join(text.split())


def stsb_target(score: float) -> str:
    """§2.4: "we round the scores to the nearest increment of 0.2 and convert the result to a
    literal string" (2.57 -> "2.6")."""
    return f"{round(score / STSB_STEP) * STSB_STEP:.1f}"


def parse_score(text: str) -> float:
    """A decoded STS-B answer as a number; anything else counts as -1 (T5's string_to_float default),
    so an unreadable answer is scored, badly, rather than dropped."""
    try:
        return float(text.strip())
    except ValueError:
        return -1.0


def text_pair(task, record: dict) -> tuple[str, str]:
    """(input, target) of one record of a registry task (`repro.data.tasks.Task`) in T5's
    text-to-text format (Appendix D): GLUE, translation (TRANSLATION) or summarisation."""
    if task.name in PREFIX_FIELDS:
        missing = [f for f in PREFIX_FIELDS[task.name] if f not in record]
        if missing:
            raise ValueError(f"{task.name} record has no field {missing[0]!r}; it has {', '.join(record)}")
        source = task.name + " " + " ".join(f"{f}: {record[f]}" for f in PREFIX_FIELDS[task.name])
        target = stsb_target(record["score"]) if task.name == "stsb" else record["choices"][record["label"]]
    elif task.name == TRANSLATION:
        source, target = task.template("t5_prefix").render(record), record["target"]
    else:
        source, target = "summarize: " + record["document"], record["target"]
    return one_line(source), one_line(target)


def with_eos(ids: Sequence[int], eos: int) -> list[int]:
    """`ids` ending in `eos` (appended unless it is already the last token)."""
    ids = [int(i) for i in ids]
    return ids if ids and ids[-1] == eos else ids + [eos]


def seq2seq_batch(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], tok, kind: str) -> dict:
    """An encoder-decoder batch (T5: the decoder starts from pad), or for a decoder-only model
    (`kind` "decoder") the input and target concatenated, the loss on the target only."""
    if kind == "encoder-decoder":
        return seq2seq_pairs([a for a, _ in pairs], [b for _, b in pairs], pad_id=tok.pad_token_id, max_len=10**6,
                             eos_id=tok.eos_token_id)
    return prompt_completion_batch([(with_eos(a, tok.eos_token_id), with_eos(b, tok.eos_token_id)) for a, b in pairs],
                                   pad_id=tok.pad_token_id, attention_mask=True)


def length_windowed_batches(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], tok, batch_size: int, kind: str,
                            window: int = 16):
    """Batch `step` of one pass over `pairs` (source, target token ids), `batch_size` per step. The
    order is cut into windows of `window` batches; inside a window examples are sorted by length and
    the window's batches served in a seeded order, so a batch of short GLUE items is not padded to an
    XSum document (T5 packs examples instead; the point is the same: no compute on padding)."""
    order: list[int] = []
    g = torch.Generator().manual_seed(0)
    for w in range(0, len(pairs), batch_size * window):
        chunk = sorted(range(w, min(w + batch_size * window, len(pairs))),
                       key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        batches = [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
        order += [i for j in torch.randperm(len(batches), generator=g).tolist() for i in batches[j]]

    def batch(step: int) -> dict:
        return seq2seq_batch([pairs[i] for i in order[step * batch_size : (step + 1) * batch_size]], tok, kind)

    return batch


def prompt_answer_batches(pairs: Sequence[tuple[str, str]], tok, block: int, batch_size: int, seed: int | None = None):
    """Batch `step` of decoder rows, prompt + answer + eos each (cut to `block` by
    `fit_prompt_completion`: the answer's start and the prompt's end are kept), the loss on the
    answer only. Rows are served in order (`seed` None: a mixture already sampled in training order)
    or in a seeded permutation, epoch after epoch. No attention mask: padding is on the right, where
    causal attention never lets a real token see it, and the unmasked path is the fast one (0.22 vs
    0.37 s/step measured on FLAN's cpu runs)."""
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    rows = [fit_prompt_completion(tok(prompt, add_special_tokens=False)["input_ids"],
                                  tok(answer, add_special_tokens=False)["input_ids"] + eos, block)
            for prompt, answer in pairs]
    if not rows:
        raise ValueError("no (prompt, answer) pairs to batch")
    order = np.arange(len(rows)) if seed is None else np.random.default_rng(seed).permutation(len(rows))
    # the pad id is never read (right padding, causal attention, no loss there): any valid id will do
    pad = next((t for t in (tok.pad_token_id, tok.eos_token_id) if t is not None), 0)

    def batch(step: int) -> dict:
        return prompt_completion_batch([rows[order[(step * batch_size + i) % len(rows)]] for i in range(batch_size)],
                                       pad_id=pad)

    return batch
