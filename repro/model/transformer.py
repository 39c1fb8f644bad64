"""The Transformer family: one block, one stack, one body for encoder / decoder / encoder-decoder.

    Block        self-attention (+ cross-attention) + MLP, post-LN or pre-LN residuals
    Stack        embeddings' positions/segments, N blocks, the shared position bias, final norm
    Transformer  token embedding shared by the stacks; `encode` and `decode`

Heads and task models (LM, MLM + NSP, classifier, scalar value/reward) live in `heads.py`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from repro.config import ModelConfig
from repro.model.layers import (
    ALiBi,
    MLP,
    Attention,
    KVCache,
    RelativePositionBias,
    make_norm,
    rope_cos_sin,
    sinusoidal_table,
)


class Block(nn.Module):
    def __init__(self, config: ModelConfig, *, cross: bool, banded: bool):
        super().__init__()
        self.config, self.banded = config, banded
        self.self_attn = Attention(config)
        self.self_attn_norm = make_norm(config)
        self.cross_attn = Attention(config, cross=True) if cross else None
        self.cross_attn_norm = make_norm(config) if cross else None
        self.mlp = MLP(config)
        self.mlp_norm = make_norm(config)
        self.dropout = nn.Dropout(config.dropout)

    def _residual(self, x: torch.Tensor, norm: nn.Module, sublayer) -> torch.Tensor:
        if self.config.norm_placement == "pre":  # GPT-2, T5, LLaMA: x + f(LN(x))
            return x + self.dropout(sublayer(norm(x)))
        return norm(x + self.dropout(sublayer(x)))  # Transformer, BERT, GPT-1: LN(x + f(x))

    def forward(self, x, *, masks, rope=None, memory=None, memory_mask=None, cache=None, layer=0):
        mask, is_causal = masks["banded" if self.banded else "dense"]
        x = self._residual(
            x,
            self.self_attn_norm,
            lambda h: self.self_attn(h, mask=mask, is_causal=is_causal, rope=rope, cache=cache, layer=layer),
        )
        if self.cross_attn is not None:
            x = self._residual(
                x,
                self.cross_attn_norm,
                lambda h: self.cross_attn(h, mask=memory_mask, memory=memory, cache=cache, layer=layer),
            )
        return self._residual(x, self.mlp_norm, self.mlp)


class Stack(nn.Module):
    """An encoder (bidirectional) or a decoder (causal, optionally cross-attending)."""

    def __init__(self, config: ModelConfig, *, causal: bool, cross: bool, n_layer: int):
        super().__init__()
        self.config, self.causal = config, causal
        if config.positions == "learned":
            self.pos_embed = nn.Embedding(config.max_seq_len, config.d_model)
        elif config.positions == "sinusoidal":
            self.register_buffer("pos_table", sinusoidal_table(config.max_seq_len, config.d_model), persistent=False)
        # T5 computes its relative bias once per stack (in the first layer) and shares it.
        self.position_bias = {
            "t5_relative": lambda: RelativePositionBias(config, bidirectional=not causal),
            "alibi": lambda: ALiBi(config, bidirectional=not causal),
        }.get(config.positions, lambda: None)()
        self.segment_embed = nn.Embedding(config.n_segments, config.d_model) if config.n_segments else None
        self.embed_norm = make_norm(config) if config.embedding_norm else None
        self.dropout = nn.Dropout(config.dropout)
        banded = config.attention_pattern == "alternating_banded"
        # GPT-3 alternates dense and locally banded layers; the first layer is dense.
        self.layers = nn.ModuleList(
            Block(config, cross=cross, banded=banded and i % 2 == 1) for i in range(n_layer)
        )
        self.final_norm = make_norm(config) if config.norm_placement == "pre" else None

    def _masks(self, T: int, past: int, attention_mask: torch.Tensor | None, device) -> dict:
        """Self-attention masks for dense and banded layers: (mask, is_causal) each.

        With no padding, no additive bias and no cache, a causal stack takes SDPA's `is_causal`
        fast path; otherwise one mask (boolean, or additive float when a position bias exists)
        is built here once and shared by every layer.
        """
        c = self.config
        q_pos = torch.arange(past, past + T, device=device)
        k_pos = torch.arange(past + T, device=device)
        bias = self.position_bias(q_pos, k_pos) if self.position_bias is not None else None
        banded = c.attention_pattern == "alternating_banded"
        if attention_mask is None and bias is None and past == 0 and not banded:
            return {"dense": (None, self.causal), "banded": (None, self.causal)}
        allowed = torch.ones(T, past + T, dtype=torch.bool, device=device)
        if self.causal:
            allowed = k_pos[None, :] <= q_pos[:, None]
        allowed = allowed[None, None]  # (1, 1, T, Tk)
        if attention_mask is not None:
            allowed = allowed & attention_mask[:, None, None, :].bool()
            # A padding query may have no visible key (left padding, causal): let it see itself
            # so the softmax stays finite; its output is never used.
            allowed = allowed | (k_pos[None, :] == q_pos[:, None])
        variants = {"dense": allowed}
        if banded:
            variants["banded"] = allowed & ((q_pos[:, None] - k_pos[None, :]) < c.local_window)
        masks = {}
        for name, ok in variants.items():
            if bias is None:
                masks[name] = (ok, False)
            else:
                masks[name] = (bias.masked_fill(~ok, torch.finfo(bias.dtype).min), False)
        masks.setdefault("banded", masks["dense"])
        return masks

    def forward(
        self,
        x: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        c = self.config
        B, T, _ = x.shape
        past = cache.length if cache is not None else 0
        if attention_mask is not None and attention_mask.shape[-1] != past + T:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[-1]} positions but the cache holds {past} "
                f"and the input {T}: pass a mask over all {past + T} positions"
            )
        if position_ids is None:
            if attention_mask is not None:  # count only real tokens, so left padding is invisible
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -T:]
            else:
                position_ids = torch.arange(past, past + T, device=x.device)[None].expand(B, T)
        if c.positions in ("learned", "sinusoidal"):
            if int(position_ids.max()) >= c.max_seq_len:
                raise ValueError(
                    f"sequence position {int(position_ids.max())} exceeds max_seq_len={c.max_seq_len}; "
                    "truncate the input or build the model with a larger max_seq_len"
                )
            x = x + (self.pos_embed(position_ids) if c.positions == "learned" else self.pos_table[position_ids])
        if self.segment_embed is not None:
            x = x + self.segment_embed(token_type_ids if token_type_ids is not None else torch.zeros_like(position_ids))
        if self.embed_norm is not None:
            x = self.embed_norm(x)
        x = self.dropout(x)
        rope = rope_cos_sin(position_ids, c.head_dim, c.rope_theta, x.dtype) if c.positions == "rope" else None
        masks = self._masks(T, past, attention_mask, x.device)
        if memory_mask is not None:
            memory_mask = memory_mask[:, None, None, :].bool()
        for i, layer in enumerate(self.layers):
            x = layer(x, masks=masks, rope=rope, memory=memory, memory_mask=memory_mask, cache=cache, layer=i)
        if self.final_norm is not None:
            x = self.dropout(self.final_norm(x))
        return x


class Transformer(nn.Module):
    """The body: a token embedding shared by the encoder and/or decoder stacks."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.tok_embed = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = (
            Stack(config, causal=False, cross=False, n_layer=config.n_layer) if config.kind != "decoder" else None
        )
        self.decoder = (
            Stack(config, causal=True, cross=config.kind == "encoder-decoder", n_layer=config.decoder_layers)
            if config.kind != "encoder"
            else None
        )

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.tok_embed(input_ids)
        return x * math.sqrt(self.config.d_model) if self.config.scale_embeddings else x

    def encode(self, input_ids, attention_mask=None, token_type_ids=None, position_ids=None) -> torch.Tensor:
        return self.encoder(
            self.embed(input_ids),
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
        )

    def decode(
        self, input_ids, attention_mask=None, memory=None, memory_mask=None, cache=None, position_ids=None
    ) -> torch.Tensor:
        return self.decoder(
            self.embed(input_ids),
            attention_mask=attention_mask,
            position_ids=position_ids,
            memory=memory,
            memory_mask=memory_mask,
            cache=cache,
        )


def init_weights(model: nn.Module, config: ModelConfig) -> None:
    """N(0, init_std) for weights (GPT/BERT), zero biases, unit norms; GPT-2's 1/sqrt(2N) on the
    residual output projections; embeddings that get scaled by sqrt(d_model) start at
    N(0, d_model^-0.5) so the scaled input has unit variance (as fairseq does)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=config.init_std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=config.init_std)
    if config.scale_embeddings and hasattr(model, "body"):
        nn.init.normal_(model.body.tok_embed.weight, std=config.d_model**-0.5)
    if config.scale_residual_init:
        n_residual = 2 * (config.n_layer + (config.decoder_layers if config.kind == "encoder-decoder" else 0))
        for name, p in model.named_parameters():
            if name.endswith("out_proj.weight"):
                nn.init.normal_(p, std=config.init_std / math.sqrt(n_residual))
    if config.init_scheme == "t5":
        t5_init(model, config)


@torch.no_grad()
def t5_init(model: nn.Module, config: ModelConfig) -> None:
    """Mesh TensorFlow's initialisation, as `transformers`' T5 `_init_weights` applies it (a test
    compares the two): each linear map N(0, fan_in^-0.5) (k, v and the FFN input read d_model, the
    attention output n_head * d_head, the FFN output d_ff), the queries N(0, (d_model * d_head)^-0.5)
    since the scores are not divided by sqrt(d_head), the relative-position table N(0, d_model^-0.5),
    token embeddings (and an untied output layer) N(0, 1)."""
    hd = config.head_dim
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=module.in_features**-0.5)
        elif isinstance(module, RelativePositionBias):
            nn.init.normal_(module.table.weight, std=config.d_model**-0.5)
    for module in model.modules():  # after the pass above, which gave the queries d_model^-0.5
        if isinstance(module, Attention):
            q = module.q_proj.weight if module.cross else module.qkv_proj.weight[: config.n_head * hd]
            nn.init.normal_(q, std=(config.d_model * hd) ** -0.5)
    body = getattr(model, "body", None)
    if body is not None:
        nn.init.normal_(body.tok_embed.weight, std=1.0)
    head = getattr(model, "lm_head", None)
    if head is not None and not config.tie_embeddings:
        nn.init.normal_(head.proj.weight, std=1.0)
