"""The data resolver: every dataset of the offline mirror loads through `datasets` with the
record counts MANIFEST.md states; shapes (GLUE, multi30k, books, tinyshakespeare) are the
registered ones; missing, corrupt and unknown data fail with one clear error; the hub is never
contacted offline (its code path is exercised against a fake `load_dataset`)."""

from __future__ import annotations

import gzip
import os
import re
import time
import zlib
from pathlib import Path

import datasets
import pytest

from repro.data import CorruptDataError, DatasetNotFoundError, data_root, list_datasets, load, resolver
from repro.data.resolver import REGISTRY, UnknownDatasetError, UnknownSplitError, strip_gutenberg

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("REPRO_DATA") or REPO.parent / "shared" / "data")
needs_mirror = pytest.mark.skipif(not (MIRROR / "MANIFEST.md").is_file(), reason=f"no data mirror at {MIRROR}")


@pytest.fixture(scope="module", autouse=True)
def fresh_cache(tmp_path_factory: pytest.TempPathFactory):
    """A private Arrow cache, so every run really parses the mirror (and leaves ~ alone)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REPRO_CACHE", str(tmp_path_factory.mktemp("repro_cache")))
        mp.setenv("REPRO_DATA", str(MIRROR))
        yield


def _manifest_counts() -> dict[str, int]:
    """{mirror-relative file: records} from MANIFEST.md's tables."""
    text = (MIRROR / "MANIFEST.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| [\d,]+ \| ([\d,]+) \|", text, re.MULTILINE)
    return {path: int(n.replace(",", "")) for path, n in rows}


def _mirror_files(spec: resolver.DatasetSpec) -> list[str]:
    return [f for split in spec.mirror_splits for f in spec.files[split]]


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read().split("\n")[:-1]  # every file ends with a newline


# ---------------------------------------------------------------------------------------------
# Registry vs mirror


@needs_mirror
def test_registry_covers_every_manifest_file_and_nothing_else():
    manifest = set(_manifest_counts())
    assert len(manifest) == 469  # "Total: 469 files"
    declared = {f for spec in REGISTRY.values() for f in _mirror_files(spec)}
    assert declared == manifest
    absent = {f for spec in REGISTRY.values() for s in spec.absent for f in spec.files[s]}
    assert not absent & manifest, "a split marked absent is in the mirror after all"


@needs_mirror
def test_every_registry_entry_has_its_local_files():
    missing = [f"{spec.name}: {f}" for spec in REGISTRY.values() for f in _mirror_files(spec)
               if not (MIRROR / f).is_file()]
    assert not missing


def test_list_datasets_names_every_family():
    names = list_datasets()
    assert names == sorted(names) and len(names) == len(REGISTRY)
    for name in ["wikitext2", "ptb", "tinyshakespeare", "multi30k", "glue/sst2", "glue/cola", "glue/mrpc",
                 "glue/rte", "glue/stsb", "glue/wnli", "glue/qnli", "glue/diagnostic", "agieval/lsat-ar",
                 "agieval/few_shot_prompts", "gpt3/two_digit_addition", "gpt3/reversed_words", "lambada", "xsum",
                 "gsm8k", "hh_rlhf/helpful-base", "alpaca", "self_instruct_seeds", "dpo_demo", "c4_demo",
                 "wiki_demo", "books", "tinystories", "webtext", "instructgpt_samples/tldr"]:
        assert name in names
    assert len(list_datasets("t0_p3/")) == 294
    assert len(list_datasets("agieval/")) == 22 and len(list_datasets("gpt3/")) == 18


# ---------------------------------------------------------------------------------------------
# Every dataset loads with MANIFEST's record counts

_T0 = list_datasets("t0_p3/")
# All of it loads in ~20 s cold; a fifth of the 294 P3 templates (plus the empty ones) keeps the
# file fast while still covering every reader. File existence is checked for all of them above.
_SAMPLED = [n for n in list_datasets() if not n.startswith("t0_p3/")] + [
    n for i, n in enumerate(_T0) if i % 5 == 0 or n.startswith("t0_p3/trec_fine_grained_")
]


@needs_mirror
@pytest.mark.parametrize("name", _SAMPLED)
def test_dataset_loads_with_manifest_counts(name: str):
    spec, counts = REGISTRY[name], _manifest_counts()
    loaded = load(name)
    assert isinstance(loaded, datasets.DatasetDict)
    assert list(loaded) == list(spec.mirror_splits)
    for split, ds in loaded.items():
        files = spec.files[split]
        if name == "books":
            assert len(ds) == len(files)  # one record per book
        elif name == "tinyshakespeare":
            assert len(ds) == 1  # one record holding the split's slice; checked below
        else:
            for f in files:  # aligned multi30k files: every file has as many lines as records
                assert len(ds) == counts[f], (split, f)


@needs_mirror
def test_text_files_keep_every_line():
    ds = load("wikitext2", "validation")
    raw = (MIRROR / "wikitext2" / "valid.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert ds["text"] == raw


@needs_mirror
def test_empty_p3_templates_load_as_empty_datasets():
    ds = load("t0_p3/trec_fine_grained_ABBR", "train")
    assert len(ds) == 0 and ds.column_names == ["prompt", "completion"]
    assert load("t0_p3/trec_trec1", "train").column_names == ["prompt", "completion"]


# ---------------------------------------------------------------------------------------------
# Shapes


@needs_mirror
@pytest.mark.parametrize("split,stem", [("validation", "val"), ("test_2017_mscoco", "test_2017_mscoco"),
                                        ("train", "train")])
def test_multi30k_records_align_en_and_de_line_by_line(split: str, stem: str):
    ds = load("multi30k", split)
    en, de = _lines(MIRROR / "multi30k" / f"{stem}.en.gz"), _lines(MIRROR / "multi30k" / f"{stem}.de.gz")
    assert ds.column_names == ["en", "de"]
    assert ds["en"] == en and ds["de"] == de
    assert ds[0] == {"en": en[0], "de": de[0]}


@needs_mirror
def test_split_aliases():
    assert len(load("multi30k", "val")) == 1014
    assert len(load("multi30k", "test")) == 1000  # bentrevett/multi30k's test = 2016 flickr
    assert len(load("glue/sst2", "dev")) == 872
    assert len(load("webtext", "valid")) == 4724


_GLUE = {  # task: (text columns, class names or None for regression)
    "sst2": (["sentence"], ["negative", "positive"]),
    "cola": (["sentence"], ["unacceptable", "acceptable"]),
    "mrpc": (["sentence1", "sentence2"], ["not_equivalent", "equivalent"]),
    "rte": (["sentence1", "sentence2"], ["entailment", "not_entailment"]),
    "stsb": (["sentence1", "sentence2"], None),
    "wnli": (["sentence1", "sentence2"], ["not_entailment", "entailment"]),
    "qnli": (["sentence1", "sentence2"], ["entailment", "not_entailment"]),
    "diagnostic": (["sentence1", "sentence2"], ["entailment", "neutral", "contradiction"]),
}


@needs_mirror
@pytest.mark.parametrize("task", list(_GLUE))
def test_glue_columns_and_label_types(task: str):
    text, names = _GLUE[task]
    for split, ds in load(f"glue/{task}").items():
        assert ds.column_names == [*text, "label", "idx"], split
        label = ds.features["label"]
        if names is None:
            assert label == datasets.Value("float32")
        else:
            assert isinstance(label, datasets.ClassLabel) and label.names == names
        assert all(isinstance(ds[0][c], str) and ds[0][c] for c in text)
        labels = set(ds["label"])
        if split == "test":  # unlabeled files
            assert labels == {-1}
        elif names is None:
            assert min(labels) >= 0.0 and max(labels) <= 5.0 and len(labels) > 10
        else:
            assert labels == set(range(len(names)))


@needs_mirror
def test_glue_known_rows():
    cola = load("glue/cola", "train")[0]  # headerless file: source, label, original label, sentence
    assert cola == {"sentence": "Our friends won't buy this analysis, let alone the next one we propose.",
                    "label": 1, "idx": 0}
    rte = load("glue/rte", "validation")[0]  # "not_entailment" in the file
    assert rte["label"] == 1 and rte["sentence2"] == "Christopher Reeve had an accident."
    qnli = load("glue/qnli", "validation")[0]  # question/sentence renamed like the hub's columns
    assert qnli["sentence1"].startswith("What came into force") and qnli["label"] == 0
    mrpc = load("glue/mrpc", "validation")[0]  # BOM'd "Quality" header, unbalanced quotes kept
    assert mrpc["label"] == 1 and mrpc["sentence2"].startswith('" The foodservice pie')
    stsb = load("glue/stsb", "train")[1]
    assert stsb["label"] == pytest.approx(3.8) and stsb["idx"] == 1


@needs_mirror
def test_books_strip_gutenberg_boilerplate_and_hold_out_whole_books():
    books = load("books")
    files = {s: ds["file"] for s, ds in books.items()}
    assert len(files["train"]) + len(files["validation"]) == 75
    assert not set(files["train"]) & set(files["validation"])
    assert files["validation"] == [f for f in sorted(files["validation"])
                                   if zlib.crc32(f.removesuffix(".txt.gz").encode()) % 10 == 0]
    for ds in books.values():
        for record in ds:
            text = record["text"]
            assert record["title"] and len(text) > 10_000, record["file"]
            assert "*** START OF" not in text and "*** END OF" not in text, record["file"]
            assert "Project Gutenberg License" not in text and "End of the Project Gutenberg" not in text
    pride = next(r for r in books["train"] if r["file"] == "austen_pride_and_prejudice.txt.gz")
    assert (pride["title"], pride["author"]) == ("Pride and Prejudice", "Jane Austen")
    with gzip.open(MIRROR / "books" / pride["file"], "rt", encoding="utf-8") as f:
        raw = f.read().replace("\r\n", "\n")
    assert raw.index(pride["text"]) > raw.index("*** START OF")  # the body is verbatim


def test_strip_gutenberg_on_a_synthetic_book():
    text = ("The Project Gutenberg EBook of X\r\nTitle: A Tale\r\nAuthor: Someone\r\n"
            "*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n\r\nCHAPTER I\r\nIt was.\r\n\r\n"
            "End of the Project Gutenberg EBook of A Tale, by\r\nSomeone\r\n\r\n"
            "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nlicence text\r\n")
    body, meta = strip_gutenberg(text)
    assert body == "CHAPTER I\r\nIt was."
    assert meta == {"title": "A Tale", "author": "Someone"}


@needs_mirror
def test_tinyshakespeare_is_split_90_10_by_characters():
    raw = (MIRROR / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    assert len(raw) == 1_115_394
    train, val = load("tinyshakespeare", "train")[0]["text"], load("tinyshakespeare", "val")[0]["text"]
    assert len(train) == int(0.9 * len(raw)) and train + val == raw


@needs_mirror
def test_gsm8k_keeps_the_hub_fields():
    row = load("gsm8k", "test")[0]
    assert set(row) == {"question", "answer"} and "####" in row["answer"]


@needs_mirror
def test_repeat_loads_come_from_the_cache():
    load("glue/sst2", "train")
    start = time.perf_counter()
    assert len(load("glue/sst2", "train")) == 67349
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------------------------------------
# Resolution and errors


def test_data_root_defaults_next_to_the_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("REPRO_DATA")
    monkeypatch.chdir(REPO)
    expected = (REPO.parent / "shared" / "data").resolve()
    assert data_root() == (expected if expected.is_dir() else None)
    monkeypatch.chdir(tmp_path)  # ../shared/data from here does not exist; the repo fallback does
    assert data_root() == (expected if expected.is_dir() else None)
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "nowhere"))
    assert data_root() is None


def test_missing_dataset_names_paths_and_both_fixes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as info:
        load("glue/sst2", "validation")
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "'glue/sst2'" in message
    assert str(tmp_path / "glue" / "sst2" / "dev.tsv") in message
    assert "set REPRO_DATA to the mirror directory" in message
    assert "go online so the hub dataset nyu-mll/glue (config sst2, split validation)" in message
    assert "unset HF_DATASETS_OFFLINE" in message


def test_missing_dataset_without_hub_copy_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="no hub copy of this dataset is registered"):
        load("books", "validation")
    with pytest.raises(DatasetNotFoundError, match="has no split 'test_2018_flickr'"):
        load("multi30k", "test_2018_flickr")


@needs_mirror
@pytest.mark.parametrize("name,file,hub", [("wikitext2", "wikitext2/train.txt", "Salesforce/wikitext"),
                                           ("ptb", "ptb/ptb.train.txt", "ptb-text-only/ptb_text_only")])
def test_train_splits_absent_from_the_mirror_raise_not_found(name: str, file: str, hub: str):
    with pytest.raises(DatasetNotFoundError) as info:
        load(name, "train")
    message = str(info.value)
    assert str(MIRROR.resolve() / file) in message and hub in message and "over its size limit" in message
    assert "train" not in load(name)  # split=None gives the mirror's splits only


def test_hub_is_never_tried_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))

    def no_hub(*args, **kwargs):
        raise AssertionError("the hub was contacted offline")

    monkeypatch.setattr(resolver, "_load_hub", no_hub)
    with pytest.raises(DatasetNotFoundError):
        load("gsm8k", "test")


class _FakeHub:
    """Stands in for `datasets.load_dataset` online; records the calls."""

    def __init__(self, rows: dict[str, list]):
        self.rows, self.calls = rows, []

    def __call__(self, path, name=None, **kwargs):
        self.calls.append((path, name, kwargs))
        return datasets.Dataset.from_dict(self.rows)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))  # an empty mirror: everything goes to the hub
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

    def install(rows: dict[str, list]) -> _FakeHub:
        fake = _FakeHub(rows)
        monkeypatch.setattr(resolver.datasets, "load_dataset", fake)
        return fake

    return install


def test_hub_fallback_maps_config_split_and_columns(online):
    fake = online({"question": ["q?"], "sentence": ["s."], "label": [0], "idx": [0]})
    ds = load("glue/qnli", "train")  # QNLI train is hub-only
    assert ds.column_names == ["sentence1", "sentence2", "label", "idx"]
    path, name, kwargs = fake.calls[-1]
    assert (path, name, kwargs["split"]) == ("nyu-mll/glue", "qnli", "train")
    assert kwargs["cache_dir"].endswith("hf_datasets")

    load("multi30k", "test_2016_flickr")
    assert fake.calls[-1][0] == "bentrevett/multi30k" and fake.calls[-1][2]["split"] == "test"
    load("hh_rlhf/helpful-base", "train")
    assert fake.calls[-1][0] == "Anthropic/hh-rlhf" and fake.calls[-1][2]["data_dir"] == "helpful-base"


def test_hub_fallback_reads_raw_hub_files_with_the_local_builder(online):
    fake = online({"context": ["1 + 1 ="], "completion": [" 2"]})
    load("gpt3/two_digit_addition", "test")
    path, _, kwargs = fake.calls[-1]
    assert path == "json"
    assert kwargs["data_files"] == {"train": "hf://datasets/EleutherAI/arithmetic/data/two_digit_addition.jsonl"}


def test_failed_hub_attempt_is_reported_in_the_one_message(online, monkeypatch: pytest.MonkeyPatch):
    def broken(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(resolver.datasets, "load_dataset", broken)
    with pytest.raises(DatasetNotFoundError, match="The hub attempt failed: ConnectionError: no route to host"):
        load("lambada", "test")


def _gz(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(text)


def test_corrupt_jsonl_names_file_and_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    bad = tmp_path / "gsm8k" / "test.jsonl.gz"
    _gz(bad, '{"question": "a", "answer": "#### 1"}\n\n{"question": "b", "answer": "#### 2"}\n'
             '{"question": "c", "answer": \n{"question": "d", "answer": "#### 4"}\n')
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    with pytest.raises(CorruptDataError) as info:
        load("gsm8k", "test")
    assert isinstance(info.value, ValueError)
    assert (info.value.path, info.value.line) == (bad, 4)
    assert f"{bad}:4" in str(info.value) and "'gsm8k'" in str(info.value)


def test_a_truncated_gzip_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    bad = tmp_path / "gsm8k" / "test.jsonl.gz"
    _gz(bad, "".join(f'{{"question": "q{i} {"x" * (i % 97)}", "answer": "#### {i}"}}\n' for i in range(3000)))
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    with pytest.raises(CorruptDataError, match=r"test\.jsonl\.gz: the file is truncated or not valid gzip") as info:
        load("gsm8k", "test")
    assert info.value.path == bad


@pytest.mark.parametrize("row", ["2\tshort row\t1", "2\ta\tb\t1\textra"])
def test_corrupt_tsv_row_names_file_and_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, row: str):
    bad = tmp_path / "glue" / "wnli" / "dev.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text(f"index\tsentence1\tsentence2\tlabel\n0\ta\tb\t1\n1\tc\td\t0\n{row}\n3\te\tf\t1\n")
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    with pytest.raises(CorruptDataError) as info:
        load("glue/wnli", "validation")
    assert info.value.line == 4 and f"{bad}:4" in str(info.value)


def test_misaligned_parallel_files_are_corrupt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    _gz(tmp_path / "multi30k" / "val.en.gz", "one\ntwo\nthree\n")
    _gz(tmp_path / "multi30k" / "val.de.gz", "eins\nzwei\n")
    monkeypatch.setenv("REPRO_DATA", str(tmp_path))
    with pytest.raises(CorruptDataError, match=r"val\.de\.gz:3"):
        load("multi30k", "validation")


@pytest.mark.parametrize("name,suggestion", [("wikitext", "wikitext2"), ("glue/sst", "glue/sst2"),
                                             ("sst-2", "glue/sst2"), ("hh-rlhf", "hh_rlhf/helpful-base"),
                                             ("tinyshakspeare", "tinyshakespeare")])
def test_unknown_name_suggests_close_matches(name: str, suggestion: str):
    with pytest.raises(UnknownDatasetError) as info:
        load(name)
    assert isinstance(info.value, KeyError)
    assert suggestion in str(info.value) and repr(name) in str(info.value)


def test_unknown_split_lists_the_splits():
    with pytest.raises(UnknownSplitError, match="its splits are test") as info:
        load("lambada", "train")
    assert isinstance(info.value, KeyError)


def test_reader_settings_cannot_be_overridden():
    with pytest.raises(TypeError, match="fixed by the registry"):
        load("glue/sst2", "train", delimiter=",")
