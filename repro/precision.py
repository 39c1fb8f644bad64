"""Which arithmetic training and scoring use, and the check that bf16 costs no quality.

On a device that multiplies bf16 natively (CUDA; CPUs with AVX512-BF16 or AMX) the engine runs
under bf16 autocast by default: matmuls in bf16, master weights, optimizer state, softmax and
loss accumulation in fp32. On this project's 2-core CPU that trains a 2.6M-parameter decoder
1.76x faster (6.0k vs 10.6k tokens/s). fp32 stays one flag away (`train.precision=fp32`, or
REPRO_PRECISION=fp32 for everything that says "auto"), and is what the parity tests use.

Without native support torch emulates bf16 matmuls, slower than fp32, so "auto" means fp32 there.
"""

from __future__ import annotations

import os
import statistics

import torch

from repro.config import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: str | torch.device = "auto") -> bool:
    """Whether `device` ("auto": CUDA if present, else the CPU) multiplies bf16 natively."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def resolve_precision(precision: str, device: str | torch.device = "auto") -> str:
    """"fp32" or "bf16" for a requested precision. "auto" reads REPRO_PRECISION first (so one
    variable switches every run of a paper, worker processes included), then the device."""
    if precision not in PRECISIONS:
        raise ConfigError(f"train.precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = os.environ.get("REPRO_PRECISION") or "auto"
        if precision not in PRECISIONS:
            raise ConfigError(f"REPRO_PRECISION={precision!r} is not one of {', '.join(PRECISIONS)}; "
                              "unset it or pick one")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def compare_precisions(fp32: list[float], bf16: list[float]) -> dict:
    """Does bf16 cost quality? `fp32[i]` and `bf16[i]` are the held-out losses of the same recipe
    and seed i in each precision (same initialisation and data order: paired).

    The mean paired difference is set against the seed-to-seed spread, the standard deviation of
    the losses across seeds within a precision (pooled over the two): bf16 is "within the seed
    spread" when |mean difference| is at most that. Seeds are the unit: with fewer than 3 the
    spread is not estimated and the check says so instead of passing."""
    if len(fp32) != len(bf16):
        raise ValueError(f"paired seeds: {len(fp32)} fp32 losses but {len(bf16)} bf16 losses")
    n = len(fp32)
    diffs = [b - f for f, b in zip(fp32, bf16)]
    out = {"seeds": n, "fp32_mean": statistics.fmean(fp32) if n else None,
           "bf16_mean": statistics.fmean(bf16) if n else None,
           "mean_difference": statistics.fmean(diffs) if n else None, "seed_sd": None, "within_seed_spread": None}
    if n >= 3:
        spread = ((statistics.variance(fp32) + statistics.variance(bf16)) / 2) ** 0.5
        out["seed_sd"] = spread
        out["within_seed_spread"] = abs(out["mean_difference"]) <= spread
    return out


def arithmetic() -> str:
    """Which kernels this machine's numbers come from: the CPU's vector instruction set as torch
    dispatches it (AVX512, AVX2, ...) and whether it multiplies bf16 natively, or the CUDA device.
    Two machines that differ here round differently, so a tiny model trained on each drifts apart
    over its steps; `repro regress` compares numbers only between machines that agree."""
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {torch.backends.cpu.get_cpu_capability()}" + (", native bf16" if native_bf16("cpu") else "")
