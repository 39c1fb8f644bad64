"""InstructGPT at the smoke scale end to end (every metric key a claim reads, a computed verdict for
each claim, the figures and tables), and the recipe's pieces: the fixed HH-RLHF split, the dialogue
format, prompt masking in SFT, the scales' lengths and the paper's constants."""

import zlib

import numpy as np
import pytest
import torch

import papers
from harness.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, STATUSES, deltas
from harness.metrics import MetricResult, mean_with_ci
from harness.results import read_run
from harness.runner import run_paper
from harness.seeds import across_seeds
from repro.bases import decoder_bases
from papers.instructgpt import (
    SCALES,
    SPLIT,
    WIN_DELTA,
    InstructGPT,
    ScaleSettings,
    dialogue_prompt,
    hh_comparisons,
    ppo_label,
    sft_batches,
    split_of,
)
from repro.model.heads import IGNORE_INDEX
from repro.rlhf import PPOConfig, RMConfig


def test_hh_split_is_fixed_disjoint_and_covers_the_pairs():
    halves = hh_comparisons()
    prompts = {name: {p for p, _, _ in rows} for name, rows in halves.items()}
    assert set(halves) == set(SPLIT) == {"proxy", "gold", "heldout"}
    assert not prompts["proxy"] & prompts["gold"]  # the gold judge never sees the proxy RM's prompts
    assert not (prompts["proxy"] | prompts["gold"]) & prompts["heldout"]
    total = sum(len(rows) for rows in halves.values())
    assert total == 8499  # 8,552 test pairs less 17 whose dialogues differ before the last turn and 36 ties
    assert 0.40 < len(halves["proxy"]) / total < 0.50 and 0.40 < len(halves["gold"]) / total < 0.50
    # a pure function of the prompt text: the same prompt lands on the same side, whatever the seed
    p = halves["gold"][0][0]
    assert split_of(p) == "gold" and split_of(p) == split_of(str(p))
    assert all(p.endswith("Assistant:") for p, _, _ in halves["heldout"][:50])
    assert hh_comparisons() == halves  # deterministic order


def test_demonstrations_use_the_comparisons_dialogue_format():
    assert dialogue_prompt("Name a colour.") == "\n\nHuman: Name a colour.\n\nAssistant:"
    assert dialogue_prompt("Translate.", "Bonjour") == "\n\nHuman: Translate.\nBonjour\n\nAssistant:"


def test_sft_masks_the_prompt_out_of_the_loss():
    examples = [([11, 12, 13], [21, 22, 0]), ([14, 15], [23, 0])]
    batch = sft_batches(examples, batch_size=6, seed=0, pad_id=0)(0)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert ids.shape == labels.shape == mask.shape
    for row_ids, row_labels in zip(ids.tolist(), labels.tolist()):
        prompt, response = next((p, r) for p, r in examples if row_ids[: len(p)] == p)
        targets = [t for t in row_labels if t != IGNORE_INDEX]
        assert targets == response  # exactly the response and its eos are scored
        assert row_labels[: len(prompt) - 1] == [IGNORE_INDEX] * (len(prompt) - 1)
    assert torch.equal(sft_batches(examples, 6, 0, 0)(3)["input_ids"], sft_batches(examples, 6, 0, 0)(3)["input_ids"])


@pytest.mark.parametrize("scale", list(SCALES))
def test_lengths_fit_the_base_models_positions(scale):
    s = SCALES[scale]
    sizes = decoder_bases(s.bases_scale)
    block = sizes[s.policy].block_size  # the base's context
    assert s.prompt_tokens + s.max_new_tokens <= block
    assert s.prompt_tokens + s.response_tokens + 1 <= block or s.response_tokens + 1 < block
    if s.big_base is not None:  # I-C2 needs a larger base than the policy
        assert sizes[s.big_base].d_model * sizes[s.big_base].n_layer > sizes[s.policy].d_model * sizes[s.policy].n_layer
    assert s.beta in s.betas and max(s.betas) > s.beta and s.rank_k > 2


def test_defaults_are_the_papers():
    d = ScaleSettings(bases_scale="cpu", policy=0, big_base=None, prompt_tokens=8, response_tokens=8,
                      max_new_tokens=8, sft_steps=1)
    assert d.beta == 0.02 and d.ptx_coef == 27.8 and d.rm_lr == 9e-6 and d.rm_epochs == 1 and d.rm_batch == 64
    assert d.ppo_batch == 512 and d.ppo_minibatch == 64 and d.ppo_epochs == 1 and max(d.betas) == 2.0
    p = PPOConfig()
    assert (p.beta, p.clip, p.gamma, p.lam, p.temperature, p.ppo_epochs) == (0.02, 0.2, 1.0, 0.95, 1.0, 1)
    assert RMConfig().grouped and RMConfig().epochs == 1


@pytest.mark.instructgpt
def test_instructgpt_smoke_run_records_every_claim_metric(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    paper = papers.get_paper("instructgpt")
    record = read_run(run_paper(paper, "smoke", root=tmp_path, quiet=True))
    needed = {k for claim in paper.claims("smoke") for k in claim.predicate.keys()}
    assert needed <= set(record.metrics), needed - set(record.metrics)
    for key in needed:
        m = record.metrics[key]
        assert m["n"] > 0 and m["ci_low"] is not None and m["ci_low"] <= m["value"] <= m["ci_high"], key
    assert {c["id"] for c in record.claims} == {"I-C1", "I-C2", "I-C3", "I-C4", "I-C5"}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    assert record.metrics["rm_proxy/heldout_acc"]["extra"]["reported_id"] == "rm_acc_train"
    assert record.metrics["win/ppo_ptx_vs_base"]["extra"]["reported_id"] == "win_vs_gpt3"
    for lab in ("base", "sft", "ppo", "ppo_ptx"):
        assert 0 <= record.metrics[f"{lab}/lambada/acc"]["value"] <= 1
    assert record.metrics["sft/kl"]["value"] == pytest.approx(0.0, abs=1e-4)  # SFT against itself
    tables = record.extra["tables"]
    assert any(t.startswith("Alignment tax") for t in tables) and any(t.startswith("PPO runs") for t in tables)
    # the training curves are drawn by the run; the win rates, KL sweep and alignment tax are declared
    # and drawn by the report from the metrics merged over seeds
    assert (tmp_path / "figures" / "smoke_instructgpt_overoptimisation.png").exists()
    assert [f["name"] for f in record.extra["plots"]] == ["winrates"]


def _seeded(name: str, per_seed: dict[int, list[float]]) -> MetricResult:
    """A metric measured on three seeds, each a mean over the same items (ids 0..n-1)."""
    return across_seeds(name, {s: mean_with_ci(name, v, item_ids=list(range(len(v)))) for s, v in per_seed.items()})


def _wins(p: float, tag: str, n: int = 200) -> MetricResult:
    """A win rate ~p on n prompts (1 / 0.5 / 0 per prompt), three seeds, each its own draw."""
    per_seed = {}
    for s in (0, 1, 2):
        u = np.random.default_rng(zlib.crc32(f"{tag}|{p}|{s}".encode())).random(n)
        per_seed[s] = [1.0 if x < p else 0.0 for x in u]
    return _seeded("win_rate", per_seed)


def _exact(name: str, value: float) -> MetricResult:
    return across_seeds(name, {s: MetricResult.exact(name, value) for s in (0, 1, 2)})


def _judge(acc: float, n: int = 400) -> MetricResult:
    k = int(acc * n)
    return _seeded("accuracy", {s: [1.0] * (k + s) + [0.0] * (n - k - s) for s in (0, 1, 2)})


def test_preference_claims_need_a_judge_that_beats_chance():
    measured = {"win/ppo_vs_sft": _wins(0.8, "a"), "win/sft_vs_base": _wins(0.75, "b"),
                "win/ppo_vs_big_base": _wins(0.8, "c"), "chance/pairwise": _exact("accuracy", 0.5)}
    claims = {c.id: c for c in papers.get_paper("instructgpt").claims("smoke")}
    for judge, expected in ((0.8, REPRODUCED), (0.5, INCONCLUSIVE)):
        for cid in ("I-C1", "I-C2"):
            verdict = claims[cid].check({**measured, "rm_gold/heldout_acc": _judge(judge)})
            assert verdict.status == expected, (cid, judge, verdict.explanation)
            assert verdict.evidence["claim"]["status"] == REPRODUCED  # the comparison alone, either way
    # a valid judge that prefers neither: win rates at a coin reach beyond ±δ (inconclusive), and win rates
    # below a coin are not a reproduction
    valid = {**measured, "rm_gold/heldout_acc": _judge(0.8)}
    assert claims["I-C2"].check({**valid, "win/ppo_vs_big_base": _wins(0.5, "d")}).status == INCONCLUSIVE
    assert claims["I-C2"].check({**valid, "win/ppo_vs_big_base": _wins(0.2, "e")}).status == NOT_REPRODUCED


def test_reward_model_comparison_needs_a_model_above_chance():
    """I-C5 compares two reward models: read only once the grouped one ranks held-out pairs above a coin."""
    claim = next(c for c in papers.get_paper("instructgpt").claims("cpu") if c.id == "I-C5")
    chance = _exact("accuracy", 0.5)
    above = {"rm_grouped/heldout_acc": _judge(0.8), "rm_shuffled/heldout_acc": _judge(0.6), "chance/pairwise": chance}
    assert claim.check(above).status == REPRODUCED
    at_chance = {"rm_grouped/heldout_acc": _judge(0.5), "rm_shuffled/heldout_acc": _judge(0.3), "chance/pairwise": chance}
    verdict = claim.check(at_chance)
    assert verdict.status == INCONCLUSIVE and verdict.evidence["claim"]["status"] == REPRODUCED


def test_claims_are_a_pure_function_of_the_scale():
    registered = papers.get_paper("instructgpt")
    for scale, s in SCALES.items():
        fresh = InstructGPT()
        before = [(c.id, c.predicate.keys()) for c in fresh.claims(scale)]
        for other in SCALES:
            fresh.claims(other)
        assert [(c.id, c.predicate.keys()) for c in fresh.claims(scale)] == before
        assert [(c.id, c.predicate.keys()) for c in registered.claims(scale)] == before
        assert [cid for cid, _ in before] == ["I-C1", "I-C2", "I-C3", "I-C4", "I-C5"]
        kl = next(keys for cid, keys in before if cid == "I-C4")
        assert [k for k in kl if k.endswith("/kl")] == [f"{ppo_label(b, 0)}/kl" for b in s.betas]  # the scale's sweep
    assert not vars(InstructGPT())


@pytest.mark.parametrize("scale", list(SCALES))
def test_every_comparison_states_a_delta_and_its_source(scale):
    for claim in InstructGPT().claims(scale):
        stated = deltas(claim.predicate)
        assert stated and all(d is not None and d > 0 for d in stated), claim.id
        assert claim.delta_source.strip(), claim.id
    assert 0 < WIN_DELTA < 0.21  # a win rate (fraction) below the paper's smallest margin over a coin (71% - 50%)


def test_measure_takes_one_seed():
    with pytest.raises(ValueError, match="one seed"):
        InstructGPT().measure("smoke", [0, 1])
