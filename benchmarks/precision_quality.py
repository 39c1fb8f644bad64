"""Does bf16 cost quality at real size? The race's 2.6M-parameter decoder trained by our Trainer
for the race's whole schedule in fp32 and in bf16 autocast, on three seeds, from the same
initial weights and batches per seed (paired); the final held-out losses are compared with
`repro.precision.compare_precisions` (bf16 passes when its mean paired difference is within the
seed-to-seed spread). tests/test_precision.py is the small version that runs in CI.

    python benchmarks/precision_quality.py      # writes results/perf/precision.{json,md}
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from race import RaceConfig, atomic_write, environment, machine_load, prepare, race_ours  # noqa: E402

from repro.precision import compare_precisions  # noqa: E402

SEEDS = (0, 1, 2)


def measure(cfg: RaceConfig, data: dict) -> dict:
    runs: dict[str, dict[int, dict]] = {"fp32": {}, "bf16": {}}
    for i, seed in enumerate(cfg.seeds):
        order = ("fp32", "bf16") if i % 2 == 0 else ("bf16", "fp32")  # alternate, as the race does
        for precision in order:
            t0 = time.perf_counter()
            result = race_ours(cfg, seed, precision, data)
            runs[precision][seed] = {"final_loss": result["curve"][-1][2], "curve": result["curve"],
                                     "wall_seconds": time.perf_counter() - t0}
            print(f"seed {seed} {precision}: held-out loss {runs[precision][seed]['final_loss']:.4f}", flush=True)
    fp32 = [runs["fp32"][s]["final_loss"] for s in cfg.seeds]
    bf16 = [runs["bf16"][s]["final_loss"] for s in cfg.seeds]
    return {"recipe": asdict(cfg), "runs": runs, "comparison": compare_precisions(fp32, bf16)}


def markdown(result: dict) -> str:
    c, seeds = result["comparison"], result["recipe"]["seeds"]
    rows = "\n".join(f"| {s} | {result['runs']['fp32'][s]['final_loss']:.4f} | {result['runs']['bf16'][s]['final_loss']:.4f} |"
                     for s in seeds)
    verdict = "within" if c["within_seed_spread"] else "outside"
    return (f"# bf16 vs fp32: held-out loss of the same recipe\n\n"
            f"{result['recipe']['n_layer']} layers, d_model {result['recipe']['d_model']}, "
            f"{result['recipe']['steps']} steps of {result['recipe']['batch_size']} x {result['recipe']['block_size']} "
            f"tokens, peak lr {result['recipe']['lr']:g}; our Trainer, same initial weights and batches per seed.\n\n"
            f"| seed | fp32 | bf16 |\n|---|---|---|\n{rows}\n\n"
            f"Mean paired difference (bf16 - fp32): {c['mean_difference']:+.4f} nats; seed-to-seed sd "
            f"{c['seed_sd']:.4f}: **{verdict}** the seed spread.\n")


def main() -> None:
    cfg = replace(RaceConfig(), target=None, seeds=SEEDS)  # the whole schedule: equal steps in both
    data = prepare(cfg)
    load_before = machine_load()
    result = measure(cfg, data)
    result.update(environment=environment(), load_before=load_before, load_after=machine_load())
    out = Path("results/perf")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "precision.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    atomic_write(out / "precision.md", lambda tmp: tmp.write_text(markdown(result)))
    print(markdown(result))


if __name__ == "__main__":
    main()
