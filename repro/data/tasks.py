"""Task and Mixture registry (seqio-like): the one place that says what a dataset *means*.

A :class:`Task` ties a resolver dataset (``repro.data.resolver``) to

* an **eval split** and an **exemplar split** that never coincide. Where the mirror holds a single
  split, both are slices of it in the ``"test[:-153]"`` / ``"test[-153:]"`` notation (tfds/HF
  style): the held-out slice is fixed, recorded in the task, and never scored. A task may instead
  take its exemplars from another file (AGIEval's published demonstrations);
* ``preprocess(example) -> record``: the canonical record every consumer sees. Fields by kind
  (all records also carry ``uid`` = ``"<split>:<row>"`` and ``input``, the text a model reads and
  perturbations alter):

  ===================  ===========================================================================
  multiple_choice      ``choices`` (verbalised labels), ``label`` (gold index)
  regression           ``choices`` (the buckets "0".."5"), ``label`` (nearest bucket), ``score``
  generation           ``target`` (gold continuation), ``references`` (all acceptable answers)
  perplexity           ``text`` (raw document: bytes and words are counted on it)
  preference           ``prefix_chosen``/``chosen``, ``prefix_rejected``/``rejected``
  ===================  ===========================================================================

* named prompt :class:`Template` s (the first is the default; classification tasks also carry a
  FLAN-style ``"options"`` variant that lists the classes after ``OPTIONS:``);
* ``kind``, ``metrics`` (names the harness computes) and ``cluster`` (FLAN/T0 task cluster, used to
  hold whole clusters out of instruction tuning).

A :class:`Mixture` samples training examples across tasks with examples-proportional rates capped
at K examples per task (T5 §3.5.2, FLAN: K = 3,000). Training draws from a task's exemplar split:
the eval split is never trained on.

Tasks are declared once, in the table at the bottom (``_declare``). The harness (``harness/
scenarios.py``) turns a task plus an adaptation (shots, template, seed, ...) into LM requests.
"""

from __future__ import annotations

import ast
import difflib
import math
import random
import re
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "KINDS",
    "Mixture",
    "Task",
    "Template",
    "agieval_parse_letter",
    "agieval_parse_math",
    "get_task",
    "list_tasks",
    "math_equal",
    "normalize_math_answer",
    "register",
    "unregister",
]

KINDS = frozenset({"multiple_choice", "generation", "perplexity", "preference", "regression"})
Record = dict[str, Any]
Text = str | Callable[[Mapping[str, Any]], str]  # a format string over record fields, or a function


# --------------------------------------------------------------------------------------------
# Templates


@dataclass(frozen=True)
class Template:
    """One way to phrase a task.

    ``prompt`` renders the item (a ``str.format`` string over record fields, or a function of the
    record). The answer a model should produce is ``verbalize.format(x)`` with ``x`` the gold
    choice (multiple choice / regression) or ``record["target"]`` (generation); the same string is
    appended to exemplars, and for rank classification each choice is verbalised the same way, so
    a k-shot prompt shows answers exactly as they are scored. Format strings may use the derived
    field ``{options_block}`` ("- a\\n- b" over the choices, for FLAN's OPTIONS suffix).
    """

    name: str
    prompt: Text
    verbalize: str = " {}"
    choices: tuple[str, ...] | None = None  # overrides the task's verbalisers (label i -> choices[i])
    # custom few-shot layout (AGIEval's numbered "Problem k." format): (exemplars, record) -> context
    assemble: Callable[[list[Record], Record], str] | None = None
    stop: tuple[str, ...] | None = None  # overrides the task's stop strings for generation
    stage2: str | None = None  # zero-shot chain of thought: the answer-extraction suffix (AGIEval)
    # a template that "turns the task around" (FLAN): the answer is this text over the record's
    # fields (e.g. write a review given its sentiment), not a choice; such templates train, never score
    target: Text | None = None

    def choice_list(self, record: Mapping[str, Any]) -> list[str]:
        return list(self.choices if self.choices is not None else record.get("choices", ()))

    def fields(self, record: Mapping[str, Any]) -> dict[str, Any]:
        options = self.choice_list(record)
        return {**record, "options_block": "\n".join(f"- {c}" for c in options)}

    def render(self, record: Mapping[str, Any]) -> str:
        if callable(self.prompt):
            return self.prompt(record)
        return string.Formatter().vformat(self.prompt, (), self.fields(record))

    def continuations(self, record: Mapping[str, Any]) -> list[str]:
        """What rank classification scores after the prompt, one per choice."""
        return [self.verbalize.format(c) for c in self.choice_list(record)]

    def answer(self, record: Mapping[str, Any]) -> str:
        """The gold answer as the model should write it (appended to exemplars)."""
        if self.target is not None:
            text = self.target(record) if callable(self.target) else self.target.format(**self.fields(record))
            return self.verbalize.format(text)
        if "label" in record and self.choice_list(record):
            return self.continuations(record)[int(record["label"])]
        return self.verbalize.format(record["target"])

    def placeholders(self) -> set[str]:
        if callable(self.prompt):
            return set()
        return {f for _, f, _, _ in string.Formatter().parse(self.prompt) if f}


# --------------------------------------------------------------------------------------------
# Splits and pools

_SLICE = re.compile(r"^(?P<base>[\w-]+)(?:\[(?P<start>-?\d*):(?P<stop>-?\d*)\])?$")


def parse_split(split: str) -> tuple[str, slice]:
    """``"test[:-153]"`` -> ("test", slice(None, -153)); a bare name is the whole split."""
    m = _SLICE.match(split)
    if not m:
        raise ValueError(f"bad split {split!r}: expected NAME or NAME[start:stop]")
    to_int = lambda s: int(s) if s not in (None, "") else None  # noqa: E731
    return m["base"], slice(to_int(m["start"]), to_int(m["stop"]))


class Pool(Sequence):
    """Canonical records of one (sliced) split, preprocessed lazily and cached.

    Large exemplar pools (SST-2 train: 67k rows) are only touched where sampled, so a k-shot run
    preprocesses k rows per item, not the whole split."""

    def __init__(self, task: Task, name: str, rows: Sequence[Mapping[str, Any]], positions: Sequence[int]):
        self.task, self.name, self._rows, self.positions = task, name, rows, list(positions)
        self._cache: dict[int, Record] = {}

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        row = self.positions[i]
        if row not in self._cache:
            record = dict(self.task.preprocess(dict(self._rows[row])))
            record["uid"] = f"{self.name}:{row}"
            self._cache[row] = record
        return self._cache[row]

    def uid(self, i: int) -> str:
        return f"{self.name}:{self.positions[i]}"

    def without(self, rows: set[int]) -> Pool:
        kept = Pool(self.task, self.name, self._rows, [p for p in self.positions if p not in rows])
        kept._cache = self._cache
        return kept


# --------------------------------------------------------------------------------------------
# Task


@dataclass(frozen=True, eq=False)
class Task:
    """A dataset with its preprocessing, templates, kind, metrics and cluster (see module doc)."""

    name: str
    dataset: str  # resolver name; "" with a `loader`
    kind: str
    preprocess: Callable[[dict[str, Any]], Record]
    templates: tuple[Template, ...]
    metrics: tuple[str, ...]
    cluster: str
    eval_split: str
    exemplar_split: str | None  # None: zero-shot only (or exemplars from `exemplar_source`)
    stop: tuple[str, ...] = ("\n",)
    max_gen_toks: int = 64
    exemplar_sep: str = "\n\n"
    perturb_fields: tuple[str, ...] = ()  # record fields a robustness perturbation rewrites
    # raw split -> raw examples, where a record is not one row (wikitext articles, PTB blocks)
    regroup: Callable[[Sequence[Mapping[str, Any]]], list[dict[str, Any]]] | None = None
    # canonical exemplars from another file (AGIEval's demonstrations); used instead of a split
    exemplar_source: Callable[[], list[Record]] | None = None
    exemplar_source_name: str = ""
    fixed_exemplars: bool = False  # take the first k exemplars in published order, never sample
    drop_eval_matching_exemplars: bool = False  # drop eval items whose `input` equals an exemplar's
    # (completion, record, template name) -> prediction; default: strip
    postprocess: Callable[[str, Record, str], str] | None = None
    # (prediction, record) -> correct; default: exact match against any reference
    is_correct: Callable[[str, Record], bool] | None = None
    scorer: str = "generate"  # generation only: "generate" (generate_until) or "greedy" (is_greedy)
    # split name -> raw rows; replaces the resolver (tests, procedural data)
    loader: Callable[[str], Sequence[Mapping[str, Any]]] | None = None
    description: str = ""
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind {self.kind!r} not in {sorted(KINDS)}")
        if not self.templates:
            raise ValueError(f"task {self.name!r}: at least one template")
        names = [t.name for t in self.templates]
        if len(set(names)) != len(names):
            raise ValueError(f"task {self.name!r}: duplicate template names {names}")
        if self.exemplar_split is not None:
            if self.exemplar_split == self.eval_split:
                raise ValueError(f"task {self.name!r}: exemplar split must differ from the eval split")
            (eb, es), (xb, xs) = parse_split(self.eval_split), parse_split(self.exemplar_split)
            if eb == xb and (es == slice(None) or xs == slice(None)):
                raise ValueError(f"task {self.name!r}: exemplars and eval items share split {eb!r}; "
                                 "slice it into disjoint parts")
        if self.scorer not in ("generate", "greedy"):
            raise ValueError(f"task {self.name!r}: scorer must be 'generate' or 'greedy'")

    # ---- templates

    def template(self, which: str | int = 0) -> Template:
        if isinstance(which, int):
            return self.templates[which]
        for t in self.templates:
            if t.name == which:
                return t
        raise KeyError(f"task {self.name!r} has no template {which!r}; it has {[t.name for t in self.templates]}")

    @property
    def template_names(self) -> list[str]:
        return [t.name for t in self.templates]

    def assemble(self, template: Template, exemplars: list[Record], record: Record) -> str:
        """Exemplars (prompt + gold answer each) then the item's prompt; leading newlines (the
        GPT-3 files' separators) are dropped so a zero-shot prompt starts with text."""
        if template.assemble is not None:
            return template.assemble(exemplars, record)
        parts = [template.render(e) + template.answer(e) for e in exemplars] + [template.render(record)]
        return self.exemplar_sep.join(parts).lstrip("\n")

    # ---- data

    def _rows(self, base: str) -> Sequence[Mapping[str, Any]]:
        if base not in self._cache:
            if self.loader is not None:
                rows = self.loader(base)
            else:
                from repro.data import resolver  # lazily: importing tasks must not load `datasets` data

                rows = resolver.load(self.dataset, base)
            self._cache[base] = self.regroup(rows) if self.regroup else rows
        return self._cache[base]

    def pool(self, split: str | None = None) -> Pool:
        """Canonical records of `split` (default: the eval split), honouring a ``[a:b]`` slice."""
        split = split or self.eval_split
        key = ("pool", split)
        if key not in self._cache:
            base, sl = parse_split(split)
            rows = self._rows(base)
            self._cache[key] = Pool(self, base, rows, range(len(rows))[sl])
        return self._cache[key]

    def exemplar_pool(self) -> Sequence[Record]:
        """Where k-shot exemplars come from: the exemplar split, or the task's exemplar source."""
        if self.exemplar_source is not None:
            if ("exemplars",) not in self._cache:
                self._cache[("exemplars",)] = self.exemplar_source()
            return self._cache[("exemplars",)]
        if self.exemplar_split is None:
            raise ValueError(f"task {self.name!r} has no exemplars (zero-shot only)")
        return self.pool(self.exemplar_split)

    def eval_pool(self) -> Pool:
        """The items that are scored: the eval split minus any item equal to an exemplar."""
        key = ("eval",)
        if key not in self._cache:
            pool = self.pool(self.eval_split)
            if self.exemplar_split is not None:
                ex = self.pool(self.exemplar_split)
                if ex.name == pool.name and set(ex.positions) & set(pool.positions):
                    raise ValueError(f"task {self.name!r}: exemplar slice overlaps the eval slice")
            if self.drop_eval_matching_exemplars:
                seen = {e["input"] for e in self.exemplar_pool()}
                clash = {pool.positions[i] for i in range(len(pool)) if pool[i]["input"] in seen}
                pool = pool.without(clash)
            self._cache[key] = pool
        return self._cache[key]

    def examples(self, split: str | None = None, limit: int | None = None) -> Iterator[Record]:
        """Canonical records of `split` (default: the scored eval items), in file order."""
        pool = self.eval_pool() if split is None else self.pool(split)
        for i in range(len(pool) if limit is None else min(limit, len(pool))):
            yield pool[i]

    @property
    def train_split(self) -> str | None:
        """What a training mixture draws from: the exemplar split (never the eval split)."""
        return self.exemplar_split

    def predict(self, completion: str, record: Record, template: str) -> str:
        return self.postprocess(completion, record, template) if self.postprocess else completion.strip()

    def correct(self, prediction: str, record: Record) -> bool:
        if self.is_correct is not None:
            return self.is_correct(prediction, record)
        return prediction.strip() in [r.strip() for r in record["references"]]

    def describe(self) -> dict[str, Any]:
        """What a result file records about the task."""
        exemplars = self.exemplar_source_name or self.exemplar_split
        return {"name": self.name, "dataset": self.dataset, "kind": self.kind, "cluster": self.cluster,
                "eval_split": self.eval_split, "exemplars": exemplars, "metrics": list(self.metrics),
                "templates": self.template_names}


# --------------------------------------------------------------------------------------------
# Registry

_REGISTRY: dict[str, Task] = {}


def register(task: Task, *, replace: bool = False) -> Task:
    if task.name in _REGISTRY and not replace:
        raise ValueError(f"task {task.name!r} is already registered")
    _REGISTRY[task.name] = task
    return task


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get_task(name: str | Task) -> Task:
    if isinstance(name, Task):
        return name
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=5, cutoff=0.5)
        tails = {n.split("/")[-1]: n for n in _REGISTRY}
        close += [tails[m] for m in difflib.get_close_matches(name.split("/")[-1], list(tails), n=3)
                  if tails[m] not in close]
        hint = f"; did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown task {name!r}{hint} (list_tasks() gives all {len(_REGISTRY)})") from None


def list_tasks(cluster: str | None = None) -> list[str]:
    return sorted(n for n, t in _REGISTRY.items() if cluster is None or t.cluster == cluster)


# --------------------------------------------------------------------------------------------
# Mixture


@dataclass
class Mixture:
    """Tasks mixed for training with examples-proportional rates capped at ``cap`` (T5/FLAN):
    rate(task) ∝ min(n_examples(task), cap). ``rates`` overrides with explicit weights."""

    name: str
    tasks: Sequence[str | Task]
    cap: int | None = 3000  # FLAN's mixing cap; T5 used 2**19 tokens-worth, None = uncapped
    rates: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        self.tasks = [get_task(t) for t in self.tasks]
        for t in self.tasks:
            if t.train_split is None and t.exemplar_source is None:
                raise ValueError(f"mixture {self.name!r}: task {t.name!r} has no training split")

    def _pool(self, task: Task) -> Sequence[Record]:
        return task.exemplar_pool()

    def sizes(self) -> dict[str, int]:
        return {t.name: len(self._pool(t)) for t in self.tasks}

    def mixing_rates(self) -> dict[str, float]:
        if self.rates is not None:
            raw = {t.name: float(self.rates[t.name]) for t in self.tasks}
        else:
            raw = {n: float(min(k, self.cap) if self.cap is not None else k) for n, k in self.sizes().items()}
        total = sum(raw.values())
        if total <= 0:
            raise ValueError(f"mixture {self.name!r}: all rates are zero")
        return {n: r / total for n, r in raw.items()}

    def sample(self, n: int, seed: int = 0) -> list[tuple[Task, Record]]:
        """`n` (task, record) draws: the task by rate, then that task's examples in a seeded
        order without replacement (reshuffled when exhausted), as a T5 data pipeline would."""
        rates = self.mixing_rates()
        tasks = [t for t in self.tasks if rates[t.name] > 0]
        weights = [rates[t.name] for t in tasks]
        rng = random.Random(f"mixture|{self.name}|{seed}")
        orders: dict[str, list[int]] = {}
        cursor: dict[str, int] = {}
        epoch: dict[str, int] = {}
        out = []
        for task in rng.choices(tasks, weights=weights, k=n):
            pool = self._pool(task)
            if cursor.get(task.name, len(pool)) >= len(pool):
                e = epoch[task.name] = epoch.get(task.name, -1) + 1
                order = list(range(len(pool)))
                random.Random(f"{self.name}|{seed}|{task.name}|{e}").shuffle(order)
                orders[task.name], cursor[task.name] = order, 0
            out.append((task, pool[orders[task.name][cursor[task.name]]]))
            cursor[task.name] += 1
        return out


# --------------------------------------------------------------------------------------------
# Preprocessors and regroupers


def _lm_document(example: Mapping[str, Any]) -> Record:
    return {"text": example["text"], "input": example["text"]}


_WIKI_TITLE = re.compile(r"^ = [^=].* = $")


def _wikitext_articles(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One document per article: a new one starts at each top-level " = Title = " line (the
    tokenised file keeps its line structure; text is the article's lines joined by newlines)."""
    docs: list[list[str]] = []
    for line in (r["text"] for r in rows):
        if _WIKI_TITLE.match(line) or not docs:
            docs.append([])
        docs[-1].append(line)
    texts = ["\n".join(d).strip() for d in docs]
    return [{"text": t} for t in texts if t]


def _line_blocks(n: int) -> Callable[[Sequence[Mapping[str, Any]]], list[dict[str, str]]]:
    """PTB is one sentence per line: scoring sentences alone would deny the model any context,
    so documents are blocks of `n` consecutive lines (the last one shorter)."""

    def regroup(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        lines = [r["text"] for r in rows]
        return [{"text": "\n".join(lines[i:i + n])} for i in range(0, len(lines), n)]

    return regroup


def _paragraphs(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Tiny Shakespeare's split is one record; its blank-line separated speeches are documents."""
    return [{"text": p.strip("\n")} for r in rows for p in r["text"].split("\n\n") if p.strip()]


def _lambada(example: Mapping[str, Any]) -> Record:
    # GPT-2/lm-eval: the target is the final whitespace-delimited word, scored as " " + word
    context, word = example["text"].rsplit(" ", 1)
    return {"input": context, "target": word, "references": [word], "text": example["text"]}


def _glue(fields: Sequence[str], verbalizers: Sequence[str]) -> Callable[[Mapping[str, Any]], Record]:
    def pre(example: Mapping[str, Any]) -> Record:
        record = {f: example[f] for f in fields}
        record.update(input="\n".join(example[f] for f in fields), choices=list(verbalizers),
                      label=int(example["label"]))
        return record

    return pre


_BUCKETS = tuple(str(i) for i in range(6))


def _stsb(example: Mapping[str, Any]) -> Record:
    score = float(example["label"])
    return {"sentence1": example["sentence1"], "sentence2": example["sentence2"],
            "input": example["sentence1"] + "\n" + example["sentence2"], "score": score,
            "choices": list(_BUCKETS), "label": int(math.floor(score + 0.5))}


def _multi30k(example: Mapping[str, Any]) -> Record:
    return {"en": example["en"], "de": example["de"], "input": example["en"], "target": example["de"],
            "references": [example["de"]]}


def _xsum(example: Mapping[str, Any]) -> Record:
    return {"document": example["document"], "input": example["document"], "target": example["summary"],
            "references": [example["summary"]]}


def exact_answer(prediction: str, record: Record) -> bool:
    """GPT-3's scoring of its synthetic tasks: the completion, stripped, is the answer string
    (SQuAD-style normalisation would drop the sign of "-55" and the punctuation the unscrambling
    tasks remove)."""
    return prediction.strip() == record["target"]


def _gpt3(example: Mapping[str, Any]) -> Record:
    answer = example["completion"].strip()
    return {"context": example["context"], "input": example["context"].strip(), "target": answer,
            "references": [answer]}


_ASSISTANT = "\n\nAssistant:"


def _split_last_turn(dialogue: str) -> tuple[str, str]:
    """(dialogue up to and including the last "Assistant:", that turn's text)."""
    cut = dialogue.rfind(_ASSISTANT)
    if cut < 0:
        return "", dialogue
    cut += len(_ASSISTANT)
    return dialogue[:cut], dialogue[cut:]


def _hh(example: Mapping[str, Any]) -> Record:
    pc, c = _split_last_turn(example["chosen"])
    pr, r = _split_last_turn(example["rejected"])
    return {"prefix_chosen": pc, "chosen": c, "prefix_rejected": pr, "rejected": r, "input": pc}


# --------------------------------------------------------------------------------------------
# AGIEval (prompt formats as papers.md §12.3 describes the official code)

_LETTERS = "ABCDEFG"
_AGI_HEADER = "Here are the answers for the problems in the exam.\n"
_AGI_MC_STAGE2 = "Therefore, among A through E, the answer is"  # the official suffix always says E
_AGI_MATH_STAGE2 = "Therefore, the answer is"


def _agieval_record(example: Mapping[str, Any], *, math_task: bool, drop_passage: bool = False) -> Record:
    passage = "" if drop_passage else (example.get("passage") or "")
    question = example["question"]
    if math_task:
        answer = str(example.get("answer") or "")
        return {"passage": passage, "question": question, "input": question, "target": answer,
                "references": [answer]}
    options = list(example.get("options") or [])
    gold = example["label"]
    letters = list(_LETTERS[:len(options)])
    return {"passage": passage, "question": question, "options": options, "choices": letters,
            "label": letters.index(gold), "gold": gold,
            "input": passage + question + " " + " ".join(options)}


def _agi_zero_shot(r: Mapping[str, Any]) -> str:
    last = _LETTERS[len(r["options"]) - 1]
    return (f"{r['passage']}Q: {r['question']} Answer Choices: {' '.join(r['options'])}\n"
            f"A: Among A through {last}, the answer is")


def _agi_zero_shot_cot(r: Mapping[str, Any]) -> str:
    return f"{r['passage']}Q: {r['question']} Answer Choices: {' '.join(r['options'])}\nLet's think step by step."


def _agi_problem(r: Mapping[str, Any], k: int) -> str:
    if "options" not in r:  # MATH (cloze): no passage, no options
        return f"Problem {k}.   {r['question']}\n"
    return (f"Problem {k}.   {r['passage']} {r['question']}\n"
            f"Choose from the following options:    {' '.join(r['options'])}\n")


def _agi_few_shot(cot: bool) -> Callable[[list[Record], Record], str]:
    def assemble(exemplars: list[Record], record: Record) -> str:
        demos = []
        for k, e in enumerate(exemplars, start=1):
            explanation = f"Explanation for Problem {k}:   {e['explanation']}\n" if cot else ""
            gold = e.get("gold", e.get("target"))
            demos.append(_agi_problem(e, k) + explanation + f"The answer is therefore {gold}\n")
        # each demonstration ends with "\n" and is followed by the end-of-example "\n"
        return _AGI_HEADER + "".join(d + "\n" for d in demos) + _agi_problem(record, len(exemplars) + 1)

    return assemble


def _agieval_templates(math_task: bool) -> tuple[Template, ...]:
    few, few_cot = _agi_few_shot(False), _agi_few_shot(True)
    item = lambda r: _agi_problem(r, 1)  # noqa: E731  (only used when rendering an item alone)
    if math_task:
        return (
            Template("zero_shot", "Q: {question}\nA: The answer is", verbalize=" {}"),
            Template("few_shot", item, verbalize="The answer is therefore {}", assemble=few, stop=("\n\n",)),
            Template("zero_shot_cot", "Q: {question}\nA: Let's think step by step.", verbalize=" {}",
                     stop=("\nQ:", "\n\n\n"), stage2=_AGI_MATH_STAGE2),
            Template("few_shot_cot", item, verbalize="The answer is therefore {}", assemble=few_cot,
                     stop=("\n\n",)),
        )
    return (
        Template("zero_shot", _agi_zero_shot, verbalize=" {}"),
        Template("few_shot", item, verbalize="The answer is therefore {}", assemble=few, stop=("\n\n",)),
        Template("zero_shot_cot", _agi_zero_shot_cot, verbalize=" {}", stop=("\nQ:", "\n\n\n"),
                 stage2=_AGI_MC_STAGE2),
        Template("few_shot_cot", item, verbalize="The answer is therefore {}", assemble=few_cot,
                 stop=("\n\n",)),
    )


def _agieval_demos(subset: str, math_task: bool) -> Callable[[], list[Record]]:
    """The subset's published demonstrations (few_shot_prompts.csv: rows "sample k" hold a
    Python-literal record, rows "explanation k" its rationale; empty cells mean fewer demos).
    SAT-En w/o passage reuses SAT-En's demonstrations with the passages removed."""
    source = "sat-en" if subset == "sat-en-without-passage" else subset

    def load() -> list[Record]:
        from repro.data import resolver

        table = resolver.load("agieval/few_shot_prompts", "train")
        cells = dict(zip(table["kind"], table[source], strict=True))
        demos = []
        for k in range(1, len(table) // 2 + 1):
            sample, explanation = cells.get(f"sample {k}", ""), cells.get(f"explanation {k}", "")
            if not sample:
                continue
            record = _agieval_record(ast.literal_eval(sample), math_task=math_task,
                                     drop_passage=subset == "sat-en-without-passage")
            # the official loader folds blank lines inside explanations ("\n\n" -> "\n")
            record["explanation"] = re.sub("\n\n", "\n", explanation)
            record["uid"] = f"few_shot_prompts/{source}:{k}"
            demos.append(record)
        return demos

    return load


def _first_capital(text: str) -> str:
    return next((c for c in text if c in "ABCDEF"), "")


def _last_nonblank_line(text: str) -> str:
    return next((line for line in reversed(text.split("\n")) if line.strip()), text)


def agieval_parse_letter(completion: str, setting: str) -> str:
    """AGIEval's answer parsing for single-answer English MC: zero-shot (and CoT stage 2) take
    the first capital A-F; few-shot looks for "answer is ... <A-G>" (CoT: on the last non-blank
    line) and falls back to the first capital."""
    if setting.startswith("zero_shot"):
        return _first_capital(completion)
    text = _last_nonblank_line(completion) if setting == "few_shot_cot" else completion
    m = re.search(r"answer is .*?([A-G])", text)
    return m.group(1) if m else _first_capital(text)


def _last_boxed(text: str) -> str | None:
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[brace + 1:i]
    return None


def agieval_parse_math(completion: str, setting: str) -> str:
    """The MATH answer in a completion: few-shot answers follow "The answer is therefore"; else
    the last \\boxed{...}, else the last $...$ span, else what follows the last "=", else the last
    number (the official post-processing, re-implemented)."""
    text = _last_nonblank_line(completion) if setting == "few_shot_cot" else completion
    marker = "The answer is therefore"
    if marker in text:
        text = text[text.rfind(marker) + len(marker):].strip()
        if setting.startswith("few_shot"):
            return text
    elif setting.startswith("few_shot"):
        return text.strip()
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.split("=")[-1].strip()
    dollars = re.findall(r"\$(.*)\$", text)
    if dollars:
        return dollars[-1].split("=")[-1].strip()
    if "=" in text:
        return text.split("=")[-1].strip().rstrip(".").split("\\n")[0]
    numbers = re.findall(r"(?:\$)?\d+(?:\.\d+)?(?![\w\d])", text)
    return numbers[-1] if numbers else ""


def normalize_math_answer(answer: str) -> str:
    """A compact version of the MATH paper's answer normalisation: drop spacing/sizing LaTeX,
    units-as-\\text, degrees, dollars, percent, a leading "x =", trailing period; unify
    \\dfrac/\\tfrac and bare "\\frac12"; "0.5" and ".5" agree."""
    s = str(answer).strip()
    s = re.sub(r"\\text\{\s*([^}]*)\}", r"\1", s)
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\ ", ""),
                     ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("^\\circ", ""), ("^{\\circ}", ""),
                     ("\\$", ""), ("$", ""), ("\\%", ""), ("%", "")):
        s = s.replace(old, new)
    s = re.sub(r"^[a-zA-Z]\s*=\s*", "", s)
    s = s.replace(" ", "").rstrip(".")
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    s = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", s)
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    return s


def math_equal(prediction: str, reference: str) -> bool:
    return normalize_math_answer(prediction) == normalize_math_answer(reference)


def _agieval_post(math_task: bool) -> Callable[[str, Record, str], str]:
    def post(completion: str, record: Record, template: str) -> str:
        return agieval_parse_math(completion, template) if math_task else agieval_parse_letter(completion, template)

    return post


def _agieval_correct(math_task: bool) -> Callable[[str, Record], bool]:
    if math_task:
        return lambda pred, record: math_equal(pred, record["target"])
    return lambda pred, record: pred == record["gold"]


# --------------------------------------------------------------------------------------------
# Declarations: one line-ish per task


def _options(intro: str, question: str) -> tuple[Template, Template]:
    """A QA-style template and its FLAN-style OPTIONS variant from the same wording."""
    return (Template("qa", f"{intro}\nQuestion: {question}\nAnswer:"),
            Template("options", f"{intro}\n{question}\nOPTIONS:\n{{options_block}}\nAnswer:"))


# (task, fields, verbalisers in label order, intro, question, metrics, cluster, splits)
_GLUE = [
    ("sst2", ("sentence",), ("negative", "positive"), "{sentence}",
     "Is the sentiment of this sentence positive or negative?", ("acc",), "sentiment"),
    ("cola", ("sentence",), ("no", "yes"), "{sentence}",
     "Is this sentence grammatically acceptable?", ("acc", "mcc"), "linguistic_acceptability"),
    ("mrpc", ("sentence1", "sentence2"), ("no", "yes"), "Sentence 1: {sentence1}\nSentence 2: {sentence2}",
     "Do the two sentences mean the same thing?", ("acc", "f1"), "paraphrase"),
    # RTE/QNLI/WNLI label names come in the hub's order: RTE/QNLI 0 = entailment, WNLI 1 = entailment
    ("rte", ("sentence1", "sentence2"), ("True", "False"), "{sentence1}",
     "Does it follow that \"{sentence2}\"? True or False?", ("acc",), "nli"),
    ("wnli", ("sentence1", "sentence2"), ("False", "True"), "{sentence1}",
     "Does it follow that \"{sentence2}\"? True or False?", ("acc",), "nli"),
    ("qnli", ("sentence1", "sentence2"), ("yes", "no"), "Question: {sentence1}\nSentence: {sentence2}",
     "Does the sentence answer the question?", ("acc",), "nli"),
]
_GLUE_SPLITS = {"qnli": ("validation[:-463]", "validation[-463:]")}  # QNLI train is not mirrored

_AGIEVAL_EN = ("lsat-ar", "lsat-lr", "lsat-rc", "logiqa-en", "sat-math", "sat-en", "sat-en-without-passage",
               "aqua-rat", "gaokao-english", "math")
_AGIEVAL_CLUSTER = {"sat-math": "arithmetic", "aqua-rat": "arithmetic", "math": "arithmetic",
                    "lsat-ar": "logical_reasoning", "lsat-lr": "logical_reasoning",
                    "logiqa-en": "logical_reasoning"}

_ARITHMETIC = ("two_digit_addition", "two_digit_subtraction", "three_digit_addition", "three_digit_subtraction",
               "four_digit_addition", "four_digit_subtraction", "five_digit_addition", "five_digit_subtraction",
               "six_digit_addition", "six_digit_subtraction", "two_digit_multiplication",
               "single_digit_three_ops", "sum_of_digits")
_SCRAMBLE = ("cycle_letters_in_word", "mid_word_1_anagrams", "mid_word_2_anagrams", "random_insertion_in_word",
             "reversed_words")
UNSCRAMBLE_INSTRUCTION = "Please unscramble the letters into a word, and write that word:"
_HH = ("helpful-base", "harmless-base", "helpful-online", "helpful-rejection-sampled")


def _declare() -> list[Task]:
    tasks: list[Task] = []
    add = tasks.append

    # ---- language modelling: perplexity over documents (raw text kept for byte/word counts)
    ppl = dict(kind="perplexity", preprocess=_lm_document, templates=(Template("document", "{text}"),),
               metrics=("perplexity", "bits_per_byte", "word_perplexity"), cluster="language_modeling")
    add(Task("wikitext2", "wikitext2", eval_split="test", exemplar_split="validation", regroup=_wikitext_articles,
             description="WikiText-2 test (tokenised), one document per article", **ppl))
    add(Task("ptb", "ptb", eval_split="test", exemplar_split="validation", regroup=_line_blocks(20),
             description="PTB test (Mikolov), documents of 20 consecutive sentences", **ppl))
    add(Task("tinyshakespeare", "tinyshakespeare", eval_split="validation", exemplar_split="train",
             regroup=_paragraphs, description="last 10% of Tiny Shakespeare, one document per speech", **ppl))
    add(Task("webtext", "webtext", eval_split="test", exemplar_split="validation",
             description="GPT-2 WebText samples (~280-character openings), one document each", **ppl))

    # ---- LAMBADA: last-word accuracy by greedy check (GPT-2 / lm-eval), one file -> held-out slice
    add(Task("lambada", "lambada", "generation", _lambada,
             (Template("last_word", "{input}"), Template("fill_in_blank", "{input} ____. ->")),
             metrics=("acc", "ppl"), cluster="language_modeling", eval_split="test[:-153]",
             exemplar_split="test[-153:]", scorer="greedy", perturb_fields=("input",),
             description="LAMBADA (OpenAI), 5,000 scored; the last 153 are the exemplar pool"))

    # ---- GLUE as rank classification over verbalised labels
    for name, fields, verbalizers, intro, question, metrics, cluster in _GLUE:
        templates = _options(intro, question)
        if name == "sst2":  # GPT-1 Fig. 2 heuristic: append "very", compare "positive" vs "negative"
            templates += (Template("gpt1_very", "{sentence} very"),)
        ev, ex = _GLUE_SPLITS.get(name, ("validation", "train"))
        add(Task(name, f"glue/{name}", "multiple_choice", _glue(fields, verbalizers), templates, metrics,
                 cluster, eval_split=ev, exemplar_split=ex, perturb_fields=fields))
    # STS-B: rank over the buckets 0..5; the prediction is the expected bucket under the model's
    # softmax (a smooth score Pearson/Spearman can use), accuracy is argmax vs the rounded score.
    add(Task("stsb", "glue/stsb", "regression", _stsb,
             _options("Sentence 1: {sentence1}\nSentence 2: {sentence2}",
                      "On a scale from 0 to 5, how similar are the two sentences?"),
             metrics=("pearson", "spearman", "acc"), cluster="paraphrase", eval_split="validation",
             exemplar_split="train", perturb_fields=("sentence1", "sentence2")))

    # ---- translation and summarisation
    add(Task("multi30k_en_de", "multi30k", "generation", _multi30k,
             (Template("en_de", "Translate English to German.\nEnglish: {en}\nGerman:"),
              Template("t5_prefix", "translate English to German: {en}\n")),
             metrics=("bleu",), cluster="translation", eval_split="test_2016_flickr", exemplar_split="train",
             max_gen_toks=96, perturb_fields=("en",)))
    add(Task("xsum", "xsum", "generation", _xsum,
             (Template("tldr", "{document}\n\nTL;DR:"),
              Template("summarize", "Summarize the article in one sentence.\n\n{document}\n\nSummary:")),
             metrics=("rouge",), cluster="summarization", eval_split="test[:-50]", exemplar_split="test[-50:]",
             max_gen_toks=64, perturb_fields=("document",),
             description="XSum 1k test sample: 950 scored, the last 50 are the exemplar pool"))

    # ---- AGIEval (English): the exam formats of the official code; exemplars are the published
    # demonstrations, in order; an eval item identical to a demonstration is not scored.
    for subset in _AGIEVAL_EN:
        is_math = subset == "math"
        no_passage = subset == "sat-en-without-passage"
        add(Task(
            f"agieval/{subset}", f"agieval/{subset}", "generation" if is_math else "multiple_choice",
            lambda ex, m=is_math, d=no_passage: _agieval_record(ex, math_task=m, drop_passage=d),
            _agieval_templates(is_math), metrics=("em",) if is_math else ("acc",),
            cluster=_AGIEVAL_CLUSTER.get(subset, "reading_comprehension"), eval_split="test",
            exemplar_split=None, exemplar_source=_agieval_demos(subset, is_math),
            exemplar_source_name="agieval/few_shot_prompts", fixed_exemplars=True,
            drop_eval_matching_exemplars=True, postprocess=_agieval_post(is_math),
            is_correct=_agieval_correct(is_math), max_gen_toks=32, stop=("\n",),
            perturb_fields=("question",) if is_math else ("passage", "question"),
        ))

    # ---- GPT-3 synthetic tasks: exact match of the generated completion; one file per task, so
    # exemplars are a disjoint held-out slice of it (the paper conditions on other items drawn
    # from the same generator; here they are the file's last 100 items, never scored)
    for stem in _ARITHMETIC + _SCRAMBLE:
        scramble = stem in _SCRAMBLE
        # the paper's unscrambling instruction is a scenario `instructions` prefix (given once)
        add(Task(f"gpt3/{stem}", f"gpt3/{stem}", "generation", _gpt3, (Template("plain", "{context}"),),
                 metrics=("em",),
                 cluster="word_scramble" if scramble else "arithmetic", eval_split="test[:-100]",
                 exemplar_split="test[-100:]", exemplar_sep="", max_gen_toks=16, perturb_fields=(),
                 is_correct=exact_answer, stop=("\n",)))

    # ---- HH-RLHF: is the chosen final assistant turn likelier than the rejected one?
    for subset in _HH:
        add(Task(f"hh_rlhf/{subset}", f"hh_rlhf/{subset}", "preference", _hh,
                 (Template("dialogue", "{prefix_chosen}"),), metrics=("acc",), cluster="preference",
                 eval_split="test", exemplar_split=None,
                 description="zero-shot only: the whole test split is scored"))
    return tasks


for _task in _declare():
    register(_task)

# FLAN / T0 instruction tasks (flan/*, rg/*, p3/*) declare themselves into this registry; imported
# here, after every name above exists, so that any `get_task` user sees them.
from repro.data import instructions as _instructions  # noqa: E402,F401
