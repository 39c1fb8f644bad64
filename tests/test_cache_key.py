"""The artifact cache's key: configs, a data fingerprint and the source of every repository module
the stage's code imports, so an edited batcher never gets a model trained by the old one."""

import sys
from pathlib import Path

import pytest
import torch

from repro import pipeline
from repro.pipeline import (
    REPO_ROOT,
    cached_stage,
    clear_code_cache,
    code_files,
    fingerprint,
    module_closure,
    stage_key,
)

BATCHERS = "def windows(tokens, size):\n    return [tokens[i : i + size] for i in range(0, len(tokens), size)]\n"


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A package outside the repository: a stage whose batcher lives in another module, and an
    unrelated module beside them."""
    package = tmp_path / "toy_stage_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "batchers.py").write_text(BATCHERS)
    (package / "stage.py").write_text("from .batchers import windows\n\n\ndef build(tokens):\n"
                                      "    return windows(tokens, 4)\n")
    (package / "unrelated.py").write_text("ANSWER = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    # the engine's own files are edited by others while tests run; this test is about the named code
    monkeypatch.setattr(pipeline, "ENGINE_MODULES", ())
    clear_code_cache()
    yield package
    clear_code_cache()


def key(root: Path) -> str:
    clear_code_cache()  # the fingerprints are cached per process: edits are seen after a clear
    return stage_key({"steps": 10}, code=["toy_stage_pkg.stage"], root=root)


def test_editing_a_batcher_the_stage_imports_changes_the_key(toy):
    before = key(toy.parent)
    (toy / "batchers.py").write_text(BATCHERS.replace("len(tokens), size", "len(tokens) - size + 1, 1"))
    assert key(toy.parent) != before


def test_editing_comments_docstrings_or_layout_keeps_the_key(toy):
    before = key(toy.parent)
    (toy / "batchers.py").write_text('"""Batchers."""\n\n# why windows: the model sees whole blocks\n'
                                     + BATCHERS.replace(":\n", ':\n    """Cut into blocks."""\n\n', 1))
    assert key(toy.parent) == before
    (toy / "batchers.py").write_text(BATCHERS.replace("size)]", "size)][:1]"))  # code: a new key
    assert key(toy.parent) != before


def test_editing_a_module_the_stage_does_not_import_keeps_the_key(toy):
    before = key(toy.parent)
    (toy / "unrelated.py").write_text("ANSWER = 43\n")
    assert key(toy.parent) == before


def test_the_closure_follows_relative_imports_without_importing(toy):
    files = module_closure("toy_stage_pkg.stage", root=toy.parent)
    assert {f.name for f in files} == {"__init__.py", "stage.py", "batchers.py"}
    assert "toy_stage_pkg" not in sys.modules and "toy_stage_pkg.stage" not in sys.modules


def test_the_key_hashes_the_configs_and_the_data(toy):
    assert stage_key({"steps": 10}, code=(), root=toy.parent) != stage_key({"steps": 11}, code=(), root=toy.parent)
    assert stage_key({"a": 1, "b": 2}) == stage_key({"b": 2, "a": 1})
    assert stage_key({}, data=fingerprint([1, 2])) != stage_key({}, data=fingerprint([1, 3]))


def relative(files) -> set[str]:
    return {f.relative_to(REPO_ROOT).as_posix() for f in files}


def test_the_engine_closure_covers_what_trains_and_batches():
    pipeline_files = relative(module_closure("repro.pipeline"))
    assert {"repro/pipeline.py", "repro/train.py", "repro/model/transformer.py"} <= pipeline_files
    engine = relative(code_files())
    assert {"repro/pipeline.py", "repro/train.py", "repro/model/transformer.py", "repro/data/objectives.py"} <= engine
    assert all(f.endswith(".py") and not f.startswith(".") for f in engine)  # no installed packages, no venvs


def test_a_paper_closure_covers_its_shared_batchers_and_tasks():
    files = relative(module_closure("papers.gpt1"))
    assert {"papers/gpt1.py", "papers/glue.py", "repro/pipeline.py"} <= files
    assert "repro/data/tasks.py" in relative(module_closure("papers.t5"))
    assert "papers/gpt3.py" not in files  # papers/__init__ imports the papers dynamically, not in the closure


def test_a_paper_key_leaves_out_the_code_that_only_reads_results():
    """Claims, figures and the report read finished measurements: editing a verdict rule keeps the
    cached models, while the metrics and scenarios that score them stay in the key."""
    files = {f.relative_to(REPO_ROOT).as_posix() for f in code_files(["papers.flan"])}
    assert {"harness/claims.py", "harness/plots.py", "harness/seeds.py"}.isdisjoint(files)
    assert {"papers/flan.py", "harness/metrics.py", "harness/scenarios.py", "repro/train.py"} <= files


def test_fingerprint_is_deterministic_and_sees_structure_types_and_values():
    ids = [[1, 2, 3], [4, 5]]
    assert fingerprint(ids) == fingerprint([[1, 2, 3], [4, 5]])
    assert fingerprint(ids) != fingerprint([[1, 2], [3, 4, 5]])
    assert fingerprint({"a": ids, "b": "x"}) == fingerprint({"b": "x", "a": ids})
    t = torch.arange(6)
    assert fingerprint(t) == fingerprint(torch.arange(6)) != fingerprint(t.float())
    assert fingerprint(t) != fingerprint(t.reshape(2, 3))
    assert fingerprint(torch.ones(3, dtype=torch.bfloat16)) != fingerprint(torch.ones(3))
    assert fingerprint([1, True]) != fingerprint([1, 1]) and fingerprint("1") != fingerprint(1)
    with pytest.raises(TypeError, match="cannot hash a value of type object"):
        fingerprint(object())


def test_a_cached_stage_builds_once_and_returns_the_stored_record(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path))
    calls = []

    def build(out: Path) -> dict:
        calls.append(out)
        (out / "model.pt").write_bytes(b"weights")
        return {"loss": 1.5}

    out, first = cached_stage("toy", {"steps": 10}, build, code=[__name__], data=fingerprint([1, 2]))
    again_out, again = cached_stage("toy", {"steps": 10}, lambda out: calls.append(out) or {"loss": 9.0},
                                    code=[__name__], data=fingerprint([1, 2]))
    assert calls == [out] and again_out == out and again == first
    assert first["loss"] == 1.5 and first["seconds"] >= 0 and (out / "model.pt").exists()
    assert out.parent == tmp_path and out.name.startswith("toy-")
    other, _ = cached_stage("toy", {"steps": 10}, lambda out: {"loss": 2.0}, code=[__name__], data=fingerprint([1, 3]))
    assert other != out  # other data: another artifact


def test_a_stage_that_writes_nothing_but_its_record_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path))
    out, record = cached_stage("scores_only", {}, lambda out: {"scores": [1, 0]}, code=())
    assert record["scores"] == [1, 0] and (out / "done.json").exists()
