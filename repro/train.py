"""The one training loop.

    trainer = Trainer(model, TrainConfig(...), batches, out_dir)   # batches: step -> global batch
    trainer.fit(eval_fn=...)                                         # resumes from out_dir if it can

Every objective plugs in the same way: a batch is a dict of tensors that the task model accepts
(`labels` included), drawn by `batches(step)` as a pure function of the step. Because the data
position is the step, a checkpoint (model, optimizer, schedule, step, every RNG state) is all
that exact resume needs: a run killed at any point and resumed ends bit-identical to one that
never stopped (tests/test_train.py kills a real subprocess to prove it).

Gradient accumulation and data parallelism normalise the loss by the number of target tokens
in the whole global batch, so 1 x 8, 8 x 1 and 2 processes x 4 give the same update.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from repro.config import ConfigError
from repro.model.heads import IGNORE_INDEX
from repro.precision import resolve_precision


class TrainingError(RuntimeError):
    """The run cannot go on; the message says why and what to do."""


@dataclass
class TrainConfig:
    steps: int = 1000
    batch_size: int = 32  # sequences per optimizer step, over all processes and micro-batches
    grad_accum: int = 1  # micro-batches per step
    optimizer: Literal["adamw", "adafactor"] = "adamw"
    lr: float = 6e-4  # peak learning rate
    betas: tuple[float, float] = (0.9, 0.95)  # GPT-3; Transformer 0.98, BERT 0.999
    eps: float = 1e-8
    weight_decay: float = 0.1  # on weight matrices only (see build_optimizer)
    schedule: Literal["constant", "linear", "cosine", "inverse_sqrt", "rsqrt_constant_warmup"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # cosine decays to 10% of peak (GPT-3)
    grad_clip: float = 1.0  # 0 disables
    label_smoothing: float = 0.0
    # GPT-1 §3.2: L3 = L2 + lambda * L1, an auxiliary LM loss while fine-tuning (lambda = 0.5). Used
    # only when a batch carries `aux_labels` (per-token targets for the model's `aux_logits`).
    aux_weight: float = 0.5
    eval_every: int = 0  # 0: only at the end
    checkpoint_every: int = 0  # 0: only at the end
    # Weights-only copies at these intervals, kept: checkpoint averaging (Vaswani et al. §6.1
    # average the last 5 or 20) and metrics along training (GPT-1 Fig. 2b). 0: none.
    snapshot_every: int = 0
    log_every: int = 10
    seed: int = 0
    # "auto" becomes "bf16" where the device multiplies bf16 natively (CUDA; CPUs with AVX512-BF16 or
    # AMX) and "fp32" elsewhere, once, when the config is built: the resolved value is what the
    # artifact cache keys and the results files record. bf16 is autocast only: master weights,
    # optimizer state and loss accumulation stay fp32. REPRO_PRECISION=fp32 turns "auto" into fp32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False
    device: str = "auto"
    distributed: Literal["ddp", "fsdp"] = "ddp"  # under torchrun; FSDP shards models that don't fit one GPU
    progress: bool = True

    def __post_init__(self) -> None:
        # steps=0 is a model saved untrained (a checkpoint of an initialisation); a run config asks for
        # at least one (repro.pipeline.run_config_from_dict)
        if self.steps < 0:
            raise ConfigError(f"TrainConfig.steps must be at least 0, got {self.steps}")
        for name in ("batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"TrainConfig.lr must be positive, got {self.lr}")
        self.betas = tuple(self.betas)
        self.precision = resolve_precision(self.precision, self.device)
        if self.batch_size % self.grad_accum:
            raise TrainingError(
                f"batch_size={self.batch_size} is not divisible by grad_accum={self.grad_accum}; "
                "choose a grad_accum that divides the batch"
            )


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules, as multipliers of the peak learning rate


def lr_multiplier(step: int, cfg: TrainConfig) -> float:
    s, w = step + 1, max(cfg.warmup_steps, 1)
    if cfg.schedule == "inverse_sqrt":
        # Vaswani et al. §5.3: d^-0.5 min(s^-0.5, s w^-1.5); normalised so the peak (s = w) is 1.
        return min(s**-0.5, s * w**-1.5) * w**0.5
    if cfg.schedule == "rsqrt_constant_warmup":
        # T5 §3.1.2: 1/sqrt(max(s, 10^4)): constant for w steps, then inverse square root.
        return math.sqrt(w / max(s, w))
    warm = min(1.0, s / w) if cfg.warmup_steps else 1.0
    if cfg.schedule == "constant":
        return warm
    progress = min(1.0, max(0.0, (s - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)))
    if cfg.schedule == "linear":  # BERT / GPT-1 fine-tuning: warm-up, then linear decay to 0
        return warm * (1.0 - progress)
    if cfg.schedule == "cosine":  # GPT-3: warm-up, then cosine to min_lr_ratio of the peak
        return warm * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    raise TrainingError(f"unknown schedule {cfg.schedule!r}; choose constant, linear, cosine, inverse_sqrt")


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # Weight decay on weight matrices only (GPT-1's "modified L2", BERT, GPT-3): biases and norm
    # gains are 1-D and stay undecayed.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    if cfg.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        # T5 used Adafactor with an external schedule: no relative step, no parameter scaling.
        return Adafactor(groups, lr=cfg.lr, relative_step=False, scale_parameter=False, warmup_init=False)
    raise TrainingError(f"unknown optimizer {cfg.optimizer!r}; choose adamw or adafactor")


# ----------------------------------------------------------------------------------------------
# Losses as (sum, count) terms, so accumulation and data parallelism normalise by the global count


def loss_terms(model: nn.Module, batch: dict, label_smoothing: float = 0.0,
               aux_weight: float = 0.5, fused: bool | None = None) -> dict[str, torch.Tensor]:
    """Summed losses of one micro-batch, by term: 'tokens' (LM / MLM / seq2seq targets),
    'sequences' (classification, NSP), 'regression', and 'aux_tokens' (an auxiliary per-token
    objective, weighted by `aux_weight`, when the batch carries `aux_labels`).

    A model with `fused_token_loss` (our LM and MLM models) takes the per-token labels itself and
    returns the summed loss without building the vocabulary logits (`repro.model.loss`); `fused`
    says so for a wrapped model (DDP, FSDP, torch.compile), whose attribute is not visible."""
    fused = getattr(model, "fused_token_loss", False) if fused is None else fused
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label", "aux_labels")}
    labels = batch.get("labels")
    per_token = labels is not None and labels.dim() >= 2
    if per_token and fused:
        out = model(**inputs, labels=labels, label_smoothing=label_smoothing, loss_reduction="sum")
    else:
        out = model(**inputs)
    terms: dict[str, torch.Tensor] = {}
    if per_token and fused:
        terms["tokens"] = out.loss
    elif per_token:
        logits = out.logits.float()
        if "predict_positions" in batch:  # the model scored only these positions (MLM)
            labels = labels[batch["predict_positions"]]
        terms["tokens"] = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX,
            label_smoothing=label_smoothing, reduction="sum",
        )
    elif labels is not None:  # one label per sequence
        if out.logits.shape[-1] == 1:
            terms["regression"] = F.mse_loss(out.logits.squeeze(-1).float(), labels.float(), reduction="sum")
        else:
            terms["sequences"] = F.cross_entropy(out.logits.float(), labels, reduction="sum")
    if "next_sentence_label" in batch:
        terms["sequences"] = F.cross_entropy(out.seq_logits.float(), batch["next_sentence_label"], reduction="sum")
    if "aux_labels" in batch:  # e.g. GPT-1's auxiliary LM loss beside the classifier's
        if out.aux_logits is None:
            raise TrainingError(f"the batch has aux_labels but {type(model).__name__} returned no aux_logits; "
                                "drop aux_labels or use a model with an auxiliary per-token head")
        aux = out.aux_logits.float()
        terms["aux_tokens"] = aux_weight * F.cross_entropy(
            aux.reshape(-1, aux.shape[-1]), batch["aux_labels"].reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum",
        )
    return terms


def term_counts(batch: dict) -> dict[str, int]:
    counts = {}
    labels = batch.get("labels")
    if labels is not None and labels.dim() >= 2:
        counts["tokens"] = int((labels != IGNORE_INDEX).sum())
    elif labels is not None:
        counts["regression" if labels.is_floating_point() else "sequences"] = len(labels)
    if "next_sentence_label" in batch:
        counts["sequences"] = len(batch["next_sentence_label"])
    if "aux_labels" in batch:  # at least 1: a batch without auxiliary targets adds 0, not 0/0
        counts["aux_tokens"] = max(1, int((batch["aux_labels"] != IGNORE_INDEX).sum()))
    return counts


# ----------------------------------------------------------------------------------------------
# Checkpoints: atomic, complete


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def atomic_save(obj, path: Path) -> None:
    """torch.save into a temp file beside `path`, then rename: a crash never leaves half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise TrainingError(f"could not write {path}: {e.strerror or e}; free disk space or choose another out_dir") from None


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise TrainingError(f"could not write {path}: {e.strerror or e}; free disk space or choose another out_dir") from None


def check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise TrainingError(f"output directory {out_dir} is not writable ({e.strerror or e}); choose another out_dir") from None


# ----------------------------------------------------------------------------------------------
# Distributed helpers (torchrun sets the environment; one process otherwise)


def world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: torch.device) -> None:
    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", 0))
            return torch.device("cuda", local)
        return torch.device("cpu")
    return torch.device(name)


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the matmuls plus attention's 12 L T d (PaLM, App. B)."""
    c = model.config
    n = sum(p.numel() for p in model.parameters())
    layers = c.n_layer + (c.decoder_layers if c.kind == "encoder-decoder" else 0)
    return 6 * n + 12 * layers * seq_len * c.n_head * c.head_dim


PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def pinned_threads() -> int | None:
    """The thread count REPRO_THREADS pins (for bit-exact reruns), or None when it is unset."""
    if not os.environ.get("REPRO_THREADS"):
        return None
    n = int(os.environ["REPRO_THREADS"])
    if n < 1:
        raise ConfigError(f"REPRO_THREADS={n}: it must be a positive number of threads")
    return n


def cpu_threads() -> int:
    """How many threads CPU training uses, set on torch and returned (the progress bar shows it).

    A count someone already chose stays: a worker of `run_parallel` holds its share of the cores,
    a caller may set its own. Else REPRO_THREADS pins it. Otherwise the cores not busy with other
    runnable processes right now: two OpenMP threads contending with another job for two cores ran
    ~10x slower than one thread here, since each waits on the other at every barrier. The thread
    count can change float summation order, so a bit-exact rerun pins REPRO_THREADS."""
    cores = os.cpu_count() or 1
    if torch.get_num_threads() != cores:
        return torch.get_num_threads()
    if (n := pinned_threads()) is not None:
        torch.set_num_threads(n)
        return n
    others = 0
    try:  # the 4th field of /proc/loadavg is runnable/total tasks; one runnable task is this one
        samples = []
        for _ in range(5):
            samples.append(int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1)
            time.sleep(0.01)
        others = sorted(samples)[len(samples) // 2]
    except (OSError, ValueError, IndexError):  # not Linux: use every core
        pass
    n = max(1, min(cores, cores - others))
    torch.set_num_threads(n)
    return n


# ----------------------------------------------------------------------------------------------
# The loop


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        batches: Callable[[int], dict],
        out_dir: str | Path,
        run_config: dict | None = None,
        tokenizer=None,
    ):
        """`tokenizer`, the one the model reads, is saved as `tokenizer/` beside the checkpoint:
        every trained artifact can then be scored, generated from and exported on its own."""
        self.cfg, self.batches, self.out_dir = cfg, batches, Path(out_dir)
        self.device = resolve_device(cfg.device)
        init_distributed(self.device)
        self.rank, self.world_size = world()
        if self.rank == 0:
            check_writable(self.out_dir)
            _save_tokenizer_beside(self.out_dir, tokenizer)  # once, not at every checkpoint
        torch.manual_seed(cfg.seed)
        self.model = model.to(self.device)
        self.train_model = self.model
        if self.world_size > 1:
            if cfg.distributed == "fsdp":
                if self.device.type == "cpu":
                    raise TrainingError("FSDP needs a GPU (torch refuses it on CPU); use train.distributed=ddp here")
                from torch.distributed.fsdp import FullyShardedDataParallel

                # use_orig_params keeps self.model's parameters usable by the optimizer and clipping.
                self.train_model = FullyShardedDataParallel(self.model, use_orig_params=True)
            else:
                self.train_model = nn.parallel.DistributedDataParallel(self.model)
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)
        self.optimizer = build_optimizer(self.model, cfg)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_multiplier(s, cfg))
        self.autocast = resolve_precision(cfg.precision, self.device) == "bf16"
        self.step = 0
        self.run_config = run_config or {}
        self.history: list[dict] = []

    # -- checkpointing --------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def _full_model_state(self) -> dict:
        if self.cfg.distributed == "fsdp" and self.world_size > 1:  # gather the shards on every rank
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            return get_model_state_dict(self.train_model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return self.model.state_dict()

    def save_checkpoint(self) -> None:
        model_state = self._full_model_state()
        if self.rank != 0:
            return
        atomic_save(
            {
                "step": self.step,
                "model": model_state,
                "model_config": asdict(self.model.config),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng_state(),
                "train_config": asdict(self.cfg),
                "run_config": self.run_config,
            },
            self.checkpoint_path,
        )

    @property
    def snapshot_dir(self) -> Path:
        return self.out_dir / "snapshots"

    def save_snapshot(self) -> None:
        model_state = self._full_model_state()
        if self.rank == 0:
            self.snapshot_dir.mkdir(parents=True, exist_ok=True)
            atomic_save(model_state, self.snapshot_dir / f"step{self.step:08d}.pt")

    def maybe_resume(self) -> bool:
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        if state.get("run_config", {}) != self.run_config:
            raise TrainingError(
                f"{self.checkpoint_path} belongs to a run with a different configuration; "
                "use a new out_dir, or delete it to start over"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        self.step = state["step"]
        # Metrics logged after the checkpoint by the interrupted run are replayed: drop them.
        if self.rank == 0 and self.metrics_path.exists():
            kept = [line for line in self.metrics_path.read_text().splitlines() if line and json.loads(line)["step"] <= self.step]
            atomic_write_text(self.metrics_path, "".join(line + "\n" for line in kept))
        return True

    def log(self, record: dict) -> None:
        self.history.append(record)
        if self.rank == 0:
            with open(self.metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    # -- one optimizer step ---------------------------------------------------------------------
    def _shard(self, batch: dict) -> dict:
        """This process's rows of the global batch."""
        if self.world_size == 1:
            return batch
        return {k: v[self.rank :: self.world_size] for k, v in batch.items()}

    def train_step(self, batch: dict) -> float:
        cfg = self.cfg
        counts = term_counts(batch)  # global counts: every term is a mean over the global batch
        local = self._shard(batch)
        n = len(next(iter(local.values())))
        micro = max(1, n // cfg.grad_accum)
        total = 0.0
        self.train_model.train()
        for start in range(0, n, micro):
            mb = {k: v[start : start + micro].to(self.device) for k, v in local.items()}
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                terms = loss_terms(self.train_model, mb, cfg.label_smoothing, cfg.aux_weight,
                                   fused=getattr(self.model, "fused_token_loss", False))
            # DDP averages gradients over processes: multiply back so the result is sum / count.
            loss = sum(terms[k] / counts[k] for k in terms) * self.world_size
            loss.backward()
            total += float(loss.detach()) / self.world_size
        if self.world_size > 1:
            t = torch.tensor([total], device=self.device)
            dist.all_reduce(t)
            total = float(t)
        if not math.isfinite(total):
            raise TrainingError(
                f"loss became {total} at step {self.step + 1}; the last good checkpoint is kept at "
                f"{self.checkpoint_path if self.checkpoint_path.exists() else '(none yet)'}; "
                "lower the learning rate or enable gradient clipping"
            )
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return total

    # -- the loop -------------------------------------------------------------------------------
    def fit(self, eval_fn: Callable[[nn.Module], dict] | None = None) -> list[dict]:
        cfg = self.cfg
        resumed = self.maybe_resume()
        if self.step >= cfg.steps:
            return self._read_history()
        bar = None
        if cfg.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, desc="resume" if resumed else "train", unit="step", dynamic_ncols=True, mininterval=1.0)
        threads = cpu_threads() if self.device.type == "cpu" else None
        peak = peak_flops(self.device)
        tokens_seen, t0 = 0, time.perf_counter()
        while self.step < cfg.steps:
            batch = self.batches(self.step)
            loss = self.train_step(batch)
            self.step += 1
            tokens = int(batch["input_ids"].numel()) + int(batch.get("decoder_input_ids", torch.empty(0)).numel())
            tokens_seen += tokens
            record = {"step": self.step, "loss": loss, "lr": self.scheduler.get_last_lr()[0]}
            last = self.step == cfg.steps
            if eval_fn is not None and ((cfg.eval_every and self.step % cfg.eval_every == 0) or last):
                self.model.eval()
                with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                    record.update({f"eval_{k}": v for k, v in eval_fn(self.model).items()})
            if self.step % cfg.log_every == 0 or last or len(record) > 3:
                self.log(record)
            if bar is not None:
                elapsed = time.perf_counter() - t0
                post = {"loss": f"{loss:.3f}", "tok/s": f"{tokens_seen / elapsed:,.0f}"}
                if threads:
                    post["threads"] = threads
                if peak:
                    seq = batch["input_ids"].shape[-1]
                    post["mfu"] = f"{flops_per_token(self.model, seq) * tokens_seen / elapsed / (peak * self.world_size):.1%}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
            if cfg.snapshot_every and self.step % cfg.snapshot_every == 0:
                self.save_snapshot()
            if (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or last:
                self.save_checkpoint()
        if bar is not None:
            bar.close()
        return self._read_history()

    def _read_history(self) -> list[dict]:
        if self.metrics_path.exists():
            return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line]
        return self.history


def snapshots(out_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of a run's weight snapshots, oldest first."""
    return sorted((int(p.stem.removeprefix("step")), p) for p in (Path(out_dir) / "snapshots").glob("step*.pt"))


def average_snapshots(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of several snapshots' weights (Vaswani et al. §6.1 checkpoint averaging)."""
    if not paths:
        raise ValueError("no snapshots to average; train with train.snapshot_every > 0")
    total, dtypes = None, {}
    for path in paths:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if total is None:
            dtypes = {k: v.dtype for k, v in state.items()}
            total = {k: v.double() if v.is_floating_point() else v.clone() for k, v in state.items()}
        else:
            for k, v in state.items():
                if v.is_floating_point():
                    total[k] += v.double()
    return {k: (v / len(paths)).to(dtypes[k]) if v.is_floating_point() else v for k, v in total.items()}


def _save_tokenizer_beside(out_dir: Path, tokenizer) -> None:
    if tokenizer is not None and not (out_dir / "tokenizer" / "tokenizer.json").is_file():
        from repro.tokenizers import save_tokenizer

        save_tokenizer(tokenizer, out_dir / "tokenizer")


def save_model(model: nn.Module, out_dir: str | Path, tokenizer=None, run_config: dict | None = None) -> Path:
    """A model trained outside the Trainer (e.g. by PPO) as an artifact the harness, `repro eval`
    and `repro export` load on their own: `checkpoint.pt` with the weights and the model config (no
    training state) and, given the tokenizer, `tokenizer/` beside it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _save_tokenizer_beside(out_dir, tokenizer)
    atomic_save({"step": None, "model": model.state_dict(), "model_config": asdict(model.config),
                 "run_config": run_config or {}}, out_dir / "checkpoint.pt")
    return out_dir


def load_checkpoint(path: str | Path, task: str | None = None, device: str = "cpu"):
    """The trained model from a checkpoint (training state dropped) and the run's configuration."""
    from repro.config import InputError, ModelConfig, from_dict
    from repro.model import build_model

    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train first (repro train CONFIG.yaml) or pass the run directory")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        raise InputError(f"checkpoint {path} is truncated or damaged ({str(e).splitlines()[0]}); delete its run "
                         "directory and train again") from None
    if not isinstance(state, dict) or "model_config" not in state or "model" not in state:
        raise InputError(f"{path} is not a repro checkpoint (no model_config / model); pass a run directory that "
                         "repro train wrote")
    config = from_dict(ModelConfig, state["model_config"])
    model = build_model(config, task or state.get("run_config", {}).get("task"))
    model.load_state_dict(state["model"])
    return model.eval(), state.get("run_config", {})


if __name__ == "__main__":  # `torchrun --nproc_per_node=2 -m repro.train CONFIG.yaml [key=value ...]`
    import sys

    from repro.pipeline import load_run_config, train_run

    # The engine never imports the CLI (it sits above): this entry point reads the same run config.
    train_run(load_run_config(sys.argv[1], [a for a in sys.argv[2:] if a != "--set"]))
