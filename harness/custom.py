"""A user's own multiple-choice file as a harness task: `repro eval MODEL --file items.jsonl`.

One JSON object per line:

    {"question": "2 + 2 =", "choices": ["3", "4", "5"], "label": 1}
    {"question": "...", "choices": [...], "label": "the gold choice's text", "context": "optional passage"}
    {"question": "...", "choices": [...], "label": 0, "split": "train"}      # an exemplar for --shots

`label` is the gold choice's index or its text. Lines with `"split": "train"` are exemplars only
(never scored); every other line is scored. The task is scored like the built-in ones: rank
classification over the choices after "Answer:", accuracy with its interval, length-normalised
accuracy, calibration, and robustness through the same perturbations. (An lm-eval YAML task runs
through `repro-lm-eval --include_path DIR` instead, with lm-eval's own template logic.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repro.config import InputError
from repro.data.tasks import Task, Template, register

PROMPT = "{input}\nAnswer:"


def _record(row: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise InputError(f"{where}: a line must be a JSON object with question, choices and label")
    missing = [k for k in ("question", "choices", "label") if k not in row]
    if missing:
        raise InputError(f"{where}: missing {', '.join(missing)} (each line needs question, choices and label)")
    choices = row["choices"]
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise InputError(f"{where}: choices must be a list of at least two non-empty strings")
    label = row["label"]
    if isinstance(label, str):
        if label not in choices:
            raise InputError(f"{where}: label {label!r} is not one of the choices {choices}")
        label = choices.index(label)
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices):
        raise InputError(f"{where}: label must be a choice's index (0 to {len(choices) - 1}) or its text")
    context = row.get("context")
    text = f"{context}\n{row['question']}" if context else str(row["question"])
    return {"question": row["question"], "input": text, "choices": list(choices), "label": label}


def read_items(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """{"test": scored rows, "train": exemplar rows} from a JSONL file, or InputError naming the
    line and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no file {path}: pass a JSONL file of multiple-choice items (see `repro eval --help`)")
    splits: dict[str, list[dict[str, Any]]] = {"test": [], "train": []}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text; save it as UTF-8 JSONL") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not JSON ({e.msg}); each line holds one object") from None
        split = row.get("split", "test") if isinstance(row, dict) else "test"
        if split not in splits:
            raise InputError(f"{where}: split {split!r}; use 'train' for exemplars or leave it out")
        splits[split].append(_record(row, where))
    if not splits["test"]:
        raise InputError(f"{path} has no item to score (every line is an exemplar, or the file is empty)")
    return splits


def register_file_task(path: str | Path) -> str:
    """Register `path` as the task `file:STEM` (replacing an earlier one) and return its name."""
    splits = read_items(path)
    name = f"file:{Path(path).stem}"
    register(Task(
        name=name, dataset="", kind="multiple_choice", preprocess=dict,
        templates=(Template("default", PROMPT),), metrics=("acc",), cluster="custom", eval_split="test",
        exemplar_split="train" if splits["train"] else None, perturb_fields=("input",),
        loader=lambda split: splits[split], description=f"multiple-choice items from {path}",
    ), replace=True)
    return name
