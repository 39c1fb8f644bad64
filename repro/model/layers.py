"""Building blocks of the Transformer family: norms, position schemes, attention, feed-forward.

Read top to bottom: norms, positions (absolute tables, RoPE, additive biases), the KV cache,
attention, the MLP. Every choice is driven by a `ModelConfig` field; nothing is inferred.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import ModelConfig

# ----------------------------------------------------------------------------------------------
# Norms


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        # T5's "simplified LayerNorm" and LLaMA's RMSNorm: scale only, no mean, no bias.
        return nn.RMSNorm(config.d_model, eps=config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)


# ----------------------------------------------------------------------------------------------
# Absolute positions (added to the token embeddings)


def sinusoidal_table(n_positions: int, dim: int) -> torch.Tensor:
    """Vaswani et al. §3.5: PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)."""
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq[: dim // 2])
    return table


# ----------------------------------------------------------------------------------------------
# Rotary embeddings (Su et al. 2021), "rotate half" layout as in GPT-NeoX / LLaMA


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=position_ids.device).float() / head_dim))
    angles = position_ids.float()[..., None] * inv_freq  # (B, T, head_dim/2)
    angles = torch.cat([angles, angles], dim=-1)
    # (B, 1, T, head_dim): broadcast over heads
    return angles.cos().to(dtype)[:, None], angles.sin().to(dtype)[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


# ----------------------------------------------------------------------------------------------
# Additive attention biases: T5 relative buckets and ALiBi


def t5_relative_bucket(relative_position: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int):
    """Map key_pos - query_pos to T5's buckets: exact below num_buckets/2, log-spaced up to max_distance.

    Bidirectional (encoder) buckets spend half the range on each sign; the causal decoder only
    ever sees keys at or before the query, so all buckets go to the past.
    """
    bucket = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    far = max_exact + log_ratio * (num_buckets - max_exact)
    # max_distance <= max_exact leaves no log region (0/0): everything far lands in the last bucket
    far = far.nan_to_num(nan=num_buckets, posinf=num_buckets).clamp(max=num_buckets - 1).long()
    return bucket + torch.where(distance < max_exact, distance, far)


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Press et al. 2022: geometric slopes 2^(-8/n), 2^(-16/n), ...; for a non power of two,
    the slopes of the nearest lower power of two, then every other slope of the next one."""

    def powers(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    nearest = 2 ** math.floor(math.log2(n_head))
    slopes = powers(nearest)
    if nearest < n_head:
        slopes += powers(2 * nearest)[0::2][: n_head - nearest]
    return torch.tensor(slopes)


class RelativePositionBias(nn.Module):
    """One scalar per head and distance bucket, computed once per stack and shared by its layers."""

    def __init__(self, config: ModelConfig, bidirectional: bool):
        super().__init__()
        self.config, self.bidirectional = config, bidirectional
        self.table = nn.Embedding(config.relative_buckets, config.n_head)

    def forward(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        buckets = t5_relative_bucket(
            key_pos[None, :] - query_pos[:, None],
            self.bidirectional,
            self.config.relative_buckets,
            self.config.relative_max_distance,
        )
        return self.table(buckets).permute(2, 0, 1)[None]  # (1, H, Tq, Tk)


class ALiBi(nn.Module):
    def __init__(self, config: ModelConfig, bidirectional: bool):
        super().__init__()
        self.bidirectional = bidirectional
        self.register_buffer("slopes", alibi_slopes(config.n_head), persistent=False)

    def forward(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        distance = (query_pos[:, None] - key_pos[None, :]).float()
        distance = distance.abs() if self.bidirectional else distance.clamp(min=0)
        return (-self.slopes[:, None, None] * distance)[None]  # (1, H, Tq, Tk)


# ----------------------------------------------------------------------------------------------
# KV cache: keys and values of earlier steps, per layer, for incremental decoding


class KVCache:
    """Per-layer self-attention keys/values grown step by step, plus the cross-attention
    keys/values of the encoder output, computed once. `reorder` serves beam search."""

    def __init__(self) -> None:
        self.self_kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.cross_kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def length(self) -> int:
        return next(iter(self.self_kv.values()))[0].shape[2] if self.self_kv else 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer in self.self_kv:
            past_k, past_v = self.self_kv[layer]
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        self.self_kv[layer] = (k, v)
        return k, v

    def reorder(self, index: torch.Tensor) -> None:
        for store in (self.self_kv, self.cross_kv):
            for layer, (k, v) in store.items():
                store[layer] = (k.index_select(0, index), v.index_select(0, index))


# ----------------------------------------------------------------------------------------------
# Attention


def matmul_attention(q, k, v, *, mask=None, is_causal=False, dropout_p=0.0, scale=None) -> torch.Tensor:
    """softmax(q kᵀ · scale + mask) v with two batched matmuls, as `F.scaled_dot_product_attention`
    computes it (a boolean mask marks the keys a query may see; a float mask is added).

    Why it exists: on CPU in bf16, SDPA's flash kernel is slow, its backward above all. Measured
    fwd + bwd on 2 cores, batch x heads x length x head_dim: 16x4x256x48 37.8 vs 19.0 ms,
    16x4x256x64 34.9 vs 17.8, 8x4x512x64 66.8 vs 45.6, 32x4x128x32 30.1 vs 8.4. In fp32 flash wins
    (28.0 vs 41.0 ms), and on GPU it always does, so `Attention` uses this only on CPU in bf16/fp16.
    The (length x length) scores are held for the backward, which is cheap at CPU sizes.
    """
    B, H, T, D = q.shape
    Tk = k.shape[-2]
    if k.shape[1] != H:  # GQA / MQA: each key-value head serves a group of query heads
        k, v = (t.repeat_interleave(H // t.shape[1], dim=1) for t in (k, v))
    # Scaling q, not the scores: a (T, D) tensor instead of a (T, Tk) one, forward and backward.
    q = q * (1.0 / math.sqrt(D) if scale is None else scale)
    if is_causal:  # only without a cache, so queries and keys are the same positions
        mask = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    if mask is None:
        scores = torch.bmm(q.reshape(B * H, T, D), k.reshape(B * H, Tk, D).transpose(1, 2))
    else:
        if mask.dtype == torch.bool:  # the lowest finite value, not -inf: no row can turn NaN
            mask = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, torch.finfo(q.dtype).min)
        # The mask is added inside the matmul (baddbmm); one shared over batch and heads is
        # broadcast with stride 0, not copied. In q's dtype, as autocast hands SDPA its mask.
        bias = mask.to(q.dtype).expand(B, H, T, Tk).reshape(B * H, T, Tk)
        scores = torch.baddbmm(bias, q.reshape(B * H, T, D), k.reshape(B * H, Tk, D).transpose(1, 2))
    probs = torch.softmax(scores, dim=-1)
    if dropout_p:
        probs = F.dropout(probs, p=dropout_p)
    return torch.bmm(probs, v.reshape(B * H, Tk, D)).view(B, H, T, D)


class Attention(nn.Module):
    """Multi-head attention with MHA / GQA / MQA key-value heads, through
    `F.scaled_dot_product_attention` (flash / memory-efficient kernels on GPU), or
    `matmul_attention` on CPU in bf16, where it is about twice as fast."""

    def __init__(self, config: ModelConfig, cross: bool = False):
        super().__init__()
        self.config, self.cross = config, cross
        hd, n_q, n_kv = config.head_dim, config.n_head, config.kv_heads
        if cross:  # queries from the decoder, keys and values from the encoder output
            self.q_proj = nn.Linear(config.d_model, n_q * hd, bias=config.bias)
            self.kv_proj = nn.Linear(config.d_model, 2 * n_kv * hd, bias=config.bias)
        else:  # one fused projection: a single matmul is faster than three small ones
            self.qkv_proj = nn.Linear(config.d_model, (n_q + 2 * n_kv) * hd, bias=config.bias)
        self.out_proj = nn.Linear(n_q * hd, config.d_model, bias=config.bias)

    def _heads(self, x: torch.Tensor, n: int) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, n, self.config.head_dim).transpose(1, 2)  # (B, n, T, hd)

    def forward(
        self,
        x: torch.Tensor,
        *,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        memory: torch.Tensor | None = None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        c = self.config
        hd, n_q, n_kv = c.head_dim, c.n_head, c.kv_heads
        if self.cross:
            q = self._heads(self.q_proj(x), n_q)
            if cache is not None and layer in cache.cross_kv:
                k, v = cache.cross_kv[layer]
            else:
                k, v = (self._heads(t, n_kv) for t in self.kv_proj(memory).split(n_kv * hd, dim=-1))
                if cache is not None:
                    cache.cross_kv[layer] = (k, v)
        else:
            q, k, v = self.qkv_proj(x).split([n_q * hd, n_kv * hd, n_kv * hd], dim=-1)
            q, k, v = self._heads(q, n_q), self._heads(k, n_kv), self._heads(v, n_kv)
            if rope is not None:
                q, k = apply_rope(q, *rope), apply_rope(k, *rope)
            if cache is not None:
                k, v = cache.append(layer, k, v)
        kwargs = dict(is_causal=is_causal and mask is None, dropout_p=c.dropout if self.training else 0.0,
                      scale=None if c.scale_attention else 1.0)
        if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
            y = matmul_attention(q, k, v, mask=mask, **kwargs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=n_kv != n_q, **kwargs)
        B, _, T, _ = y.shape
        return self.out_proj(y.transpose(1, 2).reshape(B, T, n_q * hd))


# ----------------------------------------------------------------------------------------------
# Feed-forward


class MLP(nn.Module):
    """Position-wise feed-forward: act(x W_in) W_out, or the gated (act(x W_gate) * x W_in) W_out
    of GEGLU / SwiGLU (Shazeer 2020)."""

    ACTIVATIONS = {
        "relu": F.relu,
        "gelu": F.gelu,
        "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-1/GPT-2's approximation
        "geglu": F.gelu,
        "geglu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # T5 v1.1 as released
        "swiglu": F.silu,
    }

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.act = self.ACTIVATIONS[config.activation]
        self.in_proj = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.gate_proj = nn.Linear(config.d_model, config.d_ff, bias=config.bias) if config.gated else None
        self.out_proj = nn.Linear(config.d_ff, config.d_model, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_proj is None:
            return self.out_proj(self.act(self.in_proj(x)))
        return self.out_proj(self.act(self.gate_proj(x)) * self.in_proj(x))
