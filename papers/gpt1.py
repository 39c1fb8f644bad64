"""GPT-1 (Radford et al. 2018): generative pre-training of a decoder, then discriminative fine-tuning.

Recipe, scaled down:

1. Pre-training is the shared decoder base of the scale (`repro.bases`: a pre-LN decoder trained once
   on the books + Wikipedia mixture and reused by every decoder paper), not a GPT-1 run of our own. Our
   own 1.2M-token GPT-1 run left every GLUE task at its majority class but SST-2; the shared base saw
   ten times the tokens. The departure from GPT-1's post-LN architecture is stated in the notes. A
   one-layer LSTM LM of about the same non-embedding size is pre-trained on the same mixture, the same
   tokens and schedule (§5, G1-C2), at the scales that can afford it.
2. Fine-tune with §3.3's input transformations — a start token, a delimiter between the two
   sentences, an extract token whose final state feeds a linear layer; STS-B scores both sentence
   orders and adds the two representations — and the auxiliary LM loss L3 = L2 + 0.5 L1, with §4.1's
   recipe (3 epochs, batch 32, linear warm-up over 0.2% then linear decay, classifier dropout 0.1),
   on the GLUE tasks the scale's model can learn (`ScaleSettings.tasks`: measured, see SCALES).
3. Score every run on the task's validation split with the paper's metric (bootstrap CIs), in the
   variants of Table 5 (full, w/o pre-training, w/o aux LM, LSTM) and of Fig. 2 left (0..N
   pre-trained layers transferred), and score the base zero-shot with Fig. 2 right's heuristics, along
   its pre-training where it kept snapshots.

A task label is a GLUE task (`sst2`) or a smaller training set of one (`sst2@500`): G1-C3 is about
dataset size, and one task at two sizes holds everything else fixed.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from harness.claims import Claim, all_of, greater, monotone, provided
from harness.lm import ReproLM
from harness.metrics import MetricResult, matthews_corrcoef
from harness.plots import Figure, Panel, Series
from harness.scenarios import get_scenario, run_scenario
from papers import Measured, Paper, glue, one_seed, register
from papers.glue import (
    MAJORITY,
    TASKS,
    EpochPlan,
    GlueTask,
    above_floor,
    average_score,
    floor_metric,
    gap_key,
    glue_delta,
    load_rows,
    load_tuning_rows,
    majority_part,
    over_majority,
    task_metrics,
)
from repro.config import ModelConfig
from repro.model import LanguageModel
from repro.model.heads import IGNORE_INDEX, ModelOutput, last_token_index
from repro.model.recurrent import RecurrentConfig, RecurrentLM
from repro.pipeline import artifact_dir, run_parallel
from repro.train import Trainer, TrainConfig, snapshots

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # where evaluation runs (the Trainer picks its own)

# ----------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class FinetuneConfig:
    """§4.1 "Fine-tuning details"; defaults are the paper's values."""

    lr: float = 6.25e-5
    batch_size: int = 32
    epochs: int = 3
    warmup_fraction: float = 0.002  # linear warm-up over 0.2% of training, then linear decay to 0
    aux_weight: float = 0.5  # lambda in L3 = L2 + lambda * L1
    clf_dropout: float = 0.1  # dropout before the classifier
    dropout: float = 0.1  # residual / embedding / attention dropout, as in pre-training
    weight_decay: float = 0.01  # the "modified L2" on non-bias weights
    betas: tuple[float, float] = (0.9, 0.999)  # Adam


@dataclass(frozen=True)
class ScaleSettings:
    base: str  # the shared decoder base fine-tuned (`repro.bases`); its tokenizer and context are used
    # GPT-1 fine-tunes at 6.25e-5, 1/4 of its pre-training peak, over thousands of steps; our runs are a
    # few hundred steps of a 100x narrower model. The rate is chosen on a tuning split carved from
    # SST-2's training data (`tune_finetune_lr`, never the dev items the verdicts read), on the
    # from-scratch baseline, so the choice cannot favour pre-training; see the cpu entry for the numbers.
    finetune_lr: float  # the pre-trained arms (full, w/o aux LM, layers, LSTM)
    scratch_lr: float  # the from-scratch arm, tuned on its own so that no arm runs at another's rate
    # the tasks Table 5's rows are fine-tuned and read on (G1-C1, G1-C2): those the scale's model learns
    tasks: tuple[str, ...]
    # training examples per task label (a seeded subset; None = the whole train split)
    train_examples: tuple[tuple[str, int | None], ...]
    eval_examples: int | None  # validation items per task (None = the whole split)
    sweep_tasks: tuple[str, ...]  # tasks of the layer-transfer sweep (G1-C4)
    # G1-C3: "larger datasets benefit from the auxiliary objective but smaller ones do not"
    large_tasks: tuple[str, ...]
    small_tasks: tuple[str, ...]
    # one LSTM layer of this width ~ the base's non-embedding size; None: not run at this scale (G1-C2
    # then reads "not measured"), see the cpu entry for why
    lstm_hidden: int | None
    zero_shot_limit: int | None  # SST-2 / CoLA validation items per zero-shot reading
    cola_threshold_examples: int  # CoLA train sentences that set the zero-shot threshold
    zero_shot_points: int = 4  # G1-C5 reads the base at this many evenly spaced points of its pre-training
    epochs: int = 3

    @property
    def finetune(self) -> FinetuneConfig:
        return FinetuneConfig(lr=self.finetune_lr, epochs=self.epochs)

    @property
    def finetune_scratch(self) -> FinetuneConfig:
        return FinetuneConfig(lr=self.scratch_lr, epochs=self.epochs)

    @property
    def table_tasks(self) -> tuple[str, ...]:
        """Table 5's columns at this scale: the tasks its rows read, then G1-C3's small datasets."""
        return tuple(dict.fromkeys((*self.tasks, *self.small_tasks)))

    @property
    def fine_tuned(self) -> tuple[str, ...]:
        """Every task label the full model is fine-tuned on."""
        return tuple(dict.fromkeys((*self.tasks, *self.sweep_tasks, *self.large_tasks, *self.small_tasks)))


def base_spec(scale: str):
    """The shared decoder base `scale` fine-tunes (a `repro.bases.BaseSpec`)."""
    from repro.bases import get_base

    return get_base(scale, SCALES[scale].base)


def zero_shot_steps(scale: str) -> list[int]:
    """The base's pre-training steps G1-C5 reads: evenly spaced, the last its final weights."""
    steps, points = base_spec(scale).steps, SCALES[scale].zero_shot_points
    every = max(1, steps // points)
    return sorted({steps - every * k for k in range(points) if steps - every * k > 0})


def task_of(label: str) -> GlueTask:
    """The GLUE task of a label: `sst2`, or `sst2@500` (a smaller training set of SST-2)."""
    name = label.split("@")[0]
    if name not in TASKS:
        raise KeyError(f"task label {label!r}: no GLUE task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


SCALES = {
    # smoke: every task and both input shapes (pairs, similarity) run their code path in seconds
    "smoke": ScaleSettings(
        base="decoder-L2d48", finetune_lr=3e-3, scratch_lr=3e-3, tasks=tuple(TASKS),
        train_examples=(("sst2", 48), ("cola", 48), ("mrpc", 32), ("rte", 32), ("stsb", 32), ("sst2@16", 16)),
        eval_examples=48, sweep_tasks=("sst2", "cola"), large_tasks=("sst2",), small_tasks=("sst2@16",),
        lstm_hidden=64, zero_shot_limit=48, cola_threshold_examples=48,
    ),
    # cpu: which tasks the shared L4d128 base learns, measured on tuning splits carved from each task's
    # training data (`glue.load_tuning_rows`, never dev), base seed 0, lr 1e-3, 3 epochs (2026-12-07):
    #   task   train  tuning   full (pre-trained)   from scratch   majority
    #   SST-2   4000     872   acc 72.8             56.3           55.3
    #   STS-B   5000     700   pearson 0.372        0.333          0 (constant)
    #   MRPC    3000     600   F1 75.4              74.6           80.7 (all "paraphrase")
    #   RTE     2000     490   acc 51.2             46.9           46.9
    #   CoLA    7000    1000   MCC 5.2              5.8            0
    # Only SST-2 is learned well above its majority class; STS-B learns a little in both arms (mostly
    # word overlap) at five minutes per fine-tuning. So SST-2 stands in for the paper's tasks here.
    # Rates, SST-2 tuning split, seed 0, accuracy at 3e-4 / 1e-3 / 3e-3 (3 epochs):
    #   4,000 examples: pre-trained 67.9 / 72.8 / 73.3; from scratch 71.2 / 56.3 / 58.6
    #   1,000 examples: pre-trained 57.1 / 62.3 / -;    from scratch 55.6 / 62.7 / -
    #   1,000 examples, 10 epochs: pre-trained 65.4 / 66.7; from scratch 63.1 / 65.0
    # Each arm runs at its own best rate: from scratch 3e-4; pre-trained 1e-3, within half a point of
    # 3e-3 (noise on 872 items), and the lower one keeps the pre-trained weights closer (GPT-1 fine-tunes
    # at a quarter of its pre-training peak; 1e-3 is a third of the base's 3e-3). At one shared rate of
    # 1e-3, which an earlier recipe used, pre-training looked 16 points better; at each arm's own best it
    # is worth about 2 on this split: the verdict reads that honestly.
    # G1-C3's small dataset is SST-2 at 1,000 examples: at 500 neither arm leaves the majority class
    # (54.4 / 55.2 against 55.7, with and without the aux LM).
    # No LSTM: one LSTM layer trains at ~5-6k tokens/s on one core here (measured at widths 320 and
    # 390), so the base's 12.3M tokens would take ~40 min per seed, twice this paper's budget. G1-C2
    # waits for bases that keep snapshots, so that an LSTM trained on fewer tokens can be compared with
    # the Transformer at the same token count.
    "cpu": ScaleSettings(
        base="decoder-L4d128", finetune_lr=1e-3, scratch_lr=3e-4, tasks=("sst2",),
        train_examples=(("sst2", 4000), ("sst2@1000", 1000)),
        eval_examples=None, sweep_tasks=("sst2",), large_tasks=("sst2",), small_tasks=("sst2@1000",),
        lstm_hidden=None, zero_shot_limit=None, cola_threshold_examples=600,
    ),
    "gpu": ScaleSettings(
        base="decoder-L12d512", finetune_lr=2.5e-4, scratch_lr=2.5e-4,  # not measured
        tasks=tuple(TASKS),
        train_examples=(("sst2", 10_000), ("cola", None), ("mrpc", None), ("rte", None), ("stsb", None)),
        eval_examples=None, sweep_tasks=("sst2", "cola"), large_tasks=("sst2", "cola"), small_tasks=("rte", "mrpc"),
        lstm_hidden=1400, zero_shot_limit=None, cola_threshold_examples=2000,
    ),
}


# Table 5 rows -> our variant labels
VARIANTS = {"full": "t5_full_w_aux_LM", "scratch": "t5_wo_pretraining", "noaux": "t5_wo_aux_LM",
            "lstm": "t5_LSTM_w_aux_LM"}
VARIANT_NAMES = {"full": "Transformer w/ aux LM (full)", "scratch": "Transformer w/o pre-training",
                 "noaux": "Transformer w/o aux LM", "lstm": "LSTM w/ aux LM"}


# ----------------------------------------------------------------------------------------------
# Pre-training the LSTM baseline on the base's tokens, the same way


def pretrain_lstm(spec, seed: int, hidden: int) -> tuple[RecurrentLM, dict]:
    """(LSTM LM, its record): a one-layer LSTM of width `hidden` trained on the mixture the decoder
    base `spec` was trained on, with its tokenizer, tokens, batch and schedule; cached like a base
    (the Trainer resumes a finished run instantly)."""
    from repro import pretraining
    from repro.model import recurrent
    from repro.pretraining import FAMILY, load_mixture, objective_batches, val_batches

    mixture = load_mixture(FAMILY[spec.family][2], spec.vocab_size, spec.max_chars)
    config = RecurrentConfig(kind="decoder", vocab_size=len(mixture.tokenizer), cell="lstm", n_layer=1,
                             d_model=spec.d_model, d_hidden=hidden, dropout=0.0)
    out = artifact_dir(f"gpt1-lstm-{spec.name}-h{hidden}-s{seed}",
                       {"lstm": dataclasses.asdict(config), "spec": dataclasses.asdict(spec), "seed": seed},
                       code=[pretraining, recurrent], data=mixture.fingerprint)

    @torch.no_grad()
    def held_out_loss(model) -> float:  # the bases' held-out windows, every position a target: a mean of means
        device = next(model.parameters()).device
        return float(np.mean([float(model(**{k: v.to(device) for k, v in batch.items()}).loss) for batch in held_out]))

    held_out = val_batches(spec, mixture)
    torch.manual_seed(seed)
    model = RecurrentLM(config)
    batches = objective_batches("decoder", mixture.train_ids, mixture.tokenizer, spec.block_size, spec.batch_size, seed)
    cached = (out / "checkpoint.pt").exists()  # then the Trainer loads the finished run instead of training
    Trainer(model, spec.train_config(seed), batches, out, tokenizer=mixture.tokenizer).fit(
        eval_fn=lambda m: {"loss": held_out_loss(m)})
    return model.eval(), {"val_loss": held_out_loss(model.eval()), "cached": cached,
                          "tokens": spec.steps * spec.batch_size * spec.block_size}


# ----------------------------------------------------------------------------------------------
# §3.3 input transformations


@dataclass(frozen=True)
class SpecialTokens:
    """GPT-1's `_start_`, `_delimiter_` and `_classify_` (extract): new rows appended to the
    pre-trained vocabulary and learned during fine-tuning, as in the released code. Our BPE has
    one special, <|endoftext|>; reusing it for all three roles would make the start, the delimiter
    and the extract position indistinguishable to the classifier, so we add three, as the paper."""

    start: int
    delimiter: int
    extract: int

    @classmethod
    def after(cls, vocab_size: int) -> SpecialTokens:
        return cls(vocab_size, vocab_size + 1, vocab_size + 2)


def _truncate(pieces: list[list[int]], budget: int) -> list[list[int]]:
    """Drop tokens from the end of the longest piece until they all fit (BERT's pair truncation)."""
    pieces = [list(p) for p in pieces]
    while sum(map(len, pieces)) > budget:
        longest = max(range(len(pieces)), key=lambda i: len(pieces[i]))
        pieces[longest].pop()
    return pieces


def transform(pieces: list[list[int]], special: SpecialTokens, max_len: int) -> list[int]:
    """[start] a ([delim] b) [extract]: Fig. 1's traversal-style input for one ordering."""
    if max_len < len(pieces) + 2:
        raise ValueError(f"max_len={max_len} cannot hold the {len(pieces) + 1} special tokens and any text")
    ids = [special.start]
    for i, piece in enumerate(_truncate(pieces, max_len - len(pieces) - 1)):
        if i:
            ids.append(special.delimiter)
        ids += piece
    return ids + [special.extract]


def task_inputs(task: GlueTask, example: dict, tokenizer, special: SpecialTokens, max_len: int) -> list[list[int]]:
    """The token sequences one example is fed as: one, or both sentence orders for similarity."""
    missing = [f for f in task.fields if f not in example]
    if missing:
        raise ValueError(f"{task.name} example has no field {missing[0]!r}; it has {', '.join(example)}")
    pieces = [tokenizer(example[f], add_special_tokens=False)["input_ids"] for f in task.fields]
    orders = [pieces, pieces[::-1]] if task.similarity else [pieces]
    return [transform(p, special, max_len) for p in orders]


def collate(inputs: list[list[list[int]]], labels: list[float], similarity: bool, pad_id: int) -> dict:
    """Right-padded batch: input_ids (B, T), or (B, 2, T) for the two orders of a similarity pair;
    `aux_labels` are the next tokens for the auxiliary LM loss (-100 past each sequence's end). The
    delimiter and extract tokens are targets too, as in GPT-1's released code."""
    T = max(len(seq) for orders in inputs for seq in orders)
    k = len(inputs[0])
    ids = torch.full((len(inputs), k, T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(inputs), k, T), dtype=torch.long)
    for i, orders in enumerate(inputs):
        for j, seq in enumerate(orders):
            ids[i, j, : len(seq)] = torch.tensor(seq)
            mask[i, j, : len(seq)] = 1
    aux = torch.full_like(ids, IGNORE_INDEX)
    aux[..., :-1] = ids[..., 1:].masked_fill(mask[..., 1:] == 0, IGNORE_INDEX)
    squeeze = (lambda x: x) if similarity else (lambda x: x[:, 0])
    label_dtype = torch.float32 if similarity else torch.long
    return {"input_ids": squeeze(ids), "attention_mask": squeeze(mask), "aux_labels": squeeze(aux),
            "labels": torch.tensor(labels, dtype=label_dtype)}


# ----------------------------------------------------------------------------------------------
# The fine-tuned model


class GPT1Classifier(nn.Module):
    """§3.2: the pre-trained network, plus a linear layer W_y on the extract token's final state;
    the LM head stays, for the auxiliary objective. The same wrapper serves the Transformer
    `LanguageModel` and the `RecurrentLM` baseline (both return `hidden` and `logits`)."""

    def __init__(self, lm: nn.Module, n_labels: int, clf_dropout: float = 0.1):
        super().__init__()
        self.lm, self.config = lm, lm.config
        self.dropout = nn.Dropout(clf_dropout)
        self.classifier = nn.Linear(lm.config.d_model, n_labels)
        nn.init.normal_(self.classifier.weight, std=0.02)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> ModelOutput:
        shape = input_ids.shape  # (B, T), or (B, 2, T): both orders of a similarity pair
        ids = input_ids.reshape(-1, shape[-1])
        mask = attention_mask.reshape(-1, shape[-1]) if attention_mask is not None else None
        out = self.lm(ids, mask)
        extract = out.hidden[torch.arange(len(ids)), last_token_index(mask, ids)].view(*shape[:-1], -1)
        if input_ids.dim() == 3:  # §3.3 similarity: the two orders' representations are added
            extract = extract.sum(1)
        return ModelOutput(logits=self.classifier(self.dropout(extract)), hidden=out.hidden,
                           aux_logits=out.logits.view(*shape, -1))


def transferred_state(source: dict, target: dict, n_layers: int | None = None) -> dict:
    """`target`'s state with `source`'s weights copied in: every tensor (embeddings, positions,
    tied LM head) except Transformer blocks numbered >= n_layers (None: all blocks). Rows the
    source lacks — the new special tokens — keep their fresh initialisation."""
    out = dict(target)
    for name, weight in source.items():
        block = re.match(r"body\.decoder\.layers\.(\d+)\.", name)
        if block and n_layers is not None and int(block[1]) >= n_layers:
            continue
        if name not in target:
            raise KeyError(f"pre-trained weight {name} has no place in the fine-tuning model")
        if target[name].shape == weight.shape:
            out[name] = weight
        elif target[name].shape[1:] == weight.shape[1:] and target[name].shape[0] > weight.shape[0]:
            grown = target[name].clone()
            grown[: weight.shape[0]] = weight
            out[name] = grown
        else:
            raise ValueError(f"{name}: pre-trained shape {tuple(weight.shape)} does not fit {tuple(target[name].shape)}")
    return out


def finetune_model(base: nn.Module, task: GlueTask, ft: FinetuneConfig, seed: int, pretrained: bool = True,
                   n_layers: int | None = None) -> GPT1Classifier:
    """A fresh network of `base`'s architecture with three special-token rows and fine-tuning
    dropout; pre-trained weights copied in (the first `n_layers` blocks, all when None), or none
    at all for the "w/o pre-training" row."""
    config = base.config.replace(vocab_size=base.config.vocab_size + 3, dropout=ft.dropout)
    torch.manual_seed(seed)
    lm = LanguageModel(config) if isinstance(config, ModelConfig) else RecurrentLM(config)
    if pretrained:
        lm.load_state_dict(transferred_state(base.state_dict(), lm.state_dict(), n_layers))
    return GPT1Classifier(lm, task.n_labels, ft.clf_dropout)


# ----------------------------------------------------------------------------------------------
# Fine-tuning and prediction


@dataclass
class TaskData:
    task: GlueTask
    train_inputs: list[list[list[int]]]
    train_labels: list[float]
    val_inputs: list[list[list[int]]]
    val_labels: list[float]


def encode_rows(task: GlueTask, rows: list[dict], tokenizer, special: SpecialTokens, max_len: int) -> tuple[list, list[float]]:
    """(inputs, labels) of GLUE rows in §3.3's input format."""
    return [task_inputs(task, r, tokenizer, special, max_len) for r in rows], [float(r["label"]) for r in rows]


def load_task(task: GlueTask, tokenizer, special: SpecialTokens, max_len: int, n_train: int | None,
              n_val: int | None, seed: int = 0) -> TaskData:
    train_rows, val_rows = load_rows(task, n_train, n_val, seed)
    return TaskData(task, *encode_rows(task, train_rows, tokenizer, special, max_len),
                    *encode_rows(task, val_rows, tokenizer, special, max_len))


class EpochBatches:
    """Batch `step` of repeated epochs over the training set (`EpochPlan`: length-grouped, a pure
    function of the step), with or without the auxiliary LM targets."""

    def __init__(self, data: TaskData, batch_size: int, seed: int, aux: bool, pad_id: int, window: int = 16):
        if not data.train_inputs:
            raise ValueError(f"{data.task.name}: no training examples")
        self.data, self.aux, self.pad_id = data, aux, pad_id
        self.plan = EpochPlan([len(x[0]) for x in data.train_inputs], batch_size, seed, window)
        self.steps_per_epoch = self.plan.steps_per_epoch

    def __call__(self, step: int) -> dict:
        picks = self.plan(step)
        out = collate([self.data.train_inputs[i] for i in picks], [self.data.train_labels[i] for i in picks],
                      self.data.task.similarity, self.pad_id)
        if not self.aux:
            del out["aux_labels"]
        return out


def finetune(model: GPT1Classifier, data: TaskData, ft: FinetuneConfig, seed: int, aux: bool, pad_id: int) -> GPT1Classifier:
    batches = EpochBatches(data, ft.batch_size, seed, aux, pad_id)
    steps = ft.epochs * batches.steps_per_epoch
    cfg = TrainConfig(steps=steps, batch_size=ft.batch_size, lr=ft.lr, betas=ft.betas, weight_decay=ft.weight_decay,
                      schedule="linear", warmup_steps=max(1, round(ft.warmup_fraction * steps)), grad_clip=1.0,
                      aux_weight=ft.aux_weight, seed=seed, log_every=steps, progress=False)
    with tempfile.TemporaryDirectory(prefix="gpt1-finetune-") as out_dir:
        Trainer(model, cfg, batches, out_dir).fit()
    return model.eval()


def finetune_job(config, state: dict, data: TaskData, ft: FinetuneConfig, seed: int, pretrained: bool,
                 n_layers: int | None, aux: bool, pad_id: int) -> np.ndarray:
    """One fine-tuning run, from the pre-trained weights to dev predictions (a `run_parallel` job)."""
    base = LanguageModel(config) if isinstance(config, ModelConfig) else RecurrentLM(config)
    base.load_state_dict(state)
    model = finetune_model(base, data.task, ft, seed, pretrained=pretrained, n_layers=n_layers)
    return predict(finetune(model, data, ft, seed, aux, pad_id), data, pad_id)


def predict(model: GPT1Classifier, data: TaskData, pad_id: int, batch_size: int = 64) -> np.ndarray:
    """Class predictions (argmax) or similarity scores for the validation items, in order."""
    def inputs(examples: list) -> dict:
        batch = collate(examples, [0.0] * len(examples), data.task.similarity, pad_id)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    return glue.predict(model, data.val_inputs, inputs, data.task.similarity, batch_size=batch_size)


# ----------------------------------------------------------------------------------------------
# Fig. 2 right: zero-shot heuristics along pre-training


ZERO_SHOT_KEYS = ("sst2/acc", "cola/mcc", "sst2/over_majority", "cola/over_majority")  # what `zero_shot` returns


def mean_token_logprobs(lm: ReproLM, sentences: list[str]) -> np.ndarray:
    return np.array([lp / max(n, 1) for lp, n in lm.loglikelihood_rolling_with_counts(sentences)])


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The cut on `scores` (predict 1 above it) with the highest Matthews corr. on these labels."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order].astype(float)
    tp = np.cumsum(y)  # predicting the top k+1 as acceptable
    fp = np.arange(1, len(y) + 1) - tp
    fn, tn = y.sum() - tp, (len(y) - y.sum()) - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    k = int(np.nanargmax(np.where(np.isfinite(mcc), mcc, -np.inf)))
    return float((s[k] + s[k + 1]) / 2) if k + 1 < len(s) else float(s[k] - 1e-9)


def zero_shot(model: LanguageModel, tokenizer, s: ScaleSettings) -> dict[str, MetricResult]:
    """§5 "Zero-shot behaviors": SST-2 appends "very" and compares "positive" vs "negative";
    CoLA thresholds the mean token log-probability (the cut is set on CoLA train sentences). With
    each heuristic's score over the majority class's on the same items (`<task>/over_majority`)."""
    from repro.data import load

    lm = ReproLM(model, tokenizer, batch_size=64, device=DEVICE)
    out = run_scenario(lm, get_scenario("sst2:gpt1_very", limit=s.zero_shot_limit))
    sst2_preds = np.array([row["pred"] for row in out.per_item])
    sst2_golds = np.array([row["label"] for row in out.per_item])
    train, val = load("glue/cola", "train"), load("glue/cola", "validation")
    fit = train.select(range(min(s.cola_threshold_examples, len(train))))
    scored = val.select(range(min(s.zero_shot_limit or len(val), len(val))))
    cut = best_threshold(mean_token_logprobs(lm, fit["sentence"]), np.asarray(fit["label"]))
    preds = (mean_token_logprobs(lm, scored["sentence"]) > cut).astype(int).tolist()
    cola = matthews_corrcoef(preds, list(scored["label"]))
    cola.extra["threshold"] = cut
    sst2_train = list(load("glue/sst2", "train")["label"])
    return {"sst2/acc": out.metrics["acc"], "cola/mcc": cola,
            "sst2/over_majority": over_majority(TASKS["sst2"], sst2_preds, sst2_golds, sst2_train),
            "cola/over_majority": over_majority(TASKS["cola"], np.asarray(preds), np.asarray(scored["label"]),
                                                list(train["label"]))}


def load_base(scale: str, seed: int) -> tuple[object, LanguageModel, object]:
    """(base, model, tokenizer): the scale's shared decoder base for `seed` (a `repro.bases.Base`),
    trained once, then loaded; a base that missed its held-out target stops the run (`check_target`)."""
    from repro.bases import check_target, pretrain_base

    base = check_target(pretrain_base(base_spec(scale), seed))
    model, tok = base.load()
    return base, model.eval(), tok


def max_input(model: nn.Module) -> int:
    """The longest fine-tuning input the base's positions cover (its pre-training windows)."""
    return model.config.max_seq_len - 1


def tune_finetune_lr(scale: str, candidates: tuple[float, ...] = (3e-4, 1e-3, 3e-3), task: str = "sst2",
                     n_tune: int = 872, seed: int = 0, pretrained: bool = False) -> dict[float, float]:
    """Choose a fine-tuning rate without the dev items that decide the verdicts: fine-tune on the
    scale's training examples of `task` at each candidate rate and score the task's metric on
    `n_tune` further training examples held out for the choice (`glue.load_tuning_rows`; 872 = the
    size of SST-2 dev). Run once per arm (`pretrained` True: the rate of the pre-trained arms; False:
    the from-scratch arm's), so that each arm runs at its own best rate and the comparison favours
    neither. Not called by `measure`: it costs len(candidates) fine-tunings (the base is cached)."""
    s = SCALES[scale]
    _, base, tok = load_base(scale, seed)
    special, glue_task = SpecialTokens.after(len(tok)), task_of(task)
    n_train = dict(s.train_examples)[task]
    if n_train is None:
        raise ValueError(f"{scale}: {task} trains on its whole training split; nothing is left to tune on")
    train_rows, tune_rows = load_tuning_rows(glue_task, n_train, n_tune, seed=0)  # load_task's training rows
    max_len = max_input(base)
    data = TaskData(glue_task, *encode_rows(glue_task, train_rows, tok, special, max_len),
                    *encode_rows(glue_task, tune_rows, tok, special, max_len))  # tuning rows in the val slot
    scores = {}
    for lr in candidates:
        ft = dataclasses.replace(s.finetune, lr=lr)
        preds = finetune_job(base.config, base.state_dict(), data, ft, seed, pretrained, None, True, tok.pad_token_id)
        scores[lr] = task_metrics(glue_task, preds, np.asarray(data.val_labels))[glue_task.score].value
    return scores


# ----------------------------------------------------------------------------------------------
# The paper


def _score_key(variant: str, task: str) -> str:
    return f"{variant}/{task}/{task_of(task).score}"


def _points(a: float, b: float) -> float:
    return round(a - b, 2)


# Table 5 (x100): full, w/o pre-training, w/o aux LM, LSTM; our tasks' columns and the Avg
TABLE5 = {"full": {"cola": 45.4, "sst2": 91.3, "mrpc": 82.3, "stsb": 82.0, "rte": 56.0, "avg": 74.7,
                   "mnli": 81.8, "qqp": 70.3},
          "scratch": {"cola": 18.9, "sst2": 84.0, "mrpc": 79.4, "stsb": 30.9, "rte": 53.8, "avg": 59.9},
          "noaux": {"cola": 47.9, "sst2": 92.0, "mrpc": 84.9, "stsb": 83.2, "rte": 54.4, "avg": 75.0,
                    "mnli": 81.1, "qqp": 69.8},
          "lstm": {"avg": 69.1}}
# G1-C3's "helps the larger datasets": the paper's large datasets, MNLI and QQP (mean of the two gains)
AUX_GAIN = (_points(TABLE5["full"]["mnli"], TABLE5["noaux"]["mnli"]) + _points(TABLE5["full"]["qqp"], TABLE5["noaux"]["qqp"])) / 2
# "... but not the small ones": CoLA and MRPC, where the run without it scores higher (mean of the two)
NOAUX_GAIN = (_points(TABLE5["noaux"]["cola"], TABLE5["full"]["cola"]) + _points(TABLE5["noaux"]["mrpc"], TABLE5["full"]["mrpc"])) / 2
PRACTICAL_ZERO_SHOT_DELTA = 0.02  # G1-C5: 2 points, as the GLUE claims' threshold
GATE = "; read only once the model the claim prefers beats the majority class"


@register
class GPT1(Paper):
    name = "gpt1"
    reported_key = "gpt1_radford2018"
    citation = "Radford et al. 2018, Improving Language Understanding by Generative Pre-Training"
    # Each seed fine-tunes its own seed's shared base (trained once, reused by the other decoder
    # papers) and runs every fine-tuning.
    default_seeds = {"smoke": [0], "cpu": [0, 1, 2], "gpu": [0, 1, 2]}

    def claims(self, scale: str) -> list[Claim]:
        """A pure function of the scale. Every claim compares classifiers (or zero-shot heuristics),
        so each is read only once the model it prefers beats the majority class on every task it
        reads (`glue.above_floor`): per task for per-task claims, on each task of an average."""
        s = SCALES[scale]
        zs = zero_shot_steps(scale)
        last = f"zeroshot/step{zs[-1]}"
        n_layer = base_spec(scale).n_layer
        scratch_gain = {t: _points(TABLE5["full"][t], TABLE5["scratch"][t]) for t in s.tasks}
        lstm_gain = _points(TABLE5["full"]["avg"], TABLE5["lstm"]["avg"])
        return [
            Claim("G1-C1", "Generative pre-training + fine-tuning beats the same network trained from scratch, on every "
                           f"task ({', '.join(s.tasks)} here; each read once the pre-trained model beats its majority "
                           "class)",
                  "Table 5", self.name,
                  all_of(*[provided(above_floor(gap_key("full", t)),
                                    greater(_score_key("full", t), _score_key("scratch", t), delta=glue_delta(scratch_gain[t])))
                           for t in s.tasks]),
                  {"avg": (74.7, 59.9)},
                  delta_source="Table 5, full minus w/o pre-training per task ("
                               + ", ".join(f"{t} {scratch_gain[t]:g}" for t in s.tasks)
                               + " points), each capped at the 2-point practical threshold (glue.glue_delta): δ "
                               + ", ".join(f"{t} {glue_delta(scratch_gain[t]):g}" for t in s.tasks) + GATE),
            Claim("G1-C2", "The Transformer transfers better than an LSTM of similar size (average score; read once the "
                           "Transformer beats the majority class on every task)",
                  "Table 5", self.name,
                  provided(above_floor(*[gap_key("full", t) for t in s.tasks]),
                           greater("full/avg", "lstm/avg", delta=glue_delta(lstm_gain))),
                  {"avg": (74.7, 69.1)},
                  delta_source=f"Table 5 Avg, 74.7 vs 69.1 ({lstm_gain:g} points), capped at the 2-point practical "
                               f"threshold: δ {glue_delta(lstm_gain):g}" + GATE),
            Claim("G1-C3", f"The auxiliary LM loss helps the larger datasets ({', '.join(s.large_tasks)} here) "
                  f"but not the small ones ({', '.join(s.small_tasks)}: there the run without it scores higher)",
                  "Table 5", self.name,
                  all_of(*[provided(above_floor(gap_key("full", t)),
                                    greater(_score_key("full", t), _score_key("noaux", t), delta=glue_delta(AUX_GAIN)))
                           for t in s.large_tasks],
                         *[provided(above_floor(gap_key("noaux", t)),
                                    greater(_score_key("noaux", t), _score_key("full", t), delta=glue_delta(NOAUX_GAIN)))
                           for t in s.small_tasks]),
                  delta_source=f"Table 5: the aux LM gains on the paper's large datasets, MNLI and QQP, average "
                               f"{AUX_GAIN:g} points (δ {glue_delta(AUX_GAIN):g} for ours); without it CoLA and MRPC gain "
                               f"{NOAUX_GAIN:g} points on average, capped at the 2-point practical threshold (δ "
                               f"{glue_delta(NOAUX_GAIN):g} for the small tasks)" + GATE),
            Claim("G1-C4", f"Transferring more pre-trained layers helps ({' + '.join(s.sweep_tasks)} average score; read "
                           "once the fully transferred model beats the majority class)",
                  "Fig. 2 left", self.name,
                  provided(above_floor(*[gap_key("full", t) for t in s.sweep_tasks]),
                           monotone([f"layers{k}/avg" for k in range(n_layer + 1)], "increasing", delta=glue_delta(9.0))),
                  delta_source="Fig. 2 left: up to ~9 points on MultiNLI from no layers to all (papers.md: M), capped at "
                               f"the 2-point practical threshold: δ {glue_delta(9.0):g} for all layers minus none" + GATE),
            Claim("G1-C5", "Zero-shot heuristic scores rise steadily with pre-training updates (the base read at "
                           f"steps {', '.join(map(str, zs))}; each heuristic read once the final base beats the majority "
                           "class)",
                  "Fig. 2 right", self.name,
                  all_of(provided(above_floor(gap_key(last, "sst2")),
                                  monotone([f"zeroshot/step{z}/sst2/acc" for z in zs], "increasing",
                                           delta=PRACTICAL_ZERO_SHOT_DELTA)),
                         provided(above_floor(gap_key(last, "cola")),
                                  monotone([f"zeroshot/step{z}/cola/mcc" for z in zs], "increasing",
                                           delta=PRACTICAL_ZERO_SHOT_DELTA))),
                  delta_source="Fig. 2 right has no tabulated numbers (papers.md: M); a stated practical threshold of "
                               f"{100 * PRACTICAL_ZERO_SHOT_DELTA:g} points (accuracy, MCC x100) from the first snapshot "
                               "to the last" + GATE),
        ]

    def plots(self, scale: str) -> list[Figure]:
        """Table 5's rows per task, Fig. 2 left (layers transferred) and right (zero-shot along
        pre-training)."""
        s = SCALES[scale]
        layers = tuple(range(base_spec(scale).n_layer + 1))
        zs = tuple(zero_shot_steps(scale))
        # the no-aux-LM row is fine-tuned only where G1-C3 reads it: its other points stay empty
        shown = s.table_tasks
        table5 = Panel("Table 5 ablations (validation)",
                       tuple(Series(VARIANT_NAMES[v], tuple(_score_key(v, t) for t in shown)) for v in VARIANTS),
                       x=tuple(f"{t} ({task_of(t).score})" for t in shown), ylabel="task score x100", reference=0.0)
        # with one sweep task (cpu) its score is the average: drawn once
        per_task = [Series(f"{t} ({task_of(t).score})", tuple(_score_key(f"layers{k}", t) for k in layers))
                    for t in s.sweep_tasks] if len(s.sweep_tasks) > 1 else []
        sweep = Panel(f"Fig. 2 left: layers transferred ({' + '.join(s.sweep_tasks)})",
                      (Series("average", tuple(f"layers{k}/avg" for k in layers)), *per_task),
                      x=layers, xlabel="pre-trained layers transferred (embeddings always)", ylabel="average score x100")
        zero_shot = Panel("Fig. 2 right: zero-shot heuristics",
                          (Series("SST-2 acc ('very')", tuple(f"zeroshot/step{z}/sst2/acc" for z in zs)),
                           Series("CoLA MCC (log-prob cut)", tuple(f"zeroshot/step{z}/cola/mcc" for z in zs))),
                          x=zs, xlabel="pre-training updates", ylabel="accuracy / MCC x100", log_x=True)
        return [Figure("transfer", f"GPT-1 ({scale} scale)", (table5, sweep, zero_shot))]

    def measure(self, scale: str, seeds: list[int]) -> Measured:
        """Pre-train, fine-tune every variant on every task and score, all with the one seed the
        runner passes (it calls this once per seed and merges the metrics over seeds)."""
        seed = one_seed(seeds)
        s = SCALES[scale]
        ft = s.finetune
        metrics: dict[str, MetricResult] = {}

        # 1. Pre-training: the shared decoder base (cached) and, where the scale runs it, the LSTM on its tokens.
        base, transformer, tok = load_base(scale, seed)
        n_layer = transformer.config.n_layer
        metrics["pretrain/transformer/params"] = MetricResult.exact("params", base.record["params"])
        metrics["pretrain/transformer/val_loss"] = MetricResult("val_loss", base.val_loss, 8)  # 8 held-out batches
        lstm, lstm_record = (pretrain_lstm(base.spec, seed, s.lstm_hidden) if s.lstm_hidden else (None, None))
        if lstm is not None:
            metrics["pretrain/lstm/params"] = MetricResult.exact("params", sum(p.numel() for p in lstm.parameters()))
            metrics["pretrain/lstm/val_loss"] = MetricResult("val_loss", lstm_record["val_loss"], 8)

        # 2. Fine-tuning, every variant of Table 5 and Fig. 2 left, on the tasks each claim reads.
        special = SpecialTokens.after(len(tok))
        pad_id = tok.pad_token_id
        n_train = dict(s.train_examples)
        data = {t: load_task(task_of(t), tok, special, max_input(transformer), n_train[t], s.eval_examples)
                for t in s.fine_tuned}
        runs = [("full", transformer, t, None, True) for t in s.fine_tuned]
        runs += [("scratch", transformer, t, None, True) for t in s.tasks]
        runs += [("noaux", transformer, t, None, False) for t in s.large_tasks + s.small_tasks]
        runs += [("lstm", lstm, t, None, True) for t in s.tasks if lstm is not None]
        runs += [(f"layers{k}", transformer, t, k, True) for k in range(n_layer) for t in s.sweep_tasks]
        bases = {id(m): (m.config, m.state_dict()) for m in (transformer, lstm) if m is not None}
        jobs = [(*bases[id(model)], data[t], s.finetune_scratch if variant == "scratch" else ft, seed,
                 variant != "scratch", n_layers, aux, pad_id)
                for variant, model, t, n_layers, aux in runs]
        predicted = run_parallel(finetune_job, jobs, desc="gpt1: fine-tuning")  # independent: in parallel
        preds: dict[tuple[str, str], np.ndarray] = {(variant, t): p for (variant, _, t, _, _), p in zip(runs, predicted)}
        for t in s.sweep_tasks:  # all N layers transferred is the full run
            preds[f"layers{n_layer}", t] = preds["full", t]
        for t in s.fine_tuned:  # the constant answer: the floor every claim is read above
            preds[MAJORITY, t] = majority_part(task_of(t), data[t].train_labels, data[t].val_labels)[1]

        scored: dict[str, dict[str, tuple]] = {}
        for (variant, t), p in preds.items():
            task = task_of(t)
            golds = np.asarray(data[t].val_labels)
            for name, m in task_metrics(task, p, golds).items():
                if variant in VARIANTS and name == task.score and t == task.name:  # shown beside the Table 5 cell
                    m.extra["reported_id"] = f"{VARIANTS[variant]}_{task.reported}"
                metrics[f"{variant}/{t}/{name}"] = m
            if variant != MAJORITY:
                metrics[gap_key(variant, t)] = over_majority(task, p, golds, data[t].train_labels)
            scored.setdefault(variant, {})[t] = (task, p, golds, metrics[_score_key(variant, t)])
        metrics.update(floor_metric())
        for variant in ("full", "scratch", "lstm", MAJORITY):  # Avg over the tasks Table 5's rows read
            parts = scored.get(variant)
            metrics[f"{variant}/avg"] = average_score([parts[t] for t in s.tasks]) if parts else None
        if lstm is None:  # not run at this scale: present, so the claims and the table say "not measured"
            metrics.update({_score_key("lstm", t): None for t in s.tasks})
        for k in range(n_layer + 1):
            metrics[f"layers{k}/avg"] = average_score([scored[f"layers{k}"][t] for t in s.sweep_tasks])

        # 3. Zero-shot heuristics along the base's pre-training (Fig. 2 right): its final weights, and
        # the snapshots it kept (the cpu bases keep none yet: those points read "not measured").
        kept = dict(snapshots(base.dir))
        steps = zero_shot_steps(scale)
        for step in steps:
            if step == steps[-1]:
                model = transformer
            elif step in kept:
                model = LanguageModel(transformer.config)
                model.load_state_dict(torch.load(kept[step], map_location="cpu", weights_only=True))
            else:
                metrics.update({f"zeroshot/step{step}/{key}": None for key in ZERO_SHOT_KEYS})
                continue
            for key, m in zero_shot(model.eval(), tok, s).items():
                metrics[f"zeroshot/step{step}/{key}"] = m

        configs = {"base": {"name": base.spec.name, "seed": seed, "dir": base.dir.name, "tokens": base.record["tokens"]},
                   "lstm": {"cell": "lstm", "n_layer": 1, "d_model": base.spec.d_model, "d_hidden": s.lstm_hidden,
                            **(lstm_record or {})} if lstm is not None else None,
                   "finetune": dataclasses.asdict(ft), "scratch_lr": s.scratch_lr, "train_examples": n_train, "eval_examples": s.eval_examples,
                   "tasks": list(s.tasks), "sweep_tasks": list(s.sweep_tasks), "large_tasks": list(s.large_tasks),
                   "small_tasks": list(s.small_tasks), "zero_shot_steps": steps,
                   "snapshots_kept": sorted(kept), "seed": seed}
        return Measured(metrics, configs, notes=self.notes(scale, metrics, base, seed),
                        tables={"Table 5 at this scale (measured; paper in parentheses, x100)": self.table5(metrics, scale)})

    # -- report ----------------------------------------------------------------------------------
    @staticmethod
    def table5(metrics: dict[str, MetricResult], scale: str) -> list[dict[str, str]]:
        from harness.claims import load_reported

        s = SCALES[scale]
        reported = {r["id"]: r["value"] for r in load_reported("gpt1_radford2018")}
        shown = s.table_tasks
        rows = []
        for variant, prefix in VARIANTS.items():
            row = {"method": VARIANT_NAMES[variant]}
            avg = metrics.get(f"{variant}/avg")
            row[f"Avg ({', '.join(s.tasks)})"] = f"{100 * avg.value:.1f}" if avg else "–"
            for t in shown:
                task = task_of(t)
                m = metrics.get(_score_key(variant, t))
                paper = reported.get(f"{prefix}_{task.reported}") if t == task.name else None
                row[f"{t} ({task.score})"] = (f"{100 * m.value:.1f}" if m else "–") + (f" ({paper})" if paper else "")
            rows.append(row)
        return rows

    @staticmethod
    def notes(scale: str, metrics: dict, base, seed: int) -> list[str]:
        s, spec = SCALES[scale], base.spec
        loss = {k: metrics.get(f"pretrain/{k}/val_loss") for k in ("transformer", "lstm")}
        ft = s.finetune
        lstm = (f"A 1-layer LSTM of width {s.lstm_hidden} ({int(metrics['pretrain/lstm/params'].value):,} parameters) "
                "is pre-trained on the same tokens with the same schedule"
                if s.lstm_hidden else "No LSTM at this scale (see SCALES: its pre-training would cost more than the "
                "paper's budget); G1-C2 reads 'not measured'")
        return [
            f"Pre-training: the shared decoder base {spec.name} of seed {seed} (repro.bases: pre-LN, {spec.n_layer} "
            f"layers x {spec.d_model}, {base.record['params']:,} parameters, {base.record['tokens']:,} tokens of the "
            f"books + Wikipedia mixture, BPE {spec.vocab_size}, context {spec.block_size}), reused from the artifact "
            "cache; GPT-1 itself is post-LN, 12 x 768, on BooksCorpus. " + lstm + ". Held-out loss "
            + ", ".join(f"{k} {m.value:.3f}" for k, m in loss.items() if m) + ".",
            f"Fine-tuning: lr {ft.lr:.2g} for the pre-trained arms and {s.scratch_lr:.2g} from scratch, each the best "
            "of its arm on a tuning split of SST-2's training data that the verdicts never read (tune_finetune_lr); "
            "the paper's 6.25e-5 is for a 117M model and thousands of steps. Batch "
            f"{ft.batch_size}, {ft.epochs} epochs, warm-up 0.2% then linear decay, dropout 0.1, aux LM lambda "
            f"{ft.aux_weight}; training examples per task " + ", ".join(f"{t} {n or 'all'}" for t, n in s.train_examples)
            + f"; validation items {s.eval_examples or 'all'}. Seed {seed} here: each seed fine-tunes its own seed's "
            "base, and every claim's interval is over the paired seeds plus the dev set's variance.",
            f"Tasks: {', '.join(s.tasks)} (the ones this scale's base learns, measured: see papers/gpt1.py SCALES). "
            "Every claim is read only once the model it prefers beats the majority class (the most frequent training "
            "label; STS-B's constant has no correlation and counts 0) on each task it reads: the gaps are "
            "<variant>/<task>/over_majority, paired bootstrap over the same dev items.",
            "Inputs (§3.3): three new embedding rows (start, delimiter, extract) learned during fine-tuning; the "
            "classifier reads the extract token's final state; STS-B adds the states of both sentence orders and "
            f"regresses the 0-5 score; inputs are truncated to {spec.block_size} tokens. The 'w/o pre-training' row "
            "fine-tunes a randomly initialised network of the same shape; 'layersK' transfers the embeddings and the "
            "first K blocks and re-initialises the rest.",
            f"G1-C3: 'large' = {', '.join(s.large_tasks)}, 'small' = {', '.join(s.small_tasks)} (a label task@N is "
            "the task with N training examples, a subset of the larger set: one task at two sizes isolates the "
            f"dataset size the claim is about). Avg is the mean of {', '.join(s.tasks)} (fractions; Table 5's Avg "
            "covers nine tasks, so it is not comparable and not shown beside it).",
            "G1-C5: zero-shot SST-2 ('very' + positive/negative) and CoLA (mean token log-prob thresholded at the "
            f"cut that maximises MCC on CoLA train sentences), read on the base at pre-training steps "
            f"{zero_shot_steps(scale)}: its final weights and the snapshots it kept (none for bases trained without "
            "snapshots: those points read 'not measured').",
            "Paper numbers are percentages; ours are fractions (x100 in the table). At this scale the claims are "
            "about the direction of each effect, not its size.",
        ]


__all__ = ["GPT1", "GPT1Classifier", "SCALES", "SpecialTokens", "TASKS", "average_score", "transform",
           "transferred_state"]
