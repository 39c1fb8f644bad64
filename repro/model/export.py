"""Write our models as `transformers` models: the inverse of `convert.py`.

Each architecture the suite trains has a `transformers` twin, and a trained model whose config is
that twin's shape becomes it with the same weights, so `from_pretrained`, lm-eval's own `hf` model
and any other `transformers` tool load it:

    GPT-2-shaped decoder (pre-LN LayerNorm + biases, learned positions)  -> GPT2LMHeadModel
    Llama-shaped decoder (pre-RMSNorm, RoPE, SwiGLU, no biases)          -> LlamaForCausalLM
    BERT-shaped encoder (post-LN, segments, embedding norm)              -> BertForMaskedLM / BertForPreTraining
    the same with rotary positions (the shared encoder base)             -> RoFormerForMaskedLM
    T5-shaped encoder-decoder (pre-RMSNorm, relative position buckets)   -> T5ForConditionalGeneration

The shared bases and every paper run are one of these. Another architecture is refused with the
field that differs.

    hf = to_hf(model)                       # the twin, logits equal to ours
    export_hf(run_dir, out_dir)             # model + tokenizer, ready for from_pretrained
"""

from __future__ import annotations

from pathlib import Path

import torch

from repro.config import InputError, ModelConfig

# (field, value GPT-2 has): every one must hold for the weights to mean the same thing there
GPT2_SHAPE = (("kind", "decoder"), ("positions", "learned"), ("norm", "layernorm"), ("norm_placement", "pre"),
              ("bias", True), ("tie_embeddings", True), ("tied_output_scale", False), ("scale_embeddings", False),
              ("embedding_norm", False), ("scale_attention", True), ("attention_pattern", "dense"))
GPT2_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


class ExportError(InputError):
    """The model has no `transformers` twin; the message names the field and the supported shapes."""


def check_gpt2_shape(config: ModelConfig) -> None:
    for field, value in GPT2_SHAPE:
        if getattr(config, field) != value:
            raise ExportError(f"cannot export as GPT-2: {field}={getattr(config, field)!r} where GPT2LMHeadModel "
                              f"has {value!r}; only GPT-2-shaped decoders (repro.model.scaled('gpt2_small', ...)) "
                              "export to transformers today")
    if config.activation not in GPT2_ACTIVATIONS:
        raise ExportError(f"cannot export as GPT-2: activation={config.activation!r}; GPT-2 takes "
                          f"{', '.join(GPT2_ACTIVATIONS)}")
    if config.kv_heads != config.n_head or config.head_dim * config.n_head != config.d_model:
        raise ExportError("cannot export as GPT-2: grouped-query attention or a head size other than "
                          "d_model / n_head has no GPT-2 form")


# (field, value) of the other twins, checked the same way
LLAMA_SHAPE = (("kind", "decoder"), ("positions", "rope"), ("norm", "rmsnorm"), ("norm_placement", "pre"),
               ("bias", False), ("activation", "swiglu"), ("tied_output_scale", False), ("scale_embeddings", False),
               ("embedding_norm", False), ("scale_attention", True), ("attention_pattern", "dense"))
BERT_SHAPE = (("kind", "encoder"), ("positions", "learned"), ("norm", "layernorm"), ("norm_placement", "post"),
              ("bias", True), ("tie_embeddings", True), ("scale_embeddings", False), ("embedding_norm", True),
              ("scale_attention", True), ("attention_pattern", "dense"))
# RoFormer (Su et al. 2021) is BERT with rotary positions in place of the learned table, at RoPE's
# usual base
ROFORMER_SHAPE = tuple((f, "rope") if f == "positions" else (f, v) for f, v in BERT_SHAPE) + (("rope_theta", 10000.0),)
T5_SHAPE = (("kind", "encoder-decoder"), ("positions", "t5_relative"), ("norm", "rmsnorm"), ("norm_placement", "pre"),
            ("bias", False), ("scale_embeddings", False), ("scale_attention", False), ("embedding_norm", False),
            ("attention_pattern", "dense"))
BERT_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
T5_ACTIVATIONS = {"relu": ("relu", "relu"), "geglu_tanh": ("gated-gelu", "gelu_new"), "geglu": ("gated-gelu", "gelu"),
                  "swiglu": ("gated-silu", "silu")}


def _mismatch(config: ModelConfig, shape: tuple) -> str | None:
    for field, value in shape:
        if getattr(config, field) != value:
            return f"{field}={getattr(config, field)!r} where it has {value!r}"
    return None


def twin(config: ModelConfig) -> str:
    """The `transformers` architecture `config` is the shape of, or ExportError naming, for the
    closest twin of its kind, the field that differs."""
    candidates = {"decoder": [("gpt2", GPT2_SHAPE), ("llama", LLAMA_SHAPE)], "encoder": [("bert", BERT_SHAPE), ("roformer", ROFORMER_SHAPE)],
                  "encoder-decoder": [("t5", T5_SHAPE)]}.get(config.kind, [])
    reasons = []
    for name, shape in candidates:
        why = _mismatch(config, shape)
        if why is None:
            if name == "gpt2":
                check_gpt2_shape(config)
            elif name in ("bert", "roformer") and config.activation not in BERT_ACTIVATIONS:
                raise ExportError(f"cannot export as {name}: activation={config.activation!r}; BERT takes "
                                  f"{', '.join(BERT_ACTIVATIONS)}")
            elif name == "t5" and config.activation not in T5_ACTIVATIONS:
                raise ExportError(f"cannot export as T5: activation={config.activation!r}; T5 takes "
                                  f"{', '.join(T5_ACTIVATIONS)}")
            return name
        reasons.append(f"not {name}-shaped ({why})")
    raise ExportError(f"cannot export a {config.kind} model to transformers: " + "; ".join(reasons or ["no twin"])
                      + ". Exportable: GPT-2- or Llama-shaped decoders, BERT- or RoFormer-shaped encoders, T5-shaped encoder-decoders "
                        "(the presets gpt2_*, llama_*, bert_*, t5_* scaled down)")


def to_hf(model):
    """`model` as its `transformers` twin (see the module doc), with the same weights."""
    return {"gpt2": to_gpt2, "llama": to_llama, "bert": to_bert, "roformer": to_roformer,
            "t5": to_t5}[twin(model.config)](model)


def _load_twin(hf, weights: dict, ignore=lambda key: False):
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not ignore(k)]
    if missing or unexpected:
        raise ExportError(f"weight mapping mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return hf.eval()


def to_llama(model):
    """A `LlamaForCausalLM`: our fused q/k/v projection split into its three."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from repro.model.convert import llama_weights

    c = model.config
    hf_config = LlamaConfig(vocab_size=c.vocab_size, hidden_size=c.d_model, intermediate_size=c.d_ff,
                            num_hidden_layers=c.n_layer, num_attention_heads=c.n_head, num_key_value_heads=c.kv_heads,
                            head_dim=c.head_dim, max_position_embeddings=c.max_seq_len, rms_norm_eps=c.norm_eps,
                            rope_theta=c.rope_theta, tie_word_embeddings=c.tie_embeddings, attention_bias=False)
    sd = model.state_dict()
    out = {"model.embed_tokens.weight": sd["body.tok_embed.weight"], "model.norm.weight": sd["body.decoder.final_norm.weight"]}
    if not c.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.proj.weight"]
    for ours, theirs in llama_weights(c.n_layer):
        out[theirs] = sd[ours]
    q, kv = c.n_head * c.head_dim, c.kv_heads * c.head_dim
    for i in range(c.n_layer):
        qkv = sd[f"body.decoder.layers.{i}.self_attn.qkv_proj.weight"].split([q, kv, kv])
        for name, w in zip("qkv", qkv):
            out[f"model.layers.{i}.self_attn.{name}_proj.weight"] = w
    return _load_twin(LlamaForCausalLM(hf_config), out, lambda k: k == "lm_head.weight" and c.tie_embeddings)


def _pair(out: dict, theirs: str, sd: dict, ours: str) -> None:
    out[f"{theirs}.weight"], out[f"{theirs}.bias"] = sd[f"{ours}.weight"], sd[f"{ours}.bias"]


def to_bert(model):
    """`BertForPreTraining` when the model has BERT's next-sentence head, else `BertForMaskedLM`."""
    import transformers

    c, nsp = model.config, getattr(model, "nsp_head", None) is not None
    hf = (transformers.BertForPreTraining if nsp else transformers.BertForMaskedLM)(
        transformers.BertConfig(max_position_embeddings=c.max_seq_len, **_bert_config(c)))
    out = _bert_weights(model, "bert", nsp)
    out["bert.embeddings.position_embeddings.weight"] = model.state_dict()["body.encoder.pos_embed.weight"]
    return _load_bert_family(hf, out, "bert", c)


def to_roformer(model):
    """`RoFormerForMaskedLM`: BERT's layers with rotary positions. transformers has no RoFormer
    with a next-sentence head, so a model's NSP head and pooler (the shared encoder base builds
    them, untrained) are not exported; the MLM head and every encoder weight are.

    RoFormer rotates interleaved pairs of a head's dimensions (0,1), (2,3), ...; we rotate the
    halves (i, i + d/2), as Llama does. The same rotation of the same pairs gives the same scores,
    so each head's query and key rows are reordered: their row 2i is our row i, their row 2i+1 is
    our row i + d/2."""
    import transformers

    c = model.config
    hf = transformers.RoFormerForMaskedLM(transformers.RoFormerConfig(
        embedding_size=c.d_model, max_position_embeddings=c.max_seq_len, rotary_value=False, **_bert_config(c)))
    out = _bert_weights(model, "roformer", nsp=False)
    half = c.head_dim // 2
    order = torch.tensor([i // 2 + (half if i % 2 else 0) for i in range(c.head_dim)])
    rows = torch.cat([head * c.head_dim + order for head in range(c.n_head)])
    for i in range(c.n_layer):
        a = f"roformer.encoder.layer.{i}.attention.self"
        for name in ("query", "key"):
            out[f"{a}.{name}.weight"], out[f"{a}.{name}.bias"] = out[f"{a}.{name}.weight"][rows], out[f"{a}.{name}.bias"][rows]
    return _load_bert_family(hf, out, "roformer", c, ignore=lambda k: k.endswith("embed_positions.weight"))


def _bert_config(c: ModelConfig) -> dict:
    return dict(vocab_size=c.vocab_size, hidden_size=c.d_model, num_hidden_layers=c.n_layer, num_attention_heads=c.n_head,
                intermediate_size=c.d_ff, hidden_act=BERT_ACTIVATIONS[c.activation], type_vocab_size=max(c.n_segments, 1),
                layer_norm_eps=c.norm_eps, hidden_dropout_prob=c.dropout, attention_probs_dropout_prob=c.dropout,
                tie_word_embeddings=True)


def _bert_weights(model, prefix: str, nsp: bool) -> dict:
    """BERT's and RoFormer's names (`prefix` "bert" or "roformer") for every weight but positions."""
    from repro.model.convert import bert_modules

    c, sd = model.config, model.state_dict()
    e = f"{prefix}.embeddings"
    out = {f"{e}.word_embeddings.weight": sd["body.tok_embed.weight"], "cls.predictions.bias": sd["mlm_head.bias"]}
    if c.n_segments:
        out[f"{e}.token_type_embeddings.weight"] = sd["body.encoder.segment_embed.weight"]
    for ours, theirs in bert_modules(c.n_layer, nsp):
        _pair(out, theirs.replace("bert.", f"{prefix}.", 1), sd, ours)
    for i in range(c.n_layer):
        ours, a = f"body.encoder.layers.{i}", f"{prefix}.encoder.layer.{i}.attention.self"
        for name, w, b in zip(("query", "key", "value"), sd[f"{ours}.self_attn.qkv_proj.weight"].chunk(3),
                              sd[f"{ours}.self_attn.qkv_proj.bias"].chunk(3)):
            out[f"{a}.{name}.weight"], out[f"{a}.{name}.bias"] = w, b
    return out


def _load_bert_family(hf, out: dict, prefix: str, c: ModelConfig, ignore=lambda key: False):
    # the decoder is tied to the word embeddings (and its bias is cls.predictions.bias); a model with
    # one segment has no token-type table of its own: the twin's single row stays zero, adding nothing
    if not c.n_segments:
        table = getattr(hf, prefix).embeddings.token_type_embeddings.weight
        out[f"{prefix}.embeddings.token_type_embeddings.weight"] = table.detach().zero_()
    return _load_twin(hf, out, lambda k: k.startswith("cls.predictions.decoder.") or k.endswith("position_ids")
                      or ignore(k))


def to_t5(model):
    """A `T5ForConditionalGeneration`: v1.0's tied head with its output scaling, or without it."""
    from transformers import T5Config, T5ForConditionalGeneration

    c = model.config
    if not c.tie_embeddings:
        raise ExportError("cannot export as T5: tie_embeddings=False, and transformers' T5ForConditionalGeneration "
                          "always shares its output head with the input embedding (it reads `tie_word_embeddings` "
                          "only as whether to scale the decoder output); train with tie_embeddings=True to export")
    feed_forward, act = T5_ACTIVATIONS[c.activation]
    hf_config = T5Config(vocab_size=c.vocab_size, d_model=c.d_model, d_kv=c.head_dim, d_ff=c.d_ff, num_layers=c.n_layer,
                         num_decoder_layers=c.decoder_layers, num_heads=c.n_head, feed_forward_proj=feed_forward,
                         dense_act_fn=act, relative_attention_num_buckets=c.relative_buckets,
                         relative_attention_max_distance=c.relative_max_distance, layer_norm_epsilon=c.norm_eps,
                         # the config turns `tie_word_embeddings` into its output scaling flag
                         dropout_rate=c.dropout, tie_word_embeddings=c.tied_output_scale,
                         decoder_start_token_id=0, pad_token_id=0)
    sd = model.state_dict()
    out = {"shared.weight": sd["body.tok_embed.weight"]}
    inner = c.n_head * c.head_dim
    for stack in ("encoder", "decoder"):
        out[f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight"] = sd[f"body.{stack}.position_bias.table.weight"]
        out[f"{stack}.final_layer_norm.weight"] = sd[f"body.{stack}.final_norm.weight"]
        for i in range(c.n_layer if stack == "encoder" else c.decoder_layers):
            ours, theirs = f"body.{stack}.layers.{i}", f"{stack}.block.{i}.layer"
            for name, w in zip("qkv", sd[f"{ours}.self_attn.qkv_proj.weight"].split(inner)):
                out[f"{theirs}.0.SelfAttention.{name}.weight"] = w
            out[f"{theirs}.0.SelfAttention.o.weight"] = sd[f"{ours}.self_attn.out_proj.weight"]
            out[f"{theirs}.0.layer_norm.weight"] = sd[f"{ours}.self_attn_norm.weight"]
            ff = 1
            if stack == "decoder":
                x = f"{theirs}.1.EncDecAttention"
                out[f"{x}.q.weight"] = sd[f"{ours}.cross_attn.q_proj.weight"]
                out[f"{x}.k.weight"], out[f"{x}.v.weight"] = sd[f"{ours}.cross_attn.kv_proj.weight"].split(inner)
                out[f"{x}.o.weight"] = sd[f"{ours}.cross_attn.out_proj.weight"]
                out[f"{theirs}.1.layer_norm.weight"] = sd[f"{ours}.cross_attn_norm.weight"]
                ff = 2
            f = f"{theirs}.{ff}.DenseReluDense"
            if feed_forward.startswith("gated-"):
                out[f"{f}.wi_0.weight"], out[f"{f}.wi_1.weight"] = sd[f"{ours}.mlp.gate_proj.weight"], sd[f"{ours}.mlp.in_proj.weight"]
            else:
                out[f"{f}.wi.weight"] = sd[f"{ours}.mlp.in_proj.weight"]
            out[f"{f}.wo.weight"] = sd[f"{ours}.mlp.out_proj.weight"]
            out[f"{theirs}.{ff}.layer_norm.weight"] = sd[f"{ours}.mlp_norm.weight"]
    hf = T5ForConditionalGeneration(hf_config)
    if getattr(hf.config, "scale_decoder_outputs", c.tied_output_scale) != c.tied_output_scale:
        raise ExportError(f"this transformers version cannot express tied_output_scale={c.tied_output_scale} for T5")
    tied = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight")
    return _load_twin(hf, out, lambda k: k in tied)


def to_gpt2(model):
    """A `GPT2LMHeadModel` holding `model`'s weights (Conv1D stores them transposed)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    check_gpt2_shape(c)
    hf_config = GPT2Config(vocab_size=c.vocab_size, n_positions=c.max_seq_len, n_embd=c.d_model, n_layer=c.n_layer,
                           n_head=c.n_head, n_inner=c.d_ff, activation_function=GPT2_ACTIVATIONS[c.activation],
                           layer_norm_epsilon=c.norm_eps, resid_pdrop=c.dropout, embd_pdrop=c.dropout,
                           attn_pdrop=c.dropout, tie_word_embeddings=True)
    sd = model.state_dict()
    out = {"transformer.wte.weight": sd["body.tok_embed.weight"], "transformer.wpe.weight": sd["body.decoder.pos_embed.weight"],
           "transformer.ln_f.weight": sd["body.decoder.final_norm.weight"],
           "transformer.ln_f.bias": sd["body.decoder.final_norm.bias"]}
    for i in range(c.n_layer):
        ours, theirs = f"body.decoder.layers.{i}", f"transformer.h.{i}"
        for name, source in (("attn.c_attn", "self_attn.qkv_proj"), ("attn.c_proj", "self_attn.out_proj"),
                             ("mlp.c_fc", "mlp.in_proj"), ("mlp.c_proj", "mlp.out_proj")):
            out[f"{theirs}.{name}.weight"] = sd[f"{ours}.{source}.weight"].t().contiguous()
            out[f"{theirs}.{name}.bias"] = sd[f"{ours}.{source}.bias"]
        for name, source in (("ln_1", "self_attn_norm"), ("ln_2", "mlp_norm")):
            out[f"{theirs}.{name}.weight"] = sd[f"{ours}.{source}.weight"]
            out[f"{theirs}.{name}.bias"] = sd[f"{ours}.{source}.bias"]
    # the head is tied; .attn.bias are causal-mask buffers
    return _load_twin(GPT2LMHeadModel(hf_config), out, lambda k: k == "lm_head.weight" or k.endswith(".attn.bias"))


def export_hf(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write `run_dir`'s model (checkpoint.pt) and tokenizer as a `transformers` directory."""
    from repro.tokenizers import load_tokenizer
    from repro.train import load_checkpoint

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / "tokenizer").exists():
        raise ExportError(f"no tokenizer/ beside the checkpoint in {run_dir}; pass a run directory that repro train "
                          "or repro bases wrote")
    model, _ = load_checkpoint(run_dir)
    hf = to_hf(model)
    tokenizer = load_tokenizer(run_dir / "tokenizer")
    if tokenizer.eos_token_id is not None:
        hf.config.eos_token_id = tokenizer.eos_token_id
        if not hf.config.is_encoder_decoder:
            hf.config.bos_token_id = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None:
        hf.config.pad_token_id = tokenizer.pad_token_id
        if hf.config.is_encoder_decoder:  # our encoder-decoders start decoding from the pad token, as T5 does
            hf.config.decoder_start_token_id = tokenizer.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        hf.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


__all__ = ["ExportError", "check_gpt2_shape", "export_hf", "to_bert", "to_gpt2", "to_hf", "to_llama", "to_roformer", "to_t5",
           "twin"]
