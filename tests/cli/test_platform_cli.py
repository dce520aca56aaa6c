"""The member's whole path through the ``teeflow`` command only, against one real local platform.

alice proposes ``private-join-sum`` over bank's and shop's tables; alice and bank receive the
result, shop does not. Each member has its own $TEEFLOW_HOME.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from teeflow.cli.main import app
from teeflow.crypto import b64d, b64e
from teeflow.server.launcher import LocalPlatform, free_port

PASSWORD_ENV = "TEEFLOW_TEST_PASSWORD"
EXPECTED = b"id,amount\nu2,25\nu3,37\n"


class Member:
    def __init__(self, name: str, home: Path) -> None:
        self.name, self.home = name, home

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Result:
        environment = {"TEEFLOW_HOME": str(self.home), PASSWORD_ENV: f"pw-{self.name}-123456"}
        return CliRunner().invoke(app, list(args), env={**environment, **(env or {})})

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Result:
        result = self(*args, env=env)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json").stdout)


def one_line_error(result: Result) -> str:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    return lines[-1]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    with LocalPlatform(tmp_path_factory.mktemp("platform"), executors=1) as running:
        yield running


@pytest.fixture(scope="module")
def members(platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Member]:
    made = {}
    for name in ("alice", "bank", "shop"):
        member = Member(name, tmp_path_factory.mktemp(f"home-{name}"))
        member.ok("keys", "init")
        member.ok(
            "account", "register", "--server", platform.url, name, "--password-env", PASSWORD_ENV
        )
        member.ok("attest", "trust", "--simulated", "--data-dir", str(platform.data_dir))
        made[name] = member
    return made


def _upload(member: Member, tmp: Path, rows: str) -> str:
    path = tmp / f"{member.name}.csv"
    path.write_text(f"id,amount\n{rows}")
    record = member.json("dataset", "upload", str(path), "--name", path.name, "--kind", "table")
    return str(record["id"])


@pytest.fixture(scope="module")
def proposed(members: dict[str, Member], tmp_path_factory: pytest.TempPathFactory) -> str:
    alice, bank, shop = members["alice"], members["bank"], members["shop"]
    tmp = tmp_path_factory.mktemp("data")
    bank_ds = _upload(bank, tmp, "u1,10\nu2,20\nu3,30\n")
    shop_ds = _upload(shop, tmp, "u2,5\nu3,7\nu9,1\n")
    task = alice.json(
        "task", "propose", "private-join-sum",
        "--input", f"bank={bank_ds}", "--input", f"shop={shop_ds}",
        "--output", "result=alice,bank", "--arg", "id_column=id",
        "--disclose", "progress=alice", "--disclose", "errors=alice",
    )  # fmt: skip
    return str(task["id"])


@pytest.fixture(scope="module")
def finished(members: dict[str, Member], proposed: str) -> str:
    for member in members.values():
        member.ok("task", "approve", proposed, "--yes")
    members["alice"].ok("task", "run", proposed)
    members["alice"].ok("task", "wait", proposed, "--timeout", "120")
    return proposed


def test_show_renders_the_contract_with_warnings(members: dict[str, Member], proposed: str) -> None:
    shown = members["shop"].ok("task", "show", proposed).stdout

    assert "private-join-sum" in shown and "SIMULATED" in shown
    assert "readable by alice, bank" in shown and "key fingerprint" in shown
    assert (
        "warning: your input 'shop' reaches alice, bank through output 'result' "
        "(readable by alice, bank)" in shown
    )


def test_show_json_carries_the_review(members: dict[str, Member], proposed: str) -> None:
    shown = members["bank"].json("task", "show", proposed)

    assert shown["id"] == proposed and shown["review_error"] is None
    assert any("SIMULATED" in w for w in shown["warnings"])


def test_approve_refuses_without_confirmation(members: dict[str, Member], proposed: str) -> None:
    result = members["bank"]("task", "approve", proposed)

    assert "--yes" in one_line_error(result)


def test_recipients_get_the_joined_sums(
    members: dict[str, Member], finished: str, tmp_path: Path
) -> None:
    for name in ("alice", "bank"):
        out = tmp_path / f"{name}.csv"
        result = members[name].json("task", "output", finished, "result", "--out", str(out))
        assert out.read_bytes() == EXPECTED and result["size"] == len(EXPECTED)


def test_a_non_recipient_gets_a_one_line_error(
    members: dict[str, Member], finished: str, tmp_path: Path
) -> None:
    out = tmp_path / "shop.csv"

    result = members["shop"]("task", "output", finished, "result", "--out", str(out))

    assert "403" in one_line_error(result) and not out.exists()


def test_receipt_and_wait_json(members: dict[str, Member], finished: str) -> None:
    receipt = members["bank"].json("task", "receipt", finished)
    waited = members["alice"].json("task", "wait", finished)

    assert receipt["verified"] and receipt["body"]["task_id"] == finished
    assert receipt["body"]["simulated"] is True and receipt["body"]["status"] == "succeeded"
    assert waited["status"] == "succeeded" and waited["errors"] == []


def test_listings_are_json(members: dict[str, Member], finished: str) -> None:
    alice = members["alice"]

    assert alice.json("account", "whoami")["username"] == "alice"
    assert any(f["name"] == "private-join-sum" for f in alice.json("function", "list"))
    assert [d["name"] for d in members["bank"].json("dataset", "list")] == ["bank.csv"]
    assert finished in [t["id"] for t in alice.json("task", "list")]
    assert alice.json("attest", "enclave")["simulated"] is True


@pytest.fixture(scope="module")
def exported(
    members: dict[str, Member], finished: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    members["bank"].ok("audit", "export", "--out", str(path))
    return path


def test_exported_audit_log_verifies(members: dict[str, Member], exported: Path) -> None:
    report = members["shop"].json("audit", "verify", str(exported))
    online = members["shop"].json("audit", "verify")

    assert report["ok"] and report["receipts_verified"] >= 1
    assert online["ok"] and online["entries"] >= report["entries"]


def _seq_of(lines: list[dict[str, Any]], action: str) -> int:
    return next(i for i, e in enumerate(lines) if e["action"] == action)


def _edit_detail(events: list[dict[str, Any]]) -> int:
    i = _seq_of(events, "task.propose")
    events[i]["details"]["contract_hash"] = "0" * 64
    return int(events[i]["seq"])


def _delete(events: list[dict[str, Any]]) -> int:
    i = _seq_of(events, "task.run")
    removed = events.pop(i)
    return int(removed["seq"]) + 1  # the chain breaks at the entry after the gap


def _swap(events: list[dict[str, Any]]) -> int:
    i = _seq_of(events, "task.approve")
    events[i], events[i + 1] = events[i + 1], events[i]
    return int(events[i]["seq"])


def _forge_receipt(events: list[dict[str, Any]]) -> int:
    i = _seq_of(events, "task.succeeded")
    signature = bytearray(b64d(events[i]["details"]["receipt"]["signature"]))
    signature[-1] ^= 1
    events[i]["details"]["receipt"]["signature"] = b64e(bytes(signature))
    return int(events[i]["seq"])


@pytest.mark.parametrize("tamper", [_edit_detail, _delete, _swap, _forge_receipt])
def test_audit_verify_names_the_tampered_entry(
    members: dict[str, Member], exported: Path, tmp_path: Path, tamper: Any
) -> None:
    events = [json.loads(line) for line in exported.read_text().splitlines()]
    seq = tamper(events)
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(e) + "\n" for e in events))

    result = members["shop"]("audit", "verify", str(edited))

    assert result.exit_code == 1
    assert one_line_error(result).startswith(f"error: audit entry {seq}:")


def test_without_credentials_or_keys_commands_say_what_to_do(tmp_path: Path) -> None:
    nobody = Member("nobody", tmp_path / "home")

    no_keys = nobody("account", "login", "--server", "http://127.0.0.1:9", "nobody")
    nobody.ok("keys", "init")
    no_login = nobody("dataset", "list")
    unreachable = nobody("account", "login", "--server", "http://127.0.0.1:9", "nobody",
                         "--password-env", PASSWORD_ENV)  # fmt: skip

    assert one_line_error(no_keys) == "error: no keys: run `teeflow keys init`"
    assert "not signed in: run `teeflow account login" in one_line_error(no_login)
    assert "cannot reach the control plane" in one_line_error(unreachable)


def test_passphrase_protected_keys_unlock_from_the_environment(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    carol = Member("carol", tmp_path / "carol")
    secret = {"TEEFLOW_PASSPHRASE": "carol passphrase"}
    carol.ok("keys", "init", "--passphrase-env", "TEEFLOW_PASSPHRASE", env=secret)
    carol.ok(
        "account",
        "register",
        "--server",
        platform.url,
        "carol",
        "--password-env",
        PASSWORD_ENV,
        env=secret,
    )

    locked = carol("dataset", "list")
    unlocked = carol("dataset", "list", "--json", env=secret)

    assert "TEEFLOW_PASSPHRASE" in one_line_error(locked)
    assert unlocked.exit_code == 0 and json.loads(unlocked.stdout) == []


def test_a_failed_task_makes_wait_exit_non_zero_with_the_decrypted_error(
    members: dict[str, Member], proposed: str, tmp_path: Path
) -> None:
    alice, shop = members["alice"], members["shop"]
    bad = _upload(alice, tmp_path, "u1,x\n")  # "x" is not an amount
    good = alice.json("task", "show", proposed)["contract"]["inputs"]["shop"]["dataset_id"]
    task = alice.json(
        "task", "propose", "private-join-sum", "--input", f"a={bad}", "--input", f"s={good}",
        "--output", "result=alice",
    )["id"]  # fmt: skip
    queued_by = alice.json("task", "approve", task, "--yes", "--run", "--start-within", "30")
    shop.ok("task", "approve", task, "--yes")  # the last approval queues it: no `task run`

    waited = alice("task", "wait", task, "--timeout", "120")

    assert "failed: function failed" in one_line_error(waited)
    assert "enclave error (decrypted, disclosed to you): input 'a', line 2" in waited.stderr
    assert "u1,x" not in waited.stderr  # the error names the line, never the values
    assert queued_by["run_authorisation"]["body"]["start_within_s"] == 30 * 60


def test_approve_fetches_the_task_it_reviews_once(
    members: dict[str, Member], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bank = members["alice"], members["bank"]
    dataset = _upload(bank, tmp_path, "u1,1\n")
    task = alice.json(
        "task", "propose", "echo", "--input", f"data={dataset}", "--output", "data=bank"
    )["id"]
    sent: list[str] = []
    send = httpx.Client.send

    def logged(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        sent.append(f"{request.method} {request.url.path}")
        return send(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", logged)
    approved = bank.json("task", "approve", task, "--yes")

    assert approved["approvals"] == {"bank": "approve"}
    assert [call for call in sent if call.startswith(("GET /v1/tasks", "POST /v1/tasks"))] == [
        f"GET /v1/tasks/{task}",  # reviewed, shown, then signed: the same answer
        f"POST /v1/tasks/{task}/approve",
    ]


def test_reject_ends_a_proposal(members: dict[str, Member], tmp_path: Path) -> None:
    alice, bank = members["alice"], members["bank"]
    dataset = _upload(bank, tmp_path, "u1,1\n")
    task = alice.json(
        "task", "propose", "echo", "--input", f"data={dataset}", "--output", "data=alice"
    )

    rejected = bank.json("task", "reject", task["id"], "--reason", "not today")
    late = alice("task", "approve", task["id"], "--yes")

    assert rejected["status"] == "rejected" and "not today" in rejected["failure_reason"]
    assert one_line_error(late)


def test_server_command_runs_until_terminated(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "teeflow.cli.main", "server", "--data-dir", str(tmp_path),
               "--port", str(port), "--executors", "0"]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            first = process.stdout.readline().decode() if process.stdout else ""
            healthy = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).status_code
        finally:
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)

    assert f"http://127.0.0.1:{port}" in first and healthy == 200
    assert process.returncode == 0 and "stopping" in err.decode()


def test_an_owner_deletes_a_dataset_once_no_task_uses_it(
    members: dict[str, Member], tmp_path: Path
) -> None:
    alice, bank = members["alice"], members["bank"]
    dataset = _upload(bank, tmp_path, "u7,7\n")
    task = alice.json(
        "task", "propose", "echo", "--input", f"data={dataset}", "--output", "data=alice"
    )

    in_use = bank("dataset", "delete", dataset)
    invited = [t["id"] for t in bank.json("task", "list", "--invited")]
    own = [t["id"] for t in bank.json("task", "list", "--mine")]
    alice.ok("task", "cancel", task["id"])
    deleted = bank.json("dataset", "delete", dataset)

    assert task["id"] in one_line_error(in_use)
    assert task["id"] in invited and task["id"] not in own
    assert deleted == {"id": dataset, "state": "deleted"}
    states = {d["id"]: d["state"] for d in bank.json("dataset", "list")}
    assert states[dataset] == "deleted"
