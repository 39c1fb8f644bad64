"""Shared pre-trained bases: a decoder family, an encoder and an encoder-decoder family, each
pre-trained once on one text mixture and reused, through the artifact cache, by every paper that
fine-tunes, adapts or scores a pre-trained model.

    base = pretrain_base(get_base("cpu", "decoder-L4d144"))   # trained once, then loaded
    base.model, base.tokenizer, base.dir                        # dir holds checkpoint.pt + tokenizer/
    check_target(base)                                          # raises BaseTargetMissed, loudly
    lm_adapted_bases("cpu")                                     # T5+LM: the encoder-decoders, prefix-LM adapted

Who reads which: GPT-2's sweep, GPT-1's fine-tuning, FLAN, InstructGPT and PEFT's decoder arms the
decoders; PEFT's GLUE arm the encoder; T0 and PEFT's encoder-decoder arm the LM-adapted
encoder-decoders. BERT and T5 pre-train their own arms: their claims are about pre-training choices
(MLM vs LTR, NSP; objectives, corruption rates, data repeats), which one shared recipe cannot stand
in for.

What a base is (its spec, the mixture, each family's objective, the training run) lives in
`repro.pretraining`, the module its cache key covers; this one holds the specs of each scale and
trains, loads, checks and records them.

Each base states the held-out loss it must reach (`BaseSpec.target_loss`, nats per token of its
own tokenizer). A base that misses it fails the run with the measured loss and what to change: a
claim read on a base that has not learned proves nothing.

"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from repro import pretraining
from repro.config import ConfigError
from repro.pipeline import artifact_dir, train_once
from repro.pretraining import FAMILY, HELD_OUT, MIXTURE, BaseSpec, Mixture, load_mixture, train_base
from repro.train import TrainingError, load_checkpoint
from repro.tune import TuneGrid, TuneResult, cached_sweep, grid_points


class BaseTargetMissed(TrainingError):
    """A shared base did not reach its held-out loss target; the message says by how much."""


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
# The encoder-decoders see half as many (6.6M): their objective predicts 15% of the tokens but
# reads all of them, and their papers fine-tune rather than read the loss. The MLM encoder sees the
# full epoch: at 6.6M tokens it stopped 0.36 nats short of its target (results/bases/cpu.json of
# commit a21f06e), still falling.
# The encoder uses rotary positions (RoFormer, Su et al. 2021), not BERT's learned ones. With learned
# positions it missed its target after the full epoch (5.729 against 5.449, results/bases/cpu.json
# of 32a14ef). Probes at 1.6M tokens, fp32, seed 0, held-out MLM loss at BERT's 15%:
#   learned positions, post-LN, lr 2e-3 (the tuned point)     5.979
#   pre-LN at lr 1e-3 / 2e-3 / 4e-3                           6.075 / 6.103 / 6.317
#   40% / 25% of tokens masked in training (Wettig et al.)    5.895 / 5.927
#   rotary positions, post-LN, lr 2e-3                        5.032
# A decoder's causal mask tells it where its neighbours are; a tiny bidirectional encoder with
# learned positions has to learn that from the positions alone, and most of its budget goes there.
# Rotary positions give every head relative offsets for free. BERT's own module keeps learned
# positions (its claims are about BERT's recipe); the shared base is what the other papers fine-tune.
# Learning rates are tuned points (results/perf/recipes.md, `repro tune --base NAME`): 3e-3 for the
# pre-LN decoders, the race's sweep winner at L4d192 (results/perf/race_sweep.json); 2e-3 with 20%
# warm-up for BERT's post-LN encoder; 4e-3 for the two smaller encoder-decoders and 2e-3 for
# L4d128. Each sweep ran 1.6M tokens, shorter than the bases train, and a short horizon can favour
# a higher rate than a full run wants: a base that misses its target is re-tuned longer. Targets: nats below the held-out
# unigram model, so "the base reads its context" is the bar, stated before the run.
# Smoke windows are 64 tokens: the papers that fine-tune a base (FLAN's OPTIONS lists, InstructGPT's
# prompts) need that much context even at the smoke scale.
SMOKE_COMMON = dict(vocab_size=512, block_size=64, tokens=120 * 8 * 64, batch_size=8, lr=1e-2, max_chars=400_000)
CPU_COMMON = dict(vocab_size=4096, block_size=128, batch_size=32)
GPU_COMMON = dict(vocab_size=8192, block_size=256, batch_size=64)
CPU_DECODER_TOKENS = 3000 * 32 * 128
CPU_DENOISER_TOKENS = 1600 * 32 * 128

BASES: dict[str, dict[str, BaseSpec]] = {
    "smoke": {
        # three decoder sizes, so the scaling claims (GPT-2's fit, FLAN's F-C3) run their code path
        **_decoders([(1, 16, 2, {"target_loss": 6.0}), (1, 32, 2, {"target_loss": 6.0}),
                     (2, 48, 4, {"target_loss": 6.0})], **SMOKE_COMMON),
        "encoder": BaseSpec("encoder", "encoder", 1, 48, 4, positions="rope", target_loss=6.0, **SMOKE_COMMON),
        # two encoder-decoder sizes: T0's and PEFT's size claims run their code path
        **{f"encoder-decoder-L1d{d}": BaseSpec(f"encoder-decoder-L1d{d}", "encoder-decoder", 1, d, 4, target_loss=6.0,
                                               **SMOKE_COMMON) for d in (32, 48)},
    },
    "cpu": {
        **_decoders([(2, 64, 2, {"target_gain": 1.2}), (3, 96, 3, {"target_gain": 1.4}),
                     (4, 128, 4, {"target_gain": 1.6})], tokens=CPU_DECODER_TOKENS, lr=3e-3, **CPU_COMMON),
        "encoder": BaseSpec("encoder", "encoder", 4, 128, 4, positions="rope", tokens=CPU_DECODER_TOKENS, lr=2e-3,
                            warmup_frac=0.2, target_gain=1.0, **CPU_COMMON),
        **{f"encoder-decoder-L{n}d{d}": BaseSpec(f"encoder-decoder-L{n}d{d}", "encoder-decoder", n, d, h,
                                                 tokens=CPU_DENOISER_TOKENS, lr=lr, target_gain=1.5, **CPU_COMMON)
           for n, d, h, lr in [(2, 64, 2, 4e-3), (3, 96, 3, 4e-3), (4, 128, 4, 2e-3)]},
    },
    # gpu: not yet run on a GPU (no device was lent while these were written); the sizes of the old
    # GPT-2 gpu sweep, ~7 epochs of the mixture. Targets and learning rates are the cpu scale's
    # until `repro tune --base` has been run there.
    "gpu": {
        **_decoders([(4, 128, 4, {"target_gain": 1.6}), (6, 256, 8, {"target_gain": 1.8}),
                     (8, 384, 6, {"target_gain": 2.0}), (12, 512, 8, {"target_gain": 2.2})],
                    tokens=6000 * 64 * 256, lr=1e-3, **GPU_COMMON),
        "encoder": BaseSpec("encoder", "encoder", 8, 384, 6, positions="rope", tokens=3000 * 64 * 256, lr=5e-4,
                            warmup_frac=0.1, target_gain=1.0, **GPU_COMMON),
        **{f"encoder-decoder-L{n}d{d}": BaseSpec(f"encoder-decoder-L{n}d{d}", "encoder-decoder", n, d, h,
                                                 tokens=3000 * 64 * 256, lr=1e-3, target_gain=1.5, **GPU_COMMON)
           for n, d, h in [(4, 128, 4), (6, 256, 8), (8, 384, 6)]},
    },
}


def decoder_bases(scale: str) -> list[BaseSpec]:
    """The scale's decoder family, smallest first: GPT-2's size sweep, and what FLAN, InstructGPT
    and PEFT's decoders fine-tune."""
    return family_bases(scale, "decoder")


def encoder_decoder_bases(scale: str) -> list[BaseSpec]:
    """The scale's encoder-decoder family, smallest first: what T0 and PEFT's encoder-decoders
    start from (after LM adaptation, `lm_adapted_bases`)."""
    return family_bases(scale, "encoder-decoder")


def family_bases(scale: str, family: str) -> list[BaseSpec]:
    return sorted((s for s in scale_bases(scale).values() if s.family == family), key=lambda s: (s.n_layer, s.d_model))


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
    # keyed on the module that defines what a base is, not this one: the table of specs and the
    # orchestration here may change without retraining a base whose spec did not
    return artifact_dir(f"base-{spec.name}-s{seed}", {"spec": dataclasses.asdict(spec), "seed": seed},
                        code=[pretraining], data=mixture.fingerprint)


def pretrain_base(spec: BaseSpec, seed: int = 0) -> Base:
    """Pre-train `spec` (or load it from the artifact cache) and return it with its record: the
    final held-out loss, the learning curve, the unigram baseline, parameters and seconds. The
    directory holds checkpoint.pt and tokenizer/, so it can be evaluated or exported on its own."""
    mixture = load_mixture(FAMILY[spec.family][2], spec.vocab_size, spec.max_chars)
    out = base_dir(spec, seed, mixture)
    return Base(spec, seed, out, train_once(out, lambda: train_base(spec, seed, mixture, out)))


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


# T5+LM's adaptation length per scale: T0 and prompt tuning (Lester et al.) start from span-corruption
# bases trained further with the prefix-LM objective (100k steps on T5.1.1's 1M). cpu: 100 steps x
# 4,096 tokens, ~6% of the bases' pre-training, as T5+LM's 10%.
LM_ADAPT_STEPS = {"smoke": 10, "cpu": 100, "gpu": 2000}


def lm_adapted_base(spec: BaseSpec, seed: int = 0, steps: int | None = None) -> Base:
    """The encoder-decoder base `spec` after LM adaptation (`pretraining.adapt_base`), cached like a
    base: its dir holds checkpoint.pt and tokenizer/, its record the prefix-LM loss before and after.
    `steps` defaults to the scale's LM_ADAPT_STEPS (the scale whose table holds `spec`)."""
    if steps is None:
        scale = next((name for name, specs in BASES.items() if specs.get(spec.name) == spec), None)
        if scale is None:
            raise ConfigError(f"{spec.name} is in no scale's table of bases; pass steps= explicitly")
        steps = LM_ADAPT_STEPS[scale]
    base = pretrain_base(spec, seed)
    mixture = load_mixture(FAMILY[spec.family][2], spec.vocab_size, spec.max_chars)
    out = artifact_dir(f"base-{spec.name}-lm{steps}-s{seed}", {"base": base.dir.name, "steps": steps},
                       code=[pretraining], data=mixture.fingerprint)
    return Base(spec, seed, out, train_once(out, lambda: pretraining.adapt_base(spec, seed, mixture, base.dir, steps, out)))


def lm_adapted_bases(scale: str, seed: int = 0) -> list[Base]:
    """Every encoder-decoder base of `scale`, pre-trained (checked against its target) and then
    LM-adapted, smallest first; the adaptations run in parallel worker processes."""
    from repro.pipeline import run_parallel

    specs = encoder_decoder_bases(scale)
    pretrain_bases(scale, [z.name for z in specs], seeds=(seed,))
    run_parallel(_adapt_in_worker, [(z, seed) for z in reversed(specs)], desc=f"LM adaptation ({scale})")
    return [lm_adapted_base(z, seed) for z in specs]


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


def tune_base(spec: BaseSpec, tokens: int, grid: TuneGrid) -> TuneResult:
    """`repro tune` for a base: peak learning rate x warm-up (x batch size) at `tokens` training
    tokens, each point a shortened copy of `spec` pre-trained (cached, in parallel workers) on the
    same mixture and scored on the same held-out batches as the base itself."""
    from repro.pipeline import run_parallel

    points = grid_points(grid, tokens, spec.block_size)

    def variant(point) -> BaseSpec:
        return dataclasses.replace(spec, name=f"{spec.name}-tune", tokens=tokens, lr=point.lr, batch_size=point.batch_size,
                                   warmup_frac=point.warmup_frac, target_loss=math.inf, target_gain=None)

    def train(points) -> None:
        jobs = [(variant(p), seed) for p in points for seed in grid.seeds]
        load_mixture(FAMILY[spec.family][2], spec.vocab_size, spec.max_chars)  # once, before the workers
        losses = iter(run_parallel(_pretrain_in_worker, jobs, desc=f"tune {spec.name}"))
        for p in points:
            p.val_losses = [next(losses) for _ in grid.seeds]

    out_dir = artifact_dir(f"tune-{spec.name}", {"spec": dataclasses.asdict(spec), "tokens": tokens,
                                                 "grid": dataclasses.asdict(grid)}, code=[pretraining])
    return cached_sweep(spec.name, FAMILY[spec.family][0], tokens, grid, out_dir, points, train)


def training_flops(spec: BaseSpec) -> float:
    """~6 N D (Kaplan et al.) with N the blocks and the output projection: enough to order jobs. An
    encoder-decoder's decoder reads only the span-corruption targets (~a quarter of the input)."""
    blocks = 12 * spec.n_layer * spec.d_model**2 * (1.3 if spec.family == "encoder-decoder" else 1)
    return 6.0 * (blocks + spec.vocab_size * spec.d_model) * spec.tokens


def _pretrain_in_worker(spec: BaseSpec, seed: int) -> float:
    return pretrain_base(spec, seed).val_loss


def _adapt_in_worker(spec: BaseSpec, seed: int) -> float:
    return lm_adapted_base(spec, seed).val_loss
