"""The PEFT module: the smoke scale end to end (every claim's metrics measured, a verdict for each,
the tables and the figure), verdicts that follow synthetic metrics each way, and the recipe's
pieces (verbaliser, score gaps, step memory, few-shot budgets)."""

import numpy as np
import pytest
import torch

import papers
from harness.claims import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, STATUSES, deltas
from harness.metrics import MetricResult, mean_with_ci
from harness.results import read_run
from harness.runner import run_paper
from harness.seeds import across_seeds
from papers import peft
from papers.glue import TASKS, task_metrics
from repro.model import LanguageModel, SequenceClassifier, scaled
from repro.peft_methods import FullConfig, LoRAConfig, apply_peft

pytestmark = pytest.mark.peft


def test_peft_smoke_run_records_every_claim_metric(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    paper = papers.get_paper("peft")
    record = read_run(run_paper(paper, "smoke", root=tmp_path, quiet=True))
    keys = {k for c in paper.claims("smoke") for k in c.predicate.keys()}
    for key in keys:
        metric = record.metrics[key]
        assert metric["n"] > 0 and metric["ci_low"] <= metric["value"] <= metric["ci_high"], key
    assert {c["id"] for c in record.claims} == {"P-C1", "P-C2", "P-C3", "P-C4"}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    s = peft.SCALES["smoke"]
    for method in peft.METHODS:  # every method: cost, GLUE and XSum scores
        assert record.metrics[f"cost/encoder/{method}/train_memory_mb"]["value"] > 0
        assert record.metrics[f"cost/{s.main.label}/{method}/train_tokens_per_s"]["value"] > 0
        assert f"glue/{method}/avg" in record.metrics and f"xsum/{method}/rougeL" in record.metrics
    shares = {m: record.metrics[f"cost/encoder/{m}/trainable_share"]["value"] for m in peft.METHODS}
    assert shares["full"] == 1 and all(0 < shares[m] < 1 for m in ("lora", "adapter", "prompt", "ptuning_v2", "ia3"))
    memory = {m: record.metrics[f"cost/encoder/{m}/train_memory_mb"]["value"] for m in ("full", "lora")}
    assert memory["lora"] < memory["full"]
    tables = record.extra["tables"]
    choice = next(rows for title, rows in tables.items() if title.startswith("Choosing a method"))
    # per base: every method and the majority-class floor, and on the GLUE arm the from-scratch row
    assert len(choice) == (len(peft.METHODS) + 1) * (1 + len(s.sweep_labels)) + 1
    assert record.metrics["glue/scratch/gap"]["n"] > 0
    # SST-2 is scored on dev and the held-out training sentences; the dev_ metrics on dev alone
    assert record.metrics["glue/full/sst2/acc"]["n"] == s.eval_examples + s.glue_heldout
    assert record.metrics["glue/full/sst2/dev_acc"]["n"] == s.eval_examples
    assert "glue/full/rte/dev_acc" not in record.metrics  # RTE has no held-out sentences
    assert s.encdec_labels and all(f"sweep/{label}/prompt/gap" in record.metrics for label in s.encdec_labels)
    assert record.metrics[f"sweep/{s.encdec_labels[-1]}/prompt/gap"]["extra"]["reported_id"] == "prompt_tuning_scale"
    assert [f["name"] for f in record.extra["plots"]] == ["encoder", "fewshot", "sweeps"]  # declared; the report draws them
    assert record.metrics["glue/lora/gap"]["extra"]["reported_id"] == "lora_roberta_base"


# ----------------------------------------------------------------------------------------------
# Claims on synthetic metrics


def interval(value, half):
    return MetricResult("x", value, 500, value - half, value + half)


def items(p, n=400, seed=0):
    """Per-item correctness with mean ~p, ids shared across methods (so comparisons pair)."""
    rng = np.random.default_rng(seed)
    m = mean_with_ci("acc", (rng.random(n) < p).astype(float))
    m.extra["item_ids"] = [str(i) for i in range(n)]
    return m


def synthetic(outcome: str) -> dict:
    s = peft.SCALES["smoke"]
    gap = {"good": interval(0.0, 0.002), "bad": interval(-0.06, 0.01), "unclear": interval(-0.01, 0.05)}[outcome]
    m = {"glue/majority/gap": interval(-0.3, 0.03), "glue/full/gap": peft.no_gap(), "glue/scratch/gap": interval(-0.1, 0.03),
         "glue/lora/gap": gap, "glue/adapter/gap": gap, "threshold/adapter_share": MetricResult.exact("s", 0.05),
         "cost/encoder/adapter/trainable_share": MetricResult.exact("s", 0.02)}
    for t in s.glue_tasks:  # pre-training transfers: the pre-trained row beats the one from random weights
        score = TASKS[t].score
        m[f"glue/full/{t}/{score}"], m[f"glue/scratch/{t}/{score}"] = \
            (items(0.8, seed=5), items(0.6, seed=5)) if score == "acc" else (interval(0.5, 0.03), interval(0.3, 0.03))
    prompt_gaps = {"good": [-0.3, -0.15, -0.02], "bad": [-0.02, -0.15, -0.3], "unclear": [-0.1, -0.1, -0.1]}[outcome]
    for z, g in zip(s.encdec_labels, prompt_gaps):
        m[f"sweep/{z}/full/gap"], m[f"sweep/{z}/majority/gap"] = peft.no_gap(), interval(-0.3, 0.03)
        m[f"sweep/{z}/prompt/gap"] = interval(g, 0.03 if outcome != "unclear" else 0.2)
    # "bad": (IA)^3 learned (above the majority class) but below the others
    ia3, other = {"good": (0.8, 0.6), "bad": (0.7, 0.9), "unclear": (0.7, 0.7)}[outcome]
    m["fewshot/majority/acc"] = items(0.5, seed=1)
    m["fewshot/ia3/acc"] = items(ia3, seed=2)
    m["fewshot/lora/acc"], m["fewshot/prompt/acc"] = items(other, seed=2), items(other, seed=2)
    if outcome == "unclear":  # the same accuracy, other draws: an interval reaching beyond ±δ
        m["fewshot/lora/acc"], m["fewshot/prompt/acc"] = items(ia3, seed=3), items(ia3, seed=4)
    m["fewshot/ia3/trainable"] = MetricResult.exact("n", 1728)
    m["fewshot/lora/trainable"], m["fewshot/prompt/trainable"] = MetricResult.exact("n", 9216), MetricResult.exact("n", 1920)
    return m


@pytest.mark.parametrize("outcome,status", [("good", REPRODUCED), ("bad", NOT_REPRODUCED), ("unclear", INCONCLUSIVE)])
def test_verdicts_follow_synthetic_metrics(outcome, status):
    for claim in peft.PEFT().claims("smoke"):
        assert claim.check(synthetic(outcome)).status == status, claim.id


def test_glue_claims_wait_for_a_base_whose_pre_training_transfers():
    """LoRA and adapters adapt what the base already has: where full fine-tuning from random weights
    does as well as from the base, their shortfall says nothing about the papers' claims."""
    claims = {c.id: c for c in peft.PEFT().claims("smoke")}
    m = synthetic("bad")
    assert claims["P-C1"].check(m).status == NOT_REPRODUCED
    m["glue/scratch/sst2/acc"] = items(0.8, seed=6)  # on SST-2, from scratch as good as the pre-trained base
    assert claims["P-C1"].check(m).status == INCONCLUSIVE and claims["P-C3"].check(m).status == INCONCLUSIVE
    m["glue/scratch/sst2/acc"] = items(0.6, seed=6)
    m["glue/scratch/cola/mcc"] = interval(0.5, 0.05)  # every task's condition must hold
    assert claims["P-C1"].check(m).status == INCONCLUSIVE


def test_p_c3_reads_the_trained_share_of_the_glue_arms_own_base():
    """At cpu the GLUE arm tunes a decoder: P-C3's share is that decoder's, not the encoder's."""
    s = peft.SCALES["cpu"]
    assert s.glue_base != "encoder"
    m = synthetic("good")
    m[f"cost/{s.glue_base}/adapter/trainable_share"] = m.pop("cost/encoder/adapter/trainable_share")
    claims = {c.id: c for c in peft.PEFT().claims("cpu")}
    assert claims["P-C3"].check(m).status == REPRODUCED
    m[f"cost/{s.glue_base}/adapter/trainable_share"] = MetricResult.exact("s", 0.2)  # far more than "a few %"
    assert claims["P-C3"].check(m).status == NOT_REPRODUCED


def test_scratch_base_is_the_same_network_with_fresh_weights():
    config = scaled("gpt2_small", n_layer=1, d_model=16, n_head=2, vocab_size=50)
    trained = LanguageModel(config)
    base = peft.Base("L1d16", "decoder", config, trained.state_dict(), None, 0, "run-key")
    a, b = peft.scratch_base(base, 0), peft.scratch_base(base, 0)
    assert a.config == base.config and a.key != base.key and a.key == b.key
    assert a.state.keys() == base.state.keys()
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)  # seeded
    assert not torch.equal(a.state["lm_head.proj.weight"], base.state["lm_head.proj.weight"])
    assert peft.scratch_base(base, 1).key != a.key


def test_a_method_equal_to_a_full_fine_tuning_that_learned_nothing_is_not_a_reproduction():
    m = synthetic("good")
    m["glue/majority/gap"] = interval(-0.01, 0.03)  # full fine-tuning no better than the majority class
    claims = {c.id: c for c in peft.PEFT().claims("smoke")}
    assert claims["P-C1"].check(m).status == INCONCLUSIVE and claims["P-C3"].check(m).status == INCONCLUSIVE


def test_fc4_needs_ia3_within_the_others_budgets():
    m = synthetic("good")
    m["fewshot/prompt/trainable"] = MetricResult.exact("n", 1000)  # fewer than (IA)^3's 1,728
    claim = next(c for c in peft.PEFT().claims("smoke") if c.id == "P-C4")
    assert claim.check(m).status == NOT_REPRODUCED


# ----------------------------------------------------------------------------------------------
# Claims over seeds: δ, the majority-class floor, and claims that depend on the scale alone


SEEDS = (0, 1, 2)


def over_seeds(per_seed: dict[int, MetricResult]) -> MetricResult:
    return across_seeds(next(iter(per_seed.values())).name, per_seed)


def gap(values, half=0.002) -> MetricResult:
    """A score gap measured on three seeds (no per-item values: each seed's CI carries the dev set's noise)."""
    return over_seeds({s: MetricResult("score_gap", v, 4000, v - half, v + half) for s, v in zip(SEEDS, values)})


def seeded_items(p: float, tag: int, n: int = 400) -> MetricResult:
    """Per-item correctness ~p on the same n items, each seed its own draw."""
    return over_seeds({s: items(p, n, seed=100 * tag + s) for s in SEEDS})


def floor_items(p: float = 0.5, n: int = 400) -> MetricResult:
    """The majority class on the same items: the same answers on every seed."""
    m = mean_with_ci("acc", [float(i < p * n) for i in range(n)])
    m.extra["item_ids"] = [str(i) for i in range(n)]
    return over_seeds({s: m for s in SEEDS})


def test_lora_equal_to_a_full_fine_tuning_at_the_majority_class_is_not_read():
    """P-C1's comparison alone reads reproduced (LoRA within a point of full fine-tuning on three seeds),
    but full fine-tuning is at the majority class: a LoRA that learned nothing would pass too."""
    claim = next(c for c in peft.PEFT().claims("cpu") if c.id == "P-C1")
    m = {"glue/full/gap": over_seeds({s: peft.no_gap() for s in SEEDS}), "glue/lora/gap": gap([0.001, -0.001, 0.0]),
         "glue/majority/gap": gap([-0.002, 0.001, 0.0], half=0.01), "glue/scratch/gap": gap([-0.05, -0.04, -0.06]),
         "glue/full/sst2/acc": seeded_items(0.8, 1), "glue/scratch/sst2/acc": seeded_items(0.6, 2)}
    verdict = claim.check(m)
    assert verdict.status == INCONCLUSIVE and verdict.evidence["claim"]["status"] == REPRODUCED
    # above the majority class, but by less than the point LoRA may lose: still not read
    m["glue/majority/gap"] = gap([-0.008, -0.009, -0.007], half=0.001)
    assert claim.check(m).status == INCONCLUSIVE
    # clearly above: the same comparison decides
    m["glue/majority/gap"] = gap([-0.2, -0.21, -0.19], half=0.02)
    assert claim.check(m).status == REPRODUCED


def test_fewshot_comparison_needs_ia3_above_the_majority_class():
    claim = next(c for c in peft.PEFT().claims("cpu") if c.id == "P-C4")
    m = {"fewshot/majority/acc": floor_items(), "fewshot/ia3/acc": floor_items(),  # (IA)^3 answers the majority class
         "fewshot/lora/acc": seeded_items(0.1, 1), "fewshot/prompt/acc": seeded_items(0.1, 2),
         "fewshot/ia3/trainable": MetricResult.exact("n", 1728), "fewshot/lora/trainable": MetricResult.exact("n", 9216),
         "fewshot/prompt/trainable": MetricResult.exact("n", 1920)}
    for k in ("fewshot/ia3/trainable", "fewshot/lora/trainable", "fewshot/prompt/trainable"):
        m[k] = over_seeds({s: m[k] for s in SEEDS})
    verdict = claim.check(m)
    assert verdict.status == INCONCLUSIVE and verdict.evidence["claim"]["status"] == REPRODUCED
    m["fewshot/ia3/acc"] = seeded_items(0.8, 3)
    assert claim.check(m).status == REPRODUCED


def test_claims_are_a_pure_function_of_the_scale():
    registered = papers.get_paper("peft")
    for scale in peft.SCALES:
        fresh = peft.PEFT()
        before = [(c.id, c.predicate.keys()) for c in fresh.claims(scale)]
        for other in peft.SCALES:
            fresh.claims(other)
        assert [(c.id, c.predicate.keys()) for c in fresh.claims(scale)] == before
        assert [(c.id, c.predicate.keys()) for c in registered.claims(scale)] == before
        assert [(c.id, c.predicate.keys()) for c in peft.PEFT("gpu").claims(scale)] == before  # old constructor
        assert [cid for cid, _ in before] == ["P-C1", "P-C2", "P-C3", "P-C4"]
    assert not vars(peft.PEFT("cpu"))


@pytest.mark.parametrize("scale", list(peft.SCALES))
def test_every_comparison_states_a_delta_and_its_source(scale):
    for claim in peft.PEFT().claims(scale):
        stated = deltas(claim.predicate)
        assert stated and all(d is not None and d > 0 for d in stated), claim.id
        assert claim.delta_source.strip(), claim.id


def test_measure_takes_one_seed_and_fewshot_subsets_never_repeat_across_seeds():
    with pytest.raises(ValueError, match="one seed"):
        peft.PEFT().measure("smoke", [0, 1])
    for s in peft.SCALES.values():
        drawn = [peft.fewshot_seed(s, seed, i) for seed in range(4) for i in range(s.fewshot_subsets)]
        assert len(set(drawn)) == len(drawn)
        assert [peft.fewshot_seed(s, 0, i) for i in range(s.fewshot_subsets)] == list(range(s.fewshot_subsets))
    with pytest.raises(ValueError):
        peft.fewshot_seed(peft.SCALES["cpu"], 0, peft.SCALES["cpu"].fewshot_subsets)


def test_learning_rates_are_chosen_on_a_tuning_split_of_the_training_examples(monkeypatch):
    """`select_lr` trains on part of the training examples and scores the rest; the dev set that
    decides the verdicts is never scored."""
    task = TASKS["sst2"]
    train = [([i, 100 + i], [0, 0]) for i in range(50)]
    dev = [([900 + i], [0]) for i in range(20)]
    data = peft.TaskData(task, train, [float(i % 2) for i in range(50)], dev, [1.0] * 20)
    split = peft.tuning_split(data, 0.2, seed=0)
    assert len(split.val) == 10 and len(split.train) == 40
    assert sorted(split.train + split.val) == sorted(train) and not set(map(str, split.val)) & set(map(str, split.train))
    assert not set(map(str, split.val)) & set(map(str, dev))  # nothing of the dev set
    assert [x for x in peft.tuning_split(data, 0.2, seed=0).val] == split.val  # seeded
    with pytest.raises(ValueError):
        peft.tuning_split(data, 0.0)

    seen = []

    def fake_job(job, base, recipe, d, *args):
        seen.append((job.arm, recipe.lr, d.val))
        truth = np.asarray(d.val_labels, dtype=int)
        right = recipe.lr == 1e-2  # this rate predicts the tuning split perfectly, the others never
        return {"preds": (truth if right else 1 - truth).tolist()}

    monkeypatch.setattr(peft, "encoder_data", lambda *a, **k: data)
    monkeypatch.setattr(peft, "classify_job", fake_job)
    monkeypatch.setattr(peft, "class_tokens", lambda task, base: None)
    base = type("FakeBase", (), {"kind": "encoder", "label": "encoder", "max_len": 64})()
    s = peft.SCALES["smoke"]
    out = peft.select_lr(base, s.recipe("lora"), "sst2", (3e-3, 1e-2, 3e-2), s)
    assert out["lr"] == 1e-2 and out["scores"][1e-2] == 1.0 and not out["tied"]
    assert out["tuning_examples"] == round(peft.TUNING_FRACTION * 50) and out["train_examples"] == 50 - out["tuning_examples"]
    assert all(arm == "lr_select" and all(x in train for x in val) for arm, _, val in seen)


# ----------------------------------------------------------------------------------------------
# Pieces


def test_score_gap_is_paired_and_zero_for_identical_predictions():
    rng = np.random.default_rng(0)
    golds = rng.integers(0, 2, 300)
    noisy = np.where(rng.random(300) < 0.3, 1 - golds, golds)  # 70% right
    better = np.where(rng.random(300) < 0.1, 1 - golds, golds)  # 90% right
    parts = lambda p: [(TASKS["sst2"], p, golds), (TASKS["cola"], p, golds)]  # noqa: E731
    same = peft.score_gap(parts(noisy), parts(noisy))
    assert same.value == 0 and same.ci_low == same.ci_high == 0
    up = peft.score_gap(parts(better), parts(noisy))
    score = lambda p: np.mean([task_metrics(t, q, g)[t.score].value for t, q, g in parts(p)])  # noqa: E731
    assert up.value == pytest.approx(score(better) - score(noisy)) and up.ci_low > 0


class _Tok:
    """Spells ' True' / ' False' from a shared ' ' token, as a small BPE vocabulary does."""

    def __call__(self, text, add_special_tokens=False):
        table = {" True": [5, 7], " False": [5, 8], " yes": [9], " no": [10]}
        return {"input_ids": table[text]}


def test_verbaliser_reads_the_first_token_that_differs(monkeypatch):
    base = peft.Base("L1", "gpt2", scaled("gpt2_small", n_layer=1, d_model=16, n_head=2, vocab_size=32), {}, _Tok(), 0, "k")
    monkeypatch.setattr(peft, "class_words", lambda task: {"rte": ["True", "False"], "cola": ["no", "yes"]}[task])
    assert peft.verbaliser("rte", base) == ([5], [7, 8])
    assert peft.verbaliser("cola", base) == ([], [10, 9])


def test_decoder_classifier_reads_the_lm_head_at_the_last_real_token():
    torch.manual_seed(0)
    lm = LanguageModel(scaled("gpt2_small", n_layer=1, d_model=16, n_head=2, vocab_size=32, max_seq_len=16,
                              dropout=0.0)).eval()
    clf = peft.DecoderClassifier(lm, [3, 4])
    ids = torch.randint(0, 32, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    full = lm(ids, mask).logits
    expected = torch.stack([full[0, 5, [3, 4]], full[1, 3, [3, 4]]])
    torch.testing.assert_close(clf(ids, mask).logits, expected)
    assert peft.DecoderClassifier(lm, [3, 4], linear_head=True)(ids, mask).logits.shape == (2, 2)


def _tiny_encdec() -> LanguageModel:
    return LanguageModel(scaled("t5_small", n_layer=1, d_model=16, n_head=2, d_ff=32, vocab_size=32, dropout=0.0))


def test_encdec_classifier_reads_the_label_tokens_after_the_start_and_shared_tokens():
    torch.manual_seed(0)
    lm = _tiny_encdec().eval()
    ids = torch.randint(3, 32, (2, 6))
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    clf = peft.EncDecClassifier(lm, [3, 4], shared=[7], start_id=0)
    start = torch.tensor([[0, 7], [0, 7]])
    expected = lm(ids, mask, decoder_input_ids=start).logits[:, -1, [3, 4]]
    torch.testing.assert_close(clf(ids, mask).logits, expected)
    padded = torch.cat([ids[1:, :4], torch.full((1, 3), 5)], 1)  # the second row, other padding
    torch.testing.assert_close(clf(padded, torch.tensor([[1] * 4 + [0] * 3])).logits, expected[1:])


@pytest.mark.parametrize("method", peft.METHODS)
def test_every_method_tunes_an_encoder_decoder_classifier(method):
    """Each recipe wraps the text-to-text classifier (virtual tokens included) and its loss falls on
    a fixed batch; what the method freezes gets no gradient."""
    torch.manual_seed(0)
    recipe = peft.SCALES["smoke"].recipe(method)
    clf = peft.EncDecClassifier(_tiny_encdec(), [3, 4], shared=[], start_id=0, linear_head=recipe.linear_head)
    info = apply_peft(clf, peft.method_config(recipe, [[3], [4]]), train_also=("classifier.",),
                      label_token_ids=[[3], [4]], seed=0)
    assert info.trainable > 0 and 0 < info.stored <= info.base_parameters + 64  # + a linear head
    ids, labels = torch.randint(5, 32, (8, 7)), torch.tensor([0, 1] * 4)
    optimizer = torch.optim.AdamW([p for p in clf.parameters() if p.requires_grad], lr=recipe.lr)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(clf(ids, torch.ones_like(ids)).logits, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in clf.parameters() if not p.requires_grad)


def test_step_memory_counts_what_full_fine_tuning_adds():
    config = scaled("bert_base", n_layer=1, d_model=32, n_head=2, d_ff=64, vocab_size=100, max_seq_len=32).replace(n_labels=2)
    batch = {"input_ids": torch.randint(5, 100, (4, 10)), "attention_mask": torch.ones(4, 10, dtype=torch.long),
             "labels": torch.tensor([0, 1, 0, 1])}
    memory = {}
    for name, config_ in (("full", FullConfig()), ("lora", LoRAConfig(r=2))):
        torch.manual_seed(0)
        model = SequenceClassifier(config)
        apply_peft(model, config_, train_also=("classifier.",))
        memory[name] = peft.step_memory(model, batch)
    full, lora = memory["full"], memory["lora"]
    assert full["gradients"] == 4 * sum(p.numel() for p in SequenceClassifier(config).parameters())
    assert full["optimizer"] == 2 * full["gradients"] and lora["gradients"] < full["gradients"] / 10
    assert full["activations"] > 0 and lora["activations"] > 0


def test_majority_and_fewshot_budget():
    assert peft.majority(TASKS["sst2"], [1.0, 0.0, 1.0]) == 1.0
    assert peft.majority(TASKS["stsb"], [1.0, 3.0]) == 2.0
    s = peft.SCALES["cpu"]
    small = scaled("gpt2_small", n_layer=3, d_model=96, n_head=4, vocab_size=100)  # (IA)^3: 3 x (2 x 96 + 384)
    assert peft.fewshot_prompt_length(small, s) == 20  # 1,728 parameters < 20 x 96
    wide = scaled("gpt2_small", n_layer=4, d_model=144, n_head=4, vocab_size=100)  # 4 x (288 + 576) = 3,456
    assert peft.fewshot_prompt_length(wide, s) == 24


def test_scales_keep_every_method_and_share_the_bases_with_gpt2_and_t0():
    from papers import gpt2, t0
    from repro.bases import BASES

    for name, s in peft.SCALES.items():
        assert [r.name for r in s.recipes] == list(peft.METHODS), name
        assert "encoder" in BASES[s.bases_scale]
        # the GLUE arm tunes the encoder or one of the decoder sizes; a decoder reads label tokens, so no regression
        assert s.glue_base == "encoder" or s.glue_base in [z.label for z in s.decoder_sizes], name
        assert s.glue_base == "encoder" or all(not TASKS[t].similarity for t in s.glue_tasks), name
        assert s.encdec_labels == [peft.encdec_label(z) for z in t0.SCALES[name].sizes]  # T0's adapted bases
        assert [z.label for z in s.decoder_sizes] == gpt2.sweep(s.bases_scale)  # GPT-2's sweep: one cache entry each
        assert 0 <= s.main_index < len(s.decoder_sizes) or -len(s.decoder_sizes) <= s.main_index < 0
        assert all(not TASKS[t].similarity for t in (*s.sweep_tasks, *s.fewshot_tasks))
