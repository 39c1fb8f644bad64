"""Heads and the task models built from the shared `Transformer` body.

    LanguageModel         decoder-only (GPT) or encoder-decoder (Transformer, T5) + LM head
    MaskedLanguageModel   encoder + MLM head + NSP head (BERT pre-training)
    SequenceClassifier    encoder ([CLS] + pooler) or decoder (last token) + classifier
    ScalarModel           decoder + scalar head: per-token values (PPO) or last-token reward (RM)

Labels follow one convention everywhere: `labels[..., t]` is the target of position t (already
shifted for causal LMs, see `repro.data.objectives`), and -100 marks positions without a loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from repro.config import ModelConfig
from repro.model.layers import KVCache, MLP, make_norm
from repro.model.loss import IGNORE_INDEX, linear_cross_entropy
from repro.model.transformer import Transformer, init_weights


@dataclass
class ModelOutput:
    logits: torch.Tensor | None = None  # LM / MLM / class logits, or scalar values
    loss: torch.Tensor | None = None
    hidden: torch.Tensor | None = None  # last stack's output
    cache: KVCache | None = None
    seq_logits: torch.Tensor | None = None  # NSP logits (MaskedLanguageModel)
    reward: torch.Tensor | None = None  # ScalarModel: value at the last real token
    aux_logits: torch.Tensor | None = None  # an auxiliary per-token head (GPT-1 §3.2's LM loss while fine-tuning)


def token_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0,
               reduction: str = "mean") -> torch.Tensor:
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        label_smoothing=label_smoothing,
        reduction=reduction,
    )


def output_layer_loss(layer: nn.Module, h: torch.Tensor, labels: torch.Tensor, bias: torch.Tensor | None = None,
                      label_smoothing: float = 0.0, reduction: str = "mean") -> torch.Tensor:
    """Token loss of an output projection: blockwise (`linear_cross_entropy`) for a plain
    `nn.Linear`; through the layer's own forward when PEFT has replaced it (e.g. LoRA on the head)."""
    if type(layer) is nn.Linear:
        return linear_cross_entropy(h, layer.weight, labels, layer.bias if bias is None else bias,
                                    label_smoothing=label_smoothing, reduction=reduction)
    logits = layer(h) if bias is None else layer(h) + bias
    return token_loss(logits, labels, label_smoothing, reduction)


def last_token_index(attention_mask: torch.Tensor | None, input_ids: torch.Tensor) -> torch.Tensor:
    """Index of the last real token per row; works for left and right padding alike."""
    B, T = input_ids.shape
    if attention_mask is None:
        return torch.full((B,), T - 1, device=input_ids.device)
    positions = torch.arange(T, device=input_ids.device)
    return (attention_mask.long() * (positions + 1)).argmax(-1)


class LMHead(nn.Module):
    """Pre-softmax projection; tied to the token embedding when `tie_embeddings` (Vaswani §3.4)."""

    def __init__(self, config: ModelConfig, embedding: nn.Embedding):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.proj.weight = embedding.weight

    def _scale(self, h: torch.Tensor) -> torch.Tensor:
        if self.config.tied_output_scale:
            h = h * self.config.d_model**-0.5  # T5 v1.0: keeps tied logits at a sane scale
        return h

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # Logits leave in fp32 even under bf16 autocast: bf16 rounds a logit near 10 by ~0.03, as
        # much as the gap between two answers a harness compares. The body keeps its bf16 speed;
        # training never comes here (the loss is fused, `loss` below).
        with torch.autocast(h.device.type, enabled=False):
            return self.proj(self._scale(h).float())

    def loss(self, h: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0,
             reduction: str = "mean") -> torch.Tensor:
        return output_layer_loss(self.proj, self._scale(h), labels, None, label_smoothing, reduction)


class LanguageModel(nn.Module):
    # The trainer passes labels in and reads back the summed loss (see repro.train.loss_terms).
    fused_token_loss = True

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.kind == "encoder":
            raise ValueError("LanguageModel needs kind='decoder' or 'encoder-decoder'; use MaskedLanguageModel")
        self.config = config
        self.body = Transformer(config)
        self.lm_head = LMHead(config, self.body.tok_embed)
        init_weights(self, config)

    def encode(self, input_ids, attention_mask=None) -> torch.Tensor:
        return self.body.encode(input_ids, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        memory: torch.Tensor | None = None,
        cache: KVCache | None = None,
        position_ids: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        loss_reduction: str = "mean",
        return_logits: bool | None = None,
    ) -> ModelOutput:
        """Decoder-only: `input_ids` is the sequence. Encoder-decoder: `input_ids` is the source,
        `decoder_input_ids` the shifted target; pass `memory` (the encoder output) to skip
        re-encoding during incremental decoding.

        With `labels` the loss is computed blockwise (`linear_cross_entropy`) and the
        (tokens, vocab) logits are not built unless `return_logits=True`; without labels the
        logits are always returned."""
        if self.config.kind == "decoder":
            hidden = self.body.decode(input_ids, attention_mask, cache=cache, position_ids=position_ids)
        else:
            if decoder_input_ids is None:
                raise ValueError("an encoder-decoder LanguageModel needs decoder_input_ids")
            if memory is None:
                memory = self.body.encode(input_ids, attention_mask)
            hidden = self.body.decode(
                decoder_input_ids,
                decoder_attention_mask,
                memory=memory,
                memory_mask=attention_mask,
                cache=cache,
                position_ids=position_ids,
            )
        want_logits = labels is None if return_logits is None else return_logits
        logits = self.lm_head(hidden) if want_logits else None
        loss = self.lm_head.loss(hidden, labels, label_smoothing, loss_reduction) if labels is not None else None
        return ModelOutput(logits=logits, loss=loss, hidden=hidden, cache=cache)


class MLMHead(nn.Module):
    """BERT's prediction head: dense + activation + LayerNorm, then the tied decoder with a bias."""

    def __init__(self, config: ModelConfig, embedding: nn.Embedding):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.act = MLP.ACTIVATIONS[config.activation]
        self.norm = make_norm(config)
        self.decoder = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.decoder.weight = embedding.weight
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def transform(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.dense(h)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if type(self.decoder) is nn.Linear:  # the bias folded into the matmul (addmm)
            return F.linear(self.transform(h), self.decoder.weight, self.bias)
        return self.decoder(self.transform(h)) + self.bias

    def loss(self, h: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0,
             reduction: str = "mean") -> torch.Tensor:
        keep = labels != IGNORE_INDEX  # only masked positions pass through the transform and the vocabulary
        return output_layer_loss(self.decoder, self.transform(h[keep]), labels[keep], self.bias, label_smoothing,
                                 reduction)


class Pooler(nn.Module):
    """BERT: tanh(W h_[CLS] + b), the sentence representation for NSP and classification."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(h[:, 0]))


class MaskedLanguageModel(nn.Module):
    fused_token_loss = True  # see LanguageModel

    def __init__(self, config: ModelConfig, nsp: bool = True):
        super().__init__()
        if config.kind != "encoder":
            raise ValueError("MaskedLanguageModel needs kind='encoder'")
        self.config = config
        self.body = Transformer(config)
        self.mlm_head = MLMHead(config, self.body.tok_embed)
        self.pooler = Pooler(config) if nsp else None
        self.nsp_head = nn.Linear(config.d_model, 2) if nsp else None
        init_weights(self, config)

    def forward(
        self,
        input_ids,
        attention_mask=None,
        labels=None,
        *,
        token_type_ids=None,
        next_sentence_label=None,
        predict_positions=None,
        label_smoothing: float = 0.0,
        loss_reduction: str = "mean",
        return_logits: bool | None = None,
    ) -> ModelOutput:
        """`predict_positions` (bool, like input_ids): the logits of only those positions, (N, vocab)
        — BERT's pre-training scores the ~15% selected tokens, and the vocabulary projection at
        every position would cost more than the encoder of a small model. With `labels` the loss
        reads only the labelled positions anyway (blockwise, `linear_cross_entropy`), and logits
        are built only with `return_logits=True`."""
        hidden = self.body.encode(input_ids, attention_mask, token_type_ids)
        logits = None
        if (labels is None) if return_logits is None else return_logits:
            logits = self.mlm_head(hidden if predict_positions is None else hidden[predict_positions])
        seq_logits = self.nsp_head(self.pooler(hidden)) if self.nsp_head is not None else None
        loss = None
        if labels is not None:
            loss = self.mlm_head.loss(hidden, labels, label_smoothing, loss_reduction)
            if next_sentence_label is not None and seq_logits is not None:
                loss = loss + F.cross_entropy(seq_logits.float(), next_sentence_label, reduction=loss_reduction)
        return ModelOutput(logits=logits, loss=loss, hidden=hidden, seq_logits=seq_logits)


class SequenceClassifier(nn.Module):
    """GLUE-style classification (n_labels > 1, cross-entropy) or regression (n_labels == 1, MSE).

    Encoders pool [CLS] through BERT's pooler; decoders read the last real token (GPT-1 §3.3)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.kind == "encoder-decoder":
            raise ValueError("encoder-decoder models classify text-to-text (T5); use LanguageModel")
        self.config = config
        self.body = Transformer(config)
        self.pooler = Pooler(config) if config.kind == "encoder" else None
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.n_labels)
        init_weights(self, config)

    def forward(self, input_ids, attention_mask=None, labels=None, *, token_type_ids=None) -> ModelOutput:
        if self.pooler is not None:
            hidden = self.body.encode(input_ids, attention_mask, token_type_ids)
            pooled = self.pooler(hidden)
        else:
            hidden = self.body.decode(input_ids, attention_mask)
            pooled = hidden[torch.arange(len(hidden)), last_token_index(attention_mask, input_ids)]
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            if self.config.n_labels == 1:
                loss = F.mse_loss(logits.squeeze(-1).float(), labels.float())
            else:
                loss = F.cross_entropy(logits.float(), labels)
        return ModelOutput(logits=logits, loss=loss, hidden=hidden)


class ScalarModel(nn.Module):
    """A decoder with a scalar head: per-token values (PPO's value function) and the value at the
    last real token as the sequence's reward (InstructGPT's reward model)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.kind != "decoder":
            raise ValueError("ScalarModel needs kind='decoder'")
        self.config = config
        self.body = Transformer(config)
        self.scalar_head = nn.Linear(config.d_model, 1)
        init_weights(self, config)
        nn.init.zeros_(self.scalar_head.weight)  # start every reward / value at zero

    def forward(self, input_ids, attention_mask=None) -> ModelOutput:
        hidden = self.body.decode(input_ids, attention_mask)
        values = self.scalar_head(hidden).squeeze(-1)
        reward = values[torch.arange(len(values)), last_token_index(attention_mask, input_ids)]
        return ModelOutput(logits=values, hidden=hidden, reward=reward)


TASK_MODELS = {
    "lm": LanguageModel,
    "mlm": MaskedLanguageModel,
    "classifier": SequenceClassifier,
    "scalar": ScalarModel,
}


def build_model(config: ModelConfig, task: str | None = None) -> nn.Module:
    """The task model for a config: 'lm' for decoders and encoder-decoders, 'mlm' for encoders
    unless another task is named."""
    task = task or ("mlm" if config.kind == "encoder" else "lm")
    if task not in TASK_MODELS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASK_MODELS)}")
    return TASK_MODELS[task](config)
