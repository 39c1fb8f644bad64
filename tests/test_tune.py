"""`repro tune`: a seeded sweep at a fixed token budget, cached like any artifact, whose chosen
point is the lowest mean held-out loss and lands in the recipes file."""

import json
import math
from pathlib import Path

import pytest

from repro.config import ConfigError
from repro.pipeline import load_run_config
from repro.tune import TuneGrid, TunePoint, point_runs, tune
from repro_cli.main import main

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.n_layer=1", "model.d_model=32", "model.n_head=2", "model.max_seq_len=32", "data.vocab_size=300",
        "data.block_size=32", "data.val_batches=2", "data.max_chars=200000", "train.progress=false"]
TOKENS = 20 * 8 * 32  # 20 steps of 8 windows of 32 tokens


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRO_WORKERS", "1")
    return tmp_path


def tiny_base():
    return load_run_config(REPO / "configs" / "shakespeare_tiny.yaml", TINY)


def test_the_sweep_picks_the_lowest_mean_loss_and_is_cached(isolated):
    grid = TuneGrid(lrs=(1e-4, 1e-2), warmup_fracs=(0.1,), batch_sizes=(8,), seeds=(0,))
    result = tune(tiny_base(), TOKENS, grid)
    assert not result.cached and len(result.points) == 2
    assert all(p.steps == 20 and p.warmup_steps == 2 and len(p.val_losses) == 1 for p in result.points)
    assert result.best.mean_loss == min(p.mean_loss for p in result.points)
    # 20 steps at 1e-4 barely move a fresh model; 1e-2 does: the sweep must see the difference.
    assert result.best.lr == 1e-2
    assert result.plot_path.stat().st_size > 0
    assert "*" in result.table().splitlines()[[p.lr for p in sorted(result.points, key=lambda p: p.lr)].index(1e-2) + 1]
    again = tune(tiny_base(), TOKENS, grid)
    assert again.cached and again.out_dir == result.out_dir and again.to_dict() == result.to_dict()


def test_a_diverged_seed_rules_its_point_out():
    point = TunePoint(1e-2, 0.1, 8, 20, 2, val_losses=[3.0, float("nan")])
    assert point.mean_loss == math.inf
    assert TunePoint(1e-3, 0.1, 8, 20, 2, val_losses=[3.0, 4.0]).mean_loss == 3.5


def test_the_token_budget_sets_the_steps_of_every_batch_size():
    planned = point_runs(tiny_base(), 64 * 32 * 10, TuneGrid(lrs=(1e-3,), warmup_fracs=(0.0, 0.5),
                                                            batch_sizes=(8, 16), seeds=(0, 1)))
    assert [(p.batch_size, p.steps, p.warmup_steps) for p, _ in planned] == [(8, 80, 0), (8, 80, 40),
                                                                             (16, 40, 0), (16, 40, 20)]
    for point, runs in planned:
        assert [r.train.seed for r in runs] == [0, 1]
        assert {r.train.steps * r.train.batch_size for r in runs} == {640}
        assert len({r.name for r in runs}) == 2


def test_bad_grids_and_non_decoders_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="lrs is empty"):
        TuneGrid(lrs=())
    with pytest.raises(ConfigError, match="positive"):
        TuneGrid(lrs=(-1e-3,))
    with pytest.raises(ConfigError, match="at least 10 steps"):
        point_runs(tiny_base(), 100, TuneGrid())
    encoder = load_run_config(None, ["preset=bert_base", "model.n_layer=1"])
    with pytest.raises(ConfigError, match="needs a decoder"):
        tune(encoder, TOKENS, TuneGrid())


def test_the_command_prints_the_chosen_point_and_records_it(isolated, capsys):
    recipes = isolated / "recipes.json"
    args = ["tune", "gpt2_small", "--tokens", str(TOKENS), "--config", str(REPO / "configs" / "shakespeare_tiny.yaml"),
            *[a for item in TINY for a in ("--set", item)], "--lr", "1e-4", "1e-2", "--warmup", "0.1",
            "--batch-size", "8", "--record", "tiny_decoder", "--recipes", str(recipes)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "chosen: peak lr 0.01" in out and "tune.png" in out
    recorded = json.loads(recipes.read_text())["tiny_decoder"]
    assert recorded["lr"] == 1e-2 and recorded["tokens"] == TOKENS and recorded["batch_size"] == 8
    assert "| tiny_decoder | gpt2_small |" in recipes.with_suffix(".md").read_text()
    assert main(["tune", "bert_base", "--tokens", "1000000"]) == 2
    assert "needs a decoder" in capsys.readouterr().err
