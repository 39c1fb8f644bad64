"""InstructGPT at the smoke scale end to end (every metric key a claim reads, a computed verdict for
each claim, the figures and tables), and the recipe's pieces: the fixed HH-RLHF split, the dialogue
format, prompt masking in SFT, the scales' lengths and the paper's constants."""

import pytest
import torch

import papers
from harness.claims import STATUSES
from harness.results import read_run
from harness.runner import run_paper
from papers import gpt2
from papers.instructgpt import (
    SCALES,
    SPLIT,
    ScaleSettings,
    dialogue_prompt,
    hh_comparisons,
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
    block = gpt2.SCALES[s.gpt2_scale].block_size  # the base's max_seq_len
    assert s.prompt_tokens + s.max_new_tokens <= block
    assert s.prompt_tokens + s.response_tokens + 1 <= block or s.response_tokens + 1 < block
    sizes = gpt2.SCALES[s.gpt2_scale].sizes
    if s.big_base is not None:  # I-C2 needs a larger base than the policy
        assert sizes[s.big_base].d_model * sizes[s.big_base].n_layer > sizes[s.policy].d_model * sizes[s.policy].n_layer
    assert s.beta in s.betas and max(s.betas) > s.beta and s.rank_k > 2


def test_defaults_are_the_papers():
    d = ScaleSettings(gpt2_scale="cpu", policy=0, big_base=None, prompt_tokens=8, response_tokens=8,
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
    needed = {k for claim in paper.claims() for k in claim.predicate.keys()}
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
    for name in ("smoke_instructgpt_overoptimisation.png", "smoke_instructgpt_winrates.png"):
        assert (tmp_path / "figures" / name).exists()


def test_preference_claims_need_a_judge_that_beats_chance():
    from harness.claims import INCONCLUSIVE, REPRODUCED
    from harness.metrics import MetricResult, mean_with_ci

    def scores(v: float) -> MetricResult:
        return mean_with_ci("gold", [v + 0.01 * (i % 3) for i in range(60)], item_ids=list(range(60)))

    measured = {"ppo/gold_score": scores(1.0), "sft/gold_score": scores(0.5), "base/gold_score": scores(0.0),
                "big_base/gold_score": scores(0.2), "chance/pairwise": MetricResult.exact("accuracy", 0.5)}
    claims = {c.id: c for c in papers.get_paper("instructgpt").claims()}
    for judge, expected in ((0.8, REPRODUCED), (0.5, INCONCLUSIVE)):
        acc = mean_with_ci("accuracy", [1.0] * int(100 * judge) + [0.0] * (100 - int(100 * judge)))
        for cid in ("I-C1", "I-C2"):
            assert claims[cid].check({**measured, "rm_gold/heldout_acc": acc}).status == expected, (cid, judge)
