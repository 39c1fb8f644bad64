"""The time-to-target race's building blocks (benchmarks/race.py): both sides train the same
model on the same batches with the same schedule, and seconds-to-target is read off the curves
correctly. Tiny models on synthetic tokens; nothing here times anything."""

import importlib.util
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repro.train import lr_multiplier

ROOT = Path(__file__).resolve().parents[1]


def _load_race():
    spec = importlib.util.spec_from_file_location("race", ROOT / "benchmarks" / "race.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["race"] = module
    spec.loader.exec_module(module)
    return module


race = _load_race()

TINY = replace(race.RaceConfig(), n_layer=2, d_model=32, n_head=2, vocab_size=128, block_size=16, batch_size=4,
               steps=6, warmup_steps=2, eval_every=2, eval_windows=8, seeds=(0,), attempts=1, target=None)


def synthetic_data(cfg):
    g = torch.Generator().manual_seed(0)
    # A repeating pattern with noise: learnable within a few steps, so the loss moves.
    base = torch.arange(4000) % 17
    ids = torch.where(torch.rand(4000, generator=g) < 0.2, torch.randint(0, cfg.vocab_size, (4000,), generator=g), base)
    return {"train_ids": ids, "heldout": race.heldout_batches(ids[-1000:], cfg)}


def test_seconds_to_target_interpolates_between_the_bracketing_evaluations():
    curve = [(0.0, 0, 8.0), (10.0, 10, 6.0), (20.0, 20, 4.0)]
    assert race.seconds_to_target(curve, 5.0) == pytest.approx(15.0)
    assert race.seconds_to_target(curve, 5.0, column=1) == pytest.approx(15.0)
    assert race.seconds_to_target(curve, 6.0) == pytest.approx(10.0)
    assert race.seconds_to_target(curve, 9.0) == 0.0
    assert race.seconds_to_target(curve, 3.0) is None


def test_seconds_to_target_takes_the_first_crossing():
    curve = [(0.0, 0, 8.0), (10.0, 10, 4.0), (20.0, 20, 6.0), (30.0, 30, 3.0)]
    assert race.seconds_to_target(curve, 5.0) == pytest.approx(7.5)


def test_stopwatch_stands_still_while_paused():
    watch = race.Stopwatch()
    watch.start()
    paused_at = watch.pause()
    assert watch.seconds == paused_at
    watch.resume()
    assert watch.seconds >= paused_at


def test_paired_ratio_is_exact_for_a_constant_ratio():
    r = race.paired_ratio([20.0, 40.0, 60.0], [10.0, 20.0, 30.0])
    assert r["geomean"] == pytest.approx(2.0)
    assert r["ci95"] == pytest.approx([2.0, 2.0])
    assert r["per_seed"] == pytest.approx([2.0, 2.0, 2.0])


def test_arms_alternate_order_by_seed():
    assert race.arm_order(0) == list(race.ARMS)
    assert race.arm_order(1) == list(race.ARMS)[::-1]


def test_transformers_sees_ours_batches_in_ours_order():
    data = synthetic_data(TINY)
    windows = race.train_windows(data["train_ids"], TINY, seed=3)
    draw = race.random_windows(data["train_ids"], TINY.block_size, TINY.batch_size, 3)
    dataset = race.WindowDataset(windows)
    for step in range(TINY.steps):
        batch = draw(step)
        rows = [dataset[step * TINY.batch_size + i] for i in range(TINY.batch_size)]
        assert torch.equal(torch.stack([r["input_ids"] for r in rows]), batch["input_ids"])
        assert torch.equal(torch.stack([r["shift_labels"] for r in rows]), batch["labels"])


def test_step0_losses_agree_in_fp32_at_the_race_shape():
    cfg = race.RaceConfig()
    ids = torch.randint(0, cfg.vocab_size, (20_000,), generator=torch.Generator().manual_seed(1))
    agreement = race.step0_agreement(cfg, {"train_ids": ids})
    assert agreement["abs_diff"] < 1e-4
    assert agreement["ours"] == pytest.approx(math.log(cfg.vocab_size), abs=0.1)  # an untrained model: ~uniform


def test_both_trainers_follow_the_same_trajectory_in_fp32():
    """Same init, batches, optimizer and schedule: after a few steps the held-out losses still
    agree, and transformers' per-step learning rates are ours'."""
    data = synthetic_data(TINY)
    ours = race.run_arm("ours_fp32", TINY, 0, data)
    theirs = race.run_arm("hf_fp32", TINY, 0, data)
    assert [p[1] for p in ours["curve"]] == [p[1] for p in theirs["curve"]] == [0, 2, 4, 6]
    assert ours["curve"][-1][2] < ours["curve"][0][2] - 0.1  # it learned something
    for a, b in zip(ours["curve"], theirs["curve"]):
        assert a[2] == pytest.approx(b[2], abs=1e-3)
    cfg = race.train_config(TINY, 0, "fp32")
    assert theirs["lrs"] == pytest.approx([TINY.lr * lr_multiplier(k, cfg) for k in range(TINY.steps)])


def test_quick_race_writes_its_results(tmp_path):
    data = synthetic_data(TINY)
    cfg = replace(TINY, target=4.0)
    result = race.race(cfg, tmp_path, data=data)
    assert set(result["arms"]) == set(race.ARMS)
    saved = json.loads((tmp_path / "race.json").read_text())
    assert saved["recipe"]["target"] == 4.0
    assert {"hf_fp32/ours_default", "hf_bf16/ours_default"} <= set(saved["ratios"]) or any(
        v is None for a in saved["arms"].values() for v in a["seconds_to_target"].values())
    assert "| arm |" in (tmp_path / "race.md").read_text()
    assert (tmp_path / "race.png").read_bytes()[:4] == b"\x89PNG"


def test_quick_mode_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RACE_QUICK", "1")
    assert race.config_from_env().seeds == (0,) and race.config_from_env().steps < 20
    monkeypatch.setenv("RACE_QUICK", "0")
    assert race.config_from_env() == race.RaceConfig()


def test_a_contended_seed_is_run_again(monkeypatch):
    """An attempt with an arm that shared the machine is void: the seed runs again, the void
    attempt is kept in the record, and the last attempt is kept whatever its load."""
    calls = []

    def fake_run_arm(arm, cfg, seed, data):
        calls.append((seed, arm))
        busy = seed == 0 and len(calls) == 2  # the second arm of seed 0's first attempt
        curve = [(0.0, 0, 5.0, 0.0), (10.0, 10, 3.0, 20.0)]
        return {"precision": "fp32", "curve": curve, "setup_seconds": 0.0,
                "load": {"mean": 9.0 if busy else 1.0, "max": 9.0, "samples": 1}}

    monkeypatch.setattr(race, "run_arm", fake_run_arm)
    monkeypatch.setattr(race, "step0_agreement", lambda cfg, data: {"ours": 1.0, "hf": 1.0, "abs_diff": 0.0})
    monkeypatch.setattr(race, "wait_for_quiet", lambda: 0.0)
    cfg = replace(TINY, seeds=(0, 1), attempts=2, target=4.0)
    result = race.race(cfg, None, data={"train_ids": None, "heldout": []})
    assert calls[:2] == [(0, "ours_default"), (0, "ours_fp32")]  # stopped at the contended arm
    assert len(calls) == 2 + 4 + 4
    assert [r["seed"] for r in result["rejected_attempts"]] == [0]
    assert not any(v for a in result["arms"].values() for v in a["contended"].values())
    assert result["ratios"]["hf_fp32/ours_default"]["geomean"] == pytest.approx(1.0)
