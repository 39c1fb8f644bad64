"""The `repro` command.

    repro presets            the papers' architectures with their computed parameter counts
    repro train CONFIG.yaml [--set key=value ...]   train (or load from the artifact cache)
    repro tune PRESET --tokens N [--lr ...]          sweep peak learning rate x warm-up (x batch size)
    repro tune --base NAME --scale S --tokens N      the same sweep for a shared base
    repro bases [--scale S] [NAME ...]               pre-train the shared bases (once) and check their targets
    repro generate RUN_DIR --prompt TEXT             sample from a trained model
    repro models [PATTERN]                           list the trained models in the artifact cache
    repro export RUN_DIR OUT                         write a run as its transformers twin (GPT-2, Llama, BERT, RoFormer, T5)
    repro eval MODEL --scenario NAME [--shots K]     score a model on a harness scenario
    repro scenarios [PATTERN]                        list the evaluation scenarios (e.g. 'glue', 'agieval/*:few')
    repro run PAPER|all      run reproductions (filled in by the paper modules)
    repro report             render results/REPORT.md
    repro stability PAPER --scale cpu                re-run on disjoint seeds; do the verdicts hold?
    repro recheck PAPER --scale cpu                  decide the claims again from stored metrics (no training)
    repro regress --baseline results/smoke           regression check against committed results
    repro regress --baseline results/smoke --update  re-run from an empty cache and make that the baseline
    repro regress --baseline results/smoke --update --papers gpt2 flan   ...only these papers' files

Errors a user can fix (unknown preset, bad config, missing data) print one line and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from repro.config import InputError
from repro.train import TrainingError


class UserError(Exception):
    """An error the user can fix; the CLI prints its message alone."""


def cmd_presets(args: argparse.Namespace) -> None:
    from repro.model import PRESETS, get_preset, preset_parameters

    try:
        presets = [get_preset(name) for name in (args.names or PRESETS)]
    except KeyError as e:
        raise UserError(e.args[0]) from None
    header = f"{'preset':<17} {'kind':<16} {'L':>3} {'d_model':>7} {'heads':>5} {'d_ff':>6} {'params':>10} {'as paper':>10} {'reported':>9} {'dev':>7}  source"
    print(header)
    print("-" * len(header))
    for p in presets:
        exact, as_paper = preset_parameters(p)
        c = p.config
        print(
            f"{p.name:<17} {c.kind:<16} {c.n_layer:>3} {c.d_model:>7} {c.n_head:>5} {c.d_ff:>6} "
            f"{_millions(exact):>10} {_millions(as_paper):>10} {_millions(p.reported_params):>9} "
            f"{(as_paper / p.reported_params - 1) * 100:>+6.1f}%  {p.source}"
        )
    print("\n'as paper': counted the way the paper counted (GPT-2 Table 2 used GPT-1's 40,478-token "
          "vocabulary and 512 context); 'params': our model exactly as configured.")


def cmd_scenarios(args: argparse.Namespace) -> None:
    import fnmatch

    from harness.scenarios import SCENARIOS
    from repro.data.tasks import get_task

    pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"
    names = [n for n in SCENARIOS if fnmatch.fnmatchcase(n, pattern)]
    if not names:
        raise UserError(f"no scenario matches {args.pattern!r}; `repro scenarios` lists all {len(SCENARIOS)}")
    print(f"{'scenario':<44} {'kind':<16} {'shots':>5}  metrics")
    for name in names:
        scenario = SCENARIOS[name]
        task = get_task(scenario.task)
        print(f"{name:<44} {task.kind:<16} {scenario.shots:>5}  {', '.join(task.metrics)}")
    print(f"\n{len(names)} of {len(SCENARIOS)} scenarios; score one with `repro eval RUN_DIR --scenario NAME`.")


def cmd_train(args: argparse.Namespace) -> None:
    from datasets.utils.logging import disable_progress_bar

    from repro.pipeline import load_run_config, train_run

    disable_progress_bar()  # the mirror's files are small; their bars would only bury errors

    overrides = list(args.set or [])
    if args.out_dir:
        overrides.append(f"out_dir={args.out_dir}")
    result = train_run(load_run_config(args.config, overrides))
    s = result.summary
    origin = "loaded from the artifact cache" if result.cached else "trained"
    print(f"{origin}: {result.out_dir}")
    print(f"  parameters {s['params']:,}  training tokens {s['train_tokens']:,}")
    if s.get("val_loss") is not None:
        print(f"  validation loss {s['val_loss']:.3f} nats/token (perplexity {s['val_ppl']:.1f}); "
              f"unigram baseline {s['unigram_val_loss']:.3f}")


# What `repro tune` trains when no config says otherwise: the GPT-2 sweep's book corpus, a 4k BPE
# vocabulary and 256-token windows, the shapes the cpu-scale decoders use.
TUNE_DATA = {"dataset": "books", "tokenizer": "bpe", "vocab_size": 4096, "block_size": 256, "max_chars": 20_000_000}


def cmd_tune(args: argparse.Namespace) -> None:
    from datasets.utils.logging import disable_progress_bar

    from repro.tune import TuneGrid, record_recipe, tune

    disable_progress_bar()
    if (args.preset is None) == (args.base is None):
        raise UserError("repro tune sweeps either a decoder PRESET or a shared base (--base NAME --scale S); "
                        "give exactly one")
    grid = TuneGrid(**{k: tuple(v) for k, v in {"lrs": args.lr, "warmup_fracs": args.warmup,
                                                "batch_sizes": args.batch_size, "seeds": args.seeds}.items() if v})
    n_runs = len(grid.lrs) * len(grid.warmup_fracs) * len(grid.batch_sizes) * len(grid.seeds)
    if args.base:
        from repro.bases import get_base, tune_base

        if args.config or args.set:
            raise UserError("--config and --set change a preset's run; a base's spec is in repro/bases.py")
        spec = get_base(_resolve_scale(args.scale), args.base)
        if not args.batch_size:  # the base's own batch, not the preset sweep's default
            grid = dataclasses.replace(grid, batch_sizes=(spec.batch_size,))
        print(f"tuning the shared base {spec.name} ({spec.family}) at {args.tokens:,} tokens per run: {n_runs} runs")
        result = tune_base(spec, args.tokens, grid)
        model = {"n_layer": spec.n_layer, "d_model": spec.d_model, "n_head": spec.n_head}
        data = {"mixture": "shared bases", "vocab_size": spec.vocab_size, "block_size": spec.block_size}
    else:
        from repro.pipeline import load_run_config

        base = {"name": args.name or f"tune-{args.preset}", "preset": args.preset, "data": dict(TUNE_DATA),
                "model": {"dropout": 0.0}}
        run = load_run_config(args.config, list(args.set or []), base=base)
        print(f"tuning {run.preset} ({run.name}) at {args.tokens:,} tokens per run: {n_runs} runs")
        result = tune(run, args.tokens, grid)
        model, data = run.model, dataclasses.asdict(run.data)
    print(("loaded from the artifact cache: " if result.cached else "swept: ") + str(result.out_dir))
    print(result.table())
    best = result.best
    print(f"chosen: peak lr {best.lr:g}, warm-up {best.warmup_steps} of {best.steps} steps ({best.warmup_frac:.0%}), "
          f"batch {best.batch_size}: held-out loss {best.mean_loss:.4f}")
    print(f"loss landscape: {result.plot_path}")
    if args.record:
        record_recipe(Path(args.recipes), args.record, result, model, data)
        print(f"recorded as {args.record!r} in {args.recipes}")


def cmd_bases(args: argparse.Namespace) -> None:
    from datasets.utils.logging import disable_progress_bar

    from repro.bases import bases_record, check_target, pretrain_bases, scale_bases

    disable_progress_bar()
    scale = _resolve_scale(args.scale)
    bases = pretrain_bases(scale, args.names or None, tuple(args.seeds), check=False)
    print(f"{'base':<24} {'seed':>4} {'params':>9} {'tokens':>11} {'held-out':>9} {'target':>7} {'unigram':>8}  dir")
    for b in bases:
        r = b.record
        print(f"{b.spec.name:<24} {b.seed:>4} {r['params']:>9,} {r['tokens']:>11,} {b.val_loss:>9.3f} "
              f"{b.target:>7.2f} {r['unigram_val_loss']:>8.3f}  {b.dir}{'' if b.reached else '  MISSED'}")
    record = bases_record(scale, bases)
    out = Path(args.root) / "bases" / f"{scale}.json"
    if args.record and args.names and out.exists():
        # a subset re-trained: its rows replace theirs, the other bases' rows are kept as recorded
        fresh = {(row["name"], row["seed"]) for row in record["bases"]}
        kept = [row for row in json.loads(out.read_text())["bases"] if (row["name"], row["seed"]) not in fresh]
        order = {name: i for i, name in enumerate(scale_bases(scale))}  # the table's order; unknown rows last
        record["bases"] = sorted(kept + record["bases"], key=lambda row: (order.get(row["name"], len(order)), row["seed"]))
    record["decoder_scaling"] = decoder_scaling(record["bases"])
    if record["decoder_scaling"]:
        fit = record["decoder_scaling"]
        print(f"decoders: L(N) = (N_c/N)^alpha_N with alpha_N = {fit['alpha_N']:.3f} (Kaplan et al. 0.076), "
              f"R^2 = {fit['r2']:.3f}, over non-embedding N = {fit['non_embedding_params']}")
    if args.record:
        from repro.train import atomic_write_text

        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(record, indent=1) + "\n")
        print(f"recorded in {out}")
    missed = [b for b in bases if not b.reached]
    if missed:
        check_target(missed[0])  # one line naming the first base that missed, and the fix


def decoder_scaling(rows: list[dict]) -> dict | None:
    """Kaplan's L(N) fitted over the decoder family's held-out losses (mean over seeds per size)."""
    from harness.metrics import power_law_fit
    from papers.gpt2 import KAPLAN_ALPHA_N

    by_size: dict[int, list[float]] = {}
    for row in rows:
        if row["family"] == "decoder" and row["non_embedding_params"]:
            by_size.setdefault(row["non_embedding_params"], []).append(row["val_loss"])
    if len(by_size) < 2:
        return None
    sizes = sorted(by_size)
    losses = [sum(by_size[n]) / len(by_size[n]) for n in sizes]
    alpha, n_c, r2 = power_law_fit(sizes, losses)
    return {"alpha_N": alpha, "N_c": n_c, "r2": r2, "kaplan_alpha_N": KAPLAN_ALPHA_N, "non_embedding_params": sizes,
            "val_loss": losses}


def cmd_helm(args: argparse.Namespace) -> None:
    """The HELM-style core (harness/helm.py) on the scale's shared bases and any --model DIR."""
    from datasets.utils.logging import disable_progress_bar
    from tqdm.auto import tqdm

    from harness.helm import CORE, helm_record, score_model, write_helm
    from harness.lm import ReproLM, load_lm
    from repro.bases import pretrain_bases, scale_bases

    disable_progress_bar()
    scale = _resolve_scale(args.scale)
    limit = args.limit or {"smoke": 16, "cpu": 300, "gpu": 1000}[scale]
    exam_limit = args.exam_limit or {"smoke": 8, "cpu": 100, "gpu": 300}[scale]
    models: list[tuple[str, object]] = []
    if not args.no_bases:
        # an MLM encoder has no left-to-right likelihood to score choices or text with: not in the core
        names = [n for n, spec in scale_bases(scale).items() if spec.family != "encoder"]
        for base in pretrain_bases(scale, names, tuple(args.seeds), check=False):
            model, tokenizer = base.load()
            label = f"base/{base.spec.name}" + (f"/s{base.seed}" if base.seed else "")
            models.append((label, ReproLM(model, tokenizer, batch_size=args.batch_size)))
    for spec in args.model or []:
        label, _, path = spec.rpartition("=")
        try:
            lm = load_lm(path, batch_size=args.batch_size)
        except FileNotFoundError as e:
            raise UserError(f"--model {spec}: {e}") from None
        models.append((label or Path(path).name, lm))
    models += _trained_models(args.trained or [], args.batch_size)
    if not models:
        raise UserError("nothing to score: drop --no-bases or name models with --model [LABEL=]DIR or --trained PATTERN")
    scores = {}
    bar = tqdm(total=len(models) * len(CORE), desc=f"HELM core ({scale})", unit="scenario")
    for label, lm in models:
        bar.set_postfix_str(label)
        scores[label] = score_model(lm, limit, exam_limit, progress=lambda _name: bar.update())
        scores[label]["params"] = getattr(lm, "num_parameters", None)
    bar.close()
    record = helm_record(scale, scores, limit, exam_limit)
    out = write_helm(record, args.root)
    for label in sorted(scores, key=lambda m: -(record["mean_win_rate"][m]["accuracy"] or 0)):
        rates = record["mean_win_rate"][label]
        print(f"  {label:<36} " + "  ".join(f"{g} {'–' if rates[g] is None else f'{rates[g]:.2f}'}" for g in rates))
    print(f"{len(scores)} models x {len(CORE)} core scenarios -> {out} (repro report renders it)")


def _trained_models(patterns: list[str], batch_size: int) -> list[tuple[str, object]]:
    """(label, LM) for each finished artifact in the cache whose name matches a glob in `patterns`
    (e.g. 'flan_*', 'instructgpt_*'): the tuned and aligned models a paper run kept. Encoders (no
    LM head) cannot score choices or text left to right and are skipped with a note."""
    import fnmatch

    from harness.lm import load_lm
    from repro.pipeline import artifacts_dir, list_artifacts

    found, cached = [], list_artifacts() if patterns else []
    for pattern in patterns:
        matched = [a for a in cached if fnmatch.fnmatchcase(a.dir.name, pattern)
                   or fnmatch.fnmatchcase(a.name, pattern)]
        usable = [a for a in matched if a.finished and a.has_tokenizer]
        if not usable:
            raise UserError(f"--trained {pattern!r}: no finished model with a tokenizer in {artifacts_dir()} matches "
                            f"({len(matched)} match without one); see `repro models`")
        for a in usable:
            try:
                lm = load_lm(a.dir, batch_size=batch_size)
            except TypeError:
                print(f"skipped {a.dir.name}: not a language model (an encoder has no left-to-right likelihood)")
                continue
            found.append((a.name + ("" if a.seed is None else f"/s{a.seed}"), lm))
    return found


def cmd_models(args: argparse.Namespace) -> None:
    import datetime
    import fnmatch

    from repro.pipeline import artifacts_dir, list_artifacts

    pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"
    found = [a for a in list_artifacts() if fnmatch.fnmatchcase(a.name, pattern)]
    if not found:
        print(f"no trained models matching {args.pattern!r} in {artifacts_dir()} (REPRO_ARTIFACTS sets the cache)")
        return
    print(f"{'model':<40} {'seed':>4} {'tokenizer':>9} {'finished':>8}  {'trained':<16} dir")
    for a in found:
        when = datetime.datetime.fromtimestamp(a.modified).strftime("%Y-%m-%d %H:%M")
        print(f"{a.name:<40} {'-' if a.seed is None else a.seed:>4} {'yes' if a.has_tokenizer else 'no':>9} "
              f"{'yes' if a.finished else 'no':>8}  {when:<16} {a.dir}")
    print(f"\n{len(found)} models; with a tokenizer: repro eval DIR --scenario NAME, repro generate DIR, "
          "repro export DIR OUT (GPT-2-shaped decoders)")


def cmd_export(args: argparse.Namespace) -> None:
    from repro.model.export import export_hf

    out = export_hf(args.run_dir, args.out)
    arch = json.loads((out / "config.json").read_text())["architectures"][0]
    auto = {"T5ForConditionalGeneration": "AutoModelForSeq2SeqLM", "BertForMaskedLM": "AutoModelForMaskedLM",
            "BertForPreTraining": "AutoModelForPreTraining"}.get(arch, "AutoModelForCausalLM")
    lm_eval = "" if "Bert" in arch else f" or lm_eval --model hf --model_args pretrained={out}"
    print(f"wrote {out} (transformers {arch} + tokenizer); load it with {auto}.from_pretrained('{out}'){lm_eval}")


def cmd_generate(args: argparse.Namespace) -> None:
    import torch

    from repro.generate import GenerationConfig, generate
    from repro.tokenizers import load_tokenizer
    from repro.train import load_checkpoint

    model, _ = load_checkpoint(args.checkpoint)
    run_dir = args.checkpoint if args.checkpoint.is_dir() else args.checkpoint.parent
    if not (run_dir / "tokenizer").exists():
        raise UserError(f"no tokenizer/ beside {args.checkpoint}; pass the run directory that repro train wrote")
    tok = load_tokenizer(run_dir / "tokenizer")
    config = GenerationConfig(
        max_new_tokens=args.max_new_tokens, method=args.method, temperature=args.temperature,
        top_k=args.top_k, top_p=args.top_p, num_beams=args.num_beams, eos_id=tok.eos_token_id,
        pad_id=tok.pad_token_id if tok.pad_token_id is not None else 0,
    )
    ids = torch.tensor([tok(args.prompt)["input_ids"]])
    generator = torch.Generator().manual_seed(args.seed)
    out = generate(model, ids, config=config, generator=generator)
    print(args.prompt + tok.decode(out[0].tolist(), skip_special_tokens=True))


def cmd_eval(args: argparse.Namespace) -> None:
    # The harness sits above the engine; the CLI is the one place that joins them.
    from harness.lm import load_lm
    from harness.scenarios import get_scenario, run_scenario

    overrides = {k: v for k, v in {"shots": args.shots, "limit": args.limit, "seed": args.seed}.items() if v is not None}
    if (args.scenario is None) == (args.file is None):
        raise UserError("name what to score: --scenario NAME (see repro scenarios) or --file ITEMS.jsonl, not both")
    name = args.scenario
    if args.file is not None:
        from harness.custom import register_file_task

        name = register_file_task(args.file)
        from repro.data.tasks import get_task

        if args.shots and get_task(name).exemplar_split is None:
            raise UserError(f"--shots {args.shots}: {args.file} has no exemplar lines; mark some with "
                            '"split": "train" (they are never scored)')
    try:
        scenario = get_scenario(name, **overrides)
    except KeyError as e:
        raise UserError(e.args[0]) from None
    lm = load_lm(args.model, batch_size=args.batch_size)
    result = run_scenario(lm, scenario)
    print(f"{lm.name} on {scenario.label} (n={result.n})")
    for name, metric in result.metrics.items():
        m = metric.to_dict() if hasattr(metric, "to_dict") else metric
        if isinstance(m, dict) and "value" in m:
            ci = f"  [{m['ci_low']:.4g}, {m['ci_high']:.4g}]" if m.get("ci_low") is not None else ""
            print(f"  {name:<18} {m['value']:.4g}{ci}")
    if args.output:
        from repro.train import atomic_write_text

        atomic_write_text(Path(args.output), json.dumps(result.to_dict(), indent=2, default=str))
        print(f"wrote {args.output}")


def cmd_run(args: argparse.Namespace) -> None:
    import papers

    registered = papers.discover()
    if not registered:
        print("repro run: no paper is registered yet; the engine and its tests are what exists so far.")
        return
    names = sorted(registered) if args.paper == "all" else [args.paper]
    try:
        selected = [papers.get_paper(n) for n in names]
    except KeyError as e:
        raise UserError(e.args[0]) from None
    from harness.runner import run_paper

    for paper in selected:
        run_paper(paper, _resolve_scale(args.scale), args.seeds)


def cmd_stability(args: argparse.Namespace) -> None:
    import papers
    from harness.stability import run_stability, stability_path

    try:
        paper = papers.get_paper(args.paper)
    except KeyError as e:
        raise UserError(e.args[0]) from None
    try:
        report = run_stability(paper, _resolve_scale(args.scale), args.root, args.seeds)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"{paper.name} @ {report['scale']}: seeds {report['first_seeds']} vs {report['second_seeds']}")
    for row in report["claims"]:
        mark = "agree" if row["agree"] else ("OPPOSITE" if row["opposite"] else "differ")
        print(f"  {row['id']:<8} {row['first']:<15} {row['second']:<15} {mark}")
    print(f"{report['agreeing']} of {report['total']} verdicts agree; goal (>= 90%, no opposite flip) "
          f"{'met' if report['goal']['met'] else 'not met'} -> {stability_path(args.root, paper.name)}")


def cmd_recheck(args: argparse.Namespace) -> None:
    import papers
    from harness.runner import recheck_paper

    try:
        paper = papers.get_paper(args.paper)
    except KeyError as e:
        raise UserError(e.args[0]) from None
    path, verdicts = recheck_paper(paper, _resolve_scale(args.scale), args.root)
    for claim_id, (before, now) in verdicts.items():
        print(f"  {claim_id:<8} {before:<15} -> {now:<15}{'' if before == now else '  changed'}")
    print(f"verdicts recomputed from the stored metrics -> {path}")


def cmd_open(args: argparse.Namespace) -> None:
    import papers
    from harness.open_claims import claim_needs, open_comparisons
    from harness.report import markdown_table
    from harness.results import latest_runs

    papers.discover()  # the papers declare their metrics' display units
    scale = _resolve_scale(args.scale)
    runs = latest_runs(args.root, scale)
    if not runs:
        raise UserError(f"no results under {Path(args.root) / scale}: run `repro run PAPER --scale {scale}` first")
    unknown = sorted(set(args.papers) - set(runs))
    if unknown:
        raise UserError(f"no {scale} results for {', '.join(unknown)}; there are: {', '.join(runs)}")
    for name in args.papers or list(runs):
        record = runs[name]
        needs = claim_needs(record)
        print(f"{name} @ {scale}: {len(needs)} of {len(record.claims)} claims open")
        if args.detail:
            for line in markdown_table([r.row() for r in open_comparisons(record)]):
                print("  " + line)
        else:
            for cid, n in needs.items():
                print(f"  {cid:<8} {n['needs']}")


def cmd_report(args: argparse.Namespace) -> None:
    import papers
    from harness.report import render, update_readme

    papers.discover()  # each paper declares the units of the keys it names by arm (harness.metrics.declare_percent)

    print(f"wrote {render(args.root)}")
    readme = Path(args.root).resolve().parent / "README.md"
    if update_readme(readme, args.root):
        print(f"updated the verdict table in {readme}")


def cmd_regress(args: argparse.Namespace) -> None:
    import tempfile

    import papers
    from harness.regress import compare_dirs
    from harness.results import read_results_json
    from harness.runner import run_paper

    baseline = Path(args.baseline)
    if not baseline.is_dir():
        raise UserError(f"baseline directory {baseline} does not exist; pass e.g. --baseline results/smoke")
    files = sorted(baseline.glob("*.json"))
    if args.papers:
        unknown = sorted(set(args.papers) - {path.stem for path in files})
        if unknown:
            raise UserError(f"{baseline} holds no baseline for {', '.join(unknown)}; it has "
                            f"{', '.join(path.stem for path in files) or 'none'}")
        files = [path for path in files if path.stem in args.papers]
    if not args.fresh and baseline.name not in papers.SCALES:
        raise UserError(f"baseline directory {baseline} is not named after a scale ({', '.join(papers.SCALES)}), so "
                        "there is no scale to re-run; pass e.g. --baseline results/smoke, or compare two directories "
                        "with --fresh DIR")
    if args.fresh:
        fresh = Path(args.fresh)
    else:  # re-run the smoke scale of every paper that has a baseline, into a scratch results root
        scratch = Path(tempfile.mkdtemp(prefix="repro-regress-"))
        scale = baseline.name
        # Train afresh: models cached by earlier code (the cache key hashes the engine, not the
        # paper modules) would hide exactly the regressions this check is for.
        cache = os.environ.get("REPRO_ARTIFACTS")
        os.environ["REPRO_ARTIFACTS"] = str(scratch / "artifacts")
        # Re-run at the baseline's precision: bf16 and fp32 round differently, and a machine
        # without native bf16 would otherwise resolve "auto" to fp32 and report moved scores.
        precision = os.environ.get("REPRO_PRECISION")
        recorded = baseline_precision(baseline)
        if recorded:
            os.environ["REPRO_PRECISION"] = recorded
        # One thread per training run, in this process and in every worker, whatever the machine's
        # cores or load: the thread count changes float summation order, and a smoke model's scores
        # move by more than the tolerance with it.
        threads = os.environ.get("REPRO_THREADS")
        os.environ["REPRO_THREADS"] = "1"
        try:
            for path in files:
                try:
                    # the baseline's own seeds: a verdict over three seeds is not one over one
                    seeds = read_results_json(path).get("seeds")
                    run_paper(papers.get_paper(path.stem), scale, seeds, root=scratch, quiet=True)
                except KeyError as e:
                    raise UserError(e.args[0]) from None
        finally:
            for name, before in (("REPRO_ARTIFACTS", cache), ("REPRO_PRECISION", precision), ("REPRO_THREADS", threads)):
                if before is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = before
        fresh = scratch / scale
    regressions = compare_dirs(baseline, fresh, rel_tol=args.rel_tol, papers=[path.stem for path in files])
    other = None if args.update else other_arithmetic(baseline, fresh)
    if other:
        # Numbers trained on other kernels drift by more than any tolerance (a smoke model's scores flip
        # with one rounding); what still holds across machines is that every paper runs, every metric is
        # there and no verdict changed. The moved numbers are listed, not failed.
        is_number = [r.what.startswith("metric ") and r.new != "missing" for r in regressions]
        moved = [r for r, number in zip(regressions, is_number) if number]
        regressions = [r for r, number in zip(regressions, is_number) if not number]
        print(f"the baseline was measured on other arithmetic ({other}): {len(moved)} moved number(s) not "
              "compared, listed here; verdicts, metrics and files still are", file=sys.stderr)
        for r in moved:
            print(f"  moved (other arithmetic) {r}", file=sys.stderr)
    if regressions and not args.update:
        for r in regressions:
            print(f"REGRESSION {r}", file=sys.stderr)
        if not args.fresh:
            print(f"the fresh results, models and figures are kept in {fresh.parent}", file=sys.stderr)
        raise SystemExit(1)
    if args.update:
        update_baseline(baseline, files, fresh, regressions)
    else:
        print(f"no regression: {len(files)} results files within tolerance of {baseline}")
    if not args.fresh:  # nothing left to look at: the scratch run (a few hundred MB of models) goes
        import shutil

        shutil.rmtree(fresh.parent, ignore_errors=True)


def recorded_environment(folder: Path, key: str) -> set:
    """The values of `environment[key]` over the results files in `folder` (None for files from
    before the key was recorded); an unreadable file is named with its fix."""
    found = set()
    for path in sorted(folder.glob("*.json")):
        try:
            found.add(json.loads(path.read_text()).get("environment", {}).get(key))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"results file {path} cannot be read ({e}); restore it with git checkout {path}") from None
    return found


def other_arithmetic(baseline: Path, fresh: Path) -> str | None:
    """Why the baseline's numbers cannot be compared number for number with the fresh run's (their
    machines' kernels differ, `repro.precision.arithmetic`; unknown for files from before it was
    recorded), or None when they can."""
    before, now = recorded_environment(baseline, "arithmetic"), recorded_environment(fresh, "arithmetic")
    if before == now and None not in before and len(before) == 1:
        return None
    return f"baseline {', '.join(sorted(map(str, before)))}; this run {', '.join(sorted(map(str, now)))}"


def baseline_precision(baseline: Path) -> str | None:
    """The precision the baseline's results were measured at (None for files from before it was
    recorded); baselines that disagree are a mistake worth one clear line."""
    found = recorded_environment(baseline, "precision") - {None}
    if len(found) > 1:
        raise UserError(f"the baseline files in {baseline} were measured at different precisions ({', '.join(sorted(found))}); "
                        "re-run them together with repro regress --update")
    return found.pop() if found else None


def update_baseline(baseline: Path, files: list[Path], fresh: Path, moved: list) -> None:
    """Make the fresh results (trained with an empty artifact cache, as the check trains) the new
    baseline: each results file and its figures replace the old ones, and what moved is listed so
    the commit that lands it can say why. A baseline written from a warm cache may hold models an
    older code version trained, which a clean CI run then fails to reproduce."""
    import shutil

    from repro.train import atomic_write_text

    for r in moved:
        print(f"updated {r}")
    for path in files:
        atomic_write_text(path, (fresh / path.name).read_text())
        for figure in sorted((fresh.parent / "figures").glob(f"{baseline.name}_{path.stem}*")):
            target = baseline.parent / "figures" / figure.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(figure, target)
    print(f"baseline {baseline} rewritten from {fresh}: {len(moved)} metric(s) or verdict(s) moved")


def _resolve_scale(scale: str) -> str:
    if scale != "auto":
        return scale
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def _millions(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="repro", description="Small-scale reproductions of Transformer → InstructGPT.")
    sub = parser.add_subparsers(dest="command", required=True)
    presets = sub.add_parser("presets", aliases=["list-presets"], help="list the paper presets with parameter counts")
    presets.add_argument("names", nargs="*", help="only these presets")
    presets.set_defaults(func=cmd_presets)
    train = sub.add_parser("train", help="train from a YAML run config (resumes if interrupted)")
    train.add_argument("config", type=Path, help="run config YAML (see repro/pipeline.py)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. train.lr=1e-3")
    train.add_argument("--out-dir", help="where to write the run (default: the artifact cache)")
    train.set_defaults(func=cmd_train)
    tune = sub.add_parser("tune", help="sweep peak learning rate x warm-up (x batch size) at a fixed token budget")
    tune.add_argument("preset", nargs="?", help="a decoder preset, e.g. gpt2_small (scale it down with --set model.n_layer=4 ...)")
    tune.add_argument("--base", help="tune a shared base of --scale instead (its spec in repro/bases.py), e.g. encoder")
    tune.add_argument("--scale", default="auto", choices=["auto", "smoke", "cpu", "gpu"], help="the scale of --base")
    tune.add_argument("--tokens", type=int, required=True, help="training tokens per run")
    tune.add_argument("--config", type=Path, help="a run config YAML to start from (default: books, 4k BPE, 256 context)")
    tune.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. model.d_model=192")
    tune.add_argument("--lr", type=float, nargs="+", help="peak learning rates (default 1e-3 ... 1.6e-2, x2 apart)")
    tune.add_argument("--warmup", type=float, nargs="+", help="warm-up fractions of the steps (default 0.02 0.1)")
    tune.add_argument("--batch-size", type=int, nargs="+", help="batch sizes (default 16)")
    tune.add_argument("--seeds", type=int, nargs="+", help="seeds per point (default 0)")
    tune.add_argument("--name", help="the sweep's name in the artifact cache (default tune-PRESET)")
    tune.add_argument("--record", metavar="KEY", help="keep the chosen point in the recipes file under KEY")
    tune.add_argument("--recipes", default="results/perf/recipes.json", help="the recipes file --record writes")
    tune.set_defaults(func=cmd_tune)
    scenarios = sub.add_parser("scenarios", help="list the evaluation scenarios (tasks x adaptation choices)")
    scenarios.add_argument("pattern", nargs="?", default="*", help="a substring or a glob (e.g. 'gpt3/*:fewshot')")
    scenarios.set_defaults(func=cmd_scenarios)
    bases = sub.add_parser("bases", help="pre-train the shared bases once (cached) and check each reached its target")
    bases.add_argument("names", nargs="*", help="only these bases (default: every base of the scale)")
    bases.add_argument("--scale", default="auto", choices=["auto", "smoke", "cpu", "gpu"])
    bases.add_argument("--seeds", type=int, nargs="+", default=[0])
    bases.add_argument("--record", action="store_true", help="keep the bases' records in ROOT/bases/SCALE.json "
                                                             "(the report draws their learning curves)")
    bases.add_argument("--root", default="results")
    bases.set_defaults(func=cmd_bases)
    helm = sub.add_parser("helm", help="score the scale's shared bases (and --model DIRs) on the HELM-style "
                                         "core: accuracy, calibration, robustness, efficiency, mean win rate")
    helm.add_argument("--scale", default="auto", choices=["auto", "smoke", "cpu", "gpu"])
    helm.add_argument("--model", action="append", metavar="[LABEL=]DIR",
                      help="also score this run or transformers directory (repeatable; see repro models)")
    helm.add_argument("--trained", action="append", metavar="PATTERN",
                      help="also score every finished model in the artifact cache whose name matches this glob "
                           "(repeatable; e.g. 'flan_*' for FLAN's tuned models, 'instructgpt_*' for SFT and PPO)")
    helm.add_argument("--no-bases", action="store_true", help="score only the --model and --trained models")
    helm.add_argument("--seeds", type=int, nargs="+", default=[0], help="the bases' pre-training seeds to score "
                                                                          "(so `repro run all --seeds ...` options also fit)")
    helm.add_argument("--limit", type=int, help="items per scenario (default smoke 16, cpu 300, gpu 1000)")
    helm.add_argument("--exam-limit", type=int, help="items per AGIEval exam (default smoke 8, cpu 100, gpu 300)")
    helm.add_argument("--batch-size", type=int, default=16)
    helm.add_argument("--root", default="results")
    helm.set_defaults(func=cmd_helm)
    models = sub.add_parser("models", help="list the trained models in the artifact cache")
    models.add_argument("pattern", nargs="?", default="*", help="a substring or glob of the name (e.g. 'base-')")
    models.set_defaults(func=cmd_models)
    export = sub.add_parser("export", help="write a trained run as a transformers model directory (GPT-2, Llama, BERT or T5 shaped)")
    export.add_argument("run_dir", type=Path, help="a run directory (checkpoint.pt + tokenizer/), e.g. a shared base")
    export.add_argument("out", type=Path, help="the transformers directory to write")
    export.add_argument("--format", choices=["hf"], default="hf", help="hf: transformers save_pretrained layout")
    export.set_defaults(func=cmd_export)
    gen = sub.add_parser("generate", help="generate text from a trained checkpoint")
    gen.add_argument("checkpoint", type=Path, help="run directory (or its checkpoint.pt)")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--max-new-tokens", type=int, default=100)
    gen.add_argument("--method", choices=["greedy", "sample", "beam"], default="sample")
    gen.add_argument("--temperature", type=float, default=0.8)
    gen.add_argument("--top-k", type=int, default=0)
    gen.add_argument("--top-p", type=float, default=0.95)
    gen.add_argument("--num-beams", type=int, default=4)
    gen.add_argument("--seed", type=int, default=0)
    gen.set_defaults(func=cmd_generate)
    ev = sub.add_parser("eval", help="score a repro run or a transformers model on a harness scenario")
    ev.add_argument("model", help="repro run directory, or a transformers model directory (prefix hf: to force)")
    ev.add_argument("--scenario", help="e.g. sst2, lambada, wikitext2_ppl, agieval/lsat-lr:few_shot")
    ev.add_argument("--file", type=Path, help="score your own multiple-choice items instead: JSONL, one "
                    '{"question", "choices", "label"[, "context", "split": "train"]} per line (harness/custom.py)')
    ev.add_argument("--shots", type=int, help="in-context exemplars (drawn from a split other than the evaluated one)")
    ev.add_argument("--limit", type=int, help="evaluate only the first N items (seeded order)")
    ev.add_argument("--seed", type=int, help="exemplar sampling seed")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--output", help="also write the full result (metrics, per-item records) as JSON")
    ev.set_defaults(func=cmd_eval)
    run = sub.add_parser("run", help="run a paper's reproduction (or 'all') at a scale")
    run.add_argument("paper", help="paper name, or 'all'")
    run.add_argument("--scale", default="auto", choices=["auto", "smoke", "cpu", "gpu"],
                     help="auto: gpu when CUDA is available, else cpu")
    run.add_argument("--seeds", type=int, nargs="+", default=None, help="override the paper's seeds")
    run.set_defaults(func=cmd_run)
    stability = sub.add_parser("stability", help="re-run a paper on disjoint seeds and compare every verdict")
    stability.add_argument("paper")
    stability.add_argument("--scale", default="auto", choices=["auto", "smoke", "cpu", "gpu"])
    stability.add_argument("--seeds", type=int, nargs="+", help="the second seed set (default: the next seeds "
                                                                  "after the committed run's)")
    stability.add_argument("--root", default="results")
    stability.set_defaults(func=cmd_stability)
    recheck = sub.add_parser("recheck", help="decide a recorded run's claims again from its stored metrics, under "
                                             "today's claim rules (nothing is trained)")
    recheck.add_argument("paper")
    recheck.add_argument("--scale", default="auto", choices=["auto", "smoke", "cpu", "gpu"])
    recheck.add_argument("--root", default="results")
    recheck.set_defaults(func=cmd_recheck)
    open_ = sub.add_parser("open", help="what would decide each open claim: a recipe change, test items or seeds "
                                        "(read from the stored intervals; nothing is trained)")
    open_.add_argument("papers", nargs="*", metavar="PAPER", help="default: every paper with results at the scale")
    open_.add_argument("--scale", default="auto", choices=["auto", "smoke", "cpu", "gpu"])
    open_.add_argument("--root", default="results")
    open_.add_argument("--detail", action="store_true", help="every inconclusive comparison, not one line per claim")
    open_.set_defaults(func=cmd_open)
    report = sub.add_parser("report", help="render results/REPORT.md and figures from the results files")
    report.add_argument("--root", default="results")
    report.set_defaults(func=cmd_report)
    regress = sub.add_parser("regress", help="fail when scores moved beyond tolerance from a baseline")
    regress.add_argument("--baseline", required=True, help="directory of baseline results, e.g. results/smoke")
    regress.add_argument("--fresh", help="directory of fresh results to compare (default: re-run the papers now)")
    regress.add_argument("--rel-tol", type=float, default=0.05, help="relative tolerance per metric")
    regress.add_argument("--update", action="store_true",
                         help="write the fresh results over the baseline (and its figures) instead of failing")
    regress.add_argument("--papers", nargs="+", metavar="PAPER",
                         help="only these papers' baseline files (default: every file in the baseline directory)")
    regress.set_defaults(func=cmd_regress)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        # Flush here, inside the handler: a small output sits in the buffer until exit, and a reader
        # that has already gone would otherwise fail the interpreter's own flush (exit status 120).
        sys.stdout.flush()
    except (UserError, InputError, TrainingError, FileNotFoundError, KeyError) as e:
        message = e.args[0] if e.args else str(e)
        print(f"repro: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`repro presets | head`): nothing is wrong. Point stdout at devnull so
        # the interpreter's own flush at exit does not raise the same error again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
