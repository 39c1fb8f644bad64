"""GPT-3's synthetic tasks, generated from their published definitions (Brown et al. 2020 §3.9).

The evaluation items are OpenAI's released files (``gpt3/<stem>`` in the task registry, fields
``context`` / ``completion``). This module writes *new* items of the same task families, for
pre-training documents and for the K-shot exemplar pools, and guarantees that none of them is an
evaluated item:

* arithmetic (§3.9.1): operands drawn uniformly from [0, 10^n) ("0 plus 25" occurs in the files:
  no padding, so an n-digit task holds shorter numbers too); 2Dx on [0, 100); 1DC is
  ``(a o b) o c`` with digits 1-9 and ops from {+, -, *} (the only shape in the file); sum of digits
  of a number in [0, 10^4). Prompt ``"\\n\\nQ: What is {a} plus|minus|times {b}?\\n\\nA:"``, answer
  ``" {value}"`` (negative results written ``-55``), exactly as in the files.
* word scrambling (§3.9.2): cycle letters (the word rotated by k in [1, len-1]: ``asinoc`` ->
  casino), A1 (all letters but the first and last shuffled, never the identity: the file has no
  unchanged word), A2 (all but the first two and last two shuffled; the file keeps 193 unchanged
  words, so no retry), random insertion (one of `` ./!`` between every pair of letters), reversed
  words. Prompt ``"\\n{scrambled} ="``, answer ``" {word}"``. Word lengths are the files' (5-15
  letters for A1, 6-15 for the others).

Exclusion: `Exclusion.from_files()` holds every context of every released file (all 18, evaluated
or not: an item of 3D+ may be a 2D+ question) and every target word of the scrambling files; a
generated item whose context is in the set, or whose target word is, is drawn again. Training
words come from the pre-training text (`word_list`), minus those target words.

Documents: `document()` writes 1 + j items of one task (j = 0..max demonstrations, drawn
uniformly) back to back, as the harness assembles a j-shot prompt (`Task.assemble`: item prompt +
answer, no separator beyond the files' own leading newlines, leading newlines stripped), so a model
sees every number of in-context examples from zero up during pre-training.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ARITHMETIC",
    "FAMILIES",
    "SCRAMBLE",
    "Exclusion",
    "Generator",
    "RI_CHARS",
    "WORD_LENGTHS",
    "arithmetic_item",
    "document",
    "load_file",
    "scramble",
    "scramble_item",
    "word_list",
]

# stem -> (short label used in the paper's tables, operand digits / kind)
ARITHMETIC: dict[str, tuple[str, str, int]] = {  # stem -> (label, op word, digits)
    "two_digit_addition": ("2D+", "plus", 2),
    "two_digit_subtraction": ("2D-", "minus", 2),
    "three_digit_addition": ("3D+", "plus", 3),
    "three_digit_subtraction": ("3D-", "minus", 3),
    "four_digit_addition": ("4D+", "plus", 4),
    "four_digit_subtraction": ("4D-", "minus", 4),
    "five_digit_addition": ("5D+", "plus", 5),
    "five_digit_subtraction": ("5D-", "minus", 5),
    "six_digit_addition": ("6D+", "plus", 6),
    "six_digit_subtraction": ("6D-", "minus", 6),
    "two_digit_multiplication": ("2Dx", "times", 2),
    "single_digit_three_ops": ("1DC", "three_ops", 1),
    "sum_of_digits": ("SD", "sum_of_digits", 4),
}
SCRAMBLE: dict[str, str] = {
    "cycle_letters_in_word": "CL",
    "mid_word_1_anagrams": "A1",
    "mid_word_2_anagrams": "A2",
    "random_insertion_in_word": "RI",
    "reversed_words": "RW",
}
FAMILIES: dict[str, str] = {**{s: v[0] for s, v in ARITHMETIC.items()}, **SCRAMBLE}  # stem -> label
# target-word lengths in the released files (min, max letters)
WORD_LENGTHS: dict[str, tuple[int, int]] = {stem: (6, 15) for stem in SCRAMBLE}
WORD_LENGTHS["mid_word_1_anagrams"] = (5, 15)
RI_CHARS = (" ", ".", "/", "!")  # the only characters the released random-insertion file inserts
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


# ----------------------------------------------------------------------------------------------
# One item


def _question(text: str) -> str:
    return f"\n\nQ: What is {text}?\n\nA:"


def arithmetic_item(stem: str, rng: random.Random) -> tuple[str, str]:
    """(context, completion) of one arithmetic item, in the released files' format."""
    label, op, digits = ARITHMETIC[stem]
    if op == "three_ops":
        a, b, c = (rng.randint(1, 9) for _ in range(3))
        o1, o2 = rng.choice("+-*"), rng.choice("+-*")
        value = _OPS[o2](_OPS[o1](a, b), c)
        return _question(f"({a} {o1} {b}) {o2} {c}"), f" {value}"
    if op == "sum_of_digits":
        n = rng.randrange(10**digits)
        return _question(f"the sum of the digits of the number {n}"), f" {sum(map(int, str(n)))}"
    a, b = rng.randrange(10**digits), rng.randrange(10**digits)
    value = {"plus": a + b, "minus": a - b, "times": a * b}[op]
    return _question(f"{a} {op} {b}"), f" {value}"


def scramble(stem: str, word: str, rng: random.Random) -> str:
    """The scrambled form of `word` under task `stem` (§3.9.2)."""
    if stem == "cycle_letters_in_word":
        k = rng.randint(1, len(word) - 1)
        return word[k:] + word[:k]
    if stem == "mid_word_1_anagrams":
        middle = list(word[1:-1])
        if len(set(middle)) < 2:
            raise ValueError(f"{word!r}: its middle letters cannot be shuffled into another word")
        while True:
            rng.shuffle(middle)
            out = word[0] + "".join(middle) + word[-1]
            if out != word:
                return out
    if stem == "mid_word_2_anagrams":
        middle = list(word[2:-2])
        rng.shuffle(middle)
        return word[:2] + "".join(middle) + word[-2:]
    if stem == "random_insertion_in_word":
        return word[0] + "".join(rng.choice(RI_CHARS) + ch for ch in word[1:])
    if stem == "reversed_words":
        return word[::-1]
    raise KeyError(f"unknown scrambling task {stem!r}; known: {', '.join(SCRAMBLE)}")


def scramble_item(stem: str, word: str, rng: random.Random) -> tuple[str, str]:
    return f"\n{scramble(stem, word, rng)} =", f" {word}"


def usable(stem: str, word: str) -> bool:
    lo, hi = WORD_LENGTHS[stem]
    if not (lo <= len(word) <= hi and word.isalpha() and word.islower()):
        return False
    return stem != "mid_word_1_anagrams" or len(set(word[1:-1])) >= 2


# ----------------------------------------------------------------------------------------------
# The evaluation files and what generated data must avoid


def load_file(stem: str) -> list[dict[str, str]]:
    """The released file's rows (``context``, ``completion``), in file order."""
    from repro.data import load

    columns = load(f"gpt3/{stem}", split="test").to_dict()
    return [{"context": c, "completion": x} for c, x in zip(columns["context"], columns["completion"])]


@dataclass
class Exclusion:
    """Contexts of evaluated items and target words of the scrambling tasks: never generated."""

    contexts: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)

    @classmethod
    def from_files(cls, stems: Iterable[str] = FAMILIES) -> Exclusion:
        out = cls()
        for stem in stems:
            rows = load_file(stem)
            out.contexts.update(r["context"] for r in rows)
            if stem in SCRAMBLE:
                out.words.update(r["completion"].strip() for r in rows)
        return out

    def allows(self, context: str, completion: str, stem: str) -> bool:
        if context in self.contexts:
            return False
        return not (stem in SCRAMBLE and completion.strip() in self.words)


_WORD = re.compile(r"\b[a-z]+\b")


def word_list(texts: Iterable[str], exclude: set[str] = frozenset(), top: int = 10_000,
              lengths: tuple[int, int] = (5, 15)) -> list[str]:
    """The `top` most frequent all-lowercase words of `lengths` letters in `texts`, minus
    `exclude` (the paper: the 10,000 most frequent words longer than 4 and shorter than 15
    characters); ties broken alphabetically, so the list is a function of the text."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(w for w in _WORD.findall(text) if lengths[0] <= len(w) <= lengths[1])
    ranked = sorted((w for w in counts if w not in exclude), key=lambda w: (-counts[w], w))
    return ranked[:top]


# ----------------------------------------------------------------------------------------------
# Many items, documents


class Generator:
    """Items of every family, deterministic from (seed, stem, stream), never an excluded one."""

    def __init__(self, words: Sequence[str], exclusion: Exclusion, seed: int = 0):
        self.exclusion = exclusion
        self.seed = seed
        self.words = {stem: [w for w in words if usable(stem, w) and w not in exclusion.words] for stem in SCRAMBLE}
        for stem, ws in self.words.items():
            if not ws:
                raise ValueError(f"no usable training word for {stem}: the word list is empty after exclusion")

    def rng(self, stem: str, stream: str) -> random.Random:
        return random.Random(f"gpt3_tasks|{self.seed}|{stem}|{stream}")

    def item(self, stem: str, rng: random.Random, max_tries: int = 1000) -> tuple[str, str]:
        for _ in range(max_tries):
            if stem in SCRAMBLE:
                context, completion = scramble_item(stem, rng.choice(self.words[stem]), rng)
            else:
                context, completion = arithmetic_item(stem, rng)
            if self.exclusion.allows(context, completion, stem):
                return context, completion
        raise RuntimeError(f"{stem}: {max_tries} draws in a row were evaluated items")

    def items(self, stem: str, n: int, stream: str = "items", unique: bool = False) -> list[dict[str, str]]:
        """n items of `stem` (distinct contexts if `unique`, e.g. an exemplar pool)."""
        rng = self.rng(stem, stream)
        out, seen, repeats = [], set(), 0
        while len(out) < n:
            context, completion = self.item(stem, rng)
            if unique:
                if context in seen:
                    repeats += 1
                    if repeats > 100 * n:
                        raise ValueError(f"{stem}: cannot draw {n} distinct items (got {len(out)}); more words needed")
                    continue
                seen.add(context)
            out.append({"context": context, "completion": completion})
        return out

    def documents(self, stem: str, n: int, max_demos: int, stream: str = "documents") -> list[str]:
        rng = self.rng(stem, stream)
        return [document([self.item(stem, rng) for _ in range(1 + rng.randint(0, max_demos))]) for _ in range(n)]


def document(items: Sequence[tuple[str, str]]) -> str:
    """Items back to back as the harness assembles a k-shot prompt with its answer: the last item
    follows len(items) - 1 demonstrations."""
    return "".join(context + completion for context, completion in items).lstrip("\n")
