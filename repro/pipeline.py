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

import ast
import dataclasses
import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import math
import os
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

import repro
from repro.config import ConfigError, ModelConfig, from_dict, parse_override
from repro.model import build_model, get_preset, scaled
from repro.train import Trainer, TrainConfig, TrainingError, atomic_write_text, check_writable, pinned_threads


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
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text; save the config as UTF-8 YAML") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must be a YAML mapping (name:, preset:, model:, data:, train: ...), "
                              f"got a {type(loaded).__name__}")
        data.update(loaded)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return run_config_from_dict(data)


def run_config_from_dict(data: dict) -> RunConfig:
    data = dict(data)
    for section, cls in (("data", DataConfig), ("train", TrainConfig)):
        if section in data:
            try:
                data[section] = from_dict(cls, data[section] or {})
            except (ConfigError, TrainingError) as e:  # name the section as the user wrote it
                raise ConfigError(str(e.args[0]).replace(cls.__name__, section)) from None
    if "train" in data and data["train"].steps < 1:
        raise ConfigError(f"train.steps must be at least 1, got {data['train'].steps}")
    if "model" in data and not isinstance(data["model"], dict):
        raise ConfigError(f"model must be a mapping of ModelConfig fields (e.g. {{n_layer: 4}}), got {data['model']!r}")
    return from_dict(RunConfig, data)


# ----------------------------------------------------------------------------------------------
# Artifact cache


def artifacts_dir() -> Path:
    return Path(os.environ.get("REPRO_ARTIFACTS", Path.home() / ".cache" / "repro" / "artifacts"))


# What a cached artifact depends on: its configs (`identity`), the data it was built from (a
# fingerprint the caller computes) and the code that builds it. The code is found, not listed: the
# named modules and every module of this repository they import, transitively, so a change to a
# batcher in papers/, to repro/data/tasks.py or to this file's `random_windows` gives a new key.
# Each file counts by its code (`_code_text`), not its bytes: comments and docstrings are free to edit.

REPO_ROOT = Path(repro.__file__).resolve().parent.parent  # the checkout: the parent of the `repro` package
# what trains and batches every run; the objectives are named because no engine module imports
# them (the papers do), yet they build the MLM, span-corruption and seq2seq batches
ENGINE_MODULES = ("repro.pipeline", "repro.train", "repro.data.objectives")
# Modules a paper imports that only read finished measurements (its claims, its figures, the report):
# they never shape a trained model or a cached record, so neither they nor what they alone import
# are part of any key, and a change to a verdict rule keeps every cached model.
RESULTS_ONLY_MODULES = frozenset({"harness.claims", "harness.plots", "harness.report", "harness.stability",
                                  "harness.regress"})


@functools.lru_cache(maxsize=1)
def _installed_dirs() -> tuple[Path, ...]:
    return tuple({Path(p).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")
                  if (p := sysconfig.get_paths().get(key))})


def _in_repository(path: Path, root: Path) -> bool:
    """Whether `path` is project code under `root`: installed packages are not, even when a virtual
    environment lives inside the checkout (.venv, .tox)."""
    path = path.resolve()
    if not path.is_relative_to(root):
        return False
    inside = path.relative_to(root).parts
    return not {"site-packages", "dist-packages"} & set(inside) and not any(
        path.is_relative_to(d) and not root.is_relative_to(d) for d in _installed_dirs())


def _module_spec(name: str, root: Path):
    """The spec of module `name` if it is part of the repository under `root`, found without importing
    anything: the top-level name through the import system's finders (an editable install is one),
    each submodule in its parent's directories. None for modules outside `root` or not found."""
    parts = name.split(".")
    spec = importlib.util.find_spec(parts[0]) if parts[0] not in sys.modules else sys.modules[parts[0]].__spec__
    for depth in range(1, len(parts) + 1):
        if spec is None:
            return None
        where = spec.origin if spec.has_location else next(iter(spec.submodule_search_locations or ()), None)
        if where is None or not _in_repository(Path(where), root):
            return None  # a builtin, a third-party or stdlib package: its code is not ours to hash
        if depth == len(parts):
            return spec
        if spec.submodule_search_locations is None:
            return None  # `from module import attribute`: no submodule to find
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: depth + 1]), spec.submodule_search_locations)
    return spec


def _imported_names(source: str, module: str, is_package: bool) -> set[str]:
    """Every module `source` may import (function-level imports included), absolute names: each
    package on the way (importing a.b.c runs a/__init__ and a/b/__init__) and, for `from X import Y`,
    X.Y in case Y is a submodule (names that are not modules are dropped later, unresolved)."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from ..x import y` climbs level - 1 packages from this one
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1] if package else []
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
        else:
            continue
        for target in filter(None, targets):
            parts = target.split(".")
            names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return names


@functools.lru_cache(maxsize=None)
def _closure(name: str, root: Path) -> tuple[Path, ...]:
    files: dict[str, Path | None] = {}
    todo = [name]
    while todo:
        module = todo.pop()
        if module in files:
            continue
        spec = None if module in RESULTS_ONLY_MODULES else _module_spec(module, root)
        if spec is None or not spec.has_location or not str(spec.origin).endswith(".py"):
            files[module] = None  # not ours (or not Python source): remembered so it is asked once
            continue
        path = Path(spec.origin).resolve()
        files[module] = path
        is_package = spec.submodule_search_locations is not None
        todo += sorted(_imported_names(path.read_text(), module, is_package) - files.keys())
    return tuple(sorted({p for p in files.values() if p is not None}))


def _module_name(module: str | ModuleType) -> str:
    """The importable name of a module given by name or object. A module run as `python -m x`
    is `__main__` in its own namespace; its spec still knows it as x."""
    name = module if isinstance(module, str) else module.__name__
    if name == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is None:
            raise ConfigError("a script's code cannot be fingerprinted by module name; run it with `python -m`")
        name = spec.name
    return name


def _root(root: str | Path | None) -> Path:
    return Path(root).resolve() if root is not None else REPO_ROOT


def module_closure(module: str | ModuleType, root: str | Path | None = None) -> tuple[Path, ...]:
    """The source files of `module` and of every module under `root` (default: this repository)
    it imports, directly or through others: what its behaviour can depend on, within the project.
    Files are parsed, not imported. Cached per process."""
    return _closure(_module_name(module), _root(root))


def _code_text(source: str) -> str:
    """What a module's source does, for the cache key: its syntax tree without comments (the parser
    drops them), docstrings or line numbers, so editing prose or layout keeps every cached model
    while any change to code, a constant or a string that is not a docstring gives a new key. The
    tree's dump depends on the Python minor version, so caches are not shared across those."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


@functools.lru_cache(maxsize=None)
def _module_fingerprint(name: str, root: Path) -> str:
    digest = hashlib.sha256()
    for path in _closure(name, root):  # paths relative to the root: the key is the same in any checkout
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(_code_text(path.read_text()).encode()).digest())
    return digest.hexdigest()


def _code_modules(code: Sequence[str | ModuleType], root: Path) -> list[tuple[str, Path]]:
    """(module, root to look it up under) for the engine and the modules in `code`. The engine is
    looked up in this repository even when `root` is another (tests): it trains every stage."""
    named = {_module_name(m) for m in code} - set(ENGINE_MODULES)
    return [(m, REPO_ROOT) for m in ENGINE_MODULES] + [(m, root) for m in sorted(named)]


def code_files(code: Sequence[str | ModuleType] = (), root: str | Path | None = None) -> tuple[Path, ...]:
    """The source files `code_fingerprint(code, root)` hashes: the closures of the engine and of `code`."""
    return tuple(sorted({f for m, r in _code_modules(code, _root(root)) for f in _closure(m, r)}))


def code_fingerprint(code: Sequence[str | ModuleType] = (), root: str | Path | None = None) -> str:
    """A hash of the source of the engine modules that train and batch (`ENGINE_MODULES`), of the
    modules in `code` and of everything in the repository under `root` they import. Computed once
    per module and process: an edit made while the process runs is seen by the next process."""
    parts = sorted(_module_fingerprint(m, r) for m, r in _code_modules(code, _root(root)))
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:16]


def clear_code_cache() -> None:
    """Forget the per-process module fingerprints (for a process that edits code it then keys)."""
    _closure.cache_clear()
    _module_fingerprint.cache_clear()
    importlib.invalidate_caches()


def engine_version() -> str:
    """Fingerprint of the engine code that decides what a trained model is: any change invalidates."""
    return code_fingerprint()


def fingerprint(obj: Any) -> str:
    """A short, deterministic hash of data: tensors and arrays (dtype, shape and bytes), strings,
    bytes, numbers, None, and lists, tuples and dicts of these, nested. Lists and tuples hash alike
    (both are sequences of examples here); dict order does not matter."""
    digest = hashlib.sha256()
    _feed(digest, obj)
    return digest.hexdigest()[:16]


def _feed(digest, obj: Any) -> None:
    # every item is tagged with its kind and length, so [[1, 2], [3]] and [[1], [2, 3]] differ
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().contiguous()
        digest.update(f"T{obj.dtype}{tuple(obj.shape)}".encode())
        digest.update(obj.reshape(-1).view(torch.uint8).numpy().tobytes())  # a byte view: bf16 included
    elif isinstance(obj, np.ndarray):
        digest.update(f"A{obj.dtype.str}{obj.shape}".encode())
        digest.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, (str, bytes)):
        data = obj.encode() if isinstance(obj, str) else obj
        digest.update(f"{type(obj).__name__[0]}{len(data)}:".encode() + data)
    elif isinstance(obj, dict):
        digest.update(f"D{len(obj)}:".encode())
        for key in sorted(obj, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, obj[key])
    elif isinstance(obj, (list, tuple)):
        if obj and all(type(x) is int for x in obj) and _fits_int64(obj):  # token ids: hashed as one array, fast
            digest.update(f"I{len(obj)}:".encode() + np.asarray(obj, dtype=np.int64).tobytes())
        else:
            digest.update(f"L{len(obj)}:".encode())
            for item in obj:
                _feed(digest, item)
    elif isinstance(obj, np.generic):
        _feed(digest, obj.item())
    elif obj is None or isinstance(obj, (bool, int, float)):
        digest.update(f"N{obj!r};".encode())
    else:
        raise TypeError(f"fingerprint: cannot hash a value of type {type(obj).__name__}; pass tensors, arrays, "
                        "lists, dicts, strings or numbers (the data itself, not an object holding it)")


def _fits_int64(values) -> bool:
    return -(2**63) <= min(values) and max(values) < 2**63


def stage_key(identity: dict, *, code: Sequence[str | ModuleType] = (), data: str | None = None,
              root: str | Path | None = None) -> str:
    """A short hash of what defines a cached artifact: the configs in `identity` (JSON, sorted
    keys), the data fingerprint `data` and `code_fingerprint(code, root)`."""
    key = {"identity": identity, "data": data, "code": code_fingerprint(code, root)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def artifact_dir(name: str, identity: dict, *, code: Sequence[str | ModuleType], data: str | None = None) -> Path:
    """Where the artifact cache keeps the stage `name` defined by `identity` (its configs), `code`
    (the modules that build it, usually the caller's `[__name__]`; the engine is always included)
    and `data` (a fingerprint of the data it is built from, e.g. `fingerprint(token_ids)`). `code`
    has no default: a stage that names no code of its own should say so with `code=()`."""
    return artifacts_dir() / f"{name}-{stage_key(identity, code=code, data=data)}"


def train_once(out_dir: Path, build: Callable[[], dict | None]) -> dict:
    """Run `build()` once per artifact directory: its record (a dict, or None) plus the wall time
    in "seconds" (a "seconds" of the record's own wins) is kept in `done.json`, and any later call
    returns that record without building."""
    done = Path(out_dir) / "done.json"
    if not done.exists():
        done.parent.mkdir(parents=True, exist_ok=True)  # a stage may write nothing but its record
        t0 = time.perf_counter()
        record = build() or {}
        atomic_write_text(done, json.dumps({"seconds": time.perf_counter() - t0, **record}))
    return json.loads(done.read_text())


def cached_stage(name: str, identity: dict, build: Callable[[Path], dict | None], *,
                 code: Sequence[str | ModuleType], data: str | None = None) -> tuple[Path, dict]:
    """A cached stage in one call: `(out_dir, record)` with `out_dir = artifact_dir(name, identity,
    code=code, data=data)` and `record = train_once(out_dir, lambda: build(out_dir))`. `build`
    writes what it makes (checkpoints, weights) into the directory it is given and returns a
    JSON-able record; a second call with the same key returns the stored record without building.
    Use `artifact_dir` + `train_once` instead where other code needs the directory on its own."""
    out_dir = artifact_dir(name, identity, code=code, data=data)
    return out_dir, train_once(out_dir, lambda: build(out_dir))


def run_key(run: RunConfig) -> str:
    """The cache key of a `RunConfig` run: its configs and the engine's code (the closure of this
    module covers `random_windows`, the model and the tokenizers); its data is named by its config."""
    identity = {k: v for k, v in run.to_dict().items() if k not in ("name", "out_dir")}
    identity["train"] = {k: v for k, v in identity["train"].items() if k not in ("progress", "device")}
    return stage_key(identity)


@dataclass(frozen=True)
class Artifact:
    """A trained model in the artifact cache: the directory, the name it was cached under (the
    paper's stage and arm, e.g. `t0_t0_L1d32`, or `base-decoder-L2d64`), its seed and whether a
    tokenizer sits beside the checkpoint (without one it can only be loaded, not scored as text)."""
    dir: Path
    name: str
    seed: int | None
    has_tokenizer: bool
    finished: bool
    modified: float


def list_artifacts(root: Path | None = None) -> list[Artifact]:
    """Every directory of the artifact cache that holds a checkpoint, newest first."""
    import re

    root = Path(root) if root is not None else artifacts_dir()
    found = []
    for checkpoint in root.glob("*/checkpoint.pt"):
        d = checkpoint.parent
        stem = d.name.rsplit("-", 1)[0]  # the cache key follows the last dash
        seed = re.search(r"[_-]s(\d+)$", stem)
        found.append(Artifact(d, stem[: seed.start()] if seed else stem, int(seed[1]) if seed else None,
                              (d / "tokenizer").is_dir(), (d / "done.json").exists(), checkpoint.stat().st_mtime))
    return sorted(found, key=lambda a: -a.modified)


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
    # a pinned count holds in the workers too (bit-exact reruns); else each takes its share of the cores
    threads = pinned_threads() or max(1, (os.cpu_count() or 1) // workers)
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
    from repro.tokenizers import load_tokenizer, save_tokenizer, train_tokenizer

    key = run_key(run)
    out_dir = run_dir(run)
    done = out_dir / "done.json"
    data = run.data
    if done.exists():  # the artifact cache: the same run was trained before
        from repro.train import load_checkpoint

        summary = json.loads(done.read_text())
        if summary.get("key") != key:  # only an explicit out_dir can hold another config's run
            raise ConfigError(f"{out_dir} holds a finished run of another configuration (key {summary.get('key')}, "
                              f"this one {key}); choose another out_dir or delete {out_dir}")
        model, _ = load_checkpoint(out_dir, run.task)
        history = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line]
        return RunResult(out_dir, model, load_tokenizer(out_dir / "tokenizer"), history, True, summary)

    check_writable(out_dir)  # fail before the expensive work, not after
    run.model_config(data.vocab_size)  # a bad model config fails before anything is written
    train_text = corpus_text(data, data.train_split, data.max_chars)
    tok = train_tokenizer(data.tokenizer, train_text.splitlines(), data.vocab_size)
    save_tokenizer(tok, out_dir / "tokenizer")  # before training: a resumed run finds it
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
