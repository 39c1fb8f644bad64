"""The PEFT family (papers.md Appendix A): LoRA, Houlsby adapters, prefix tuning, prompt tuning,
P-Tuning v2 and (IA)^3, each beside full fine-tuning of the same base for the same number of steps.

The methods are `repro.peft_methods` (LoRA and (IA)^3 on the W_q / W_v and k / v slices of our fused
attention projection; tests/test_peft_methods.py shows they give `peft`'s outputs on the same
weights, and prompt / prefix tuning give peft's on a converted `transformers` GPT-2 and BERT).

Bases: pre-trained networks shared through the artifact cache (the same config is the same cache
key, so `reproduce-all` trains each once):
  - the encoder: the shared encoder base at `bases_scale` (`repro.bases`: BERT's encoder with
    rotary positions, masked-LM pre-trained, checked against its held-out target), read as BERT
    fine-tunes it (`papers.glue.finetune`: [CLS] through the pooler and a new linear layer,
    trained by every method: LoRA, Houlsby and P-Tuning v2 train such a head, and so does peft for
    sequence classification);
  - the decoders: the shared decoder bases at `bases_scale` (`repro.bases`, GPT-2's size sweep,
    each checked against its held-out target), read as Lester et al. and
    T-Few read a language model: the LM head's logits of each class's label token at the last
    prompt token (a verbaliser over the registry's GLUE templates, no new parameters), except
    P-Tuning v2, whose paper swaps the verbaliser for a linear head on that token.
  - the encoder-decoders: the shared encoder-decoder bases at `bases_scale`, LM-adapted
    (`repro.bases.lm_adapted_bases`: span corruption, then the prefix-LM adaptation; the same
    models T0 starts from), Lester et al.'s own setting for prompt tuning. Each reads a task
    in T5's text-to-text format ("sst2 sentence: ...", eos) and classifies by ranking the classes'
    label tokens at the decoder's first answer position (T5's answer strings; the tokens the answers
    share, if any, are fed to the decoder first): rank classification over one token, with no new
    parameters (P-Tuning v2 again a linear head on that position).

Arms (`Job.arm`):
  glue     the encoder, every method x GLUE task in the mirror (dev metrics as BERT's)  -> P-C1, P-C3
  sweep    every encoder-decoder and decoder size, every method x `sweep_tasks`  -> P-C2 (encoder-decoders),
           the table
  fewshot  the main decoder, (IA)^3 / LoRA / prompt tuning on k training examples per task, several
           random subsets, the same steps; prompt tuning gets enough tokens to train at least as
           many parameters as (IA)^3 ("at equal or smaller budgets")                  -> P-C4
  xsum     the main decoder, every method on XSum (lead words of the document, TL;DR template),
           ROUGE through the harness (`run_scenario`) on the first `xsum_eval` documents
  cost     every base x method, measured in this process one after another on the same batch:
           trainable parameters and their share, what a task keeps, the memory of a training step
           (weights + gradients + AdamW state + activations saved for backward, counted; on CUDA
           also the allocator's peak), training and inference tokens/s (LoRA and (IA)^3 merged,
           the prefix MLP dropped)

Every method trains for the same steps at the same batch size, with its own learning rate (the
papers tune theirs per method); linear warm-up and decay, AdamW. A gap to full fine-tuning is the
difference of mean task scores with a paired bootstrap CI (each task's dev items resampled, the
same draws for both methods).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from harness.claims import Claim, Predicate, all_of, greater, monotone, provided
from harness.lm import ReproLM
from harness.metrics import (
    MetricResult,
    declare_percent,
    mean_with_ci,
    paired_bootstrap_diff,
)
from harness.plots import Figure, Panel, Series
from papers import Measured, Paper, one_seed, register
from papers.glue import (
    TASKS,
    FinetuneConfig,
    GlueTask,
    TaskData,
    average_score,
    classifier_from,
    finetune,
    load_rows,
    load_task,
    majority,
    predict_task,
    score_gap,
    task_metrics,
    zero_gap,
)
from repro.config import ModelConfig
from repro.data.text_to_text import prompt_answer_batches, text_pair
from repro.model import LanguageModel, ModelOutput, SequenceClassifier
from repro.model.heads import last_token_index
from repro.peft_methods import (
    AdapterConfig,
    FullConfig,
    IA3Config,
    LoRAConfig,
    PeftConfig,
    PrefixConfig,
    PromptConfig,
    apply_peft,
    merge_for_inference,
    virtual_tokens,
)
from repro.bases import (
    BaseSpec,
    decoder_bases,
    encoder_decoder_bases,
    get_base,
    lm_adapted_bases,
    pretrain_base,
    pretrain_bases,
)
from repro.pipeline import artifact_dir, fingerprint, run_parallel, train_once
from repro.train import (
    TrainConfig,
    Trainer,
    build_optimizer,
    resolve_device,
)

METHODS = ("full", "lora", "adapter", "prefix", "prompt", "ptuning_v2", "ia3")
METHOD_NAMES = {"full": "full fine-tuning", "lora": "LoRA", "adapter": "adapters (Houlsby)",
                "prefix": "prefix tuning", "prompt": "prompt tuning", "ptuning_v2": "P-Tuning v2", "ia3": "(IA)^3"}
FEWSHOT_METHODS = ("ia3", "lora", "prompt")  # P-C4's comparison (T-Few Fig. 2)
LORA_MARGIN = 0.01  # P-C1: "≈ full fine-tuning" read as at most 1 GLUE point below (LoRA: +0.8 / +0.1 on RoBERTa)
ADAPTER_MARGIN = 0.004  # P-C3: Houlsby Table 1, 80.0 vs 80.4
ADAPTER_SHARE = 0.05  # P-C3's "a few %" of the parameters (Houlsby: 3.6% per task)
# GLUE-score gaps to full fine-tuning are fractions shown in points like the scores themselves; XSum's
# gaps are ROUGE differences, already 0-100, and stay as stored.
declare_percent("glue/*/gap", "sweep/*/gap")

# δ, each comparison's minimum effect of interest in its own units (score gaps and accuracies are
# fractions; shares fractions of the base's parameters), stated before the run; sources in the claims
LORA_DELTA = 0.01  # P-C1: LoRA - full is +0.1..+0.8 GLUE points, 1.1-1.8 above the -1-point margin
PROMPT_SCALE_DELTA = 0.02  # P-C2: Lester Fig. 1's gap closing, the share of one decade of size
ADAPTER_DELTA = 0.004  # P-C3: the paper's gap is the margin itself; its resolution
ADAPTER_SHARE_DELTA = round(ADAPTER_SHARE - 0.036, 6)  # P-C3: Houlsby's 3.6% against our 5% ceiling
FEWSHOT_DELTA = 0.01  # P-C4: 1 accuracy point, a practical threshold


# ----------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class Recipe:
    """One method at a scale: its configuration and learning rate (the papers tune it per method)."""

    name: str
    config: PeftConfig
    lr: float
    weight_decay: float = 0.0
    linear_head: bool = False  # (encoder-)decoders: a new linear head instead of the label tokens' logits


def recipes(lr: dict[str, float], bottleneck: int) -> tuple[Recipe, ...]:
    """The paper defaults of `repro.peft_methods` (LoRA r = 8, alpha = 16 on q, v; prefix length 10
    through a 512-wide MLP; 20 prompt tokens, class-label init; (IA)^3 on k, v, ff); adapters take
    the bottleneck that keeps them at a few % of these small models (Houlsby's m in {8, 64, 256})."""
    return (
        Recipe("full", FullConfig(), lr["full"], weight_decay=0.01),  # BERT's fine-tuning decay
        Recipe("lora", LoRAConfig(), lr["lora"]),
        Recipe("adapter", AdapterConfig(bottleneck=bottleneck), lr["adapter"]),
        Recipe("prefix", PrefixConfig(), lr["prefix"]),
        Recipe("prompt", PromptConfig(), lr["prompt"]),
        Recipe("ptuning_v2", PrefixConfig(reparameterize=False), lr["ptuning_v2"], linear_head=True),
        Recipe("ia3", IA3Config(), lr["ia3"]),
    )


@dataclass(frozen=True)
class ScaleSettings:
    bases_scale: str  # the shared bases of this scale (repro.bases): the encoder, the decoders and the
    # LM-adapted encoder-decoders (every size)
    main_index: int  # which decoder the few-shot and XSum arms use
    recipes: tuple[Recipe, ...]
    steps: int  # the GLUE arm's budget, the same for every method
    batch_size: int
    sweep_steps: int  # the decoder sweep's budget
    sweep_batch: int
    warmup_fraction: float
    glue_base: str  # the base the GLUE arm tunes: "encoder" (the papers' BERT / RoBERTa) or a decoder's size label
    scratch_lr: float  # full fine-tuning of the GLUE arm's network from random weights (what pre-training adds)
    glue_tasks: tuple[str, ...]
    train_examples: int | None  # the GLUE arm's, per task, a seeded subset (None: all)
    sweep_examples: int | None  # the sweep's, per task
    eval_examples: int | None  # dev items per task (None: all)
    glue_heldout: int  # whole SST-2 training sentences the GLUE arm also scores (`papers.glue.heldout_sentences`)
    sweep_tasks: tuple[str, ...]  # classification tasks the sweep's decoders and encoder-decoders are tuned on
    fewshot_tasks: tuple[str, ...]
    fewshot_k: int  # training examples per task (T-Few: 20-70 per RAFT task)
    fewshot_subsets: int  # random subsets of k (each its own seed)
    fewshot_steps: int  # T-Few: 1,000 steps of batch 8
    fewshot_batch: int
    xsum_eval: int  # documents scored; the rest of the mirror's 1,000 are training data
    xsum_steps: int
    xsum_batch: int
    xsum_doc_words: int  # the document's lead, so prompt + summary fit the decoder's context
    xsum_gen_tokens: int
    profile_batch: int
    profile_length: int
    profile_steps: int

    @property
    def decoder_sizes(self) -> tuple[BaseSpec, ...]:
        """The decoder sweep, smallest first (P-C2's is T0's sizes)."""
        return tuple(decoder_bases(self.bases_scale))

    @property
    def main(self) -> BaseSpec:
        return self.decoder_sizes[self.main_index]

    @property
    def encdec_labels(self) -> list[str]:
        """P-C2's sweep, ascending: the LM-adapted encoder-decoders (T0's bases)."""
        return [encdec_label(z) for z in encoder_decoder_bases(self.bases_scale)]

    @property
    def sweep_labels(self) -> list[str]:
        return self.encdec_labels + [z.label for z in self.decoder_sizes]

    def recipe(self, name: str) -> Recipe:
        return next(r for r in self.recipes if r.name == name)

    @property
    def scratch_recipe(self) -> Recipe:
        """Full fine-tuning of the GLUE arm's network from random weights, at its own tuned rate."""
        return dataclasses.replace(self.recipe("full"), name="scratch", lr=self.scratch_lr)

    def heldout(self, task: str) -> int:
        """The GLUE arm's held-out training sentences for `task` (SST-2 has them; the rest none)."""
        return self.glue_heldout if TASKS[task].phrases else 0

    def budget(self, arm: str) -> tuple[int, int]:
        """(steps, batch size) of the glue or sweep arm."""
        return (self.steps, self.batch_size) if arm == "glue" else (self.sweep_steps, self.sweep_batch)


# Learning rates: AdamW over a few hundred steps (the papers' schedules are far longer). Probed on
# the cpu bases with SST-2 (1,000 examples, 200 steps of 32, dev accuracy; majority class 52.0%):
# full 1e-4 52.2 / 3e-4 58.0 / 1e-3 59.3 / 3e-3 55.7 (encoder), 3e-4 61.8 / 1e-3 64.7 / 3e-3 66.7 (L3d96);
# LoRA 3e-3 58.0 / 1e-2 58.0 / 3e-2 52.0 (encoder), 3e-3 54.2 / 1e-2 57.3 / 3e-2 52.0 (L3d96);
# (IA)^3 1e-2 52.0 / 1e-1 55.0 (L3d96). The other methods stay at the majority class on these bases at
# every rate tried (adapters 1e-3..5e-2, prefix 1e-3..1e-2, prompt 3e-3..3e-1, P-Tuning v2 1e-2..3e-2),
# so theirs are the rates at which they best fit 32 training examples in 150 steps of 8 (adapters
# 1e-2: 81%, prefix 3e-3: 69%, P-Tuning v2 1e-2: 75%, (IA)^3 1e-1: 81%, LoRA 3e-3: 97%; prompt
# tuning stays at the class prior at every rate: its gradient vanishes once it has learned the prior).
#
# Where the cpu rates came from. The first committed cpu runs used rates three of which (full, LoRA,
# (IA)^3) were chosen on SST-2's *dev* accuracy, the same dev items the verdicts are read on: a selection
# bias in those methods' favour. `select_lr` / `select_lrs` below re-choose each rate on a tuning split
# carved from the training examples (`tuning_split`), never reading the evaluated dev set.
# `select_lrs("cpu")` on 2026-12-06 (encoder, SST-2, 800 training / 200 tuning examples, seed 0;
# tuning-split accuracy per rate; "before" is the earlier, partly dev-chosen rate):
#   full        1e-4 54.5  3e-4 57.5  1e-3 68.5  3e-3 56.5        -> 1e-3 (before: 1e-3, dev)
#   lora        3e-3 55.0  1e-2 53.0  3e-2 56.5                   -> 3e-2 (before: 1e-2, dev)
#   adapter     1e-3 54.5  3e-3 52.5  1e-2 55.0  3e-2 56.5        -> 3e-2 (before: 1e-2, training fit)
#   prefix      1e-3 55.0  3e-3 56.0  1e-2 55.5                   -> 3e-3 (before: 3e-3, training fit)
#   prompt      3e-3 56.5  3e-2 56.0  3e-1 55.0                   -> 3e-3 (before: 3e-2, the paper's)
#   ptuning_v2  3e-3 55.5  1e-2 56.5  3e-2 56.0                   -> 1e-2 (before: 1e-2, training fit)
#   ia3         1e-2 54.5  3e-2 52.5  1e-1 54.5                   -> 1e-2 (a tie with 1e-1, the grid's
#                                                                    first wins; before: 1e-1, dev)
# Only full fine-tuning separates its rates by more than the 200 items' noise (~±7 points); the other
# six sit within 2 points of the majority class at every rate, so for them the choice is close to
# arbitrary, but it is no longer made on the items that decide the verdicts. The smoke scale keeps this table.
_LR = {"full": 1e-3, "lora": 3e-2, "adapter": 3e-2, "prefix": 3e-3, "prompt": 3e-3, "ptuning_v2": 1e-2, "ia3": 1e-2}
# With better-trained bases the papers' own rates apply: LoRA 5e-4 (RoBERTa-base), adapters 1e-3 (Houlsby's
# grid 3e-5..3e-3), P-Tuning v2 5e-3, (IA)^3 3e-3 (T-Few), prompt tuning's 0.3 under Adafactor ~ 3e-2 in AdamW.
# The cpu GLUE arm now tunes SST-2 alone on decoder L4d128, 4,000 examples for 375 steps of 32 (3 epochs;
# GLUE_ARM_NOTE says why), so the rates were chosen again the same way, by `select_lr` on 2026-12-07 (3,200
# training / 800 tuning examples, seed 0; accuracy x100 on the tuning split, whose majority class is 53.2):
#   full        3e-4 70.6  1e-3 74.1  3e-3 73.4                   -> 1e-3
#   from scratch (the same network, random weights): 1e-4 71.2  3e-4 72.0  1e-3 71.9  -> 3e-4
#   lora        1e-3 54.0  3e-3 59.0  1e-2 63.4  3e-2 53.4        -> 1e-2
#   adapter     1e-3 53.5  3e-3 54.1  1e-2 56.1                   -> 1e-2
#   prefix      1e-3 53.8  3e-3 53.2  1e-2 53.2                   -> 1e-3
#   prompt      3e-3 53.0  3e-2 53.0  3e-1 52.5                   -> 3e-3 (nothing learned at any rate)
#   ptuning_v2  3e-3 56.1  1e-2 57.0  3e-2 55.0                   -> 1e-2
#   ia3         3e-3 53.0  1e-2 53.2  3e-2 54.5  1e-1 60.5  3e-1 62.4   -> 3e-1 (the grid's top)
# Three times the steps did not help LoRA (1,125 steps: 61.6 at 3e-3, 57.8 at 1e-2). The same probe on the
# shared encoder (BERT's reading: [CLS] and a new head): full 3e-4 75.1 / 1e-3 76.4 / 3e-3 53.2, but from
# random weights 77.2 (3e-4) / 77.1 (1e-3), so the encoder's pre-training adds nothing to SST-2 here;
# LoRA reached 62.5 there, adapters 59.6, (IA)^3 59.0.
# Once the 4,000 held-out sentences had left the pool (2026-12-08, the same split's sizes, seed 0): full 1e-3
# 78.4, LoRA 1e-2 62.8; LoRA read by a new linear head, as the LoRA paper's GLUE runs are, did no better
# (3e-3 62.1, 1e-2 54.5, 3e-2 56.1), so LoRA keeps the verbaliser reading every method but P-Tuning v2 uses.
_LR_CPU = {"full": 1e-3, "lora": 1e-2, "adapter": 1e-2, "prefix": 1e-3, "prompt": 3e-3, "ptuning_v2": 1e-2,
           "ia3": 3e-1}
_LR_GPU = {"full": 1e-4, "lora": 5e-4, "adapter": 1e-3, "prefix": 1e-3, "prompt": 3e-2, "ptuning_v2": 5e-3, "ia3": 3e-3}

GLUE_ARM_NOTE = (
    "The cpu GLUE arm is SST-2 alone, 4,000 training examples for 3 epochs, on decoder L4d128. The earlier arm (the "
    "shared encoder, five tasks of 1,000 examples, 120 steps) left full fine-tuning 2.7 points above the majority "
    "class, too close to read P-C1 or P-C3. With 4,000 examples SST-2 is learned, but on a tuning split carved from "
    "the training data the encoder fine-tuned from random weights does as well as from its pre-trained weights "
    "(77.2% vs 76.4%), so its pre-training supplies nothing a method that only adapts it could use; the decoder's "
    "does (74.1% vs 72.0% from random weights, and GPT-1's G1-C1). MRPC, RTE and CoLA stay at their floors even "
    "for GPT-1's fine-tuned decoder (papers.gpt1's task table), so SST-2 stands in for the GLUE average. The papers "
    "read BERT and RoBERTa; the LoRA paper also tunes GPT-2. Pre-training's edge over random weights, a few points, "
    "is within the noise of SST-2's 872 dev items (the 3-seed run on dev alone: +2.6 [-0.6, 5.8]), so the arm also "
    "scores 4,000 whole SST-2 training sentences that it never trains on, nor on any phrase inside them "
    "(`papers.glue.heldout_sentences`): 4,872 items. The rates above were chosen before the held-out sentences were "
    "set apart, on a tuning split that may hold some of them; only a rate was chosen there, from a grid of 3 to 5.")
LR_NOTES = {
    "smoke": "Learning rates: the table `papers.peft.select_lrs` chose for the encoder's earlier cpu arm (SST-2, 800 "
             "train / 200 tuning examples; the comment above `_LR`).",
    "cpu": "Learning rates: every rate was chosen by `papers.peft.select_lr` on a tuning split carved from SST-2's "
           "training examples (3,200 train / 800 tuning, decoder L4d128, seed 0, the GLUE arm's budget); the dev items "
           "the verdicts read were never used. The table is in the comment above `_LR_CPU`.",
    "gpu": "Learning rates: the papers' own where they apply to AdamW (see `_LR_GPU`), not chosen on a dev set here.",
}

# Learning-rate grids for `select_lrs` (the cpu probe's ranges above), in order of preference on a tie
LR_GRID = {"full": (3e-4, 1e-3, 3e-3), "lora": (1e-3, 3e-3, 1e-2, 3e-2), "adapter": (1e-3, 3e-3, 1e-2),
           "prefix": (1e-3, 3e-3, 1e-2), "prompt": (3e-3, 3e-2, 3e-1), "ptuning_v2": (3e-3, 1e-2, 3e-2),
           "ia3": (3e-3, 1e-2, 3e-2, 1e-1, 3e-1)}
TUNING_FRACTION = 0.2  # of each task's training examples, held out of training to choose the rate on

SCALES = {
    "smoke": ScaleSettings(
        bases_scale="smoke",
        main_index=2, recipes=recipes(_LR, bottleneck=4), steps=8, batch_size=16, sweep_steps=8, sweep_batch=16,
        warmup_fraction=0.1,
        glue_base="encoder", scratch_lr=1e-3, glue_tasks=tuple(TASKS), train_examples=48, sweep_examples=48,
        eval_examples=48, glue_heldout=16, sweep_tasks=("sst2",),
        fewshot_tasks=("sst2", "rte"), fewshot_k=16, fewshot_subsets=2, fewshot_steps=6, fewshot_batch=8,
        xsum_eval=4, xsum_steps=4, xsum_batch=4, xsum_doc_words=12, xsum_gen_tokens=8,
        profile_batch=8, profile_length=16, profile_steps=3,
    ),
    # Probes, one thread per process, measured while other jobs kept the 2-core machine at load ~3: the
    # encoder (BERT's cpu base, L2 d128) trains at 0.044-0.08 s/step full and 0.035-0.05 s with a PEFT method
    # at batch 32 (MRPC's pairs ~0.05 s at batch 16); at batch 16 on SST-2 the L2d48 decoder takes 0.028 s
    # full / 0.025 LoRA / 0.033 (IA)^3, L3d96 0.071 / 0.061 / 0.052, L4d144 ~2.2x L3d96; XSum on L3d96 0.38 s
    # full, 0.26 s prefix or prompt (batch 16, <= 128 tokens), generating 100 summaries ~2 s; a few-shot job
    # 2.8 s; the cost profile 0.8 s per base and method. So: GLUE 35 runs ~265 s, sweep 21 runs ~260 s,
    # few-shot 27 runs ~75 s, XSum 7 runs ~75 s, cost ~25 s: ~700 core-s, ~6.5 min on 2 cores with the bases
    # cached. Bases not cached add BERT's mlm_nsp row (185 s measured) and GPT-2's three runs (500 steps x
    # 0.20 / 0.32 / 0.62 s), ~6.8 min in 2 processes: ~13 min at that load, less on an idle machine.
    # The encoder-decoder sweep adds 21 runs of ~7 s (L2d64, one thread) and, uncached, T0's three
    # LM-adapted bases (412 s in one process). Measured: 1,071 s with the BERT and GPT-2 bases trained
    # in the run and T0's cached. (Those were the encoder and encoder-decoders of papers.bert and
    # papers.t0; the shared bases replacing them are timed in results/bases/cpu.json.)
    # The GLUE arm (GLUE_ARM_NOTE): SST-2 alone, 4,000 examples, 375 steps of 32 (3 epochs); the earlier arm
    # (five tasks, 1,000 examples, 120 steps) left full fine-tuning 2.7 points above the majority class.
    "cpu": ScaleSettings(
        bases_scale="cpu",
        main_index=1, recipes=recipes(_LR_CPU, bottleneck=8), steps=375, batch_size=32, sweep_steps=150,
        sweep_batch=16, warmup_fraction=0.1,
        glue_base="L4d128", scratch_lr=3e-4, glue_tasks=("sst2",), train_examples=4000, sweep_examples=1000,
        eval_examples=None, glue_heldout=4000, sweep_tasks=("sst2",),
        fewshot_tasks=("sst2", "rte", "mrpc"), fewshot_k=32, fewshot_subsets=3, fewshot_steps=50, fewshot_batch=8,
        xsum_eval=80, xsum_steps=40, xsum_batch=16, xsum_doc_words=50, xsum_gen_tokens=40,
        profile_batch=32, profile_length=44, profile_steps=8,
    ),
    "gpu": ScaleSettings(
        bases_scale="gpu",
        main_index=2, recipes=recipes(_LR_GPU, bottleneck=16), steps=600, batch_size=32, sweep_steps=600, sweep_batch=32,
        warmup_fraction=0.06, glue_base="encoder", scratch_lr=1e-4, glue_tasks=tuple(TASKS), train_examples=None,
        sweep_examples=None, eval_examples=None, glue_heldout=0,
        sweep_tasks=("sst2", "mrpc", "rte"), fewshot_tasks=("sst2", "rte", "mrpc", "cola"), fewshot_k=32,
        fewshot_subsets=5, fewshot_steps=500, fewshot_batch=8,
        xsum_eval=500, xsum_steps=1000, xsum_batch=32, xsum_doc_words=150, xsum_gen_tokens=64,
        profile_batch=32, profile_length=128, profile_steps=10,
    ),
}


# ----------------------------------------------------------------------------------------------
# Bases


@dataclass
class Base:
    """A pre-trained network every method starts from, as picklable data for the workers."""

    label: str  # "encoder", the decoder's size label ("L3d96"), or an encoder-decoder's ("t5lm_L2d64")
    family: str  # "encoder", "decoder" or "encoder-decoder" (the shared base's family)
    config: ModelConfig
    state: dict[str, torch.Tensor]
    tokenizer: Any
    pad_id: int
    key: str  # its pre-training run's artifact directory: the cache identity of what is tuned from it

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def max_len(self) -> int:
        return self.config.max_seq_len


def _call(fn, args: tuple):
    """`run_parallel` takes one function; the jobs here mix kinds."""
    return fn(*args)


def encdec_label(spec: BaseSpec) -> str:
    return f"t5lm_{spec.label}"  # apart from the decoders' labels (both sweeps have an L3d96)


def scratch_base(base: Base, seed: int) -> Base:
    """`base`'s network with random weights (drawn with `seed`): the from-scratch row beside full
    fine-tuning, which says how much of what full fine-tuning reaches the pre-training supplied."""
    torch.manual_seed(seed)
    net = SequenceClassifier(base.config.replace(n_labels=2)) if base.kind == "encoder" else LanguageModel(base.config)
    return dataclasses.replace(base, state=net.state_dict(), key=f"{base.key}-scratch-s{seed}")


def as_peft_base(label: str, shared) -> Base:
    """A `repro.bases.Base` (pre-trained or LM-adapted) loaded as picklable data for the workers."""
    model, tok = shared.load()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return Base(label, shared.spec.family, model.config, model.state_dict(), tok, pad, shared.dir.name)


# The pre-trained bases are the shared bases of this seed whatever the fine-tuning seed: the papers
# tune one released checkpoint (RoBERTa, BERT, GPT-2, T5, T0) with several fine-tuning seeds, so here
# every seed tunes the same bases, and a 3-seed cpu run does not pre-train them three times.
BASE_SEED = 0


def prepare_bases(s: ScaleSettings, seed: int = BASE_SEED) -> dict[str, Base]:
    """Pre-train what the cache lacks (every base in parallel processes, each checked against its
    target), LM-adapt the encoder-decoders, then load every base."""
    encoder = [get_base(s.bases_scale, "encoder")] if s.glue_base == "encoder" else []  # only the GLUE arm reads it
    specs = [*encoder, *s.decoder_sizes, *encoder_decoder_bases(s.bases_scale)]
    pretrain_bases(s.bases_scale, [z.name for z in specs], seeds=(seed,))
    bases = [as_peft_base("encoder", pretrain_base(z, seed)) for z in encoder]
    bases += [as_peft_base(z.label, pretrain_base(z, seed)) for z in s.decoder_sizes]
    bases += [as_peft_base(encdec_label(b.spec), b) for b in lm_adapted_bases(s.bases_scale, seed)]
    return {b.label: b for b in bases}


# ----------------------------------------------------------------------------------------------
# Tasks as token ids


def class_words(task: str) -> list[str] | None:
    """The registry's verbalised labels, in label order (None for STS-B's regression)."""
    if TASKS[task].similarity:
        return None
    from repro.data.tasks import get_task

    return list(next(get_task(task).examples(limit=1))["choices"])


def encoder_data(task: str, base: Base, max_len: int, n_train: int | None, n_eval: int | None,
                 heldout: int = 0) -> TaskData:
    """BERT's [CLS] A [SEP] B [SEP] with segment ids (`papers.glue.load_task`)."""
    return load_task(TASKS[task], base.tokenizer, max_len, n_train, n_eval, heldout)


def answer_lead(base: Base) -> str:
    """What comes before a label word: a decoder reads it after "Answer:" (" positive"); T5's target
    and BERT's label-init words stand alone ("positive")."""
    return " " if base.kind == "decoder" else ""


def verbaliser(task: str, base: Base) -> tuple[list[int], list[int]]:
    """How a language model reads the class: (tokens every answer starts with, one label token per
    class). Each class's answer is its label word (the registry's verbalisers); where the answers
    start with the same tokens (a small vocabulary spells " True" and " False" from a shared " "),
    those tokens end the prompt (a decoder) or start the decoder's input (an encoder-decoder) and
    the first token that differs names the class."""
    lead = answer_lead(base)
    answers = [base.tokenizer(lead + w, add_special_tokens=False)["input_ids"] for w in class_words(task)]
    k = 0
    while all(len(a) > k for a in answers) and len({a[k] for a in answers}) == 1:
        k += 1
    if any(len(a) <= k for a in answers) or len({a[k] for a in answers}) != len(answers):
        raise ValueError(f"{task}: the labels {class_words(task)} cannot be told apart by one token in this vocabulary")
    return answers[0][:k], [a[k] for a in answers]


def lm_task_data(task: str, base: Base, max_len: int, n_train: int | None, n_eval: int | None,
                 seed: int = 0, heldout: int = 0) -> tuple[TaskData, list[int]]:
    """A classification task as token ids for a language model, and the label token of each class
    (`verbaliser`). A decoder reads the registry's "qa" template (the prompt GPT-3 and FLAN score),
    left-truncated so "Answer:" and the answers' shared tokens stay; an encoder-decoder reads T5's
    text-to-text input ("sst2 sentence: ...", `repro.data.text_to_text.text_pair`) cut at the end, then eos.
    `heldout` as `papers.glue.load_rows`'."""
    from repro.data.tasks import get_task

    registry = get_task(task)
    shared, labels = verbaliser(task, base)
    if base.kind == "encoder-decoder":
        eos = base.tokenizer.eos_token_id
        text = lambda r: text_pair(registry, r)[0]  # noqa: E731
        cut = lambda x: x[: max_len - 1] + [eos]  # noqa: E731
    else:
        text, cut = registry.template("qa").render, lambda x: (x + shared)[-max_len:]

    def encode(rows: list[dict]):
        texts = [text(registry.preprocess(dict(r))) for r in rows]
        ids = [cut(x) for x in base.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        return [(x, [0] * len(x)) for x in ids], [float(r["label"]) for r in rows]

    train_rows, val_rows = load_rows(TASKS[task], n_train, n_eval, seed, heldout)
    return TaskData(TASKS[task], *encode(train_rows), *encode(val_rows)), labels


def task_data(task: str, base: Base, max_len: int, n_train: int | None, n_eval: int | None, heldout: int = 0
              ) -> tuple[TaskData, list[int] | None]:
    """A task as `base` reads it: BERT's input for the encoder (no label tokens: it gets a new
    head), the verbalised prompt for a language model (`lm_task_data`). The evaluated items are the
    dev set's, then `heldout` whole training sentences (`papers.glue.load_rows`)."""
    if base.kind == "encoder":
        return encoder_data(task, base, max_len, n_train, n_eval, heldout), None
    return lm_task_data(task, base, max_len, n_train, n_eval, heldout=heldout)


def class_tokens(task: str, base: Base) -> list[list[int]] | None:
    """Per class, the token ids of its label word (prompt tuning's class-label initialisation)."""
    words = class_words(task)
    if words is None:
        return None
    return [base.tokenizer(answer_lead(base) + w, add_special_tokens=False)["input_ids"] for w in words]


# ----------------------------------------------------------------------------------------------
# Task models


class DecoderClassifier(nn.Module):
    """A decoder LM read at the last real token: the LM head's logits of each class's label token
    (a verbaliser: no new parameters), or, with `linear_head`, a new linear layer (P-Tuning v2)."""

    def __init__(self, lm: LanguageModel, label_tokens: list[int], linear_head: bool = False):
        super().__init__()
        self.lm, self.config = lm, lm.config
        self.register_buffer("label_tokens", torch.tensor(label_tokens), persistent=False)
        self.classifier = nn.Linear(lm.config.d_model, len(label_tokens)) if linear_head else None

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        hidden = self.lm.body.decode(input_ids, attention_mask)
        last = hidden[torch.arange(len(hidden), device=hidden.device), last_token_index(attention_mask, input_ids)]
        logits = self.classifier(last) if self.classifier is not None else self.lm.lm_head(last)[:, self.label_tokens]
        return ModelOutput(logits=logits, hidden=hidden)


class EncDecClassifier(nn.Module):
    """An encoder-decoder LM read at the decoder's first answer position: the source goes to the
    encoder, the decoder starts from its start token (pad, as T5) followed by the tokens every answer
    shares, and the LM head's logits of each class's label token are the class scores (rank
    classification over that token; no new parameters), or, with `linear_head`, a new linear layer
    on the decoder's last hidden state (P-Tuning v2)."""

    def __init__(self, lm: LanguageModel, label_tokens: list[int], shared: list[int], start_id: int,
                 linear_head: bool = False):
        super().__init__()
        self.lm, self.config = lm, lm.config
        self.register_buffer("label_tokens", torch.tensor(label_tokens), persistent=False)
        self.register_buffer("decoder_prompt", torch.tensor([start_id, *shared]), persistent=False)
        self.classifier = nn.Linear(lm.config.d_model, len(label_tokens)) if linear_head else None

    def forward(self, input_ids, attention_mask=None, labels=None) -> ModelOutput:
        start = self.decoder_prompt.expand(len(input_ids), -1)
        hidden = self.lm(input_ids, attention_mask, decoder_input_ids=start).hidden[:, -1]
        logits = self.classifier(hidden) if self.classifier is not None else self.lm.lm_head(hidden)[:, self.label_tokens]
        return ModelOutput(logits=logits, hidden=hidden)


def finetune_config(recipe: Recipe, batch_size: int, warmup_fraction: float) -> FinetuneConfig:
    return FinetuneConfig(lr=recipe.lr, batch_size=batch_size, warmup_fraction=warmup_fraction,
                                     weight_decay=recipe.weight_decay)


def task_model(base: Base, task: GlueTask, recipe: Recipe, ft: FinetuneConfig, seed: int,
               label_tokens: list[int] | None) -> nn.Module:
    if base.kind == "encoder":
        return classifier_from(base.config, base.state, task, ft, seed)
    if task.similarity:
        raise ValueError(f"the {base.kind} bases are tuned on classification tasks (label tokens have no regression)")
    torch.manual_seed(seed)
    lm = LanguageModel(base.config.replace(dropout=ft.dropout))
    lm.load_state_dict(base.state)
    if base.kind == "decoder":
        return DecoderClassifier(lm, label_tokens, recipe.linear_head)
    shared, tokens = verbaliser(task.name, base)
    return EncDecClassifier(lm, tokens, shared, base.pad_id, recipe.linear_head)


def method_config(recipe: Recipe, class_ids: list[list[int]] | None, prompt_length: int | None = None) -> PeftConfig:
    """The recipe's configuration for one task: prompt tuning falls back to vocabulary init where
    there are no class labels (STS-B, XSum), and takes a longer prompt when asked (few-shot budgets)."""
    config = recipe.config
    if isinstance(config, PromptConfig):
        if config.init == "class_labels" and not class_ids:
            config = dataclasses.replace(config, init="vocab")
        if prompt_length:
            config = dataclasses.replace(config, length=prompt_length)
    return config


# ----------------------------------------------------------------------------------------------
# Jobs (run in worker processes; results cached beside the artifacts)


@dataclass(frozen=True)
class Job:
    """One fine-tuning: which arm, base, method and task, and its budget."""

    arm: str  # glue | sweep | fewshot | xsum | lr_select
    base: str
    method: str
    task: str
    seed: int
    steps: int
    batch_size: int
    prompt_length: int | None = None  # few-shot: prompt tuning's length at (IA)^3's budget


def classify_job(job: Job, base: Base, recipe: Recipe, data: TaskData, label_tokens: list[int] | None,
                 class_ids: list[list[int]] | None, warmup_fraction: float) -> dict:
    """Tune one classifier, return its dev predictions, the parameter counts and the seconds."""

    def compute() -> dict:
        ft = finetune_config(recipe, job.batch_size, warmup_fraction)
        model = task_model(base, data.task, recipe, ft, job.seed, label_tokens)
        info = apply_peft(model, method_config(recipe, class_ids, job.prompt_length), train_also=("classifier.",),
                          label_token_ids=class_ids, seed=job.seed)
        segments = base.kind == "encoder"
        t0 = time.perf_counter()
        finetune(model, data, ft, job.seed, base.pad_id, segments, steps=job.steps)
        seconds = time.perf_counter() - t0
        merge_for_inference(model)
        preds = predict_task(model.eval(), data, base.pad_id, segments)
        return {"preds": preds.tolist(), "seconds": seconds, "peft": dataclasses.asdict(info)}

    identity = {"job": dataclasses.asdict(job), "base": base.key, "recipe": _recipe_identity(recipe),
                "warmup": warmup_fraction, "class_ids": class_ids, "labels": label_tokens}
    out = artifact_dir(f"peft_{job.arm}_{job.base}_{job.method}_{job.task}_s{job.seed}", identity, code=[__name__],
                       data=fingerprint([data.train, data.train_labels, data.val, data.val_labels]))
    return train_once(out, compute)


def _recipe_identity(recipe: Recipe) -> dict:
    return {**dataclasses.asdict(recipe), "config": {"class": type(recipe.config).__name__,
                                                     **dataclasses.asdict(recipe.config)}}


def tuning_split(data: TaskData, fraction: float = TUNING_FRACTION, seed: int = 0) -> TaskData:
    """A task whose training examples are split in two: a seeded `fraction` of them becomes the
    evaluation side (`val`), the rest trains. Built from `data.train` alone: the evaluated dev set
    (`data.val`) is never read, so a rate chosen on it does not see the items the verdicts use."""
    n = len(data.train)
    k = round(fraction * n)
    if not 0 < k < n:
        raise ValueError(f"a tuning split of {fraction:g} x {n} training examples leaves nothing on one side")
    held = set(np.random.default_rng(seed).permutation(n)[:k].tolist())
    keep, tune = [i for i in range(n) if i not in held], sorted(held)
    return TaskData(data.task, [data.train[i] for i in keep], [data.train_labels[i] for i in keep],
                               [data.train[i] for i in tune], [data.train_labels[i] for i in tune])


def select_lr(base: Base, recipe: Recipe, task: str, candidates: tuple[float, ...], s: ScaleSettings, seed: int = 0,
              arm: str = "glue", room: int | None = None, fraction: float = TUNING_FRACTION) -> dict:
    """Choose `recipe`'s learning rate for `task` on `base` on a tuning split of the training
    examples (`tuning_split`): each candidate fine-tunes on the rest with the arm's budget, and the
    task's headline score on the tuning split decides (ties: the earlier candidate). The evaluated
    dev set plays no part. Returns the chosen rate, every candidate's score and the split's sizes."""
    room = room if room is not None else max(r.config.length for r in s.recipes if hasattr(r.config, "length"))
    n_train, steps_batch = s.train_examples if arm == "glue" else s.sweep_examples, s.budget(arm)
    # the measured run's training pool (held-out sentences left out), so no rate is chosen on them
    heldout = s.heldout(task) if arm == "glue" else 0
    full, label_tokens = task_data(task, base, base.max_len - room, n_train, 1, heldout)
    data = tuning_split(full, fraction, seed)
    glue_task = TASKS[task]
    scores = {}
    for lr in candidates:
        job = Job("lr_select", base.label, recipe.name, task, seed, *steps_batch)
        out = classify_job(job, base, dataclasses.replace(recipe, lr=lr), data, label_tokens,
                           class_tokens(task, base), s.warmup_fraction)
        value = task_metrics(glue_task, np.asarray(out["preds"]), np.asarray(data.val_labels))[glue_task.score].value
        scores[lr] = float(np.nan_to_num(value, nan=0.0))  # an undefined score (constant predictions) counts 0
    best = max(candidates, key=lambda lr: (scores[lr], -candidates.index(lr)))
    return {"method": recipe.name, "base": base.label, "task": task, "lr": best, "scores": scores,
            "tied": len(set(scores.values())) == 1, "train_examples": len(data.train),
            "tuning_examples": len(data.val)}


def select_lrs(scale: str, tasks: tuple[str, ...] = ("sst2",), methods: tuple[str, ...] = METHODS,
               seed: int = 0) -> list[dict]:
    """`select_lr` for every method on the GLUE arm's base and each task (`LR_GRID`), in worker
    processes: the machinery that chose the cpu rates (see the comment above `_LR_CPU`). Not run by
    `measure()`; its cost is one GLUE-arm fine-tuning per (method, task, candidate)."""
    s = SCALES[scale]
    spec = next(z for z in [get_base(s.bases_scale, "encoder"), *s.decoder_sizes] if s.glue_base in (z.name, z.label))
    base = as_peft_base(s.glue_base, pretrain_bases(s.bases_scale, [spec.name], seeds=(BASE_SEED,))[0])
    jobs = [(select_lr, (base, s.recipe(m), t, LR_GRID[m], s, seed)) for m in methods for t in tasks]
    return run_parallel(_call, jobs, desc="peft: learning rates on tuning splits of the training data")


def xsum_lead(example: dict, words: int) -> dict:
    """An XSum record with the document cut to its first `words` words (the context is short)."""
    lead = " ".join(example["document"].split()[:words])
    return {"document": lead, "input": lead, "target": example["summary"], "references": [example["summary"]]}


def xsum_task(s: ScaleSettings):
    """The registry's XSum (the mirror's 1,000-document test sample), re-split as T5's module does:
    the first `xsum_eval` documents are scored, the rest are training data; documents cut to a lead."""
    from repro.data.tasks import get_task

    n = s.xsum_eval
    return dataclasses.replace(get_task("xsum"), name="peft_xsum", eval_split=f"test[:{n}]",
                               exemplar_split=f"test[{n}:]",
                               preprocess=functools.partial(xsum_lead, words=s.xsum_doc_words))


class PeftLM(ReproLM):
    """The harness's LM for a model with virtual tokens: inputs leave their positions free."""

    @property
    def max_length(self) -> int:
        return self.model.config.max_seq_len - virtual_tokens(self.model)


def xsum_job(job: Job, base: Base, recipe: Recipe, s: ScaleSettings) -> dict:
    """Tune the decoder on XSum (loss on the summary), then generate greedily through the harness."""

    def compute() -> dict:
        import tempfile

        from harness.scenarios import Scenario, run_scenario

        torch.manual_seed(job.seed)
        lm = LanguageModel(base.config.replace(dropout=0.1))
        lm.load_state_dict(base.state)
        info = apply_peft(lm, method_config(recipe, None), seed=job.seed)
        task = xsum_task(s)
        template = task.template("tldr")
        pairs = [(template.render(r), template.answer(r)) for r in task.exemplar_pool()]
        block = lm.config.max_seq_len - virtual_tokens(lm)
        cfg = TrainConfig(steps=job.steps, batch_size=job.batch_size, lr=recipe.lr, betas=(0.9, 0.999),
                          weight_decay=recipe.weight_decay, schedule="linear",
                          warmup_steps=max(1, round(s.warmup_fraction * job.steps)), grad_clip=1.0, seed=job.seed,
                          log_every=job.steps, progress=False)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="peft-xsum-") as out_dir:
            Trainer(lm, cfg, prompt_answer_batches(pairs, base.tokenizer, block, job.batch_size, job.seed), out_dir).fit()
        seconds = time.perf_counter() - t0
        merge_for_inference(lm)
        result = run_scenario(PeftLM(lm.eval(), base.tokenizer, batch_size=16, device=str(resolve_device("auto"))),
                              Scenario(task=task, name="peft_xsum", limit=s.xsum_eval, max_gen_toks=s.xsum_gen_tokens))
        samples = [{"document": r["uid"], "prediction": r["prediction"], "reference": r["references"][0]}
                   for r in result.per_item[:3]]
        return {"metrics": {k: m.to_dict() for k, m in result.metrics.items()}, "seconds": seconds,
                "peft": dataclasses.asdict(info), "samples": samples}

    identity = {"job": dataclasses.asdict(job), "base": base.key, "recipe": _recipe_identity(recipe),
                "xsum": [s.xsum_eval, s.xsum_doc_words, s.xsum_gen_tokens, s.warmup_fraction]}
    # no data fingerprint: the XSum records are read inside the job; the settings above choose them
    out = artifact_dir(f"peft_xsum_{job.base}_{job.method}_s{job.seed}", identity, code=[__name__])
    return train_once(out, compute)


# ----------------------------------------------------------------------------------------------
# Cost: parameters, memory and speed, measured one method after another in this process


def step_memory(model: nn.Module, batch: dict) -> dict[str, int]:
    """Bytes a training step holds at its peak, counted: all weights, a gradient and AdamW's two
    moments per trainable weight, and every tensor autograd saves for the backward pass (distinct
    storages, weights excluded). Deterministic, and the same on any device."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _step_loss(model, batch)
    loss.backward()
    model.zero_grad(set_to_none=True)
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return {"weights": sum(p.numel() * p.element_size() for p in model.parameters()), "gradients": trainable,
            "optimizer": 2 * trainable, "activations": sum(saved.values())}


def _step_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return nn.functional.cross_entropy(model(**inputs).logits.float(), batch["labels"])


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def cost_profile(base: Base, recipe: Recipe, s: ScaleSettings, length: int, seed: int) -> dict:
    """One method on one base: parameters, memory of a training step, tokens/s of training steps
    (forward, backward, AdamW) and of inference (the deployable model), on a fixed batch of SST-2's
    shape (2 classes) with `length` real tokens per row."""
    ft = finetune_config(recipe, s.profile_batch, s.warmup_fraction)
    tokens = None if base.kind == "encoder" else verbaliser("sst2", base)[1]
    model = task_model(base, TASKS["sst2"], recipe, ft, seed, tokens)
    class_ids = class_tokens("sst2", base)
    info = apply_peft(model, method_config(recipe, class_ids), train_also=("classifier.",), label_token_ids=class_ids,
                      seed=seed)
    device = resolve_device("auto")
    model.to(device).train()
    g = torch.Generator().manual_seed(seed)
    B = s.profile_batch
    batch = {"input_ids": torch.randint(5, base.config.vocab_size, (B, length), generator=g),
             "attention_mask": torch.ones(B, length, dtype=torch.long), "labels": torch.randint(0, 2, (B,), generator=g)}
    if base.kind == "encoder":
        batch["token_type_ids"] = torch.zeros(B, length, dtype=torch.long)
    batch = {k: v.to(device) for k, v in batch.items()}
    memory = step_memory(model, batch)
    optimizer = build_optimizer(model, TrainConfig(lr=recipe.lr, weight_decay=recipe.weight_decay))

    def train_step() -> None:
        _step_loss(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    peak = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base_allocated = torch.cuda.memory_allocated(device)
        train_step()
        peak = torch.cuda.max_memory_allocated(device) - base_allocated
    train = [_timed(train_step, device) for _ in range(s.profile_steps + 1)][1:]  # the first warms up
    merge_for_inference(model)
    model.eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        infer = [_timed(lambda: model(**inputs), device) for _ in range(s.profile_steps + 1)][1:]
    # the fastest step: other processes sharing the machine only ever add time
    return {"peft": dataclasses.asdict(info), "memory": memory, "cuda_peak_step_bytes": peak,
            "train_tokens_per_s": B * length / min(train), "infer_tokens_per_s": B * length / min(infer),
            "device": str(device)}


# ----------------------------------------------------------------------------------------------
# Scores



def fewshot_seed(s: ScaleSettings, seed: int, i: int) -> int:
    """The data and training seed of few-shot subset `i` under training seed `seed`: seed x subsets + i,
    so each seed draws its own `fewshot_subsets` subsets and no two seeds share one (with seed + i,
    seeds 0 and 1 would share all but one subset and their runs would not be independent)."""
    if not 0 <= i < s.fewshot_subsets:
        raise ValueError(f"subset {i} of {s.fewshot_subsets}")
    return seed * s.fewshot_subsets + i


def no_gap() -> MetricResult:
    return zero_gap("full fine-tuning")


def pretraining_transfers(tasks: tuple[str, ...]) -> Predicate:
    """The GLUE arm's validity condition beside `full_learned`: on each task, full fine-tuning of the
    pre-trained base beats the same network fine-tuned from random weights. Where it does not, the
    base carries nothing the task needs, and a method that can only adapt it a little (LoRA,
    adapters) trails full fine-tuning for a reason the papers rule out by starting from BERT or
    RoBERTa. Read on each task's own score, not on `glue/scratch/gap`: an accuracy keeps its items,
    so the two rows pair item by item across seeds (`harness.seeds`), where a gap's bootstrap CI
    counts the seed-by-item noise once per seed again (the 5-seed cpu run of 2026-12-08: +1.6 points
    [-0.0, 3.2] through the gap, [0.2, 2.9] paired by item)."""
    return all_of(*[greater(f"glue/full/{t}/{TASKS[t].score}", f"glue/scratch/{t}/{TASKS[t].score}") for t in tasks])


def full_learned(stem: str, margin: float = 0.0) -> Predicate:
    """The validity condition of a comparison with full fine-tuning: full fine-tuning's mean task
    score beats the majority class's by more than `margin` (paired by item: `{stem}/majority/gap` is
    the majority class's score minus full fine-tuning's, `{stem}/full/gap` is 0)."""
    return greater(f"{stem}/full/gap", f"{stem}/majority/gap", margin)


# ----------------------------------------------------------------------------------------------
# The paper


@register
class PEFT(Paper):
    name = "peft"
    reported_key = "peft_family"
    citation = ("Houlsby et al. 2019; Li & Liang 2021; Lester et al. 2021; Hu et al. 2021 (LoRA); Liu et al. 2022 "
                "(P-Tuning v2); Liu et al. 2022 (T-Few, (IA)^3)")
    # cpu: 5 fine-tuning seeds per method. Every arm is a fine-tuning run (or a few-shot run on its own
    # subsets) of the same pre-trained bases (BASE_SEED), which are not re-trained per seed: ~8 min per
    # seed on 2 cores with the bases cached (measured 2026-12-08). Five, not three: with the held-out
    # sentences, pre-training's edge over random weights came out +2.4, +1.3, +2.4 points on seeds 0-2,
    # every seed positive, but t(0.975, 2) = 4.3 left the interval at [-0.04, 4.09]; at five seeds
    # t(0.975, 4) = 2.8 and the same spread decides it (the power note asked for ~7 at 80% power).
    default_seeds = {"smoke": [0], "cpu": [0, 1, 2, 3, 4], "gpu": [0, 1, 2]}

    def __init__(self, scale: str = "smoke"):
        pass  # `scale` is accepted for old callers; the claims take theirs (`claims(scale)`)

    def claims(self, scale: str) -> list[Claim]:
        """PEFT's claims at `scale` (a pure function of it). Each claim compares methods only where the
        model it needs has learned the tasks. P-C1 and P-C3 say a method comes within a tolerance of
        full fine-tuning, and P-C2 that its gap closes by δ: a method that learned nothing sits at the
        majority class, so full fine-tuning must beat the majority class by more than that tolerance
        (or δ), or a method that learned nothing would pass. P-C4 compares few-shot methods with each
        other: the one it prefers must beat the majority class."""
        s = SCALES[scale]
        sizes = s.encdec_labels
        glue = ", ".join(s.glue_tasks)
        return [
            Claim("P-C1", f"LoRA (r = {s.recipe('lora').config.r} on W_q, W_v) reaches full fine-tuning's GLUE average "
                          f"({glue}; at most {100 * LORA_MARGIN:g} point below it; same base and steps; full fine-tuning "
                          f"more than {100 * LORA_MARGIN:g} point above the majority class, and above the same network "
                          "fine-tuned from random weights)",
                  "Hu et al. 2021, Table 2", self.name,
                  provided(all_of(full_learned("glue", LORA_MARGIN), pretraining_transfers(s.glue_tasks)),
                           greater("glue/lora/gap", "glue/full/gap", -LORA_MARGIN, delta=LORA_DELTA)),
                  {"RoBERTa-base": "87.2 LoRA vs 86.4 FT", "RoBERTa-large": "89.0 vs 88.9"},
                  delta_source="LoRA - full fine-tuning is +0.8 (RoBERTa-base, 87.2 vs 86.4) and +0.1 (RoBERTa-large, "
                               "89.0 vs 88.9) GLUE points (Hu et al. Table 2; lora_roberta_base/large), 1.1-1.8 points "
                               "above our -1-point margin; δ = 1 GLUE point (0.01 on the fraction scale of score_gap), "
                               "the lower end, rounded down"),
            Claim("P-C2", "Prompt tuning's gap to full fine-tuning shrinks as the model grows (LM-adapted T5 "
                          f"{' -> '.join(z.removeprefix('t5lm_') for z in sizes)}, {', '.join(s.sweep_tasks)}; full "
                          f"fine-tuning more than {100 * PROMPT_SCALE_DELTA:g} points above the majority class at every "
                          "size, so the gap has room to close)",
                  "Lester et al. 2021, Fig. 1", self.name,
                  provided(all_of(*[full_learned(f"sweep/{z}", PROMPT_SCALE_DELTA) for z in sizes]),
                           monotone([f"sweep/{z}/prompt/gap" for z in sizes], "increasing", delta=PROMPT_SCALE_DELTA)),
                  {"trend": "gap closes with scale; ~0 at T5-XXL (11B)"},
                  delta_source="Lester et al. Fig. 1: the gap to model tuning closes from many SuperGLUE points at "
                               "T5-Small to ~0 at XXL (11B) over ~2.3 decades of parameters (prompt_tuning_scale: no "
                               "values in our reference); our sweeps span at most one decade (~5x parameters at the cpu "
                               "scale, ~10x at gpu), so δ for the last minus the first size is a low share of that, "
                               "2 points (0.02)"),
            Claim("P-C3", f"Houlsby adapters come within {100 * ADAPTER_MARGIN:g} GLUE points of full fine-tuning ({glue}) "
                          f"while training a few % of the parameters (at most {ADAPTER_SHARE:.0%}; full fine-tuning more "
                          f"than {100 * ADAPTER_MARGIN:g} points above the majority class, and above the same network "
                          "fine-tuned from random weights)",
                  "Houlsby et al. 2019, Table 1", self.name,
                  provided(all_of(full_learned("glue", ADAPTER_MARGIN), pretraining_transfers(s.glue_tasks)),
                           all_of(greater("glue/adapter/gap", "glue/full/gap", -ADAPTER_MARGIN, delta=ADAPTER_DELTA),
                                  greater("threshold/adapter_share", f"cost/{s.glue_base}/adapter/trainable_share",
                                          delta=ADAPTER_SHARE_DELTA))),
                  {"BERT-large GLUE test": "80.0 adapters vs 80.4 full, 3.6% parameters per task"},
                  delta_source="score: Houlsby Table 1's adapters - full fine-tuning is -0.4 GLUE points (80.0 vs 80.4, "
                               "adapters_glue), exactly our margin, so the paper gives no effect beyond it; δ = its "
                               "resolution, 0.4 points (0.004). Share: Houlsby's adapters train 3.6% per task against "
                               f"our {ADAPTER_SHARE:.0%} ceiling for 'a few %', δ = the difference, "
                               f"{ADAPTER_SHARE_DELTA:.3g} of the parameters"),
            Claim("P-C4", f"Few-shot ({s.fewshot_k} examples per task), (IA)^3 beats LoRA and prompt tuning while training "
                          "no more parameters than either (and beats the majority class)",
                  "Liu et al. 2022 (T-Few), Fig. 2", self.name,
                  provided(greater("fewshot/ia3/acc", "fewshot/majority/acc"),
                           all_of(greater("fewshot/ia3/acc", "fewshot/lora/acc", delta=FEWSHOT_DELTA),
                                  greater("fewshot/ia3/acc", "fewshot/prompt/acc", delta=FEWSHOT_DELTA),
                                  greater("fewshot/lora/trainable", "fewshot/ia3/trainable", -1, delta=1),
                                  greater("fewshot/prompt/trainable", "fewshot/ia3/trainable", -1, delta=1))),
                  {"T-Few": "(IA)^3 above LoRA, prompt tuning and the rest at 0.01% of T0-3B's parameters"},
                  delta_source="accuracy: T-Few Fig. 2 ranks (IA)^3 above LoRA and prompt tuning with no values in our "
                               "reference; a practical threshold of 1 accuracy point (0.01). Trainable parameters: a "
                               "budget constraint on integer counts (at least as many as (IA)^3's), δ = 1 parameter, "
                               "their resolution"),
        ]

    def plots(self, scale: str) -> list[Figure]:
        """The encoder arm per method (score gap, trained share, step cost), the few-shot arm (P-C4) and
        the size sweeps (P-C2). GLUE-score gaps are drawn in points (declared percentage-type above),
        trained shares as stored fractions."""
        s = SCALES[scale]
        names = [r.name for r in s.recipes]

        def bars(title: str, keys: list[str], **kw) -> Panel:
            return Panel(title, (Series(title, tuple(keys)),), kind="bars", **kw)

        # Each method is one bar here, where the old figure put each at its trained share on a log axis: a panel's
        # series share one x, and every method's share is a different key. Step costs are drawn as measured: their
        # ratio to full fine-tuning is no stored metric.
        glue = s.glue_base
        encoder = Figure("encoder", f"PEFT on the GLUE arm's base, {glue} ({scale} scale)", (
            bars("GLUE average - full fine-tuning (P-C1, P-C3)",
                 [f"glue/{n}/gap" for n in names] + ["glue/scratch/gap", "glue/majority/gap"],
                 xlabel="score gap (GLUE points)", reference=0.0),
            bars("trained parameters (share of the base)", [f"cost/{glue}/{n}/trainable_share" for n in names],
                 log_x=True),
            bars("training memory (MB)", [f"cost/{glue}/{n}/train_memory_mb" for n in names]),
            bars("training tokens/s", [f"cost/{glue}/{n}/train_tokens_per_s" for n in names]),
        ))
        fewshot = Figure("fewshot", f"PEFT few-shot, {s.fewshot_k} examples per task ({scale} scale)", (
            bars("accuracy (P-C4)", [f"fewshot/{n}/acc" for n in FEWSHOT_METHODS], xlabel="accuracy x100"),
            bars("trained parameters", [f"fewshot/{n}/trainable" for n in FEWSHOT_METHODS], log_x=True),
        ))

        def sweep(title: str, labels: list[str]) -> Panel:
            gaps = [Series(METHOD_NAMES[n], tuple(f"sweep/{label}/{n}/gap" for label in labels))
                    for n in names if n != "full"]
            majority = Series("majority class", tuple(f"sweep/{label}/majority/gap" for label in labels), dashed=True)
            return Panel(title, (*gaps, majority), x=tuple(f"cost/{label}/full/trainable" for label in labels),
                         xlabel="parameters", ylabel=f"{', '.join(s.sweep_tasks)} - full fine-tuning (points)",
                         log_x=True, reference=0.0)

        sweeps = Figure("sweeps", f"PEFT gap to full fine-tuning vs size ({scale} scale)", (
            sweep("LM-adapted T5: gap to full vs size (P-C2: prompt tuning)", s.encdec_labels),
            sweep("Decoders: gap to full vs size", [z.label for z in s.decoder_sizes]),
        ))
        return [encoder, fewshot, sweeps]

    # -- the runs ----------------------------------------------------------------------------------
    def measure(self, scale: str, seeds: list[int]) -> Measured:
        """One fine-tuning seed (the runner calls this once per seed and merges the metrics over seeds):
        every method fine-tunes the same pre-trained bases (BASE_SEED) with this seed."""
        s = SCALES[scale]
        seed = one_seed(seeds)
        bases = prepare_bases(s, BASE_SEED)
        glue = bases[s.glue_base]
        main = bases[s.main.label]
        recipes_by_name = {r.name: r for r in s.recipes}
        room = max(max(r.config.length for r in s.recipes if hasattr(r.config, "length")),
                   fewshot_prompt_length(main.config, s))  # positions every input leaves to virtual tokens

        jobs: list[tuple[Job, tuple]] = []
        data: dict[tuple[str, str], TaskData] = {}
        glue_arms = [(r, glue) for r in s.recipes] + [(s.scratch_recipe, scratch_base(glue, seed))]  # drawn once
        for t in s.glue_tasks:
            data["glue", t], tokens = task_data(t, glue, glue.max_len - room, s.train_examples, s.eval_examples,
                                                s.heldout(t))
            for r, model in glue_arms:
                job = Job("glue", glue.label, r.name, t, seed, *s.budget("glue"))
                jobs.append((job, (classify_job, (job, model, r, data["glue", t], tokens,
                                                  class_tokens(t, glue), s.warmup_fraction))))
        for dec in [bases[label] for label in s.sweep_labels]:
            for t in s.sweep_tasks:
                data[dec.label, t], tokens = lm_task_data(t, dec, dec.max_len - room, s.sweep_examples, s.eval_examples)
                for r in s.recipes:
                    job = Job("sweep", dec.label, r.name, t, seed, *s.budget("sweep"))
                    jobs.append((job, (classify_job, (job, dec, r, data[dec.label, t], tokens,
                                                      class_tokens(t, dec), s.warmup_fraction))))
        prompt_length = fewshot_prompt_length(main.config, s)
        for t in s.fewshot_tasks:
            for i in range(s.fewshot_subsets):
                sub = fewshot_seed(s, seed, i)
                few, tokens = lm_task_data(t, main, main.max_len - room, s.fewshot_k, s.eval_examples, seed=sub)
                data[f"fewshot{i}", t] = few
                for m in FEWSHOT_METHODS:
                    job = Job("fewshot", main.label, m, t, sub, s.fewshot_steps, s.fewshot_batch,
                              prompt_length if m == "prompt" else None)
                    jobs.append((job, (classify_job, (job, main, recipes_by_name[m], few, tokens, class_tokens(t, main),
                                                      s.warmup_fraction))))
        for r in s.recipes:
            job = Job("xsum", main.label, r.name, "xsum", seed, s.xsum_steps, s.xsum_batch)
            jobs.append((job, (xsum_job, (job, main, r, s))))

        # largest first, so the worker processes finish together
        size = {b.label: sum(v.numel() for v in b.state.values()) for b in bases.values()}
        order = sorted(range(len(jobs)), key=lambda i: -size[jobs[i][0].base] * jobs[i][0].steps * jobs[i][0].batch_size
                       * (3 if jobs[i][0].method == "full" else 1) * (4 if jobs[i][0].arm == "xsum" else 1))
        done = run_parallel(_call, [jobs[i][1] for i in order], desc="peft: fine-tuning")
        results = {jobs[i][0]: out for i, out in zip(order, done)}

        length = min(s.profile_length, min(b.max_len for b in bases.values()) - room)
        costs = {(b.label, r.name): cost_profile(b, r, s, length, seed) for b in bases.values() for r in s.recipes}
        metrics = self.score(s, seed, data, results, costs, main)
        configs = {"scale": dataclasses.asdict(s), "recipes": {r.name: _recipe_identity(r) for r in s.recipes},
                   "bases": {b.label: {"family": b.family, "run": b.key, "model": dataclasses.asdict(b.config)}
                             for b in bases.values()},
                   "virtual_token_room": room, "fewshot_prompt_length": prompt_length, "profile_length": length,
                   "seeds": seeds}
        tables = {"Choosing a method: cost and score gap to full fine-tuning, per base (same steps)":
                      self.choice_table(s, metrics, bases),
                  "Few-shot accuracy (P-C4, x100, pooled over tasks and subsets)": self.fewshot_table(s, metrics),
                  "XSum samples (main decoder)": self.xsum_samples(results)}
        return Measured(metrics, configs, notes=self.notes(s, seeds, bases, results, room, prompt_length, length),
                        tables=tables)

    # -- metrics -----------------------------------------------------------------------------------
    def score(self, s: ScaleSettings, seed: int, data: dict, results: dict, costs: dict, main: Base) -> dict:
        m: dict[str, MetricResult] = {}

        def pooled(arm: str, base: str, method: str, task: str) -> tuple[GlueTask, np.ndarray, np.ndarray]:
            """The seed's dev predictions and the gold labels."""
            preds = np.asarray(results[Job(arm, base, method, task, seed, *s.budget(arm))]["preds"])
            key = ("glue" if arm == "glue" else base, task)
            return TASKS[task], preds, np.asarray(data[key].val_labels)

        for arm, base, tasks, stem in [("glue", s.glue_base, s.glue_tasks, "glue")] + \
                [("sweep", label, s.sweep_tasks, f"sweep/{label}") for label in s.sweep_labels]:
            names = [r.name for r in s.recipes] + (["scratch"] if arm == "glue" else [])
            parts = {name: [pooled(arm, base, name, t) for t in tasks] for name in names}
            for name, ps in parts.items():
                for task, p, g in ps:
                    for metric, value in task_metrics(task, p, g).items():
                        if arm == "glue" or metric == task.score:
                            m[f"{stem}/{name}/{task.name}/{metric}"] = value
                    n_dev = len(g) - (s.heldout(task.name) if arm == "glue" else 0)
                    if n_dev < len(g):  # the dev items alone too, the papers' own evaluation set
                        for metric, value in task_metrics(task, p[:n_dev], g[:n_dev]).items():
                            m[f"{stem}/{name}/{task.name}/dev_{metric}"] = value
                m[f"{stem}/{name}/avg"] = average_score([(t, p, g, task_metrics(t, p, g)[t.score]) for t, p, g in ps])
                m[f"{stem}/{name}/gap"] = no_gap() if name == "full" else score_gap(ps, parts["full"])
            baseline = []
            for t in tasks:
                task, _, golds = parts["full"][tasks.index(t)]
                train = data["glue" if arm == "glue" else base, t].train_labels
                baseline.append((task, np.full(len(golds), majority(task, train)), golds))
            m[f"{stem}/majority/avg"] = average_score([(t, p, g, task_metrics(t, p, g)[t.score]) for t, p, g in baseline])
            m[f"{stem}/majority/gap"] = score_gap(baseline, parts["full"])  # below 0: full fine-tuning learned
        m["glue/lora/gap"].extra["reported_id"] = "lora_roberta_base"
        m["glue/adapter/gap"].extra["reported_id"] = "adapters_glue"
        m[f"sweep/{s.encdec_labels[-1]}/prompt/gap"].extra["reported_id"] = "prompt_tuning_scale"

        # few-shot: every dev item of every task and subset, pairable across methods
        for method in ("majority", *FEWSHOT_METHODS):
            values, ids = [], []
            for t in s.fewshot_tasks:
                per_task = []
                for i in range(s.fewshot_subsets):
                    job = Job("fewshot", main.label, method, t, fewshot_seed(s, seed, i), s.fewshot_steps, s.fewshot_batch,
                              fewshot_prompt_length(main.config, s) if method == "prompt" else None)
                    few = data[f"fewshot{i}", t]
                    golds = few.val_labels
                    preds = results[job]["preds"] if method != "majority" else \
                        [majority(TASKS[t], few.train_labels)] * len(golds)
                    correct = [float(int(p) == int(g)) for p, g in zip(preds, golds)]
                    per_task += correct
                    values += correct
                    ids += [f"{t}|{i}|{j}" for j in range(len(golds))]
                    if method != "majority":
                        m[f"fewshot/{method}/trainable"] = MetricResult.exact("trainable", results[job]["peft"]["trainable"])
                m[f"fewshot/{method}/{t}/acc"] = mean_with_ci("acc", per_task, subsets=s.fewshot_subsets)
            m[f"fewshot/{method}/acc"] = mean_with_ci("acc", values, tasks=list(s.fewshot_tasks), k=s.fewshot_k,
                                                      subsets=s.fewshot_subsets)
            m[f"fewshot/{method}/acc"].extra["item_ids"] = ids
        m["fewshot/ia3/acc"].extra["reported_id"] = "ia3_raft"

        # XSum through the harness
        rouge = {}
        for r in s.recipes:
            out = results[Job("xsum", main.label, r.name, "xsum", seed, s.xsum_steps, s.xsum_batch)]
            for name, d in out["metrics"].items():
                m[f"xsum/{r.name}/{name}"] = rouge.setdefault((r.name, name), MetricResult.from_dict(d))
        for r in s.recipes:
            if r.name != "full":
                m[f"xsum/{r.name}/gap"] = paired_bootstrap_diff(rouge[r.name, "rougeL"].items, rouge["full", "rougeL"].items,
                                                                name="rougeL_gap")

        # cost, per base and method
        for (base, method), c in costs.items():
            info, memory = c["peft"], c["memory"]
            stem = f"cost/{base}/{method}"
            m[f"{stem}/trainable"] = MetricResult.exact("trainable", info["trainable"])
            m[f"{stem}/trainable_share"] = MetricResult.exact("trainable_share", info["trainable"] / info["base_parameters"])
            m[f"{stem}/stored_share"] = MetricResult.exact("stored_share", info["stored"] / info["base_parameters"])
            m[f"{stem}/train_memory_mb"] = MetricResult.exact("train_memory_mb", sum(memory.values()) / 2**20,
                                                              parts={k: v / 2**20 for k, v in memory.items()},
                                                              cuda_peak_step_mb=(c["cuda_peak_step_bytes"] or 0) / 2**20)
            m[f"{stem}/train_tokens_per_s"] = MetricResult.timing("train_tokens_per_s", c["train_tokens_per_s"],
                                                                 device=c["device"])
            m[f"{stem}/infer_tokens_per_s"] = MetricResult.timing("infer_tokens_per_s", c["infer_tokens_per_s"],
                                                                 device=c["device"])
        m[f"cost/{main.label}/prefix/stored_share"].extra["reported_id"] = "prefix_params"
        m["threshold/adapter_share"] = MetricResult.exact("trainable_share", ADAPTER_SHARE,
                                                          note="P-C3's 'a few %': the most an adapter may train")
        return m

    # -- report ------------------------------------------------------------------------------------
    @staticmethod
    def choice_table(s: ScaleSettings, m: dict, bases: dict[str, Base]) -> list[dict[str, str]]:
        """One row per base and method: what it trains and keeps, what a training step costs and how
        fast it runs (beside full fine-tuning's), and how far its score is from full fine-tuning's."""
        rows = []
        arms = [(s.glue_base, "glue", f"GLUE: {', '.join(s.glue_tasks)}")] + \
            [(label, f"sweep/{label}", ", ".join(s.sweep_tasks)) for label in s.sweep_labels]
        for label, stem, scored in arms:

            def cost(method: str, key: str, label=label) -> float:
                return m[f"cost/{label}/{method}/{key}"].value

            for r in s.recipes:
                gap, xsum = m[f"{stem}/{r.name}/gap"], m.get(f"xsum/{r.name}/gap")
                memory, train, infer = (cost(r.name, k) for k in ("train_memory_mb", "train_tokens_per_s",
                                                                   "infer_tokens_per_s"))
                rows.append({
                    "base": f"{label} ({stem.split('/')[0]} arm, {bases[label].family}, "
                            f"{cost('full', 'trainable') / 1e6:.2f}M)",
                    "method": METHOD_NAMES[r.name],
                    "trained %": f"{100 * cost(r.name, 'trainable_share'):.3g}",
                    "kept %": f"{100 * cost(r.name, 'stored_share'):.3g}",
                    "train memory MB (x full)": f"{memory:.1f} ({memory / cost('full', 'train_memory_mb'):.2f})",
                    "train tok/s (x full)": f"{train:,.0f} ({train / cost('full', 'train_tokens_per_s'):.2f})",
                    "infer tok/s (x full)": f"{infer:,.0f} ({infer / cost('full', 'infer_tokens_per_s'):.2f})",
                    f"score x100 ({scored})": f"{100 * m[f'{stem}/{r.name}/avg'].value:.1f}",
                    "gap to full (points, 95% CI)": "–" if r.name == "full" else
                        f"{100 * gap.value:+.1f} [{100 * gap.ci_low:+.1f}, {100 * gap.ci_high:+.1f}]",
                    "XSum R-L gap": "–" if label != s.main.label or r.name == "full" else
                        f"{xsum.value:+.1f} [{xsum.ci_low:+.1f}, {xsum.ci_high:+.1f}]",
                })
            for row, what in [("scratch", "(full fine-tuning from random weights: no pre-training)"),
                              ("majority", "(majority class: nothing learned)")]:
                if f"{stem}/{row}/gap" in m:
                    floor = m[f"{stem}/{row}/gap"]
                    rows.append({"base": rows[-1]["base"], "method": what,
                                 f"score x100 ({scored})": f"{100 * m[f'{stem}/{row}/avg'].value:.1f}",
                                 "gap to full (points, 95% CI)":
                                     f"{100 * floor.value:+.1f} [{100 * floor.ci_low:+.1f}, {100 * floor.ci_high:+.1f}]"})
        return rows

    @staticmethod
    def fewshot_table(s: ScaleSettings, m: dict) -> list[dict[str, str]]:
        rows = []
        for method in FEWSHOT_METHODS:
            row = {"method": METHOD_NAMES[method], "trained parameters": f"{m[f'fewshot/{method}/trainable'].value:,.0f}"}
            for t in s.fewshot_tasks:
                row[t] = f"{100 * m[f'fewshot/{method}/{t}/acc'].value:.1f}"
            acc = m[f"fewshot/{method}/acc"]
            row["all (95% CI)"] = f"{100 * acc.value:.1f} [{100 * acc.ci_low:.1f}, {100 * acc.ci_high:.1f}]"
            rows.append(row)
        return rows

    @staticmethod
    def xsum_samples(results: dict) -> list[dict[str, str]]:
        rows = []
        for job, out in results.items():
            if job.arm == "xsum" and job.method in ("full", "lora", "prefix"):
                for sample in out["samples"][:2]:
                    rows.append({"method": METHOD_NAMES[job.method], "document": sample["document"],
                                 "generated": sample["prediction"][:160], "reference": sample["reference"][:160]})
        return rows

    @staticmethod
    def notes(s: ScaleSettings, seeds: list[int], bases: dict[str, Base], results: dict, room: int,
              prompt_length: int, length: int) -> list[str]:
        seconds: dict[str, float] = {}
        for job, out in results.items():
            seconds[job.method] = seconds.get(job.method, 0.0) + out["seconds"]
        recipes_text = "; ".join(f"{METHOD_NAMES[r.name]} lr {r.lr:g}" for r in s.recipes)
        return [
            ("Bases: the GLUE arm tunes the shared "
             + (f"`{s.bases_scale}` encoder ({bases['encoder'].key}: BERT's encoder with rotary positions, masked-LM "
                "pre-trained on the general-English mixture)" if s.glue_base == "encoder" else
                f"decoder {s.glue_base} ({bases[s.glue_base].key}; the note on the GLUE arm says why not the encoder)")
             + f", and beside it the same network fine-tuned from random weights at lr {s.scratch_lr:g};")
            + f" the shared `{s.bases_scale}` decoder bases {', '.join(z.label for z in s.decoder_sizes)} (general-English "
            "mixture; the few-shot and XSum "
            f"arms use {s.main.label}) and the shared `{s.bases_scale}` encoder-decoders, LM-adapted as T0's, "
            f"{', '.join(s.encdec_labels)} (span corruption then prefix-LM adaptation on the same mixture, Lester et al.'s "
            f"setting; P-C2 is read on them). Every method trains {s.steps} steps of {s.batch_size} on the GLUE arm and "
            f"{s.sweep_steps} steps of {s.sweep_batch} on the sweep, "
            f"AdamW with {s.warmup_fraction:.0%} linear warm-up then linear decay; {recipes_text}. Every fine-tuning "
            f"seed starts from the bases pre-trained with seed {BASE_SEED} (the papers tune one released checkpoint); "
            f"this measurement is seed {seeds}, and the runner merges seeds (a comparison's interval: a t-interval over "
            "paired seeds plus the dev items' variance).",
            LR_NOTES[s.bases_scale],
            *([GLUE_ARM_NOTE] if s.bases_scale == "cpu" else []),
            f"GLUE ({', '.join(s.glue_tasks)}): {s.train_examples or 'all'} training examples per task (a seeded "
            f"subset; the sweep {s.sweep_examples or 'all'}), "
            f"{s.eval_examples or 'all'} dev items"
            + (f" and, for SST-2, {s.glue_heldout:,} whole training sentences held out of the training pool with "
               "every phrase inside them (`papers.glue.heldout_sentences`), scored with the dev items (the "
               "'dev_' metrics are dev's alone)" if s.glue_heldout else "")
            + "; metrics as BERT's (MCC for CoLA, F1 for MRPC, Pearson for STS-B, "
            "accuracy otherwise). QNLI has no training split in the mirror and WNLI is adversarial (BERT left it out). "
            f"Every input leaves {room} positions of the context free for virtual tokens, for every method alike.",
            "Decoders classify with the LM head's logits of each class's first label token after the registry's "
            "'qa' template (Lester et al.'s and T-Few's reading; P-Tuning v2 a linear head); the encoder-decoders read "
            "T5's text-to-text input and are scored by the same logits at the decoder's first answer position (rank "
            "classification over the label token; trained with cross-entropy over the classes' tokens, not T5's "
            "full-vocabulary loss); STS-B is left to the encoder.",
            f"Few-shot (P-C4): {s.fewshot_k} training examples per task, {s.fewshot_subsets} random subsets per seed "
            f"(subset i of seed s is drawn and trained with seed {s.fewshot_subsets}s + i: no subset repeats across seeds), "
            f"{s.fewshot_steps} steps of {s.fewshot_batch} for each method (T-Few: 1,000 steps of 8 with unlikelihood and "
            f"length-normalised losses, not used here); prompt tuning gets {prompt_length} tokens so it trains at least as "
            "many parameters as (IA)^3. Accuracy pooled over tasks and subsets; paired by item.",
            f"XSum: the first {s.xsum_eval} documents of the mirror's 1,000-document test sample are scored, the other "
            f"{1000 - s.xsum_eval} are training data; each document is cut to its first {s.xsum_doc_words} words so "
            f"prompt and summary fit the decoder's context; {s.xsum_steps} steps of {s.xsum_batch}, greedy decoding of at "
            f"most {s.xsum_gen_tokens} tokens through the harness, ROUGE F (rouge-score, stemmed).",
            f"Cost: measured in the parent process one method after another on a fixed batch of {s.profile_batch} x "
            f"{length} tokens (the fastest of {s.profile_steps} timed steps after one warm-up). Memory counts weights, "
            "gradients, AdamW's two moments and the tensors autograd saves for backward (so it is device-independent; "
            "on CUDA the allocator's peak of one step is recorded beside it). Inference speed is of the deployable "
            "model: LoRA and (IA)^3 merged into the weights, the prefix MLP dropped. 'kept %' is what a task stores "
            "(prefix tuning: the prefixes, not the MLP that produced them).",
            "Fine-tuning seconds per method (all arms, summed over worker processes): "
            + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + ".",
            "Scale: the papers' effects are at 10^8-10^11 parameters; ours are 10^4-10^6, so each claim's minimum "
            "effect of interest δ is the paper's effect scaled to our metric or a stated practical threshold (each "
            "claim's delta_source): an effect inside ±δ reads as not reproduced, one smaller than δ but real as "
            "reproduced, qualified.",
        ]


def fewshot_prompt_length(config: ModelConfig, s: ScaleSettings) -> int:
    """Prompt tuning's length for the few-shot arm: the recipe's (Lester: 20), or enough tokens to
    train at least as many parameters as (IA)^3 (k and v per layer, plus the FFN width)."""
    ia3 = config.decoder_layers * (2 * config.kv_heads * config.head_dim + config.d_ff)
    return max(s.recipe("prompt").config.length, math.ceil(ia3 / config.d_model))


__all__ = ["PEFT", "SCALES", "DecoderClassifier", "fewshot_prompt_length", "score_gap", "step_memory"]
