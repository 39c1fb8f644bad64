"""The LM interface every scenario scores through: lm-eval's three request shapes.

    loglikelihood([(context, continuation)])   -> [(sum log p(continuation | context), is_greedy)]
    loglikelihood_rolling([text])              -> [sum log p(text)]  (rolling windows, lm-eval's)
    loglikelihood_rolling_with_counts([text])  -> [(sum log p(text), n_tokens)]  (perplexity, bpb)
    generate_until([(context, {"until": [...], "max_gen_toks": N, ...})]) -> [text]

Two backends share all the text-level logic (tokenising pairs, windows, batching, stop strings) in
`LM`, and differ only in three small hooks (logits of a causal batch, logits of a seq2seq batch,
generated ids):

    ReproLM(run_dir | (model, tokenizer))   a repro `LanguageModel`, decoder-only or encoder-decoder
    HFLM(path | model, tokenizer)           any local `transformers` causal or seq2seq LM
    load_lm(spec)                           either, from a run directory or a model directory

Conventions are lm-eval's (lm_eval.api.model.TemplateLM and lm_eval.models.huggingface.HFLM), so
numbers computed here and through `harness.lm_eval_bridge` agree exactly:
- a context's trailing whitespace moves onto the continuation; causal models encode
  context + continuation together and split at the context's token count (so the boundary token
  is what the model would really see); seq2seq models encode the two separately;
- an empty context conditions on the prefix token (bos, else eos);
- rolling windows are `lm_eval.utils.get_rolling_token_windows(..., context_len=1)` made disjoint;
- causal scoring keeps the last max_length + 1 tokens (left truncation), as lm-eval does.

Requests are sorted longest first (so a batch pads little and the first batch shows whether
memory suffices), run in batches of `batch_size` and returned in the caller's order. Decoder-only
batches are right padded for scoring (positions then need no correction) and left padded for
generation (repro.generate's contract: every row's next token is the last column).
"""

from __future__ import annotations

import abc
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

__all__ = ["LM", "ReproLM", "HFLM", "EfficiencyStats", "load_lm", "GEN_KWARGS"]

# generate_until keys we understand; anything else is an error rather than silently ignored.
GEN_KWARGS = ("until", "max_gen_toks", "do_sample", "temperature", "top_k", "top_p", "seed")
DEFAULT_MAX_GEN_TOKS = 256  # lm-eval's default


# ----------------------------------------------------------------------------------------------
# Efficiency counters


@dataclass
class EfficiencyStats:
    """What the model did and how long it took, summed over calls until `reset()`.

    `seconds` is wall time of the public calls (tokenising and padding included: that is what a
    user waits for); `input_tokens` counts real (unpadded) tokens fed to the model,
    `generated_tokens` the tokens generated up to and including eos."""

    requests: int = 0
    batches: int = 0
    input_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.generated_tokens

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def seconds_per_request(self) -> float:
        return self.seconds / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "tokens": self.tokens, "tokens_per_second": self.tokens_per_second,
                "seconds_per_request": self.seconds_per_request}

    def reset(self) -> None:
        self.__init__()


class _Timed:
    """Adds a public call's requests and wall time to the stats (nested calls count once)."""

    def __init__(self, lm: "LM", n_requests: int):
        self.lm, self.n = lm, n_requests

    def __enter__(self):
        self.outer = not self.lm._in_call
        self.lm._in_call = True
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        if self.outer:
            self.lm._in_call = False
            self.lm.stats.seconds += time.perf_counter() - self.start
            self.lm.stats.requests += self.n


# ----------------------------------------------------------------------------------------------
# Small helpers


def _in_batches(items: Sequence, sort_key: Callable, batch_size: int, run: Callable[[list], list]) -> list:
    """run() on batches of items sorted by sort_key; results back in the items' original order."""
    order = sorted(range(len(items)), key=lambda i: sort_key(items[i]))
    out: list = [None] * len(items)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        for i, result in zip(chunk, run([items[i] for i in chunk]), strict=True):
            out[i] = result
    return out


def _pad(rows: list[list[int]], pad_id: int, side: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
        ids[i, span] = torch.tensor(r, dtype=torch.long)
        mask[i, span] = 1
    return ids.to(device), mask.to(device)


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """The text before the earliest occurrence of any (non-empty) stop string."""
    cut = len(text)
    for stop in until:
        if stop and (i := text.find(stop)) != -1:
            cut = min(cut, i)
    return text[:cut]


# ----------------------------------------------------------------------------------------------
# The interface


class LM(abc.ABC):
    """Text in, scores or text out; subclasses supply the model behind three hooks."""

    name: str
    tokenizer: Any
    is_encoder_decoder: bool

    def __init__(self, tokenizer, *, batch_size: int = 16, device: str | torch.device = "cpu",
                 precision: str = "fp32"):
        from repro.precision import resolve_precision

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        # "bf16": the forward pass under bf16 autocast (the logits themselves come out in fp32 for
        # repro models, see repro.model.heads.LMHead); "auto": bf16 where the device has it natively.
        self.precision = resolve_precision(precision, self.device)
        self.stats = EfficiencyStats()
        self._in_call = False
        if self.eot_token_id is None:
            raise ValueError(f"tokenizer {type(tokenizer).__name__} has no eos token; the harness needs one to stop "
                             "generation and to condition an empty context")

    # -- model facts ----------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def max_length(self) -> int:
        """Longest sequence the model is scored on (the position table, or its documented context)."""

    @property
    @abc.abstractmethod
    def num_parameters(self) -> int: ...

    @property
    def eot_token_id(self) -> int | None:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        """What an empty context conditions on: bos if the tokenizer has one, else eos (lm-eval)."""
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    @property
    def pad_token_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.eot_token_id

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    # -- backend hooks --------------------------------------------------------------------------
    @abc.abstractmethod
    def _causal_logits(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, V) next-token logits of a right-padded batch."""

    @abc.abstractmethod
    def _seq2seq_logits(self, src, src_mask, dec_ids, dec_mask) -> torch.Tensor:
        """(B, T_dec, V) logits of teacher-forced decoder inputs (which start with the start token)."""

    @abc.abstractmethod
    def _generate_ids(self, ids, mask, max_new_tokens: int, options: dict) -> torch.Tensor:
        """(B, <= max_new_tokens) generated ids only. Decoder-only `ids` are left padded."""

    # -- tokenisation ---------------------------------------------------------------------------
    def tok_encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        # verbose=False: long documents for rolling windows are expected to exceed model_max_length
        return self.tokenizer(text, add_special_tokens=add_special_tokens, verbose=False)["input_ids"]

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids), the way lm-eval's TemplateLM tokenises a request."""
        if context == "":
            cont = self.tok_encode(continuation)
            if cont and cont[0] == self.prefix_token_id:
                return cont[:1], cont[1:]  # the text already starts with the prefix token
            return [self.prefix_token_id], cont
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        if self.is_encoder_decoder:
            # The encoder sees the context as a whole input (T5 appends its eos); the decoder target
            # carries no special tokens.
            return self.tok_encode(context, add_special_tokens=True), self.tok_encode(continuation)
        whole = self.tok_encode(context + continuation)
        n_context = len(self.tok_encode(context))
        return whole[:n_context], whole[n_context:]

    # -- loglikelihood --------------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        with _Timed(self, len(requests)):
            return self.score_tokens([self.encode_pair(c, x) for c, x in requests])

    def score_tokens(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(log p(continuation | context), is_greedy) for token-id pairs; the core of every score."""
        for ctx, cont in pairs:
            if not ctx:
                raise ValueError("a context must have at least one token (condition on the prefix token)")
            if len(cont) > self.max_length:
                raise ValueError(f"a continuation of {len(cont)} tokens exceeds max_length={self.max_length}; "
                                 "score it with loglikelihood_rolling instead")
        run = self._score_seq2seq if self.is_encoder_decoder else self._score_causal
        # An empty continuation has probability one and needs no forward pass.
        out: list[tuple[float, bool]] = [(0.0, True)] * len(pairs)
        todo = [i for i, (_, cont) in enumerate(pairs) if cont]
        # lm-eval's order: longest first, ties by the tokens themselves (deterministic batches).
        scores = _in_batches([pairs[i] for i in todo], lambda p: (-len(p[0]) - len(p[1]), tuple(p[0] + p[1])),
                             self.batch_size, run)
        for i, score in zip(todo, scores):
            out[i] = score
        return out

    def rank_answers(self, sources: Sequence[Sequence[int]], answers: Sequence[str], *,
                     source_eos: bool) -> list[list[float]]:
        """Rank classification (T0, FLAN; T5's GLUE answers here): log p(answer + eos | source) for
        every source x answer, [source][answer]. Sources are token ids taken as they are, with eos
        appended when `source_eos` (T5's convention: an encoder input ends in eos) unless already
        last; answers are strings, tokenised without special tokens, each ending in eos so that a
        short answer cannot win by being a prefix of a longer one."""
        from repro.data.text_to_text import with_eos

        eos = self.eot_token_id
        targets = [with_eos(self.tok_encode(a), eos) for a in answers]
        pairs = [(with_eos(src, eos) if source_eos else [int(i) for i in src], target)
                 for src in sources for target in targets]
        scores = self.score_tokens(pairs)
        return [[ll for ll, _ in scores[i * len(targets):(i + 1) * len(targets)]] for i in range(len(sources))]

    @torch.no_grad()
    def _score_causal(self, pairs: list) -> list[tuple[float, bool]]:
        # The input is context + continuation minus its last token (that token is only a target),
        # left-truncated to max_length as lm-eval does.
        rows = [(ctx + cont)[-(self.max_length + 1) :][:-1] for ctx, cont in pairs]
        ids, mask = _pad(rows, self.pad_token_id, "right", self.device)
        with self._autocast():
            logits = self._causal_logits(ids, mask)
        self._count(mask)
        return [self._continuation_score(logits[i, len(row) - len(cont) : len(row)], cont)
                for i, (row, (_, cont)) in enumerate(zip(rows, pairs))]

    @torch.no_grad()
    def _score_seq2seq(self, pairs: list) -> list[tuple[float, bool]]:
        src = [ctx[-self.max_length :] for ctx, _ in pairs]
        dec = [[self.decoder_start_id] + cont[:-1] for _, cont in pairs]
        src_ids, src_mask = _pad(src, self.pad_token_id, "right", self.device)
        dec_ids, dec_mask = _pad(dec, self.pad_token_id, "right", self.device)
        with self._autocast():
            logits = self._seq2seq_logits(src_ids, src_mask, dec_ids, dec_mask)
        self._count(src_mask)
        self._count(dec_mask)
        return [self._continuation_score(logits[i, : len(cont)], cont) for i, (_, cont) in enumerate(pairs)]

    @property
    def decoder_start_id(self) -> int:
        return self.pad_token_id  # T5's convention; HFLM reads the model's config instead

    def _continuation_score(self, logits: torch.Tensor, cont: list[int]) -> tuple[float, bool]:
        target = torch.tensor(cont, device=logits.device)
        logprobs = logits.float().log_softmax(-1)
        total = float(logprobs.gather(-1, target[:, None]).sum())
        return total, bool((logprobs.argmax(-1) == target).all())

    def _count(self, mask: torch.Tensor) -> None:
        self.stats.batches += 1
        self.stats.input_tokens += int(mask.sum())

    # -- loglikelihood_rolling ------------------------------------------------------------------
    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        return [total for total, _ in self.loglikelihood_rolling_with_counts(texts)]

    def loglikelihood_rolling_with_counts(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        """(log p(text), number of tokens scored) per text: perplexity and bits-per-byte need both."""
        if self.is_encoder_decoder:
            raise NotImplementedError(
                f"{self.name} is an encoder-decoder model: it has no unconditional text distribution to roll "
                "windows over. Score text as a continuation with loglikelihood([(context, text)]) instead."
            )
        with _Timed(self, len(texts)):
            owners, windows, counts = [], [], []
            for i, text in enumerate(texts):
                tokens = self.tok_encode(text)
                counts.append(len(tokens))
                for window in get_rolling_token_windows(tokens, self.prefix_token_id, self.max_length, context_len=1):
                    owners.append(i)
                    windows.append(make_disjoint_window(window))
            totals = [0.0] * len(texts)
            # All windows of all texts in one sorted stream: full windows batch together.
            for i, (logprob, _) in zip(owners, self.score_tokens(windows), strict=True):
                totals[i] += logprob
            return list(zip(totals, counts))

    # -- generate_until -------------------------------------------------------------------------
    def generate_until(self, requests: Sequence[tuple[str, dict]]) -> list[str]:
        """Greedy unless do_sample (and temperature > 0); output cut at the first stop string."""
        with _Timed(self, len(requests)):
            parsed = [(context, self._gen_options(kwargs)) for context, kwargs in requests]
            # Requests with the same decoding options share batches (lm-eval groups the same way).
            groups: dict[str, list[int]] = defaultdict(list)
            for i, (_, opts) in enumerate(parsed):
                # `until` is part of the key so a batch can stop early on its own stop strings
                groups[json.dumps(opts, sort_keys=True)].append(i)
            out: list[str] = [""] * len(requests)
            for members in groups.values():
                opts = parsed[members[0]][1]
                prompts = [self._generation_prompt(parsed[i][0], opts["max_gen_toks"]) for i in members]
                for i, text in zip(members, self._generate_all(prompts, opts)):
                    out[i] = cut_at_stop(text, opts["until"])
            return out

    def generate_ids(self, prompts: Sequence[Sequence[int]], **kwargs) -> list[str]:
        """`generate_until` for prompts that are already token ids (a paper's encoded sources, taken
        as they are: no truncation, no special tokens added), with the same options and batching."""
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        opts = self._gen_options(kwargs)
        with _Timed(self, len(prompts)):
            texts = self._generate_all([[int(t) for t in p] for p in prompts], opts)
            return [cut_at_stop(text, opts["until"]) for text in texts]

    def _generate_all(self, prompts: list[list[int]], opts: dict) -> list[str]:
        """Texts generated for `prompts`, longest first in batches of `batch_size`, in input order."""
        return _in_batches(prompts, lambda p: (-len(p), p), self.batch_size, lambda batch: self._generate_batch(batch, opts))

    def _gen_options(self, kwargs: dict | None) -> dict:
        kwargs = dict(kwargs or {})
        unknown = set(kwargs) - set(GEN_KWARGS)
        if unknown:
            raise ValueError(f"unknown generation option(s) {sorted(unknown)}; supported: {', '.join(GEN_KWARGS)}")
        until = kwargs.get("until") or []
        until = [until] if isinstance(until, str) else list(until)
        temperature = 1.0 if kwargs.get("temperature") is None else float(kwargs["temperature"])
        # lm-eval's convention: temperature 0 means greedy whatever do_sample says.
        sample = bool(kwargs.get("do_sample", False)) and temperature > 0
        return {
            "until": until,
            "max_gen_toks": int(kwargs.get("max_gen_toks", DEFAULT_MAX_GEN_TOKS)),
            "sample": sample,
            "temperature": temperature if sample else 1.0,
            "top_k": int(kwargs.get("top_k") or 0),
            "top_p": float(kwargs.get("top_p") or 1.0),
            "seed": kwargs.get("seed"),
        }

    def _max_new_tokens(self, max_gen_toks: int) -> int:
        # A decoder-only prompt needs at least one token of room in the context window.
        return max(0, min(max_gen_toks, self.max_length if self.is_encoder_decoder else self.max_length - 1))

    def _generation_prompt(self, context: str, max_gen_toks: int) -> list[int]:
        if self.is_encoder_decoder:
            ids = self.tok_encode(context, add_special_tokens=True)[-self.max_length :]
        else:
            # Keep the end of the context: prompt + generated tokens must fit in max_length.
            ids = self.tok_encode(context)[-(self.max_length - self._max_new_tokens(max_gen_toks)) :]
        return ids or [self.prefix_token_id]

    @torch.no_grad()
    def _generate_batch(self, prompts: list[list[int]], opts: dict) -> list[str]:
        n = self._max_new_tokens(opts["max_gen_toks"])
        if n == 0:
            return [""] * len(prompts)
        side = "right" if self.is_encoder_decoder else "left"
        ids, mask = _pad(prompts, self.pad_token_id, side, self.device)
        with self._autocast():
            generated = self._generate_ids(ids, mask, n, opts).tolist()
        self._count(mask)
        texts = []
        for row in generated:
            if self.eot_token_id in row:
                row = row[: row.index(self.eot_token_id) + 1]
            self.stats.generated_tokens += len(row)
            texts.append(self.tokenizer.decode(row, skip_special_tokens=True))
        return texts

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, params={self.num_parameters:,}, max_length={self.max_length})"


# ----------------------------------------------------------------------------------------------
# repro checkpoints


class ReproLM(LM):
    """A repro `LanguageModel`: `ReproLM(run_dir)`, `ReproLM(model, tokenizer)` or
    `ReproLM((model, tokenizer))`. A run directory is what `repro train` writes
    (checkpoint.pt + tokenizer/)."""

    def __init__(self, source, tokenizer=None, *, batch_size: int = 16, device: str = "cpu", name: str | None = None,
                 precision: str = "auto"):
        from repro.model import LanguageModel

        if isinstance(source, (tuple, list)):
            source, tokenizer = source
        if isinstance(source, (str, os.PathLike)):
            model, tokenizer, default_name = self._load_run(Path(source), tokenizer, device)
        else:
            model, default_name = source, f"repro-{getattr(source.config, 'kind', 'model')}"
            if tokenizer is None:
                raise ValueError("ReproLM(model, tokenizer): a model object needs its tokenizer")
        if not isinstance(model, LanguageModel):
            raise TypeError(f"ReproLM needs a repro LanguageModel (decoder or encoder-decoder LM head), "
                            f"got {type(model).__name__}")
        if len(tokenizer) > model.config.vocab_size:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model's vocabulary is "
                             f"{model.config.vocab_size}: they do not belong together")
        self.model = model.to(device).eval()
        self.name = name or default_name
        self.is_encoder_decoder = model.config.kind == "encoder-decoder"
        super().__init__(tokenizer, batch_size=batch_size, device=device, precision=precision)

    @staticmethod
    def _load_run(run_dir: Path, tokenizer, device: str):
        from repro.tokenizers import load_tokenizer
        from repro.train import load_checkpoint

        model, _ = load_checkpoint(run_dir, device=device)
        if isinstance(tokenizer, (str, os.PathLike)):  # a tokenizer directory, e.g. from lm-eval's model_args
            if not Path(tokenizer).is_dir():
                raise FileNotFoundError(f"tokenizer directory {tokenizer} does not exist; pass the tokenizer/ folder "
                                        "that `repro train` wrote beside the checkpoint")
            tokenizer = load_tokenizer(tokenizer)
        if tokenizer is None:
            tok_dir = (run_dir if run_dir.is_dir() else run_dir.parent) / "tokenizer"
            if not tok_dir.is_dir():
                raise FileNotFoundError(f"no tokenizer/ beside the checkpoint in {tok_dir.parent}; "
                                        "pass tokenizer= or use a run directory written by `repro train`")
            tokenizer = load_tokenizer(tok_dir)
        name = run_dir.name if run_dir.is_dir() else run_dir.parent.name
        return model, tokenizer, name

    @property
    def max_length(self) -> int:
        return self.model.config.max_seq_len

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())  # parameters() counts tied weights once

    def _causal_logits(self, ids, mask):
        return self.model(ids, mask).logits

    def _seq2seq_logits(self, src, src_mask, dec_ids, dec_mask):
        return self.model(src, src_mask, decoder_input_ids=dec_ids, decoder_attention_mask=dec_mask).logits

    def _generate_ids(self, ids, mask, max_new_tokens, options):
        from repro.generate import GenerationConfig, generate

        config = GenerationConfig(
            max_new_tokens=max_new_tokens, method="sample" if options["sample"] else "greedy",
            temperature=options["temperature"], top_k=options["top_k"], top_p=options["top_p"],
            eos_id=self.eot_token_id, pad_id=self.pad_token_id, decoder_start_id=self.decoder_start_id,
            seed=options["seed"],
        )
        until = options.get("until") or []
        # Stop a row as soon as a stop string shows up, instead of decoding all max_gen_toks.
        stop = (lambda toks: any(s in self.tokenizer.decode(toks) for s in until)) if until else None
        return generate(self.model, ids, mask, config, stop=stop)


# ----------------------------------------------------------------------------------------------
# transformers models


class HFLM(LM):
    """Any `transformers` causal LM (AutoModelForCausalLM) or seq2seq LM (AutoModelForSeq2SeqLM),
    from a local directory or a model object: a user's own weights through the same harness."""

    def __init__(self, path_or_model, tokenizer=None, *, batch_size: int = 16, device: str = "cpu",
                 name: str | None = None, precision: str = "fp32"):
        import transformers

        if isinstance(path_or_model, (str, os.PathLike)):
            path = Path(path_or_model)
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"no transformers model at {path} (expected {path / 'config.json'}); "
                                        "save one with model.save_pretrained(path) — the hub is never consulted")
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
            seq2seq = config.is_encoder_decoder
            auto = transformers.AutoModelForSeq2SeqLM if seq2seq else transformers.AutoModelForCausalLM
            model = auto.from_pretrained(path, local_files_only=True)
            tokenizer = tokenizer if tokenizer is not None else path
            default_name = path.name
        else:
            model = path_or_model
            if tokenizer is None:
                raise ValueError("HFLM(model, tokenizer): a model object needs its tokenizer")
            default_name = getattr(model.config, "name_or_path", "") or type(model).__name__
        if isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True)
        self.model = model.to(device).eval()
        self.name = name or str(default_name)
        self.is_encoder_decoder = bool(model.config.is_encoder_decoder)
        # fp32 by default: what lm-eval's own `hf` model computes, so the two agree item by item.
        super().__init__(tokenizer, batch_size=batch_size, device=device, precision=precision)

    @property
    def max_length(self) -> int:
        # lm-eval's lookup: the model's position table, else the tokenizer's limit, else 2048.
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            value = getattr(self.model.config, attr, None)
            if value:
                return int(value)
        limit = getattr(self.tokenizer, "model_max_length", None)
        return int(limit) if limit and limit < 10**9 else 2048

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def decoder_start_id(self) -> int:
        start = getattr(self.model.config, "decoder_start_token_id", None)
        return start if start is not None else self.pad_token_id

    def _causal_logits(self, ids, mask):
        return self.model(input_ids=ids, attention_mask=mask).logits

    def _seq2seq_logits(self, src, src_mask, dec_ids, dec_mask):
        return self.model(input_ids=src, attention_mask=src_mask, decoder_input_ids=dec_ids,
                          decoder_attention_mask=dec_mask).logits

    def _generate_ids(self, ids, mask, max_new_tokens, options):
        import transformers

        knobs = {"do_sample": options["sample"]}
        if options["sample"]:
            # Explicit filters: the model's own generation defaults (top_k=50) must not leak in.
            knobs.update(temperature=options["temperature"], top_k=options["top_k"] or None, top_p=options["top_p"])
            if options["seed"] is not None:
                torch.manual_seed(options["seed"])
        config = transformers.GenerationConfig(
            max_new_tokens=max_new_tokens, eos_token_id=self.eot_token_id, pad_token_id=self.pad_token_id,
            decoder_start_token_id=self.decoder_start_id if self.is_encoder_decoder else None, **knobs,
        )
        out = self.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        # Causal models return prompt + new tokens; seq2seq models the start token + new tokens.
        return out[:, 1:] if self.is_encoder_decoder else out[:, ids.shape[1] :]


# ----------------------------------------------------------------------------------------------
# One entry point


def load_lm(spec: str | os.PathLike, **kwargs) -> LM:
    """An LM from a repro run directory (checkpoint.pt + tokenizer/) or a transformers model
    directory (config.json). Prefix with `repro:` or `hf:` to force one. kwargs go to the class."""
    text = str(spec)
    forced = None
    for prefix in ("repro:", "hf:"):
        if text.startswith(prefix):
            forced, text = prefix[:-1], text[len(prefix) :]
    path = Path(text)
    is_repro = (path / "checkpoint.pt").is_file() or (path.is_file() and path.suffix == ".pt")
    if forced == "repro" or (forced is None and is_repro):
        return ReproLM(path, **kwargs)
    if forced == "hf" or (path / "config.json").is_file():
        return HFLM(path, **kwargs)
    raise FileNotFoundError(
        f"{path} is neither a repro run directory (checkpoint.pt + tokenizer/, written by `repro train`) "
        "nor a transformers model directory (config.json, written by save_pretrained)"
    )
