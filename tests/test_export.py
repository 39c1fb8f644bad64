"""repro export: a trained run becomes its `transformers` twin (GPT-2, Llama, BERT, RoFormer or T5) with the
same logits, loadable by the Auto classes and by lm-eval's own `hf` model, which scores it as ours
does. The shared bases' exports are checked in test_bases.py."""

import math
from pathlib import Path

import pytest
import torch

from repro.model import LanguageModel, scaled
from repro.model.heads import MaskedLanguageModel
from repro.model.export import ExportError, to_hf
from repro_cli.main import main
from tests.conftest import use_scratch_cache

REPO = Path(__file__).resolve().parents[1]
TINY = ["model.n_layer=2", "model.d_model=32", "model.n_head=2", "data.vocab_size=300", "data.block_size=32",
        "train.steps=3", "train.batch_size=4", "train.progress=false", "train.precision=fp32"]
REQUESTS = [("ROMEO:", " What"), ("First Citizen:\nBefore we proceed", " any further"), ("", "Hear me speak.")]


def _noisy(model, std=0.1):
    """Every weight moved off its initial value (biases and norms start at 0 and 1)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:
        use_scratch_cache(mp, root)
        args = ["train", str(REPO / "configs" / "shakespeare_tiny.yaml"), "--out-dir", str(root / "run")]
        for override in TINY:
            args += ["--set", override]
        assert main(args) == 0
    return root / "run"


def test_the_hf_twin_has_our_logits():
    torch.manual_seed(0)
    ours = _noisy(LanguageModel(scaled("gpt2_small", n_layer=2, d_model=48, n_head=4, vocab_size=101,
                                       max_seq_len=40, dropout=0.0)))
    theirs = to_hf(ours)
    ids = torch.randint(0, 101, (3, 40))
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids).logits, atol=1e-5, rtol=1e-4)


def test_the_llama_twin_has_our_logits_with_grouped_query_attention():
    ours = _noisy(LanguageModel(scaled("llama_7b", n_layer=2, d_model=48, n_head=6, n_kv_head=2, d_ff=80,
                                       vocab_size=101, max_seq_len=40, dropout=0.0, tie_embeddings=False)))
    theirs = to_hf(ours)
    assert type(theirs).__name__ == "LlamaForCausalLM"
    ids = torch.randint(0, 101, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids).logits, atol=1e-5, rtol=1e-4)


def _encoder_outputs(ours, theirs, seed: int):
    """Both encoders on a padded batch of two segments: (their output, ours, the unpadded positions)."""
    g = torch.Generator().manual_seed(seed)
    ids, segments = torch.randint(0, 101, (2, 40), generator=g), torch.zeros(2, 40, dtype=torch.long)
    segments[:, 20 + seed:] = 1
    mask = torch.ones_like(ids)
    mask[seed % 2, 30 + seed:] = 0
    with torch.no_grad():
        out, mine = theirs(input_ids=ids, attention_mask=mask, token_type_ids=segments), ours(ids, mask, token_type_ids=segments)
    return out, mine, mask.bool()


@pytest.mark.parametrize("nsp", [True, False])
def test_the_bert_twin_has_our_mlm_and_nsp_logits(nsp):
    ours = _noisy(MaskedLanguageModel(scaled("bert_base", n_layer=2, d_model=48, n_head=4, vocab_size=101,
                                             max_seq_len=40, dropout=0.0), nsp=nsp), std=0.05)
    theirs = to_hf(ours)
    assert type(theirs).__name__ == ("BertForPreTraining" if nsp else "BertForMaskedLM")
    out, mine, kept = _encoder_outputs(ours, theirs, seed=2)
    logits = out.prediction_logits if nsp else out.logits
    torch.testing.assert_close(logits[kept], mine.logits[kept], atol=1e-5, rtol=1e-4)
    if nsp:
        torch.testing.assert_close(out.seq_relationship_logits, mine.seq_logits, atol=1e-5, rtol=1e-4)


def test_the_roformer_twin_has_our_rotary_encoders_logits_with_padding_and_segments():
    # the shared encoder base's shape: BERT with rotary positions; 6 heads of 8, so the reordering of
    # each head's query and key rows is checked beyond one head
    ours = _noisy(MaskedLanguageModel(scaled("bert_base", n_layer=2, d_model=48, n_head=6, vocab_size=101,
                                             max_seq_len=40, dropout=0.0, positions="rope")), std=0.05)
    theirs = to_hf(ours)
    assert type(theirs).__name__ == "RoFormerForMaskedLM"
    out, mine, kept = _encoder_outputs(ours, theirs, seed=3)
    torch.testing.assert_close(out.logits[kept], mine.logits[kept], atol=1e-5, rtol=1e-4)


def test_a_rotary_encoder_at_another_base_is_refused():
    model = MaskedLanguageModel(scaled("bert_base", n_layer=1, d_model=32, n_head=2, vocab_size=50, max_seq_len=16,
                                       dropout=0.0, positions="rope", rope_theta=500.0))
    with pytest.raises(ExportError, match="rope_theta=500.0"):
        to_hf(model)


@pytest.mark.parametrize("activation, scaled_output", [("relu", True), ("geglu_tanh", False)])
def test_the_t5_twin_has_our_logits(activation, scaled_output):
    ours = _noisy(LanguageModel(scaled("t5_small", n_layer=2, n_decoder_layer=2, d_model=48, n_head=4, d_ff=96,
                                       vocab_size=101, dropout=0.0, activation=activation,
                                       tied_output_scale=scaled_output)), std=0.05)
    theirs = to_hf(ours)
    assert type(theirs).__name__ == "T5ForConditionalGeneration"
    g = torch.Generator().manual_seed(3)
    src, tgt = torch.randint(1, 101, (2, 24), generator=g), torch.randint(1, 101, (2, 9), generator=g)
    with torch.no_grad():
        torch.testing.assert_close(theirs(input_ids=src, decoder_input_ids=tgt).logits,
                                   ours(src, decoder_input_ids=tgt).logits, atol=1e-5, rtol=1e-4)


def test_an_untied_t5_is_refused_since_transformers_ties_its_head():
    model = LanguageModel(scaled("t5_small", n_layer=1, d_model=32, n_head=2, d_ff=64, vocab_size=50,
                                 dropout=0.0, tie_embeddings=False, tied_output_scale=False))
    with pytest.raises(ExportError, match="tie_embeddings=False"):
        to_hf(model)


@pytest.mark.parametrize("change, field", [(dict(positions="rope"), "positions"), (dict(norm="rmsnorm"), "norm"),
                                           (dict(activation="swiglu"), "activation")])
def test_an_architecture_without_a_twin_is_refused_by_name(change, field):
    model = LanguageModel(scaled("gpt2_small", n_layer=1, d_model=32, n_head=2, vocab_size=50, max_seq_len=16,
                                 dropout=0.0, **change))
    with pytest.raises(ExportError, match=f"{field}="):
        to_hf(model)


def test_export_writes_a_directory_transformers_loads_with_equal_logits(run_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from repro.tokenizers import load_tokenizer
    from repro.train import load_checkpoint

    out = tmp_path / "hf"
    assert main(["export", str(run_dir), str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    theirs, tokenizer = AutoModelForCausalLM.from_pretrained(out).eval(), AutoTokenizer.from_pretrained(out)
    ours, _ = load_checkpoint(run_dir)
    ids = torch.tensor([tokenizer("ROMEO: What say you?")["input_ids"]])
    assert ids.tolist() == [load_tokenizer(run_dir / "tokenizer")("ROMEO: What say you?")["input_ids"]]
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids).logits, atol=1e-5, rtol=1e-4)


def test_lm_eval_hf_model_scores_the_export_as_we_score_the_run(run_dir, tmp_path):
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM as LmEvalHF

    from harness.lm import ReproLM

    out = tmp_path / "hf"
    assert main(["export", str(run_dir), str(out)]) == 0
    theirs = LmEvalHF(pretrained=str(out), device="cpu", batch_size=1, dtype="float32")
    instances = [Instance("loglikelihood", {}, request, i) for i, request in enumerate(REQUESTS)]
    ours = ReproLM(run_dir, batch_size=2, precision="fp32").loglikelihood(REQUESTS)
    for (a, greedy_a), (b, greedy_b) in zip(ours, theirs.loglikelihood(instances)):
        assert math.isclose(a, b, abs_tol=1e-4) and greedy_a == greedy_b


def test_exporting_a_directory_without_a_tokenizer_is_one_line(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert main(["export", str(tmp_path / "run"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no tokenizer/" in err[0]
