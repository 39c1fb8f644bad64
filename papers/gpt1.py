"""GPT-1 (Radford et al. 2018): generative pre-training of a decoder, then discriminative fine-tuning.

Recipe, scaled down:

1. Pre-train a GPT-1-architecture decoder (post-LN, learned positions, GELU; `scaled("gpt1", ...)`)
   on `books` (Project Gutenberg, the BooksCorpus stand-in) with a BPE trained on it, through the
   cached `train_run`, keeping weight snapshots along the way (Fig. 2 right). A one-layer LSTM LM
   of about the same non-embedding size is pre-trained on the same tokens the same way (§5, G1-C2).
2. Fine-tune on SST-2, CoLA, MRPC, RTE and STS-B with §3.3's input transformations — a start
   token, a delimiter between the two sentences, an extract token whose final state feeds a linear
   layer; STS-B scores both sentence orders and adds the two representations — and the auxiliary
   LM loss L3 = L2 + 0.5 L1, with §4.1's recipe (3 epochs, batch 32, linear warm-up over 0.2% then
   linear decay, classifier dropout 0.1).
3. Score every run on the task's validation split with the paper's metric (bootstrap CIs), in the
   variants of Table 5 (full, w/o pre-training, w/o aux LM, LSTM) and of Fig. 2 left (0..N
   pre-trained layers transferred), and score the snapshots zero-shot with Fig. 2 right's heuristics.
"""

from __future__ import annotations

import dataclasses
import math
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
from repro.pipeline import RunConfig, artifact_dir, corpus_text, load_run_config, random_windows, run_parallel, train_run
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
    # pre-training (§4.1: 12 layers x 768, 12 heads, context 512, 40k BPE merges, 100 epochs)
    n_layer: int
    d_model: int
    n_head: int
    block_size: int  # pre-training context; fine-tuning inputs are truncated to it
    vocab_size: int
    max_chars: int  # characters of `books` used for pre-training (and the BPE)
    pretrain_steps: int
    pretrain_batch: int
    pretrain_lr: float
    snapshot_every: int  # snapshots scored zero-shot for G1-C5
    lstm_hidden: int  # one LSTM layer of this width ~ the Transformer's non-embedding size
    # GPT-1 fine-tunes at 6.25e-5, 1/4 of its pre-training peak, over thousands of steps. Our runs are
    # ~100-200 steps of a 100x narrower model: at 1/4 of our pre-training rate (2.5e-4) neither the
    # pre-trained nor the from-scratch network leaves chance on SST-2 dev (54.8% / 50.9%, cpu scale,
    # 2,400 examples). Of 2.5e-4, 1e-3 and 3e-3 we took the best for the from-scratch baseline (1e-3:
    # 60.4%; 3e-3 breaks it), so the choice does not favour pre-training; it equals the pre-training peak.
    # That first choice read the SST-2 *dev* items, the same items that decide G1-C1..C4's verdicts.
    # `tune_finetune_lr("cpu")` re-made it on a tuning split carved from the training split
    # (`glue.load_tuning_rows`: 872 training examples disjoint from the 2,400 fine-tuned on, never dev),
    # from-scratch baseline, seed 0: 2.5e-4 -> 57.7%, 1e-3 -> 59.4%, 3e-3 -> 54.1% (2026-12-06). It picks
    # 1e-3 again, so the cpu rate stands on data the verdicts never read.
    finetune_lr: float
    # fine-tuning: training examples per task (a seeded subset; None = the whole train split)
    train_examples: tuple[tuple[str, int | None], ...]
    eval_examples: int | None  # validation items per task (None = the whole split)
    sweep_tasks: tuple[str, ...]  # tasks of the layer-transfer sweep (G1-C4)
    zero_shot_limit: int | None  # SST-2 / CoLA validation items per snapshot
    cola_threshold_examples: int  # CoLA train sentences that set the zero-shot threshold
    epochs: int = 3

    @property
    def init_std(self) -> float:
        # GPT-1's N(0, 0.02) at width 768, with std * sqrt(width) kept: the per-row embedding norm and
        # each layer's output scale stay the paper's. At 0.02 a narrow tied post-LN model sits on the
        # unigram plateau for hundreds of steps (measured at 128 wide: loss 6.2 = unigram after 200).
        return 0.02 * math.sqrt(768 / self.d_model)

    @property
    def finetune(self) -> FinetuneConfig:
        return FinetuneConfig(lr=self.finetune_lr, epochs=self.epochs)

    @property
    def snapshot_steps(self) -> list[int]:
        return list(range(self.snapshot_every, self.pretrain_steps + 1, self.snapshot_every))

    @property
    def tokens(self) -> int:
        return self.pretrain_steps * self.pretrain_batch * self.block_size


SCALES = {
    "smoke": ScaleSettings(
        n_layer=2, d_model=32, n_head=2, block_size=48, vocab_size=512, max_chars=300_000,
        pretrain_steps=60, pretrain_batch=8, pretrain_lr=3e-3, snapshot_every=20, lstm_hidden=64, finetune_lr=3e-3,
        train_examples=(("sst2", 48), ("cola", 48), ("mrpc", 32), ("rte", 32), ("stsb", 32)),
        eval_examples=48, sweep_tasks=("sst2", "cola"), zero_shot_limit=48, cola_threshold_examples=48,
    ),
    "cpu": ScaleSettings(
        n_layer=3, d_model=128, n_head=4, block_size=64, vocab_size=2048, max_chars=6_000_000,
        pretrain_steps=600, pretrain_batch=32, pretrain_lr=1e-3, snapshot_every=150, lstm_hidden=320,
        finetune_lr=1e-3,
        train_examples=(("sst2", 2000), ("cola", 2000), ("mrpc", 600), ("rte", 600), ("stsb", 600)),
        eval_examples=None, sweep_tasks=("sst2",), zero_shot_limit=None, cola_threshold_examples=600,
    ),
    "gpu": ScaleSettings(
        n_layer=6, d_model=384, n_head=6, block_size=256, vocab_size=8192, max_chars=40_000_000,
        pretrain_steps=6000, pretrain_batch=64, pretrain_lr=6e-4, snapshot_every=1000, lstm_hidden=1024,
        finetune_lr=2.5e-4,  # not measured: between the paper's 1/4 ratio (1.5e-4) and the cpu choice
        train_examples=(("sst2", 10_000), ("cola", None), ("mrpc", None), ("rte", None), ("stsb", None)),
        eval_examples=None, sweep_tasks=("sst2", "cola"), zero_shot_limit=None,
        cola_threshold_examples=2000,
    ),
}


# G1-C3: "larger datasets benefit from the auxiliary objective but smaller ones do not". At our scale
# the large ones are the single-sentence tasks we give the most examples to; RTE and MRPC are small.
LARGE_TASKS, SMALL_TASKS = ("sst2", "cola"), ("rte", "mrpc")
# Table 5 rows -> our variant labels
VARIANTS = {"full": "t5_full_w_aux_LM", "scratch": "t5_wo_pretraining", "noaux": "t5_wo_aux_LM",
            "lstm": "t5_LSTM_w_aux_LM"}
VARIANT_NAMES = {"full": "Transformer w/ aux LM (full)", "scratch": "Transformer w/o pre-training",
                 "noaux": "Transformer w/o aux LM", "lstm": "LSTM w/ aux LM"}


def pretrain_config(s: ScaleSettings, seed: int) -> RunConfig:
    return load_run_config(base={
        "name": f"gpt1_L{s.n_layer}d{s.d_model}",
        "preset": "gpt1",
        # Dropout 0 in pre-training (GPT-1: 0.1): we see each token less than once, nothing to regularise.
        "model": {"n_layer": s.n_layer, "d_model": s.d_model, "n_head": s.n_head, "max_seq_len": s.block_size,
                  "dropout": 0.0, "init_std": s.init_std},
        "data": {"dataset": "books", "tokenizer": "bpe", "vocab_size": s.vocab_size, "block_size": s.block_size,
                 "max_chars": s.max_chars, "max_val_chars": 1_000_000, "val_batches": 4},
        # GPT-1: Adam, linear warm-up, cosine anneal to 0, L2 0.01 on weights.
        "train": {"steps": s.pretrain_steps, "batch_size": s.pretrain_batch, "lr": s.pretrain_lr,
                  "warmup_steps": max(1, s.pretrain_steps // 20), "schedule": "cosine", "min_lr_ratio": 0.0,
                  "betas": [0.9, 0.999], "weight_decay": 0.01, "snapshot_every": s.snapshot_every, "seed": seed,
                  "log_every": 50, "progress": False},
    })


# ----------------------------------------------------------------------------------------------
# Pre-training the LSTM baseline on the same tokens, the same way


def pretrain_lstm(run: RunConfig, tokenizer, s: ScaleSettings) -> tuple[RecurrentLM, float | None, bool]:
    """(model, held-out loss, cached). Same data, tokenizer, steps, batch and schedule as the
    Transformer run; cached in the artifact store (the Trainer resumes a finished run instantly)."""
    config = RecurrentConfig(kind="decoder", vocab_size=len(tokenizer), cell="lstm", n_layer=1,
                             d_model=s.d_model, d_hidden=s.lstm_hidden, dropout=0.0)
    train = dataclasses.replace(run.train, snapshot_every=0)
    identity = {"model": dataclasses.asdict(config), "data": dataclasses.asdict(run.data),
                "train": {k: v for k, v in dataclasses.asdict(train).items() if k not in ("progress", "device")}}
    # no data fingerprint: the text is tokenised only when training runs; the data config names it
    out_dir = artifact_dir("gpt1_lstm", identity, code=[__name__])
    torch.manual_seed(train.seed)
    model = RecurrentLM(config)
    corpus: dict[str, torch.Tensor] = {}

    def ids(split: str, max_chars: int | None) -> torch.Tensor:  # tokenised only when training runs
        if split not in corpus:
            text = corpus_text(run.data, split, max_chars)
            corpus[split] = torch.tensor(tokenizer(text, verbose=False)["input_ids"], dtype=torch.long)
        return corpus[split]

    def batches(step: int) -> dict:
        return random_windows(ids(run.data.train_split, run.data.max_chars), run.data.block_size, train.batch_size,
                              train.seed)(step)

    def evaluate(m) -> dict:
        val = random_windows(ids(run.data.val_split, run.data.max_val_chars), run.data.block_size, train.batch_size,
                             10_000 + train.seed)
        device = next(m.parameters()).device
        losses = [float(m(**{k: v.to(device) for k, v in val(i).items()}).loss) for i in range(run.data.val_batches)]
        return {"loss": float(np.mean(losses))}

    cached = (out_dir / "checkpoint.pt").exists()
    history = Trainer(model, train, batches, out_dir, tokenizer=tokenizer).fit(eval_fn=evaluate)
    return model.eval(), history[-1].get("eval_loss") if history else None, cached


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


def tune_finetune_lr(scale: str, candidates: tuple[float, ...] = (2.5e-4, 1e-3, 3e-3), task: str = "sst2",
                     n_tune: int = 872, seed: int = 0, pretrained: bool = False) -> dict[float, float]:
    """Choose the fine-tuning rate without the dev items that decide the verdicts: fine-tune on the
    scale's training examples of `task` at each candidate rate and score the task's metric on
    `n_tune` further training examples held out for the choice (`glue.load_tuning_rows`; 872 = the
    size of SST-2 dev). As the cpu rate was first chosen, the from-scratch baseline is the one tuned
    (`pretrained=False`), so the choice cannot favour pre-training. Not called by `measure`: it costs
    len(candidates) fine-tunings (and the scale's pre-training, cached, for the tokenizer)."""
    s = SCALES[scale]
    result = train_run(pretrain_config(s, seed))
    tok, base = result.tokenizer, result.model
    special, glue_task = SpecialTokens.after(len(tok)), TASKS[task]
    n_train = dict(s.train_examples)[task]
    if n_train is None:
        raise ValueError(f"{scale}: {task} trains on its whole training split; nothing is left to tune on")
    train_rows, tune_rows = load_tuning_rows(glue_task, n_train, n_tune, seed=0)  # load_task's training rows
    data = TaskData(glue_task, *encode_rows(glue_task, train_rows, tok, special, s.block_size),
                    *encode_rows(glue_task, tune_rows, tok, special, s.block_size))  # tuning rows in the val slot
    scores = {}
    for lr in candidates:
        ft = dataclasses.replace(s.finetune, lr=lr)
        preds = finetune_job(base.config, base.state_dict(), data, ft, seed, pretrained, None, True, tok.pad_token_id)
        scores[lr] = task_metrics(glue_task, preds, np.asarray(data.val_labels))[glue_task.score].value
    return scores


# ----------------------------------------------------------------------------------------------
# The paper


def _score_key(variant: str, task: str) -> str:
    return f"{variant}/{task}/{TASKS[task].score}"


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
    # Each seed pre-trains the Transformer and the LSTM and runs every fine-tuning: one cpu seed took
    # 353 s, so 3 seeds per arm fit the 20-minute cpu budget.
    default_seeds = {"smoke": [0], "cpu": [0, 1, 2], "gpu": [0, 1, 2]}

    def claims(self, scale: str) -> list[Claim]:
        """A pure function of the scale. Every claim compares classifiers (or zero-shot heuristics),
        so each is read only once the model it prefers beats the majority class on every task it
        reads (`glue.above_floor`): per task for per-task claims, on each task of an average."""
        s = SCALES[scale]
        zs = s.snapshot_steps
        last = f"zeroshot/step{zs[-1]}"
        scratch_gain = {t: _points(TABLE5["full"][t], TABLE5["scratch"][t]) for t in TASKS}
        lstm_gain = _points(TABLE5["full"]["avg"], TABLE5["lstm"]["avg"])
        return [
            Claim("G1-C1", "Generative pre-training + fine-tuning beats the same network trained from scratch, on every "
                           "task (each task read once the pre-trained model beats its majority class)",
                  "Table 5", self.name,
                  all_of(*[provided(above_floor(gap_key("full", t)),
                                    greater(_score_key("full", t), _score_key("scratch", t), delta=glue_delta(scratch_gain[t])))
                           for t in TASKS]),
                  {"avg": (74.7, 59.9)},
                  delta_source="Table 5, full minus w/o pre-training per task ("
                               + ", ".join(f"{t} {scratch_gain[t]:g}" for t in TASKS)
                               + " points), each capped at the 2-point practical threshold (glue.glue_delta): δ "
                               + ", ".join(f"{t} {glue_delta(scratch_gain[t]):g}" for t in TASKS) + GATE),
            Claim("G1-C2", "The Transformer transfers better than an LSTM of similar size (average score; read once the "
                           "Transformer beats the majority class on every task)",
                  "Table 5", self.name,
                  provided(above_floor(*[gap_key("full", t) for t in TASKS]),
                           greater("full/avg", "lstm/avg", delta=glue_delta(lstm_gain))),
                  {"avg": (74.7, 69.1)},
                  delta_source=f"Table 5 Avg, 74.7 vs 69.1 ({lstm_gain:g} points), capped at the 2-point practical "
                               f"threshold: δ {glue_delta(lstm_gain):g}" + GATE),
            Claim("G1-C3", f"The auxiliary LM loss helps the larger datasets ({', '.join(LARGE_TASKS)} here) "
                  f"but not the small ones ({', '.join(SMALL_TASKS)}: there the run without it scores higher)",
                  "Table 5", self.name,
                  all_of(*[provided(above_floor(gap_key("full", t)),
                                    greater(_score_key("full", t), _score_key("noaux", t), delta=glue_delta(AUX_GAIN)))
                           for t in LARGE_TASKS],
                         *[provided(above_floor(gap_key("noaux", t)),
                                    greater(_score_key("noaux", t), _score_key("full", t), delta=glue_delta(NOAUX_GAIN)))
                           for t in SMALL_TASKS]),
                  delta_source=f"Table 5: the aux LM gains on the paper's large datasets, MNLI and QQP, average "
                               f"{AUX_GAIN:g} points (δ {glue_delta(AUX_GAIN):g} for ours); without it CoLA and MRPC gain "
                               f"{NOAUX_GAIN:g} points on average, capped at the 2-point practical threshold (δ "
                               f"{glue_delta(NOAUX_GAIN):g} for the small tasks)" + GATE),
            Claim("G1-C4", f"Transferring more pre-trained layers helps ({' + '.join(s.sweep_tasks)} average score; read "
                           "once the fully transferred model beats the majority class)",
                  "Fig. 2 left", self.name,
                  provided(above_floor(*[gap_key("full", t) for t in s.sweep_tasks]),
                           monotone([f"layers{k}/avg" for k in range(s.n_layer + 1)], "increasing", delta=glue_delta(9.0))),
                  delta_source="Fig. 2 left: up to ~9 points on MultiNLI from no layers to all (papers.md: M), capped at "
                               f"the 2-point practical threshold: δ {glue_delta(9.0):g} for all layers minus none" + GATE),
            Claim("G1-C5", "Zero-shot heuristic scores rise steadily with pre-training updates (each read once the last "
                           "snapshot beats the majority class)",
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
        layers = tuple(range(s.n_layer + 1))
        zs = tuple(s.snapshot_steps)
        # the no-aux-LM row is not fine-tuned on STS-B (G1-C3 reads the large and small tasks): that point stays empty
        table5 = Panel("Table 5 ablations (validation)",
                       tuple(Series(VARIANT_NAMES[v], tuple(_score_key(v, t) for t in TASKS)) for v in VARIANTS),
                       x=tuple(f"{t} ({TASKS[t].score})" for t in TASKS), ylabel="task score x100", reference=0.0)
        # with one sweep task (cpu) its score is the average: drawn once
        per_task = [Series(f"{t} ({TASKS[t].score})", tuple(_score_key(f"layers{k}", t) for k in layers))
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

        # 1. Pre-training: the Transformer (cached, shared) and the LSTM on the same tokens.
        run = pretrain_config(s, seed)
        result = train_run(run)
        tok, transformer = result.tokenizer, result.model
        lstm, lstm_loss, lstm_cached = pretrain_lstm(run, tok, s)
        for label, model, loss in (("transformer", transformer, result.summary.get("val_loss")), ("lstm", lstm, lstm_loss)):
            metrics[f"pretrain/{label}/params"] = MetricResult.exact("params", sum(p.numel() for p in model.parameters()))
            if loss is not None:  # from a few held-out windows: no CI
                metrics[f"pretrain/{label}/val_loss"] = MetricResult("val_loss", float(loss), run.data.val_batches)

        # 2. Fine-tuning, every variant of Table 5 and Fig. 2 left, every task.
        special = SpecialTokens.after(len(tok))
        pad_id = tok.pad_token_id
        n_train = dict(s.train_examples)
        data = {t: load_task(TASKS[t], tok, special, s.block_size, n_train[t], s.eval_examples) for t in TASKS}
        runs = [("full", transformer, t, None, True) for t in TASKS]
        runs += [("scratch", transformer, t, None, True) for t in TASKS]
        runs += [("noaux", transformer, t, None, False) for t in LARGE_TASKS + SMALL_TASKS]
        runs += [("lstm", lstm, t, None, True) for t in TASKS]
        runs += [(f"layers{k}", transformer, t, k, True) for k in range(s.n_layer) for t in s.sweep_tasks]
        bases = {id(m): (m.config, m.state_dict()) for m in (transformer, lstm)}
        jobs = [(*bases[id(base)], data[t], ft, seed, variant != "scratch", n_layers, aux, pad_id)
                for variant, base, t, n_layers, aux in runs]
        predicted = run_parallel(finetune_job, jobs, desc="gpt1: fine-tuning")  # independent: in parallel
        preds: dict[tuple[str, str], np.ndarray] = {(variant, t): p for (variant, _, t, _, _), p in zip(runs, predicted)}
        for t in s.sweep_tasks:  # all N layers transferred is the full run
            preds[f"layers{s.n_layer}", t] = preds["full", t]
        for t in TASKS:  # the constant answer: the floor every claim is read above
            preds[MAJORITY, t] = majority_part(TASKS[t], data[t].train_labels, data[t].val_labels)[1]

        scored: dict[str, list] = {}
        for (variant, t), p in preds.items():
            task = TASKS[t]
            golds = np.asarray(data[t].val_labels)
            for name, m in task_metrics(task, p, golds).items():
                if variant in VARIANTS and name == task.score:  # shown beside the Table 5 cell
                    m.extra["reported_id"] = f"{VARIANTS[variant]}_{task.reported}"
                metrics[f"{variant}/{t}/{name}"] = m
            if variant != MAJORITY:
                metrics[gap_key(variant, t)] = over_majority(task, p, golds, data[t].train_labels)
            scored.setdefault(variant, []).append((task, p, golds, metrics[f"{variant}/{t}/{task.score}"]))
        metrics.update(floor_metric())
        for variant, parts in scored.items():
            if variant in ("full", "scratch", "lstm", MAJORITY):
                metrics[f"{variant}/avg"] = average_score(parts)
        for k in range(s.n_layer + 1):
            metrics[f"layers{k}/avg"] = average_score([x for x in scored[f"layers{k}"] if x[0].name in s.sweep_tasks])

        # 3. Zero-shot heuristics along pre-training (Fig. 2 right).
        steps_scored = []
        for step, path in snapshots(result.out_dir):
            snapshot = LanguageModel(transformer.config)
            snapshot.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            for key, m in zero_shot(snapshot.eval(), tok, s).items():
                metrics[f"zeroshot/step{step}/{key}"] = m
            steps_scored.append(step)
        if steps_scored != s.snapshot_steps:
            raise RuntimeError(f"pre-training snapshots at steps {steps_scored}, expected {s.snapshot_steps}; "
                               f"delete {result.out_dir} and run again")

        configs = {"pretrain": run.to_dict(), "lstm": {"cell": "lstm", "n_layer": 1, "d_model": s.d_model,
                                                         "d_hidden": s.lstm_hidden},
                   "finetune": dataclasses.asdict(ft), "train_examples": n_train, "eval_examples": s.eval_examples,
                   "sweep_tasks": list(s.sweep_tasks), "seed": seed}
        return Measured(metrics, configs, notes=self.notes(s, metrics, result, lstm_cached, seed),
                        tables={"Table 5 at this scale (measured; paper in parentheses, x100)": self.table5(metrics)})

    # -- report ----------------------------------------------------------------------------------
    @staticmethod
    def table5(metrics: dict[str, MetricResult]) -> list[dict[str, str]]:
        from harness.claims import load_reported

        reported = {r["id"]: r["value"] for r in load_reported("gpt1_radford2018")}
        rows = []
        for variant, prefix in VARIANTS.items():
            row = {"method": VARIANT_NAMES[variant]}
            avg = metrics.get(f"{variant}/avg")
            row["Avg (5 tasks)"] = f"{100 * avg.value:.1f}" if avg else "–"
            for t, task in TASKS.items():
                m = metrics.get(_score_key(variant, t))
                paper = reported.get(f"{prefix}_{task.reported}")
                row[f"{t} ({task.score})"] = (f"{100 * m.value:.1f}" if m else "–") + (f" ({paper})" if paper else "")
            rows.append(row)
        return rows

    @staticmethod
    def notes(s: ScaleSettings, metrics: dict, result, lstm_cached: bool, seed: int) -> list[str]:
        p = {k: int(metrics[f"pretrain/{k}/params"].value) for k in ("transformer", "lstm")}
        loss = {k: metrics.get(f"pretrain/{k}/val_loss") for k in ("transformer", "lstm")}
        ft = s.finetune
        return [
            f"Pre-training: post-LN GPT-1 decoder {s.n_layer} layers x {s.d_model} ({p['transformer']:,} parameters) and "
            f"a 1-layer LSTM of width {s.lstm_hidden} ({p['lstm']:,}), each on {s.tokens:,} tokens of Project Gutenberg "
            f"books (BooksCorpus stand-in; BPE {s.vocab_size}, context {s.block_size}); held-out loss "
            + ", ".join(f"{k} {m.value:.3f}" for k, m in loss.items() if m) + ".",
            f"Fine-tuning: lr {ft.lr:.2g} (the paper's 6.25e-5 is for a 117M model and thousands of steps; at cpu scale "
            "1e-3 is the best of 2.5e-4 / 1e-3 / 3e-3 for the from-scratch baseline, so it does not favour pre-training, "
            "on a tuning split of SST-2's training data that the verdicts never read (gpt1.tune_finetune_lr: 57.7 / "
            "59.4 / 54.1%); gpu untested), batch "
            f"{ft.batch_size}, {ft.epochs} epochs, warm-up 0.2% then linear decay, dropout 0.1, aux LM lambda "
            f"{ft.aux_weight}; training examples per task " + ", ".join(f"{t} {n or 'all'}" for t, n in s.train_examples)
            + f"; validation items {s.eval_examples or 'all'}. Seed {seed} here: each seed of the run pre-trains and "
            "fine-tunes afresh, and every claim's interval is over the paired seeds plus the dev set's variance.",
            "Every claim is read only once the model it prefers beats the majority class (the most frequent training "
            "label; STS-B's constant has no correlation and counts 0) on each task it reads: the gaps are "
            "<variant>/<task>/over_majority, paired bootstrap over the same dev items.",
            "Inputs (§3.3): three new embedding rows (start, delimiter, extract) learned during fine-tuning; the "
            "classifier reads the extract token's final state; STS-B adds the states of both sentence orders and "
            f"regresses the 0-5 score; inputs are truncated to {s.block_size} tokens (the longer sentence loses its end: "
            "RTE and MRPC often are). The 'w/o pre-training' row fine-tunes a randomly initialised network with the "
            "same recipe; 'layersK' transfers the embeddings and the first K blocks and re-initialises the rest.",
            f"G1-C3: 'large' = {', '.join(LARGE_TASKS)} ({', '.join(str(dict(s.train_examples)[t]) for t in LARGE_TASKS)}"
            f" examples), 'small' = {', '.join(SMALL_TASKS)} "
            f"({', '.join(str(dict(s.train_examples)[t]) for t in SMALL_TASKS)}). "
            "Avg is the mean of the five tasks' scores (fractions; Table 5's Avg also covers QQP, MNLI and QNLI, "
            "so it is not comparable and not shown beside it).",
            "G1-C5: zero-shot SST-2 ('very' + positive/negative) and CoLA (mean token log-prob thresholded at the "
            "cut that maximises MCC on CoLA train sentences) at each pre-training snapshot "
            f"{s.snapshot_steps}. The LSTM's zero-shot curve (the paper's 'noisier') is not measured: the "
            "harness's LM interface takes Transformer LMs only.",
            "Paper numbers are percentages; ours are fractions (x100 in the table). At this scale the claims are "
            "about the direction of each effect, not its size.",
            "Models loaded from the artifact cache: "
            + (", ".join(n for n, c in (("transformer", result.cached), ("lstm", lstm_cached)) if c) or "none") + ".",
        ]


__all__ = ["GPT1", "GPT1Classifier", "SCALES", "SpecialTokens", "TASKS", "average_score", "transform",
           "transferred_state"]
