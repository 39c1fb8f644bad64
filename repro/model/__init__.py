"""One implementation of the Transformer family (see transformer.py, heads.py) and the papers' presets."""

from repro.model.heads import (
    LanguageModel,
    MaskedLanguageModel,
    ModelOutput,
    ScalarModel,
    SequenceClassifier,
    build_model,
)
from repro.model.layers import KVCache
from repro.model.presets import (PRESETS, Preset, count_parameters, get_preset, non_embedding_params, preset_parameters,
                                 scaled)
from repro.model.transformer import Transformer

__all__ = [
    "KVCache",
    "LanguageModel",
    "MaskedLanguageModel",
    "ModelOutput",
    "PRESETS",
    "Preset",
    "ScalarModel",
    "SequenceClassifier",
    "Transformer",
    "build_model",
    "count_parameters",
    "non_embedding_params",
    "get_preset",
    "preset_parameters",
    "scaled",
]
