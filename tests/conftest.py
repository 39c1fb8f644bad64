"""Shared test setup: never touch the network, find the offline data mirror, quiet transformers."""

import os
from pathlib import Path

import pytest

# Hub look-ups hang ~45 s without a network; every test runs offline.
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("REPRO_DATA", str(Path(__file__).resolve().parents[1].parent / "shared" / "data"))
# Tests compare runs bit for bit: every training uses all cores, as torch does by default, instead
# of the cores that happen to be free (repro.train.cpu_threads), which would vary with the load.
os.environ.setdefault("REPRO_THREADS", str(os.cpu_count() or 1))


def use_scratch_cache(mp: pytest.MonkeyPatch, root: Path) -> Path:
    """Point the artifact and tokenizer caches under `root`: a test never reads or fills the user's."""
    mp.setenv("REPRO_ARTIFACTS", str(root / "artifacts"))
    mp.setenv("REPRO_CACHE", str(root / "cache"))
    return root


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """A scratch artifact cache for one test."""
    return use_scratch_cache(monkeypatch, tmp_path)
