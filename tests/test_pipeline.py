"""A run from a YAML config end to end through the CLI: artifact cache, clear one-line errors,
generation from the checkpoint."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report import render

from repro_cli.main import main
from repro.config import ConfigError
from repro.pipeline import default_workers, load_run_config, run_key, run_parallel, train_once, train_run, train_runs

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model.n_layer=1", "model.d_model=32", "model.n_head=2", "model.max_seq_len=32",
    "data.vocab_size=300", "data.block_size=32", "data.val_batches=2",
    "train.steps=30", "train.batch_size=8", "train.lr=3e-3", "train.progress=false", "train.log_every=10",
]


def test_a_run_is_cached_and_loaded_instead_of_retrained(isolated):
    run = load_run_config(REPO / "configs" / "shakespeare_tiny.yaml", TINY)
    first = train_run(run)
    assert not first.cached
    second = train_run(load_run_config(REPO / "configs" / "shakespeare_tiny.yaml", TINY))
    assert second.cached and second.out_dir == first.out_dir and second.summary == first.summary
    other = load_run_config(REPO / "configs" / "shakespeare_tiny.yaml", [*TINY, "train.lr=1e-3"])
    assert run_key(other) != run_key(run)  # a different training config is a different artifact


def test_run_parallel_keeps_the_order_of_jobs_and_raises_a_worker_error():
    assert run_parallel(pow, [(2, 3), (3, 2), (5, 1)], workers=2) == [8, 9, 5]
    with pytest.raises(ValueError, match="invalid literal"):
        run_parallel(int, [("1",), ("x",)], workers=2)


def test_workers_come_from_the_environment_and_a_bad_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("REPRO_WORKERS", "3")
    assert default_workers(10) == 3 and default_workers(2) == 2  # never more processes than jobs
    monkeypatch.setenv("REPRO_WORKERS", "0")
    with pytest.raises(ConfigError, match="REPRO_WORKERS=0"):
        default_workers(4)


def test_runs_trained_in_worker_processes_match_one_trained_here_and_are_loaded_from_the_cache(isolated, monkeypatch):
    import os

    import torch

    runs = [load_run_config(REPO / "configs" / "shakespeare_tiny.yaml", [*TINY, f"train.seed={seed}"]) for seed in (0, 1)]
    monkeypatch.setenv("REPRO_WORKERS", "2")
    monkeypatch.delenv("REPRO_THREADS", raising=False)  # unpinned, each worker takes its share of the cores
    loaded, _ = train_runs(runs)
    assert loaded.cached  # trained in a worker, loaded here from the cache
    # the same run trained in this process, with the thread count a worker had, is bit-identical
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        here = train_run(load_run_config(REPO / "configs" / "shakespeare_tiny.yaml",
                                         [*TINY, "train.seed=0", f"out_dir={isolated / 'here'}"]))
    finally:
        torch.set_num_threads(threads)
    for (name, a), b in zip(loaded.model.state_dict().items(), here.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_small_gpt_beats_the_unigram_baseline_on_shakespeare(isolated):
    """A cut-down version of the engine's end-to-end proof (configs/shakespeare_tiny.yaml)."""
    overrides = ["model.n_layer=2", "model.d_model=64", "model.n_head=4", "data.block_size=64",
                 "train.steps=150", "train.progress=false"]
    result = train_run(load_run_config(REPO / "configs" / "shakespeare_tiny.yaml", overrides))
    assert result.summary["val_loss"] < result.summary["unigram_val_loss"] - 0.5, result.summary


def test_cli_train_then_generate(isolated, capsys, monkeypatch):
    from repro.data import tasks

    # `repro eval --file` registers its task: keep it out of the registry other tests walk
    monkeypatch.setattr(tasks, "_REGISTRY", dict(tasks._REGISTRY))
    out = isolated / "run"
    args = ["train", str(REPO / "configs" / "shakespeare_tiny.yaml"), "--out-dir", str(out)]
    for override in TINY:
        args += ["--set", override]
    assert main(args) == 0
    assert "validation loss" in capsys.readouterr().out
    assert main(["generate", str(out), "--prompt", "ROMEO:", "--max-new-tokens", "12"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.strip()) > len("ROMEO:")
    report = isolated / "eval.json"
    assert main(["eval", str(out), "--scenario", "tinyshakespeare_ppl", "--limit", "5", "--output", str(report)]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert json.loads(report.read_text())["metrics"]["perplexity"]["value"] > 1
    assert main(["eval", str(out), "--scenario", "sst3"]) == 2  # unknown scenario: one clear line
    assert "sst2" in capsys.readouterr().err
    # a user's own multiple-choice file, scored without writing Python
    items = isolated / "items.jsonl"
    items.write_text("\n".join(json.dumps(row) for row in [
        {"question": "ROMEO: Is it day?", "choices": ["yes", "no"], "label": "no"},
        {"question": "What is two plus two?", "choices": ["three", "four", "five"], "label": 1, "context": "Count."},
        {"question": "Who speaks?", "choices": ["Romeo", "Juliet"], "label": 0, "split": "train"},
    ]) + "\n")
    scored = isolated / "items.json"
    assert main(["eval", str(out), "--file", str(items), "--shots", "1", "--output", str(scored)]) == 0
    assert "file:items" in capsys.readouterr().out
    result = json.loads(scored.read_text())
    assert result["n"] == 2 and {r["uid"] for r in result["per_item"]} == {"test:0", "test:1"}
    items.write_text('{"question": "q", "choices": ["a", "b"], "label": 2}\n')
    assert main(["eval", str(out), "--file", str(items)]) == 2
    assert "items.jsonl:1: label must be a choice's index" in capsys.readouterr().err
    # the HELM-style core on this run alone: every core scenario scored, written, rendered
    results = isolated / "results"
    assert main(["helm", "--scale", "smoke", "--no-bases", "--model", f"tiny={out}", "--limit", "4",
                 "--exam-limit", "2", "--root", str(results)]) == 0
    record = json.loads((results / "helm" / "smoke.json").read_text())
    assert set(record["models"]["tiny"]["scenarios"]) == {c["name"] for c in record["core"]}
    assert record["models"]["tiny"]["scenarios"]["sst2"]["n"] == 4
    assert "HELM-style core — smoke scale" in render(results).read_text()
    assert main(["helm", "--scale", "smoke", "--no-bases"]) == 2  # nothing to score: one clear line
    assert "--model" in capsys.readouterr().err
    # a paper's tuned models, found in the artifact cache by name
    import shutil

    cache = isolated / "artifacts"
    shutil.copytree(out, cache / "flan_tiny_s1-0123456789abcdef")
    (cache / "flan_tiny_s1-0123456789abcdef" / "done.json").write_text("{}")
    monkeypatch.setenv("REPRO_ARTIFACTS", str(cache))
    assert main(["helm", "--scale", "smoke", "--no-bases", "--trained", "flan_*", "--limit", "2",
                 "--exam-limit", "1", "--root", str(results)]) == 0
    assert set(json.loads((results / "helm" / "smoke.json").read_text())["models"]) == {"flan_tiny/s1"}
    assert main(["helm", "--scale", "smoke", "--no-bases", "--trained", "t0_*"]) == 2
    assert "no finished model with a tokenizer" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.learning_rate=1", "unknown train field 'learning_rate'"),
        ("preset=gpt5", "unknown preset 'gpt5'"),
        ("data.dataset=wikitext3", "wikitext3"),
        ("model.positions=relative", "positions='relative' is not one of"),
    ],
)
def test_bad_config_is_one_clear_error_line(isolated, override, message):
    proc = subprocess.run(
        [sys.executable, "-m", "repro_cli", "train", str(REPO / "configs" / "shakespeare_tiny.yaml"),
         "--set", override, "--set", "train.steps=1", "--out-dir", str(isolated / "bad")],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("repro: error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_config_file_is_a_clear_error(capsys):
    assert main(["train", "no/such/config.yaml"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_full_disk_is_one_clear_error_line(isolated, monkeypatch, capsys):
    import errno

    import repro.train

    def no_space(obj, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(repro.train.torch, "save", no_space)
    args = ["train", str(REPO / "configs" / "shakespeare_tiny.yaml"), "--out-dir", str(isolated / "full")]
    for override in [*TINY, "train.steps=2"]:
        args += ["--set", override]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "free disk space" in err[0]
    assert not list((isolated / "full").glob(".*tmp*")), "a partial checkpoint was left behind"


def test_unwritable_output_directory_via_cli(isolated, capsys):
    blocker = isolated / "a_file"
    blocker.write_text("x")
    args = ["train", str(REPO / "configs" / "shakespeare_tiny.yaml"), "--out-dir", str(blocker / "run")]
    for override in [*TINY, "train.steps=2"]:
        args += ["--set", override]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not writable" in err[0]


def test_train_once_trains_once_and_keeps_its_record_with_the_wall_time(tmp_path):
    calls = []
    first = train_once(tmp_path, lambda: calls.append(1) or {"loss": 1.5})
    again = train_once(tmp_path, lambda: calls.append(2) or {"loss": 9.0})
    assert calls == [1] and again == first and first["loss"] == 1.5 and first["seconds"] >= 0


def test_a_reader_that_closes_the_pipe_is_not_an_error():
    """`repro presets | head`: the reader may exit before repro writes. Here the read end is closed
    before repro starts, so every write (and the final flush) meets a closed pipe; repro must still
    exit 0 without a traceback. Buffered stdout, as in a plain shell: the small output then reaches the
    pipe only at the final flush (PYTHONUNBUFFERED would hide that case)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-m", "repro_cli", "presets"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, cwd=REPO, env=env, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr
