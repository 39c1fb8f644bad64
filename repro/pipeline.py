"""A training run from one YAML file: tokenizer -> data/objective -> model -> trainer -> checkpoint.

    name: shakespeare_tiny
    preset: gpt2_small            # the architecture; `model` scales it down (repro.model.scaled)
    model: {n_layer: 4, d_model: 128, n_head: 4, max_seq_len: 128, dropout: 0.0}
    data: {dataset: tinyshakespeare, tokenizer: bpe, vocab_size: 1024, block_size: 128}
    train: {steps: 600, batch_size: 16, lr: 3e-3, warmup_steps: 50}

`repro train CONFIG.yaml --set train.lr=1e-3` and the paper modules both call `train_run`. A run is
stored under a key hashed from (model config, train config, data config, engine code), so asking
for the same run again loads it instead of training — papers share pretrained bases this way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import repro
from repro.config import ConfigError, ModelConfig, from_dict, parse_override
from repro.model import build_model, get_preset, scaled
from repro.train import Trainer, TrainConfig, atomic_write_text, check_writable


@dataclass
class DataConfig:
    dataset: str = "tinyshakespeare"
    train_split: str = "train"
    val_split: str = "validation"
    text_field: str = "text"
    tokenizer: str = "bpe"  # bpe (GPT-2), wordpiece (BERT), unigram (T5)
    vocab_size: int = 1024
    block_size: int = 128
    val_batches: int = 8
    max_chars: int | None = None  # use only the first N characters of the training split
    max_val_chars: int | None = 2_000_000  # ... and of the validation split


@dataclass
class RunConfig:
    name: str = "run"
    preset: str = "gpt2_small"
    model: dict[str, Any] = field(default_factory=dict)
    task: str = "lm"
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    out_dir: str | None = None  # default: the artifact cache entry for this run

    def model_config(self, vocab_size: int) -> ModelConfig:
        try:
            get_preset(self.preset)
        except KeyError as e:
            raise ConfigError(e.args[0]) from None
        return scaled(self.preset, **{**self.model, "vocab_size": vocab_size})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_run_config(path: str | Path | None = None, overrides: list[str] = (), base: dict | None = None) -> RunConfig:
    import yaml

    data: dict = dict(base or {})
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data.update(yaml.safe_load(path.read_text()) or {})
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return run_config_from_dict(data)


def run_config_from_dict(data: dict) -> RunConfig:
    data = dict(data)
    if "data" in data:
        data["data"] = from_dict(DataConfig, data["data"] or {})
    if "train" in data:
        try:
            data["train"] = from_dict(TrainConfig, data["train"] or {})
        except ConfigError as e:
            raise ConfigError(str(e).replace("TrainConfig", "train")) from None
    return from_dict(RunConfig, data)


# ----------------------------------------------------------------------------------------------
# Artifact cache


def artifacts_dir() -> Path:
    return Path(os.environ.get("REPRO_ARTIFACTS", Path.home() / ".cache" / "repro" / "artifacts"))


def engine_version() -> str:
    """Hash of the engine code that decides what a trained model is: any change invalidates."""
    root = Path(repro.__file__).parent
    files = sorted([*root.glob("model/*.py"), root / "train.py", root / "tokenizers.py", *root.glob("data/objectives.py")])
    digest = hashlib.sha256(repro.__version__.encode())
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def identity_key(identity: dict) -> str:
    """A short hash of what defines a trained artifact, the engine code included."""
    identity = {**identity, "engine": engine_version()}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def artifact_dir(name: str, identity: dict) -> Path:
    """Where the artifact cache keeps a run defined by `identity` (papers whose recipes are not a
    `RunConfig` — translation, fine-tuning — cache through this too)."""
    return artifacts_dir() / f"{name}-{identity_key(identity)}"


def train_once(out_dir: Path, train) -> dict:
    """Run `train()` once per artifact directory: its record (a dict, or None) plus the wall time
    in "seconds" is kept in `done.json`, and any later call returns that record without training."""
    import time

    done = out_dir / "done.json"
    if not done.exists():
        t0 = time.perf_counter()
        record = train() or {}
        atomic_write_text(done, json.dumps({"seconds": time.perf_counter() - t0, **record}))
    return json.loads(done.read_text())


def run_key(run: RunConfig) -> str:
    identity = {k: v for k, v in run.to_dict().items() if k not in ("name", "out_dir")}
    identity["train"] = {k: v for k, v in identity["train"].items() if k not in ("progress", "device")}
    return identity_key(identity)


# ----------------------------------------------------------------------------------------------
# Independent runs in parallel processes


def default_workers(n_jobs: int) -> int:
    """REPRO_WORKERS if set; one process when CUDA is there (the runs share the GPU); else one
    process per core. Small models barely use a second thread — the Transformer's cpu scale
    trains at 0.160 s/step on 2 threads and 0.174 s on 1 — so on CPU two runs in two
    single-threaded processes finish about 1.7x sooner than one after the other."""
    if os.environ.get("REPRO_WORKERS"):
        workers = int(os.environ["REPRO_WORKERS"])
        if workers < 1:
            raise ConfigError(f"REPRO_WORKERS={workers}: it must be a positive number of processes")
    elif torch.cuda.is_available():
        workers = 1
    else:
        workers = os.cpu_count() or 1
    return max(1, min(workers, n_jobs))


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["TQDM_DISABLE"] = "1"  # interleaved progress bars help nobody; the parent shows one over jobs


def run_parallel(fn, jobs: list[tuple], workers: int | None = None, desc: str = "runs") -> list:
    """`[fn(*job) for job in jobs]`, in `workers` processes with an equal share of the cores each.

    `fn` must be importable (a module-level function) and its arguments and small result picklable:
    processes are spawned, never forked (forking after OpenMP has started can hang). Meant for
    training runs that cache their result on disk, so the parent loads what the workers trained
    and a crash loses only the runs in flight. One worker runs everything here, in this process.
    Numbers are deterministic for a given machine and worker count (the thread count can change
    float summation order)."""
    import concurrent.futures
    import multiprocessing

    from tqdm.auto import tqdm

    workers = workers or default_workers(len(jobs))
    if workers <= 1 or len(jobs) <= 1:
        return [fn(*job) for job in jobs]
    threads = max(1, (os.cpu_count() or 1) // workers)
    results: list = [None] * len(jobs)
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                initargs=(threads,)) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        try:
            with tqdm(total=len(jobs), desc=f"{desc} ({workers} processes)", unit="run") as bar:
                for future in concurrent.futures.as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
        except BaseException:  # a failed run or Ctrl-C: stop the rest instead of waiting for them
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return results


# ----------------------------------------------------------------------------------------------
# Data for the causal-LM objective (papers with other objectives pass their own batches)


def corpus_text(data: DataConfig, split: str, max_chars: int | None = None) -> str:
    from repro.data import load

    ds = load(data.dataset, split=split)
    if data.text_field not in ds.column_names:
        raise ConfigError(f"dataset {data.dataset} has no field {data.text_field!r}; it has {', '.join(ds.column_names)}")
    return "\n".join(ds[data.text_field])[:max_chars]


def random_windows(tokens: torch.Tensor, block_size: int, batch_size: int, seed: int):
    """GPT-style batches of random contiguous windows; a pure function of the step."""
    if len(tokens) <= block_size + 1:
        raise ConfigError(f"the corpus has {len(tokens)} tokens, fewer than block_size={block_size}; lower block_size")

    def batch(step: int) -> dict:
        g = torch.Generator().manual_seed(seed * 1_000_003 + step)
        starts = torch.randint(0, len(tokens) - block_size - 1, (batch_size,), generator=g)
        windows = torch.stack([tokens[s : s + block_size + 1] for s in starts.tolist()])
        return {"input_ids": windows[:, :-1], "labels": windows[:, 1:]}

    return batch


def unigram_entropy(tokens: torch.Tensor, vocab_size: int, reference: torch.Tensor) -> float:
    """Cross-entropy (nats/token) of `tokens` under the add-one unigram model of `reference`: the
    baseline any language model must beat."""
    counts = torch.bincount(reference, minlength=vocab_size).double() + 1
    logp = (counts / counts.sum()).log()
    return float(-logp[tokens].mean())


@dataclass
class RunResult:
    out_dir: Path
    model: torch.nn.Module
    tokenizer: Any
    history: list[dict]
    cached: bool
    summary: dict


def run_dir(run: RunConfig) -> Path:
    return Path(run.out_dir) if run.out_dir else artifacts_dir() / f"{run.name}-{run_key(run)}"


def train_runs(runs: list[RunConfig], desc: str = "training") -> list[RunResult]:
    """`[train_run(run) for run in runs]`, the runs not yet cached trained in parallel processes first."""
    todo = [run for run in runs if not (run_dir(run) / "done.json").exists()]
    run_parallel(_train_in_worker, [(run,) for run in todo], desc=desc)
    return [train_run(run) for run in runs]


def _train_in_worker(run: RunConfig) -> dict:
    return train_run(run).summary  # the model stays in the cache; the parent loads it from there


def train_run(run: RunConfig) -> RunResult:
    from repro.tokenizers import load_tokenizer, train_tokenizer

    key = run_key(run)
    out_dir = run_dir(run)
    done = out_dir / "done.json"
    data = run.data
    if done.exists():  # the artifact cache: the same run was trained before
        from repro.train import load_checkpoint

        model, _ = load_checkpoint(out_dir, run.task)
        summary = json.loads(done.read_text())
        history = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line]
        return RunResult(out_dir, model, load_tokenizer(out_dir / "tokenizer"), history, True, summary)

    check_writable(out_dir)  # fail before the expensive work, not after
    train_text = corpus_text(data, data.train_split, data.max_chars)
    tok = train_tokenizer(data.tokenizer, train_text.splitlines(), data.vocab_size)
    tok.save_pretrained(out_dir / "tokenizer")
    tok.model_max_length = 10**12  # whole corpora are encoded at once here, then windowed
    train_ids = torch.tensor(tok(train_text)["input_ids"], dtype=torch.long)
    val_ids = torch.tensor(tok(corpus_text(data, data.val_split, data.max_val_chars))["input_ids"], dtype=torch.long)
    config = run.model_config(len(tok))
    torch.manual_seed(run.train.seed)
    model = build_model(config, run.task)
    n_seq = max(1, run.train.batch_size // max(1, run.train.grad_accum)) * max(1, run.train.grad_accum)
    val_batches = [random_windows(val_ids, data.block_size, n_seq, seed=10_000 + run.train.seed)(i) for i in range(data.val_batches)]

    def evaluate(m) -> dict:
        losses = [float(m(b["input_ids"].to(next(m.parameters()).device), labels=b["labels"].to(next(m.parameters()).device)).loss) for b in val_batches]
        return {"loss": sum(losses) / len(losses)}

    atomic_write_text(out_dir / "config.json", json.dumps(run.to_dict(), indent=2, default=str))
    trainer = Trainer(model, run.train, random_windows(train_ids, data.block_size, run.train.batch_size, run.train.seed),
                      out_dir, run_config=json.loads(json.dumps(run.to_dict(), default=str)))
    history = trainer.fit(eval_fn=evaluate)
    final = history[-1]
    summary = {
        "key": key,
        "params": sum(p.numel() for p in model.parameters()),
        "train_tokens": run.train.steps * run.train.batch_size * data.block_size,
        "val_loss": final.get("eval_loss"),
        "val_ppl": math.exp(final["eval_loss"]) if final.get("eval_loss") is not None else None,
        "unigram_val_loss": unigram_entropy(val_ids, len(tok), train_ids),
    }
    atomic_write_text(done, json.dumps(summary, indent=2))
    return RunResult(out_dir, model.eval(), tok, history, False, summary)
