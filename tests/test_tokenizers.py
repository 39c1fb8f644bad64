"""Tokenizer training: special-token layout, round trips, on-disk cache, determinism."""

from __future__ import annotations

import json
import os
import random
import string
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import repro.tokenizers as rt
from repro.tokenizers import load_tokenizer, sentinel_ids, train_tokenizer

KINDS = ("bpe", "wordpiece", "unigram")
VOCAB = 1000


def _corpus(n_bytes: int) -> list[str]:
    """Non-empty lines of the first ``n_bytes`` of tiny Shakespeare (synthetic if it is absent)."""
    path = Path(os.environ.get("REPRO_DATA", "/work/shared/data")) / "tinyshakespeare" / "input.txt"
    if path.is_file():
        text = path.read_text(encoding="utf-8")[:n_bytes]
    else:  # keep the suite self-contained: a seeded pseudo-English corpus
        rng = random.Random(0)
        words = [
            "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(1, 8))) for _ in range(400)
        ]
        text = "\n".join(
            " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))).capitalize() + "."
            for _ in range(n_bytes // 40)
        )
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return _corpus(100_000)


@pytest.fixture(scope="module")
def small_corpus() -> list[str]:
    return _corpus(20_000)


@pytest.fixture(scope="module")
def toks(corpus, tmp_path_factory):
    cache = tmp_path_factory.mktemp("tok-cache")
    return {kind: train_tokenizer(kind, corpus, VOCAB, cache_dir=cache) for kind in KINDS}


# ------------------------------------------------------------------------------ layout


def test_bpe_special_tokens(toks):
    tok = toks["bpe"]
    assert tok.convert_tokens_to_ids("<|endoftext|>") == 0
    assert tok.eos_token_id == tok.bos_token_id == tok.pad_token_id == 0
    assert tok("hello there")["input_ids"][-1] != 0  # GPT-2 adds no specials when encoding


def test_wordpiece_special_tokens(toks):
    tok = toks["wordpiece"]
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
    assert ids == {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4}
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
        0,
        1,
        2,
        3,
        4,
    )
    pair = tok("my lord", "good night")
    ids, types = pair["input_ids"], pair["token_type_ids"]
    assert ids[0] == 2 and ids[-1] == 3 and ids.count(3) == 2
    first_sep = ids.index(3)
    assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)


def test_unigram_special_tokens_and_sentinels(toks):
    tok = toks["unigram"]
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert tok("my lord")["input_ids"][-1] == 1  # T5 appends </s>
    # T5 layout: 100 sentinels at the end, <extra_id_0> being the very last id
    assert sentinel_ids(tok) == [len(tok) - 1 - i for i in range(100)]
    assert tok.convert_ids_to_tokens(len(tok) - 1) == "<extra_id_0>"
    assert tok.convert_ids_to_tokens(len(tok) - 100) == "<extra_id_99>"
    # a sentinel in text is one token, and skipped as special when decoding
    ids = tok("to be <extra_id_0> be", add_special_tokens=False)["input_ids"]
    assert len(tok) - 1 in ids
    assert tok.decode(ids, skip_special_tokens=True).split() == ["to", "be", "be"]


def test_sentinel_count_is_configurable(small_corpus, tmp_path):
    tok = train_tokenizer("unigram", small_corpus, 400, cache_dir=tmp_path, n_sentinels=7)
    assert sentinel_ids(tok) == [len(tok) - 1 - i for i in range(7)]
    assert len(tok) <= 400


@pytest.mark.parametrize("kind", KINDS)
def test_size_and_padding(toks, kind):
    tok = toks[kind]
    assert 0.5 * VOCAB < len(tok) <= VOCAB
    batch = tok(["a", "bb cc dd"], padding=True)
    short, long = batch["input_ids"]
    assert len(short) == len(long)
    mask = batch["attention_mask"][0]
    assert 0 in mask and all(i == tok.pad_token_id for i, m in zip(short, mask) if m == 0)


# ------------------------------------------------------------------------------ round trips


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60))
def test_bpe_round_trips_any_unicode(toks, text):
    tok = toks["bpe"]
    assert tok.decode(tok(text)["input_ids"]) == text


@pytest.fixture(scope="module")
def digit_bpe(small_corpus, tmp_path_factory):
    numbers = [f"Q: What is {a} plus {b}? A: {a + b}" for a, b in zip(range(100, 900, 7), range(50, 850, 7))]
    return train_tokenizer("bpe", small_corpus + numbers, 600, cache_dir=tmp_path_factory.mktemp("digits"),
                           individual_digits=True)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=40), number=st.integers(min_value=0, max_value=10**12))
def test_bpe_with_individual_digits_gives_one_token_per_digit_and_round_trips(digit_bpe, text, number):
    ids = digit_bpe(f"{text} {number}")["input_ids"]
    assert digit_bpe.decode(ids) == f"{text} {number}"
    pieces = digit_bpe.convert_ids_to_tokens(digit_bpe(f" {number}")["input_ids"])
    assert pieces == ["Ġ", *str(number)]  # the space stands alone: no merge reaches across a digit


_ACCENTED = "àáâäçèéêëìíîïñòóôöùúûüÀÉÎÕÜÇ"


def _bert_normalise(text: str) -> str:
    # BertNormalizer(lowercase=True): lowercase, NFD and drop combining marks; the pre-tokenizer
    # splits on whitespace, the decoder joins words with single spaces
    text = unicodedata.normalize("NFD", text.lower())
    return " ".join("".join(c for c in text if unicodedata.category(c) != "Mn").split())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(st.text(alphabet=string.ascii_letters + _ACCENTED, min_size=1, max_size=12), min_size=1, max_size=8),
    seps=st.lists(st.sampled_from([" ", "  ", "\t", "\n", " \n "]), min_size=8, max_size=8),
)
def test_wordpiece_round_trips_normalised_text(toks, words, seps):
    tok = toks["wordpiece"]
    text = "".join(w + s for w, s in zip(words, seps))
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == _bert_normalise(text)


# no "<": a random string could spell a special token such as "<pad>"
_UNIGRAM_ALPHABET = "".join(sorted(set(string.ascii_letters + string.digits + string.punctuation) - {"<"}))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.text(alphabet=_UNIGRAM_ALPHABET, min_size=1, max_size=12), min_size=1, max_size=8))
def test_unigram_round_trips_single_spaced_text(toks, words):
    tok = toks["unigram"]
    text = " ".join(words)  # no leading, trailing or double spaces
    ids = tok(text)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_unigram_collapses_spaces_like_sentencepiece(toks):
    tok = toks["unigram"]
    assert tok.decode(tok("  my   good lord ")["input_ids"], skip_special_tokens=True) == "my good lord"


# ------------------------------------------------------------------------------ cache


def _count_training(monkeypatch) -> dict[str, int]:
    calls = {kind: 0 for kind in KINDS}
    for kind, fn in list(rt._TRAINERS.items()):

        def counted(*args, _kind=kind, _fn=fn, **kwargs):
            calls[_kind] += 1
            return _fn(*args, **kwargs)

        monkeypatch.setitem(rt._TRAINERS, kind, counted)
    return calls


def _entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("kind", KINDS)
def test_cache_hit_returns_same_tokenizer_without_training(small_corpus, tmp_path, monkeypatch, kind):
    calls = _count_training(monkeypatch)
    first = train_tokenizer(kind, small_corpus, 400, cache_dir=tmp_path)
    assert calls[kind] == 1
    # same content as a one-shot iterator: hashed while spooled, then loaded from the cache
    second = train_tokenizer(kind, iter(list(small_corpus)), 400, cache_dir=tmp_path)
    assert calls[kind] == 1
    assert second.get_vocab() == first.get_vocab()
    assert second.name_or_path == first.name_or_path
    assert Path(first.name_or_path).parent == tmp_path
    assert _entries(tmp_path) == [Path(first.name_or_path).name]
    # and the entry loads on its own
    assert load_tokenizer(first.name_or_path).get_vocab() == first.get_vocab()


def test_cache_key_depends_on_vocab_size_settings_and_corpus(small_corpus, tmp_path, monkeypatch):
    calls = _count_training(monkeypatch)
    a = train_tokenizer("bpe", small_corpus, 400, cache_dir=tmp_path)
    b = train_tokenizer("bpe", small_corpus, 500, cache_dir=tmp_path)
    c = train_tokenizer("bpe", small_corpus, 400, cache_dir=tmp_path, min_frequency=3)
    d = train_tokenizer("bpe", small_corpus[:-1], 400, cache_dir=tmp_path)
    assert calls["bpe"] == 4
    assert len({t.name_or_path for t in (a, b, c, d)}) == 4
    # spelling a default out is the same tokenizer
    e = train_tokenizer("bpe", small_corpus, 400, cache_dir=tmp_path, min_frequency=2, show_progress=False)
    assert calls["bpe"] == 4 and e.name_or_path == a.name_or_path


def test_corpus_hash_respects_text_boundaries():
    assert rt._corpus_digest(["ab", "c"])[0] != rt._corpus_digest(["a", "bc"])[0]
    assert rt._corpus_digest(["ab", "c"]) == rt._corpus_digest(iter(["ab", "c"]))


def test_incomplete_entry_is_never_loaded(small_corpus, tmp_path, monkeypatch):
    calls = _count_training(monkeypatch)
    tok = train_tokenizer("wordpiece", small_corpus, 400, cache_dir=tmp_path)
    entry = Path(tok.name_or_path)
    (entry / rt._META_FILE).unlink()  # as if a copy was interrupted before the marker
    again = train_tokenizer("wordpiece", small_corpus, 400, cache_dir=tmp_path)
    assert calls["wordpiece"] == 2
    assert again.get_vocab() == tok.get_vocab() and (entry / rt._META_FILE).is_file()


def test_crash_while_saving_leaves_no_entry(small_corpus, tmp_path, monkeypatch):
    calls = _count_training(monkeypatch)

    def crash(path):  # die after the files are written, before the rename
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(rt, "_fsync_path", crash)
        m.setattr(rt.shutil, "rmtree", lambda *a, **k: None)  # a killed process cleans nothing up
        with pytest.raises(KeyboardInterrupt):
            train_tokenizer("bpe", small_corpus, 400, cache_dir=tmp_path)
    assert _entries(tmp_path) == []  # only the hidden temp dir is left behind
    assert any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
    tok = train_tokenizer("bpe", small_corpus, 400, cache_dir=tmp_path)
    assert calls["bpe"] == 2 and len(tok) > 256


def test_second_writer_keeps_the_first_entry(small_corpus, tmp_path):
    tok = train_tokenizer("bpe", small_corpus, 400, cache_dir=tmp_path)
    entry = Path(tok.name_or_path)
    meta = json.loads((entry / rt._META_FILE).read_text())
    before = (entry / "tokenizer.json").stat().st_mtime_ns
    rt._atomic_save(tok, meta, entry)  # as if a concurrent process finished the same training
    assert (entry / "tokenizer.json").stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]  # its temp dir is gone too


def test_default_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("REPRO_CACHE", str(tmp_path))
    assert rt.default_cache_dir() == tmp_path / "tokenizers"
    monkeypatch.delenv("REPRO_CACHE")
    assert rt.default_cache_dir() == Path.home() / ".cache" / "repro" / "tokenizers"


def test_bad_arguments(small_corpus, tmp_path):
    with pytest.raises(ValueError):
        train_tokenizer("sentencepiece", small_corpus, 400, cache_dir=tmp_path)
    with pytest.raises(TypeError):
        train_tokenizer("bpe", small_corpus, 400, cache_dir=tmp_path, n_sentinels=3)
    with pytest.raises(TypeError):
        train_tokenizer("bpe", "a single string", 400, cache_dir=tmp_path)
    with pytest.raises(ValueError):
        train_tokenizer("bpe", [], 400, cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "nothing-here")


# ------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("kind", KINDS)
def test_training_is_deterministic(small_corpus, tmp_path, kind):
    # Separate caches, so both calls train. The raw HF WordPiece/Unigram trainers are not
    # deterministic (Rust HashMap order); repro.tokenizers canonicalises their output.
    a = train_tokenizer(kind, small_corpus, 600, cache_dir=tmp_path / "a")
    b = train_tokenizer(kind, small_corpus, 600, cache_dir=tmp_path / "b")
    assert a.get_vocab() == b.get_vocab()
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
