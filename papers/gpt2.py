"""GPT-2 (Radford et al. 2019): a size sweep of pre-LN decoders, scored zero-shot.

Recipe, scaled down: four GPT-2-architecture decoders (pre-LN + final LN, GELU, learned
positions, residual init scaled by 1/sqrt(2N); `repro.model.scaled("gpt2_small", ...)`), trained on
the same book text (a stand-in for WebText, which the mirror only has as 280-character snippets)
with byte-level BPE and the same number of steps, then evaluated without fine-tuning through the
harness: WebText snippets, WikiText-2 and PTB (perplexity per original word, GPT-2's accounting;
no detokeniser, the mirror's WikiText keeps `<unk>`), LAMBADA last-word accuracy, and Tiny
Shakespeare bits per byte. A deep pre-LN and post-LN pair at the same learning rate tests G2-C4,
and L(N) = (N_c/N)^alpha is fitted on the held-out loss as Kaplan et al. did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from harness.claims import Claim, all_of, greater, monotone
from harness.lm import ReproLM
from harness.metrics import MetricResult, perplexity, power_law_fit
from harness.scenarios import get_scenario, run_scenario
from papers import Measured, Paper, one_seed, register
from repro.model import non_embedding_params
from repro.pipeline import corpus_text, load_run_config, train_run


@dataclass(frozen=True)
class Size:
    n_layer: int
    d_model: int
    n_head: int

    @property
    def label(self) -> str:
        return f"L{self.n_layer}d{self.d_model}"


@dataclass(frozen=True)
class ScaleSettings:
    sizes: tuple[Size, ...]
    deep: Size  # the pre-LN vs post-LN depth test
    steps: int
    deep_steps: int
    batch_size: int
    block_size: int
    vocab_size: int
    max_chars: int
    lr: float
    deep_lr: float
    eval_limit: int  # documents / items per zero-shot scenario
    fit_docs: int  # train / held-out documents for the under-fitting check
    exam_limit: int  # AGIEval items per exam


SCALES = {
    "smoke": ScaleSettings(
        sizes=(Size(1, 16, 2), Size(1, 32, 2), Size(2, 48, 4), Size(2, 64, 4)), deep=Size(6, 32, 2),
        steps=60, deep_steps=40, batch_size=8, block_size=64, vocab_size=512, max_chars=300_000,
        lr=3e-3, deep_lr=3e-3, eval_limit=12, fit_docs=12, exam_limit=4,
    ),
    "cpu": ScaleSettings(
        sizes=(Size(2, 48, 4), Size(3, 96, 4), Size(4, 144, 4), Size(6, 192, 6)), deep=Size(16, 64, 4),
        steps=500, deep_steps=250, batch_size=16, block_size=128, vocab_size=4096, max_chars=6_000_000,
        lr=2e-3, deep_lr=3e-3, eval_limit=150, fit_docs=150, exam_limit=40,
    ),
    "gpu": ScaleSettings(
        sizes=(Size(4, 128, 4), Size(6, 256, 8), Size(8, 384, 6), Size(12, 512, 8)), deep=Size(24, 256, 8),
        steps=4000, deep_steps=2000, batch_size=64, block_size=256, vocab_size=8192, max_chars=40_000_000,
        lr=1e-3, deep_lr=2e-3, eval_limit=1000, fit_docs=500, exam_limit=1000,
    ),
}

PAPER_SIZES = ("117M", "345M", "762M", "1542M")  # Table 3 rows, paired with our sweep by rank
REPORTED_IDS = {  # (scenario, metric) -> reported.yaml id pattern
    ("wikitext2_ppl", "word_perplexity"): "t3_{}_wikitext2_ppl",
    ("ptb_ppl", "word_perplexity"): "t3_{}_ptb_ppl",
    ("lambada", "acc"): "t3_{}_lambada_acc",
    ("lambada", "ppl"): "t3_{}_lambada_ppl",
}
ZERO_SHOT = {  # scenario -> the metric G2-C1 follows (lower is better unless noted)
    "webtext_ppl": "perplexity",
    "wikitext2_ppl": "word_perplexity",
    "ptb_ppl": "word_perplexity",
    "tinyshakespeare_ppl": "bits_per_byte",
    "lambada": "acc",
}
# AGIEval's English multiple-choice exams, zero-shot (not a GPT-2 claim: the suite's exam table)
AGIEVAL_EXAMS = ("lsat-ar", "lsat-lr", "lsat-rc", "logiqa-en", "sat-math", "sat-en", "aqua-rat", "gaokao-english")
KAPLAN_ALPHA_N = 0.076  # Kaplan et al. 2020, L(N) exponent (papers.md Appendix B)


def run_config(s: ScaleSettings, size: Size, seed: int, norm_placement: str = "pre", steps=None, lr=None):
    return load_run_config(base={
        "name": f"gpt2_{size.label}_{norm_placement}ln",
        "preset": "gpt2_small",
        "model": {"n_layer": size.n_layer, "d_model": size.d_model, "n_head": size.n_head,
                  "max_seq_len": s.block_size, "dropout": 0.0, "norm_placement": norm_placement},
        "data": {"dataset": "books", "tokenizer": "bpe", "vocab_size": s.vocab_size, "block_size": s.block_size,
                 "max_chars": s.max_chars, "max_val_chars": 1_000_000, "val_batches": 4},
        "train": {"steps": steps or s.steps, "batch_size": s.batch_size, "lr": lr or s.lr,
                  "warmup_steps": max(1, (steps or s.steps) // 10), "schedule": "cosine", "seed": seed,
                  "log_every": 25, "progress": False},
    })


def documents(text: str, n: int, chars: int = 1500) -> list[str]:
    """n evenly spaced pieces of a corpus, for per-document bootstrap CIs."""
    step = max(chars, len(text) // max(n, 1))
    return [text[i : i + chars] for i in range(0, len(text) - chars, step)][:n]


def fit_perplexity(lm, docs: list[str]) -> MetricResult:
    scored = lm.loglikelihood_rolling_with_counts(docs)
    return perplexity([-lp for lp, _ in scored], [n for _, n in scored])


# Minimum effects of interest (δ), stated before the run, in each metric's own units. Perplexities are
# carried over as relative effects: the paper's relative change times our smallest model's level at the
# cpu scale, where claims are decided (the one-seed cpu run before seeds became the unit of evidence).
# Smoke runs one seed and decides nothing; a gpu run would want these levels re-measured.
CPU_LEVELS = {  # our smallest size's perplexity at the cpu scale (the deep pair: the pre-LN run's)
    "wikitext2/word_perplexity": 6.2e6, "webtext/perplexity": 740.0, "train_text/perplexity": 205.0,
    "heldout_text/perplexity": 244.0, "deep_preln/heldout_text/perplexity": 320.0,
}
# Table 3, WikiText-2 (the one perplexity of ordinary text in the table): 29.41 (117M) -> 18.34 (1542M)
TABLE3_WIKITEXT2_DROP = (29.41 - 18.34) / 29.41
PRACTICAL_DROP = 0.10  # where the paper gives no number: 10% lower perplexity (~0.1 nats per token)


def relative_delta(fraction: float, key: str) -> float:
    """`fraction` of our cpu level of `key`, to two significant figures."""
    return float(f"{fraction * CPU_LEVELS[key]:.2g}")


@register
class GPT2(Paper):
    name = "gpt2"
    reported_key = "gpt2_radford2019"
    citation = "Radford et al. 2019, Language Models are Unsupervised Multitask Learners"
    # Every arm is a pre-training run: one cpu seed took 1,470 s (the four sizes, the deep pair, every
    # zero-shot evaluation), already past the 20-minute budget, so the cpu scale runs 2 seeds, not 3.
    default_seeds = {"smoke": [0], "cpu": [0, 1], "gpu": [0, 1, 2]}

    def claims(self, scale: str) -> list[Claim]:
        labels = [size.label for size in SCALES[scale].sizes]
        wiki, web = "wikitext2/word_perplexity", "webtext/perplexity"
        train, held = "train_text/perplexity", "heldout_text/perplexity"
        table3 = (f"Table 3's WikiText-2 perplexity falls {100 * TABLE3_WIKITEXT2_DROP:.1f}% from 117M to 1542M "
                  "(29.41 -> 18.34; a 13x sweep, ours spans ~47x non-embedding parameters)")
        return [
            Claim("G2-C1", "Zero-shot performance improves steadily (roughly log-linearly) with parameter count",
                  "Table 3 / Fig. 1", self.name,
                  all_of(monotone([f"{m}/{wiki}" for m in labels], "decreasing",
                                  delta=relative_delta(TABLE3_WIKITEXT2_DROP, wiki)),
                         monotone([f"{m}/{web}" for m in labels], "decreasing",
                                  delta=relative_delta(TABLE3_WIKITEXT2_DROP, web))),
                  delta_source=f"{table3}; that fraction of our smallest model's cpu perplexity (WikiText-2 word "
                               f"{CPU_LEVELS[wiki]:.2g} -> δ {relative_delta(TABLE3_WIKITEXT2_DROP, wiki):.2g}; WebText "
                               f"{CPU_LEVELS[web]:g} -> δ {relative_delta(TABLE3_WIKITEXT2_DROP, web):g})"),
            Claim("G2-C2", "The models under-fit: training and held-out perplexity both fall with size",
                  "Fig. 4", self.name,
                  all_of(monotone([f"{m}/{train}" for m in labels], "decreasing",
                                  delta=relative_delta(PRACTICAL_DROP, train)),
                         monotone([f"{m}/{held}" for m in labels], "decreasing",
                                  delta=relative_delta(PRACTICAL_DROP, held))),
                  delta_source=f"Fig. 4's curves are not tabulated (papers.md: M); a stated practical threshold of "
                               f"{100 * PRACTICAL_DROP:.0f}% lower perplexity from the smallest model to the largest, of "
                               f"our smallest model's cpu perplexity (train {CPU_LEVELS[train]:g} -> δ "
                               f"{relative_delta(PRACTICAL_DROP, train):g}; held-out {CPU_LEVELS[held]:g} -> δ "
                               f"{relative_delta(PRACTICAL_DROP, held):g})"),
            Claim("G2-C4", "Pre-LN trains a deep stack better than post-LN at the same depth and learning rate",
                  "§2.3", self.name,
                  greater(f"deep_postln/{held}", f"deep_preln/{held}",
                          delta=relative_delta(PRACTICAL_DROP, f"deep_preln/{held}")),
                  delta_source=f"§2.3 is qualitative; a stated practical threshold of {100 * PRACTICAL_DROP:.0f}% of "
                               f"the pre-LN run's cpu held-out perplexity ({CPU_LEVELS[f'deep_preln/{held}']:g} -> δ "
                               f"{relative_delta(PRACTICAL_DROP, f'deep_preln/{held}'):g})"),
        ]

    def measure(self, scale: str, seeds: list[int]) -> Measured:
        """Train the size sweep and the deep pre-LN / post-LN pair with the one seed the runner passes
        (it calls this once per seed and merges the metrics over seeds), and score them zero-shot."""
        seed = one_seed(seeds)
        s = SCALES[scale]
        metrics: dict[str, MetricResult] = {}
        configs: dict[str, dict] = {}
        held_out_losses, n_params = [], []
        runs = [(size.label, run_config(s, size, seed)) for size in s.sizes]
        runs += [(f"deep_{p}ln", run_config(s, s.deep, seed, p, s.deep_steps, s.deep_lr)) for p in ("pre", "post")]
        train_text = held_text = None
        cached = []
        for label, run in runs:
            result = train_run(run)
            configs[label] = run.to_dict()
            if result.cached:
                cached.append(label)
            if train_text is None:
                train_text = corpus_text(run.data, run.data.train_split, run.data.max_chars)
                held_text = corpus_text(run.data, run.data.val_split, run.data.max_val_chars)
            lm = ReproLM(result.model, result.tokenizer, batch_size=16)
            metrics[f"{label}/params"] = MetricResult.exact("params", sum(p.numel() for p in result.model.parameters()))
            metrics[f"{label}/train_text/perplexity"] = fit_perplexity(lm, documents(train_text, s.fit_docs))
            metrics[f"{label}/heldout_text/perplexity"] = held = fit_perplexity(lm, documents(held_text, s.fit_docs))
            if label.startswith("deep_"):
                continue
            held_out_losses.append(math.log(held.value))
            n_params.append(non_embedding_params(result.model))
            for scenario, metric in ZERO_SHOT.items():
                out = run_scenario(lm, get_scenario(scenario, limit=s.eval_limit))
                short = scenario.removesuffix("_ppl")
                for name in ({metric, "perplexity", "ppl"} & set(out.metrics)) | ({"acc"} & set(out.metrics)):
                    metrics[f"{label}/{short}/{name}"] = out.metrics[name]
                    pattern = REPORTED_IDS.get((scenario, name))
                    if pattern:  # shown beside the paper's number for the same rank in its sweep
                        out.metrics[name].extra["reported_id"] = pattern.format(PAPER_SIZES[len(n_params) - 1])
            for exam in AGIEVAL_EXAMS:
                out = run_scenario(lm, get_scenario(f"agieval/{exam}", limit=s.exam_limit))
                metrics[f"{label}/agieval/{exam}/acc"] = out.metrics["acc"]
        alpha, n_c, r2 = power_law_fit(n_params, held_out_losses)
        metrics["power_law/alpha_N"] = MetricResult.exact("alpha_N", alpha, published=KAPLAN_ALPHA_N, r2=r2, n_c=n_c)
        metrics["power_law/r2"] = MetricResult.exact("r2", r2)
        figure = self.figure(scale, n_params, metrics)
        notes = [
            f"Power-law fit of held-out loss: alpha_N = {alpha:.3f} (Kaplan et al. 0.076), R^2 = {r2:.3f}, "
            f"over non-embedding sizes {n_params}.",
            "Pretraining text: Project Gutenberg books (BooksCorpus stand-in); WebText is evaluated zero-shot from "
            "its 280-character snippets. Absolute numbers are far from the paper's (models 10^3-10^5 x smaller).",
            "Measured metrics are shown beside Table 3 by rank in the size sweep (our smallest beside 117M, ...); "
            "the paper reports LAMBADA accuracy in %, we report a fraction.",
            f"Models loaded from the artifact cache instead of trained in this run: {', '.join(cached) or 'none'}.",
        ]
        return Measured(metrics, configs, [str(figure)], notes)

    def figure(self, scale: str, n_params: list[int], metrics: dict) -> Path:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = [size.label for size in SCALES[scale].sizes]
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        panels = [("webtext/perplexity", "WebText perplexity"), ("wikitext2/word_perplexity", "WikiText-2 word ppl"),
                  ("heldout_text/perplexity", "held-out book ppl (log-log: power law)")]
        for ax, (key, title) in zip(axes, panels):
            ys = [metrics[f"{m}/{key}"] for m in labels]
            ax.errorbar(n_params, [y.value for y in ys],
                        yerr=[[y.value - (y.ci_low if y.ci_low is not None else y.value) for y in ys],
                              [(y.ci_high if y.ci_high is not None else y.value) - y.value for y in ys]],
                        marker="o", capsize=3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("non-embedding parameters")
            ax.set_title(title, fontsize=10)
        train = [metrics[f"{m}/train_text/perplexity"].value for m in labels]
        axes[2].plot(n_params, train, marker="s", linestyle="--", label="train text")
        axes[2].legend(fontsize=8)
        fig.suptitle(f"GPT-2 size sweep ({scale} scale): zero-shot metrics vs parameters", fontsize=11)
        fig.tight_layout()
        return self.save_figure(fig, f"{scale}_gpt2_sweep.png")


__all__ = ["GPT2", "SCALES"]
