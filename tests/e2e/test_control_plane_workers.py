"""Several control-plane processes on one PostgreSQL database: a long-poll held by one process is
woken by a write made through another (LISTEN/NOTIFY).

Every write (run, lease, finish) goes through process A, the only request in process B is the
long-poll, so nothing in B can wake it but a notification from A. Without a shared notifier it ends
by its timeout and returns the state it read before the write; the test reads what the poll
returned, never how long it took.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.launcher import LocalPlatform

from .conftest import PASSWORD, member_policy

CSV = b"id,amount\nu1,1\n"


def _member(platform: LocalPlatform, home: Path, name: str) -> Client:
    keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
    client = Client(platform.url, keys=keys, home=MemberHome(home), policy=member_policy(platform))
    client.register(name, PASSWORD)
    client.login(name, PASSWORD, remember=False)
    return client


@pytest.mark.postgres
def test_a_long_poll_in_one_process_is_woken_by_a_write_in_another(
    postgres_url: str, tmp_path: Path
) -> None:
    env = {"TEEFLOW_DATABASE_URL": postgres_url}
    with LocalPlatform(tmp_path / "platform", executors=1, env=env) as platform:
        other = platform.add_control_plane()  # process B; platform.url (and the executor's) is A
        creator = _member(platform, tmp_path / "creator", "creator")
        owner = _member(platform, tmp_path / "owner", "owner")
        try:
            dataset = owner.upload_dataset(CSV, name="tiny.csv", kind="table")
            task = creator.propose(
                "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["owner"]}}
            )
            creator.approve(task["id"])
            owner.approve(task["id"])
            token = creator.http.headers["Authorization"]

            def poll_in_b() -> dict[str, Any]:
                with httpx.Client(base_url=other, headers={"Authorization": token}) as b:
                    response = b.get(
                        f"/v1/tasks/{task['id']}",
                        params={"wait": 30, "status": "approved"},  # the longest allowed
                        timeout=120,
                    )
                    response.raise_for_status()
                    result: dict[str, Any] = response.json()
                    return result

            with ThreadPoolExecutor(1) as pool:
                poll = pool.submit(poll_in_b)
                time.sleep(1.0)  # only orders the two requests: B's poll reads before A's write
                creator.run(task["id"])  # the write, through A
                seen = poll.result()

            done = creator.wait(task["id"])
            plaintext = owner.output(task["id"], "data")
        finally:
            creator.close()
            owner.close()

    assert seen["status"] != "approved", "B's long-poll ended by timeout: A's write did not wake it"
    assert done["status"] == "succeeded", done.get("failure_reason")
    assert plaintext == CSV


def test_several_workers_on_sqlite_are_refused_with_what_to_do(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "teeflow.server", "--data-dir", str(tmp_path), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "TEEFLOW_DATABASE_URL"},
    )

    assert result.returncode == 2
    assert "TEEFLOW_DATABASE_URL" in result.stderr and "PostgreSQL" in result.stderr


@pytest.mark.postgres
def test_a_token_signed_out_through_one_process_is_refused_by_another_at_once(
    postgres_url: str, tmp_path: Path
) -> None:
    """Every control-plane process reads the token's state when a request comes, so a sign-out
    through A holds in B by the time A answers; a per-process token cache without cross-process
    revocation would let B serve the token it had seen before."""
    env = {"TEEFLOW_DATABASE_URL": postgres_url}
    with LocalPlatform(tmp_path / "platform", executors=0, env=env) as platform:
        other = platform.add_control_plane()
        member = _member(platform, tmp_path / "member", "member")
        try:
            token = member.http.headers["Authorization"]
            with httpx.Client(base_url=other, headers={"Authorization": token}) as b:
                seen_before = [b.get("/v1/users/me").status_code for _ in range(3)]
                member.http.delete("/v1/sessions").raise_for_status()  # sign out through A
                in_a = member.http.get("/v1/users/me")
                in_b = b.get("/v1/users/me")
        finally:
            member.close()

    assert seen_before == [200, 200, 200]
    assert in_a.status_code == 401
    assert in_b.status_code == 401, "B still accepts a token signed out through A"
    assert in_b.json()["error"]["code"] == "unauthorized"
