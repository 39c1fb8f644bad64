"""Parameter-efficient fine-tuning of the shared model: LoRA, Houlsby adapters, prefix tuning (and
P-Tuning v2's deep prompts), prompt tuning and (IA)^3, put into an already built task model.

    model = SequenceClassifier(config)            # any repro task model, pre-trained weights loaded
    info = apply_peft(model, LoRAConfig(), train_also=("classifier.",))
    ... train: only the method's parameters (and `train_also`) require grad ...
    merge_for_inference(model)                    # LoRA / (IA)^3 folded into the weights, prefix MLP dropped

Where each method goes, in every block of every stack (encoder, decoder):

    LoRA     self_attn.qkv_proj becomes a `LoRALinear` that adds (alpha / r) B A x to the W_q and W_v
             output slices only (cross-attention: q_proj, and the v slice of kv_proj). B = 0 at
             init, so the adapted model starts as the base model; `merge` adds B A into W.
    (IA)^3   qkv_proj's k and v output slices are rescaled by learned vectors l_k, l_v (cross-
             attention: kv_proj), and mlp.out_proj's input -- the FFN's hidden activations -- by
             l_ff; every vector starts at 1. Mergeable too (row / column scaling of W).
    adapter  Houlsby et al.'s bottleneck h + W_up f(W_down h) after the attention output projection
             and after the FFN (and after cross-attention), initialised near zero so the block
             starts near the identity; every LayerNorm's parameters are trained as well.
    prefix   Li & Liang: P key/value vectors per layer, attended to by every self-attention as if
             they were P earlier positions. They are handed to the stack as a pre-filled KV cache,
             so the attention code is the model's own; during training they are computed by an MLP
             from P embeddings (the reparameterisation), which `merge_for_inference` replaces by
             its output. Without the MLP (``reparameterize=False``) this is P-Tuning v2's deep prompt.
    prompt   Lester et al.: P soft-prompt embeddings in front of the stack's input embeddings (a
             T5-style encoder-decoder: the encoder's). Their outputs are dropped again at the end
             of the stack, so logits and the classifier's [CLS] / last-token read-outs keep their
             positions; an encoder-decoder keeps them as memory the decoder attends to.

Virtual tokens (prefix, prompt) occupy positions 0..P-1: the real tokens' learned positions start
at P, as in `peft` on `transformers` models, so an input must leave P positions of the model's
`max_seq_len` free. Both work with incremental decoding: the first call fills the KV cache with
them, later calls only extend the attention mask.

Why these are ours and not `peft`'s: our attention fuses W_q, W_k, W_v into one Linear (one matmul
is faster than three), and peft adapts whole modules, so on our model it could only put LoRA on
all of q, k and v at once; LoRA's paper adapts W_q and W_v, (IA)^3 rescales k and v. peft's prompt
methods (prompt, prefix, P-Tuning v2) need a `transformers` model, and it has no Houlsby adapter.
`split_qkv` builds the equivalent model with separate q / k / v Linears that peft can wrap:
tests/test_peft_methods.py shows that LoRA and (IA)^3 here and peft's there give the same outputs
on the same weights, and that prompt and prefix tuning here match peft's on a `transformers`
GPT-2 converted to ours (`repro.model.convert.from_gpt2`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from repro.model.layers import MLP, Attention, KVCache
from repro.model.transformer import Stack, Transformer

__all__ = [
    "AdapterConfig",
    "FullConfig",
    "IA3Config",
    "LoRAConfig",
    "PeftInfo",
    "PrefixConfig",
    "PromptConfig",
    "apply_peft",
    "count_parameters",
    "merge_for_inference",
    "split_qkv",
    "virtual_tokens",
]


# ----------------------------------------------------------------------------------------------
# Configurations: defaults are the papers' values


@dataclass(frozen=True)
class FullConfig:
    """Full fine-tuning: every weight trained (the baseline every method is compared with)."""

    method: ClassVar[str] = "full"


@dataclass(frozen=True)
class LoRAConfig:
    """Hu et al. 2021: r = 8 on W_q and W_v with alpha = 16 is their RoBERTa / DeBERTa GLUE recipe
    (their GPT-3 runs use r in 1..64; §7.2 finds r = 1..4 enough when both are adapted)."""

    method: ClassVar[str] = "lora"
    r: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("q", "v")
    dropout: float = 0.0
    # A: Kaiming-uniform as in the paper's released code (loralib) and peft; B: zeros, so dW = 0 at init
    init_a: str = "kaiming_uniform"

    @property
    def scaling(self) -> float:
        return self.alpha / self.r


@dataclass(frozen=True)
class AdapterConfig:
    """Houlsby et al. 2019: bottleneck m in {8, 64, 256}, weights ~ N(0, 1e-2) truncated at two
    standard deviations (near identity), layer norms trained too."""

    method: ClassVar[str] = "adapter"
    bottleneck: int = 64
    activation: str = "gelu"
    init_std: float = 1e-2
    train_norms: bool = True


@dataclass(frozen=True)
class PrefixConfig:
    """Li & Liang 2021: prefix length 10 (table-to-text; 200 for summarisation), reparameterised
    through an MLP of width 512 while training. ``reparameterize=False`` is P-Tuning v2's deep
    prompt (Liu et al. 2022), learned directly."""

    method: ClassVar[str] = "prefix"
    length: int = 10
    reparameterize: bool = True
    hidden: int = 512


@dataclass(frozen=True)
class PromptConfig:
    """Lester et al. 2021: 20 soft-prompt tokens (20-100 adequate). ``init``: "class_labels" (each
    class's label embedding, averaged over its tokens, for the first tokens, then sampled vocabulary:
    their best), "vocab" (embeddings of tokens drawn from the `vocab_size` most common), or
    "random_uniform" in [-init_range, init_range]."""

    method: ClassVar[str] = "prompt"
    length: int = 20
    init: str = "class_labels"
    init_range: float = 0.5
    vocab_size: int = 5000


@dataclass(frozen=True)
class IA3Config:
    """Liu et al. 2022 (T-Few): l_k, l_v in every attention and l_ff in every FFN, initialised to 1."""

    method: ClassVar[str] = "ia3"


PeftConfig = FullConfig | LoRAConfig | AdapterConfig | PrefixConfig | PromptConfig | IA3Config


# ----------------------------------------------------------------------------------------------
# Slices of the fused projections


def _qkv_slices(attn: Attention) -> dict[str, tuple[int, int]]:
    """Output rows of q, k and v in `qkv_proj` (self-attention) or of k and v in `kv_proj`."""
    c = attn.config
    q, kv = c.n_head * c.head_dim, c.kv_heads * c.head_dim
    if attn.cross:
        return {"k": (0, kv), "v": (kv, 2 * kv)}
    return {"q": (0, q), "k": (q, q + kv), "v": (q + kv, q + 2 * kv)}


def _assemble(pieces: dict[str, torch.Tensor], slices: dict[str, tuple[int, int]], width: int,
              filler) -> torch.Tensor:
    """The full output row from per-slice pieces, `filler(n)` in the gaps (zeros or ones)."""
    parts, pos = [], 0
    for name, (start, stop) in sorted(slices.items(), key=lambda kv: kv[1]):
        if start > pos:
            parts.append(filler(start - pos))
        parts.append(pieces[name])
        pos = stop
    if pos < width:
        parts.append(filler(width - pos))
    return torch.cat(parts, dim=-1)


# ----------------------------------------------------------------------------------------------
# LoRA


class LoRALinear(nn.Module):
    """A frozen Linear plus (alpha / r) B A x on chosen output slices: y = W x + b + dW x."""

    def __init__(self, base: nn.Linear, slices: dict[str, tuple[int, int]], config: LoRAConfig):
        super().__init__()
        self.base, self.slices, self.scaling = base, dict(slices), config.scaling
        self.dropout = nn.Dropout(config.dropout)
        self.lora_A = nn.ParameterDict()
        self.lora_B = nn.ParameterDict()
        for name, (start, stop) in self.slices.items():
            a = torch.empty(config.r, base.in_features, device=base.weight.device, dtype=base.weight.dtype)
            if config.init_a == "kaiming_uniform":
                nn.init.kaiming_uniform_(a, a=math.sqrt(5))
            elif config.init_a == "gaussian":
                nn.init.normal_(a, std=1 / config.r)
            else:
                raise ValueError(f"LoRAConfig.init_a={config.init_a!r}: use 'kaiming_uniform' or 'gaussian'")
            self.lora_A[name] = nn.Parameter(a)
            self.lora_B[name] = nn.Parameter(torch.zeros(stop - start, config.r, device=a.device, dtype=a.dtype))

    def delta_weight(self, name: str) -> torch.Tensor:
        return self.scaling * self.lora_B[name] @ self.lora_A[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        h = self.dropout(x)
        pieces = {name: F.linear(F.linear(h, self.lora_A[name]), self.lora_B[name]) * self.scaling for name in self.slices}
        return y + _assemble(pieces, self.slices, y.shape[-1], lambda n: y.new_zeros(*y.shape[:-1], n))

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The base Linear with B A added to its weight rows: no extra work at inference."""
        for name, (start, stop) in self.slices.items():
            self.base.weight[start:stop] += self.delta_weight(name)
        return self.base


# ----------------------------------------------------------------------------------------------
# (IA)^3


class IA3Linear(nn.Module):
    """A frozen Linear whose output slices are rescaled elementwise: (l_k ⊙ k, l_v ⊙ v)."""

    def __init__(self, base: nn.Linear, slices: dict[str, tuple[int, int]]):
        super().__init__()
        self.base, self.slices = base, dict(slices)
        self.scales = nn.ParameterDict({name: nn.Parameter(torch.ones(stop - start, device=base.weight.device,
                                                                      dtype=base.weight.dtype))
                                        for name, (start, stop) in self.slices.items()})

    def scale_vector(self) -> torch.Tensor:
        one = self.base.weight.new_ones
        return _assemble(dict(self.scales.items()), self.slices, self.base.out_features, lambda n: one(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) * self.scale_vector()

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        scale = self.scale_vector()
        self.base.weight.mul_(scale[:, None])
        if self.base.bias is not None:
            self.base.bias.mul_(scale)
        return self.base


class IA3Input(nn.Module):
    """A frozen Linear whose input is rescaled: W (l_ff ⊙ h), h the FFN's hidden activations."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        self.scale = nn.Parameter(torch.ones(base.in_features, device=base.weight.device, dtype=base.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x * self.scale)

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        self.base.weight.mul_(self.scale[None, :])
        return self.base


# ----------------------------------------------------------------------------------------------
# Houlsby adapters


class Adapter(nn.Module):
    """h + W_up f(W_down h): a bottleneck with a skip connection, near the identity at init."""

    def __init__(self, d_model: int, config: AdapterConfig, device=None, dtype=None):
        super().__init__()
        self.down = nn.Linear(d_model, config.bottleneck, device=device, dtype=dtype)
        self.up = nn.Linear(config.bottleneck, d_model, device=device, dtype=dtype)
        self.act = MLP.ACTIVATIONS[config.activation]
        for layer in (self.down, self.up):
            nn.init.trunc_normal_(layer.weight, std=config.init_std, a=-2 * config.init_std, b=2 * config.init_std)
            nn.init.zeros_(layer.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.act(self.down(h)))


class AdapterAfter(nn.Module):
    """A sublayer's output projection followed by an adapter (before dropout and the residual)."""

    def __init__(self, base: nn.Linear, config: AdapterConfig):
        super().__init__()
        self.base = base
        self.adapter = Adapter(base.out_features, config, base.weight.device, base.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.base(x))


# ----------------------------------------------------------------------------------------------
# Virtual tokens: prefix key/values and soft prompts, through hooks on the stack


class PrefixEncoder(nn.Module):
    """Per-layer key/value prefixes of one stack: (P, layers * 2 * kv_width), laid out as peft's
    (for layer i: keys at block 2i, values at block 2i + 1; heads inside each block)."""

    def __init__(self, stack: Stack, config: PrefixConfig):
        super().__init__()
        c = stack.config
        self.length, self.n_layer = config.length, len(stack.layers)
        self.n_kv, self.head_dim = c.kv_heads, c.head_dim
        width = self.n_layer * 2 * self.n_kv * self.head_dim
        device = next(stack.parameters()).device
        if config.reparameterize:
            self.embedding = nn.Embedding(config.length, c.d_model, device=device)
            self.mlp = nn.Sequential(nn.Linear(c.d_model, config.hidden, device=device), nn.Tanh(),
                                     nn.Linear(config.hidden, width, device=device))
        else:
            self.embedding = nn.Embedding(config.length, width, device=device)
            self.mlp = None

    def table(self) -> torch.Tensor:
        x = self.embedding.weight
        return self.mlp(x) if self.mlp is not None else x

    def past(self, batch: int, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(keys, values)] per layer, each (batch, kv_heads, P, head_dim)."""
        t = self.table().to(dtype).view(self.length, 2 * self.n_layer, self.n_kv, self.head_dim).permute(1, 2, 0, 3)
        return [(t[2 * i].expand(batch, -1, -1, -1), t[2 * i + 1].expand(batch, -1, -1, -1)) for i in range(self.n_layer)]

    @torch.no_grad()
    def drop_reparameterization(self) -> None:
        """Li & Liang: after training only the prefix is kept; the MLP that produced it is dropped."""
        if self.mlp is None:
            return
        table = self.table()
        self.embedding = nn.Embedding(self.length, table.shape[1], device=table.device, dtype=table.dtype)
        self.embedding.weight.copy_(table)
        self.mlp = None


class _VirtualCache:
    """What a stack is handed when a method adds virtual positions in front of the input: the
    virtual tokens' keys/values per layer, then the caller's KV cache, which only ever holds the
    real tokens (so a decoding loop's count of what it has fed, `cache.length`, stays right).

    `capture`: the virtual tokens are part of this call's input (a soft prompt's first pass): the
    first `length` keys/values each layer computes are kept as the virtual ones, for later calls."""

    def __init__(self, inner: KVCache, virtual: dict[int, tuple[torch.Tensor, torch.Tensor]], length: int,
                 capture: bool = False):
        self.inner, self.virtual, self.virtual_length, self.capture = inner, virtual, length, capture
        self.cross_kv = inner.cross_kv  # cross-attention keys/values live in the caller's cache

    @property
    def length(self) -> int:
        return self.inner.length + (0 if self.capture else self.virtual_length)

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        P = self.virtual_length
        if self.capture:
            self.virtual[layer] = (k[:, :, :P], v[:, :, :P])
            k, v = k[:, :, P:], v[:, :, P:]
        k, v = self.inner.append(layer, k, v)
        pk, pv = self.virtual[layer]
        return torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)


def _extended_mask(mask: torch.Tensor | None, batch: int, virtual: int, total: int, device) -> torch.Tensor:
    """The caller's mask covers its own tokens; virtual tokens are always visible."""
    if mask is None:
        return torch.ones(batch, total, dtype=torch.long, device=device)
    return torch.cat([mask.new_ones(batch, virtual), mask], dim=1)


def _prefix_hook(stack: Stack, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Hand the prefixes to every layer as P past positions and extend the attention mask over them."""
    x = args[0]
    batch, length = x.shape[:2]
    prefix: PrefixEncoder = stack.prefix
    inner = kwargs.get("cache") or KVCache()
    cache = _VirtualCache(inner, dict(enumerate(prefix.past(batch, x.dtype))), prefix.length)
    mask = _extended_mask(kwargs.get("attention_mask"), batch, prefix.length, cache.length + length, x.device)
    return args, {**kwargs, "cache": cache, "attention_mask": mask}


class SoftPrompt(nn.Module):
    """P trainable input embeddings."""

    def __init__(self, length: int, d_model: int, init: torch.Tensor | None = None, init_range: float = 0.5,
                 device=None):
        super().__init__()
        self.length = length
        self.embedding = nn.Parameter(torch.empty(length, d_model, device=device))
        with torch.no_grad():
            if init is None:
                self.embedding.uniform_(-init_range, init_range)
            else:
                self.embedding.copy_(init)

    def forward(self, batch: int, dtype: torch.dtype) -> torch.Tensor:
        return self.embedding.to(dtype)[None].expand(batch, -1, -1)


def _prompt_pre_hook(stack: Stack, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Put the soft prompt in front of the stack's input and extend the attention mask and segment
    ids over it. While decoding with a KV cache, the prompt's keys/values from the first call are
    kept beside the cache (a causal prompt's states do not depend on what follows it), and later
    calls only extend the mask."""
    x = args[0]
    batch, length = x.shape[:2]
    prompt: SoftPrompt = stack.soft_prompt
    P = prompt.length
    kwargs = dict(kwargs)
    inner = kwargs.get("cache")
    if inner is not None and inner.length:  # a later decoding step
        kept = getattr(inner, "prompt_kv", None)
        if kept is None:
            raise ValueError("this KV cache was filled without the soft prompt; start decoding with an empty cache")
        kwargs["cache"] = _VirtualCache(inner, kept, P)
        kwargs["attention_mask"] = _extended_mask(kwargs.get("attention_mask"), batch, P, P + inner.length + length,
                                                  x.device)
        return args, kwargs
    if inner is not None:
        inner.prompt_kv = {}
        kwargs["cache"] = _VirtualCache(inner, inner.prompt_kv, P, capture=True)
    if kwargs.get("position_ids") is not None:
        raise ValueError("prompt tuning derives positions itself; do not pass position_ids")
    if kwargs.get("attention_mask") is not None:
        kwargs["attention_mask"] = _extended_mask(kwargs["attention_mask"], batch, P, P + length, x.device)
    if kwargs.get("token_type_ids") is not None:
        kwargs["token_type_ids"] = torch.cat([kwargs["token_type_ids"].new_zeros(batch, P), kwargs["token_type_ids"]], 1)
    stack._prompt_positions = P  # read by the forward hook of this same call
    return (torch.cat([prompt(batch, x.dtype), x], dim=1), *args[1:]), kwargs


def _prompt_post_hook(stack: Stack, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """Drop the prompt's positions from the stack's output (not for an encoder-decoder's encoder,
    whose every output is memory for the decoder)."""
    P = stack.__dict__.pop("_prompt_positions", 0)
    return output[:, P:] if P and not stack.keeps_prompt else output


def _memory_mask_hook(stack: Stack, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """An encoder-decoder's decoder: the encoder's memory starts with the prompt; let it be seen."""
    memory, mask = kwargs.get("memory"), kwargs.get("memory_mask")
    if memory is not None and mask is not None and memory.shape[1] == mask.shape[1] + stack.prompt_length:
        kwargs = {**kwargs, "memory_mask": torch.cat([mask.new_ones(mask.shape[0], stack.prompt_length), mask], 1)}
    return args, kwargs


def virtual_tokens(model: nn.Module) -> int:
    """Positions the method occupies before the real tokens (prefix or prompt length; 0 otherwise):
    an input may use `max_seq_len - virtual_tokens(model)` positions."""
    lengths = [m.length for m in model.modules() if isinstance(m, (PrefixEncoder, SoftPrompt))]
    return max(lengths, default=0)


# ----------------------------------------------------------------------------------------------
# Putting a method into a model


@dataclass
class PeftInfo:
    """What `apply_peft` did: the method, the base model's parameter count (before injection),
    the trainable parameters (method + `train_also`), the method's own added parameters, and what a
    task keeps after training (`trainable`, except prefix tuning, whose MLP is dropped: P key/value
    vectors per layer, plus `train_also`)."""

    method: str
    base_parameters: int
    trainable: int
    added: int
    stored: int

    @property
    def trainable_share(self) -> float:
        return self.trainable / self.base_parameters


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _stacks(model: nn.Module) -> list[Stack]:
    return [m for m in model.modules() if isinstance(m, Stack)]


def _body(model: nn.Module) -> Transformer:
    bodies = [m for m in model.modules() if isinstance(m, Transformer)]
    if len(bodies) != 1:
        raise ValueError(f"expected one Transformer body in {type(model).__name__}, found {len(bodies)}")
    return bodies[0]


def _prompt_init(body: Transformer, config: PromptConfig, label_token_ids, seed: int) -> torch.Tensor | None:
    """Initial prompt embeddings (None: uniform random)."""
    if config.init == "random_uniform":
        return None
    if config.init not in ("class_labels", "vocab"):
        raise ValueError(f"PromptConfig.init={config.init!r}: use 'class_labels', 'vocab' or 'random_uniform'")
    device = body.tok_embed.weight.device
    rows = []
    if config.init == "class_labels":
        if not label_token_ids:
            raise ValueError("class-label initialisation needs label_token_ids (the token ids of each class's label)")
        if len(label_token_ids) > config.length:
            raise ValueError(f"{len(label_token_ids)} classes do not fit a prompt of {config.length} tokens")
        with torch.no_grad():
            rows += [body.embed(torch.tensor(list(ids), device=device)).mean(0) for ids in label_token_ids]
    g = torch.Generator().manual_seed(seed)
    vocab = min(config.vocab_size, body.config.vocab_size)
    sampled = torch.randint(0, vocab, (config.length - len(rows),), generator=g).to(device)
    with torch.no_grad():
        rows += list(body.embed(sampled)) if len(sampled) else []
    return torch.stack(rows).detach().clone()


def apply_peft(model: nn.Module, config: PeftConfig, *, train_also: tuple[str, ...] = (),
               label_token_ids: list[list[int]] | None = None, seed: int = 0) -> PeftInfo:
    """Put `config`'s method into `model` (in place), freeze everything else except parameters
    whose names start with one of `train_also` (a task head: "classifier."), and return the counts.

    `label_token_ids`: per class, the token ids of its label (prompt tuning's class-label init).
    `seed` seeds the method's random initialisation."""
    base_parameters = count_parameters(model)
    if isinstance(config, FullConfig):
        for p in model.parameters():
            p.requires_grad_(True)
        return PeftInfo("full", base_parameters, base_parameters, 0, base_parameters)
    for p in model.parameters():
        p.requires_grad_(False)
    torch.manual_seed(seed)
    added: list[nn.Parameter] = []  # the method's new parameters
    retrained: list[nn.Parameter] = []  # base parameters the method trains too (Houlsby's layer norms)

    def replace(parent: nn.Module, name: str, module: nn.Module) -> None:
        setattr(parent, name, module)
        added.extend(p for n, p in module.named_parameters() if not n.startswith("base."))

    if isinstance(config, LoRAConfig):
        unknown = set(config.targets) - {"q", "k", "v"}
        if unknown:
            raise ValueError(f"LoRA targets {sorted(unknown)}: this implementation adapts q, k and v")
        for attn in [m for m in model.modules() if isinstance(m, Attention)]:
            if attn.cross:
                if "q" in config.targets:
                    replace(attn, "q_proj", LoRALinear(attn.q_proj, {"q": (0, attn.q_proj.out_features)}, config))
                slices = {t: s for t, s in _qkv_slices(attn).items() if t in config.targets}
                if slices:
                    replace(attn, "kv_proj", LoRALinear(attn.kv_proj, slices, config))
            else:
                slices = {t: s for t, s in _qkv_slices(attn).items() if t in config.targets}
                replace(attn, "qkv_proj", LoRALinear(attn.qkv_proj, slices, config))
    elif isinstance(config, IA3Config):
        for attn in [m for m in model.modules() if isinstance(m, Attention)]:
            slices = {t: s for t, s in _qkv_slices(attn).items() if t in ("k", "v")}
            if attn.cross:
                replace(attn, "kv_proj", IA3Linear(attn.kv_proj, slices))
            else:
                replace(attn, "qkv_proj", IA3Linear(attn.qkv_proj, slices))
        for mlp in [m for m in model.modules() if isinstance(m, MLP)]:
            replace(mlp, "out_proj", IA3Input(mlp.out_proj))
    elif isinstance(config, AdapterConfig):
        for attn in [m for m in model.modules() if isinstance(m, Attention)]:
            replace(attn, "out_proj", AdapterAfter(attn.out_proj, config))
        for mlp in [m for m in model.modules() if isinstance(m, MLP)]:
            replace(mlp, "out_proj", AdapterAfter(mlp.out_proj, config))
        if config.train_norms:  # Houlsby: "the layer normalization parameters" are trained too
            for m in model.modules():
                if isinstance(m, (nn.LayerNorm, nn.RMSNorm)):
                    retrained.extend(m.parameters())
    elif isinstance(config, PrefixConfig):
        for stack in _stacks(model):
            stack.prefix = PrefixEncoder(stack, config)
            added.extend(stack.prefix.parameters())
            stack.register_forward_pre_hook(_prefix_hook, with_kwargs=True)
    elif isinstance(config, PromptConfig):
        body = _body(model)
        first = body.encoder if body.encoder is not None else body.decoder  # the stack that reads the input
        init = _prompt_init(body, config, label_token_ids, seed)
        first.soft_prompt = SoftPrompt(config.length, body.config.d_model, init, config.init_range,
                                       device=body.tok_embed.weight.device)
        first.keeps_prompt = body.config.kind == "encoder-decoder"
        added.extend(first.soft_prompt.parameters())
        first.register_forward_pre_hook(_prompt_pre_hook, with_kwargs=True)
        first.register_forward_hook(_prompt_post_hook)
        if first.keeps_prompt:
            body.decoder.prompt_length = config.length
            body.decoder.register_forward_pre_hook(_memory_mask_hook, with_kwargs=True)
    else:
        raise TypeError(f"unknown PEFT configuration {type(config).__name__}")
    for p in added + retrained:
        p.requires_grad_(True)
    for name, p in model.named_parameters():
        if any(name.startswith(prefix) for prefix in train_also):
            p.requires_grad_(True)
    trainable = count_parameters(model, trainable_only=True)
    stored = trainable
    if isinstance(config, PrefixConfig) and config.reparameterize:
        prefixes = [s.prefix for s in _stacks(model)]
        stored += sum(e.length * e.n_layer * 2 * e.n_kv * e.head_dim - count_parameters(e) for e in prefixes)
    method = "ptuning_v2" if isinstance(config, PrefixConfig) and not config.reparameterize else config.method
    return PeftInfo(method, base_parameters, trainable, sum(p.numel() for p in added), stored)


def merge_for_inference(model: nn.Module) -> nn.Module:
    """The deployable model, in place: LoRA's B A and (IA)^3's scales folded into the weights (the
    plain model again, same outputs, no extra work per token), prefix MLPs replaced by the prefixes
    they produce. Adapters and soft prompts cannot be folded and stay."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (LoRALinear, IA3Linear, IA3Input)):
                setattr(parent, name, child.merged())
            elif isinstance(child, PrefixEncoder):
                child.drop_reparameterization()
    return model


# ----------------------------------------------------------------------------------------------
# The same model with separate q, k, v projections (what `peft` can target)


class SplitQKV(nn.Module):
    """Separate q, k, v Linears whose concatenated output is the fused projection's."""

    def __init__(self, fused: nn.Linear, slices: dict[str, tuple[int, int]]):
        super().__init__()
        self.names = [n for n, _ in sorted(slices.items(), key=lambda kv: kv[1])]
        for name in self.names:
            start, stop = slices[name]
            part = nn.Linear(fused.in_features, stop - start, bias=fused.bias is not None,
                             device=fused.weight.device, dtype=fused.weight.dtype)
            with torch.no_grad():
                part.weight.copy_(fused.weight[start:stop])
                if fused.bias is not None:
                    part.bias.copy_(fused.bias[start:stop])
            setattr(self, name, part)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, name)(x) for name in self.names], dim=-1)


def split_qkv(model: nn.Module) -> nn.Module:
    """In place: every fused `qkv_proj` (and cross-attention `kv_proj`) becomes a `SplitQKV` with
    children named q, k, v holding the same weights, so the outputs are unchanged and `peft` can
    target "q", "k", "v" by name."""
    for attn in [m for m in model.modules() if isinstance(m, Attention)]:
        if attn.cross:
            attn.kv_proj = SplitQKV(attn.kv_proj, _qkv_slices(attn))
        else:
            attn.qkv_proj = SplitQKV(attn.qkv_proj, _qkv_slices(attn))
    return model
