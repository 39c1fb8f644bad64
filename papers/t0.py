"""T0 (Sanh et al. 2022): multitask prompted training of an LM-adapted encoder-decoder, zero-shot
on task types it never saw.

Recipe, scaled down:

1. Base: the shared encoder-decoder family (`repro.bases`: T5's architecture and Unigram
   vocabulary, span corruption on the general-English mixture, each size checked against its
   held-out target), every size of the scale for T0-C4; pre-trained once, with seed 0, whatever the
   multitask seed (T0 started from one released T5+LM checkpoint per size).
2. LM adaptation (T5+LM, Lester et al. 2021): each base trained further with the prefix-LM
   objective (a window's first part in, its continuation out), `repro.bases.lm_adapted_bases`:
   the same adapted bases PEFT's prompt tuning starts from.
3. Multitask prompted training on the P3 sample (`t0_p3_50k`: T0's own training mixture, one file
   per dataset x PromptSource prompt, 37 datasets, ~7.5 prompts each, registered as `p3/*` tasks by
   `repro.data.instructions`), examples-proportional over (dataset, prompt) files as T0 (a dataset
   counts once per prompt; T0's 500k cap never binds on 180 rows per file). T0's held-out task types
   (NLI, coreference, sentence completion, word sense) are refused by the mixture builder: none of
   the sample's datasets has them, and a test keeps it so.
4. Zero-shot evaluation on the held-out-type datasets the mirror holds (GLUE RTE and QNLI: NLI; WNLI:
   Winograd coreference recast as NLI) with every prompt written by this project for them (the
   `flan/*` templates' scored prompts), by rank classification over the answer strings; per
   dataset the median and the spread (standard deviation) over prompts, and the mean over prompts
   per item (the model card's "mean over prompts").

Runs (one multitask run each; the main one is shared between claims):
  LM-adapted base of each size, not trained further                  -> T0-C1 base, T0-C4 context
  main size, every dataset, every prompt (T0)                        -> T0-C1, T0-C2 "all", T0-C3 "all"
  main size, every dataset, p prompts per dataset, for p in `prompts` -> T0-C2 (Fig. 6)
  main size, the first k datasets (nested), for k in `datasets`      -> T0-C3 (Fig. 7: T0 -> T0+ -> T0++)
  the other sizes, every dataset, every prompt                       -> T0-C4 (T0_3B vs T0)
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.claims import Claim, Predicate, all_of, greater, monotone, provided
from harness.lm import ReproLM
from harness.metrics import MetricResult, mean_with_ci, over_prompts, paired_bootstrap_diff
from harness.plots import Figure, Panel, Series
from papers import Measured, Paper, one_seed, register
from papers.glue import PRACTICAL_GLUE_DELTA, GlueTask, glue_delta, majority
from repro.bases import BaseSpec, encoder_decoder_bases, lm_adapted_base, lm_adapted_bases
from repro.data.instructions import P3_TASK_TYPE, p3_split, p3_stems, scored_templates
from repro.data.tasks import Mixture, get_task
from repro.data.text_to_text import length_windowed_batches, one_line
from repro.model import LanguageModel
from repro.pipeline import artifact_dir, run_parallel, train_once
from repro.train import Trainer, TrainConfig

# T0 §3: the task types kept out of training to test generalisation to unseen tasks
HELD_OUT_TYPES = ("nli", "coreference", "sentence_completion", "word_sense")
# the mirror's datasets of those types, scored with the project's prompts (FLAN templates' scored ones)
HELD_OUT = {"flan/rte": "nli", "flan/qnli": "nli", "flan/wnli": "coreference"}
ALL = 0  # "every prompt" / "every dataset" in the sweeps
MAJORITY = "majority/mean"  # the one-answer baseline's accuracy on the held-out items (`one_answer_baseline`)

# The claims' minimum effects of interest (δ), fixed before any run, in accuracy (a fraction). The
# held-out sets are GLUE's RTE, QNLI and WNLI, so δ follows the project's rule for GLUE-score
# comparisons (`papers.glue.glue_delta`): the paper's effect, capped at 2 points (about the
# seed-to-seed spread of fine-tuning on small GLUE tasks; T0's effects, 10-30 points, come from
# models ~10^4 times larger than ours). Held-out mean over prompts, model card (M), T0 (11B), T0_3B:
HELD_OUT_11 = {  # dataset: (T0 11B, T0_3B)
    "anli_r1": (43.56, 33.84), "anli_r2": (38.68, 33.11), "anli_r3": (41.26, 33.33), "cb": (70.12, 45.36),
    "rte": (80.83, 64.55), "wsc": (61.45, 65.10), "winogrande": (59.94, 50.97), "wic": (56.58, 50.69),
    "copa": (90.02, 72.40), "hellaswag": (33.58, 27.29), "storycloze": (92.40, 84.03),
}
CHANCE_RTE = 50.0  # Fig. 4 (M): the T5+LM base is near chance on the held-out NLI sets


@dataclass(frozen=True)
class ScaleSettings:
    bases_scale: str  # the shared encoder-decoder bases (every size, ascending; T0: 3B and 11B) of this scale
    main_index: int  # which size is T0's main model
    # multitask prompted training (T0: 12,200 steps x 1,024 sequences, Adafactor lr 1e-3, dropout 0.1,
    # inputs 1,024 / targets 256 tokens)
    steps: int
    batch_size: int
    lr: float
    max_source: int
    max_target: int
    prompts: tuple[int, ...]  # T0-C2's prompts per dataset (Fig. 6: 1, 5.7, 8.03 on average); ALL = every one
    datasets: tuple[int, ...]  # T0-C3's nested dataset counts (T0 -> T0+ -> T0++); ALL = every one
    # evaluation
    eval_items: int  # held-out items per dataset (the same for every model and prompt)
    eval_prompts: int | None  # prompts per held-out dataset (None: all the project wrote)

    @property
    def sizes(self) -> tuple[BaseSpec, ...]:
        return tuple(encoder_decoder_bases(self.bases_scale))

    @property
    def main(self) -> BaseSpec:
        return self.sizes[self.main_index]


SCALES = {
    "smoke": ScaleSettings(
        bases_scale="smoke", main_index=1, steps=12, batch_size=8, lr=3e-3, max_source=64, max_target=16, prompts=(1, ALL), datasets=(6, ALL),
        eval_items=8, eval_prompts=2,
    ),
    "cpu": ScaleSettings(
        # the shared cpu encoder-decoders L2d64 / L3d96 / L4d128 (main: L3d96); single-core probes on
        # the earlier T5-corpus bases (L2d32 / L2d64 / L3d96): multitask steps 0.35 / 0.32 / 0.56 s,
        # scoring every held-out prompt 4 / 8 / 15 s per model
        bases_scale="cpu", main_index=1, steps=250, batch_size=32, lr=1e-2, max_source=128, max_target=32,
        prompts=(1, 3, ALL), datasets=(9, 18, ALL), eval_items=100, eval_prompts=None,
    ),
    "gpu": ScaleSettings(
        bases_scale="gpu", main_index=1, steps=3000, batch_size=128, lr=1e-3, max_source=256, max_target=64,
        prompts=(1, 3, ALL), datasets=(9, 18, ALL), eval_items=500, eval_prompts=None,
    ),
}


# The bases are pre-trained and LM-adapted once, with this seed, whatever the multitask seed
BASE_SEED = 0


# ----------------------------------------------------------------------------------------------
# Runs


@dataclass(frozen=True)
class MultitaskRun:
    """One multitask prompted training run (`prompts`/`datasets` ALL = T0's full mixture), or, with
    `steps` 0, the LM-adapted base scored as it is."""

    label: str
    size: BaseSpec
    prompts: int = ALL
    datasets: int = ALL
    trained: bool = True


def plan(s: ScaleSettings) -> list[MultitaskRun]:
    main = s.main
    runs = [MultitaskRun(f"base_{z.label}", z, trained=False) for z in s.sizes]
    runs.append(MultitaskRun(f"t0_{main.label}", main))
    runs += [MultitaskRun(f"t0_{main.label}_p{p}", main, prompts=p) for p in s.prompts if p != ALL]
    runs += [MultitaskRun(f"t0_{main.label}_d{k}", main, datasets=k) for k in s.datasets if k != ALL]
    runs += [MultitaskRun(f"t0_{z.label}", z) for z in s.sizes if z != main]
    return runs


def p3_datasets() -> dict[str, list[str]]:
    """Dataset -> its P3 files (prompts), in file order."""
    out: dict[str, list[str]] = {}
    for stem in p3_stems():
        out.setdefault(p3_split(stem)[0], []).append(stem)
    return out


def training_stems(run: MultitaskRun, seed: int) -> list[str]:
    """The P3 files a run trains on: the first `datasets` of a seeded order of the datasets (nested:
    a larger count adds datasets, as T0+ adds to T0), and of each the first `prompts` of a seeded
    order of its prompts (nested too)."""
    by_dataset = p3_datasets()
    names = sorted(by_dataset)
    random.Random(f"t0|datasets|{seed}").shuffle(names)
    if run.datasets != ALL:
        if run.datasets > len(names):
            raise ValueError(f"{run.label}: {run.datasets} datasets asked, the P3 sample has {len(names)}")
        names = names[: run.datasets]
    stems = []
    for ds in sorted(names):
        prompts = list(by_dataset[ds])
        random.Random(f"t0|prompts|{ds}|{seed}").shuffle(prompts)
        stems += sorted(prompts if run.prompts == ALL else prompts[: run.prompts])
    return stems


def t0_mixture(stems: list[str], name: str) -> Mixture:
    """T0's training mixture over P3 files: examples-proportional, uncapped at our sizes; a file of a
    held-out task type is refused, so an unseen type can never leak into training."""
    leaked = sorted(st for st in stems if P3_TASK_TYPE[p3_split(st)[0]] in HELD_OUT_TYPES)
    if leaked:
        raise ValueError(f"P3 files of held-out task types {HELD_OUT_TYPES} in the mixture: {leaked}")
    return Mixture(name, [f"p3/{st}" for st in stems], cap=None)


def encode(tok, texts: list[str], limit: int) -> list[list[int]]:
    """Token ids of each text on one line, keeping the last `limit` tokens: the question and its
    answer cue end a prompt, the passage before them is what gets cut (T0 cuts at 1,024 tokens)."""
    return [ids[-limit:] for ids in tok([one_line(t) for t in texts], add_special_tokens=False)["input_ids"]]


def training_pairs(run: MultitaskRun, s: ScaleSettings, tok, seed: int) -> list[tuple[list[int], list[int]]]:
    stems = training_stems(run, seed)
    draws = t0_mixture(stems, f"t0_{run.label}").sample(s.steps * s.batch_size, seed)
    sources = encode(tok, [r["input"] for _, r in draws], s.max_source)
    targets = [ids[: s.max_target] for ids in tok([one_line(r["target"]) for _, r in draws],
                                                  add_special_tokens=False)["input_ids"]]
    return list(zip(sources, targets))


def multitask_config(s: ScaleSettings, seed: int) -> TrainConfig:
    # T0: Adafactor at a constant 1e-3 for 12,200 steps; our few hundred steps need a larger step
    # (as the T5 module's fine-tuning, measured there)
    return TrainConfig(steps=s.steps, batch_size=s.batch_size, optimizer="adafactor", lr=s.lr, schedule="constant",
                       warmup_steps=0, weight_decay=0.0, grad_clip=0.0, seed=seed, log_every=max(1, s.steps // 4),
                       progress=False)


def run_dir(run: MultitaskRun, s: ScaleSettings, seed: int) -> Path:
    identity = {"run": dataclasses.asdict(run), "base": lm_adapted_base(run.size, BASE_SEED).dir.name,
                "scale": dataclasses.asdict(s), "train": dataclasses.asdict(multitask_config(s, seed)),
                "eval": {"held_out": sorted(HELD_OUT), "version": 1}}
    # no data fingerprint: the P3 pairs are drawn inside the job; the base's name carries the tokens
    return artifact_dir(f"t0_{run.label}_s{seed}", identity, code=[__name__])


def multitask_job(run: MultitaskRun, s: ScaleSettings, seed: int) -> dict:
    """Train one model on its P3 mixture (a `run_parallel` job) and score it on the held-out
    datasets; the scores are cached beside the model."""
    out = run_dir(run, s, seed)

    def train() -> dict:
        adapted, tok = lm_adapted_base(run.size, BASE_SEED).load()
        torch.manual_seed(seed)
        model = LanguageModel(adapted.config.replace(dropout=0.1 if run.trained else 0.0))
        model.load_state_dict(adapted.state_dict())
        seconds, n_stems = 0.0, 0
        if run.trained:
            stems = training_stems(run, seed)
            n_stems = len(stems)
            pairs = training_pairs(run, s, tok, seed)
            t = time.perf_counter()
            batches = length_windowed_batches(pairs, tok, s.batch_size, "encoder-decoder")
            Trainer(model, multitask_config(s, seed), batches, out, tokenizer=tok).fit()
            seconds = time.perf_counter() - t
        model.eval()
        params = sum(p.numel() for p in model.parameters())
        return {"seconds": seconds, "params": params, "p3_files": n_stems, "scores": evaluate(model, tok, s)}

    return train_once(out, train)


def held_out_prompts(s: ScaleSettings, task: str) -> list[str]:
    names = scored_templates(task)
    return names if s.eval_prompts is None else names[: s.eval_prompts]


@torch.no_grad()
def evaluate(model, tok, s: ScaleSettings) -> dict:
    """{task: {prompt: [correct per item]}}: rank classification over the prompt's answer strings
    (log-likelihood of answer + eos given the prompt, through the harness's LM wrapper)."""
    out: dict = {}
    for name in HELD_OUT:
        task = get_task(name)
        records = list(task.examples(limit=s.eval_items))
        for prompt in held_out_prompts(s, name):
            template = task.template(prompt)
            answers = [c.strip() for c in template.continuations(records[0])]
            sources = encode(tok, [template.render(r) for r in records], s.max_source)
            picked = np.array(ReproLM(model, tok, batch_size=128).rank_answers(sources, answers, source_eos=True)).argmax(1)
            out.setdefault(name, {})[prompt] = [bool(int(p) == int(r["label"])) for p, r in zip(picked, records)]
    return out


# ----------------------------------------------------------------------------------------------
# Scores


def prompt_matrices(scores: dict) -> list[np.ndarray]:
    """Per held-out dataset, its (prompts x items) correctness."""
    return [np.array([scores[t][p] for p in sorted(scores[t])], dtype=float) for t in sorted(scores)]


def mean_over_prompts(scores: dict) -> MetricResult:
    """Per item the mean over prompts of its correctness (the model card's "mean over prompts"),
    averaged over items; item ids pair the same items across models."""
    values, ids = [], []
    for t in sorted(scores):
        mat = np.array([scores[t][p] for p in sorted(scores[t])], dtype=float)
        values += mat.mean(0).tolist()
        ids += [f"{t}|{i}" for i in range(mat.shape[1])]
    m = mean_with_ci("acc", values)
    m.extra["item_ids"] = ids
    return m


def one_answer_baseline(labels: dict[str, list[int]]) -> MetricResult:
    """Accuracy of the best constant answer: every item of a held-out dataset given that dataset's
    most frequent label among its evaluated items (papers.glue.majority), per item, with the item
    ids `mean_over_prompts` gives the same items, so a model's mean over prompts pairs with it. A
    model whose every prompt answers one label for every item (what our small models first learn)
    scores at most this; chosen on the evaluated items themselves, no constant answer scores higher."""
    values, ids = [], []
    for t in sorted(labels):
        constant = majority(GlueTask(t, ()), labels[t])
        values += [float(int(y) == int(constant)) for y in labels[t]]
        ids += [f"{t}|{i}" for i in range(len(labels[t]))]
    m = mean_with_ci("acc", values, rule="each held-out dataset's most frequent evaluated label, for every item")
    m.extra["item_ids"] = ids
    return m


def held_out_labels(s: ScaleSettings) -> dict[str, list[int]]:
    """The gold labels of the evaluated held-out items, in `evaluate`'s order."""
    return {name: [int(r["label"]) for r in get_task(name).examples(limit=s.eval_items)] for name in HELD_OUT}


def learned(key: str) -> Predicate:
    """The condition of every T0 claim: the model the claim prefers (its mean over prompts) beats
    the one-answer baseline on the same items. Below it, the models differ only in which label
    they give every item, and a comparison measures that, not generalisation."""
    return greater(key, MAJORITY)


def run_metrics(prefix: str, scores: dict) -> dict[str, MetricResult]:
    m = {f"{prefix}/median": over_prompts("median_acc", prompt_matrices(scores), "median"),
         f"{prefix}/spread": over_prompts("prompt_std", prompt_matrices(scores), "std"),
         f"{prefix}/mean": mean_over_prompts(scores)}
    for t in sorted(scores):
        one = {t: scores[t]}
        m[f"{prefix}/{t.split('/', 1)[1]}/median"] = over_prompts("median_acc", prompt_matrices(one), "median")
        m[f"{prefix}/{t.split('/', 1)[1]}/mean"] = mean_over_prompts(one)
    return m


# ----------------------------------------------------------------------------------------------
# The paper


@register
class T0(Paper):
    name = "t0"
    reported_key = "t0_sanh2022"
    citation = "Sanh et al. 2022, Multitask Prompted Training Enables Zero-Shot Task Generalization"

    # A seed is the multitask runs (7 at the cpu scale) on the shared, once-trained bases, as T0
    # tuned one released T5+LM checkpoint per size: three seeds fit the cpu budget.
    default_seeds = {"smoke": [0], "cpu": [0, 1, 2], "gpu": [0]}

    def claims(self, scale: str) -> list[Claim]:
        s = SCALES[scale]
        main, top = s.main.label, s.sizes[-1].label
        p_keys = [f"prompts/{p or 'all'}" for p in sorted(s.prompts, key=lambda p: p or 10**9)]
        d_keys = [f"datasets/{k or 'all'}/median" for k in sorted(s.datasets, key=lambda k: k or 10**9)]
        size_keys = [f"size/{z.label}/t0/mean" for z in s.sizes]
        full = f"size/{main}/t0/mean"  # T0 itself: every dataset, every prompt, the main size
        rte_3b = HELD_OUT_11["rte"][1]
        d_c1 = glue_delta(rte_3b - CHANCE_RTE)
        gap_11 = float(np.mean([a - b for a, b in HELD_OUT_11.values()]))
        d_c4 = glue_delta(gap_11)
        d_median = PRACTICAL_GLUE_DELTA
        rule = (f"capped at {PRACTICAL_GLUE_DELTA:g} by papers.glue.glue_delta (the project's rule for GLUE-score "
                "comparisons, ~the seed-to-seed spread of fine-tuning on small GLUE tasks)")
        gate = "; read once {} beats the one-answer baseline"
        return [
            Claim("T0-C1", "Multitask prompted training beats the same LM-adapted base zero-shot on held-out task "
                           f"types ({', '.join(HELD_OUT)}; accuracy averaged over each dataset's prompts)"
                           + gate.format("T0"),
                  "Fig. 4", self.name,
                  provided(learned(full), greater(full, f"size/{main}/base/mean", delta=d_c1)),
                  {"RTE mean over prompts": {"T0 11B": 80.83, "T0_3B": 64.55}, "T5+LM": "near chance"},
                  delta_source=f"model card: T0_3B's RTE mean over prompts {rte_3b}% against its T5+LM base near "
                               f"chance ({CHANCE_RTE:g}%, Fig. 4, from memory), a gain of {(rte_3b - CHANCE_RTE) / 100:.3f}, "
                               f"{rule}: δ = {d_c1}"),
            Claim("T0-C2", "More prompts per training dataset -> higher median accuracy across held-out prompts, and "
                           f"a lower spread ({' -> '.join(p_keys)} prompts per dataset)" + gate.format("T0 (every prompt)"),
                  "Fig. 6", self.name,
                  provided(learned(full), all_of(monotone([f"{k}/median" for k in p_keys], "increasing", delta=d_median),
                                                 monotone([f"{k}/spread" for k in p_keys], "decreasing", delta=0.01))),
                  {"prompts per dataset": {"T0_single_prompt": 1, "T0_original_task_only": 5.7, "T0": 8.03},
                   "trend": "median rises; spread generally shrinks"},
                  delta_source="Fig. 6's values are not in our reference sheet: median accuracy, the practical GLUE "
                               f"threshold {d_median:g} (papers.glue.PRACTICAL_GLUE_DELTA, ~the seed-to-seed spread of "
                               "GLUE fine-tuning); spread (the std of prompt accuracies), a stated practical threshold of "
                               "0.01, between the fewest and the most prompts per dataset"),
            Claim("T0-C3", "More training datasets -> higher median accuracy on held-out tasks (robustness not "
                           f"consistently better); nested dataset sets {' -> '.join(d_keys)}" + gate.format("T0 (every dataset)"),
                  "Fig. 7", self.name, provided(learned(full), monotone(d_keys, "increasing", delta=d_median)),
                  {"trend": "T0 -> T0+ -> T0++ raises the median on most held-out datasets"},
                  delta_source="Fig. 7's values are not in our reference sheet: the practical GLUE threshold "
                               f"{d_median:g} of median accuracy (papers.glue.PRACTICAL_GLUE_DELTA, ~the seed-to-seed "
                               "spread of GLUE fine-tuning) between the fewest and the most training datasets"),
            Claim("T0-C4", "A larger base generalises better after the same multitask training "
                           f"({' -> '.join(z.label for z in s.sizes)}; mean over prompts)" + gate.format("the largest"),
                  "model card (T0_3B vs T0)", self.name,
                  provided(learned(f"size/{top}/t0/mean"), monotone(size_keys, "increasing", delta=d_c4)),
                  {"T0_3B < T0 11B": "10 of 11 held-out datasets (WSC the exception)"},
                  delta_source=f"model card: T0 (11B) - T0_3B, mean over prompts averaged over the 11 held-out datasets "
                               f"= {gap_11 / 100:.3f}, {rule}: δ = {d_c4}"),
        ]

    def plots(self, scale: str) -> list[Figure]:
        """T0-C1..C4 as the paper draws them: held-out datasets, prompts and datasets in training, size.
        Medians, spreads and means over prompts are fractions (drawn as stored, not x100)."""
        s = SCALES[scale]
        main = s.main.label
        tasks = [t.split("/", 1)[1] for t in sorted(HELD_OUT)]
        prompts = sorted(s.prompts, key=lambda p: p or 10**9)  # ALL (0) last
        datasets = sorted(s.datasets, key=lambda k: k or 10**9)
        who = (("base", "LM-adapted base"), ("t0", "T0 (multitask)"))
        return [Figure("zero_shot", f"T0 ({scale} scale)", (
            Panel("T0-C1: held-out datasets",
                  tuple(Series(name, tuple(f"size/{main}/{w}/{t}/median" for t in tasks)) for w, name in who),
                  x=tuple(tasks), ylabel="median accuracy over prompts"),
            Panel("T0-C2 (Fig. 6)",
                  tuple(Series(name, tuple(f"prompts/{p or 'all'}/{key}" for p in prompts))
                        for key, name in (("median", "median"), ("spread", "spread (std)"))),
                  x=tuple(str(p or "all") for p in prompts), xlabel="prompts per training dataset"),
            Panel("T0-C3 (Fig. 7)",
                  (Series("median over prompts", tuple(f"datasets/{k or 'all'}/median" for k in datasets)),),
                  x=tuple(str(k or "all") for k in datasets), xlabel="training datasets (nested)",
                  ylabel="median accuracy over prompts"),
            Panel("T0-C4: size",
                  tuple(Series(name, tuple(f"size/{z.label}/{w}/mean" for z in s.sizes)) for w, name in who),
                  # the base and T0 share one architecture: the base's count places both
                  x=tuple(f"size/{z.label}/base/params" for z in s.sizes), xlabel="parameters",
                  ylabel="accuracy, mean over prompts", log_x=True),
        ))]

    def measure(self, scale: str, seeds: list[int]) -> Measured:
        """One training seed (the runner calls this once per seed and merges the metrics)."""
        seed = one_seed(seeds)
        s = SCALES[scale]
        bases = lm_adapted_bases(s.bases_scale, BASE_SEED)  # pre-trained, checked and adapted once (cached)
        runs = plan(s)
        done = run_parallel(multitask_job, [(r, s, seed) for r in runs], desc="t0: multitask prompted training")
        by_label = {r.label: d for r, d in zip(runs, done)}
        metrics = self.score(s, by_label)
        metrics[MAJORITY] = one_answer_baseline(held_out_labels(s))
        configs = {"scale": dataclasses.asdict(s), "runs": [dataclasses.asdict(r) for r in runs],
                   "multitask": dataclasses.asdict(multitask_config(s, seed)),
                   "bases": {b.spec.label: {"spec": dataclasses.asdict(b.spec), "adapted": b.dir.name,
                                            "prefix_lm_loss": [b.record["val_loss_before"], b.val_loss]} for b in bases},
                   "training_files": {r.label: training_stems(r, seed) for r in runs if r.trained},
                   "held_out": HELD_OUT, "vocab": len(bases[0].load()[1])}
        seconds = {f"LM adaptation {b.spec.label}": b.record["seconds"] for b in bases}
        seconds.update({r.label: d["seconds"] for r, d in zip(runs, done) if r.trained})
        return Measured(metrics, configs, notes=self.notes(s, bases, by_label, seconds),
                        tables={"Held-out accuracy per dataset (x100; median over prompts / mean over prompts)":
                         self.table(s, runs, by_label)})

    # -- metrics ---------------------------------------------------------------------------------
    @staticmethod
    def score(s: ScaleSettings, by_label: dict) -> dict[str, MetricResult]:
        main = s.main.label
        m: dict[str, MetricResult] = {}
        for z in s.sizes:
            for who in ("base", "t0"):
                res = by_label[f"{who}_{z.label}"]
                m.update(run_metrics(f"size/{z.label}/{who}", res["scores"]))
                m[f"size/{z.label}/{who}/params"] = MetricResult.exact("params", res["params"])
            m[f"size/{z.label}/effect"] = paired_bootstrap_diff(
                m[f"size/{z.label}/t0/mean"].items, m[f"size/{z.label}/base/mean"].items, name="t0 - base")
        full = by_label[f"t0_{main}"]["scores"]
        for p in s.prompts:
            scores = full if p == ALL else by_label[f"t0_{main}_p{p}"]["scores"]
            sub = run_metrics(f"prompts/{p or 'all'}", scores)
            m.update({k: v for k, v in sub.items() if k.count("/") == 2})
        for k in s.datasets:
            scores = full if k == ALL else by_label[f"t0_{main}_d{k}"]["scores"]
            m[f"datasets/{k or 'all'}/median"] = over_prompts("median_acc", prompt_matrices(scores), "median")
            m[f"datasets/{k or 'all'}/spread"] = over_prompts("prompt_std", prompt_matrices(scores), "std")
        # the largest size stands beside T0 (11B), the next beside T0_3B, on RTE (mean over prompts)
        for z, rid in zip(reversed(s.sizes), ("heldout_rte_t0", "heldout_rte_t0_3b")):
            m[f"size/{z.label}/t0/rte/mean"].extra["reported_id"] = rid
        return m

    # -- report ----------------------------------------------------------------------------------
    @staticmethod
    def table(s: ScaleSettings, runs: list[MultitaskRun], by_label: dict) -> list[dict[str, str]]:
        rows = []
        for r in runs:
            scores = by_label[r.label]["scores"]
            row = {"model": r.label, "size": r.size.label,
                   "P3 files": str(by_label[r.label]["p3_files"]) if r.trained else "–"}
            for t in sorted(scores):
                accs = [float(np.mean(v)) for v in scores[t].values()]
                row[t.split("/", 1)[1]] = f"{100 * np.median(accs):.1f} / {100 * np.mean(accs):.1f}"
            rows.append(row)
        return rows

    @staticmethod
    def notes(s: ScaleSettings, bases: list, by_label: dict, seconds: dict) -> list[str]:
        n_files = by_label[f"t0_{s.main.label}"]["p3_files"]
        z = s.main
        return [
            f"Bases: the shared `{s.bases_scale}` encoder-decoders (repro.bases: span corruption 15%/3 on the "
            f"general-English mixture, {z.tokens:,} tokens in windows of {z.block_size}, a Unigram vocabulary of "
            f"{z.vocab_size:,} pieces), sizes {', '.join(b.spec.label for b in bases)}, pre-trained with seed "
            f"{BASE_SEED}. LM adaptation: {bases[0].record['steps']} more steps with the prefix-LM objective, same "
            "optimiser and schedule shape (T5+LM: 100k steps on 1M); held-out prefix-LM loss "
            + ", ".join(f"{b.spec.label} {b.record['val_loss_before']:.2f} -> {b.val_loss:.2f}" for b in bases)
            + ". T0: 3B and 11B.",
            f"Multitask training: {s.steps} steps x {s.batch_size} examples, Adafactor at a constant {s.lr:g}, dropout "
            f"0.1 (T0: 12,200 steps x 1,024, lr 1e-3); the full mixture has {n_files} P3 files (dataset x prompt) "
            "of the 50k-example sample, 180 training rows each (each file's first 20 rows are held out); "
            f"inputs keep their last {s.max_source} tokens, targets their first {s.max_target}; whitespace runs "
            "become one space (the Unigram vocabulary has no newline piece). Held-out task types are refused by "
            "the mixture builder; the sample holds none of them.",
            f"Held-out evaluation: {', '.join(HELD_OUT)} (validation, first {s.eval_items} items each), with "
            f"{'every' if s.eval_prompts is None else s.eval_prompts} prompt(s) the project wrote for each "
            "(FLAN-style, ending in an OPTIONS list; T0 used PromptSource's, which are not in the mirror); rank "
            "classification over the answer strings. Coreference is WNLI (Winograd schemas recast as NLI); "
            "sentence completion (COPA, HellaSwag, StoryCloze) and word sense (WiC) are not in the mirror.",
            "T0-C1 and T0-C4 compare the mean over prompts per item (the model card's statistic; per seed paired "
            "over items); T0-C2 and T0-C3 the median over prompts and the spread (standard deviation of prompt "
            "accuracies), averaged over datasets, whose per-seed CIs resample items within a dataset (over seeds: "
            "the paired per-seed differences plus those CIs' test-set term). T0-C2's arms keep the first p of a seeded order of each dataset's "
            "prompts (T0's 'original task' prompts are not marked in the sample); T0-C3's dataset sets are nested "
            "prefixes of a seeded order, like T0 -> T0+ -> T0++.",
            "Seeds: the runner calls this recipe once per training seed (multitask runs and the training files' "
            "order; the bases are shared) and merges the metrics, so a comparison's interval spans seeds (paired) plus "
            "the held-out items; with one seed no claim is decided. Every claim is read only once the model it "
            "prefers beats the one-answer baseline (majority/mean: each held-out dataset's most frequent evaluated "
            "label for every item) on the same items. The numbers in these notes are the last seed's.",
            "Seconds (cached runs keep their original time): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + ".",
        ]


__all__ = ["T0", "SCALES", "HELD_OUT", "HELD_OUT_TYPES", "plan", "t0_mixture", "training_stems"]
