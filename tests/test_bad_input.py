"""Bad input, tried as a new user would: each ends in one line that names the file or field and
the fix, with exit status 2 (1 is `repro regress`'s "regression found"), and nothing half-written."""

import json
from pathlib import Path

import pytest

from repro_cli.main import main

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "shakespeare_tiny.yaml"
TINY = ["model.n_layer=1", "model.d_model=32", "model.n_head=2", "data.vocab_size=300", "data.block_size=32",
        "train.steps=2", "train.batch_size=4", "train.progress=false"]


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("repro: error: "), err
    return err[0]


def train(config, out: Path, *overrides: str) -> int:
    args = ["train", str(config), "--out-dir", str(out)]
    for override in [*TINY, *overrides]:
        args += ["--set", override]
    return main(args)


@pytest.mark.parametrize("text, message", [
    ("- a\n- b\n", "must be a YAML mapping"),
    ("data: 5\n", "data must be a mapping"),
    ("train: {lr: [0.001]}\n", "train.lr must be a number, got [0.001]"),
    ("train: {progress: maybe}\n", "train.progress must be true or false"),
    ("model: 3\n", "model must be a mapping"),
])
def test_a_malformed_config_file_is_one_line(isolated, capsys, text, message):
    config = isolated / "bad.yaml"
    config.write_text(text)
    assert main(["train", str(config), "--out-dir", str(isolated / "run")]) == 2
    assert message in one_error_line(capsys)


def test_a_config_that_is_not_utf8_is_one_line(isolated, capsys):
    config = isolated / "latin1.yaml"
    config.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert main(["train", str(config)]) == 2
    assert "not UTF-8" in one_error_line(capsys)


@pytest.mark.parametrize("override, message", [
    ("train.steps=0", "train.steps must be at least 1, got 0"),
    ("train.batch_size=0", "train.batch_size must be at least 1, got 0"),
    ("train.lr=-1", "train.lr must be positive"),
])
def test_an_impossible_training_value_is_one_line(isolated, capsys, override, message):
    assert train(CONFIG, isolated / "run", override) == 2
    assert message in one_error_line(capsys)


def test_a_bad_model_config_writes_nothing(isolated, capsys):
    out = isolated / "run"
    assert train(CONFIG, out, "model.n_head=3") == 2  # 32 is not a multiple of 3
    assert "n_head" in one_error_line(capsys)
    assert not (out / "tokenizer").exists() and not (out / "config.json").exists()


def test_a_finished_run_directory_of_another_config_is_refused(isolated, capsys):
    out = isolated / "run"
    assert train(CONFIG, out) == 0
    capsys.readouterr()
    assert train(CONFIG, out) == 0  # the same config: loaded, as the artifact cache does
    assert "loaded from the artifact cache" in capsys.readouterr().out
    assert train(CONFIG, out, "train.lr=1e-4") == 2
    line = one_error_line(capsys)
    assert "holds a finished run of another configuration" in line and str(out) in line


def test_a_truncated_checkpoint_names_its_path(isolated, capsys):
    out = isolated / "run"
    assert train(CONFIG, out) == 0
    capsys.readouterr()
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    assert main(["generate", str(out), "--prompt", "ROMEO:"]) == 2
    line = one_error_line(capsys)
    assert str(checkpoint) in line and "truncated or damaged" in line


@pytest.mark.parametrize("content, message", [("", "is empty"), ('{"paper": "gpt2", "metr', "is not complete JSON")])
def test_a_truncated_results_file_names_the_file(tmp_path, capsys, content, message):
    baseline, fresh = tmp_path / "smoke", tmp_path / "fresh"
    baseline.mkdir()
    fresh.mkdir()
    (baseline / "gpt2.json").write_text(content)
    (fresh / "gpt2.json").write_text(json.dumps({"paper": "gpt2"}))
    assert main(["regress", "--baseline", str(baseline), "--fresh", str(fresh)]) == 2
    line = one_error_line(capsys)
    assert str(baseline / "gpt2.json") in line and message in line


def test_a_baseline_not_named_after_a_scale_says_so(tmp_path, capsys):
    baseline = tmp_path / "inj"
    baseline.mkdir()
    assert main(["regress", "--baseline", str(baseline)]) == 2
    line = one_error_line(capsys)
    assert "is not named after a scale" in line and "--fresh" in line


def test_scenarios_are_listed_and_an_unmatched_pattern_is_one_line(capsys):
    from harness.scenarios import SCENARIOS

    assert main(["scenarios", "agieval/lsat-ar"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines()[1:] if line.startswith("agieval/")]
    assert listed == [n for n in SCENARIOS if "agieval/lsat-ar" in n] and len(listed) == 5
    assert main(["scenarios", "no-such-scenario"]) == 2
    assert "no scenario matches" in one_error_line(capsys)
