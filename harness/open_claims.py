"""What would decide the open claims: a reading of a results file's stored evidence.

A claim is open (inconclusive) for one of three reasons, and each asks for a different spend:

- its validity condition does not hold: the models have not learned what the claim is about, and
  more seeds of the same recipe will not help (a recipe change will);
- its comparison's interval is wide because of the seed-to-seed spread: more training seeds;
- it is wide because of the test set: more test items.

This module walks every comparison a verdict rests on (through `all_of`, `provided` and `monotone`,
as `harness.claims` builds them) and, for each one still inconclusive, says which of these it is,
from the numbers the run stored: its interval, seeds, seed spread and test-set variance, read
through `harness.seeds.power_note`. Nothing is trained and no verdict changes; `repro open` prints
it and the report has it as a table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from harness.metrics import display_factor
from harness.seeds import SeedInterval, power_note

INCONCLUSIVE, NOT_REPRODUCED = "inconclusive", "not reproduced"


@dataclass(frozen=True)
class OpenComparison:
    claim: str
    role: str  # "condition" (a validity condition) or "claim" (the comparison the claim is about)
    what: str  # the comparison, as metric names
    status: str
    point: float | None
    ci: tuple[float, float] | None
    seeds: int | None
    kind: str  # "recipe" (the models must learn more), "items", "seeds" or "other"
    need: str  # what would decide it, in words
    seeds_needed: int | None  # seeds per arm that would detect the measured effect (80% power), if any
    factor: float = 1.0  # display unit (x100 for accuracies)

    def row(self) -> dict[str, Any]:
        f = self.factor
        effect = "–" if self.point is None else f"{self.point * f:.3g}"
        if self.ci is not None and all(math.isfinite(x) for x in self.ci):
            effect += f" [{self.ci[0] * f:.3g}, {self.ci[1] * f:.3g}]"
        return {"claim": self.claim, "role": self.role, "comparison": self.what, "status": self.status,
                "effect [95% CI]": effect, "seeds": self.seeds if self.seeds is not None else "–",
                "would decide it": self.need}


def _interval(d: dict) -> SeedInterval | None:
    if not isinstance(d, dict) or d.get("seeds") is None or d.get("point") is None:
        return None
    return SeedInterval.from_dict(d)


def _need(iv: SeedInterval | None, delta: float | None, threshold: float, factor: float,
          role: str) -> tuple[str, str, int | None]:
    """(kind, what would decide it, seeds per arm): kind is "recipe", "items", "seeds" or "other"."""
    if iv is None:
        return "other", "no interval stored", None
    if iv.seeds < 2 or iv.seed_sd is None:
        return "seeds", "at least 3 training seeds per arm (one seed never decides)", 3
    if iv.seed_sd == 0 and iv.item_var == 0 and iv.point == threshold:
        return "recipe", ("nothing to compare: every seed scores exactly the floor on every item; "
                          "a recipe change"), None
    if role == "condition" and iv.point <= threshold:
        return "recipe", (f"the model measures at or below its floor ({(iv.point - threshold) * factor:.3g}): "
                          "it has not learned what the claim is about; a recipe change"), None
    note = power_note(iv, delta, factor, threshold=threshold)
    need = note.get("seeds_for_measured")
    if need:
        return "seeds", f"~{need} seeds per arm, if the measured effect is real", need
    if note.get("seeds_needed"):  # the measured effect is within δ: seeds to tell δ from nothing
        return "seeds", note["advice"], note["seeds_needed"]
    advice = note.get("advice") or "no δ stated and no effect measured: more seeds alone would not decide it"
    return ("items" if "test items" in advice else "other"), advice, None


def condition_metrics(node: dict) -> list[str]:
    """The metric names a verdict node compares, through its parts (first seen first)."""
    ev = node.get("evidence") or {}
    names = list(ev.get("metrics") or {})
    for part in ev.get("parts") or []:
        names += [n for n in condition_metrics(part) if n not in names]
    return names


def _leaves(claim_id: str, role: str, node: dict) -> list[OpenComparison]:
    """Every inconclusive comparison under `node` (a {"status", "evidence"} verdict)."""
    status, ev = node.get("status"), node.get("evidence") or {}
    if "condition" in ev and "claim" in ev:  # provided(condition, claim)
        condition = ev["condition"]
        if condition.get("status") == NOT_REPRODUCED:  # refuted: the claim is not read at all
            names = ", ".join(condition_metrics(condition)) or "–"
            return [OpenComparison(claim_id, "condition", names, NOT_REPRODUCED, None, None, None, "recipe",
                                   "the condition is refuted: the models did not learn what the claim is about; "
                                   "a recipe change, not more seeds", None)]
        return _leaves(claim_id, "condition", condition) + _leaves(claim_id, role, ev["claim"])
    if "parts" in ev:
        return [leaf for part in ev["parts"] for leaf in _leaves(claim_id, role, part)]
    if status != INCONCLUSIVE:
        return []
    names = list(ev.get("metrics") or {})
    missing = re.search(r"metric (\S+) was not measured", node.get("explanation") or "")
    if missing:  # the scale runs no such arm: no seed or item count will bring it
        return [OpenComparison(claim_id, role, missing[1], status, None, None, None, "recipe",
                               f"{missing[1]} is not measured at this scale (the recipe runs no such arm; the "
                               "paper's notes say why); a recipe change", None)]
    for key in ("difference", "ends"):
        if isinstance(ev.get(key), dict):
            iv = _interval(ev[key])
            # a sweep's "ends" is its last - first step oriented the way the claim runs (a fall in
            # perplexity counts as a gain), so it is named by its ends, not as a signed difference
            what = f"{names[0]} − {names[1]}" if key == "difference" and len(names) == 2 else \
                f"{names[0]} → {names[-1]} (gain as claimed)" if names else key
            factor = display_factor(*names) if names else 1.0
            kind, need, k = _need(iv, ev.get("delta"), float(ev.get("margin") or 0.0) if key == "difference" else 0.0,
                                  factor, role)
            return [OpenComparison(claim_id, role, what, status, iv.point if iv else None,
                                   (iv.lo, iv.hi) if iv else None, iv.seeds if iv else None, kind, need, k, factor)]
    return [OpenComparison(claim_id, role, ", ".join(names) or "–", status, None, None, None, "other",
                           "a rule without a stored interval (see the claim's explanation)", None)]


def open_comparisons(record) -> list[OpenComparison]:
    """The inconclusive comparisons of every inconclusive claim of a run (a `RunRecord` or its dict).
    A condition that fails is listed first: until it holds, the claim's own comparison is not read."""
    claims = record["claims"] if isinstance(record, dict) else record.claims
    out: list[OpenComparison] = []
    for c in claims:
        if c.get("status") == INCONCLUSIVE:
            out += _leaves(c["id"], "claim", {"status": c["status"], "evidence": c.get("evidence") or {},
                                              "explanation": c.get("explanation")})
    return out


# what blocks a claim, most fundamental first: until its models learn, neither items nor seeds help
BLOCKERS = ("recipe", "items", "seeds", "other")
BLOCKER_WORDS = {"recipe": "a recipe change (a validity condition fails: the models have not learned it)",
                 "items": "more test items", "seeds": "more training seeds", "other": "see the claim's explanation"}
COUNT_WORDS = {"recipe": "need a recipe change", "items": "more test items", "seeds": "more training seeds",
               "other": "something else (see the claim)"}  # "N <words>" in the report's summary line


def claim_needs(record) -> dict[str, dict[str, Any]]:
    """{claim id: {"blocker": kind, "needs": words, "seeds": the most seeds any of its comparisons
    needs (when seeds are the blocker)}} for every inconclusive claim: the one-line answer to 'what
    would it take', read from `open_comparisons`."""
    by_claim: dict[str, list[OpenComparison]] = {}
    for r in open_comparisons(record):
        by_claim.setdefault(r.claim, []).append(r)
    out = {}
    for claim, rows in by_claim.items():
        kind = min((r.kind for r in rows), key=BLOCKERS.index)
        seeds = max((r.seeds_needed or 0 for r in rows if r.kind == "seeds"), default=0) or None
        words = BLOCKER_WORDS[kind] + (f": ~{seeds} seeds per arm (80% power)"
                                       if kind == "seeds" and seeds else "")
        out[claim] = {"blocker": kind, "needs": words, "seeds": seeds if kind == "seeds" else None}
    return out
