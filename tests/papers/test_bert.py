"""BERT at the smoke scale end to end (results file shape, a computed verdict for every claim,
the GLUE table and figure), and the recipe's pieces on their own."""

import numpy as np
import pytest
import torch

import papers
from harness.claims import STATUSES
from harness.results import read_run
from harness.runner import run_paper
from papers.bert import (
    SCALES,
    Corpus,
    Pretraining,
    collate_pretraining,
    model_config,
    pretrain_config,
    split_sentences,
)
from papers.glue import TASKS, FinetuneConfig, classifier_from
from repro.data.objectives import IGNORE_INDEX, NspExample
from repro.model import MaskedLanguageModel


@pytest.mark.bert
def test_bert_smoke_run_records_metrics_verdicts_and_the_glue_table(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_ARTIFACTS", str(tmp_path / "artifacts"))
    record = read_run(run_paper(papers.get_paper("bert"), "smoke", root=tmp_path, quiet=True))
    for label in ("mlm_nsp", "mlm", "ltr", "scratch", "small", "large"):
        avg = record.metrics[f"{label}/avg"]
        assert avg["n"] > 0 and avg["ci_low"] <= avg["value"] <= avg["ci_high"], label
        for t, task in TASKS.items():
            assert f"{label}/{t}/{task.score}" in record.metrics
    for label in ("mlm_nsp", "mlm", "small", "large"):
        assert record.metrics[f"{label}/mlm_perplexity"]["value"] > 1
    assert "features/sst2/acc" in record.metrics and "step10/steps_avg" in record.metrics
    assert record.metrics["mlm_nsp/sst2/acc"]["extra"]["reported_id"] == "t5_bert-base_sst-2"
    assert {c["id"] for c in record.claims} == {"B-PRE", "B-C1", "B-C2", "B-C4", "B-C5", "B-C6"}
    assert all(c["status"] in STATUSES and c["explanation"] for c in record.claims)
    table = next(iter(record.extra["tables"].values()))
    assert [row["row"] for row in table][0] == "BERT (MLM + NSP)" and "(92.7)" in table[0]["sst2 (acc)"]
    assert [f["name"] for f in record.extra["plots"]] == ["pretraining"]  # declared; the report draws them


def test_recipe_is_the_papers():
    s = SCALES["cpu"]
    cfg = pretrain_config(Pretraining("mlm_nsp", s.base), s, seed=0)
    assert cfg.betas == (0.9, 0.999) and cfg.weight_decay == 0.01 and cfg.schedule == "linear"
    config = model_config(s.base, s, 1000)
    assert config.kind == "encoder" and config.norm_placement == "post" and config.activation == "gelu"
    assert config.positions == "learned" and config.n_segments == 2 and config.embedding_norm
    ltr = model_config(s.base, s, 1000, causal=True)
    assert ltr.kind == "decoder" and ltr.n_layer == config.n_layer and ltr.d_model == config.d_model


def test_sentences_are_split_at_sentence_ends_within_paragraphs():
    text = "It was late. \"Go home,\" she said.\nHe went!\n\nA new paragraph? Yes.  Mr. Smith agreed"
    assert split_sentences(text) == ["It was late.", "\"Go home,\" she said.", "He went!", "A new paragraph?",
                                     "Yes.", "Mr. Smith agreed"]


class _Tok:
    def __len__(self):
        return 50


def _corpus() -> Corpus:
    tok = _Tok()
    tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id = 0, 2, 3, 4
    return Corpus(tok, [], [], 0)


def test_pretraining_batches_mask_15_percent_never_specials_and_carry_nsp_labels():
    corpus = _corpus()
    ids = [2, *range(10, 30), 3, *range(30, 45), 3]
    pair = NspExample(torch.tensor(ids), torch.tensor([0] * 22 + [1] * 16), False)
    s = SCALES["smoke"]
    batch = collate_pretraining([pair] * 8, corpus, Pretraining("x", s.base), torch.Generator().manual_seed(0))
    selected = batch["labels"] != IGNORE_INDEX
    assert (selected.sum(1) == round(0.15 * 35)).all()  # 35 maskable tokens per row
    assert not selected[:, [0, 21, 37]].any()  # [CLS] and both [SEP]s are never targets
    assert batch["next_sentence_label"].tolist() == [1] * 8 and batch["token_type_ids"][0, 22] == 1
    ltr = collate_pretraining([pair], corpus, Pretraining("x", s.base, nsp=False, causal=True), torch.Generator())
    assert ltr["labels"][0, :-1].tolist() == ids[1:] and "token_type_ids" not in ltr


def test_fine_tuning_starts_from_the_pretrained_encoder_and_pooler():
    s = SCALES["smoke"]
    config = model_config(s.base, s, 60)
    torch.manual_seed(0)
    pretrained = MaskedLanguageModel(config)

    model = classifier_from(config, pretrained.state_dict(), TASKS["mrpc"], FinetuneConfig(), seed=1)
    for name, weight in pretrained.state_dict().items():
        if name.startswith(("body.", "pooler.")):
            assert torch.equal(model.state_dict()[name], weight), name
    scratch = classifier_from(config, None, TASKS["mrpc"], FinetuneConfig(), seed=1)
    assert not torch.equal(scratch.state_dict()["body.tok_embed.weight"], pretrained.state_dict()["body.tok_embed.weight"])
    with pytest.raises(ValueError, match="pre-trained weights lack"):
        classifier_from(config, {"pooler.dense.weight": torch.zeros(48, 48)}, TASKS["mrpc"], FinetuneConfig(), seed=1)


# ----------------------------------------------------------------------------------------------
# Claims: pure in the scale, a δ on every comparison, read only above the majority class


def _claim_shape(claims):
    from harness.claims import deltas

    return [(c.id, c.predicate.keys(), deltas(c.predicate), c.delta_source) for c in claims]


def test_claims_are_a_pure_function_of_the_scale():
    from papers.bert import BERT

    fresh = BERT()  # no measure() has run on it
    for scale, s in SCALES.items():
        first, again = _claim_shape(fresh.claims(scale)), _claim_shape(fresh.claims(scale))
        assert first == again and first == _claim_shape(BERT().claims(scale))
        assert [c[0] for c in first] == ["B-PRE", "B-C1", "B-C2", "B-C4", "B-C5", "B-C6"]
        keys = {k for c in first for k in c[1]}
        assert f"step{s.snapshot_every}/steps_avg" in keys  # the scale's own snapshots


def test_every_comparison_has_a_positive_delta_and_every_claim_its_source_and_floor():
    from harness.claims import deltas
    from papers.bert import BERT
    from papers.glue import FLOOR

    for scale in SCALES:
        for claim in BERT().claims(scale):
            ds = deltas(claim.predicate)
            assert all(d is not None and d > 0 for d in ds), claim.id
            assert ds or claim.id == "B-C6", claim.id  # B-C6 is an equivalence claim: its own tolerance
            assert claim.delta_source.strip(), claim.id
            assert FLOOR in claim.predicate.keys(), f"{claim.id} is not read above the majority class"


def seeded(name, values, half=0.02):
    """One metric over three training seeds (as the runner merges them), each seed's CI +- half."""
    from harness.metrics import MetricResult
    from harness.seeds import across_seeds

    return across_seeds(name, {s: MetricResult(name, v, 500, v - half, v + half, {}) for s, v in enumerate(values)})


def test_b_c1_and_b_c2_are_inconclusive_while_the_preferred_model_sits_at_a_majority_class():
    """The issue's case: B-C2 read "reproduced" on one STS-B fit while MRPC and RTE sat at their
    majority class. Synthetic metrics, no training: the comparisons favour the claims throughout."""
    from harness.claims import INCONCLUSIVE, REPRODUCED
    from harness.seeds import across_seeds
    from papers.bert import BERT, PAIR_TASKS
    from papers.glue import FLOOR, floor_metric, gap_key

    claims = {c.id: c for c in BERT().claims("cpu")}
    floor = {FLOOR: across_seeds(FLOOR, {s: floor_metric()[FLOOR] for s in range(3)})}
    scores = {"mlm_nsp/pair_avg": seeded("avg", [0.50, 0.51, 0.52]), "mlm/pair_avg": seeded("avg", [0.40, 0.41, 0.40]),
              "mlm/avg": seeded("avg", [0.50, 0.51, 0.52]), "ltr/avg": seeded("avg", [0.40, 0.41, 0.40])}
    learned = {gap_key(label, t): seeded("gap", [0.10, 0.11, 0.12]) for label in ("mlm_nsp", "mlm") for t in TASKS}
    measured = {**floor, **scores, **learned}
    assert claims["B-C1"].check(measured).status == REPRODUCED
    assert claims["B-C2"].check(measured).status == REPRODUCED
    # only STS-B learned: MRPC and RTE (every task but STS-B for B-C1) at the majority class
    stsb_only = {**measured, **{gap_key(label, t): seeded("gap", [0.0, 0.0, 0.0])
                                for label in ("mlm_nsp", "mlm") for t in TASKS if t != "stsb"}}
    for cid in ("B-C1", "B-C2"):
        verdict = claims[cid].check(stsb_only)
        assert verdict.status == INCONCLUSIVE, cid
        assert verdict.evidence["claim"]["status"] == REPRODUCED  # what the comparison alone would say
    assert set(PAIR_TASKS) == {"mrpc", "rte", "stsb"}


def test_b_c4_reads_perplexity_against_size_only_once_pretraining_has_helped():
    """Equal perplexities across sizes at a budget where pre-training has not yet beaten training
    from scratch say nothing about size: inconclusive, keeping what the comparison alone would say."""
    from harness.claims import INCONCLUSIVE, NOT_REPRODUCED
    from papers.bert import BERT

    claim = next(c for c in BERT().claims("cpu") if c.id == "B-C4")
    flat = {f"{k}/mlm_perplexity": seeded("perplexity", [370.0, 372.0, 371.0], half=5.0)
            for k in ("small", "mlm_nsp", "large")}
    no_help = {**flat, "mlm_nsp/avg": seeded("avg", [0.40, 0.41, 0.40]), "scratch/avg": seeded("avg", [0.40, 0.40, 0.41])}
    no_help = {**{k: None for k in claim.predicate.keys()}, **no_help}  # the MRPC part: not measured here
    part = claim.check(no_help).evidence["parts"][0]
    assert part["status"] == INCONCLUSIVE and part["evidence"]["claim"]["status"] == NOT_REPRODUCED
    helped = {**no_help, "mlm_nsp/avg": seeded("avg", [0.60, 0.61, 0.62])}
    assert claim.check(helped).evidence["parts"][0]["status"] == NOT_REPRODUCED  # now size is read: no gain


def test_measure_takes_the_one_seed_the_runner_passes():
    from papers.bert import BERT

    with pytest.raises(ValueError, match="one seed"):
        BERT().measure("smoke", [0, 1])


@pytest.mark.parametrize("similarity", [False, True])
def test_glue_predict_returns_each_items_output_in_order_whatever_the_batching(similarity):
    """papers.glue.predict batches items shortest first; every item's argmax class (or score) must come
    back at its own index, the same for any batch size, and equal to the model run on the item alone."""
    from papers import glue

    torch.manual_seed(0)
    table = torch.nn.Embedding(50, 1 if similarity else 3)

    class Mean(torch.nn.Module):  # a classifier whose output depends on every real token of its input
        def __init__(self):
            super().__init__()
            self.table = table

        def forward(self, input_ids, attention_mask):
            h = (self.table(input_ids) * attention_mask[..., None]).sum(1) / attention_mask.sum(1, keepdim=True)
            return type("Out", (), {"logits": h})()

    g = torch.Generator().manual_seed(1)
    items = [(torch.randint(1, 50, (int(n),), generator=g).tolist(),) for n in torch.randint(1, 12, (23,), generator=g)]

    def inputs(batch):
        width = max(len(it[0]) for it in batch)
        ids = torch.tensor([it[0] + [0] * (width - len(it[0])) for it in batch])
        return {"input_ids": ids, "attention_mask": (ids != 0).long()}

    model = Mean()
    with torch.no_grad():
        alone = [model(**inputs([it])).logits[0] for it in items]
    expected = np.array([float(o.squeeze(-1)) if similarity else int(o.argmax()) for o in alone])
    for batch_size in (1, 5, 64):
        assert glue.predict(model, items, inputs, similarity, batch_size=batch_size) == pytest.approx(expected, abs=1e-6)
