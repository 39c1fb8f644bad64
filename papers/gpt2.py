"""GPT-2 (Radford et al. 2019): a size sweep of pre-LN decoders, scored zero-shot.

Recipe, scaled down: the size sweep is the suite's shared decoder bases (`repro.bases`):
GPT-2-architecture decoders (pre-LN + final LN, GELU, learned positions, residual init scaled by
1/sqrt(2N); `repro.model.scaled("gpt2_small", ...)`) pre-trained once on one general-English
mixture (books, Wikipedia, C4, TinyStories: a stand-in for WebText, which the mirror only has as
280-character snippets) with byte-level BPE and one token budget, each checked against its
held-out target before any claim is read. They are evaluated without fine-tuning through the
harness: WebText snippets, WikiText-2 and PTB (perplexity per original word, GPT-2's accounting;
no detokeniser, the mirror's WikiText keeps `<unk>`), LAMBADA last-word accuracy, and Tiny
Shakespeare bits per byte. A deep pre-LN and post-LN pair at the same learning rate, trained here
on the book text, tests G2-C4, and L(N) = (N_c/N)^alpha is fitted on the held-out loss as Kaplan
et al. did. Perplexity claims are read in nats (the log of the perplexity), where a relative drop
is the same size at every level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.claims import Claim, all_of, greater, monotone
from harness.lm import ReproLM
from harness.metrics import MetricResult, log_of, perplexity, power_law_fit
from harness.plots import Figure, Panel, Series
from harness.scenarios import get_scenario, run_scenario
from papers import Measured, Paper, one_seed, register
from repro.bases import decoder_bases, pretrain_bases
from repro.model import non_embedding_params
from repro.pipeline import load_run_config, train_run
from repro.pretraining import HELD_OUT, MIXTURE, mixture_documents


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
    # the size sweep is the scale's shared decoder bases (repro.bases); what follows is the deep
    # pre-LN / post-LN pair, trained here on the book text
    deep: Size
    deep_steps: int
    batch_size: int
    block_size: int
    vocab_size: int
    max_chars: int
    deep_lr: float
    eval_limit: int  # documents / items per zero-shot scenario
    fit_docs: int  # train / held-out documents for the under-fitting check
    exam_limit: int  # AGIEval items per exam


SCALES = {
    "smoke": ScaleSettings(
        deep=Size(6, 32, 2), deep_steps=40, batch_size=8, block_size=64, vocab_size=512, max_chars=300_000,
        deep_lr=3e-3, eval_limit=12, fit_docs=12, exam_limit=4,
    ),
    "cpu": ScaleSettings(
        deep=Size(16, 64, 4), deep_steps=250, batch_size=16, block_size=128, vocab_size=4096, max_chars=6_000_000,
        deep_lr=3e-3, eval_limit=150, fit_docs=150, exam_limit=40,
    ),
    "gpu": ScaleSettings(
        deep=Size(24, 256, 8), deep_steps=2000, batch_size=64, block_size=256, vocab_size=8192, max_chars=40_000_000,
        deep_lr=2e-3, eval_limit=1000, fit_docs=500, exam_limit=1000,
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


def run_config(s: ScaleSettings, size: Size, seed: int, norm_placement: str = "pre"):
    """One of the deep pair's runs: `size` with pre- or post-LN on the book text."""
    return load_run_config(base={
        "name": f"gpt2_{size.label}_{norm_placement}ln",
        "preset": "gpt2_small",
        "model": {"n_layer": size.n_layer, "d_model": size.d_model, "n_head": size.n_head,
                  "max_seq_len": s.block_size, "dropout": 0.0, "norm_placement": norm_placement},
        "data": {"dataset": "books", "tokenizer": "bpe", "vocab_size": s.vocab_size, "block_size": s.block_size,
                 "max_chars": s.max_chars, "max_val_chars": 1_000_000, "val_batches": 4},
        "train": {"steps": s.deep_steps, "batch_size": s.batch_size, "lr": s.deep_lr,
                  "warmup_steps": max(1, s.deep_steps // 10), "schedule": "cosine", "seed": seed,
                  "log_every": 25, "progress": False},
    })


def documents(text: str, n: int, chars: int = 1500) -> list[str]:
    """n evenly spaced pieces of a corpus, for per-document bootstrap CIs."""
    step = max(chars, len(text) // max(n, 1))
    return [text[i : i + chars] for i in range(0, len(text) - chars, step)][:n]


def fit_perplexity(lm, docs: list[str]) -> MetricResult:
    scored = lm.loglikelihood_rolling_with_counts(docs)
    return perplexity([-lp for lp, _ in scored], [n for _, n in scored])


def sweep(scale: str) -> list[str]:
    """The size sweep's labels (L2d64, ...), ascending: the scale's decoder bases."""
    return [spec.label for spec in decoder_bases(scale)]


def kaplan_n(spec) -> int:
    """Kaplan et al.'s non-embedding parameter count, N = 12 n_layer d_model^2: known before training."""
    return 12 * spec.n_layer * spec.d_model**2


# Minimum effects of interest (δ), stated before the run, in nats (the log of a perplexity), where a
# relative change is the same size at any level and for any tokenizer: a model 10% better in
# perplexity is -ln(0.9) = 0.105 nats better whatever its perplexity is.
# Table 3, WikiText-2 (the one perplexity of ordinary text in the table): 29.41 (117M) -> 18.34 (1542M),
# a 13.2x sweep: ln(29.41 / 18.34) = 0.47 nats over log10(1542 / 117) = 1.12 decades of parameters.
TABLE3_NATS_PER_DECADE = math.log(29.41 / 18.34) / math.log10(1542 / 117)
PRACTICAL_DROP = 0.10  # where the paper gives no number: 10% lower perplexity (0.105 nats)
PRACTICAL_NATS = -math.log(1 - PRACTICAL_DROP)


def table3_delta(scale: str) -> float:
    """Table 3's WikiText-2 slope (nats per decade of parameters) times the decades our sweep spans
    (Kaplan's N of the first and last bases), to two significant figures."""
    specs = decoder_bases(scale)
    decades = math.log10(kaplan_n(specs[-1]) / kaplan_n(specs[0]))
    return float(f"{TABLE3_NATS_PER_DECADE * decades:.2g}")


@register
class GPT2(Paper):
    name = "gpt2"
    reported_key = "gpt2_radford2019"
    citation = "Radford et al. 2019, Language Models are Unsupervised Multitask Learners"
    # The sizes are the shared decoder bases, one pre-training per seed (each cpu seed trains the
    # three bases, ~25 min on 2 cores, once for every paper); the deep pair is trained here. Three
    # cpu seeds: with two, a t-interval's multiplier is 12.7 and G2-C1 / G2-C4 stayed open.
    default_seeds = {"smoke": [0], "cpu": [0, 1, 2], "gpu": [0, 1, 2]}

    def claims(self, scale: str) -> list[Claim]:
        labels = sweep(scale)
        wiki, web = "wikitext2/log_word_perplexity", "webtext/log_perplexity"
        train, held = "train_text/log_perplexity", "heldout_text/log_perplexity"
        specs = decoder_bases(scale)
        c1 = table3_delta(scale)
        table3 = (f"Table 3's WikiText-2 perplexity falls 29.41 -> 18.34 from 117M to 1542M parameters: "
                  f"{TABLE3_NATS_PER_DECADE:.2f} nats per decade; our sweep spans "
                  f"{math.log10(kaplan_n(specs[-1]) / kaplan_n(specs[0])):.2f} decades of N = 12 n_layer d_model^2 "
                  f"({kaplan_n(specs[0]):,} -> {kaplan_n(specs[-1]):,}) -> δ {c1:g} nats")
        practical = (f"a stated practical threshold: {100 * PRACTICAL_DROP:.0f}% lower perplexity, "
                     f"{PRACTICAL_NATS:.3f} nats")
        return [
            Claim("G2-C1", "Zero-shot performance improves steadily (roughly log-linearly) with parameter count",
                  "Table 3 / Fig. 1", self.name,
                  all_of(monotone([f"{m}/{wiki}" for m in labels], "decreasing", delta=c1),
                         monotone([f"{m}/{web}" for m in labels], "decreasing", delta=c1)),
                  delta_source=table3 + "; the same δ for WebText"),
            Claim("G2-C2", "The models under-fit: training and held-out perplexity both fall with size",
                  "Fig. 4", self.name,
                  all_of(monotone([f"{m}/{train}" for m in labels], "decreasing", delta=round(PRACTICAL_NATS, 3)),
                         monotone([f"{m}/{held}" for m in labels], "decreasing", delta=round(PRACTICAL_NATS, 3))),
                  delta_source=f"Fig. 4's curves are not tabulated (papers.md: M); {practical}, from the smallest "
                               "model to the largest"),
            Claim("G2-C4", "Pre-LN trains a deep stack better than post-LN at the same depth and learning rate",
                  "§2.3", self.name,
                  greater(f"deep_postln/{held}", f"deep_preln/{held}", delta=round(PRACTICAL_NATS, 3)),
                  delta_source=f"§2.3 is qualitative; {practical}"),
        ]

    def plots(self, scale: str) -> list[Figure]:
        """Zero-shot and held-out perplexity against model size, log-log (a power law is a line)."""
        labels = sweep(scale)
        # x is Kaplan's N from the architecture: the non-embedding count measure() took from each loaded model is no metric
        n = tuple(kaplan_n(spec) for spec in decoder_bases(scale))

        def panel(title: str, *series: Series) -> Panel:
            return Panel(title, series, x=n, xlabel="non-embedding parameters (12 n_layer d_model^2)",
                         log_x=True, log_y=True)

        def ppl(label: str, metric: str, dashed: bool = False) -> Series:
            return Series(label, tuple(f"{m}/{metric}" for m in labels), dashed)

        return [Figure("sweep", f"GPT-2 size sweep ({scale} scale): zero-shot metrics vs parameters", (
            panel("WebText perplexity", ppl("zero-shot", "webtext/perplexity")),
            panel("WikiText-2 word ppl", ppl("zero-shot", "wikitext2/word_perplexity")),
            panel("held-out vs training text ppl (power law: a line)", ppl("held-out text", "heldout_text/perplexity"),
                  ppl("train text", "train_text/perplexity", dashed=True)),
        ))]

    def measure(self, scale: str, seeds: list[int]) -> Measured:
        """Score the scale's decoder bases of the one seed the runner passes (pre-trained once, or
        loaded; each checked against its target) zero-shot, and train the deep pre-LN / post-LN pair
        (the runner calls this once per seed and merges the metrics over seeds)."""
        seed = one_seed(seeds)
        s = SCALES[scale]
        metrics: dict[str, MetricResult] = {}
        configs: dict[str, dict] = {}
        held_out_losses, n_params = [], []
        bases = pretrain_bases(scale, [spec.name for spec in decoder_bases(scale)], seeds=(seed,))
        deep = [(f"deep_{p}ln", run_config(s, s.deep, seed, p)) for p in ("pre", "post")]
        # the bases' own text for the under-fitting check: their training mixture and its held-out documents
        train_text = "\n\n".join(mixture_documents(MIXTURE, bases[0].spec.max_chars))
        held_text = "\n\n".join(mixture_documents(HELD_OUT))
        scored = []
        for b in bases:
            configs[b.spec.label] = {"base": b.spec.name, "seed": b.seed, "dir": b.dir.name,
                                     "val_loss": b.val_loss, "target": b.target}
            scored.append((b.spec.label, *b.load()))
        for label, run in deep:
            result = train_run(run)
            configs[label] = run.to_dict()
            scored.append((label, result.model, result.tokenizer))
        for label, model, tokenizer in scored:
            lm = ReproLM(model, tokenizer, batch_size=16)
            metrics[f"{label}/params"] = MetricResult.exact("params", sum(p.numel() for p in model.parameters()))
            for name, text in (("train_text", train_text), ("heldout_text", held_text)):
                ppl = fit_perplexity(lm, documents(text, s.fit_docs))
                metrics[f"{label}/{name}/perplexity"], metrics[f"{label}/{name}/log_perplexity"] = ppl, log_of(ppl)
            if label.startswith("deep_"):
                continue
            held_out_losses.append(metrics[f"{label}/heldout_text/log_perplexity"].value)
            n_params.append(non_embedding_params(model))
            for scenario, metric in ZERO_SHOT.items():
                out = run_scenario(lm, get_scenario(scenario, limit=s.eval_limit))
                short = scenario.removesuffix("_ppl")
                for name in ({metric, "perplexity", "ppl"} & set(out.metrics)) | ({"acc"} & set(out.metrics)):
                    metrics[f"{label}/{short}/{name}"] = out.metrics[name]
                    pattern = REPORTED_IDS.get((scenario, name))
                    if pattern:  # shown beside the paper's number for the same rank in its sweep
                        out.metrics[name].extra["reported_id"] = pattern.format(PAPER_SIZES[len(n_params) - 1])
                    if name in ("perplexity", "word_perplexity"):
                        metrics[f"{label}/{short}/log_{name}"] = log_of(out.metrics[name])
            for exam in AGIEVAL_EXAMS:
                out = run_scenario(lm, get_scenario(f"agieval/{exam}", limit=s.exam_limit))
                metrics[f"{label}/agieval/{exam}/acc"] = out.metrics["acc"]
        alpha, n_c, r2 = power_law_fit(n_params, held_out_losses)
        metrics["power_law/alpha_N"] = MetricResult.exact("alpha_N", alpha, published=KAPLAN_ALPHA_N, r2=r2, n_c=n_c)
        metrics["power_law/r2"] = MetricResult.exact("r2", r2)
        notes = [
            f"Power-law fit of held-out loss: alpha_N = {alpha:.3f} (Kaplan et al. 0.076), R^2 = {r2:.3f}, "
            f"over non-embedding sizes {n_params}.",
            "The size sweep is the shared decoder bases (repro.bases, seed " + str(seed) + "): pre-trained once on the "
            "general-English mixture, each past its held-out target "
            + ", ".join(f"{b.spec.name} {b.val_loss:.3f} <= {b.target:.3f}" for b in bases) + " nats/token. "
            "WebText is evaluated zero-shot from its 280-character snippets. Absolute numbers are far from the "
            "paper's (models 10^3-10^5 x smaller).",
            "Measured metrics are shown beside Table 3 by rank in the size sweep (our smallest beside 117M, ...); "
            "the paper reports LAMBADA accuracy in %, we report a fraction.",
        ]
        return Measured(metrics, configs, notes=notes)


__all__ = ["GPT2", "SCALES"]
