"""Time-to-target race: training seconds until a fixed held-out loss, ours vs transformers.Trainer.

    python benchmarks/race.py           # the race: writes results/perf/race.{json,md,png}
    RACE_QUICK=1 python benchmarks/race.py   # one seed, a few steps: exercises the code path only
    python benchmarks/race.py --sweep   # the 3-value learning-rate sweep that picked RaceConfig.lr

Paired-step tokens/s (benchmarks/test_throughput.py) says how fast one step is; this says how soon
a user gets a model of a given quality, which also counts what a trainer does around the step
(data loading, scheduling, logging) and what its precision does to the loss per step.

Four arms train the same 2.6M-parameter pre-LN GPT-2 from the same initial weights
(`convert.from_gpt2` of one `GPT2LMHeadModel`) on the same batches in the same order, with the
same recipe (AdamW (0.9, 0.95), eps 1e-8, weight decay 0.1 on matrices, clip 1.0, linear warm-up
then cosine to 10% of the peak):

    ours_default  repro.train.Trainer, precision "auto" (bf16 autocast on CPUs with AVX512-BF16/AMX)
    ours_fp32     repro.train.Trainer, precision "fp32" (reference)
    hf_fp32       transformers.Trainer, use_cpu=True, fp32 (its documented CPU settings)
    hf_bf16       transformers.Trainer, use_cpu=True, bf16=True

Every `eval_every` steps each arm scores the same fixed held-out windows of the book corpus,
with the clock paused, under that arm's precision. Seconds-to-target is linearly interpolated
between the two evaluations that bracket the target. Each seed runs the four arms back to back,
in forward order on even seeds and reversed on odd ones, so machine drift (a shared 2-core box)
spreads over the arms instead of landing on one.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[_var] = "1"

import transformers as hf  # noqa: E402

from repro.model import convert  # noqa: E402
from repro.pipeline import random_windows  # noqa: E402
from repro.precision import resolve_precision  # noqa: E402
from repro.train import Trainer, TrainConfig  # noqa: E402

ARMS = ("ours_default", "ours_fp32", "hf_fp32", "hf_bf16")
BASELINE = "ours_default"
GOALS = {"hf_fp32": 2.0, "hf_bf16": 1.2}  # the goals for reference seconds / ours seconds


@dataclass(frozen=True)
class RaceConfig:
    n_layer: int = 4
    d_model: int = 192
    n_head: int = 4
    vocab_size: int = 4096
    block_size: int = 256
    batch_size: int = 16
    steps: int = 300  # the schedule's length; an arm stops early once it reaches the target
    warmup_steps: int = 30
    # Peak lr: the best of three on ours_default, seed 0, the full 300 steps (`--sweep`, results/perf/
    # race_sweep.json): held-out loss 5.25 at 1.5e-3, 5.19 at 3e-3, 5.50 at 6e-3.
    lr: float = 3e-3
    eval_every: int = 10
    eval_windows: int = 64
    # Held-out loss (nats/token). The sweep's 3e-3 curve passes 5.30 at step ~210 of 300: late enough
    # that the race is mostly training, with 0.1 nats of margin above where every seed ends.
    target: float | None = 5.30
    seeds: tuple[int, ...] = (0, 1, 2)
    # A seed whose arm ran while other jobs loaded the machine (see `contended`) is run again, up
    # to this many attempts in all; the rejected attempts stay in race.json.
    attempts: int = 3
    max_chars: int = 6_000_000  # the first 6M characters of the books' train split (as papers/gpt2.py's cpu scale)
    max_val_chars: int = 1_000_000


# Quick mode: the code path end to end in well under a minute; its numbers mean nothing.
QUICK = dict(steps=6, warmup_steps=2, eval_every=2, eval_windows=16, seeds=(0,), attempts=1, max_chars=300_000,
             max_val_chars=100_000, target=8.0)
# Our process keeps ~`threads` cores busy; a mean 1-minute load average above threads + this
# during an arm means another job shared the cores. On this 2-core machine such a job slowed an
# arm 3-6x (first runs of this race), which no pairing of arms can cancel.
LOAD_MARGIN = 0.5


def quick_mode() -> bool:
    return os.environ.get("RACE_QUICK", "") not in ("", "0")


def config_from_env() -> RaceConfig:
    return replace(RaceConfig(), **QUICK) if quick_mode() else RaceConfig()


def output_dir() -> Path:
    """RACE_OUT, else results/perf; quick mode never overwrites the real results there."""
    if os.environ.get("RACE_OUT"):
        return Path(os.environ["RACE_OUT"])
    return cache_dir() / "quick" if quick_mode() else Path("results/perf")


# ----------------------------------------------------------------------------------------------
# Data: the books corpus, a BPE tokenizer trained on its training text, fixed held-out windows


def cache_dir() -> Path:
    return Path(os.environ.get("RACE_CACHE", Path(tempfile.gettempdir()) / "repro-race"))


def book_text(split: str, max_chars: int) -> str:
    from repro.data import load

    return "\n".join(load("books", split=split)["text"])[:max_chars]


def tokenized_books(cfg: RaceConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and held-out token ids. The tokenizer is cached by train_tokenizer (keyed by the
    corpus hash), so only the first run pays for training it."""
    from repro.tokenizers import train_tokenizer

    train_text = book_text("train", cfg.max_chars)
    tok = train_tokenizer("bpe", train_text.splitlines(), cfg.vocab_size, cache_dir=cache_dir() / "tokenizers")
    if len(tok) > cfg.vocab_size:
        raise ValueError(f"the tokenizer has {len(tok)} tokens, more than the model's vocab_size={cfg.vocab_size}")
    tok.model_max_length = 10**12  # whole corpora are encoded at once, then windowed
    val_text = book_text("validation", cfg.max_val_chars)
    return (torch.tensor(tok(train_text)["input_ids"], dtype=torch.long),
            torch.tensor(tok(val_text)["input_ids"], dtype=torch.long))


def heldout_batches(val_ids: torch.Tensor, cfg: RaceConfig) -> list[dict]:
    """The same windows for every arm and seed (seed 10_000, as repro.pipeline's validation)."""
    draw = random_windows(val_ids, cfg.block_size, cfg.batch_size, seed=10_000)
    return [draw(i) for i in range(max(1, cfg.eval_windows // cfg.batch_size))]


def train_windows(train_ids: torch.Tensor, cfg: RaceConfig, seed: int) -> torch.Tensor:
    """Every training window of a run, (steps * batch, block + 1), in the order ours draws them:
    row i of step s is row s * batch + i."""
    draw = random_windows(train_ids, cfg.block_size, cfg.batch_size, seed)
    rows = []
    for step in range(cfg.steps):
        b = draw(step)
        rows.append(torch.cat([b["input_ids"], b["labels"][:, -1:]], dim=1))
    return torch.cat(rows)


# ----------------------------------------------------------------------------------------------
# The two models, from one initialisation


def hf_config(cfg: RaceConfig) -> hf.GPT2Config:
    return hf.GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.d_model,
                         n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def twin_models(cfg: RaceConfig, seed: int) -> tuple[hf.GPT2LMHeadModel, torch.nn.Module]:
    """transformers' GPT-2 and ours with identical weights: the seed fixes the initialisation."""
    torch.manual_seed(seed)
    ref = hf.GPT2LMHeadModel(hf_config(cfg))
    return ref, convert.from_gpt2(ref)


def hf_inputs(windows: torch.Tensor) -> dict:
    """transformers' GPT-2 shifts `labels` inside (position t is scored against labels[t + 1]),
    which from 256 labels leaves 255 targets. `shift_labels`, the already-shifted targets that
    its loss and its Trainer accept, gives it exactly ours' 256: window[t + 1] for every t.
    `labels` must still be there: the model computes a loss only when it is."""
    inputs = windows[..., :-1].contiguous()
    return {"input_ids": inputs, "labels": inputs, "shift_labels": windows[..., 1:].contiguous()}


class WindowDataset(torch.utils.data.Dataset):
    """Training examples for transformers' Trainer; read in order (train_sampling_strategy=
    "sequential") they form ours' batches, step by step."""

    def __init__(self, windows: torch.Tensor):
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        return hf_inputs(self.windows[i])


def model_loss(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Mean token loss of one {input_ids, labels} batch (ours' format) on either model."""
    if isinstance(model, hf.PreTrainedModel):
        windows = torch.cat([batch["input_ids"], batch["labels"][:, -1:]], dim=1)
        return model(**hf_inputs(windows)).loss
    return model(batch["input_ids"], labels=batch["labels"]).loss


def heldout_loss(model: torch.nn.Module, batches: list[dict], bf16: bool) -> float:
    was_training = model.training
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = sum(float(model_loss(model, b)) for b in batches) / len(batches)
    model.train(was_training)
    return loss


# ----------------------------------------------------------------------------------------------
# Timing


class Stopwatch:
    """Seconds of training: runs from start(), stands still between pause() and resume().

    Beside wall-clock seconds (the race's measure) it keeps this process's CPU seconds: on a
    shared machine other jobs stretch the wall clock but much less the CPU time, so the two
    together tell a slow machine from a slow trainer."""

    def __init__(self):
        self.total, self.since = 0.0, None
        self.cpu_total, self.cpu_since = 0.0, None

    def start(self) -> None:
        self.since, self.cpu_since = time.perf_counter(), time.process_time()

    resume = start

    def pause(self) -> float:
        self.total += time.perf_counter() - self.since
        self.cpu_total += time.process_time() - self.cpu_since
        self.since = self.cpu_since = None
        return self.total

    @property
    def seconds(self) -> float:
        return self.total + (time.perf_counter() - self.since if self.since is not None else 0.0)


def seconds_to_target(curve: list[tuple], target: float, column: int = 0) -> float | None:
    """When a curve of (seconds, step, loss, cpu seconds) points first reaches `target`, by
    linear interpolation between the two evaluations that bracket it (`column=1` gives the
    step, `column=3` the CPU seconds). None if it never does; 0 if it starts there."""
    for i, point in enumerate(curve):
        if point[2] <= target:
            if i == 0:
                return float(point[column])
            before = curve[i - 1]
            share = (before[2] - target) / (before[2] - point[2])
            return float(before[column] + share * (point[column] - before[column]))
    return None


# ----------------------------------------------------------------------------------------------
# The arms


def train_config(cfg: RaceConfig, seed: int, precision: str) -> TrainConfig:
    return TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8,
                       weight_decay=0.1, schedule="cosine", warmup_steps=cfg.warmup_steps, min_lr_ratio=0.1,
                       grad_clip=1.0, eval_every=cfg.eval_every, seed=seed, precision=precision, device="cpu",
                       progress=False)


def hf_arguments(cfg: RaceConfig, seed: int, bf16: bool, out_dir: str) -> hf.TrainingArguments:
    """transformers' documented CPU settings (use_cpu, fp32 unless bf16) and its defaults, but for
    the shared recipe and the commented settings that keep the race like for like."""
    return hf.TrainingArguments(
        output_dir=out_dir, use_cpu=True, bf16=bf16, seed=seed,
        max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.lr, adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8, weight_decay=0.1,
        max_grad_norm=1.0, warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="cosine_with_min_lr", lr_scheduler_kwargs={"min_lr_rate": 0.1},
        train_sampling_strategy="sequential",  # ours' batch order, not a reshuffle
        remove_unused_columns=False,  # keep `shift_labels`, which is no named argument of forward
        save_strategy="no",  # ours checkpoints only at the end; a mid-race save would be charged to the race
        report_to="none", disable_tqdm=True,  # as ours: no progress bar, no tracker
    )


class TargetReached(Exception):
    """Raised from ours' eval_fn to end `fit` at the target (its loop has no stop flag)."""


def race_ours(cfg: RaceConfig, seed: int, precision: str, data: dict) -> dict:
    _, model = twin_models(cfg, seed)
    tc = train_config(cfg, seed, precision)
    bf16 = tc.precision == "bf16"
    curve = [(0.0, 0, heldout_loss(model, data["heldout"], bf16), 0.0)]
    watch, first_step = Stopwatch(), {}
    draw = random_windows(data["train_ids"], cfg.block_size, cfg.batch_size, seed)

    def batches(step: int) -> dict:
        first_step.setdefault("seconds", watch.seconds)  # setup time, for the record
        return draw(step)

    with tempfile.TemporaryDirectory(prefix="race-ours-") as out:
        watch.start()
        trainer = Trainer(model, tc, batches, out)

        def evaluate(m) -> dict:
            seconds = watch.pause()
            loss = heldout_loss(m, data["heldout"], bf16)
            curve.append((seconds, trainer.step, loss, watch.cpu_total))
            watch.resume()
            if cfg.target is not None and loss <= cfg.target:
                raise TargetReached
            return {"loss": loss}

        try:
            trainer.fit(eval_fn=evaluate)
        except TargetReached:
            pass
    return {"precision": tc.precision, "curve": curve, "setup_seconds": first_step.get("seconds")}


class RaceCallback(hf.TrainerCallback):
    """Evaluates every `eval_every` steps with the clock paused, stops at the target, and aligns
    transformers' schedule with ours (see on_train_begin)."""

    def __init__(self, cfg: RaceConfig, data: dict, bf16: bool, watch: Stopwatch, curve: list):
        self.cfg, self.data, self.bf16, self.watch, self.curve = cfg, data, bf16, watch, curve
        self.first_step = None
        self.lrs: list[float] = []

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        # transformers' warm-up gives step k the multiplier k / w, so its first step has lr 0;
        # repro.train.lr_multiplier gives it (k + 1) / w (and likewise one step further along
        # the cosine). The formulas are otherwise the same: one step forward aligns them.
        with warnings.catch_warnings():  # "scheduler stepped before the optimizer": meant here
            warnings.simplefilter("ignore", UserWarning)
            lr_scheduler.step()

    def on_step_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        if self.first_step is None:
            self.first_step = self.watch.seconds
        self.lrs.append(lr_scheduler.get_last_lr()[0])

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = state.global_step
        if step % self.cfg.eval_every and step != state.max_steps:
            return
        seconds = self.watch.pause()
        loss = heldout_loss(model, self.data["heldout"], self.bf16)
        self.curve.append((seconds, step, loss, self.watch.cpu_total))
        self.watch.resume()
        if self.cfg.target is not None and loss <= self.cfg.target:
            control.should_training_stop = True


def race_hf(cfg: RaceConfig, seed: int, bf16: bool, data: dict) -> dict:
    model, _ = twin_models(cfg, seed)
    dataset = WindowDataset(train_windows(data["train_ids"], cfg, seed))
    curve = [(0.0, 0, heldout_loss(model, data["heldout"], bf16), 0.0)]
    watch = Stopwatch()
    callback = RaceCallback(cfg, data, bf16, watch, curve)
    with tempfile.TemporaryDirectory(prefix="race-hf-") as out:
        watch.start()
        trainer = hf.Trainer(model=model, args=hf_arguments(cfg, seed, bf16, out), train_dataset=dataset,
                             callbacks=[callback])
        trainer.train()
    return {"precision": "bf16" if bf16 else "fp32", "curve": curve, "setup_seconds": callback.first_step,
            "lrs": callback.lrs}


class LoadMonitor:
    """Samples the machine's 1-minute load average every few seconds while an arm runs."""

    def __init__(self, every: float = 5.0):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> "LoadMonitor":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict:
        return {"mean": float(np.mean(self.samples)), "max": float(np.max(self.samples)), "samples": len(self.samples)}


def contended(run: dict) -> bool:
    return run["load"]["mean"] > torch.get_num_threads() + LOAD_MARGIN


def run_arm(arm: str, cfg: RaceConfig, seed: int, data: dict) -> dict:
    """One arm for one seed, with the machine's load while it ran."""
    with LoadMonitor() as monitor:
        if arm == "ours_default":
            result = race_ours(cfg, seed, "auto", data)
        elif arm == "ours_fp32":
            result = race_ours(cfg, seed, "fp32", data)
        else:
            result = race_hf(cfg, seed, arm == "hf_bf16", data)
    return {**result, "load": monitor.summary()}


def run_seed(cfg: RaceConfig, seed: int, order: list[str], data: dict, stop_if_contended: bool) -> dict[str, dict]:
    """The arms of one seed in `order`; with `stop_if_contended`, only up to the first contended one
    (the attempt is void anyway, so the rest would be time lost)."""
    runs = {}
    for arm in order:
        runs[arm] = run_arm(arm, cfg, seed, data)
        reached = seconds_to_target(runs[arm]["curve"], cfg.target) if cfg.target is not None else None
        print(f"seed {seed} {arm}: {reached if reached is None else round(reached, 1)} s to target, "
              f"last point {runs[arm]['curve'][-1]}, load {runs[arm]['load']}", flush=True)
        if stop_if_contended and contended(runs[arm]):
            break
    return runs


def wait_for_quiet(limit_s: float = 600.0, poll_s: float = 10.0) -> float:
    """Seconds spent waiting (at most limit_s) for the load average to fall below 1 + LOAD_MARGIN,
    which the decay of our own last arm takes ~1 minute and another job takes as long as it runs."""
    start = time.perf_counter()
    while os.getloadavg()[0] > 1 + LOAD_MARGIN and time.perf_counter() - start < limit_s:
        time.sleep(poll_s)
    return time.perf_counter() - start


def arm_order(seed_index: int) -> list[str]:
    return list(ARMS) if seed_index % 2 == 0 else list(ARMS)[::-1]


def step0_agreement(cfg: RaceConfig, data: dict, seed: int = 0) -> dict:
    """Both models' fp32 loss on the first training batch, from the same weights: a faster
    arm must not be computing something else."""
    ref, ours = twin_models(cfg, seed)
    batch = random_windows(data["train_ids"], cfg.block_size, cfg.batch_size, seed)(0)
    with torch.no_grad():
        a, b = float(model_loss(ours, batch)), float(model_loss(ref, batch))
    return {"ours": a, "hf": b, "abs_diff": abs(a - b)}


# ----------------------------------------------------------------------------------------------
# Statistics


def paired_ratio(reference: list[float], ours: list[float], resamples: int = 10_000) -> dict:
    """reference / ours seconds, paired by seed: the geometric mean of the per-seed ratios and a
    percentile-bootstrap 95% interval that resamples seeds. With 3 seeds the interval is coarse
    (few distinct resamples): read it as the spread of the seeds."""
    logs = np.log(np.asarray(reference) / np.asarray(ours))
    rng = np.random.default_rng(0)
    means = logs[rng.integers(0, len(logs), size=(resamples, len(logs)))].mean(axis=1)
    return {"per_seed": np.exp(logs).tolist(), "geomean": float(np.exp(logs.mean())),
            "ci95": [float(np.exp(np.quantile(means, 0.025))), float(np.exp(np.quantile(means, 0.975)))]}


def summarize(cfg: RaceConfig, runs: dict[str, dict[int, dict]]) -> dict:
    arms = {}
    for arm, by_seed in runs.items():
        seconds = {s: seconds_to_target(r["curve"], cfg.target) for s, r in by_seed.items()}
        steps = {s: seconds_to_target(r["curve"], cfg.target, column=1) for s, r in by_seed.items()}
        cpu = {s: seconds_to_target(r["curve"], cfg.target, column=3) for s, r in by_seed.items()}
        reached = [v for v in seconds.values() if v is not None]
        per_step = {s: r["curve"][-1][0] / r["curve"][-1][1] for s, r in by_seed.items() if r["curve"][-1][1]}
        arms[arm] = {"precision": next(iter(by_seed.values()))["precision"],
                     "seconds_to_target": seconds, "steps_to_target": steps, "cpu_seconds_to_target": cpu,
                     "median_seconds": float(np.median(reached)) if len(reached) == len(seconds) else None,
                     "seconds_per_step": per_step,
                     "setup_seconds": {s: r["setup_seconds"] for s, r in by_seed.items()},
                     "load": {s: r["load"] for s, r in by_seed.items()},
                     "contended": {s: contended(r) for s, r in by_seed.items()},
                     "curves": {s: r["curve"] for s, r in by_seed.items()}}
    ratios = {f"{arm}/{BASELINE}": ratio_entry(arms, arm, "seconds_to_target") for arm in GOALS if arm in arms}
    cpu_ratios = {f"{arm}/{BASELINE}": ratio_entry(arms, arm, "cpu_seconds_to_target") for arm in GOALS if arm in arms}
    return {"arms": arms, "ratios": {k: v for k, v in ratios.items() if v},
            "cpu_ratios": {k: v for k, v in cpu_ratios.items() if v}}


def ratio_entry(arms: dict, arm: str, key: str) -> dict | None:
    """arm / baseline over the seeds where both reached the target; None if there are none."""
    base, other = arms[BASELINE][key], arms[arm][key]
    seeds = [s for s in base if base[s] is not None and other.get(s) is not None]
    if not seeds:
        return None
    return {"goal": GOALS[arm], "seeds": seeds, **paired_ratio([other[s] for s in seeds], [base[s] for s in seeds])}


# ----------------------------------------------------------------------------------------------
# Output


def atomic_write(path: Path, write) -> None:
    """write(tmp_path), then rename over `path`: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def machine_load() -> dict:
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    return {"uptime": uptime, "loadavg": list(os.getloadavg()), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def environment() -> dict:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "transformers": hf.__version__, "python": platform.python_version(),
            "default_precision": resolve_precision("auto", "cpu")}


def markdown(result: dict) -> str:
    cfg, env = result["recipe"], result["environment"]
    lines = ["# Time-to-target race: ours vs transformers.Trainer", "",
             f"GPT-2 pre-LN, {cfg['n_layer']} layers, d_model {cfg['d_model']}, {cfg['n_head']} heads, "
             f"vocab {cfg['vocab_size']}, context {cfg['block_size']}, batch {cfg['batch_size']} "
             f"({result['params']:,} parameters), books corpus. Target: held-out loss {cfg['target']} "
             f"(evaluated every {cfg['eval_every']} steps, clock paused; linear interpolation between the "
             f"bracketing evaluations). Recipe: AdamW (0.9, 0.95), wd 0.1, clip 1.0, peak lr {cfg['lr']}, "
             f"{cfg['warmup_steps']} warm-up steps, cosine to 10% over {cfg['steps']} steps.",
             f"{env['cpu']}, {env['threads']} threads, torch {env['torch']}, transformers {env['transformers']}. "
             f"Load average before {result['load_before']['loadavg'][0]:.2f}, after "
             f"{result['load_after']['loadavg'][0]:.2f}.", "",
             "| arm | precision | median s to target | per seed (s) | steps to target | s/step |",
             "|---|---|---:|---|---|---:|"]
    for arm, a in result["arms"].items():
        per_seed = ", ".join(("-" if v is None else f"{v:.1f}") + ("*" if a["contended"][s] else "")
                             for s, v in a["seconds_to_target"].items())
        steps = ", ".join("-" if v is None else f"{v:.0f}" for v in a["steps_to_target"].values())
        median = "not reached" if a["median_seconds"] is None else f"{a['median_seconds']:.1f}"
        sps = np.median(list(a["seconds_per_step"].values())) if a["seconds_per_step"] else float("nan")
        lines.append(f"| {arm} | {a['precision']} | {median} | {per_seed} | {steps} | {sps:.3f} |")
    lines += ["", "| ratio (seconds, paired by seed) | geometric mean | 95% bootstrap over seeds | per seed | goal |",
              "|---|---:|---|---|---:|"]
    for name, r in result["ratios"].items():
        low, high = r["ci95"]
        per_seed = ", ".join(f"{v:.2f}" for v in r["per_seed"])
        lines.append(f"| {name} | {r['geomean']:.2f}x | [{low:.2f}, {high:.2f}] | {per_seed} | {r['goal']}x |")
    cpu = "; ".join(f"{name} {r['geomean']:.2f}x [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"
                    for name, r in result.get("cpu_ratios", {}).items())
    loads = [load["mean"] for a in result["arms"].values() for load in a["load"].values()]
    contended_runs = sum(v for a in result["arms"].values() for v in a["contended"].values())
    s0 = result["step0_loss"]
    lines += ["", f"Same ratios in this process's CPU seconds (for reference: other jobs inflate them too): {cpu}.",
              f"Mean 1-minute load average while an arm ran: {min(loads):.1f} to {max(loads):.1f} on {env['cores']} cores "
              f"(our process alone: ~{env['threads']}). An attempt with an arm above {env['threads']} + "
              f"{result['load_margin']} was void and its seed rerun: {len(result['rejected_attempts'])} void attempt(s) "
              f"(in race.json); {contended_runs} contended arm(s) kept after the last attempt, marked *.",
              f"Step-0 fp32 loss, same weights and batch: ours {s0['ours']:.6f}, transformers {s0['hf']:.6f}."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = dict(zip(ARMS, ("tab:blue", "tab:cyan", "tab:red", "tab:orange")))
    for arm, a in result["arms"].items():
        for i, curve in enumerate(a["curves"].values()):
            xs, _, ys, _ = zip(*curve)
            ax.plot(xs, ys, color=colors.get(arm), alpha=0.8, lw=1.2, label=f"{arm} ({a['precision']})" if i == 0 else None)
    if result["recipe"]["target"] is not None:
        ax.axhline(result["recipe"]["target"], color="k", ls="--", lw=0.8, label="target")
    ax.set_xlabel("training seconds (evaluation excluded)")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_ylim(top=min(ax.get_ylim()[1], 8.5))
    ax.set_title("Time to target: one line per arm and seed")
    ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def write_results(result: dict, out_dir: Path) -> None:
    atomic_write(out_dir / "race.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    atomic_write(out_dir / "race.md", lambda tmp: tmp.write_text(markdown(result)))
    plot(result, out_dir / "race.png")


# ----------------------------------------------------------------------------------------------
# Entry points


def prepare(cfg: RaceConfig) -> dict:
    train_ids, val_ids = tokenized_books(cfg)
    return {"train_ids": train_ids, "heldout": heldout_batches(val_ids, cfg)}


def race(cfg: RaceConfig, out_dir: Path | None = Path("results/perf"), data: dict | None = None) -> dict:
    """Every seed's four arms, summarised; written to out_dir unless None. `data` (train_ids,
    heldout) replaces the books corpus, for tests."""
    load_before = machine_load()
    data = data or prepare(cfg)
    agreement = step0_agreement(cfg, data)
    if agreement["abs_diff"] > 1e-4:
        raise AssertionError(f"the two models disagree at step 0 (fp32): {agreement}")
    runs: dict[str, dict[int, dict]] = {arm: {} for arm in ARMS}
    rejected = []
    for i, seed in enumerate(cfg.seeds):
        for attempt in range(1, cfg.attempts + 1):
            last = attempt == cfg.attempts
            seed_runs = run_seed(cfg, seed, arm_order(i), data, stop_if_contended=not last)
            if last or not any(contended(r) for r in seed_runs.values()):
                break
            rejected.append(rejected_attempt(cfg, seed, attempt, seed_runs, waited_s=wait_for_quiet()))
        for arm, r in seed_runs.items():
            runs[arm][seed] = r
    result = {"recipe": {**asdict(cfg), "seeds": list(cfg.seeds)},
              "params": sum(p.numel() for p in twin_models(cfg, 0)[1].parameters()),
              "environment": environment(), "load_before": load_before, "load_after": machine_load(),
              "step0_loss": agreement, "interpolation": "linear in (seconds, loss) between the bracketing evaluations",
              "load_margin": LOAD_MARGIN, "rejected_attempts": rejected, **summarize(cfg, runs)}
    if out_dir is not None:
        write_results(result, Path(out_dir))
    return result


def rejected_attempt(cfg: RaceConfig, seed: int, attempt: int, runs: dict[str, dict], waited_s: float) -> dict:
    """What a void attempt measured, kept for the record (curves dropped)."""
    return {"seed": seed, "attempt": attempt, "waited_s_after": waited_s,
            "arms": {arm: {"seconds_to_target": seconds_to_target(r["curve"], cfg.target) if cfg.target is not None else None,
                           "load": r["load"], "contended": contended(r)} for arm, r in runs.items()}}


def sweep(cfg: RaceConfig, lrs=(1.5e-3, 3e-3, 6e-3), out: Path = Path("results/perf/race_sweep.json")) -> dict:
    """The full schedule on ours_default at each peak lr, no target: the final held-out loss picks lr."""
    data = prepare(cfg)
    cfg = replace(cfg, target=None)
    curves = {str(lr): race_ours(replace(cfg, lr=lr), cfg.seeds[0], "auto", data)["curve"] for lr in lrs}
    result = {"recipe": asdict(cfg), "final_loss": {lr: c[-1][2] for lr, c in curves.items()}, "curves": curves}
    atomic_write(out, lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    print(json.dumps(result["final_loss"]))
    return result


if __name__ == "__main__":
    config = config_from_env()
    if "--sweep" in sys.argv[1:]:
        sweep(config)
    else:
        result = race(config, output_dir())
        print(markdown(result))
        print(f"written to {output_dir()}/race.{{json,md,png}}")
