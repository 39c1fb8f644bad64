"""Write our models as `transformers` models: the inverse of `convert.py`.

A trained repro decoder whose architecture is GPT-2's (pre-LN LayerNorm with biases, learned
positions, GELU, a tied output projection: `scaled("gpt2_small", ...)`, the shared decoder bases,
every GPT-2 / FLAN / InstructGPT run) becomes a `GPT2LMHeadModel` with the same weights, so that
`AutoModelForCausalLM.from_pretrained`, lm-eval's own `hf` model and any other `transformers` tool
load it. An architecture with no `transformers` twin is refused with the field that differs.

    hf = to_hf(model)                       # a GPT2LMHeadModel, logits equal to ours
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


def to_hf(model) -> "transformers.GPT2LMHeadModel":  # noqa: F821
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
    hf = GPT2LMHeadModel(hf_config)
    missing, unexpected = hf.load_state_dict(out, strict=False)
    missing = [k for k in missing if k != "lm_head.weight" and not k.endswith(".attn.bias")]  # tied; causal-mask buffers
    if missing or unexpected:
        raise ExportError(f"weight mapping mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return hf.eval()


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
        hf.config.eos_token_id = hf.config.bos_token_id = tokenizer.eos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        hf.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


__all__ = ["ExportError", "check_gpt2_shape", "export_hf", "to_hf"]
