"""The path from a paper module to a results file, the report, and the regression check, on a toy
paper whose 'recipe' is two fixed classifiers (no training): the verdict must be computed from
its numbers, and `repro regress` must catch an injected regression and pass an unchanged run."""

import json
import shutil

import pytest

import papers
from harness.claims import Claim, greater, provided
from harness.metrics import MetricResult, accuracy
from harness.regress import compare_dirs
from harness.report import claim_card, render
from harness.results import read_run
from harness.runner import run_paper
from repro_cli.main import main


SEEDS = [0, 1, 2]


class ToyPaper(papers.Paper):
    name = "toy"
    reported_key = "transformer_vaswani2017"  # any real key: the reported numbers are only shown
    citation = "a test double"
    default_seeds = {"smoke": SEEDS}

    def __init__(self):
        self.calls = []

    def claims(self, scale):
        return [
            Claim("TOY-C1", "the strong system beats the weak one", "test", "toy",
                  greater("strong/toy/acc", "weak/toy/acc", delta=0.05), delta_source="a stated practical threshold"),
            Claim("TOY-C2", "the weak system beats the strong one", "test", "toy", greater("weak/toy/acc", "strong/toy/acc")),
            Claim("TOY-C3", "a metric nobody measured", "test", "toy", greater("missing/toy/acc", "weak/toy/acc")),
        ]

    def measure(self, scale, seeds):
        (seed,) = seeds  # the runner calls the recipe once per training seed
        self.calls.append(seeds)
        strong = [(i + seed) % 10 != 0 for i in range(200)]  # 90% correct, a different 10% per seed
        weak = [(i + seed) % 2 == 0 or (seed == 1 and i % 50 == 1) for i in range(200)]  # about 50%
        return papers.Measured(
            metrics={"strong/toy/acc": accuracy(strong), "weak/toy/acc": accuracy(weak), "missing/toy/acc": None,
                     "cost/toy/tokens_per_s": MetricResult.timing("tokens_per_s", 1000.0)},
            configs={"recipe": "fixed predictions", "scale": scale},
        )



@pytest.fixture
def toy(monkeypatch):
    paper = ToyPaper()
    monkeypatch.setitem(papers.PAPERS, "toy", paper)
    return paper


def test_run_writes_a_valid_file_with_computed_verdicts(tmp_path, toy):
    path = run_paper(toy, "smoke", SEEDS, root=tmp_path, quiet=True)
    assert toy.calls == [[0], [1], [2]]  # one call per seed: no seed is silently dropped
    record = read_run(path)  # validates against the JSON schema
    status = {c["id"]: c["status"] for c in record.claims}
    assert status == {"TOY-C1": "reproduced", "TOY-C2": "not reproduced", "TOY-C3": "inconclusive"}
    assert record.metrics["strong/toy/acc"]["value"] == pytest.approx(0.9)
    assert record.metrics["strong/toy/acc"]["extra"]["seeds"] == SEEDS and record.metrics["missing/toy/acc"] is None
    evidence = next(c for c in record.claims if c["id"] == "TOY-C1")["evidence"]
    assert "paired seeds" in evidence["method"]
    one = read_run(run_paper(toy, "smoke", [0], root=tmp_path / "one", quiet=True))
    assert {c["id"]: c["status"] for c in one.claims}["TOY-C1"] == "inconclusive"  # one seed never decides
    assert record.reported and record.git["sha"] and record.wall_time_s >= 0
    run_paper(toy, "smoke", SEEDS, root=tmp_path, quiet=True)  # a second run keeps the first in history
    assert len(list((tmp_path / "history").rglob("*.json.gz"))) == 1


def test_report_shows_claims_metrics_and_a_figure(tmp_path, toy):
    run_paper(toy, "smoke", [0], root=tmp_path, quiet=True)
    text = render(tmp_path).read_text()
    assert "TOY-C1" in text and "reproduced" in text and "not reproduced" in text
    assert "strong/toy/acc" in text
    assert "HELM-style" not in text  # the core table comes from results/helm/, never from paper metrics
    assert (tmp_path / "figures" / "smoke_toy_forest.png").stat().st_size > 1000


def test_report_writes_the_readme_verdict_table_between_its_markers_only(tmp_path, toy):
    from harness.report import README_BEGIN, README_END, update_readme

    root = tmp_path / "results"
    run_paper(toy, "cpu", SEEDS, root=root, quiet=True)
    readme = tmp_path / "README.md"
    readme.write_text(f"# intro\n\n{README_BEGIN}\nstale hand-written verdicts\n{README_END}\n\n## after\n")
    assert update_readme(readme, root)
    text = readme.read_text()
    assert "stale" not in text and text.startswith("# intro") and text.endswith("## after\n")
    assert "| toy | cpu | 1 | 1 | 1 | not run |" in text
    plain = tmp_path / "PLAIN.md"
    plain.write_text("no markers\n")
    assert not update_readme(plain, root) and plain.read_text() == "no markers\n"


def test_declared_figures_are_stored_and_drawn_from_the_results_file_alone(tmp_path, toy, monkeypatch):
    from harness.plots import Figure, Panel, Series

    figure = Figure("systems", "toy systems", (
        Panel("accuracy", kind="bars", series=(Series("acc", ("strong/toy/acc", "weak/toy/acc")),), reference=50),
        Panel("by strength", x=("weak", "strong"), series=(Series("acc", ("weak/toy/acc", "strong/toy/acc")),)),
        Panel("never measured", x=(1,), series=(Series("acc", ("missing/toy/acc",)),)),
    ))
    monkeypatch.setattr(toy, "plots", lambda scale: [figure], raising=False)
    path = run_paper(toy, "smoke", SEEDS, root=tmp_path, quiet=True)
    stored = json.loads(path.read_text())["extra"]["plots"]
    assert Figure.from_dict(stored[0]) == figure  # the declaration round-trips through JSON
    monkeypatch.setattr(toy, "plots", lambda scale: [], raising=False)  # the paper's code no longer matters
    text = render(tmp_path).read_text()
    out = tmp_path / "figures" / "smoke_toy_systems.png"
    assert out.stat().st_size > 1000 and "(figures/smoke_toy_systems.png)" in text


def test_regress_passes_an_unchanged_run_and_catches_an_injected_regression(tmp_path, toy, capsys):
    baseline = tmp_path / "baseline"
    run_paper(toy, "smoke", [0], root=baseline, quiet=True)
    assert main(["regress", "--baseline", str(baseline / "smoke")]) == 0  # re-runs the toy paper
    assert "no regression" in capsys.readouterr().out

    fresh = tmp_path / "fresh"
    shutil.copytree(baseline / "smoke", fresh)
    data = json.loads((fresh / "toy.json").read_text())
    data["metrics"]["strong/toy/acc"]["value"] = 0.6
    (fresh / "toy.json").write_text(json.dumps(data))
    regressions = compare_dirs(baseline / "smoke", fresh)
    assert len(regressions) == 1
    message = str(regressions[0])
    assert "strong/toy/acc" in message and "0.9" in message and "0.6" in message and "tolerance" in message
    with pytest.raises(SystemExit):
        main(["regress", "--baseline", str(baseline / "smoke"), "--fresh", str(fresh)])
    assert "REGRESSION toy: metric strong/toy/acc" in capsys.readouterr().err

    assert main(["regress", "--baseline", str(baseline / "smoke"), "--fresh", str(fresh), "--update"]) == 0
    assert "updated toy: metric strong/toy/acc" in capsys.readouterr().out
    assert read_run(baseline / "smoke" / "toy.json").metrics["strong/toy/acc"]["value"] == 0.6
    assert compare_dirs(baseline / "smoke", fresh) == []


def test_regress_lists_numbers_from_other_arithmetic_but_still_fails_a_lost_metric(tmp_path, toy, capsys):
    """A baseline trained on other kernels (another vector instruction set, emulated bf16) cannot be
    compared number for number: moved numbers are listed, not failed; a missing metric still fails,
    and so does a moved number when both machines agree."""
    baseline = tmp_path / "baseline"
    run_paper(toy, "smoke", [0], root=baseline, quiet=True)
    assert read_run(baseline / "smoke" / "toy.json").environment["arithmetic"].startswith(("cpu: ", "cuda: "))
    fresh = tmp_path / "fresh"
    shutil.copytree(baseline / "smoke", fresh)
    data = json.loads((fresh / "toy.json").read_text())
    data["metrics"]["strong/toy/acc"]["value"] = 0.6
    (fresh / "toy.json").write_text(json.dumps(data))
    with pytest.raises(SystemExit):  # the same arithmetic on both sides: a moved number fails
        main(["regress", "--baseline", str(baseline / "smoke"), "--fresh", str(fresh)])
    capsys.readouterr()
    data["environment"]["arithmetic"] = "cpu: another machine"
    (fresh / "toy.json").write_text(json.dumps(data))
    assert main(["regress", "--baseline", str(baseline / "smoke"), "--fresh", str(fresh)]) == 0
    err = capsys.readouterr().err
    assert "other arithmetic" in err and "moved (other arithmetic) toy: metric strong/toy/acc" in err
    del data["metrics"]["weak/toy/acc"]
    (fresh / "toy.json").write_text(json.dumps(data))
    with pytest.raises(SystemExit):
        main(["regress", "--baseline", str(baseline / "smoke"), "--fresh", str(fresh)])
    assert "REGRESSION toy: metric weak/toy/acc moved from present to missing" in capsys.readouterr().err


def test_regress_ignores_how_fast_the_machine_was_but_not_a_lost_timing(tmp_path, toy):
    baseline = tmp_path / "baseline"
    run_paper(toy, "smoke", [0], root=baseline, quiet=True)
    fresh = tmp_path / "fresh"
    shutil.copytree(baseline / "smoke", fresh)
    data = json.loads((fresh / "toy.json").read_text())
    data["metrics"]["cost/toy/tokens_per_s"]["value"] = 3000.0  # a faster runner is not a regression
    (fresh / "toy.json").write_text(json.dumps(data))
    assert compare_dirs(baseline / "smoke", fresh) == []
    del data["metrics"]["cost/toy/tokens_per_s"]
    (fresh / "toy.json").write_text(json.dumps(data))
    assert [r.what for r in compare_dirs(baseline / "smoke", fresh)] == ["metric cost/toy/tokens_per_s"]


def test_regress_trains_afresh_instead_of_loading_cached_models(tmp_path, toy, monkeypatch):
    """A model cached by older paper code must not stand in for a fresh smoke run."""
    from repro.pipeline import artifacts_dir

    baseline = tmp_path / "baseline"
    run_paper(toy, "smoke", [0], root=baseline, quiet=True)
    stale = tmp_path / "stale-cache"
    monkeypatch.setenv("REPRO_ARTIFACTS", str(stale))
    seen = []
    measure = toy.measure
    monkeypatch.setattr(toy, "measure", lambda scale, seeds: (seen.append(artifacts_dir()), measure(scale, seeds))[1])
    assert main(["regress", "--baseline", str(baseline / "smoke")]) == 0
    assert len(seen) == 1 and seen[0] != stale and not seen[0].exists()
    assert not seen[0].parent.exists()  # a passing check leaves no scratch run behind
    assert artifacts_dir() == stale  # the caller's setting is back afterwards


def test_stability_reruns_on_disjoint_seeds_and_records_each_verdicts_agreement(tmp_path, toy, capsys):
    from harness.stability import compare_verdicts, disjoint_seeds, read_stability

    run_paper(toy, "smoke", SEEDS, root=tmp_path, quiet=True)
    toy.calls.clear()
    assert main(["stability", "toy", "--scale", "smoke", "--root", str(tmp_path)]) == 0
    assert toy.calls == [[3], [4], [5]]  # disjoint from the committed 0, 1, 2
    report = read_stability(tmp_path, "toy")
    assert report["first_seeds"] == SEEDS and report["second_seeds"] == [3, 4, 5] and report["total"] == 3
    second = tmp_path / report["second_results"]  # kept in the results root, named relative to it
    assert report["second_results"] == "stability/runs/smoke/toy.json" and json.loads(second.read_text())["seeds"] == [3, 4, 5]
    assert "verdicts agree" in capsys.readouterr().out
    assert disjoint_seeds([0, 1, 2]) == [3, 4, 5]
    flip = compare_verdicts({"paper": "x", "scale": "cpu", "seeds": [0], "claims": [{"id": "A", "status": "reproduced"}]},
                            {"paper": "x", "scale": "cpu", "seeds": [1], "claims": [{"id": "A", "status": "not reproduced"}]})
    assert flip["opposite_flips"] == ["A"] and not flip["goal"]["met"]
    assert main(["stability", "toy", "--scale", "smoke", "--root", str(tmp_path), "--seeds", "1", "7"]) == 2
    assert "disjoint" in capsys.readouterr().err


def test_the_report_opens_with_the_verdict_table_and_shows_claim_cards(tmp_path, toy):
    run_paper(toy, "cpu", SEEDS, root=tmp_path, quiet=True)
    run_paper(toy, "smoke", [0], root=tmp_path, quiet=True)
    assert main(["stability", "toy", "--scale", "cpu", "--root", str(tmp_path)]) == 0
    text = render(tmp_path).read_text()
    summary = text.index("## Verdicts")
    assert summary < text.index("## Scale: cpu") < text.index("## Appendix: smoke scale")
    assert "| toy | cpu | 1 | 1 | 1 | 3 of 3 |" in text and "| toy | smoke | 0 | 0 | 3 | not run |" in text
    card = text[text.index("#### TOY-C1"):text.index("#### TOY-C2")]
    # accuracies in percent, as papers print them: δ 0.05 and the 0.4 difference read as points
    assert "δ (minimum effect of interest, stated before the run): 5 — a stated practical threshold" in card
    assert "effect strong/toy/acc − weak/toy/acc: 40" in card and "paired seeds" in card
    assert "| strong/toy/acc | 90 |" in text
    assert "seeds: 0, 1, 2" in card and "stability: held on seeds 3, 4, 5" in card
    assert "Re-run on seeds [3, 4, 5] ([their results file](stability/runs/cpu/toy.json))" in text
    assert (tmp_path / "stability/runs/cpu/toy.json").is_file()  # the link resolves from REPORT.md's folder
    smoke_card = text[text.rindex("#### TOY-C1"):]
    assert "one training seed" in smoke_card and "power:" in smoke_card
    # the recipe re-run since: the comparison is of the earlier run, so it is stale, never "held"
    run_paper(toy, "cpu", SEEDS, root=tmp_path, quiet=True)
    text = render(tmp_path).read_text()
    assert "| toy | cpu | 1 | 1 | 1 | stale |" in text and "stability: held" not in text
    assert "Seed-set stability: stale: results/stability/toy.json compares an earlier run" in text


def test_a_claim_card_shows_the_validity_condition_it_was_gated_on():
    """A reader sees what a verdict was read under: the condition's comparison and whether it held."""
    claim = Claim("X-C1", "a beats b (read once a beats the floor)", "Table 1", "toy",
                  provided(greater("a", "floor"), greater("a", "b", delta=0.01)), delta_source="a stated threshold")
    m = {"a": MetricResult("acc", 0.8, 500, 0.76, 0.84), "b": MetricResult("acc", 0.6, 500, 0.56, 0.64),
         "floor": MetricResult("acc", 0.5, 500, 0.46, 0.54)}
    card = "\n".join(claim_card(claim.record(m), [0], None))
    assert "validity condition (holds) a − floor: 0.3 [0.22, 0.38]" in card and "effect a − b: 0.2 [0.12, 0.28]" in card
    m["floor"] = MetricResult("acc", 0.8, 500, 0.76, 0.84)
    assert "validity condition (does not hold) a − floor: 0 [-0.08, 0.08]" in "\n".join(claim_card(claim.record(m), [0], None))


def test_figures_are_recorded_relative_to_the_results_root(tmp_path, toy, monkeypatch):
    def measure_with_a_figure(scale, seeds):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        measured = ToyPaper.measure(toy, scale, seeds)
        measured.figures = [str(toy.save_figure(plt.figure(), "smoke_toy_curve.png"))]
        return measured

    monkeypatch.setattr(toy, "measure", measure_with_a_figure)
    record = read_run(run_paper(toy, "smoke", [0], root=tmp_path / "scratch", quiet=True))
    assert record.figures == ["figures/smoke_toy_curve.png"]  # not a path into the scratch root
    assert "](figures/smoke_toy_curve.png)" in render(tmp_path / "scratch").read_text()


def test_regress_can_be_limited_to_named_papers(tmp_path, toy, capsys):
    baseline = tmp_path / "baseline"
    run_paper(toy, "smoke", [0], root=baseline, quiet=True)
    other = json.loads((baseline / "smoke" / "toy.json").read_text())
    other["paper"] = "other"
    (baseline / "smoke" / "other.json").write_text(json.dumps(other))  # no fresh run of it will exist
    fresh = tmp_path / "fresh"
    shutil.copytree(baseline / "smoke", fresh)
    (fresh / "other.json").unlink()
    assert [r.paper for r in compare_dirs(baseline / "smoke", fresh)] == ["other"]
    assert compare_dirs(baseline / "smoke", fresh, papers=["toy"]) == []
    assert main(["regress", "--baseline", str(baseline / "smoke"), "--fresh", str(fresh), "--papers", "toy"]) == 0
    assert "1 results files" in capsys.readouterr().out
    assert main(["regress", "--baseline", str(baseline / "smoke"), "--papers", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no baseline for nope" in err and "toy" in err


def test_recheck_decides_again_from_stored_metrics_without_measuring(tmp_path, toy, capsys):
    path = run_paper(toy, "smoke", SEEDS, root=tmp_path, quiet=True)
    calls = len(toy.calls)
    data = json.loads(path.read_text())
    fresh = json.loads(json.dumps(data["metrics"]))
    for claim in data["claims"]:
        claim["status"] = "inconclusive"  # as if decided under older rules
    data["metrics"]["strong/toy/acc"]["ci_low"] = 0.0  # an interval from older rules, recomputed by recheck
    path.write_text(json.dumps(data))
    assert main(["recheck", "toy", "--scale", "smoke", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "TOY-C1   inconclusive    -> reproduced" in out and "changed" in out
    record = read_run(path)
    assert len(toy.calls) == calls  # nothing was measured again
    assert {c["id"]: c["status"] for c in record.claims}["TOY-C1"] == "reproduced"
    assert record.metrics == fresh and record.extra["verdicts_rechecked"]["git"]  # merged again: as measured
    assert len(list((tmp_path / "history").rglob("*.json.gz"))) == 1  # the older verdicts are kept
    assert main(["recheck", "toy", "--scale", "smoke", "--root", str(tmp_path / "none")]) == 2
    assert "repro run toy --scale smoke" in capsys.readouterr().err


def test_open_lists_what_would_decide_each_open_claim_and_refuses_an_unknown_paper(tmp_path, toy, capsys):
    run_paper(toy, "smoke", SEEDS, root=tmp_path, quiet=True)
    calls = len(toy.calls)
    assert main(["open", "toy", "--scale", "smoke", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    # TOY-C1 is reproduced and TOY-C2 refuted: only TOY-C3, whose metric was never measured, is open
    assert "toy @ smoke: 1 of 3 claims open" in out and "TOY-C3" in out and "TOY-C1" not in out
    assert main(["open", "--scale", "smoke", "--root", str(tmp_path), "--detail"]) == 0
    assert "| TOY-C3 |" in capsys.readouterr().out
    assert len(toy.calls) == calls  # read from the file: nothing measured
    assert main(["open", "nope", "--scale", "smoke", "--root", str(tmp_path)]) == 2
    assert "no smoke results for nope" in capsys.readouterr().err
    assert main(["open", "--scale", "smoke", "--root", str(tmp_path / "none")]) == 2
    assert "repro run PAPER --scale smoke" in capsys.readouterr().err


def test_remerged_keeps_a_metric_with_a_non_finite_seed_as_it_is():
    from harness.metrics import MetricResult
    from harness.runner import remerged

    stored = MetricResult("bleu", float("nan"), 10, None, None, {"seeds": [0, 1], "per_seed": [1.0, None]})
    assert remerged(stored) is stored


def test_recheck_refuses_a_run_older_than_the_claims(tmp_path, toy, capsys):
    path = run_paper(toy, "smoke", [0], root=tmp_path, quiet=True)
    data = json.loads(path.read_text())
    del data["metrics"]["strong/toy/acc"]  # measured before a claim began to read it
    path.write_text(json.dumps(data))
    assert main(["recheck", "toy", "--scale", "smoke", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "strong/toy/acc" in err and "repro run toy --scale smoke" in err
