"""The papers' architectures as `ModelConfig` presets, their parameter counts, and `scaled()`.

Hyper-parameters are those of ../shared/reference/papers.md (table cited per family). Parameter
counts are computed by building the model on the meta device (no memory, no time), never typed;
`reported_params` is what the paper printed, kept only to compare against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from repro.config import ModelConfig


@dataclass(frozen=True)
class Preset:
    name: str
    config: ModelConfig
    task: str  # task model the paper trains: 'lm' or 'mlm'
    reported_params: float  # as printed in the paper
    source: str  # table / section
    # How the paper counted, when it was not "every parameter of this model". The GPT-2 paper's
    # Table 2 sizes (117M/345M/762M/1542M) equal the same stacks counted with GPT-1's vocabulary
    # (40,478) and context (512); the released models are 124M/355M/774M/1558M.
    count_as: dict | None = None
    tolerance: float = 0.02  # relative; wider only where the paper rounds (see note)
    note: str = ""


def _transformer(d_model, d_ff, n_head, dropout) -> ModelConfig:
    # Vaswani et al. Table 3: post-LN, sinusoids, ReLU, shared 37k BPE, tied embeddings.
    return ModelConfig(
        kind="encoder-decoder", vocab_size=37000, n_layer=6, d_model=d_model, n_head=n_head,
        d_ff=d_ff, max_seq_len=512, positions="sinusoidal", scale_embeddings=True,
        norm="layernorm", norm_placement="post", activation="relu", dropout=dropout,
    )


def _bert(n_layer, d_model, n_head) -> ModelConfig:
    # Devlin et al. §3: post-LN encoder, learned positions + 2 segments, GELU, WordPiece 30,522.
    return ModelConfig(
        kind="encoder", vocab_size=30522, n_layer=n_layer, d_model=d_model, n_head=n_head,
        d_ff=4 * d_model, max_seq_len=512, positions="learned", scale_embeddings=False,
        n_segments=2, embedding_norm=True, norm="layernorm", norm_placement="post",
        norm_eps=1e-12, activation="gelu", dropout=0.1,
    )


def _t5(n_layer, d_model, d_ff, n_head, d_head=64) -> ModelConfig:
    # Raffel et al. §3.1: pre-RMSNorm without bias, shared relative buckets (32, max 128), ReLU,
    # no score scaling, tied embeddings with d_model^-0.5 output scale, SentencePiece 32k (+128).
    return ModelConfig(
        kind="encoder-decoder", vocab_size=32128, n_layer=n_layer, d_model=d_model, n_head=n_head,
        d_head=d_head, d_ff=d_ff, max_seq_len=512, positions="t5_relative", scale_embeddings=False,
        norm="rmsnorm", norm_placement="pre", norm_eps=1e-6, activation="relu", bias=False,
        scale_attention=False, tied_output_scale=True, dropout=0.1, init_scheme="t5",
    )


def _gpt2(n_layer, d_model, n_head) -> ModelConfig:
    # Radford et al. 2019 §2.3: GPT-1 moved to pre-LN + final LN, 1/sqrt(N) residual init,
    # context 1024, byte-level BPE 50,257.
    return ModelConfig(
        kind="decoder", vocab_size=50257, n_layer=n_layer, d_model=d_model, n_head=n_head,
        d_ff=4 * d_model, max_seq_len=1024, positions="learned", scale_embeddings=False,
        norm="layernorm", norm_placement="pre", activation="gelu_tanh", dropout=0.1,
        scale_residual_init=True,
    )


def _gpt3(n_layer, d_model, n_head) -> ModelConfig:
    # Brown et al. Table 2.1: GPT-2's architecture, context 2048, d_ff = 4 d_model, alternating
    # dense and locally banded sparse attention.
    return _gpt2(n_layer, d_model, n_head).replace(
        max_seq_len=2048, attention_pattern="alternating_banded", local_window=256
    )


GPT2_PAPER_COUNTING = {"vocab_size": 40478, "max_seq_len": 512}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("transformer_base", _transformer(512, 2048, 8, 0.1), "lm", 65e6, "Vaswani et al. Table 3",
               tolerance=0.04, note="paper rounds; 37k vocabulary is 'about'"),
        Preset("transformer_big", _transformer(1024, 4096, 16, 0.3), "lm", 213e6, "Vaswani et al. Table 3"),
        Preset("bert_base", _bert(12, 768, 12), "mlm", 110e6, "Devlin et al. §3"),
        Preset("bert_large", _bert(24, 1024, 16), "mlm", 340e6, "Devlin et al. §3"),
        Preset("t5_small", _t5(6, 512, 2048, 8), "lm", 60e6, "Raffel et al. §3.7"),
        Preset("t5_base", _t5(12, 768, 3072, 12), "lm", 220e6, "Raffel et al. §3.7"),
        Preset("t5_large", _t5(24, 1024, 4096, 16), "lm", 770e6, "Raffel et al. §3.7",
               tolerance=0.05, note="paper says 770M; the released checkpoint has 738M"),
        Preset("t5_3b", _t5(24, 1024, 16384, 32, d_head=128), "lm", 3e9, "Raffel et al. §3.7",
               tolerance=0.06, note="paper rounds to 3B"),
        Preset("t5_11b", _t5(24, 1024, 65536, 128, d_head=128), "lm", 11e9, "Raffel et al. §3.7",
               tolerance=0.05, note="paper rounds to 11B"),
        Preset("gpt1", ModelConfig(
            kind="decoder", vocab_size=40478, n_layer=12, d_model=768, n_head=12, d_ff=3072,
            max_seq_len=512, positions="learned", scale_embeddings=False, norm="layernorm",
            norm_placement="post", activation="gelu_tanh", dropout=0.1,
        ), "lm", 117e6, "Radford et al. 2018 §4.1"),
        Preset("gpt2_small", _gpt2(12, 768, 12), "lm", 117e6, "Radford et al. 2019 Table 2", GPT2_PAPER_COUNTING),
        Preset("gpt2_medium", _gpt2(24, 1024, 16), "lm", 345e6, "Radford et al. 2019 Table 2", GPT2_PAPER_COUNTING),
        Preset("gpt2_large", _gpt2(36, 1280, 20), "lm", 762e6, "Radford et al. 2019 Table 2", GPT2_PAPER_COUNTING),
        Preset("gpt2_xl", _gpt2(48, 1600, 25), "lm", 1542e6, "Radford et al. 2019 Table 2", GPT2_PAPER_COUNTING),
        Preset("gpt3_125m", _gpt3(12, 768, 12), "lm", 125e6, "Brown et al. Table 2.1"),
        Preset("gpt3_350m", _gpt3(24, 1024, 16), "lm", 350e6, "Brown et al. Table 2.1"),
        Preset("gpt3_760m", _gpt3(24, 1536, 16), "lm", 760e6, "Brown et al. Table 2.1"),
        # Table 2.1 prints 24 heads of d_head 128 for XL, which cannot tile d_model 2048; the
        # 1.3B count needs heads x d_head = d_model, so 16 heads of 128.
        Preset("gpt3_1.3b", _gpt3(24, 2048, 16), "lm", 1.3e9, "Brown et al. Table 2.1"),
        Preset("gpt3_2.7b", _gpt3(32, 2560, 32), "lm", 2.7e9, "Brown et al. Table 2.1"),
        Preset("gpt3_6.7b", _gpt3(32, 4096, 32), "lm", 6.7e9, "Brown et al. Table 2.1"),
        # Table 2.1 prints d_model 5140, but 40 heads x d_head 128 = 5120, the width used here.
        Preset("gpt3_13b", _gpt3(40, 5120, 40), "lm", 13e9, "Brown et al. Table 2.1"),
        Preset("gpt3_175b", _gpt3(96, 12288, 96), "lm", 175e9, "Brown et al. Table 2.1"),
        Preset("llama_7b", ModelConfig(
            kind="decoder", vocab_size=32000, n_layer=32, d_model=4096, n_head=32, d_ff=11008,
            max_seq_len=2048, positions="rope", scale_embeddings=False, norm="rmsnorm",
            norm_placement="pre", norm_eps=1e-6, activation="swiglu", bias=False, dropout=0.0,
            tie_embeddings=False,
        ), "lm", 6.7e9, "Touvron et al. 2023 Table 2 (llama-style reference)"),
    ]
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, PRESETS, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(PRESETS)}"
        raise KeyError(f"unknown preset {name!r}; {hint}")
    return PRESETS[name]


def count_parameters(config: ModelConfig, task: str = "lm") -> int:
    """Unique parameters of the task model, built on the meta device (no allocation)."""
    from repro.model.heads import build_model

    with torch.device("meta"):
        model = build_model(config, task)
    return sum(p.numel() for p in model.parameters())


def non_embedding_params(model) -> int:
    """Kaplan et al.'s N: parameters outside the token and position embeddings (an output
    projection tied to the token embedding is not counted either)."""
    embed = {id(p) for name, p in model.named_parameters() if "tok_embed" in name or "pos_embed" in name}
    return sum(p.numel() for p in model.parameters() if id(p) not in embed)


def preset_parameters(preset: Preset) -> tuple[int, int]:
    """(exact count of our model, count under the paper's convention)."""
    exact = count_parameters(preset.config, preset.task)
    as_paper = count_parameters(preset.config.replace(**preset.count_as), preset.task) if preset.count_as else exact
    return exact, as_paper


def scaled(base: ModelConfig | str, **changes) -> ModelConfig:
    """A small variant of a paper architecture: every choice kept, the sizes changed.

    `scaled("gpt2_small", n_layer=4, d_model=128, n_head=4)` keeps GPT-2's pre-LN, GELU, learned
    positions and init; d_ff follows d_model with the base's ratio unless given.
    """
    config = get_preset(base).config if isinstance(base, str) else base
    if "d_model" in changes and "d_ff" not in changes:
        changes["d_ff"] = config.d_ff * changes["d_model"] // config.d_model
    if "n_head" in changes and "d_head" not in changes and config.d_head is not None:
        changes["d_head"] = None
    return config.replace(**changes)
