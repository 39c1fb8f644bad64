"""Configuration dataclasses, loaded from YAML and overridden from the command line.

Every architectural choice of the lineage is one field of `ModelConfig`; the defaults are the
original Transformer's (Vaswani et al. 2017, base model) unless a field says otherwise, and the
paper presets in `repro.model.presets` set the rest.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field, fields
from typing import Any, Literal

KINDS = ("decoder", "encoder", "encoder-decoder")
POSITIONS = ("sinusoidal", "learned", "t5_relative", "rope", "alibi", "none")
NORMS = ("layernorm", "rmsnorm")
NORM_PLACEMENTS = ("post", "pre")
ACTIVATIONS = ("relu", "gelu", "gelu_tanh", "geglu", "geglu_tanh", "swiglu")
ATTENTION_PATTERNS = ("dense", "alternating_banded")
INIT_SCHEMES = ("normal", "t5")


class InputError(ValueError):
    """Bad input a user can fix (a damaged data or results file): the message names the file, what
    is wrong and the fix, and the command line prints it as one line with exit status 2."""


class ConfigError(InputError):
    """A configuration value is wrong; the message names the field and what is allowed."""


@dataclass
class ModelConfig:
    # --- shape (Transformer base, Table 3) ---
    kind: Literal["decoder", "encoder", "encoder-decoder"] = "encoder-decoder"
    vocab_size: int = 37000  # shared EN-DE BPE vocabulary
    n_layer: int = 6  # encoder layers (and decoder layers unless n_decoder_layer is set)
    n_decoder_layer: int | None = None  # encoder-decoder only; None = same as n_layer
    d_model: int = 512
    n_head: int = 8
    n_kv_head: int | None = None  # None = n_head (MHA); 1 = MQA; between = GQA
    d_head: int | None = None  # None = d_model // n_head; T5-3B/11B use 128 with d_model 1024
    d_ff: int = 2048
    max_seq_len: int = 512  # context length; learned position tables have this many rows
    # --- positions ---
    positions: Literal["sinusoidal", "learned", "t5_relative", "rope", "alibi", "none"] = "sinusoidal"
    relative_buckets: int = 32  # T5: 32 log-spaced buckets ...
    relative_max_distance: int = 128  # ... covering distances up to 128
    rope_theta: float = 10000.0
    scale_embeddings: bool = True  # Transformer: token embeddings multiplied by sqrt(d_model)
    n_segments: int = 0  # BERT: 2 segment (token type) embeddings
    embedding_norm: bool = False  # BERT: LayerNorm right after the summed embeddings
    # --- blocks ---
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    norm_placement: Literal["post", "pre"] = "post"  # post: LN(x + f(x)); pre: x + f(LN(x))
    norm_eps: float = 1e-5
    activation: Literal["relu", "gelu", "gelu_tanh", "geglu", "geglu_tanh", "swiglu"] = "relu"
    bias: bool = True  # biases in linear layers and LayerNorms (T5 and LLaMA have none)
    scale_attention: bool = True  # divide scores by sqrt(d_head); T5 folds this into its init
    attention_pattern: Literal["dense", "alternating_banded"] = "dense"
    local_window: int = 256  # banded layers attend to this many previous positions (GPT-3)
    # --- embeddings and output ---
    tie_embeddings: bool = True  # input embedding = pre-softmax weight (and encoder = decoder)
    tied_output_scale: bool = False  # T5 v1.0 scales the decoder output by d_model**-0.5 before the head
    # --- regularisation and init ---
    dropout: float = 0.1  # residual, embedding and attention-probability dropout
    init_std: float = 0.02
    # "normal": N(0, init_std) everywhere (GPT, BERT). "t5": Mesh TensorFlow's fan-in init, which T5
    # needs because it does not divide attention scores by sqrt(d_head) (`scale_attention=False`):
    # every matrix N(0, fan_in^-0.5), queries a further d_head^-0.5, token embeddings N(0, 1)
    # (the tied output is scaled by d_model^-0.5 instead); init_std is then unused.
    init_scheme: Literal["normal", "t5"] = "normal"
    scale_residual_init: bool = False  # GPT-2: residual projections init std / sqrt(2 * n_layer)
    # --- heads ---
    n_labels: int = 2  # classification head (NSP, GLUE); 1 = regression (STS-B)

    def __post_init__(self) -> None:
        self.validate()

    # Derived values, so no caller recomputes them differently.
    @property
    def head_dim(self) -> int:
        return self.d_head if self.d_head is not None else self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head if self.n_kv_head is not None else self.n_head

    @property
    def decoder_layers(self) -> int:
        return self.n_decoder_layer if self.n_decoder_layer is not None else self.n_layer

    @property
    def gated(self) -> bool:
        return self.activation in ("geglu", "geglu_tanh", "swiglu")

    def validate(self) -> None:
        choices = {
            "kind": KINDS,
            "positions": POSITIONS,
            "norm": NORMS,
            "norm_placement": NORM_PLACEMENTS,
            "activation": ACTIVATIONS,
            "attention_pattern": ATTENTION_PATTERNS,
            "init_scheme": INIT_SCHEMES,
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"ModelConfig.{name}={value!r} is not one of {', '.join(allowed)}")
        for name in ("vocab_size", "n_layer", "d_model", "n_head", "d_ff", "max_seq_len"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        if self.d_head is None and self.d_model % self.n_head:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by n_head={self.n_head}; "
                "change one of them or set d_head explicitly"
            )
        if self.n_head % self.kv_heads:
            raise ConfigError(f"n_head={self.n_head} must be a multiple of n_kv_head={self.kv_heads}")
        if self.positions == "rope" and self.head_dim % 2:
            raise ConfigError(f"RoPE needs an even head dimension, got {self.head_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.n_decoder_layer is not None and self.kind != "encoder-decoder":
            raise ConfigError("n_decoder_layer only applies to kind='encoder-decoder'")

    def replace(self, **changes: Any) -> "ModelConfig":
        return from_dict(type(self), {**dataclasses.asdict(self), **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_dict(cls: type, data: dict[str, Any]):
    """Build a config dataclass from a plain dict; an unknown key is a typo and names its fix."""
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} must be a mapping of field: value, got {type(data).__name__} {data!r}")
    known = {f.name for f in fields(cls)}
    unknown = [k for k in data if k not in known]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), sorted(known), n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else f"; known fields: {', '.join(sorted(known))}"
        raise ConfigError(f"unknown {cls.__name__} field {key!r}{hint}")
    return cls(**{k: _coerce(cls, f, data[k]) for f in fields(cls) if (k := f.name) in data})


def _coerce(cls: type, f, value: Any) -> Any:
    """YAML reads `3e-4` as a string and users type `steps: "100"`: convert where the default's
    type is a number, and name the field when that is impossible (a list, a word). A field whose
    default is a flag or a word takes only a flag or a word."""
    default = f.default if f.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{cls.__name__}.{f.name} must be true or false, got {value!r}")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{cls.__name__}.{f.name} must be a word, got {value!r}")
        return value
    if not isinstance(default, (int, float)):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        if isinstance(value, str):
            return type(default)(float(value))
    except ValueError:
        pass
    raise ConfigError(f"{cls.__name__}.{f.name} must be a number, got {value!r}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=3` -> (['a', 'b'], 3); the value is parsed as YAML so numbers and booleans keep their type."""
    import yaml

    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. model.n_layer=4)")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


__all__ = ["ModelConfig", "ConfigError", "InputError", "from_dict", "parse_override", "field"]
