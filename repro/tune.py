"""Learning-rate sweeps for tiny models: `repro tune PRESET --tokens N`.

The papers' learning rates were tuned for their sizes, and they fall with size (GPT-3 Table 2.1:
6e-4 at 125M parameters, 0.6e-4 at 175B). A model of a few million parameters trained on a few
million tokens learns fastest at a peak rate one or two orders of magnitude above those, with a
warm-up that matters far more at a few hundred steps than at 300k. So each cpu recipe takes its
peak rate (and warm-up, and batch size where it matters) from a small seeded sweep at the token
budget it will train on, and the paper's value stays the config's documented default.

    result = tune(base_run, tokens=2_000_000, grid=TuneGrid(lrs=(1e-3, 3e-3, 1e-2)))
    result.best            # the point with the lowest mean held-out loss over seeds

Every point is an ordinary `RunConfig` run, so it is trained once and cached like any artifact,
and the sweep's own summary (tune.json, tune.png) is cached beside it under a key of the base
run, the grid and the budget.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from repro.config import ConfigError
from repro.pipeline import RunConfig, artifact_dir, run_config_from_dict, train_runs
from repro.train import atomic_write_text


@dataclass
class TuneGrid:
    lrs: tuple[float, ...] = (1e-3, 2e-3, 4e-3, 8e-3, 1.6e-2)  # peak learning rates, a factor 2 apart
    warmup_fracs: tuple[float, ...] = (0.02, 0.1)  # warm-up as a share of the steps
    batch_sizes: tuple[int, ...] = (16,)  # sequences per step; the steps follow from the token budget
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        for name in ("lrs", "warmup_fracs", "batch_sizes", "seeds"):
            values = tuple(getattr(self, name))
            if not values:
                raise ConfigError(f"tune grid: {name} is empty; give at least one value")
            setattr(self, name, values)
        if any(lr <= 0 for lr in self.lrs):
            raise ConfigError(f"tune grid: learning rates must be positive, got {self.lrs}")
        if any(not 0 <= w < 1 for w in self.warmup_fracs):
            raise ConfigError(f"tune grid: warm-up fractions must lie in [0, 1), got {self.warmup_fracs}")
        if any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"tune grid: batch sizes must be positive, got {self.batch_sizes}")


@dataclass
class TunePoint:
    lr: float
    warmup_frac: float
    batch_size: int
    steps: int
    warmup_steps: int
    val_losses: list[float] = field(default_factory=list)  # one per seed, in grid.seeds order

    @property
    def mean_loss(self) -> float:
        finite = [x for x in self.val_losses if x is not None and math.isfinite(x)]
        # A diverged seed makes the point unusable, not merely worse on average.
        return sum(finite) / len(finite) if finite and len(finite) == len(self.val_losses) else math.inf


@dataclass
class TuneResult:
    name: str
    preset: str
    tokens: int
    grid: TuneGrid
    points: list[TunePoint]
    out_dir: Path
    cached: bool = False

    @property
    def best(self) -> TunePoint:
        return min(self.points, key=lambda p: p.mean_loss)

    @property
    def plot_path(self) -> Path:
        return self.out_dir / "tune.png"

    def to_dict(self) -> dict:
        return {"name": self.name, "preset": self.preset, "tokens": self.tokens, "grid": dataclasses.asdict(self.grid),
                "points": [dataclasses.asdict(p) for p in self.points], "best": dataclasses.asdict(self.best)}

    def table(self) -> str:
        """The loss landscape as text: one row per point, the chosen one starred."""
        seeds = ", ".join(f"s{s}" for s in self.grid.seeds)
        lines = [f"{'lr':>9} {'warm-up':>8} {'batch':>5} {'steps':>6}  {'mean loss':>9}  per seed ({seeds})"]
        best = self.best
        for p in sorted(self.points, key=lambda p: (p.batch_size, p.warmup_frac, p.lr)):
            per_seed = " ".join("diverged" if x is None or not math.isfinite(x) else f"{x:.4f}" for x in p.val_losses)
            mark = " *" if p is best else ""
            lines.append(f"{p.lr:>9.2e} {p.warmup_frac:>8.0%} {p.batch_size:>5} {p.steps:>6}  {p.mean_loss:>9.4f}  "
                         f"{per_seed}{mark}")
        return "\n".join(lines)


def grid_points(grid: TuneGrid, tokens: int, block_size: int) -> list[TunePoint]:
    """The grid's points at `tokens` training tokens each, with their steps and warm-up steps."""
    points = []
    for batch_size in grid.batch_sizes:
        steps = tokens // (batch_size * block_size)
        if steps < 10:
            raise ConfigError(f"{tokens:,} tokens are only {steps} steps of {batch_size} x {block_size}; "
                              f"tune needs at least 10 steps: raise --tokens or lower the batch size")
        for warmup_frac in grid.warmup_fracs:
            warmup = max(1, round(warmup_frac * steps)) if warmup_frac else 0
            points += [TunePoint(lr, warmup_frac, batch_size, steps, warmup) for lr in grid.lrs]
    return points


def point_runs(base: RunConfig, tokens: int, grid: TuneGrid) -> list[tuple[TunePoint, list[RunConfig]]]:
    """Each grid point with its runs (one per seed), at `tokens` training tokens each."""
    out = []
    for point in grid_points(grid, tokens, base.data.block_size):
        runs = []
        for seed in grid.seeds:
            d = base.to_dict()
            d["name"] = f"{base.name}-lr{point.lr:g}-w{point.warmup_steps}-b{point.batch_size}-s{seed}"
            d["out_dir"] = None  # every point is its own cached artifact
            d["train"].update(lr=point.lr, warmup_steps=point.warmup_steps, batch_size=point.batch_size,
                              steps=point.steps, seed=seed, grad_accum=1, eval_every=0, checkpoint_every=0,
                              snapshot_every=0, progress=False)
            runs.append(run_config_from_dict(d))
        out.append((point, runs))
    return out


def sweep_dir(base: RunConfig, tokens: int, grid: TuneGrid) -> Path:
    identity = {"base": {k: v for k, v in base.to_dict().items() if k not in ("name", "out_dir")},
                "tokens": tokens, "grid": dataclasses.asdict(grid)}
    identity["base"]["train"] = {k: v for k, v in identity["base"]["train"].items()
                                 if k not in ("lr", "warmup_steps", "batch_size", "steps", "seed", "progress", "device")}
    return artifact_dir(f"tune-{base.name}", identity, code=[__name__])


def tune(base: RunConfig, tokens: int, grid: TuneGrid | None = None) -> TuneResult:
    """Train every grid point (cached, in parallel worker processes) and pick the lowest mean
    held-out loss. Only decoders: the sweep trains with the causal-LM pipeline (`train_run`)."""
    grid = grid or TuneGrid()
    config = base.model_config(base.data.vocab_size)
    if config.kind != "decoder":
        raise ConfigError(f"repro tune trains through the causal-LM pipeline, which needs a decoder; "
                          f"{base.preset} is an {config.kind}. Tune a decoder preset (gpt2_*, gpt3_*, llama_*)")
    planned = point_runs(base, tokens, grid)

    def train(points: list[TunePoint]) -> None:
        results = iter(train_runs([run for _, runs in planned for run in runs], desc=f"tune {base.name}"))
        for point, runs in planned:
            point.val_losses = [next(results).summary.get("val_loss") for _ in runs]

    return cached_sweep(base.name, base.preset, tokens, grid, sweep_dir(base, tokens, grid),
                        [p for p, _ in planned], train)


def cached_sweep(name: str, preset: str, tokens: int, grid: TuneGrid, out_dir: Path, points: list[TunePoint],
                 train: Callable[[list[TunePoint]], None]) -> TuneResult:
    """The sweep kept in `out_dir` (tune.json, tune.png), or `train(points)` (which fills each
    point's val_losses, one per grid seed) and the result written there: every tuner's one ending."""
    summary = out_dir / "tune.json"
    if summary.exists():
        return _from_dict(json.loads(summary.read_text()), out_dir, cached=True)
    train(points)
    result = TuneResult(name, preset, tokens, grid, points, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_landscape(result, result.plot_path)
    atomic_write_text(summary, json.dumps(result.to_dict(), indent=2))
    return result


def _from_dict(d: dict, out_dir: Path, cached: bool) -> TuneResult:
    grid = TuneGrid(**{k: tuple(v) for k, v in d["grid"].items()})
    points = [TunePoint(**p) for p in d["points"]]
    return TuneResult(d["name"], d["preset"], d["tokens"], grid, points, out_dir, cached)


def plot_landscape(result: TuneResult, path: Path) -> None:
    """Held-out loss against the peak learning rate, one line per warm-up and batch size, every
    seed as a dot; the chosen point ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    groups: dict[tuple, list[TunePoint]] = {}
    for p in result.points:
        groups.setdefault((p.warmup_frac, p.batch_size), []).append(p)
    for (warmup, batch), points in sorted(groups.items()):
        points.sort(key=lambda p: p.lr)
        line, = ax.plot([p.lr for p in points], [p.mean_loss if math.isfinite(p.mean_loss) else float("nan")
                                                for p in points], marker="o", label=f"warm-up {warmup:.0%}, batch {batch}")
        for p in points:
            seeds = [x for x in p.val_losses if x is not None and math.isfinite(x)]
            ax.scatter([p.lr] * len(seeds), seeds, s=8, color=line.get_color(), alpha=0.5)
    best = result.best
    ax.scatter([best.lr], [best.mean_loss], s=160, facecolors="none", edgecolors="black", label="chosen")
    ax.set_xscale("log")
    ax.set_xlabel("peak learning rate")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title(f"{result.name}: {result.tokens:,} tokens per run")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


# ----------------------------------------------------------------------------------------------
# The tuned points the cpu recipes use: results/perf/recipes.json, rendered as recipes.md


def record_recipe(path: Path, key: str, result: TuneResult, model: dict, data: dict) -> None:
    """Keep `result`'s chosen point under `key` in the recipes file (JSON) and re-render the
    Markdown beside it: the one list of the tuned learning rates the cpu recipes take. `model` is
    what the recipe changes in its preset, `data` what it trains on."""
    path = Path(path)
    recipes = json.loads(path.read_text()) if path.exists() else {}
    best = result.best
    recipes[key] = {"preset": result.preset, "model": model, "data": data,
                    "tokens": result.tokens, "lr": best.lr, "warmup_frac": best.warmup_frac,
                    "batch_size": best.batch_size, "steps": best.steps, "val_loss": best.mean_loss,
                    "seeds": list(result.grid.seeds), "grid_lrs": list(result.grid.lrs),
                    "grid_warmups": list(result.grid.warmup_fracs), "grid_batch_sizes": list(result.grid.batch_sizes)}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(dict(sorted(recipes.items())), indent=2) + "\n")
    atomic_write_text(path.with_suffix(".md"), render_recipes(recipes))


def render_recipes(recipes: dict) -> str:
    lines = ["# Tuned cpu recipes", "",
             "Written by `repro tune PRESET --tokens N --record KEY`: the peak learning rate, warm-up and batch size "
             "with the lowest mean held-out loss over the sweep's seeds, at the token budget the recipe trains on. "
             "The papers' own values stay the configs' documented defaults.", "",
             "| recipe | preset | model | tokens | peak lr | warm-up | batch | held-out loss | seeds | lrs tried |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for key, r in recipes.items():
        model = ", ".join(f"{k}={v}" for k, v in r["model"].items()) or "preset"
        tried = ", ".join(f"{x:g}" for x in r["grid_lrs"])
        lines.append(f"| {key} | {r['preset']} | {model} | {r['tokens']:,} | {r['lr']:g} | {r['warmup_frac']:.0%} | "
                     f"{r['batch_size']} | {r['val_loss']:.4f} | {len(r['seeds'])} | {tried} |")
    return "\n".join(lines) + "\n"
