"""Recurrent baselines the papers compare the Transformer against, with the Transformer's interface.

    RecurrentConfig        one dataclass for both models
    RecurrentSeq2Seq       bidirectional GRU/LSTM encoder + GRU/LSTM decoder with Luong attention
                           (Vaswani et al. Table 2's RNN + attention rows; T-C7)
    RecurrentLM            a stacked LSTM/GRU language model (GPT-1 §5's 2048-unit LSTM; G1-C2)

Both answer the calls the rest of the engine makes on a `LanguageModel` — `forward(...)` returning
`ModelOutput`, `encode`, `.config.kind` — so the Trainer, `generate()` (greedy and beam) and the
harness use them unchanged. They keep no KV cache: generation re-runs the decoder over the prefix
each step, which gives the same tokens (a test) at a cost that does not matter at sentence length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from repro.model.heads import ModelOutput, token_loss


@dataclass
class RecurrentConfig:
    kind: Literal["decoder", "encoder-decoder"] = "encoder-decoder"
    vocab_size: int = 37000
    cell: Literal["gru", "lstm"] = "gru"
    n_layer: int = 1  # per stack
    d_model: int = 256  # embedding width (and the attention output's width)
    d_hidden: int = 256  # recurrent state per direction
    dropout: float = 0.1
    tie_embeddings: bool = True  # output projection shares the embedding (as our Transformers)
    # what `generate` reads from any model config: no position table, so no length limit
    positions: str = "none"
    max_seq_len: int = 1 << 20

    def replace(self, **changes) -> "RecurrentConfig":
        from dataclasses import replace

        return replace(self, **changes)


def _rnn(config: RecurrentConfig, input_size: int, bidirectional: bool = False) -> nn.RNNBase:
    cls = nn.GRU if config.cell == "gru" else nn.LSTM
    return cls(input_size, config.d_hidden, num_layers=config.n_layer, batch_first=True,
               dropout=config.dropout if config.n_layer > 1 else 0.0, bidirectional=bidirectional)


def _lengths(attention_mask: torch.Tensor | None, input_ids: torch.Tensor) -> torch.Tensor:
    if attention_mask is None:
        return torch.full((input_ids.shape[0],), input_ids.shape[1], dtype=torch.long)
    return attention_mask.long().sum(-1).clamp(min=1).cpu()


def _step(rnn: nn.RNNBase, x, state=None):
    """`rnn(x, state)`, with an LSTM run in fp32 under CPU autocast: torch's CPU LSTM kernel
    (oneDNN) has no bf16-autocast primitive and fails with "could not create a primitive
    descriptor" (torch 2.13). The GRU's kernel takes bf16, so it stays under autocast."""
    if isinstance(rnn, nn.LSTM) and torch.is_autocast_enabled("cpu"):
        packed = isinstance(x, nn.utils.rnn.PackedSequence)
        if packed:
            x = x._replace(data=x.data.float())
        else:
            x = x.float()
        if state is not None:
            state = tuple(s.float() for s in state)
        with torch.autocast("cpu", enabled=False):
            return rnn(x, state)
    return rnn(x, state)


def _run(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor, state=None):
    """Run over right-padded sequences without letting padding into the states."""
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, state = _step(rnn, packed, state)
    out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, state


def _init(model: nn.Module, config: RecurrentConfig) -> None:
    # Recurrent and linear layers keep torch's uniform(+-1/sqrt(fan)) init, which keeps the gates
    # out of saturation; a tied embedding starts at N(0, d^-1/2) so logits start near uniform.
    nn.init.normal_(model.tok_embed.weight, std=config.d_model**-0.5)


class RecurrentSeq2Seq(nn.Module):
    """Luong et al. (2015) global attention: a bidirectional encoder, a decoder whose output at each
    step attends over the encoder states ("general" score), and tanh(W[h; context]) as the
    attentional state the output layer reads."""

    def __init__(self, config: RecurrentConfig):
        super().__init__()
        if config.kind != "encoder-decoder":
            raise ValueError("RecurrentSeq2Seq needs kind='encoder-decoder'; use RecurrentLM for a decoder")
        self.config = config
        self.tok_embed = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = _rnn(config, config.d_model, bidirectional=True)
        self.bridge = nn.Linear(2 * config.d_hidden, config.d_hidden)  # encoder states -> decoder space
        self.decoder = _rnn(config, config.d_model)
        self.score = nn.Linear(config.d_hidden, config.d_hidden, bias=False)
        self.combine = nn.Linear(2 * config.d_hidden, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_embed.weight
        _init(self, config)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, S, d_hidden) encoder states, padding positions zero."""
        x = self.dropout(self.tok_embed(input_ids))
        out, _ = _run(self.encoder, x, _lengths(attention_mask, input_ids))
        return torch.tanh(self.bridge(out))

    def _initial_state(self, memory: torch.Tensor, attention_mask: torch.Tensor | None):
        mask = torch.ones(memory.shape[:2], device=memory.device) if attention_mask is None else attention_mask.float()
        mean = (memory * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        h = mean[None].repeat(self.config.n_layer, 1, 1).contiguous()
        return (h, torch.zeros_like(h)) if self.config.cell == "lstm" else h

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        cache=None,  # accepted for generate(); never filled, so every step recomputes the prefix
        position_ids=None,
        label_smoothing: float = 0.0,
    ) -> ModelOutput:
        if decoder_input_ids is None:
            raise ValueError("RecurrentSeq2Seq needs decoder_input_ids (the shifted target)")
        if memory is None:
            memory = self.encode(input_ids, attention_mask)
        y = self.dropout(self.tok_embed(decoder_input_ids))
        # Right padding in the target only follows the real tokens, so a plain run is causal
        # and padded positions carry no loss.
        h, _ = _step(self.decoder, y, self._initial_state(memory, attention_mask))
        scores = torch.einsum("btd,bsd->bts", self.score(h), memory)
        if attention_mask is not None:
            scores = scores.masked_fill(~attention_mask.bool()[:, None, :], float("-inf"))
        context = torch.einsum("bts,bsd->btd", F.softmax(scores, dim=-1), memory)
        attentional = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))
        logits = self.lm_head(self.dropout(attentional))
        loss = token_loss(logits, labels, label_smoothing) if labels is not None else None
        return ModelOutput(logits=logits, loss=loss, hidden=attentional, cache=cache)


class RecurrentLM(nn.Module):
    """A stacked LSTM (or GRU) language model: embed, recur, project (tied)."""

    def __init__(self, config: RecurrentConfig):
        super().__init__()
        if config.kind != "decoder":
            raise ValueError("RecurrentLM needs kind='decoder'")
        self.config = config
        self.tok_embed = nn.Embedding(config.vocab_size, config.d_model)
        self.rnn = _rnn(config, config.d_model)
        self.proj = nn.Linear(config.d_hidden, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_embed.weight
        _init(self, config)

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, d_model) states. Left padding (generate's, the harness's) is rolled to the right
        first, so a row's states never depend on its padding, then rolled back."""
        pads = None
        if attention_mask is not None and not bool(attention_mask[:, 0].bool().all()):
            pads = attention_mask.long().argmax(-1)  # leading pads per row (0 for right-padded rows)
            input_ids = _roll_rows(input_ids, -pads)
        out, _ = _step(self.rnn, self.dropout(self.tok_embed(input_ids)))
        hidden = self.proj(self.dropout(out))
        return hidden if pads is None else _roll_rows(hidden, pads)

    def forward(self, input_ids, attention_mask=None, labels=None, *, cache=None, position_ids=None,
                label_smoothing: float = 0.0) -> ModelOutput:
        hidden = self.hidden_states(input_ids, attention_mask)
        logits = self.lm_head(hidden)
        loss = token_loss(logits, labels, label_smoothing) if labels is not None else None
        return ModelOutput(logits=logits, loss=loss, hidden=hidden, cache=cache)


def _roll_rows(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll each row of x (B, T, ...) right by its own shift along T."""
    T = x.shape[1]
    index = (torch.arange(T, device=x.device)[None, :] - shifts.to(x.device)[:, None]) % T
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


RECURRENT_MODELS = {"encoder-decoder": RecurrentSeq2Seq, "decoder": RecurrentLM}


def build_recurrent(config: RecurrentConfig) -> nn.Module:
    return RECURRENT_MODELS[config.kind](config)


__all__ = ["RecurrentConfig", "RecurrentLM", "RecurrentSeq2Seq", "build_recurrent"]
