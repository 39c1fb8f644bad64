"""Subword tokenizers trained with HF `tokenizers`, returned as `transformers` fast tokenizers.

Three families, one per paper lineage:

- ``"bpe"``       GPT-2: byte-level BPE. Every string is encodable (the 256 byte symbols are the
                  initial alphabet), so ``decode(encode(s)) == s`` for any unicode ``s``.
                  Special: ``<|endoftext|>`` (id 0), used as bos = eos = unk = pad. GPT-2 has no pad
                  token; padding with eos is the usual convention and the attention mask hides it.
- ``"wordpiece"`` BERT: BertNormalizer (lowercase, accent strip, CJK spacing, control-char
                  cleanup), BertPreTokenizer, ``##`` continuation pieces, WordPiece decoder.
                  Specials: ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4 (BERT's
                  released vocab has them at 0/100/101/102/103 because its vocab file reserved
                  ``[unusedN]`` slots; a freshly trained vocab has no reason to).
                  ``tok(a)`` -> ``[CLS] a [SEP]``; ``tok(a, b)`` -> ``[CLS] a [SEP] b [SEP]``
                  with token_type_ids 0...0 1...1.
- ``"unigram"``   T5 / SentencePiece: NFKC, strip, collapsed spaces, Metaspace (``▁``).
                  Specials: ``<pad>`` 0 (also T5's decoder start), ``</s>`` 1 (eos, appended by
                  the post-processor), ``<unk>`` 2. Then ``n_sentinels`` (default 100, as T5)
                  ``<extra_id_i>`` tokens appended at the end of the vocab in T5's order:
                  ``<extra_id_0>`` has the *highest* id, ``<extra_id_i> = len(tok) - 1 - i``.
                  Use :func:`sentinel_ids` to get them in span order.

``vocab_size`` is the size of the whole vocabulary, specials and sentinels included, so a model's
embedding table can be sized with ``len(tok)``; on a small corpus the trainers can stop short of
it, so ``len(tok) <= vocab_size``. (``tok.vocab_size`` in transformers excludes added tokens such
as the T5 sentinels; prefer ``len(tok)``.)

Training is deterministic: the same corpus and settings give a byte-identical ``tokenizer.json``
in any process. (HF's WordPiece and Unigram trainers alone are not, because they iterate Rust
HashMaps; see :func:`_train_wordpiece` and :func:`_canonical_unigram` for how we pin them.)

Trained tokenizers are cached under ``cache_dir/<key>/`` where the key hashes the corpus content,
the kind, vocab_size, the resolved settings and :data:`FORMAT_VERSION`. ``tok.name_or_path`` is
that directory, so it doubles as the tokenizer's identity for downstream artifact keys.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import string
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import tokenizers as hf_tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from repro.atomic import fsync_path as _fsync_path

__all__ = [
    "FORMAT_VERSION",
    "KINDS",
    "DEFAULT_SETTINGS",
    "train_tokenizer",
    "load_tokenizer",
    "sentinel_ids",
    "default_cache_dir",
]

# Bump whenever the pipeline below changes in a way that changes the trained tokenizer
# (normalizer, specials, trainer options...): old cache entries then stop matching.
FORMAT_VERSION = 1

KINDS = ("bpe", "wordpiece", "unigram")

# Settings accepted per kind, with defaults. The cache key is computed over the *resolved*
# settings, so passing a default explicitly hits the same cache entry as omitting it.
DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "bpe": {
        "min_frequency": 2,
        "add_prefix_space": False,  # GPT-2 does not prepend a space
        "individual_digits": False,  # GPT-2 merges digit runs; True gives each digit its own token (LLaMA, PaLM)
        "model_max_length": 1024,  # GPT-2 context
    },
    "wordpiece": {
        "min_frequency": 2,
        "lowercase": True,  # bert-base-uncased
        "limit_alphabet": 1000,
        "ascii_alphabet": True,
        "model_max_length": 512,  # BERT context
    },
    "unigram": {
        "n_sentinels": 100,  # T5's <extra_id_0..99>
        "max_piece_length": 16,
        "shrinking_factor": 0.75,
        "n_sub_iterations": 2,
        "ascii_alphabet": True,
        "model_max_length": 512,  # T5 pre-training input length
    },
}
# ascii_alphabet: seed the alphabet with printable ASCII so that any ASCII text stays encodable
# without [UNK] even when a small corpus happens to lack a character.

# Settings that change how training runs but not what it produces: excluded from the key.
_NON_KEY_SETTINGS = {"show_progress"}

_META_FILE = "repro_tokenizer.json"  # written last; its presence marks a complete entry
_ASCII = string.ascii_letters + string.digits + string.punctuation

BPE_SPECIAL = "<|endoftext|>"
WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
UNIGRAM_SPECIALS = ("<pad>", "</s>", "<unk>")


# --------------------------------------------------------------------------------------------
# public API


def default_cache_dir() -> Path:
    """``$REPRO_CACHE/tokenizers``, with ``$REPRO_CACHE`` defaulting to ``~/.cache/repro``."""
    root = os.environ.get("REPRO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "repro")
    return Path(root) / "tokenizers"


def train_tokenizer(
    kind: str,
    texts: Iterable[str],
    vocab_size: int,
    *,
    cache_dir: str | os.PathLike | None = None,
    **settings: Any,
) -> PreTrainedTokenizerFast:
    """Train (or load from cache) a ``kind`` tokenizer on ``texts``.

    ``texts`` may be any iterable of strings; a one-shot iterator is spooled to a temporary file
    while it is hashed (so it can be read again for training without a second in-memory copy).
    ``settings`` are the per-kind options in :data:`DEFAULT_SETTINGS` (plus ``show_progress``).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; expected one of {KINDS}")
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be an iterable of strings, not a single string")
    if not isinstance(vocab_size, int) or vocab_size <= 0:
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    resolved = _resolve_settings(kind, settings)
    show_progress = bool(settings.get("show_progress", False))

    cache_root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    with _reiterable(texts) as corpus:
        corpus_sha, n_texts = _corpus_digest(corpus)
        if n_texts == 0:
            raise ValueError("cannot train a tokenizer on an empty corpus")
        identity = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "vocab_size": vocab_size,
            "settings": resolved,
            "corpus_sha256": corpus_sha,
        }
        key = _cache_key(identity)
        entry = cache_root / key

        cached = _load_entry(entry, identity)
        if cached is not None:
            return cached

        backend = _TRAINERS[kind](corpus, vocab_size, resolved, show_progress)
    tok = _wrap(kind, backend, resolved)
    meta = {
        **identity,
        "key": key,
        "n_texts": n_texts,
        "tokenizers_version": hf_tokenizers.__version__,
    }
    _atomic_save(tok, meta, entry)
    # Reload from disk so a fresh and a cached call return the same kind of object.
    return load_tokenizer(entry)


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Load a tokenizer saved with ``save_pretrained`` (e.g. a cache entry) from a local folder.

    The folder must exist: a missing local path is an error here, never a Hub repo id.
    """
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer at {path} (expected {path / 'tokenizer.json'})")
    return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)


def save_tokenizer(tok: PreTrainedTokenizerFast, directory: str | os.PathLike) -> Path:
    """Save `tok` into `directory` (a trained artifact's `tokenizer/`) all at once, so the model
    beside it can be scored as text on its own; a directory already holding this very tokenizer
    is kept. Returns the directory."""
    directory = Path(directory)
    content = hashlib.sha256(tok.backend_tokenizer.to_str().encode()).hexdigest()[:16]
    _atomic_save(tok, {"content": content, "added_tokens": len(tok)}, directory)
    return directory


def sentinel_ids(tok: PreTrainedTokenizerFast) -> list[int]:
    """Ids of ``<extra_id_0>, <extra_id_1>, ...`` in span order (for span corruption)."""
    ids = []
    while (i := tok.convert_tokens_to_ids(f"<extra_id_{len(ids)}>")) not in (None, tok.unk_token_id):
        ids.append(i)
    return ids


# --------------------------------------------------------------------------------------------
# settings, hashing and corpus handling


def _resolve_settings(kind: str, settings: dict[str, Any]) -> dict[str, Any]:
    defaults = DEFAULT_SETTINGS[kind]
    unknown = set(settings) - set(defaults) - _NON_KEY_SETTINGS
    if unknown:
        raise TypeError(f"unknown setting(s) for {kind!r}: {sorted(unknown)}; known: {sorted(defaults)}")
    return {k: settings.get(k, v) for k, v in sorted(defaults.items())}


def _cache_key(identity: dict[str, Any]) -> str:
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(blob).hexdigest()[:24]
    # kind and size up front so a human can tell the entries apart
    return f"{identity['kind']}-{identity['vocab_size']}-{digest}"


def _corpus_digest(texts: Iterable[str]) -> tuple[str, int]:
    """sha256 over the texts, streamed; each text is length-prefixed so ["ab","c"] != ["a","bc"]."""
    h = hashlib.sha256()
    n = 0
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}")
        data = text.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
        n += 1
    return h.hexdigest(), n


class _reiterable:
    """Context manager giving an iterable that can be traversed more than once.

    Containers and other re-iterables (``iter(x) is not x``) pass through untouched. A one-shot
    iterator is spooled, one JSON string per line, to a temporary file that is removed on exit.
    """

    def __init__(self, texts: Iterable[str]):
        self._texts = texts
        self._spool = None

    def __enter__(self) -> Iterable[str]:
        if iter(self._texts) is not self._texts:
            return self._texts
        self._spool = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        for text in self._texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be strings, got {type(text).__name__}")
            self._spool.write(json.dumps(text) + "\n")  # JSON escapes newlines: one text per line
        return _SpoolReader(self._spool)

    def __exit__(self, *exc) -> None:
        if self._spool is not None:
            self._spool.close()


class _SpoolReader:
    def __init__(self, f):
        self._f = f

    def __iter__(self) -> Iterator[str]:
        self._f.seek(0)
        for line in self._f:
            yield json.loads(line)


# --------------------------------------------------------------------------------------------
# the three trainers: each returns a `tokenizers.Tokenizer`


def _train_bpe(texts: Iterable[str], vocab_size: int, s: dict[str, Any], show_progress: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())  # no unk: every byte has a symbol
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=s["add_prefix_space"])
    # Digits first: "1234" becomes four pieces that no merge can join, so a number's tokens are
    # its digits (small models then learn arithmetic digit by digit, as LLaMA's and PaLM's vocabularies intend)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                         if s["individual_digits"] else byte_level)
    tok.decoder = decoders.ByteLevel()
    # trim_offsets=False keeps offsets on the raw bytes; the processor adds no tokens (GPT-2)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=s["min_frequency"],
        special_tokens=[BPE_SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
        show_progress=show_progress,
    )
    tok.train_from_iterator(iter(texts), trainer=trainer)
    return tok


def _train_wordpiece(texts: Iterable[str], vocab_size: int, s: dict[str, Any], show_progress: bool) -> Tokenizer:
    # The WordPiece trainer numbers the "##c" continuation symbols in the iteration order of a
    # Rust HashMap (random per process), and BPE breaks ties between equally frequent merges by
    # symbol id, so the raw trainer is not deterministic. We fix the alphabet ourselves (a
    # deterministic Python pass) and pre-register every "##c" as a special token so that all ids
    # are fixed before any merge; the final tokenizer is then rebuilt from the trained vocab
    # without those temporary specials. (BERT's vocab has "##c" for its whole alphabet too.)
    alphabet = _wordpiece_alphabet(texts, s)
    seeds = [f"##{c}" for c in alphabet]
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=s["min_frequency"],
        special_tokens=[*WORDPIECE_SPECIALS, *seeds],
        initial_alphabet=alphabet,
        # our alphabet has "infinite" count in the trainer, so this drops exactly the others
        limit_alphabet=len(alphabet),
        continuing_subword_prefix="##",
        show_progress=show_progress,
    )
    scratch = _wordpiece_pipeline(Tokenizer(models.WordPiece(unk_token="[UNK]")), s)
    scratch.train_from_iterator(iter(texts), trainer=trainer)
    vocab = scratch.get_vocab(with_added_tokens=False)
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.add_special_tokens(list(WORDPIECE_SPECIALS))
    return _wordpiece_pipeline(tok, s)


def _wordpiece_pipeline(tok: Tokenizer, s: dict[str, Any]) -> Tokenizer:
    # strip_accents=None: follow `lowercase`, as BERT's uncased/cased models do
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=s["lowercase"]
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    cls_id, sep_id = WORDPIECE_SPECIALS.index("[CLS]"), WORDPIECE_SPECIALS.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tok


def _wordpiece_alphabet(texts: Iterable[str], s: dict[str, Any]) -> list[str]:
    """The `limit_alphabet` most frequent normalised characters (ties by code point), + ASCII."""
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=s["lowercase"]
    )
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(normalizer.normalize_str(text))
    chars = sorted((c for c in counts if not c.isspace()), key=lambda c: (-counts[c], c))
    kept = set(chars[: s["limit_alphabet"]])
    if s["ascii_alphabet"]:
        kept |= set(_ASCII.lower() if s["lowercase"] else _ASCII)
    return sorted(kept)


def _train_unigram(texts: Iterable[str], vocab_size: int, s: dict[str, Any], show_progress: bool) -> Tokenizer:
    n_sentinels = s["n_sentinels"]
    n_pieces = vocab_size - n_sentinels
    if n_pieces <= len(UNIGRAM_SPECIALS):
        raise ValueError(f"vocab_size={vocab_size} leaves no room for pieces next to {n_sentinels} sentinels")
    tok = Tokenizer(models.Unigram())
    # SentencePiece's nmt_nfkc + remove_extra_whitespaces, as T5's vocabulary was built with
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    eos_id = UNIGRAM_SPECIALS.index("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    trainer = trainers.UnigramTrainer(
        vocab_size=n_pieces,
        special_tokens=list(UNIGRAM_SPECIALS),  # ids 0, 1, 2 in this order
        unk_token="<unk>",
        initial_alphabet=list(_ASCII) if s["ascii_alphabet"] else [],
        max_piece_length=s["max_piece_length"],
        shrinking_factor=s["shrinking_factor"],
        n_sub_iterations=s["n_sub_iterations"],
        show_progress=show_progress,
    )
    tok.train_from_iterator(iter(texts), trainer=trainer)
    tok.model = _canonical_unigram(tok)
    # Added tokens take the next free ids in order, so add <extra_id_{N-1}> first and
    # <extra_id_0> last: T5's layout, <extra_id_0> = last id of the vocabulary.
    tok.add_special_tokens([_sentinel(i) for i in reversed(range(n_sentinels))])
    return tok


def _canonical_unigram(tok: Tokenizer) -> models.Unigram:
    """The trained Unigram model with its run-to-run noise removed.

    Two sources of noise, both from Rust-HashMap iteration order:
    - EM statistics are summed in a random order, so scores differ in the last bits: rounding
      them to 1e-6 and ordering by (score, piece) fixes ids and segmentations;
    - characters that must stay encodable but lost their piece during EM pruning are re-added
      on a ladder of scores ``m, m + 1e-4, m + 2e-4, ...`` above the lowest score ``m``, dealt
      in random order. We find the ladder (single characters sitting on consecutive rungs) and
      re-deal it by code point.
    """
    model = json.loads(tok.to_str())["model"]
    pieces = [(p, round(float(score), 6)) for p, score in model["vocab"]]
    n_special = len(UNIGRAM_SPECIALS)
    assert [p for p, _ in pieces[:n_special]] == list(UNIGRAM_SPECIALS), pieces[:n_special]
    specials, rest = pieces[:n_special], pieces[n_special:]

    floor = min(sc for _, sc in rest)
    ladder: list[str] = []
    for rung in itertools.count():
        on_rung = [p for p, sc in rest if len(p) == 1 and abs(sc - (floor + 1e-4 * rung)) < 1.5e-6]
        if not on_rung:
            break
        ladder += on_rung
    ladder.sort()
    dealt = {c: round(floor + 1e-4 * k, 6) for k, c in enumerate(ladder)}
    rest = [(p, dealt.get(p, sc)) for p, sc in rest]
    rest.sort(key=lambda ps: (-ps[1], ps[0]))
    return models.Unigram(specials + rest, unk_id=model["unk_id"], byte_fallback=False)


_TRAINERS = {"bpe": _train_bpe, "wordpiece": _train_wordpiece, "unigram": _train_unigram}


def _sentinel(i: int) -> str:
    return f"<extra_id_{i}>"


def _wrap(kind: str, backend: Tokenizer, s: dict[str, Any]) -> PreTrainedTokenizerFast:
    """Wrap a trained backend in transformers with the kind's special-token roles set."""
    common = {"tokenizer_object": backend, "model_max_length": s["model_max_length"], "padding_side": "right"}
    if kind == "bpe":
        return PreTrainedTokenizerFast(
            **common,
            bos_token=BPE_SPECIAL,
            eos_token=BPE_SPECIAL,
            unk_token=BPE_SPECIAL,
            pad_token=BPE_SPECIAL,
            clean_up_tokenization_spaces=False,  # would break the byte-exact round trip
        )
    if kind == "wordpiece":
        pad, unk, cls, sep, mask = WORDPIECE_SPECIALS
        return PreTrainedTokenizerFast(
            **common,
            pad_token=pad,
            unk_token=unk,
            cls_token=cls,
            sep_token=sep,
            mask_token=mask,
            clean_up_tokenization_spaces=True,  # as bert-base-uncased
            model_input_names=["input_ids", "token_type_ids", "attention_mask"],
        )
    pad, eos, unk = UNIGRAM_SPECIALS
    return PreTrainedTokenizerFast(
        **common,
        pad_token=pad,
        eos_token=eos,
        unk_token=unk,
        extra_special_tokens=[_sentinel(i) for i in range(s["n_sentinels"])],
        clean_up_tokenization_spaces=False,
    )


# --------------------------------------------------------------------------------------------
# cache entries: atomic write, validated read


def _load_entry(entry: Path, identity: dict[str, Any]) -> PreTrainedTokenizerFast | None:
    """The cached tokenizer if ``entry`` is a complete entry for exactly ``identity``, else None."""
    return load_tokenizer(entry) if _is_entry_for(entry, identity) else None


def _is_entry_for(entry: Path, identity: dict[str, Any]) -> bool:
    try:
        meta = json.loads((entry / _META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    # a mismatch means a (truncated-)hash collision or a hand-edited entry: do not trust it
    return all(meta.get(k) == v for k, v in identity.items())


def _atomic_save(tok: PreTrainedTokenizerFast, meta: dict[str, Any], entry: Path) -> None:
    """Save into a temp dir next to ``entry`` and rename it into place.

    The metadata file is written last and everything is fsynced before the rename, so ``entry``
    either does not exist or is complete; a crash leaves at most a ``.tmp-*`` dir, never loaded.
    """
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{entry.name}-", dir=entry.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a cache entry is meant to be shared
        tok.save_pretrained(str(tmp))
        (tmp / _META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for f in tmp.iterdir():
            _fsync_path(f)
        _fsync_path(tmp)
        if _is_entry_for(entry, meta):
            return  # another process finished the same tokenizer meanwhile: keep theirs
        if entry.exists():
            # An incomplete or foreign entry: move it aside first, since rename() onto a
            # non-empty directory fails.
            trash = Path(tempfile.mkdtemp(prefix=f".old-{entry.name}-", dir=entry.parent))
            os.replace(entry, trash / "entry")
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.replace(tmp, entry)
        except OSError:
            # Another process renamed its identical entry into place between our checks.
            if not (entry / _META_FILE).is_file():
                raise
        _fsync_path(entry.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
