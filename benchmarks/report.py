"""Turn pytest-benchmark's JSON into results/perf/throughput.{json,md}: tokens/s per family,
mode, precision (fp32, or bf16 autocast on both sides) and implementation, and the ratio
ours / reference with a 95% bootstrap interval.

Each benchmark round timed one step of each implementation back to back (benchmarks/
test_throughput.py), so the ratio is the median over rounds of the paired ratio
reference seconds / ours seconds, and the interval resamples those rounds.
"""

import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch


def paired_ratio(ours: list[float], reference: list[float], resamples: int = 2000) -> tuple[float, float, float]:
    ratios = np.array(reference) / np.array(ours)
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(ratios, size=(resamples, len(ratios))), axis=1)
    return float(np.median(ratios)), float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def precision(benchmark: dict) -> str:
    # Runs saved before the bf16 rows existed were all fp32.
    return benchmark["extra_info"].get("precision", "fp32")


def main(src: str = "results/perf/benchmark.json", out_dir: str = "results/perf") -> None:
    data = json.loads(Path(src).read_text())
    rows = []
    for b in sorted(data["benchmarks"], key=lambda b: (b["extra_info"]["family"], b["extra_info"]["mode"], precision(b))):
        info = b["extra_info"]
        ours, ref = info["seconds"]["ours"], info["seconds"]["reference"]
        ratio, low, high = paired_ratio(ours, ref)
        rows.append({"family": info["family"], "mode": info["mode"], "precision": precision(b), "rounds": len(ours),
                     "ours_tokens_per_s": info["tokens"] / float(np.median(ours)),
                     "reference_tokens_per_s": info["tokens"] / float(np.median(ref)),
                     "ratio": ratio, "ratio_ci95": [low, high]})
    env = {"machine": data.get("machine_info", {}).get("cpu", {}).get("brand_raw", platform.processor()),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "python": platform.python_version(),
           "datetime": data.get("datetime")}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps({"environment": env, "rows": rows}, indent=2))
    lines = ["# Throughput: ours vs transformers (same config, batch, weights)", "",
             f"{env['machine']}, torch {env['torch']}, {env['threads']} threads, {env['datetime']}.",
             "Ratio: median over rounds of the paired ratio (one step of each per round), 95% bootstrap interval.", "",
             "Precision bf16: both models under torch.autocast(\"cpu\", dtype=torch.bfloat16), weights fp32.", "",
             "| family | mode | precision | ours tok/s | transformers tok/s | ours / reference | 95% interval |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        low, high = r["ratio_ci95"]
        lines.append(f"| {r['family']} | {r['mode']} | {r['precision']} | {r['ours_tokens_per_s']:,.0f} | {r['reference_tokens_per_s']:,.0f} "
                     f"| {r['ratio']:.2f}x | [{low:.2f}, {high:.2f}] |")
    (out / "throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(*sys.argv[1:])
