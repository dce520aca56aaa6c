"""``teeflow task report``: the pictures of a task's metrics for a member without the console,
from the command line only (each member its own $TEEFLOW_HOME), against a real local platform."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from test_platform_cli import PASSWORD_ENV, Member, one_line_error

from teeflow.server.launcher import LocalPlatform

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    with LocalPlatform(tmp_path_factory.mktemp("platform"), executors=1) as running:
        yield running


@pytest.fixture(scope="module")
def trained(platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """bank's table, tabular-train proposed by alice: metrics to alice only, progress to both."""
    members = {}
    for name in ("alice", "bank"):
        member = Member(name, tmp_path_factory.mktemp(f"home-{name}"))
        member.ok("keys", "init")
        member.ok(
            "account", "register", "--server", platform.url, name, "--password-env", PASSWORD_ENV
        )
        member.ok("attest", "trust", "--simulated", "--data-dir", str(platform.data_dir))
        members[name] = member
    rng = np.random.RandomState(3)
    table = tmp_path_factory.mktemp("data") / "credit.csv"
    lines = ["id,income,label"]
    for i in range(80):
        income = rng.normal(50, 15)
        lines.append(f"r{i},{income:.2f},{int(income + rng.normal(0, 12) > 50)}")
    table.write_text("\n".join(lines) + "\n")
    dataset = members["bank"].json(
        "dataset", "upload", str(table), "--name", "credit", "--kind", "table"
    )
    task = members["alice"].json(
        "task", "propose", "tabular-train", "--input", f"bank={dataset['id']}",
        "--arg", "label_column=label", "--arg", "id_column=id", "--arg", "epochs=3",
        "--output", "metrics=alice", "--disclose", "progress=alice,bank",
    )  # fmt: skip
    for member in members.values():
        member.ok("task", "approve", task["id"], "--yes")
    members["alice"].ok("task", "run", task["id"])
    members["alice"].ok("task", "wait", task["id"], "--timeout", "180")
    return {"members": members, "task": task["id"]}


def test_report_draws_roc_ks_confusion_and_training_as_html_and_png(
    trained: dict[str, object], tmp_path: Path
) -> None:
    alice = trained["members"]["alice"]  # type: ignore[index]
    out, pngs = tmp_path / "report.html", tmp_path / "png"

    alice.ok("task", "report", str(trained["task"]), "--out", str(out), "--png-dir", str(pngs))

    page = out.read_text()
    assert "<script" not in page and page.count("<svg") >= 4
    for title in ("ROC curve", "KS curve", "Confusion matrix", "Training curves"):
        assert f"<figcaption>{title}</figcaption>" in page
    assert re.search(r"<th>auc</th><td>0\.\d+</td>", page)
    names = sorted(p.name for p in pngs.iterdir())
    assert {"metrics-roc.png", "metrics-ks.png", "metrics-confusion.png"} <= set(names)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pngs.iterdir())


def test_a_member_without_metrics_gets_only_the_training_curve_or_an_error(
    trained: dict[str, object], tmp_path: Path
) -> None:
    bank = trained["members"]["bank"]  # type: ignore[index]
    out = tmp_path / "bank.html"

    bank.ok("task", "report", str(trained["task"]), "--out", str(out))
    nothing = bank("task", "report", str(trained["task"]))

    page = out.read_text()
    assert "Training curves" in page and "ROC curve" not in page  # metrics are alice's only
    assert "--out" in one_line_error(nothing)


def test_console_command_serves_the_member_at_the_url_it_prints(
    trained: dict[str, object],
) -> None:
    alice = trained["members"]["alice"]  # type: ignore[index]
    command = [sys.executable, "-m", "teeflow.cli.main", "console"]
    env = {**os.environ, "TEEFLOW_HOME": str(alice.home)}
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as run:
        try:
            lines = [run.stdout.readline().decode() for _ in range(3)] if run.stdout else []
            url = next(line.strip() for line in lines if "?token=" in line)
            with httpx.Client(follow_redirects=True, timeout=30) as browser:
                todo = browser.get(url)
                results = browser.get(url.split("?")[0] + f"tasks/{trained['task']}/results")
                stranger = httpx.get(url.split("?")[0], timeout=30)
        finally:
            run.send_signal(signal.SIGINT)
            run.communicate(timeout=30)

    assert url.startswith("http://127.0.0.1:")
    assert todo.status_code == 200 and 'signed in as <b id="me">alice</b>' in todo.text
    assert results.status_code == 200 and 'id="plot-metrics-roc"' in results.text
    assert stranger.status_code == 403
