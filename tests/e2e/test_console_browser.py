"""The member's console in a real browser: two members (alice, bank), each in their own console
and their own headless Chromium, against a real control plane and sim executors.

bank uploads a table through its console; alice proposes tabular-train on it (metrics to both,
the model to alice only), both approve after reading the review, alice runs it and watches the
progress, reads the ROC picture and downloads the metrics; bank sees the metrics but no
download for the model. A request without the launch token or the CSRF token is refused.
Screenshots of every screen go to build/console-screenshots/ (wide and narrow).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from teeflow.client.audit_verify import verify_audit_log
from teeflow.console.server import ConsoleServer

from ._browser import clean, require_chromium, screenshots, start_chromium, wait_for
from .conftest import MemberFactory

pytestmark = pytest.mark.slow


def _table(path: Path) -> Path:
    rng = np.random.RandomState(7)
    rows = ["id,income,debt,label"]
    for i in range(120):
        income, debt = rng.normal(50, 15), rng.normal(20, 8)
        label = int(income - debt + rng.normal(0, 10) > 30)
        rows.append(f"c{i},{income:.2f},{debt:.2f},{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


class Member:
    """One member's console and browser."""

    def __init__(self, client: Any, root: Path) -> None:
        self.client = client
        self.console = ConsoleServer(client).start()
        self.downloads = clean(root / "downloads")
        self.driver = start_chromium(clean(root / "profile"), self.downloads)
        self.driver.get(self.console.url)  # the printed URL: token -> cookie -> redirect

    def open(self, path: str) -> None:
        self.driver.get(self.console.base + path)

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def close(self) -> None:
        self.driver.quit()
        self.console.stop()


@pytest.fixture(scope="module")
def members(
    member: MemberFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Member]]:
    require_chromium()
    made: dict[str, Member] = {}
    try:
        for name in ("alice", "bank"):
            made[name] = Member(member(name), tmp_path_factory.mktemp(f"browser-{name}"))
        yield made
    finally:
        for one in made.values():
            one.close()


def _image_drawn(who: Member, css: str) -> bool:
    return bool(
        who.driver.execute_script(
            "const i = document.querySelector(arguments[0]);"
            "return !!i && i.complete && i.naturalWidth > 100;",
            css,
        )
    )


def test_two_members_propose_approve_run_and_read_results(
    members: dict[str, Member], tmp_path: Path
) -> None:
    alice, bank = members["alice"], members["bank"]

    # bank: check the table locally (preview), seal and upload it
    bank.open("/datasets")
    bank.find("#upload-file").send_keys(str(_table(tmp_path / "bank-credit.csv")))
    wait_for(lambda: bank.find("#preview-ok").is_displayed(), timeout=30, what="the preview")
    assert "120 rows" in bank.find("#preview-ok").text
    bank.find("#upload-name").send_keys("bank credit")
    bank.find("#upload-rows").click()
    bank.find("#upload-submit").click()
    dataset_id = wait_for(
        lambda: bank.find("#uploaded code").text, timeout=60, what="upload", driver=bank.driver
    )
    screenshots(bank.driver, "datasets")

    # alice: propose tabular-train from the generated form
    alice.open("/propose")
    screenshots(alice.driver, "propose-list")
    alice.find("#fn-tabular-train").click()
    alice.find("#input-slot-0").send_keys("bank")
    alice.find("#input-ds-0").send_keys(dataset_id)
    alice.find("#arg-label_column").send_keys("label")
    alice.find("#arg-id_column").send_keys("id")
    alice.find("#arg-epochs").send_keys("4")
    alice.find("#out-metrics").send_keys("alice,bank")
    alice.find("#out-model").send_keys("alice")
    alice.find("#disclose-progress").send_keys("alice,bank")
    screenshots(alice.driver, "propose-form")
    alice.find("#propose-submit").click()
    wait_for(
        lambda: "/tasks/" in alice.driver.current_url,
        timeout=30,
        what="the task page",
        driver=alice.driver,
    )
    task_id = alice.driver.current_url.rstrip("/").rsplit("/", 1)[1]
    assert alice.find("#simulated").is_displayed()
    alice.find("#action-approve").click()
    wait_for(
        lambda: not alice.all("#action-approve"),
        timeout=60,
        what="alice's approval",
        driver=alice.driver,
    )

    # bank: the task waits on its To do page; it reads the review and approves
    bank.open("/")
    link = bank.find(f"#todo-approve a[data-task='{task_id}']")
    screenshots(bank.driver, "todo")
    link.click()
    warnings = bank.find("#warnings").text
    assert "bank" in warnings or "alice" in warnings  # who gets what is computed from its data
    screenshots(bank.driver, "task-review")
    bank.find("#action-approve").click()
    wait_for(
        lambda: not bank.all("#action-approve"),
        timeout=60,
        what="bank's approval",
        driver=bank.driver,
    )

    # alice: run, watch the live progress, then the results
    alice.open(f"/tasks/{task_id}")
    alice.find("#action-run").click()
    wait_for(
        lambda: alice.all("#live-status"), timeout=30, what="live progress", driver=alice.driver
    )
    wait_for(
        lambda: alice.find("#progress-body").get_attribute("data-status") == "succeeded",
        what="the task to succeed",
        driver=alice.driver,
    )
    assert alice.find("#live-epoch").text == "4"
    wait_for(
        lambda: _image_drawn(alice, "#training-plot"),
        timeout=30,
        what="training curve",
        driver=alice.driver,
    )
    # the page reloads itself once the task ends: header, actions and receipt follow
    wait_for(
        lambda: alice.find("#task-status").text == "succeeded",
        timeout=30,
        what="the page to show the end state",
        driver=alice.driver,
    )
    assert alice.find("#receipt-ok").is_displayed() and not alice.all("#action-cancel")
    wait_for(lambda: _image_drawn(alice, "#training-plot"), timeout=30, what="training curve")
    screenshots(alice.driver, "task-done")
    alice.open(f"/tasks/{task_id}/results")
    wait_for(
        lambda: _image_drawn(alice, "#plot-metrics-roc"),
        timeout=30,
        what="ROC picture",
        driver=alice.driver,
    )
    assert _image_drawn(alice, "#plot-metrics-ks")
    assert float(alice.find("#metric-metrics-auc").text) > 0.5
    screenshots(alice.driver, "results")
    alice.find("#download-metrics").click()
    saved = wait_for(
        lambda: [p for p in alice.downloads.glob("*-metrics") if p.is_file()],
        timeout=30,
        what="the download",
    )
    metrics = json.loads(saved[0].read_bytes())
    assert metrics["function"] == "tabular-train" and len(metrics["test"]["roc"]["fpr"]) > 2

    # bank: metrics readable here too, but the model is not addressed to bank
    bank.open(f"/tasks/{task_id}/results")
    assert bank.all("#download-metrics")
    assert not bank.all("#download-model")
    assert bank.find("#not-for-model").is_displayed()
    bank.driver.execute_script("document.getElementById('output-model').scrollIntoView()")
    screenshots(bank.driver, "results-not-recipient")
    denied = bank.driver.execute_async_script(
        "fetch(arguments[0]).then(r => arguments[1](r.status));",
        f"/tasks/{task_id}/outputs/model",
    )
    assert denied == 403

    alice.open("/enclave")
    assert alice.find("#verdict-ok").is_displayed() and alice.find("#simulated").is_displayed()
    screenshots(alice.driver, "enclave")
    alice.open("/audit")
    assert alice.find("#audit-ok").is_displayed()
    screenshots(alice.driver, "audit")
    alice.find("#audit-export").click()
    exported = wait_for(
        lambda: list(alice.downloads.glob("*.jsonl")), timeout=30, what="the audit export"
    )
    events = [json.loads(line) for line in exported[0].read_text().splitlines()]
    report = verify_audit_log(events, policy=alice.client.policy())
    assert report.ok and report.receipts_verified >= 1, report.problem


def test_browser_requests_without_the_token_or_the_csrf_token_are_refused(
    members: dict[str, Member], tmp_path: Path
) -> None:
    alice = members["alice"]
    stranger = start_chromium(clean(tmp_path / "profile"), clean(tmp_path / "downloads"))
    try:
        stranger.get(alice.console.base + "/")
        refused_page = stranger.page_source
    finally:
        stranger.quit()
    alice.open("/audit")
    without_csrf = alice.driver.execute_async_script(
        "fetch('/audit/remember', {method: 'POST'}).then(r => arguments[0](r.status));"
    )
    with_csrf = alice.driver.execute_async_script(
        "const t = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];"
        "fetch('/audit/remember', {method: 'POST', headers: {'X-CSRF-Token': t}})"
        ".then(r => arguments[0](r.status));"
    )

    assert "403 refused" in refused_page and "teeflow console" in refused_page
    assert without_csrf == 403
    assert with_csrf == 200  # followed the redirect back to /audit
