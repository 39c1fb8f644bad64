"""Invariants of the shared model, checked with hypothesis over the configuration space:
causality, padding invariance, KV-cache decoding equals full recompute, RoPE / relative-bias
shift behaviour, ALiBi slopes, banded attention, parameter counts of the paper presets."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.config import ConfigError, ModelConfig
from repro.model import KVCache, LanguageModel, MaskedLanguageModel, PRESETS, preset_parameters, scaled
from repro.model.layers import alibi_slopes, matmul_attention, t5_relative_bucket

VOCAB = 61
POSITIONS = ["learned", "sinusoidal", "rope", "alibi", "t5_relative"]
SETTINGS = settings(max_examples=12, deadline=None)


def tiny(kind="decoder", **changes) -> ModelConfig:
    base = dict(
        kind=kind, vocab_size=VOCAB, n_layer=2, d_model=32, n_head=4, d_ff=64, max_seq_len=64, dropout=0.0,
        norm_placement="pre", positions="learned",
    )
    return ModelConfig(**{**base, **changes})


decoder_configs = st.builds(
    lambda positions, placement, norm, act, kv, pattern: tiny(
        positions=positions, norm_placement=placement, norm=norm, activation=act, n_kv_head=kv,
        attention_pattern=pattern, local_window=3,
    ),
    st.sampled_from(POSITIONS),
    st.sampled_from(["pre", "post"]),
    st.sampled_from(["layernorm", "rmsnorm"]),
    st.sampled_from(["relu", "gelu", "swiglu", "geglu"]),
    st.sampled_from([4, 2, 1]),  # MHA, GQA, MQA
    st.sampled_from(["dense", "alternating_banded"]),
)


def _model(config, cls=LanguageModel, seed=0):
    torch.manual_seed(seed)
    return cls(config).eval()


def _with_token_changed(seed: int, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two random batches of ids that differ at position t only."""
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(seed))
    changed = ids.clone()
    changed[:, t] = (changed[:, t] + 1) % VOCAB
    return ids, changed


@SETTINGS
@given(config=decoder_configs, t=st.integers(0, 9), seed=st.integers(0, 1000))
def test_causality_changing_token_t_never_changes_earlier_logits(config, t, seed):
    model = _model(config)
    ids, changed = _with_token_changed(seed, t)
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    assert torch.allclose(a[:, :t], b[:, :t], atol=1e-5)
    assert not torch.allclose(a[:, t:], b[:, t:], atol=1e-5)  # and the change is seen from t on


@SETTINGS
@given(config=decoder_configs, t=st.integers(0, 9), seed=st.integers(0, 1000))
def test_cpu_bf16_attention_is_causal_and_tracks_fp32(config, t, seed):
    # Under CPU bf16 autocast attention runs through `matmul_attention`, not SDPA.
    model = _model(config)
    ids, changed = _with_token_changed(seed, t)
    with torch.no_grad():
        fp32 = model(ids).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a, b = model(ids).logits.float(), model(changed).logits.float()
    assert torch.equal(a[:, :t], b[:, :t])
    assert (a - fp32).abs().max() < 0.05 * fp32.abs().max() + 0.05


@SETTINGS
@given(
    case=st.sampled_from(["none", "causal", "bool", "float"]), kv_heads=st.sampled_from([4, 2, 1]),
    scale=st.sampled_from([None, 1.0]), seed=st.integers(0, 1000),
)
def test_matmul_attention_equals_sdpa(case, kv_heads, scale, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(2, 4, 7, 8, generator=g)
    k, v = torch.randn(2, kv_heads, 7, 8, generator=g), torch.randn(2, kv_heads, 7, 8, generator=g)
    mask = None
    if case == "bool":  # every query keeps at least itself, as the model's masks guarantee
        mask = (torch.rand(2, 1, 7, 7, generator=g) > 0.4) | torch.eye(7, dtype=torch.bool)
    elif case == "float":  # an additive position bias
        mask = torch.randn(1, 4, 7, 7, generator=g)
    ours = matmul_attention(q, k, v, mask=mask, is_causal=case == "causal", scale=scale)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=case == "causal", scale=scale, enable_gqa=kv_heads != 4)
    assert torch.allclose(ours, ref, atol=1e-5)


@SETTINGS
@given(config=decoder_configs, pad=st.integers(1, 5), seed=st.integers(0, 1000))
def test_left_padding_is_invisible_to_a_decoder(config, pad, seed):
    model = _model(config)
    ids = torch.randint(0, VOCAB, (1, 8), generator=torch.Generator().manual_seed(seed))
    padded = torch.cat([torch.zeros(1, pad, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros(1, pad, dtype=torch.long), torch.ones(1, 8, dtype=torch.long)], dim=1)
    with torch.no_grad():
        alone = model(ids).logits
        with_pad = model(padded, mask).logits[:, pad:]
    assert torch.allclose(alone, with_pad, atol=1e-4)


@SETTINGS
@given(positions=st.sampled_from(POSITIONS), pad=st.integers(1, 5), seed=st.integers(0, 1000))
def test_right_padding_is_invisible_to_an_encoder(positions, pad, seed):
    config = tiny("encoder", positions=positions, norm_placement="post", n_segments=2, embedding_norm=True)
    model = _model(config, MaskedLanguageModel)
    ids = torch.randint(0, VOCAB, (1, 7), generator=torch.Generator().manual_seed(seed))
    padded = torch.cat([ids, torch.zeros(1, pad, dtype=torch.long)], dim=1)
    mask = (torch.arange(7 + pad) < 7).long()[None]
    with torch.no_grad():
        alone = model(ids)
        with_pad = model(padded, mask)
    assert torch.allclose(alone.logits, with_pad.logits[:, :7], atol=1e-4)
    assert torch.allclose(alone.seq_logits, with_pad.seq_logits, atol=1e-4)


def _incremental_logits(model, ids, mask, prefix, **kwargs):
    """Feed `prefix` tokens at once, then one token per step through the KV cache."""
    cache = KVCache()
    out = [model(ids[:, :prefix], None if mask is None else mask[:, :prefix], cache=cache, **kwargs).logits]
    for t in range(prefix, ids.shape[1]):
        step_mask = None if mask is None else mask[:, : t + 1]
        out.append(model(ids[:, t : t + 1], step_mask, cache=cache, **kwargs).logits)
    return torch.cat(out, dim=1)


@SETTINGS
@given(config=decoder_configs, prefix=st.integers(1, 6), left_pad=st.integers(0, 3), seed=st.integers(0, 1000))
def test_kv_cache_decoding_equals_full_recompute(config, prefix, left_pad, seed):
    model = _model(config)
    T = 10
    ids = torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(seed))
    mask = None
    if left_pad:
        mask = torch.ones(2, T, dtype=torch.long)
        mask[1, :left_pad] = 0
    with torch.no_grad():
        full = model(ids, mask).logits
        step = _incremental_logits(model, ids, mask, prefix)
    real = torch.ones(2, T, dtype=torch.bool) if mask is None else mask.bool()
    assert torch.allclose(full[real], step[real], atol=1e-4)


@SETTINGS
@given(positions=st.sampled_from(POSITIONS), prefix=st.integers(1, 5), seed=st.integers(0, 1000))
def test_encoder_decoder_kv_cache_equals_full_recompute(positions, prefix, seed):
    config = tiny("encoder-decoder", positions=positions, n_kv_head=2)
    model = _model(config)
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, VOCAB, (2, 9), generator=g)
    src_mask = torch.ones(2, 9, dtype=torch.long)
    src_mask[0, -3:] = 0
    tgt = torch.randint(0, VOCAB, (2, 8), generator=g)
    with torch.no_grad():
        full = model(src, src_mask, decoder_input_ids=tgt).logits
        memory = model.encode(src, src_mask)
        cache = KVCache()
        steps = [model(src, src_mask, decoder_input_ids=tgt[:, :prefix], memory=memory, cache=cache).logits]
        for t in range(prefix, 8):
            steps.append(model(src, src_mask, decoder_input_ids=tgt[:, t : t + 1], memory=memory, cache=cache).logits)
    assert torch.allclose(full, torch.cat(steps, dim=1), atol=1e-4)


@SETTINGS
@given(shift=st.integers(1, 40), seed=st.integers(0, 1000))
def test_rope_logits_depend_only_on_relative_positions(shift, seed):
    model = _model(tiny(positions="rope", max_seq_len=128))
    ids = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(seed))
    base = torch.arange(9)[None]
    with torch.no_grad():
        a = model(ids, position_ids=base).logits
        b = model(ids, position_ids=base + shift).logits
    assert torch.allclose(a, b, atol=1e-4)


def test_learned_positions_are_not_shift_invariant():
    """The control for the RoPE test: absolute positions do change the output when shifted."""
    model = _model(tiny(positions="learned"))
    ids = torch.randint(0, VOCAB, (1, 9), generator=torch.Generator().manual_seed(0))
    base = torch.arange(9)[None]
    with torch.no_grad():
        assert not torch.allclose(model(ids, position_ids=base).logits, model(ids, position_ids=base + 5).logits)


@given(distance=st.integers(-300, 300), buckets=st.sampled_from([8, 32]), max_distance=st.sampled_from([16, 128]))
def test_t5_buckets_are_exact_near_and_logarithmic_far(distance, buckets, max_distance):
    rel = torch.tensor([distance])
    bi = int(t5_relative_bucket(rel, True, buckets, max_distance))
    uni = int(t5_relative_bucket(rel, False, buckets, max_distance))
    assert 0 <= bi < buckets and 0 <= uni < buckets
    half = buckets // 2
    if abs(distance) < half // 2:  # exact region of the bidirectional table
        assert bi == abs(distance) + (half if distance > 0 else 0)
    if distance >= 0:  # the causal table only distinguishes the past
        assert uni == 0
    if -distance < buckets // 2 and distance <= 0:
        assert uni == -distance
    # monotone in |distance|, saturating at max_distance
    farther = torch.tensor([distance - 1 if distance <= 0 else distance + 1])
    assert int(t5_relative_bucket(farther, True, buckets, max_distance)) >= bi
    if abs(distance) >= max_distance:
        assert bi % half == half - 1


def test_alibi_slopes_follow_press_et_al():
    assert torch.allclose(alibi_slopes(8), torch.tensor([2.0**-i for i in range(1, 9)]))
    assert torch.allclose(alibi_slopes(4), torch.tensor([2.0**-2, 2.0**-4, 2.0**-6, 2.0**-8]))
    twelve = alibi_slopes(12)
    assert torch.allclose(twelve[:8], alibi_slopes(8))
    assert torch.allclose(twelve[8:], alibi_slopes(16)[0::2][:4])
    assert (twelve > 0).all() and len(set(twelve.tolist())) == 12


def test_banded_layers_only_see_the_local_window():
    config = tiny(attention_pattern="alternating_banded", local_window=3)
    stack = LanguageModel(config).body.decoder
    masks = stack._masks(T=8, past=0, attention_mask=None, device="cpu")
    dense, banded = masks["dense"][0][0, 0], masks["banded"][0][0, 0]
    i, j = torch.meshgrid(torch.arange(8), torch.arange(8), indexing="ij")
    assert torch.equal(dense, j <= i)
    assert torch.equal(banded, (j <= i) & (i - j < 3))
    assert [layer.banded for layer in stack.layers] == [False, True]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_parameter_counts_match_the_papers(name):
    preset = PRESETS[name]
    _, as_paper = preset_parameters(preset)
    assert abs(as_paper / preset.reported_params - 1) <= preset.tolerance, (
        f"{name}: {as_paper / 1e6:.1f}M counted vs {preset.reported_params / 1e6:.0f}M reported"
    )


def test_scaled_keeps_the_architecture_and_changes_the_size():
    small = scaled("gpt2_small", n_layer=2, d_model=64, n_head=4)
    assert (small.norm_placement, small.activation, small.positions) == ("pre", "gelu_tanh", "learned")
    assert small.d_ff == 256 and small.n_layer == 2


def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="positions"):
        tiny(positions="relative")
    with pytest.raises(ConfigError, match="divisible"):
        tiny(d_model=30)
    with pytest.raises(ConfigError, match="did you mean n_layer"):
        tiny().replace(n_layers=3)


def test_position_beyond_the_table_is_a_clear_error():
    model = _model(tiny(max_seq_len=8))
    with pytest.raises(ValueError, match="max_seq_len=8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_sinusoidal_table_matches_the_paper_formula():
    from repro.model.layers import sinusoidal_table

    table = sinusoidal_table(50, 16)
    pos, i = 7, 3
    assert math.isclose(table[pos, 2 * i].item(), math.sin(pos / 10000 ** (2 * i / 16)), abs_tol=1e-6)
    assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(pos / 10000 ** (2 * i / 16)), abs_tol=1e-6)
