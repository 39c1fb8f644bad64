"""bf16 autocast by default where the CPU has it, fp32 one flag away, and no quality lost:
bf16 and fp32 runs of one recipe reach held-out losses within the seed-to-seed spread."""

from pathlib import Path

import pytest
import torch

from repro.config import ConfigError
from repro.pipeline import load_run_config, train_run
from repro.precision import compare_precisions, native_bf16, resolve_precision
from repro.train import Trainer, TrainConfig

REPO = Path(__file__).resolve().parents[1]


def test_auto_resolves_once_to_a_concrete_precision(monkeypatch):
    monkeypatch.delenv("REPRO_PRECISION", raising=False)
    expected = "bf16" if native_bf16("cpu") else "fp32"
    assert resolve_precision("auto", "cpu") == expected
    assert TrainConfig(device="cpu").precision == expected  # what the cache keys and results record
    assert TrainConfig(precision="fp32").precision == "fp32"
    monkeypatch.setenv("REPRO_PRECISION", "fp32")
    assert TrainConfig(device="cpu").precision == "fp32"
    assert TrainConfig(precision="bf16").precision == "bf16"  # an explicit choice beats the variable
    monkeypatch.setenv("REPRO_PRECISION", "fp16")
    with pytest.raises(ConfigError, match="REPRO_PRECISION='fp16'"):
        TrainConfig()
    with pytest.raises(ConfigError, match="train.precision='half'"):
        TrainConfig(precision="half")


def test_bf16_training_keeps_fp32_master_weights_and_optimizer_state(tmp_path):
    from repro.model import LanguageModel, scaled

    model = LanguageModel(scaled("gpt2_small", n_layer=1, d_model=32, n_head=2, vocab_size=64, max_seq_len=16,
                                 dropout=0.0))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 64, (4, 17), generator=g)
    trainer = Trainer(model, TrainConfig(steps=3, batch_size=4, lr=1e-2, precision="bf16", progress=False),
                      lambda step: {"input_ids": ids[:, :-1], "labels": ids[:, 1:]}, tmp_path)
    history = trainer.fit()
    assert trainer.autocast and history[-1]["loss"] < history[0]["loss"] + 1.0
    assert all(p.dtype == torch.float32 for p in model.parameters())
    states = [s for s in trainer.optimizer.state.values() if s]
    assert states and all(v.dtype == torch.float32 for s in states for k, v in s.items() if k != "step")


def test_compare_precisions_needs_three_seeds_and_flags_a_real_shift():
    assert compare_precisions([3.0, 3.1], [3.0, 3.1])["within_seed_spread"] is None
    same = compare_precisions([3.00, 3.10, 3.05], [3.01, 3.09, 3.06])
    assert same["within_seed_spread"] and same["mean_difference"] == pytest.approx(1 / 300)
    shifted = compare_precisions([3.00, 3.01, 3.02], [3.20, 3.21, 3.22])
    assert shifted["within_seed_spread"] is False and shifted["mean_difference"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="paired"):
        compare_precisions([3.0], [3.0, 3.1])


@pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has no native bf16; 'auto' is fp32 here")
def test_bf16_and_fp32_runs_of_one_recipe_agree_within_the_seed_spread(tmp_path, monkeypatch):
    """The small version of the benchmark (benchmarks/test_precision_quality.py runs the 2.6M-
    parameter decoder): a 1-layer decoder on Tiny Shakespeare, three seeds in each precision."""
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("REPRO_WORKERS", "1")
    tiny = ["model.n_layer=1", "model.d_model=48", "model.n_head=2", "model.max_seq_len=32", "data.vocab_size=300",
            "data.block_size=32", "data.val_batches=4", "data.max_chars=300000", "train.steps=150",
            "train.batch_size=8", "train.lr=1e-2", "train.warmup_steps=6", "train.progress=false"]
    losses = {}
    for precision in ("fp32", "bf16"):
        runs = [train_run(load_run_config(REPO / "configs" / "shakespeare_tiny.yaml",
                                          [*tiny, f"train.seed={seed}", f"train.precision={precision}"]))
                for seed in (0, 1, 2)]
        losses[precision] = [r.summary["val_loss"] for r in runs]
        # Both learned: far below the unigram model of the training text.
        assert all(r.summary["val_loss"] < r.summary["unigram_val_loss"] - 0.2 for r in runs)
    result = compare_precisions(losses["fp32"], losses["bf16"])
    assert losses["fp32"] != losses["bf16"]  # the two really ran different arithmetic
    assert result["within_seed_spread"], result
