"""Shared pre-trained bases: a decoder family, an encoder and an encoder-decoder family, each
pre-trained once on one text mixture and reused, through the artifact cache, by every paper that
fine-tunes, adapts or scores a pre-trained model.

    base = pretrain_base(get_base("cpu", "decoder-L4d144"))   # trained once, then loaded
    base.model, base.tokenizer, base.dir                        # dir holds checkpoint.pt + tokenizer/
    check_target(base)                                          # raises BaseTargetMissed, loudly

The mixture is the mirror's general English text: the Project Gutenberg books (the BooksCorpus
stand-in), the Wikipedia articles and C4 documents of the pre-training demos, and the TinyStories
train head. The held-out split is whole documents of the same kinds that no base trains on (the
books the resolver holds out, TinyStories' validation stories). The evaluation corpora the papers
score zero-shot (WikiText-2, PTB, WebText, LAMBADA, Tiny Shakespeare) are not in it, as WebText
excluded Wikipedia's evaluation articles: they measure transfer, not memory.

Each base states the held-out loss it must reach (`BaseSpec.target_loss`, nats per token of its
own tokenizer). A base that misses it fails the run with the measured loss and what to change: a
claim read on a base that has not learned proves nothing.

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
from repro.data.objectives import mask_tokens_mlm, seq2seq_pairs, span_corruption
from repro.model import build_model, non_embedding_params, scaled
from repro.pipeline import artifact_dir, cached_stage, fingerprint, random_windows, train_once, unigram_entropy
from repro.train import Trainer, TrainConfig, TrainingError, atomic_save, load_checkpoint

Family = Literal["decoder", "encoder", "encoder-decoder"]

# (dataset, split, text field) of the training mixture and of its held-out documents
MIXTURE = (("books", "train"), ("wiki_demo", "train"), ("c4_demo", "train"), ("tinystories", "train"))
HELD_OUT = (("books", "validation"), ("tinystories", "validation"))

FAMILY = {  # preset, objective and tokenizer of each family, as its paper had them
    "decoder": ("gpt2_small", "causal_lm", "bpe"),
    "encoder": ("bert_base", "mlm", "wordpiece"),
    "encoder-decoder": ("t5_small", "span_corruption", "unigram"),
}


class BaseTargetMissed(TrainingError):
    """A shared base did not reach its held-out loss target; the message says by how much."""


@dataclass(frozen=True)
class BaseSpec:
    name: str
    family: Family
    n_layer: int
    d_model: int
    n_head: int
    d_ff: int | None = None  # None: the preset's d_ff / d_model ratio (4 for all three)
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
    def steps(self) -> int:
        return max(1, self.tokens // (self.batch_size * self.block_size))

    def model_config(self, vocab_size: int):
        preset, _, _ = FAMILY[self.family]
        changes = {"n_layer": self.n_layer, "d_model": self.d_model, "n_head": self.n_head, "vocab_size": vocab_size,
                   "max_seq_len": self.block_size + 1, "dropout": 0.0}
        if self.d_ff is not None:
            changes["d_ff"] = self.d_ff
        return scaled(preset, **changes)

    def train_config(self, seed: int) -> TrainConfig:
        return TrainConfig(steps=self.steps, batch_size=self.batch_size, lr=self.lr, schedule="cosine",
                           warmup_steps=max(1, round(self.warmup_frac * self.steps)), weight_decay=0.1,
                           eval_every=self.eval_every or max(1, self.steps // 10), seed=seed,
                           log_every=max(1, self.steps // 50), progress=True)


def _decoders(sizes, **common) -> dict[str, BaseSpec]:
    return {f"decoder-L{n}d{d}": BaseSpec(f"decoder-L{n}d{d}", "decoder", n, d, h, **common, **extra)
            for n, d, h, extra in sizes}


# Sizes per scale. Smoke: the pipeline end to end in seconds; its target is only "better than a
# uniform guess" (ln 512 = 6.24 nats), since 120 steps barely reach the unigram model.
#
# cpu: sizes from single-thread bf16 throughput measured on the 2-core machine (decoders at batch
# 32 x 128: L2d64 19k, L3d96 12k, L4d128 8k tokens/s; each record keeps its own seconds), two bases
# training at once.
# Token counts: the mixture holds ~13M BPE tokens, so every decoder sees one epoch of it (3,000 steps
# x 4,096 tokens = 12.3M): ~9 tokens per parameter for the largest (1.3M parameters, embeddings
# included), ~33 for the smallest. Hoffmann et al.'s ~20 per parameter is the guide; one shared D
# for the family keeps the sweep's differences to N alone, and the smaller models, trained well
# past 20 tokens per parameter, sit in the parameter-limited regime that Kaplan's alpha_N describes.
# The encoder and encoder-decoders see half as many (6.6M): their objectives predict 15% of the
# tokens but read all of them, and their papers fine-tune rather than read the loss.
# Learning rate: 3e-3, the race's sweep winner (results/perf/race_sweep.json: 1.5e-3, 3e-3, 6e-3
# at L4d192) for the pre-LN decoders and encoder-decoders; 1e-3 with 10% warm-up for BERT's post-LN
# encoder, which diverges at rates a pre-LN stack takes. Targets: nats below the held-out unigram
# model, so "the base reads its context" is the bar, stated before the run.
CPU_COMMON = dict(vocab_size=4096, block_size=128, batch_size=32)
CPU_DECODER_TOKENS = 3000 * 32 * 128
CPU_DENOISER_TOKENS = 1600 * 32 * 128

BASES: dict[str, dict[str, BaseSpec]] = {
    "smoke": {
        **_decoders([(1, 32, 2, {"target_loss": 6.0}), (2, 48, 4, {"target_loss": 6.0})],
                    vocab_size=512, block_size=32, tokens=120 * 8 * 32, batch_size=8, lr=1e-2, max_chars=400_000),
        "encoder": BaseSpec("encoder", "encoder", 1, 48, 4, vocab_size=512, block_size=32, tokens=120 * 8 * 32,
                            batch_size=8, lr=1e-2, max_chars=400_000, target_loss=6.0),
        "encoder-decoder-L1d48": BaseSpec("encoder-decoder-L1d48", "encoder-decoder", 1, 48, 4, vocab_size=512,
                                          block_size=32, tokens=120 * 8 * 32, batch_size=8, lr=1e-2,
                                          max_chars=400_000, target_loss=6.0),
    },
    "cpu": {
        **_decoders([(2, 64, 2, {"target_gain": 1.2}), (3, 96, 3, {"target_gain": 1.4}),
                     (4, 128, 4, {"target_gain": 1.6})], tokens=CPU_DECODER_TOKENS, lr=3e-3, **CPU_COMMON),
        "encoder": BaseSpec("encoder", "encoder", 4, 128, 4, tokens=CPU_DENOISER_TOKENS, lr=1e-3, warmup_frac=0.1,
                            target_gain=1.0, **CPU_COMMON),
        **{f"encoder-decoder-L{n}d{d}": BaseSpec(f"encoder-decoder-L{n}d{d}", "encoder-decoder", n, d, h,
                                                 tokens=CPU_DENOISER_TOKENS, lr=3e-3, target_gain=1.5, **CPU_COMMON)
           for n, d, h in [(2, 64, 2), (3, 96, 3), (4, 128, 4)]},
    },
}


def scale_bases(scale: str) -> dict[str, BaseSpec]:
    if scale not in BASES:
        raise ConfigError(f"no shared bases are defined for scale {scale!r}; defined: {', '.join(BASES)}")
    return BASES[scale]


def get_base(scale: str, name: str) -> BaseSpec:
    bases = scale_bases(scale)
    if name not in bases:
        raise ConfigError(f"no shared base {name!r} at scale {scale!r}; choose one of {', '.join(bases)}")
    return bases[name]


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


def objective_batches(family: Family, ids: torch.Tensor, tokenizer, block_size: int, batch_size: int, seed: int):
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
            # T5's span corruption: 15% of tokens in spans of mean length 3, one sentinel each
            g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7)
            pairs = [span_corruption(row, generator=g, sentinel_ids=sentinels, eos_id=eos)
                     for row in windows(step)["input_ids"]]
            return seq2seq_pairs([a for a, _ in pairs], [b for _, b in pairs], pad_id=pad, max_len=block_size + 1,
                                 eos_id=eos)

        return spans
    raise ConfigError(f"unknown base family {family!r}; choose one of {', '.join(FAMILY)}")


# ----------------------------------------------------------------------------------------------
# Pre-training, cached; the target check


@dataclass
class Base:
    spec: BaseSpec
    seed: int
    dir: Path
    record: dict

    @property
    def val_loss(self) -> float:
        return self.record["val_loss"]

    @property
    def target(self) -> float:
        """The held-out loss this base must reach (see BaseSpec.target_loss and target_gain)."""
        gain = self.spec.target_gain
        return min(self.spec.target_loss, math.inf if gain is None else self.record["unigram_val_loss"] - gain)

    @property
    def reached(self) -> bool:
        return self.val_loss <= self.target

    @property
    def curve(self) -> list[tuple[int, float]]:
        """(training tokens, held-out loss) along pre-training: the learning curve."""
        return [tuple(point) for point in self.record["curve"]]

    def load(self):
        """(model, tokenizer): the base as a trained model, ready to fine-tune or score."""
        from repro.tokenizers import load_tokenizer

        model, _ = load_checkpoint(self.dir)
        return model, load_tokenizer(self.dir / "tokenizer")


def base_dir(spec: BaseSpec, seed: int, mixture: Mixture) -> Path:
    return artifact_dir(f"base-{spec.name}-s{seed}", {"spec": dataclasses.asdict(spec), "seed": seed},
                        code=[__name__], data=mixture.fingerprint)


def val_batches(spec: BaseSpec, mixture: Mixture, n: int = 8) -> list[dict]:
    """The same held-out batches for every size and seed of a family: losses compare paired."""
    batches = objective_batches(spec.family, mixture.val_ids, mixture.tokenizer, spec.block_size, spec.batch_size, 10_000)
    return [batches(i) for i in range(n)]


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


def pretrain_base(spec: BaseSpec, seed: int = 0) -> Base:
    """Pre-train `spec` (or load it from the artifact cache) and return it with its record: the
    final held-out loss, the learning curve, the unigram baseline, parameters and seconds. The
    directory holds checkpoint.pt and tokenizer/, so it can be evaluated or exported on its own."""
    _, objective, kind = FAMILY[spec.family]
    mixture = load_mixture(kind, spec.vocab_size, spec.max_chars)
    out = base_dir(spec, seed, mixture)
    held_out = val_batches(spec, mixture)

    def train() -> dict:
        torch.manual_seed(seed)
        model = build_model(spec.model_config(len(mixture.tokenizer)))
        cfg = spec.train_config(seed)
        mixture.tokenizer.save_pretrained(out / "tokenizer")
        history = Trainer(model, cfg, objective_batches(spec.family, mixture.train_ids, mixture.tokenizer,
                                                         spec.block_size, spec.batch_size, seed),
                          out, run_config={"base": spec.name, "seed": seed, "task": None}).fit(
            eval_fn=lambda m: {"loss": held_out_loss(m, held_out)})
        per_step = spec.batch_size * spec.block_size
        curve = [(r["step"] * per_step, r["eval_loss"]) for r in history if "eval_loss" in r]
        return {"family": spec.family, "objective": objective, "params": sum(p.numel() for p in model.parameters()),
                "non_embedding_params": non_embedding_params(model), "tokens": spec.steps * per_step,
                "train_tokens_available": len(mixture.train_ids), "val_loss": curve[-1][1], "curve": curve,
                "unigram_val_loss": unigram_entropy(mixture.val_ids, len(mixture.tokenizer), mixture.train_ids),
                "precision": cfg.precision}

    return Base(spec, seed, out, train_once(out, train))


def check_target(base: Base) -> Base:
    """`base`, or BaseTargetMissed naming the base, the loss it reached, its target and the fix."""
    if not base.reached:
        s = base.spec
        raise BaseTargetMissed(
            f"shared base {s.name} (seed {base.seed}) reached held-out loss {base.val_loss:.3f} after "
            f"{base.record['tokens']:,} tokens, above its target {base.target:.3f} (unigram baseline "
            f"{base.record['unigram_val_loss']:.3f}); tune its learning rate (repro tune) or give it more tokens in "
            f"repro/bases.py before reading claims on it. Its run is kept in {base.dir}")
    return base


def pretrain_bases(scale: str, names: list[str] | None = None, seeds: tuple[int, ...] = (0,),
                   check: bool = True) -> list[Base]:
    """Every base of `scale` (or those named), trained once each, in parallel worker processes."""
    from repro.pipeline import run_parallel

    specs = [get_base(scale, n) for n in names] if names else list(scale_bases(scale).values())
    jobs = [(spec, seed) for spec in specs for seed in seeds]
    for kind, vocab_size, max_chars in dict.fromkeys((FAMILY[s.family][2], s.vocab_size, s.max_chars) for s in specs):
        load_mixture(kind, vocab_size, max_chars)  # here, once: workers would each build it side by side
    # longest first, so that two workers finish together instead of one waiting on the largest base
    todo = sorted(jobs, key=lambda job: -training_flops(job[0]))
    run_parallel(_pretrain_in_worker, todo, desc=f"shared bases ({scale})")
    bases = [pretrain_base(spec, seed) for spec, seed in jobs]  # all cached now: loads the records
    if check:
        for base in bases:
            check_target(base)
    return bases


def bases_record(scale: str, bases: list[Base]) -> dict:
    """What `repro bases --record` keeps in results/bases/<scale>.json: per base its size, tokens,
    held-out loss beside its target and the unigram baseline, the learning curve and its speed."""
    rows = []
    for b in bases:
        r = b.record
        rows.append({"name": b.spec.name, "seed": b.seed, "family": b.spec.family, "objective": r["objective"],
                     "params": r["params"], "non_embedding_params": r.get("non_embedding_params"),
                     "tokens": r["tokens"], "tokens_per_param": r["tokens"] / r["params"],
                     "epochs": r["tokens"] / r["train_tokens_available"] if r.get("train_tokens_available") else None,
                     "val_loss": b.val_loss, "target": b.target, "reached": b.reached,
                     "unigram_val_loss": r["unigram_val_loss"], "curve": r["curve"], "seconds": r.get("seconds"),
                     "tokens_per_second": r["tokens"] / r["seconds"] if r.get("seconds") else None,
                     "precision": r.get("precision"), "spec": dataclasses.asdict(b.spec)})
    return {"scale": scale, "mixture": {"train": MIXTURE, "held_out": HELD_OUT}, "bases": rows}


def training_flops(spec: BaseSpec) -> float:
    """~6 N D (Kaplan et al.) with N the blocks and the output projection: enough to order jobs. An
    encoder-decoder's decoder reads only the span-corruption targets (~a quarter of the input)."""
    blocks = 12 * spec.n_layer * spec.d_model**2 * (1.3 if spec.family == "encoder-decoder" else 1)
    return 6.0 * (blocks + spec.vocab_size * spec.d_model) * spec.tokens


def _pretrain_in_worker(spec: BaseSpec, seed: int) -> float:
    return pretrain_base(spec, seed).val_loss
