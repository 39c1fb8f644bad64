"""The HELM-style core: mean win rates by hand, the record on disk, the report's tables."""

import json

import pytest

from harness.helm import CORE, helm_record, mean_win_rates, read_helm, summary_lines, write_helm


def scores(acc: float, bpb: float | None, ece: float, worst: float, tps: float | None) -> dict:
    cells = {}
    for core in CORE:
        if core.lower_is_better:
            cells[core.name] = {"na": "no text distribution"} if bpb is None else {"value": bpb, "n": 4}
        else:
            cells[core.name] = {"value": acc, "n": 4, "ece": ece, **({"worst_case_acc": worst} if core.robustness else {})}
    return {"scenarios": cells, "agieval": {"lsat-ar": {"value": acc, "n": 2}},
            "efficiency": {"tokens_per_second": tps, "params": 1000}}


def test_mean_win_rate_is_the_share_of_others_beaten_per_column_averaged():
    models = {"a": scores(0.6, 1.0, 0.1, 0.5, 100.0), "b": scores(0.5, 2.0, 0.2, 0.5, 300.0),
              "c": scores(0.4, None, 0.3, 0.1, None)}
    rates = mean_win_rates(models)
    # accuracy: a beats both on every accuracy column and b on bits/byte (c has none there)
    assert rates["a"]["accuracy"] == pytest.approx(1.0)
    n_acc = sum(not c.lower_is_better for c in CORE)
    assert rates["b"]["accuracy"] == pytest.approx((n_acc * 0.5 + 0.0) / (n_acc + 1))
    assert rates["c"]["accuracy"] == pytest.approx(0.0)
    assert rates["a"]["calibration"] == pytest.approx(1.0) and rates["c"]["calibration"] == 0.0  # lower ECE wins
    assert rates["a"]["robustness"] == pytest.approx(0.75)  # ties with b count half, beats c
    assert rates["b"]["efficiency"] == 1.0 and rates["c"]["efficiency"] is None  # no throughput measured


def test_record_round_trips_without_nan_and_the_tables_show_units(tmp_path):
    models = {"a": scores(0.6, 1.0, float("nan"), 0.5, 100.0), "enc-dec": scores(0.25, None, 0.2, 0.2, 50.0)}
    models["enc-dec"]["agieval"] = {}
    path = write_helm(helm_record("smoke", models, limit=4, exam_limit=2), tmp_path)
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["models"]["a"]["scenarios"]["sst2"]["ece"] is None
    record = read_helm(tmp_path, "smoke")
    lines = "\n".join(summary_lines(record))
    assert "| a | 0.00M | 1.00 |" in lines  # ranked first, params in millions
    assert "60.0" in lines and "0.6 " not in lines  # accuracies as percentages
    assert "n/a" in lines  # the encoder-decoder's language-modelling cell
    agieval = lines.split("AGIEval, English")[1]
    assert "| a |" in agieval and "enc-dec" not in agieval  # only models with exam scores


def test_a_truncated_record_names_the_file_and_the_fix(tmp_path):
    path = write_helm(helm_record("smoke", {"a": scores(0.5, 1.0, 0.1, 0.4, 10.0)}, 4, 2), tmp_path)
    path.write_text(path.read_text()[:50])
    with pytest.raises(ValueError, match=r"smoke\.json.*repro helm --scale smoke"):
        read_helm(tmp_path, "smoke")
    assert read_helm(tmp_path, "cpu") is None
