"""Load Hugging Face `transformers` models into the shared implementation.

Each converter reads the HF config into a `ModelConfig`, renames (and where HF fuses or
transposes, reshapes) the weights, and returns our task model. The parity tests use them to prove
that our presets are the papers' architectures; users use them to run the suite on weights they
already have (`repro eval` on an HF checkpoint goes through the HF model itself, not this).
"""

from __future__ import annotations

import torch
from torch import nn

from repro.config import ModelConfig
from repro.model.heads import LanguageModel, MaskedLanguageModel, build_model

HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu", "relu": "relu", "silu": "swiglu"}


def _load(model: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    own = model.state_dict()
    missing = [k for k in own if k not in weights and not _is_tied(model, k)]
    unexpected = [k for k in weights if k not in own]
    if missing or unexpected:
        raise KeyError(f"weight conversion mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(weights, strict=False)
    return model


def _is_tied(model: nn.Module, key: str) -> bool:
    tied = ("lm_head.proj.weight", "mlm_head.decoder.weight")
    return key in tied and model.config.tie_embeddings


def _conv1d_qkv(prefix: str, sd: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """GPT-1/GPT-2 `Conv1D` stores weights as (in, out): transpose to nn.Linear's (out, in)."""
    return sd[f"{prefix}.weight"].t(), sd[f"{prefix}.bias"]


def _gpt_block(ours: str, theirs: str, sd: dict, out: dict, ln_names=("ln_1", "ln_2")) -> None:
    for name, target in (("attn.c_attn", "self_attn.qkv_proj"), ("attn.c_proj", "self_attn.out_proj"),
                         ("mlp.c_fc", "mlp.in_proj"), ("mlp.c_proj", "mlp.out_proj")):
        w, b = _conv1d_qkv(f"{theirs}.{name}", sd)
        out[f"{ours}.{target}.weight"], out[f"{ours}.{target}.bias"] = w, b
    for name, target in zip(ln_names, ("self_attn_norm", "mlp_norm")):
        out[f"{ours}.{target}.weight"] = sd[f"{theirs}.{name}.weight"]
        out[f"{ours}.{target}.bias"] = sd[f"{theirs}.{name}.bias"]


def from_gpt2(hf) -> LanguageModel:
    c = hf.config
    config = ModelConfig(
        kind="decoder", vocab_size=c.vocab_size, n_layer=c.n_layer, d_model=c.n_embd, n_head=c.n_head,
        d_ff=c.n_inner or 4 * c.n_embd, max_seq_len=c.n_positions, positions="learned",
        scale_embeddings=False, norm="layernorm", norm_placement="pre", norm_eps=c.layer_norm_epsilon,
        activation=HF_ACTIVATIONS[c.activation_function], dropout=0.0, scale_residual_init=True,
    )
    sd = hf.state_dict()
    out = {"body.tok_embed.weight": sd["transformer.wte.weight"], "body.decoder.pos_embed.weight": sd["transformer.wpe.weight"]}
    for i in range(c.n_layer):
        _gpt_block(f"body.decoder.layers.{i}", f"transformer.h.{i}", sd, out)
    out["body.decoder.final_norm.weight"] = sd["transformer.ln_f.weight"]
    out["body.decoder.final_norm.bias"] = sd["transformer.ln_f.bias"]
    return _load(LanguageModel(config), out)


def from_openai_gpt(hf) -> LanguageModel:
    c = hf.config
    config = ModelConfig(
        kind="decoder", vocab_size=c.vocab_size, n_layer=c.n_layer, d_model=c.n_embd, n_head=c.n_head,
        d_ff=4 * c.n_embd, max_seq_len=c.n_positions, positions="learned", scale_embeddings=False,
        norm="layernorm", norm_placement="post", norm_eps=c.layer_norm_epsilon,
        # GPT-1's "gelu" is the tanh approximation (transformers maps it to gelu_new).
        activation={"gelu": "gelu_tanh", "relu": "relu"}[c.afn], dropout=0.0,
    )
    sd = hf.state_dict()
    out = {"body.tok_embed.weight": sd["transformer.tokens_embed.weight"],
           "body.decoder.pos_embed.weight": sd["transformer.positions_embed.weight"]}
    for i in range(c.n_layer):
        _gpt_block(f"body.decoder.layers.{i}", f"transformer.h.{i}", sd, out)
    return _load(LanguageModel(config), out)


def _linear(out: dict, ours: str, sd: dict, theirs: str, bias: bool = True) -> None:
    out[f"{ours}.weight"] = sd[f"{theirs}.weight"]
    if bias:
        out[f"{ours}.bias"] = sd[f"{theirs}.bias"]


def from_bert(hf) -> MaskedLanguageModel:
    """`BertForPreTraining` (MLM + NSP) or `BertForMaskedLM` (MLM only)."""
    c = hf.config
    config = ModelConfig(
        kind="encoder", vocab_size=c.vocab_size, n_layer=c.num_hidden_layers, d_model=c.hidden_size,
        n_head=c.num_attention_heads, d_ff=c.intermediate_size, max_seq_len=c.max_position_embeddings,
        positions="learned", scale_embeddings=False, n_segments=c.type_vocab_size, embedding_norm=True,
        norm="layernorm", norm_placement="post", norm_eps=c.layer_norm_eps,
        activation=HF_ACTIVATIONS[c.hidden_act], dropout=0.0,
    )
    sd = hf.state_dict()
    nsp = "cls.seq_relationship.weight" in sd
    e = "bert.embeddings"
    out = {
        "body.tok_embed.weight": sd[f"{e}.word_embeddings.weight"],
        "body.encoder.pos_embed.weight": sd[f"{e}.position_embeddings.weight"],
        "body.encoder.segment_embed.weight": sd[f"{e}.token_type_embeddings.weight"],
    }
    for ours, theirs in bert_modules(c.num_hidden_layers, nsp):
        _linear(out, ours, sd, theirs)
    for i in range(c.num_hidden_layers):
        ours, a = f"body.encoder.layers.{i}", f"bert.encoder.layer.{i}.attention.self"
        out[f"{ours}.self_attn.qkv_proj.weight"] = torch.cat([sd[f"{a}.{n}.weight"] for n in ("query", "key", "value")])
        out[f"{ours}.self_attn.qkv_proj.bias"] = torch.cat([sd[f"{a}.{n}.bias"] for n in ("query", "key", "value")])
    out["mlm_head.bias"] = sd["cls.predictions.bias"]
    return _load(MaskedLanguageModel(config, nsp=nsp), out)


def bert_modules(n_layer: int, nsp: bool) -> list[tuple[str, str]]:
    """(ours, BERT's) names of every module that is one weight and one bias on both sides: the
    embedding norm, each layer's output projections and norms, the MLM transform and the NSP
    head. `export.to_bert` reads the same table the other way."""
    pairs = [("body.encoder.embed_norm", "bert.embeddings.LayerNorm")]
    for i in range(n_layer):
        ours, theirs = f"body.encoder.layers.{i}", f"bert.encoder.layer.{i}"
        pairs += [(f"{ours}.self_attn.out_proj", f"{theirs}.attention.output.dense"),
                  (f"{ours}.self_attn_norm", f"{theirs}.attention.output.LayerNorm"),
                  (f"{ours}.mlp.in_proj", f"{theirs}.intermediate.dense"),
                  (f"{ours}.mlp.out_proj", f"{theirs}.output.dense"),
                  (f"{ours}.mlp_norm", f"{theirs}.output.LayerNorm")]
    pairs += [("mlm_head.dense", "cls.predictions.transform.dense"), ("mlm_head.norm", "cls.predictions.transform.LayerNorm")]
    if nsp:
        pairs += [("pooler.dense", "bert.pooler.dense"), ("nsp_head", "cls.seq_relationship")]
    return pairs


def from_t5(hf) -> LanguageModel:
    c = hf.config
    gated = c.feed_forward_proj.startswith("gated-")
    # transformers 5 keeps `tie_word_embeddings` True and records the T5 v1.0 output scaling
    # separately; whether the head is really shared is read off the weights.
    tied = hf.lm_head.weight.data_ptr() == hf.shared.weight.data_ptr()
    scale_output = getattr(c, "scale_decoder_outputs", c.tie_word_embeddings)
    config = ModelConfig(
        kind="encoder-decoder", vocab_size=c.vocab_size, n_layer=c.num_layers, n_decoder_layer=c.num_decoder_layers,
        d_model=c.d_model, n_head=c.num_heads, d_head=c.d_kv, d_ff=c.d_ff, max_seq_len=512,
        positions="t5_relative", relative_buckets=c.relative_attention_num_buckets,
        relative_max_distance=c.relative_attention_max_distance, scale_embeddings=False, norm="rmsnorm",
        norm_placement="pre", norm_eps=c.layer_norm_epsilon,
        activation={"gelu_new": "geglu_tanh", "gelu": "geglu", "silu": "swiglu"}[c.dense_act_fn] if gated else "relu",
        bias=False, scale_attention=False, tie_embeddings=tied, tied_output_scale=scale_output, dropout=0.0,
        init_scheme="t5",
    )
    sd = hf.state_dict()
    out = {"body.tok_embed.weight": sd["shared.weight"]}
    if not tied:
        out["lm_head.proj.weight"] = sd["lm_head.weight"]
    for stack in ("encoder", "decoder"):
        n_layer = config.n_layer if stack == "encoder" else config.decoder_layers
        out[f"body.{stack}.position_bias.table.weight"] = sd[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        out[f"body.{stack}.final_norm.weight"] = sd[f"{stack}.final_layer_norm.weight"]
        for i in range(n_layer):
            ours, theirs = f"body.{stack}.layers.{i}", f"{stack}.block.{i}.layer"
            a = f"{theirs}.0.SelfAttention"
            out[f"{ours}.self_attn.qkv_proj.weight"] = torch.cat([sd[f"{a}.{n}.weight"] for n in "qkv"])
            out[f"{ours}.self_attn.out_proj.weight"] = sd[f"{a}.o.weight"]
            out[f"{ours}.self_attn_norm.weight"] = sd[f"{theirs}.0.layer_norm.weight"]
            ff = 1
            if stack == "decoder":
                x = f"{theirs}.1.EncDecAttention"
                out[f"{ours}.cross_attn.q_proj.weight"] = sd[f"{x}.q.weight"]
                out[f"{ours}.cross_attn.kv_proj.weight"] = torch.cat([sd[f"{x}.k.weight"], sd[f"{x}.v.weight"]])
                out[f"{ours}.cross_attn.out_proj.weight"] = sd[f"{x}.o.weight"]
                out[f"{ours}.cross_attn_norm.weight"] = sd[f"{theirs}.1.layer_norm.weight"]
                ff = 2
            f = f"{theirs}.{ff}.DenseReluDense"
            if gated:
                out[f"{ours}.mlp.gate_proj.weight"] = sd[f"{f}.wi_0.weight"]
                out[f"{ours}.mlp.in_proj.weight"] = sd[f"{f}.wi_1.weight"]
            else:
                out[f"{ours}.mlp.in_proj.weight"] = sd[f"{f}.wi.weight"]
            out[f"{ours}.mlp.out_proj.weight"] = sd[f"{f}.wo.weight"]
            out[f"{ours}.mlp_norm.weight"] = sd[f"{theirs}.{ff}.layer_norm.weight"]
    return _load(LanguageModel(config), out)


def from_llama(hf) -> LanguageModel:
    c = hf.config
    config = ModelConfig(
        kind="decoder", vocab_size=c.vocab_size, n_layer=c.num_hidden_layers, d_model=c.hidden_size,
        n_head=c.num_attention_heads, n_kv_head=c.num_key_value_heads, d_head=getattr(c, "head_dim", None),
        d_ff=c.intermediate_size, max_seq_len=c.max_position_embeddings, positions="rope",
        rope_theta=_rope_theta(c), scale_embeddings=False, norm="rmsnorm", norm_placement="pre",
        norm_eps=c.rms_norm_eps, activation="swiglu", bias=False, tie_embeddings=c.tie_word_embeddings, dropout=0.0,
    )
    sd = hf.state_dict()
    out = {"body.tok_embed.weight": sd["model.embed_tokens.weight"], "body.decoder.final_norm.weight": sd["model.norm.weight"]}
    if not c.tie_word_embeddings:
        out["lm_head.proj.weight"] = sd["lm_head.weight"]
    for ours, theirs in llama_weights(c.num_hidden_layers):
        out[ours] = sd[theirs]
    for i in range(c.num_hidden_layers):
        a = f"model.layers.{i}.self_attn"
        out[f"body.decoder.layers.{i}.self_attn.qkv_proj.weight"] = torch.cat([sd[f"{a}.{n}_proj.weight"] for n in "qkv"])
    return _load(LanguageModel(config), out)


def llama_weights(n_layer: int) -> list[tuple[str, str]]:
    """(ours, Llama's) names of every per-layer tensor that is the same on both sides (all but
    the fused q/k/v projection). `export.to_llama` reads the same table the other way."""
    pairs = []
    for i in range(n_layer):
        ours, theirs = f"body.decoder.layers.{i}", f"model.layers.{i}"
        pairs += [(f"{ours}.self_attn.out_proj.weight", f"{theirs}.self_attn.o_proj.weight"),
                  (f"{ours}.mlp.gate_proj.weight", f"{theirs}.mlp.gate_proj.weight"),
                  (f"{ours}.mlp.in_proj.weight", f"{theirs}.mlp.up_proj.weight"),
                  (f"{ours}.mlp.out_proj.weight", f"{theirs}.mlp.down_proj.weight"),
                  (f"{ours}.self_attn_norm.weight", f"{theirs}.input_layernorm.weight"),
                  (f"{ours}.mlp_norm.weight", f"{theirs}.post_attention_layernorm.weight")]
    return pairs


def _rope_theta(c) -> float:
    params = getattr(c, "rope_parameters", None) or {}
    return float(params.get("rope_theta", getattr(c, "rope_theta", 10000.0)))


__all__ = ["from_bert", "from_gpt2", "from_llama", "from_openai_gpt", "from_t5", "build_model"]
