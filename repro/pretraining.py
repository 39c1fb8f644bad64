"""What a shared base is and how it learns: its spec, the text mixture, each family's objective
and the training run. Everything here decides what a trained base *is*, so the artifact cache keys
every base on this module's source (and the engine's); `repro.bases` holds the table of specs per
scale and the orchestration, which may change without retraining anything.

The mixture is the mirror's general English text: the Project Gutenberg books (the BooksCorpus
stand-in), the Wikipedia articles and C4 documents of the pre-training demos, and the TinyStories
train head. The held-out split is whole documents of the same kinds that no base trains on (the
books the resolver holds out, TinyStories' validation stories). The evaluation corpora the papers
score zero-shot (WikiText-2, PTB, WebText, LAMBADA, Tiny Shakespeare) are not in it, as WebText
excluded Wikipedia's evaluation articles: they measure transfer, not memory.

Each family shares one tokenizer across its sizes (trained on the mixture): BPE for decoders,
WordPiece for the encoder, Unigram with sentinels for the encoder-decoders, as the papers did.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from repro.config import ConfigError
from repro.data.objectives import mask_tokens_mlm, prefix_lm, seq2seq_pairs, span_corruption
from repro.model import build_model, non_embedding_params, scaled
from repro.pipeline import cached_stage, fingerprint, random_windows, unigram_entropy
from repro.train import Trainer, TrainConfig, atomic_save, load_checkpoint

Family = Literal["decoder", "encoder", "encoder-decoder"]

# (dataset, split, text field) of the training mixture and of its held-out documents
MIXTURE = (("books", "train"), ("wiki_demo", "train"), ("c4_demo", "train"), ("tinystories", "train"))
HELD_OUT = (("books", "validation"), ("tinystories", "validation"))

FAMILY = {  # preset, objective and tokenizer of each family, as its paper had them
    "decoder": ("gpt2_small", "causal_lm", "bpe"),
    "encoder": ("bert_base", "mlm", "wordpiece"),
    "encoder-decoder": ("t5_small", "span_corruption", "unigram"),
}


@dataclass(frozen=True)
class BaseSpec:
    name: str
    family: Family
    n_layer: int
    d_model: int
    n_head: int
    d_ff: int | None = None  # None: the preset's d_ff / d_model ratio (4 for all three)
    positions: str | None = None  # None: the preset's (learned for BERT and GPT-2, relative for T5)
    vocab_size: int = 4096
    block_size: int = 128
    tokens: int = 1_000_000  # training tokens (the guide: ~20 per parameter, Hoffmann et al. 2022)
    batch_size: int = 32
    lr: float = 3e-3  # peak; from `repro tune` where results/perf/recipes.md lists it
    warmup_frac: float = 0.05
    target_loss: float = math.inf  # held-out loss (nats/token) it must reach...
    # ...and, when given, at least this many nats below the unigram model of the held-out tokens (the
    # loss of a model that ignores context): a margin means the same across tokenizers and
    # vocabulary sizes, an absolute loss does not
    target_gain: float | None = None
    max_chars: int | None = None  # of the mixture's text (None: all of it)
    eval_every: int = 0  # held-out loss every N steps: the learning curve (0: ten points)

    @property
    def label(self) -> str:
        """`L4d128`: depth and width, as the papers' tables and figures label a size."""
        return f"L{self.n_layer}d{self.d_model}"

    @property
    def steps(self) -> int:
        return max(1, self.tokens // (self.batch_size * self.block_size))

    def model_config(self, vocab_size: int):
        preset, _, _ = FAMILY[self.family]
        changes = {"n_layer": self.n_layer, "d_model": self.d_model, "n_head": self.n_head, "vocab_size": vocab_size,
                   "max_seq_len": self.block_size + 1, "dropout": 0.0}
        if self.d_ff is not None:
            changes["d_ff"] = self.d_ff
        if self.positions is not None:
            changes["positions"] = self.positions
        return scaled(preset, **changes)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, schedule="cosine",
                           warmup_steps=max(1, round(self.warmup_frac * self.steps)), weight_decay=0.1,
                           eval_every=self.eval_every or max(1, self.steps // 10), seed=seed,
                           log_every=max(1, self.steps // 50), progress=True)


# ----------------------------------------------------------------------------------------------
# The mixture, tokenized once per family tokenizer


def mixture_documents(parts, max_chars: int | None = None) -> list[str]:
    """The documents of `parts` ((dataset, split) pairs). Under a character cap every source gets
    an equal share, and what a small source leaves unused goes to the larger ones (water-filling),
    so a cap keeps all of the small sources instead of the first one alone."""
    from repro.data import load

    sources = []
    for name, split in parts:
        ds = load(name, split=split)
        sources.append([t for t in ds["text"] if t and t.strip()])
    if max_chars is None:
        return [doc for texts in sources for doc in texts]
    docs, left = [], max_chars
    by_size = sorted(range(len(sources)), key=lambda i: sum(map(len, sources[i])))
    for rank, i in enumerate(by_size):
        share, used = left / (len(sources) - rank), 0
        for text in sources[i]:
            text = text[: int(share - used)]
            if text:
                docs.append(text)
                used += len(text)
            if used >= share:
                break
        left -= used
    return docs


@dataclass
class Mixture:
    tokenizer: object
    train_ids: torch.Tensor
    val_ids: torch.Tensor
    dir: Path

    @property
    def fingerprint(self) -> str:
        return json.loads((self.dir / "done.json").read_text())["fingerprint"]


def load_mixture(kind: str, vocab_size: int, max_chars: int | None) -> Mixture:
    """The mixture's train and held-out token ids under a `kind` tokenizer trained on the train
    documents; tokenized once and cached (encoding tens of MB takes a minute)."""
    from repro.tokenizers import load_tokenizer, train_tokenizer

    identity = {"kind": kind, "vocab_size": vocab_size, "max_chars": max_chars, "mixture": MIXTURE,
                "held_out": HELD_OUT}

    def build(out: Path) -> dict:
        train_docs = mixture_documents(MIXTURE, max_chars)
        val_docs = mixture_documents(HELD_OUT, None if max_chars is None else max(max_chars // 20, 50_000))
        tok = train_tokenizer(kind, train_docs, vocab_size)
        tok.save_pretrained(out / "tokenizer")
        tok.model_max_length = 10**12  # whole documents are encoded, then windowed
        sep = tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id

        def encode(docs: list[str]) -> torch.Tensor:
            ids: list[int] = []
            for row in tok(docs, add_special_tokens=False)["input_ids"]:
                ids += row + [sep]  # documents end with the end-of-text token: windows may span two
            return torch.tensor(ids, dtype=torch.int32)

        train_ids, val_ids = encode(train_docs), encode(val_docs)
        atomic_save({"train": train_ids, "val": val_ids}, out / "ids.pt")
        return {"fingerprint": fingerprint([train_ids, val_ids]), "train_tokens": len(train_ids),
                "val_tokens": len(val_ids), "documents": len(train_docs)}

    out, _ = cached_stage(f"mixture-{kind}{vocab_size}", identity, build, code=[__name__])
    ids = torch.load(out / "ids.pt", weights_only=True)
    return Mixture(load_tokenizer(out / "tokenizer"), ids["train"].long(), ids["val"].long(), out)


# ----------------------------------------------------------------------------------------------
# Each family's objective over random windows: batch(step) is a pure function of the step


def objective_batches(family: Family, ids: torch.Tensor, tokenizer, block_size: int, batch_size: int, seed: int,
                      objective: str | None = None):
    """Batch `step` of `objective` (the family's own when None; an encoder-decoder also takes
    "prefix_lm", T5+LM's adaptation) over seeded random windows of `ids`."""
    objective = objective or FAMILY[family][1]
    windows = random_windows(ids, block_size, batch_size, seed)
    if family == "decoder":
        return windows
    if family == "encoder":
        # MLM on contiguous windows, without NSP (RoBERTa's FULL-SENTENCES; BERT's paper module
        # trains its own NSP and LTR arms): 15% of tokens, 80/10/10
        special = [i for i in tokenizer.all_special_ids if i is not None]

        def mlm(step: int) -> dict:
            g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7)
            inputs, labels = mask_tokens_mlm(windows(step)["input_ids"], vocab_size=len(tokenizer),
                                             mask_id=tokenizer.mask_token_id, special_ids=special, generator=g)
            return {"input_ids": inputs, "labels": labels}

        return mlm
    if family == "encoder-decoder":
        from repro.tokenizers import sentinel_ids

        sentinels, eos, pad = sentinel_ids(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id

        def spans(step: int) -> dict:
            # T5's span corruption: 15% of tokens in spans of mean length 3, one sentinel each; or
            # the prefix-LM split of T5+LM: a window's first part in, the rest out
            g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7)
            pairs = [prefix_lm(row, generator=g, eos_id=eos) if objective == "prefix_lm"
                     else span_corruption(row, generator=g, sentinel_ids=sentinels, eos_id=eos)
                     for row in windows(step)["input_ids"]]
            return seq2seq_pairs([a for a, _ in pairs], [b for _, b in pairs], pad_id=pad, max_len=block_size + 1,
                                 eos_id=eos)

        return spans
    raise ConfigError(f"unknown base family {family!r}; choose one of {', '.join(FAMILY)}")


def val_batches(spec: BaseSpec, mixture: Mixture, n: int = 8, objective: str | None = None) -> list[dict]:
    """The same held-out batches for every size and seed of a family: losses compare paired."""
    batches = objective_batches(spec.family, mixture.val_ids, mixture.tokenizer, spec.block_size, spec.batch_size, 10_000,
                                objective)
    return [batches(i) for i in range(n)]


@torch.no_grad()
def held_out_loss(model, batches: list[dict]) -> float:
    """Mean loss per target token over `batches` (the trainer's loss, summed then divided)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for b in batches:
        b = {k: v.to(device) for k, v in b.items()}
        out = model(**{k: v for k, v in b.items() if k != "labels"}, labels=b["labels"], loss_reduction="sum")
        total += float(out.loss)
        count += int((b["labels"] != -100).sum())
    return total / max(count, 1)


def train_base(spec: BaseSpec, seed: int, mixture: Mixture, out: Path) -> dict:
    """Pre-train `spec` from scratch into `out` (checkpoint.pt, tokenizer/) and return its record:
    the final held-out loss, the learning curve, the unigram baseline, parameters and tokens."""
    _, objective, _ = FAMILY[spec.family]
    held_out = val_batches(spec, mixture)
    torch.manual_seed(seed)
    model = build_model(spec.model_config(len(mixture.tokenizer)))
    cfg = spec.train_config(seed)
    history = Trainer(model, cfg, objective_batches(spec.family, mixture.train_ids, mixture.tokenizer,
                                                     spec.block_size, spec.batch_size, seed),
                      out, run_config={"base": spec.name, "seed": seed, "task": None}, tokenizer=mixture.tokenizer).fit(
        eval_fn=lambda m: {"loss": held_out_loss(m, held_out)})
    per_step = spec.batch_size * spec.block_size
    curve = [(r["step"] * per_step, r["eval_loss"]) for r in history if "eval_loss" in r]
    return {"family": spec.family, "objective": objective, "params": sum(p.numel() for p in model.parameters()),
            "non_embedding_params": non_embedding_params(model), "tokens": spec.steps * per_step,
            "train_tokens_available": len(mixture.train_ids), "val_loss": curve[-1][1], "curve": curve,
            "unigram_val_loss": unigram_entropy(mixture.val_ids, len(mixture.tokenizer), mixture.train_ids),
            "precision": cfg.precision}


def adapt_base(spec: BaseSpec, seed: int, mixture: Mixture, base_dir: Path, steps: int, out: Path) -> dict:
    """T5+LM (Lester et al. 2021, §2.2; T0's starting point): the span-corruption base in
    `base_dir` trained `steps` more steps with the prefix-LM objective on the same mixture, with its
    pre-training's optimiser, peak rate and schedule shape, on windows its pre-training did not
    draw (another seed). Written to `out` (checkpoint.pt, tokenizer/); returns the record: the
    held-out prefix-LM loss before and after, and the learning curve."""
    if spec.family != "encoder-decoder":
        raise ConfigError(f"LM adaptation is for encoder-decoder bases; {spec.name} is a {spec.family}")
    held_out = val_batches(spec, mixture, objective="prefix_lm")
    model, _ = load_checkpoint(base_dir)
    before = held_out_loss(model.eval(), held_out)
    cfg = dataclasses.replace(spec.train_config(seed), steps=steps, warmup_steps=max(1, round(spec.warmup_frac * steps)),
                              eval_every=max(1, steps // 4), log_every=max(1, steps // 10))
    batches = objective_batches(spec.family, mixture.train_ids, mixture.tokenizer, spec.block_size, spec.batch_size,
                                seed + 1, "prefix_lm")
    history = Trainer(model, cfg, batches, out, run_config={"base": spec.name, "seed": seed, "adaptation": "prefix_lm"},
                      tokenizer=mixture.tokenizer).fit(eval_fn=lambda m: {"loss": held_out_loss(m, held_out)})
    per_step = spec.batch_size * spec.block_size
    curve = [(0, before)] + [(r["step"] * per_step, r["eval_loss"]) for r in history if "eval_loss" in r]
    return {"objective": "prefix_lm", "steps": steps, "tokens": steps * per_step, "base": base_dir.name,
            "val_loss_before": before, "val_loss": curve[-1][1], "curve": curve, "precision": cfg.precision}
