"""GPT-1: the §3.3 input transformations, the STS-B symmetric combination, layer transfer and the
average score as unit tests; the smoke scale end to end (results file shape, a computed verdict for
every claim)."""

import numpy as np
import pytest
import torch

import papers
from harness.claims import STATUSES
from harness.metrics import accuracy, matthews_corrcoef, pearson
from harness.results import read_run
from harness.runner import run_paper
from papers.gpt1 import (
    SCALES,
    TASKS,
    base_spec,
    zero_shot_steps,
    GPT1Classifier,
    SpecialTokens,
    average_score,
    best_threshold,
    collate,
    finetune_model,
    task_inputs,
    transferred_state,
    transform,
)
from repro.config import ModelConfig
from repro.model import LanguageModel
from repro.model.recurrent import RecurrentConfig, RecurrentLM

SPECIAL = SpecialTokens.after(100)  # start 100, delimiter 101, extract 102


def char_tokenizer(text, add_special_tokens=False):
    """One id per character: enough to see where every piece lands."""
    return {"input_ids": [ord(c) % 90 for c in text]}


def tiny_lm(vocab=103, n_layer=2, seed=0):
    torch.manual_seed(seed)
    return LanguageModel(ModelConfig(kind="decoder", vocab_size=vocab, n_layer=n_layer, d_model=16, n_head=2, d_ff=32,
                                     max_seq_len=32, positions="learned", norm_placement="post",
                                     activation="gelu_tanh", dropout=0.0))


def test_single_sentence_and_pair_transformations():
    assert transform([[1, 2, 3]], SPECIAL, 16) == [100, 1, 2, 3, 102]
    assert transform([[1, 2], [3]], SPECIAL, 16) == [100, 1, 2, 101, 3, 102]


def test_truncation_trims_the_longest_piece_and_keeps_every_special_token():
    out = transform([[1] * 10, [2] * 3], SPECIAL, 10)
    assert len(out) == 10 and out[0] == 100 and out[-1] == 102 and out.count(101) == 1
    assert out == [100, *[1] * 4, 101, *[2] * 3, 102]
    with pytest.raises(ValueError, match="max_len"):
        transform([[1], [2]], SPECIAL, 3)


def test_similarity_examples_are_fed_in_both_orders_and_others_once():
    pair = {"sentence1": "ab", "sentence2": "c", "label": 3.2}
    ab, c = char_tokenizer("ab")["input_ids"], char_tokenizer("c")["input_ids"]
    stsb = task_inputs(TASKS["stsb"], pair, char_tokenizer, SPECIAL, 16)
    assert stsb == [[100, *ab, 101, *c, 102], [100, *c, 101, *ab, 102]]
    assert len(task_inputs(TASKS["mrpc"], {**pair, "label": 1}, char_tokenizer, SPECIAL, 16)) == 1
    with pytest.raises(ValueError, match="no field 'sentence'"):
        task_inputs(TASKS["sst2"], pair, char_tokenizer, SPECIAL, 16)


def test_collate_pads_right_and_aux_targets_are_the_next_tokens():
    batch = collate([[[100, 5, 102]], [[100, 5, 6, 7, 102]]], [0, 1], similarity=False, pad_id=0)
    assert batch["input_ids"].tolist() == [[100, 5, 102, 0, 0], [100, 5, 6, 7, 102]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["aux_labels"].tolist() == [[5, 102, -100, -100, -100], [5, 6, 7, 102, -100]]
    assert batch["labels"].dtype == torch.long
    pairs = collate([[[100, 1, 101, 2, 102], [100, 2, 101, 1, 102]]], [4.5], similarity=True, pad_id=0)
    assert pairs["input_ids"].shape == (1, 2, 5) and pairs["labels"].dtype == torch.float32


def test_stsb_adds_both_orders_representations_so_the_order_does_not_matter():
    model = GPT1Classifier(tiny_lm(), n_labels=1).eval()
    ab, ba = [100, 1, 2, 101, 3, 102], [100, 3, 101, 1, 2, 102]
    one = collate([[ab, ba]], [0.0], similarity=True, pad_id=0)
    other = collate([[ba, ab]], [0.0], similarity=True, pad_id=0)
    with torch.no_grad():
        score = model(one["input_ids"], one["attention_mask"]).logits
        swapped = model(other["input_ids"], other["attention_mask"]).logits
        h = [model.lm(torch.tensor([seq])).hidden[0, -1] for seq in (ab, ba)]  # the extract token's state
        by_hand = model.classifier(h[0] + h[1])
    torch.testing.assert_close(score, swapped)
    torch.testing.assert_close(score[0], by_hand)


def test_the_classifier_reads_the_extract_token_whatever_the_padding():
    model = GPT1Classifier(tiny_lm(), n_labels=2).eval()
    short, long = [100, 7, 102], [100, 7, 8, 9, 10, 102]
    with torch.no_grad():
        alone = model(torch.tensor([short])).logits
        batch = collate([[short], [long]], [0, 1], similarity=False, pad_id=0)
        padded = model(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(padded.logits[0], alone[0])
    assert padded.aux_logits.shape == (2, 6, 103)


def test_transfer_copies_embeddings_and_the_first_k_blocks_and_grows_the_vocabulary():
    base = tiny_lm(vocab=100)
    ft = SCALES["smoke"].finetune
    model = finetune_model(base, TASKS["sst2"], ft, seed=1, n_layers=1)
    source, target = base.state_dict(), model.lm.state_dict()
    assert target["body.tok_embed.weight"].shape == (103, 16)
    assert torch.equal(target["body.tok_embed.weight"][:100], source["body.tok_embed.weight"])
    assert torch.equal(target["body.decoder.layers.0.mlp_norm.weight"], source["body.decoder.layers.0.mlp_norm.weight"])
    block1 = "body.decoder.layers.1.self_attn.out_proj.weight"
    assert not torch.equal(target[block1], source[block1])  # re-initialised
    assert model.lm.config.dropout == ft.dropout and model.lm.lm_head.proj.weight is model.lm.body.tok_embed.weight
    scratch = finetune_model(base, TASKS["sst2"], ft, seed=1, pretrained=False)
    assert not torch.equal(scratch.lm.state_dict()["body.tok_embed.weight"][:100], source["body.tok_embed.weight"])
    with pytest.raises(ValueError, match="does not fit"):
        transferred_state({"body.tok_embed.weight": torch.zeros(5, 3)}, {"body.tok_embed.weight": torch.zeros(6, 4)})


def test_the_lstm_baseline_is_fine_tuned_through_the_same_wrapper():
    torch.manual_seed(0)
    lstm = RecurrentLM(RecurrentConfig(kind="decoder", vocab_size=100, cell="lstm", d_model=16, d_hidden=24))
    model = finetune_model(lstm, TASKS["stsb"], SCALES["smoke"].finetune, seed=0).eval()
    assert torch.equal(model.lm.state_dict()["tok_embed.weight"][:100], lstm.state_dict()["tok_embed.weight"])
    batch = collate([[[100, 1, 101, 2, 102], [100, 2, 101, 1, 102]]], [1.0], similarity=True, pad_id=0)
    assert model(batch["input_ids"], batch["attention_mask"]).logits.shape == (1, 1)


def test_average_score_is_the_mean_of_the_task_scores_with_a_seeded_ci():
    rng = np.random.default_rng(0)
    golds = rng.integers(0, 2, 200)
    preds = np.where(rng.random(200) < 0.8, golds, 1 - golds)
    x = rng.normal(size=200)
    y = x + rng.normal(size=200)
    parts = [(TASKS["sst2"], preds, golds, accuracy(preds == golds)),
             (TASKS["cola"], preds, golds, matthews_corrcoef(preds.tolist(), golds.tolist())),
             (TASKS["stsb"], x, y, pearson(x, y))]
    avg = average_score(parts)
    assert avg.value == pytest.approx(np.mean([m.value for *_, m in parts]))
    assert avg.ci_low < avg.value < avg.ci_high and avg.n == 600
    assert average_score(parts).to_dict() == avg.to_dict()
    with pytest.raises(ValueError):
        average_score([])


def test_best_threshold_separates_separable_scores():
    scores, labels = np.array([-3.0, -2.5, -1.0, -0.5, -0.2]), np.array([0, 0, 1, 1, 1])
    cut = best_threshold(scores, labels)
    assert -2.5 < cut < -1.0


@pytest.mark.gpt1
def test_gpt1_smoke_run_records_metrics_and_verdicts(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    paper = papers.get_paper("gpt1")
    record = read_run(run_paper(paper, "smoke", root=tmp_path, quiet=True))
    s = SCALES["smoke"]
    keys = [f"{v}/{t}/{TASKS[t].score}" for v in ("full", "scratch", "lstm") for t in s.tasks]
    keys += [f"{v}/sst2@16/acc" for v in ("full", "noaux")]  # G1-C3's small dataset: SST-2 at 16 examples
    keys += ["full/avg", "scratch/avg", "lstm/avg", *[f"layers{k}/avg" for k in range(base_spec("smoke").n_layer + 1)]]
    keys += [f"zeroshot/step{zero_shot_steps('smoke')[-1]}/{m}" for m in ("sst2/acc", "cola/mcc")]  # the final base
    for key in keys:
        metric = record.metrics[key]
        assert metric["n"] > 0 and metric["ci_low"] <= metric["value"] <= metric["ci_high"], key
    assert record.metrics["full/sst2/acc"]["extra"]["reported_id"] == "t5_full_w_aux_LM_sst-2"
    assert record.metrics["lstm/stsb/pearson"]["extra"]["reported_id"] == "t5_LSTM_w_aux_LM_sts-b"
    assert {c["id"] for c in record.claims} == {"G1-C1", "G1-C2", "G1-C3", "G1-C4", "G1-C5"}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    assert record.reported and all(r["table_figure"] for r in record.reported)
    assert [f["name"] for f in record.extra["plots"]] == ["transfer"]  # declared; the report draws them
    assert len(record.extra["tables"]["Table 5 at this scale (measured; paper in parentheses, x100)"]) == 4


# ----------------------------------------------------------------------------------------------
# Claims: pure in the scale, a δ on every comparison, read only above the majority class


def _claim_shape(claims):
    from harness.claims import deltas

    return [(c.id, c.predicate.keys(), deltas(c.predicate), c.delta_source) for c in claims]


def test_claims_are_a_pure_function_of_the_scale():
    from papers.gpt1 import GPT1

    fresh = GPT1()  # no measure() has run on it
    for scale, s in SCALES.items():
        first, again = _claim_shape(fresh.claims(scale)), _claim_shape(fresh.claims(scale))
        assert first == again and first == _claim_shape(GPT1().claims(scale))
        assert [c[0] for c in first] == ["G1-C1", "G1-C2", "G1-C3", "G1-C4", "G1-C5"]
        keys = {k for c in first for k in c[1]}
        assert f"layers{base_spec(scale).n_layer}/avg" in keys
        assert f"zeroshot/step{zero_shot_steps(scale)[-1]}/sst2/acc" in keys and len(zero_shot_steps(scale)) > 1
        assert {f"full/{t}/{TASKS[t].score}" for t in s.tasks} <= keys


def test_every_comparison_has_a_positive_delta_and_every_claim_its_source_and_floor():
    from harness.claims import _Provided, deltas
    from papers.gpt1 import GPT1
    from papers.glue import FLOOR

    for scale in SCALES:
        for claim in GPT1().claims(scale):
            ds = deltas(claim.predicate)
            assert ds and all(d is not None and d > 0 for d in ds), claim.id
            assert claim.delta_source.strip(), claim.id
            assert FLOOR in claim.predicate.keys(), f"{claim.id} is not read above the majority class"

    def gated(p):  # every comparison of a classification claim sits under a floor gate
        if isinstance(p, _Provided):
            return True
        parts = getattr(p, "parts", None)
        return bool(parts) and all(gated(q) for q in parts)

    assert all(gated(c.predicate) for c in GPT1().claims("cpu"))


def seeded(name, values, half=0.02):
    """One metric over three training seeds (as the runner merges them), each seed's CI +- half."""
    from harness.metrics import MetricResult
    from harness.seeds import across_seeds

    return across_seeds(name, {s: MetricResult(name, v, 500, v - half, v + half, {}) for s, v in enumerate(values)})


def floor_seeded():
    from harness.seeds import across_seeds
    from papers.glue import FLOOR, floor_metric

    return {FLOOR: across_seeds(FLOOR, {s: floor_metric()[FLOOR] for s in range(3)})}


def test_a_claim_is_inconclusive_while_the_model_it_prefers_sits_at_the_majority_class():
    from harness.claims import INCONCLUSIVE, REPRODUCED
    from papers.gpt1 import GPT1
    from papers.glue import gap_key

    claims = {c.id: c for c in GPT1().claims("smoke")}  # every task, STS-B among them
    learned = {gap_key("full", t): seeded("gap", [0.10, 0.11, 0.12]) for t in TASKS}
    scores = {}
    for t in TASKS:
        scores[f"full/{t}/{TASKS[t].score}"] = seeded("score", [0.70, 0.71, 0.72])
        scores[f"scratch/{t}/{TASKS[t].score}"] = seeded("score", [0.55, 0.57, 0.56])
    scores["full/avg"], scores["lstm/avg"] = seeded("avg", [0.70, 0.71, 0.72]), seeded("avg", [0.55, 0.57, 0.56])
    measured = {**floor_seeded(), **learned, **scores}
    for cid in ("G1-C1", "G1-C2"):  # every comparison favours the claim, every task above its floor
        assert claims[cid].check(measured).status == REPRODUCED, cid
    # the pre-trained model at the majority class on STS-B (its constant: no correlation), the
    # comparisons unchanged: they are no longer read
    at_floor = {**measured, gap_key("full", "stsb"): seeded("gap", [0.0, 0.0, 0.0])}
    for cid in ("G1-C1", "G1-C2"):
        verdict = claims[cid].check(at_floor)
        assert verdict.status == INCONCLUSIVE, cid
    g1c2 = claims["G1-C2"].check(at_floor)
    assert g1c2.evidence["claim"]["status"] == REPRODUCED and "condition does not hold" in g1c2.explanation


def test_the_tuning_split_is_disjoint_from_training_and_keeps_its_examples():
    from papers.glue import load_rows, load_tuning_rows

    train, _ = load_rows(TASKS["rte"], 300, 5, seed=0)
    same, tune = load_tuning_rows(TASKS["rte"], 300, 200, seed=0)
    assert same == train and len(tune) == 200  # the recipe's training rows, unchanged
    key = lambda r: (r["sentence1"], r["sentence2"], r["label"])  # noqa: E731
    assert not {key(r) for r in tune} & {key(r) for r in train}
    with pytest.raises(ValueError, match="exceed"):
        load_tuning_rows(TASKS["rte"], 10**6, 1)


def test_measure_takes_the_one_seed_the_runner_passes():
    from papers.gpt1 import GPT1

    with pytest.raises(ValueError, match="one seed"):
        GPT1().measure("smoke", [0, 1])


def test_a_task_label_names_a_task_or_a_smaller_training_set_of_it():
    from papers.gpt1 import task_of

    assert task_of("sst2") is TASKS["sst2"] and task_of("sst2@500") is TASKS["sst2"]
    with pytest.raises(KeyError, match="no GLUE task 'qqp'"):
        task_of("qqp@100")
    for scale, s in SCALES.items():  # every label a scale fine-tunes has its training-set size
        assert set(s.fine_tuned) <= set(dict(s.train_examples)), scale


def test_zero_shot_reads_evenly_spaced_steps_ending_at_the_final_base():
    for scale in SCALES:
        steps = zero_shot_steps(scale)
        assert steps[-1] == base_spec(scale).steps and steps == sorted(set(steps))
        assert len({b - a for a, b in zip(steps, steps[1:])}) == 1  # evenly spaced
