"""Load: 100 members at once, 500 echo tasks through one control plane and two executors.

Each member is a thread with its own client: register, sign in, seal and upload a dataset, then
propose, approve and run five echo tasks (so hundreds wait in the queue at once), wait for each
and decrypt its output. Everything must finish before a deadline (a deadlock fails the test, it
does not hang it), no request may be answered with an error (every status code the clients got and
the control plane logged is counted), no log may show an unhandled exception or a lock error, and
the audit log must verify at the end, with a receipt for every task. Run on SQLite (the embedded
deployment) and on PostgreSQL when TEEFLOW_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import httpx
import pytest

from teeflow.client.audit_verify import verify_audit_log
from teeflow.server.launcher import LocalPlatform

from .conftest import access_log, new_member, server_errors, status_counts

MEMBERS = 100
TASKS_EACH = 5
DEADLINE_S = 900.0


class _Codes:
    """Status codes the members' clients received, counted across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[int] = Counter()
        self.errors: list[str] = []

    def __call__(self, response: httpx.Response) -> None:
        with self._lock:
            self.counts[response.status_code] += 1
            if response.status_code >= 400:
                self.errors.append(f"{response.request.method} {response.request.url.path}")


def _finish_race(method: str, path: str, status: int) -> bool:
    """A heartbeat that reached the control plane just after the same executor's finish had
    committed is answered 409 (the task no longer runs); the executor ignores it."""
    return method == "POST" and path.endswith("/heartbeat") and status == 409


def _member_flow(
    platform: LocalPlatform, home: Path, index: int, codes: _Codes
) -> tuple[list[str], dict[str, float]]:
    """One member's whole session; returns its task ids once every output checked out, and when
    (monotonic clock) it finished each phase."""
    name = f"m{index:03d}"
    marks = {"start": time.monotonic()}
    client = new_member(platform, home / name, name, on_response=codes)
    try:
        marks["signed in"] = time.monotonic()
        data = f"member {index} row\n".encode() * 10
        dataset = client.upload_dataset(data, name=f"{name}.csv", kind="table")
        marks["uploaded"] = time.monotonic()
        tasks = []
        for _ in range(TASKS_EACH):
            task = client.propose(
                "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": [name]}}
            )
            client.approve(task["id"])
            client.run(task["id"])
            tasks.append(str(task["id"]))
        marks["queued"] = time.monotonic()
        for task_id in tasks:
            done = client.wait(task_id, timeout=DEADLINE_S)
            assert done["status"] == "succeeded", done["failure_reason"]
            assert client.output(task_id, "data") == data
        marks["done"] = time.monotonic()
        return tasks, marks
    finally:
        client.close()


def _phases(marks: list[dict[str, float]], started: float) -> str:
    """When the last member finished each phase, in seconds from the start."""
    names = ["signed in", "uploaded", "queued", "done"]
    return ", ".join(f"{n} {max(m[n] for m in marks) - started:.0f} s" for n in names)


def _run_load(platform: LocalPlatform, home: Path) -> None:
    codes = _Codes()
    pool = ThreadPoolExecutor(max_workers=MEMBERS, thread_name_prefix="member")
    try:
        started = time.monotonic()
        futures = [pool.submit(_member_flow, platform, home, i, codes) for i in range(MEMBERS)]
        finished, stuck = wait(futures, timeout=DEADLINE_S)
        elapsed = time.monotonic() - started
        assert not stuck, f"{len(stuck)} members still busy after {DEADLINE_S:.0f} s (deadlock?)"
        results = [future.result() for future in finished]
        task_ids = [task for tasks, _ in results for task in tasks]
        phases = _phases([marks for _, marks in results], started)
    finally:
        # Members that are still blocked give up once the platform stops; nothing waits forever.
        pool.shutdown(wait=False, cancel_futures=True)

    assert len(set(task_ids)) == MEMBERS * TASKS_EACH
    assert codes.errors == [], Counter(codes.errors).most_common(10)
    served = status_counts(platform)
    assert [r for r in access_log(platform) if r[2] >= 400 and not _finish_race(*r)] == [], served
    assert server_errors(platform) == []
    with new_member(platform, home / "auditor", "auditor") as auditor:
        report = verify_audit_log(auditor.audit(), policy=auditor.policy())
    assert report.ok, report.problem
    assert {t for t, status in report.tasks.items() if status == "succeeded"} >= set(task_ids)
    print(
        f"{MEMBERS} members, {len(task_ids)} echo tasks: {elapsed:.1f} s, "
        f"{len(task_ids) / elapsed:.1f} tasks/s (last member {phases}); "
        f"members got {dict(sorted(codes.counts.items()))}, "
        f"server sent {dict(sorted(served.items()))}, audit entries {report.entries}"
    )


def _platform(data_dir: Path, env: dict[str, str]) -> LocalPlatform:
    return LocalPlatform(data_dir, executors=2, env={"TEEFLOW_LEASE_SECONDS": "15", **env})


@pytest.mark.stress
def test_load_on_sqlite(tmp_path: Path) -> None:
    with _platform(tmp_path / "platform", {}) as platform:
        _run_load(platform, tmp_path)


@pytest.mark.stress
@pytest.mark.postgres
def test_load_on_postgresql(tmp_path: Path, postgres_database_url: str) -> None:
    env = {"TEEFLOW_DATABASE_URL": postgres_database_url}
    with _platform(tmp_path / "platform", env) as platform:
        _run_load(platform, tmp_path)
