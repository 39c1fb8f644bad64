"""harness.results: atomic writes that keep every replaced run in history, schema validation
with field-naming errors, provenance helpers, and every committed results file valid."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from harness import claims as C
from harness import metrics as M
from harness import results as R

REPO = Path(__file__).resolve().parents[1]


def make_record(**overrides) -> R.RunRecord:
    measured = {"acc_big": M.accuracy([1, 1, 1, 0, 1, 1]), "acc_small": M.accuracy([0, 1, 0, 0, 1, 0])}
    claim = C.Claim("G2-C1", "Bigger is better.", "Table 3", "gpt2_radford2019", C.greater("acc_big", "acc_small"))
    fields = dict(
        paper="gpt2_radford2019", scale="smoke", seeds=[0, 1],
        git={"sha": "0123456789abcdef0123456789abcdef01234567", "dirty": False},
        environment={"python": "3.11.7", "torch": "2.13.0", "platform": "Linux", "device": "cpu", "threads": 2,
                     "cpu": "test cpu"},
        started="2025-01-01T00:00:00Z", finished="2025-01-01T00:00:42.5Z", wall_time_s=42.5,
        configs={"model": {"layers": 2, "d_model": 64}}, metrics=measured,
        reported=[{"id": "lambada_acc_117m", "value": 45.99, "metric": "acc", "table_figure": "Table 3",
                   "verified": True, "source": "paper"}],
        claims=C.check_claims([claim], measured), figures=["results/figures/gpt2.png"], notes="test")
    fields.update(overrides)
    return R.RunRecord(**fields)


def test_record_round_trip_and_configs_hash():
    rec = make_record()
    d = rec.to_dict()
    R.validate_run(d)
    assert d["configs_hash"] == R.configs_hash({"model": {"d_model": 64, "layers": 2}})  # key order irrelevant
    assert R.RunRecord.from_dict(json.loads(json.dumps(d))).to_dict() == d
    assert d["metrics"]["acc_big"]["ci_low"] <= d["metrics"]["acc_big"]["value"]


def test_write_twice_keeps_the_first_in_history(tmp_path):
    first = make_record()
    path = R.write_run(first, root=tmp_path)
    assert path == tmp_path / "smoke" / "gpt2_radford2019.json"
    second = make_record(finished="2025-01-02T00:00:00Z", notes="second run",
                         git={"sha": "fedcba9876543210fedcba9876543210fedcba98", "dirty": True})
    assert R.write_run(second, root=tmp_path) == path
    history = R.history_of(tmp_path, "smoke", "gpt2_radford2019")
    assert [p.name for p in history] == ["20250101T000042_0123456789ab.json.gz"]
    assert R.read_archived(history[0]) == json.loads(json.dumps(first.to_dict()))
    assert R.read_run(path).notes == "second run"
    R.validate_run(json.loads(path.read_text()))
    R.validate_run(R.read_archived(history[0]))
    # same finished + sha again: a new name, never an overwrite
    R.write_run(make_record(notes="third"), root=tmp_path)
    R.write_run(make_record(notes="fourth"), root=tmp_path)
    names = [p.name for p in R.history_of(tmp_path, "smoke", "gpt2_radford2019")]
    assert len(names) == 3 and len(set(names)) == 3
    # rewriting identical content archives nothing; no temporary files are left behind
    R.write_run(make_record(notes="fourth"), root=tmp_path)
    assert len(R.history_of(tmp_path, "smoke", "gpt2_radford2019")) == 3
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert set(R.latest_runs(tmp_path, "smoke")) == {"gpt2_radford2019"}


def test_failed_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = R.write_run(make_record(), root=tmp_path)
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        R.write_run(make_record(notes="never lands"), root=tmp_path)
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_schema_rejects_missing_claims_and_names_the_field(tmp_path):
    d = make_record().to_dict()
    del d["claims"]
    with pytest.raises(R.ResultsValidationError, match=r"claims: 'claims' is a required property"):
        R.validate_run(d)
    bad = copy.deepcopy(make_record().to_dict())
    bad["claims"][0]["status"] = "probably"
    bad["metrics"]["acc_big"]["n"] = -1
    with pytest.raises(R.ResultsValidationError) as err:
        R.validate_run(bad)
    assert "claims[0].status" in str(err.value) and "metrics.acc_big.n" in str(err.value)
    with pytest.raises(R.ResultsValidationError):
        R.write_run(d, root=tmp_path)  # invalid records are never written
    assert not (tmp_path / "smoke").exists() or not list((tmp_path / "smoke").glob("*.json"))


def test_unsafe_names_are_refused(tmp_path):
    with pytest.raises(R.ResultsValidationError):
        R.write_run(make_record(paper="../escape"), root=tmp_path)


def test_provenance_helpers(tmp_path):
    info = R.git_info()
    assert set(info) == {"sha", "dirty"}
    assert R.git_info(tmp_path) == {"sha": "unknown", "dirty": None}  # not a checkout
    env = R.environment_info()
    assert {"python", "torch", "platform", "device", "threads", "cpu"} <= set(env)
    rec = R.RunRecord.start("gpt2_radford2019", "smoke", [0], {"x": 1}).finish()
    assert rec.wall_time_s >= 0 and rec.git == info
    R.validate_run(rec)


def test_schema_is_valid_draft_2020_12():
    from jsonschema import Draft202012Validator

    schema = R.load_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"].endswith("2020-12/schema")


def _committed_results() -> list[Path]:
    return sorted(p for scale in ("smoke", "cpu", "gpu") for p in (REPO / "results" / scale).glob("*.json"))


@pytest.mark.parametrize("path", _committed_results() or [None], ids=lambda p: p.name if p else "none-yet")
def test_committed_results_files_match_the_schema(path):
    if path is None:
        pytest.skip("no results/{smoke,cpu,gpu}/*.json yet")
    R.validate_run(json.loads(path.read_text(encoding="utf-8")), source=str(path.relative_to(REPO)))


def test_a_non_finite_number_is_named_and_nothing_is_written(tmp_path):
    record = make_record(configs={"runs": [{"size": {"target_loss": float("inf")}}]})
    with pytest.raises(ValueError, match=r"configs\.runs\[0\]\.size\.target_loss = inf"):
        R.write_run(record, root=tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_configs_keep_an_unset_bound_as_a_string():
    configs = {"runs": [{"size": {"target_loss": float("inf"), "lr": 1e-3}}], "betas": (0.0, 2.0)}
    assert R.json_configs(configs) == {"runs": [{"size": {"target_loss": "inf", "lr": 1e-3}}], "betas": [0.0, 2.0]}
