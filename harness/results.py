"""Results store: one JSON file per (scale, paper), written atomically, never silently replaced.

Layout under ``root`` (``results/`` by default)::

    <scale>/<paper>.json                                  the latest run
    history/<scale>/<paper>/<finished>_<sha12>.json.gz    every run it replaced (gzip: a cpu
                                                          record holds per-item ids, ~5 MB as text)

``write_run`` validates the record against ``harness/schema/results.schema.json``, copies the file
it is about to replace into history (via a temporary file linked into place, so an existing history
file is never overwritten), then moves the new file into place with ``os.replace``. At every
moment the latest path holds either the old or the new complete file.

``RunRecord.start(...)`` captures git and environment; ``record.finish()`` stamps the end time.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import json
import math
import os
import platform
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.atomic import fsync_path as _fsync_dir
from repro.config import InputError

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "ResultsValidationError",
    "RunRecord",
    "configs_hash",
    "environment_info",
    "git_info",
    "history_of",
    "read_archived",
    "latest_runs",
    "load_schema",
    "read_results_json",
    "read_run",
    "run_path",
    "utc_now",
    "validate_run",
    "write_run",
]

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "results.schema.json"
_REPO_ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Provenance


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def git_info(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """{"sha": HEAD commit, "dirty": uncommitted changes?}; sha "unknown" and dirty None outside git."""
    where = Path(cwd) if cwd is not None else _REPO_ROOT
    sha = _git(["rev-parse", "HEAD"], where)
    if sha is None or not re.fullmatch(r"[0-9a-f]{7,64}", sha.strip()):
        return {"sha": "unknown", "dirty": None}
    # Uncommitted results/ files are this suite's own outputs, not code: they don't make a run dirty.
    status = _git(["status", "--porcelain", "--", ".", ":(exclude)results"], where)
    return {"sha": sha.strip(), "dirty": None if status is None else bool(status.strip())}


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def environment_info() -> dict[str, Any]:
    """Python, torch, platform, device, intra-op threads, CPU and default precision, as the run saw them."""
    info: dict[str, Any] = {"python": platform.python_version(), "torch": None, "platform": platform.platform(),
                            "device": "cpu", "threads": None,
                            "cpu": f"{_cpu_name()} ({os.cpu_count() or '?'} logical cores)"}
    try:
        import torch
    except ImportError:
        return info
    from repro.precision import arithmetic, resolve_precision

    info["torch"] = torch.__version__
    info["threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        info["device"] = f"cuda: {torch.cuda.get_device_name(0)}"
        info["cuda"] = torch.version.cuda
    # What "auto" meant for this run's training and scoring (bf16 autocast or fp32).
    info["precision"] = resolve_precision("auto", "cuda" if torch.cuda.is_available() else "cpu")
    info["arithmetic"] = arithmetic()
    return info


def configs_hash(configs: Mapping[str, Any]) -> str:
    """sha256 of the configs as canonical JSON (sorted keys, no whitespace), prefixed "sha256:"."""
    blob = json.dumps(configs, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------------------------
# The record


def _metric_dict(m: Any) -> dict[str, Any] | None:
    if m is None:  # a metric this scale does not measure
        return None
    return m.to_dict() if hasattr(m, "to_dict") else dict(m)


@dataclass
class RunRecord:
    paper: str
    scale: str
    seeds: list[int]
    git: dict[str, Any]
    environment: dict[str, Any]
    started: str
    finished: str
    wall_time_s: float
    configs: dict[str, Any]
    configs_hash: str = ""
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    reported: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    notes: str = ""
    extra: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # hash what is stored, so the hash can always be recomputed from the file
        if not self.configs_hash:
            self.configs_hash = configs_hash(self.configs)
        self.metrics = {k: _metric_dict(v) for k, v in self.metrics.items()}

    @classmethod
    def start(cls, paper: str, scale: str, seeds: Sequence[int], configs: Mapping[str, Any],
              **kw: Any) -> RunRecord:
        """A record stamped now with git and environment info; call ``finish()`` at the end."""
        now = utc_now()
        return cls(paper=paper, scale=scale, seeds=[int(s) for s in seeds], git=git_info(),
                   environment=environment_info(), started=now, finished=now, wall_time_s=0.0,
                   configs=dict(configs), **kw)

    def finish(self) -> RunRecord:
        self.finished = utc_now()
        self.wall_time_s = max(0.0, (_parse_time(self.finished) - _parse_time(self.started)).total_seconds())
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["metrics"] = {k: _metric_dict(v) for k, v in self.metrics.items()}
        if d["extra"] is None:
            del d["extra"]
        order = ["schema_version", "paper", "scale", "seeds", "git", "environment", "started", "finished",
                 "wall_time_s", "configs", "configs_hash", "metrics", "reported", "claims", "figures", "notes"]
        return {k: d[k] for k in order + [k for k in d if k not in order]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunRecord:
        return cls(**{k: v for k, v in d.items()})


def _parse_time(ts: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))


# --------------------------------------------------------------------------------------------
# Validation


class ResultsValidationError(InputError):
    """A results file does not match the schema; the message names every offending field."""


_VALIDATOR = None


def load_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as f:
        return json.load(f)


def _validator():
    global _VALIDATOR
    if _VALIDATOR is None:
        from jsonschema import Draft202012Validator

        schema = load_schema()
        Draft202012Validator.check_schema(schema)
        _VALIDATOR = Draft202012Validator(schema)
    return _VALIDATOR


def _field_path(error: Any) -> str:
    parts = [str(p) if isinstance(p, str) else f"[{p}]" for p in error.absolute_path]
    path = ".".join(parts).replace(".[", "[")
    if error.validator == "required":  # point at the missing field itself, not its parent
        missing = re.search(r"'([^']+)' is a required property", error.message)
        if missing:
            path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path or "<root>"


def validate_run(data: Mapping[str, Any] | RunRecord, source: str = "run record") -> None:
    """Raise ResultsValidationError listing each field that violates the schema."""
    if isinstance(data, RunRecord):
        data = data.to_dict()
    errors = sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = [f"  {_field_path(e)}: {e.message}" for e in errors[:20]]
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ResultsValidationError(f"{source} does not match {SCHEMA_PATH.name} "
                                     f"(schema_version {SCHEMA_VERSION}):\n" + "\n".join(lines) + more)


# --------------------------------------------------------------------------------------------
# Atomic files


def _temp_file(directory: Path, data: bytes, stem: str) -> Path:
    """Write `data` to a fresh, fsynced temporary file in `directory` (same filesystem as the
    target, so the final rename is atomic)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _place_new(tmp: Path, target: Path) -> bool:
    """Move `tmp` to `target` only if `target` does not exist; False if it does."""
    try:
        os.link(tmp, target)  # atomic and refuses to overwrite
    except FileExistsError:
        return False
    except OSError:  # filesystems without hard links: check-then-rename (single writer assumed)
        if target.exists():
            return False
        os.replace(tmp, target)
        return True
    tmp.unlink()
    return True


def _nonfinite(data: Any, path: str = "") -> list[str]:
    """Where `data` holds inf or nan, as JSON paths (`metrics.x.ci_high`)."""
    if isinstance(data, float) and not math.isfinite(data):
        return [f"{path} = {data}"]
    if isinstance(data, Mapping):
        return [p for k, v in data.items() for p in _nonfinite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(data, (list, tuple)):
        return [p for i, v in enumerate(data) for p in _nonfinite(v, f"{path}[{i}]")]
    return []


def json_configs(configs: Any) -> Any:
    """Configs as a results file can hold them: an unset bound written inf in a config dataclass
    (a base's `target_loss`) becomes the string "inf"; JSON has no inf. Metrics get no such pass:
    a non-finite metric is a bug to find (`_encode` names it)."""
    if isinstance(configs, float) and not math.isfinite(configs):
        return str(configs)
    if isinstance(configs, Mapping):
        return {k: json_configs(v) for k, v in configs.items()}
    if isinstance(configs, (list, tuple)):
        return [json_configs(v) for v in configs]
    return configs


def _encode(data: Mapping[str, Any]) -> bytes:
    try:
        return (json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    except ValueError:
        bad = _nonfinite(data)
        if not bad:
            raise
    # JSON has no inf or nan: name the values, so the code that made them can be found
    raise ValueError(f"a results record must hold finite numbers; {len(bad)} are not: {'; '.join(bad[:5])}")


def _history_name(previous: Mapping[str, Any] | None) -> str:
    finished = str((previous or {}).get("finished") or "unknown-time")
    stamp = re.sub(r"[^0-9A-Za-z]", "", finished.split(".")[0].replace("+00:00", "Z")) or "unknown-time"
    sha = str(((previous or {}).get("git") or {}).get("sha") or "unknown")[:12]
    return f"{stamp}_{re.sub(r'[^0-9A-Za-z]', '', sha) or 'unknown'}"


def _archive(current: Path, history_dir: Path) -> Path:
    """Copy the file at `current`, gzipped, into history under a name no other file has."""
    data = current.read_bytes()
    try:
        previous = json.loads(data)
    except ValueError:  # a corrupt file is still someone's run: keep it, name it by mtime
        previous = None
    base = _history_name(previous if isinstance(previous, Mapping) else None)
    # mtime=0: the same record always compresses to the same bytes
    tmp = _temp_file(history_dir, gzip.compress(data, mtime=0), base)
    try:
        for i in range(1000):
            target = history_dir / (f"{base}.json.gz" if i == 0 else f"{base}-{i}.json.gz")
            if _place_new(tmp, target):
                _fsync_dir(history_dir)
                return target
        raise FileExistsError(f"could not find a free history name for {base} in {history_dir}")
    finally:
        tmp.unlink(missing_ok=True)


def _safe_component(name: str, what: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise ValueError(f"{what} {name!r} cannot be used as a file name (letters, digits, _ . - only)")
    return name


def run_path(root: str | os.PathLike[str], scale: str, paper: str) -> Path:
    return Path(root) / _safe_component(scale, "scale") / f"{_safe_component(paper, 'paper')}.json"


def write_run(record: RunRecord | Mapping[str, Any], root: str | os.PathLike[str] = "results") -> Path:
    """Validate and write ``<root>/<scale>/<paper>.json`` atomically; returns its path.

    If that file exists with different content, it is first kept as
    ``<root>/history/<scale>/<paper>/<finished>_<sha12>.json`` (suffixed -1, -2, ... on a clash),
    so no run is ever lost. Rewriting identical bytes archives nothing."""
    data = record.to_dict() if isinstance(record, RunRecord) else dict(record)
    validate_run(data)
    target = run_path(root, data["scale"], data["paper"])
    payload = _encode(data)
    tmp = _temp_file(target.parent, payload, target.stem)
    try:
        if target.exists() and target.read_bytes() != payload:
            _archive(target, Path(root) / "history" / data["scale"] / data["paper"])
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)
    return target


def read_results_json(path: str | os.PathLike[str]) -> dict:
    """A results file's JSON, or one line naming the file, what is wrong and the fix."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        what = "is empty" if not Path(path).read_bytes().strip() else f"is not complete JSON ({e.msg} at line {e.lineno})"
        raise ResultsValidationError(f"results file {path} {what}; re-run its paper (repro run PAPER --scale S) "
                                     f"or restore it (git checkout {path})") from None
    except UnicodeDecodeError:
        raise ResultsValidationError(f"results file {path} is not UTF-8 text; restore it (git checkout {path})") from None
    if not isinstance(data, dict):
        raise ResultsValidationError(f"results file {path} holds a {type(data).__name__}, not a run record")
    return data


def read_run(path: str | os.PathLike[str], validate: bool = True) -> RunRecord:
    """Load a results file (validated against the schema by default)."""
    data = read_results_json(path)
    if validate:
        validate_run(data, source=str(path))
    return RunRecord.from_dict(data)


def latest_runs(root: str | os.PathLike[str] = "results", scale: str = "smoke") -> dict[str, RunRecord]:
    """{paper: record} for every ``<root>/<scale>/*.json``."""
    directory = Path(root) / _safe_component(scale, "scale")
    return {p.stem: read_run(p) for p in sorted(directory.glob("*.json"))}


def history_of(root: str | os.PathLike[str], scale: str, paper: str) -> list[Path]:
    """Archived runs of one paper at one scale, oldest name first (read them with `read_archived`;
    plain .json files from before archives were gzipped are listed too)."""
    directory = Path(root) / "history" / _safe_component(scale, "scale") / _safe_component(paper, "paper")
    return sorted([*directory.glob("*.json"), *directory.glob("*.json.gz")])


def read_archived(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The record in a history file, gzipped or not."""
    data = Path(path).read_bytes()
    return json.loads(gzip.decompress(data) if str(path).endswith(".gz") else data)
