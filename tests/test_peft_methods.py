"""repro.peft_methods: what each method changes at init (nothing, or nearly nothing), that merging
and dropping the prefix MLP keep the outputs, that only the method's parameters learn, the
parameter counts against their formulae, decoding with a KV cache, and parity with `peft`: LoRA
and (IA)^3 on the same model with separate q / k / v projections, prompt and prefix tuning on a
`transformers` GPT-2 converted to ours."""

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.generate import GenerationConfig, generate
from repro.model import LanguageModel, SequenceClassifier, scaled
from repro.peft_methods import (
    AdapterConfig,
    FullConfig,
    IA3Config,
    LoRAConfig,
    PrefixConfig,
    PromptConfig,
    apply_peft,
    count_parameters,
    merge_for_inference,
    split_qkv,
    virtual_tokens,
)

METHODS = [LoRAConfig(), IA3Config(), AdapterConfig(bottleneck=4), PrefixConfig(length=5, hidden=16),
           PrefixConfig(length=5, reparameterize=False), PromptConfig(length=4, init="vocab")]


def tiny(kind: str, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    common = dict(n_layer=2, d_model=32, n_head=4, d_ff=64, vocab_size=100, max_seq_len=64, dropout=0.0)
    if kind == "encoder":
        return SequenceClassifier(scaled("bert_base", **{**common, **overrides}).replace(n_labels=2)).eval()
    if kind == "decoder":
        return LanguageModel(scaled("gpt2_small", **{**common, **overrides})).eval()
    return LanguageModel(scaled("t5_small", **{**common, "d_head": 8, **overrides})).eval()


def batch(seed: int = 1, rows: int = 3, length: int = 12, left_padded: bool = False):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, length - 3:] = 0  # one padded row
    return (ids, mask.flip(1)) if left_padded else (ids, mask)


def logits(kind: str, model, ids, mask):
    if kind == "encoder-decoder":
        return model(ids, mask, decoder_input_ids=ids[:, :7]).logits
    return model(ids, mask).logits


def perturb(model, scale: float = 0.3, seed: int = 2) -> None:
    """Move every trainable parameter, so a test cannot pass because a method is still at its init."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=g))


KINDS = ("encoder", "decoder", "encoder-decoder")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", [LoRAConfig(), IA3Config()], ids=["lora", "ia3"])
def test_lora_and_ia3_start_as_the_base_model_exactly(kind, config):
    base = tiny(kind)
    ids, mask = batch()
    model = copy.deepcopy(base)
    apply_peft(model, config)
    torch.testing.assert_close(logits(kind, model, ids, mask), logits(kind, base, ids, mask), rtol=1e-5, atol=1e-6)  # float noise only: T5-init logits are O(10)


@pytest.mark.parametrize("kind", KINDS)
def test_adapters_start_near_the_identity(kind):
    base = tiny(kind)
    ids, mask = batch()
    model = copy.deepcopy(base)
    apply_peft(model, AdapterConfig(bottleneck=4))
    ref, out = logits(kind, base, ids, mask), logits(kind, model, ids, mask)
    assert (out - ref).abs().max() < 0.02 * ref.abs().max()
    for m in model.modules():  # weights ~ N(0, 1e-2) truncated at 2 std
        if m.__class__.__name__ == "Adapter":
            assert m.up.weight.abs().max() <= 0.02 and m.down.weight.abs().max() <= 0.02
    with torch.no_grad():  # with W_up = 0 an adapter is exactly the identity
        for m in model.modules():
            if m.__class__.__name__ == "Adapter":
                m.up.weight.zero_()
    torch.testing.assert_close(logits(kind, model, ids, mask), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", METHODS, ids=lambda c: type(c).__name__)
def test_only_the_method_learns_and_merging_keeps_the_outputs(kind, config):
    model = tiny(kind)
    head = ("classifier.",) if kind == "encoder" else ()
    info = apply_peft(model, config, train_also=head)
    ids, mask = batch()
    out = logits(kind, model, ids, mask)
    assert out.shape == logits(kind, tiny(kind), ids, mask).shape  # virtual tokens leave the output's shape alone
    out.float().pow(2).mean().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
        else:
            assert p.grad is None, name  # the frozen base gets no gradient
    assert info.trainable == count_parameters(model, trainable_only=True) < info.base_parameters
    perturb(model)
    before = logits(kind, model, ids, mask)
    merge_for_inference(model)
    torch.testing.assert_close(logits(kind, model, ids, mask), before, rtol=1e-4, atol=1e-4)  # merged weights round differently
    if isinstance(config, (LoRAConfig, IA3Config)):  # merged: the plain architecture again
        assert sorted(n for n, _ in model.named_parameters()) == sorted(n for n, _ in tiny(kind).named_parameters())


def test_full_fine_tuning_trains_everything():
    model = tiny("encoder")
    info = apply_peft(model, FullConfig())
    assert info.trainable == info.base_parameters == info.stored and all(p.requires_grad for p in model.parameters())


@settings(max_examples=20, deadline=None)
@given(d_head=st.sampled_from([4, 8]), n_head=st.sampled_from([2, 4]), kv_div=st.sampled_from([1, 2]),
       r=st.integers(1, 8), alpha=st.floats(0.5, 32), bias=st.booleans(), targets=st.sampled_from(["qv", "q", "kv", "qkv"]),
       seed=st.integers(0, 1000))
def test_merged_lora_and_ia3_equal_the_unmerged_model(d_head, n_head, kv_div, r, alpha, bias, targets, seed):
    """Over shapes (MHA and GQA, with and without biases), ranks, scalings and target sets."""
    kw = dict(n_head=n_head, n_kv_head=n_head // kv_div, d_model=n_head * d_head, d_ff=48, bias=bias)
    for config in (LoRAConfig(r=r, alpha=alpha, targets=tuple(targets)), IA3Config()):
        model = tiny("decoder", seed=seed, **kw)
        apply_peft(model, config, seed=seed)
        perturb(model, seed=seed)
        ids, mask = batch(seed)
        before = model(ids, mask).logits
        merge_for_inference(model)
        torch.testing.assert_close(model(ids, mask).logits, before, rtol=1e-4, atol=1e-4)


def test_parameter_counts_follow_the_formulae():
    L, d, d_ff, vocab = 2, 32, 64, 100
    model = tiny("decoder")
    assert apply_peft(copy.deepcopy(model), LoRAConfig(r=4)).trainable == L * 2 * 4 * (d + d)  # A: r x d, B: d x r; q and v
    assert apply_peft(copy.deepcopy(model), IA3Config()).trainable == L * (2 * d + d_ff)  # l_k, l_v, l_ff
    m = 4
    norms = (2 * L + 1) * 2 * d  # two LayerNorms per block and the final one, weight and bias
    assert apply_peft(copy.deepcopy(model), AdapterConfig(bottleneck=m)).trainable == L * 2 * (2 * d * m + d + m) + norms
    P, h = 5, 16
    prefix = apply_peft(copy.deepcopy(model), PrefixConfig(length=P, hidden=h))
    assert prefix.trainable == P * d + (d * h + h) + (h * 2 * L * d + 2 * L * d)  # embedding + MLP
    assert prefix.stored == P * 2 * L * d  # the MLP is dropped: keys and values per layer
    assert apply_peft(copy.deepcopy(model), PrefixConfig(length=P, reparameterize=False)).trainable == P * 2 * L * d
    assert apply_peft(copy.deepcopy(model), PromptConfig(length=P, init="vocab")).trainable == P * d
    base = count_parameters(model)
    assert base == vocab * d + 64 * d + L * (4 * d * d + 4 * d + 2 * d * d_ff + d_ff + d + 4 * d) + 2 * d


def test_prefix_mlp_can_be_dropped_without_changing_outputs():
    model = tiny("decoder")
    info = apply_peft(model, PrefixConfig(length=5, hidden=16))
    perturb(model)
    ids, mask = batch()
    before = model(ids, mask).logits
    merge_for_inference(model)
    assert count_parameters(model.body.decoder.prefix) == info.stored
    torch.testing.assert_close(model(ids, mask).logits, before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["decoder", "encoder-decoder"])
@pytest.mark.parametrize("config", [PrefixConfig(length=5, hidden=16), PromptConfig(length=4, init="vocab")],
                         ids=["prefix", "prompt"])
def test_decoding_with_a_kv_cache_equals_recomputing(kind, config):
    model = tiny(kind)
    apply_peft(model, config)
    perturb(model)
    ids, mask = batch(left_padded=kind == "decoder")
    fast = generate(model, ids, mask, GenerationConfig(max_new_tokens=6, use_cache=True))
    slow = generate(model, ids, mask, GenerationConfig(max_new_tokens=6, use_cache=False))
    assert torch.equal(fast, slow)
    beams = generate(model, ids, mask, GenerationConfig(max_new_tokens=4, method="beam", num_beams=3))
    assert beams.shape[0] == ids.shape[0]


def test_virtual_tokens_take_the_first_positions():
    model = tiny("decoder")
    assert virtual_tokens(model) == 0
    apply_peft(model, PromptConfig(length=4, init="vocab"))
    assert virtual_tokens(model) == 4
    ids = torch.randint(3, 100, (1, 64 - 4))
    assert model(ids).logits.shape == (1, 60, 100)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.randint(3, 100, (1, 61)))


def test_prompt_class_label_initialisation_uses_the_label_embeddings():
    model = tiny("encoder")
    labels = [[10], [11, 12]]
    apply_peft(model, PromptConfig(length=5, init="class_labels"), label_token_ids=labels)
    prompt = model.body.encoder.soft_prompt.embedding
    emb = model.body.tok_embed.weight
    torch.testing.assert_close(prompt[0], emb[10])
    torch.testing.assert_close(prompt[1], emb[11:13].mean(0))
    vocab_rows = prompt[2:]
    assert all(any(torch.equal(row, e) for e in emb) for row in vocab_rows)  # the rest: sampled vocabulary
    with pytest.raises(ValueError, match="label_token_ids"):
        apply_peft(tiny("encoder"), PromptConfig(init="class_labels"))


def test_prompt_tuning_keeps_the_cls_read_out_on_the_real_token():
    """The soft prompt's positions are dropped at the end of the stack: the pooler reads [CLS]."""
    model = tiny("encoder")
    apply_peft(model, PromptConfig(length=4, init="vocab"))
    ids, mask = batch()
    out = model(ids, mask, token_type_ids=torch.zeros_like(ids))
    assert out.hidden.shape[1] == ids.shape[1]


def test_split_qkv_is_the_same_model():
    for kind in KINDS:
        base = tiny(kind)
        ids, mask = batch()
        split = split_qkv(copy.deepcopy(base))
        torch.testing.assert_close(logits(kind, split, ids, mask), logits(kind, base, ids, mask), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Parity with peft


def _peft():
    return pytest.importorskip("peft")


def test_lora_matches_peft_on_the_split_model():
    peft = _peft()
    base = tiny("decoder")
    ours = copy.deepcopy(base)
    apply_peft(ours, LoRAConfig(r=4, alpha=8))
    perturb(ours)  # B != 0, or the test could not fail
    theirs = peft.inject_adapter_in_model(
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q", "v"], lora_dropout=0.0), split_qkv(copy.deepcopy(base)))
    with torch.no_grad():
        for mine, other in zip(ours.body.decoder.layers, theirs.body.decoder.layers):
            for t in "qv":
                getattr(other.self_attn.qkv_proj, t).lora_A["default"].weight.copy_(mine.self_attn.qkv_proj.lora_A[t])
                getattr(other.self_attn.qkv_proj, t).lora_B["default"].weight.copy_(mine.self_attn.qkv_proj.lora_B[t])
    ids, mask = batch()
    assert (ours(ids, mask).logits - base(ids, mask).logits).abs().max() > 1e-2
    torch.testing.assert_close(ours(ids, mask).logits, theirs(ids, mask).logits, rtol=1e-5, atol=1e-5)


def test_ia3_matches_peft_on_the_split_model():
    peft = _peft()
    base = tiny("decoder")
    ours = copy.deepcopy(base)
    apply_peft(ours, IA3Config())
    perturb(ours)
    config = peft.IA3Config(target_modules=r".*\.(k|v|mlp\.out_proj)$", feedforward_modules=r".*mlp\.out_proj$")
    theirs = peft.inject_adapter_in_model(config, split_qkv(copy.deepcopy(base)))
    with torch.no_grad():
        for mine, other in zip(ours.body.decoder.layers, theirs.body.decoder.layers):
            for t in "kv":
                getattr(other.self_attn.qkv_proj, t).ia3_l["default"].copy_(mine.self_attn.qkv_proj.scales[t][:, None])
            other.mlp.out_proj.ia3_l["default"].copy_(mine.mlp.out_proj.scale[None, :])
    ids, mask = batch()
    assert (ours(ids, mask).logits - base(ids, mask).logits).abs().max() > 1e-2
    torch.testing.assert_close(ours(ids, mask).logits, theirs(ids, mask).logits, rtol=1e-5, atol=1e-5)


def _hf_gpt2():
    transformers = pytest.importorskip("transformers")
    from repro.model.convert import from_gpt2

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0,
                                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    hf = transformers.GPT2LMHeadModel(config).eval()
    return hf, from_gpt2(hf).eval()


def test_prompt_tuning_matches_peft_on_gpt2():
    peft = _peft()
    hf, ours = _hf_gpt2()
    P = 5
    theirs = peft.get_peft_model(hf, peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P)).eval()
    apply_peft(ours, PromptConfig(length=P, init="random_uniform"))
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(ours.body.decoder.soft_prompt.embedding)
    ids, mask = batch()
    real = mask.bool()  # padded positions' outputs are never used (and differ between implementations)
    out = theirs(input_ids=ids, attention_mask=mask).logits[:, P:]  # peft returns the virtual positions too
    torch.testing.assert_close(ours(ids, mask).logits[real], out[real], rtol=1e-5, atol=1e-5)


@torch.no_grad()
def copy_prefix(mine, other, reparameterize: bool) -> None:
    """Our prefix encoder's weights into peft's (its embedding, and the MLP when reparameterised)."""
    other.embedding.weight.copy_(mine.embedding.weight)
    if reparameterize:
        for i in (0, 2):
            other.transform[i].weight.copy_(mine.mlp[i].weight)
            other.transform[i].bias.copy_(mine.mlp[i].bias)


@pytest.mark.parametrize("reparameterize", [True, False], ids=["prefix_tuning", "p_tuning_v2"])
def test_prefix_tuning_matches_peft_on_gpt2(reparameterize):
    peft = _peft()
    hf, ours = _hf_gpt2()
    P, hidden = 5, 16
    theirs = peft.get_peft_model(hf, peft.PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=P, prefix_projection=reparameterize, encoder_hidden_size=hidden)).eval()
    apply_peft(ours, PrefixConfig(length=P, reparameterize=reparameterize, hidden=hidden))
    copy_prefix(ours.body.decoder.prefix, theirs.prompt_encoder["default"], reparameterize)
    ids, mask = batch()
    real = mask.bool()
    torch.testing.assert_close(ours(ids, mask).logits[real], theirs(input_ids=ids, attention_mask=mask).logits[real],
                               rtol=1e-5, atol=1e-5)


def _hf_bert():
    transformers = pytest.importorskip("transformers")
    from repro.model.convert import from_bert

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    hf = transformers.BertForPreTraining(config).eval()
    return hf, from_bert(hf).eval()


@pytest.mark.parametrize("method", ["prompt_tuning", "prefix_tuning", "p_tuning_v2"])
def test_prompt_and_prefix_tuning_match_peft_on_bert(method):
    """The encoder's virtual tokens: peft prepends them before [CLS] (positions shift with them) and
    ignores segment ids under prompt learning, so the comparison feeds one segment."""
    peft = _peft()
    hf, ours = _hf_bert()
    P, hidden = 5, 16
    if method == "prompt_tuning":
        theirs = peft.get_peft_model(hf, peft.PromptTuningConfig(task_type="FEATURE_EXTRACTION", num_virtual_tokens=P))
        apply_peft(ours, PromptConfig(length=P, init="random_uniform"))
        with torch.no_grad():
            theirs.prompt_encoder["default"].embedding.weight.copy_(ours.body.encoder.soft_prompt.embedding)
    else:
        reparameterize = method == "prefix_tuning"
        theirs = peft.get_peft_model(hf, peft.PrefixTuningConfig(
            task_type="FEATURE_EXTRACTION", num_virtual_tokens=P, prefix_projection=reparameterize,
            encoder_hidden_size=hidden))
        apply_peft(ours, PrefixConfig(length=P, reparameterize=reparameterize, hidden=hidden))
        copy_prefix(ours.body.encoder.prefix, theirs.prompt_encoder["default"], reparameterize)
    theirs.eval()
    ids, mask = batch()
    out = theirs(input_ids=ids, attention_mask=mask).prediction_logits
    if method == "prompt_tuning":
        out = out[:, P:]  # peft returns the virtual positions too
    real = mask.bool()
    assert (ours(ids, mask).logits - hf(input_ids=ids, attention_mask=mask).prediction_logits).abs().max() > 1e-3
    torch.testing.assert_close(ours(ids, mask).logits[real], out[real], rtol=1e-5, atol=1e-5)
