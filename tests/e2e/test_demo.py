"""`teeflow demo` end to end: real PaddlePaddle training on bundled data, and who saw what."""

from __future__ import annotations

from pathlib import Path

from teeflow.demo import run_demo


def _seen(report: dict, task_prefix: str, output: str) -> dict:
    return next(
        row
        for row in report["who_saw_what"]
        if row["task"].startswith(task_prefix) and row["output"] == output
    )


def test_demo_gives_each_party_only_what_the_contract_names(tmp_path: Path) -> None:
    report = run_demo(scenario="all", data_dir=tmp_path / "demo", say=lambda _m: None).to_dict()

    joint_model = _seen(report, "breast-cancer", "model")
    assert joint_model["readable_by"] == [] and joint_model["joint_owners"] == [
        "hospital-a",
        "hospital-b",
    ]
    assert _seen(report, "hospital-a scores", "predictions")["refused_to"] == ["hospital-b"]
    assert _seen(report, "PSI", "flags:bank")["readable_by"] == ["bank"]
    assert _seen(report, "PSI", "flags:bureau")["readable_by"] == ["bureau"]
    assert _seen(report, "credit model", "model")["refused_to"] == ["bureau"]
    assert _seen(report, "credit model", "metrics_public")["readable_by"] == ["bureau"]
    results = report["results"]
    assert results["medical_tabular"]["auc"] > 0.95
    assert results["medical_images"]["test_accuracy"] > 0.9
    assert 0.6 < results["credit"]["auc"] < 0.95
    # measured by hospital-a on its own held-back patients, against labels it never uploaded
    held_back = results["medical_predictions"]
    assert held_back["rows"] > 50
    assert held_back["auc"] > 0.95 and held_back["accuracy"] > 0.9
