"""lm-eval model types for the harness's LMs, so any lm-eval task runs on a repro checkpoint.

    import harness.lm_eval_bridge            # registers "repro" and "repro-hf" with lm-eval
    lm_eval.simple_evaluate(model="repro", model_args="checkpoint=RUN_DIR,batch_size=8", tasks=[...])
    lm_eval.simple_evaluate(model=LMEvalAdapter(ReproLM(...)), tasks=[...])   # an LM already built

lm-eval 0.4.13 finds model types only in its own registry (lm_eval.models.MODEL_MAPPING plus
whatever `@register_model` has run); it reads no package entry points. So the command line goes
through this module, which registers first and then hands over to lm-eval's own CLI:

    python -m harness.lm_eval_bridge --model repro --model_args checkpoint=RUN_DIR \
        --tasks my_task --include_path TASK_DIR

The adapter forwards each request's `args` to the harness LM unchanged: the tokenisation,
windowing and batching conventions live in `harness.lm` only.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import torch

import lm_eval.models  # noqa: F401  lm-eval's own names first: get_model() only imports them into an empty registry
from lm_eval.api.model import LM as LMEvalModel
from lm_eval.api.registry import register_model

from harness.lm import HFLM, LM, ReproLM

__all__ = ["LMEvalAdapter", "ReproLMEval", "ReproHFLMEval", "main"]


def _device(value: str | None) -> str:
    # lm-eval's CLI defaults to "cuda:0" whatever the machine; like lm-eval's own HF model, run on
    # the CPU when no GPU is there rather than fail.
    if value is None or (str(value).startswith("cuda") and not torch.cuda.is_available()):
        if value is not None:
            logging.getLogger(__name__).warning("device %s requested but CUDA is not available; using cpu", value)
        return "cpu"
    return str(value)


def _batch_size(value: Any, default: int = 16) -> int:
    # lm-eval passes "auto" / "auto:N" or numbers as strings; we have no auto-tuning, so "auto" is the default.
    if value is None or (isinstance(value, str) and value.startswith("auto")):
        return default
    return int(value)


class LMEvalAdapter(LMEvalModel):
    """Any `harness.lm.LM` as an lm-eval model."""

    def __init__(self, lm: LM):
        super().__init__()
        self.lm = lm
        self._device = lm.device

    # lm-eval reads these for its results header (add_tokenizer_info, get_model_info)
    @property
    def tokenizer(self):
        return self.lm.tokenizer

    @property
    def eot_token_id(self) -> int:
        return self.lm.eot_token_id

    @property
    def max_length(self) -> int:
        return self.lm.max_length

    @property
    def tokenizer_name(self) -> str:
        return getattr(self.lm.tokenizer, "name_or_path", "") or self.lm.name

    def get_model_info(self) -> dict:
        return {"model_name": self.lm.name, "model_num_parameters": self.lm.num_parameters,
                "model_max_length": self.lm.max_length}

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None):
        # lm-eval's CLI always passes batch_size (default 1) besides model_args; its base class would
        # then see batch_size twice. model_args is the more specific of the two, so it wins.
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None}
        return cls(**{**extra, **arg_dict})

    # the three request types: forward `args`, record for lm-eval's response cache
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        args = [tuple(r.args) for r in requests]
        return self._cached("loglikelihood", args, self.lm.loglikelihood(args))

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        args = [tuple(r.args) for r in requests]
        return self._cached("loglikelihood_rolling", args, self.lm.loglikelihood_rolling([a[0] for a in args]))

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        args = [tuple(r.args) for r in requests]
        return self._cached("generate_until", args, self.lm.generate_until([(c, dict(k or {})) for c, k in args]))

    def _cached(self, kind: str, args: list, results: list) -> list:
        for a, r in zip(args, results, strict=True):
            self.cache_hook.add_partial(kind, a, r)
        return results


@register_model("repro")
class ReproLMEval(LMEvalAdapter):
    """`--model repro --model_args checkpoint=RUN_DIR[,tokenizer=DIR][,batch_size=N][,device=cpu][,precision=fp32]`."""

    def __init__(self, checkpoint: str | None = None, batch_size: Any = None, device: str | None = None,
                 max_batch_size: Any = None, tokenizer: str | None = None, lm: LM | None = None,
                 precision: str = "auto"):
        if lm is None:
            if checkpoint is None:
                raise ValueError("the repro model type needs checkpoint=RUN_DIR (a directory written by `repro train`)")
            lm = ReproLM(checkpoint, tokenizer, batch_size=_batch_size(batch_size), device=_device(device),
                         precision=precision)
        super().__init__(lm)


@register_model("repro-hf")
class ReproHFLMEval(LMEvalAdapter):
    """`--model repro-hf --model_args pretrained=MODEL_DIR[,tokenizer=DIR]`: a local transformers model
    scored by the harness's own code (lm-eval's "hf" type is the independent reference)."""

    def __init__(self, pretrained: str | None = None, batch_size: Any = None, device: str | None = None,
                 max_batch_size: Any = None, tokenizer: str | None = None, lm: LM | None = None):
        if lm is None:
            if pretrained is None:
                raise ValueError("the repro-hf model type needs pretrained=MODEL_DIR (a save_pretrained directory)")
            lm = HFLM(pretrained, tokenizer, batch_size=_batch_size(batch_size), device=_device(device))
        super().__init__(lm)


def main(argv: list[str] | None = None) -> None:
    """lm-eval's command line with the repro model types registered."""
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
