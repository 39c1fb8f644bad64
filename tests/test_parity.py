"""Parity with Hugging Face `transformers`: build their model from a small config (no hub),
copy its weights into ours, and compare logits on random inputs with padding.

These tests are what make our presets "the papers' architectures": GPT-2 (pre-LN, learned
positions, tanh-GELU), GPT-1 (post-LN), BERT (post-LN, segments, embedding LN, MLM + NSP heads),
T5 (pre-RMSNorm, shared relative buckets, unscaled attention, scaled tied output) and a
LLaMA-style decoder (RoPE, SwiGLU, GQA)."""

import pytest
import torch
import transformers as hf

from repro.model import convert

TOL = 1e-4
VOCAB, B, T = 97, 3, 13


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, -4:] = 0  # right padding on two rows
    mask[2, -9:] = 0
    return ids, mask


def _assert_close_on_real_tokens(ours, theirs, mask):
    real = mask.bool()
    diff = (ours - theirs).abs()[real].max().item()
    assert diff <= TOL, f"max abs logit difference {diff:.2e} > {TOL}"


def _seeded(cls, config):
    torch.manual_seed(0)
    model = cls(config).eval()
    # Move every weight off its init value so LayerNorm gains, biases etc. are all exercised.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def test_gpt2_lm_head_parity():
    ref = _seeded(hf.GPT2LMHeadModel, hf.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=48, n_layer=3, n_head=4))
    ours = convert.from_gpt2(ref).eval()
    ids, mask = _inputs()
    with torch.no_grad():
        _assert_close_on_real_tokens(ours(ids, mask).logits, ref(input_ids=ids, attention_mask=mask).logits, mask)


def test_openai_gpt_lm_head_parity():
    ref = _seeded(
        hf.OpenAIGPTLMHeadModel,
        hf.OpenAIGPTConfig(vocab_size=VOCAB, n_positions=32, n_embd=48, n_layer=3, n_head=4),
    )
    ours = convert.from_openai_gpt(ref).eval()
    ids, mask = _inputs(1)
    with torch.no_grad():
        _assert_close_on_real_tokens(ours(ids, mask).logits, ref(input_ids=ids, attention_mask=mask).logits, mask)


def test_bert_for_pretraining_parity():
    config = hf.BertConfig(
        vocab_size=VOCAB, hidden_size=48, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
        max_position_embeddings=64,
    )
    ref = _seeded(hf.BertForPreTraining, config)
    ours = convert.from_bert(ref).eval()
    ids, mask = _inputs(2)
    segments = torch.zeros_like(ids)
    segments[:, 5:] = 1
    with torch.no_grad():
        theirs = ref(input_ids=ids, attention_mask=mask, token_type_ids=segments)
        mine = ours(ids, mask, token_type_ids=segments)
    _assert_close_on_real_tokens(mine.logits, theirs.prediction_logits, mask)
    assert (mine.seq_logits - theirs.seq_relationship_logits).abs().max() <= TOL


@pytest.mark.parametrize("feed_forward", ["relu", "gated-gelu"])
def test_t5_conditional_generation_parity(feed_forward):
    config = hf.T5Config(
        vocab_size=VOCAB, d_model=48, d_kv=16, d_ff=96, num_layers=3, num_decoder_layers=2, num_heads=4,
        feed_forward_proj=feed_forward, tie_word_embeddings=feed_forward == "relu",
        relative_attention_num_buckets=8, relative_attention_max_distance=16,
    )
    ref = _seeded(hf.T5ForConditionalGeneration, config)
    ours = convert.from_t5(ref).eval()
    src, src_mask = _inputs(3)
    tgt, tgt_mask = _inputs(4)
    with torch.no_grad():
        theirs = ref(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
        mine = ours(src, src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    _assert_close_on_real_tokens(mine.logits, theirs.logits, tgt_mask)


def test_llama_style_parity():
    config = hf.LlamaConfig(
        vocab_size=VOCAB, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False,
    )
    ref = _seeded(hf.LlamaForCausalLM, config)
    ours = convert.from_llama(ref).eval()
    ids, mask = _inputs(5)
    with torch.no_grad():
        _assert_close_on_real_tokens(ours(ids, mask).logits, ref(input_ids=ids, attention_mask=mask).logits, mask)


@pytest.mark.parametrize("tied", [True, False])
def test_t5_init_matches_transformers(tied):
    """`init_scheme="t5"` draws every weight with the spread `transformers`' T5 `_init_weights` gives
    it (Mesh TF's fan-in init; queries folded with d_head^-0.5 since scores are not scaled): compared
    tensor by tensor, q / k / v slices of our fused projection apart, as standard deviations."""
    config = hf.T5Config(
        vocab_size=500, d_model=64, d_kv=16, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4,
        tie_word_embeddings=tied, relative_attention_num_buckets=32, relative_attention_max_distance=64,
    )
    torch.manual_seed(0)
    theirs = convert.from_t5(hf.T5ForConditionalGeneration(config))  # their init, in our layout
    torch.manual_seed(1)
    ours = type(theirs)(theirs.config)
    n = 4 * 16  # rows per slice: n_head x d_kv
    for (name, a), (_, b) in zip(theirs.named_parameters(), ours.named_parameters()):
        pieces = [(a[:n], b[:n]), (a[n : 2 * n], b[n : 2 * n]), (a[2 * n :], b[2 * n :])] if "qkv_proj" in name else \
            [(a[:n], b[:n]), (a[n:], b[n:])] if "kv_proj" in name else [(a, b)]
        for x, y in pieces:
            if x.dim() == 1:  # RMSNorm gains
                assert torch.equal(x, y), name
                continue
            ratio = (y.std() / x.std()).item()
            assert 0.8 < ratio < 1.25, (name, x.std().item(), y.std().item())
    assert theirs.config.init_scheme == "t5"
