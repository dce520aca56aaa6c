"""A malicious member against a victim who approves only what its review shows (issue 17).

Each test is one row of the issue's table, played from the members' side against a real control
plane and real sim executors: the victim (``bank``) reviews the contract another member proposed,
and the attack must be refused or named in the victim's review.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from teeflow.cli.main import app
from teeflow.client import ApiError
from teeflow.crypto import sha256_hex
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory

BANK_TABLE = b"id,amount\n" + b"".join(b"%d,%d.50\n" % (1000 + i, i) for i in range(200))
EVERY_ID = b"id,amount\n" + b"".join(b"%d,0\n" % (1000 + i) for i in range(200))


def _reaches(warnings: list[str], slot: str, name: str) -> list[str]:
    """The review warnings that say output ``slot`` of the victim's input reaches ``name``."""
    return [w for w in warnings if f"output {slot!r}" in w and name in w and "your input" in w]


# -- row 1: the proposer co-receives the victim's data --------------------------------------


def test_echo_to_victim_and_proposer_is_warned(member: MemberFactory) -> None:
    alice, bank = member("alice"), member("bank")
    dataset = bank.upload_dataset(BANK_TABLE, name="bank.csv", kind="table")
    task = alice.propose(
        "echo",
        inputs={"data": dataset["id"]},
        outputs={"data": {"recipients": ["alice", "bank"]}},
    )

    warnings = bank.review(bank.task(task["id"]))

    assert _reaches(warnings, "data", "alice"), warnings


def _join_sum(member: MemberFactory, recipients: list[str]) -> tuple[dict[str, Any], ...]:
    """alice probes bank's table with every id at amount 0; returns (task, bank's, alice's)."""
    alice, bank = member("alice"), member("bank")
    mine = bank.upload_dataset(BANK_TABLE, name="bank.csv", kind="table", rows=200)
    probe = alice.upload_dataset(EVERY_ID, name="probe.csv", kind="table")
    task = alice.propose(
        "private-join-sum",
        inputs={"bank": mine["id"], "probe": probe["id"]},
        outputs={"result": {"recipients": recipients}},
    )
    return task, mine, probe


def test_join_sum_against_every_id_is_warned(member: MemberFactory) -> None:
    alice, bank = member("alice"), member("bank")
    task, _, _ = _join_sum(member, ["alice", "bank"])

    warnings = bank.review(bank.task(task["id"]))

    assert _reaches(warnings, "result", "alice"), warnings
    # The proposer's own review says nothing about bank's table reaching it: it is its own input
    # that counts, and alice's input reaches bank.
    assert _reaches(alice.review(alice.task(task["id"])), "result", "bank")


def test_review_shows_every_partys_input_size(member: MemberFactory) -> None:
    task, mine, probe = _join_sum(member, ["bank"])

    shown = member("bank").task(task["id"])["inputs"]

    assert shown["bank"]["size"] == mine["size"] and shown["probe"]["size"] == probe["size"]
    assert shown["bank"]["rows"] == 200  # bank published its schema summary
    assert shown["probe"]["rows"] is None  # alice did not: unknown, not guessed


# -- row 2: a plain function that smuggles the inputs out through "metrics" ----------------

SMUGGLER = """
import base64, json, zlib

def run(ctx):
    blob = b"".join(data.read_bytes() for data in ctx.inputs.values())
    ctx.outputs["metrics"].write_json(
        {"accuracy": 0.9, "x": base64.b64encode(zlib.compress(blob)).decode()}
    )
"""


def test_smuggling_function_is_readable_checked_and_refused(member: MemberFactory) -> None:
    alice, bank, mallory = member("alice"), member("bank"), member("mallory")
    function = mallory.upload_function(
        SMUGGLER,
        name="fair-metrics",
        sealed=False,
        inputs=["data"],
        outputs={"metrics": {"kind": "metrics", "max_bytes": 4096}},
    )
    dataset = bank.upload_dataset(BANK_TABLE, name="bank.csv", kind="table")
    task = alice.propose(
        function["id"],
        inputs={"data": dataset["id"]},
        outputs={"metrics": {"recipients": ["alice", "bank", "mallory"]}},
    )

    # The victim reads the exact code it is asked to approve, checked against the contract.
    source = bank.function_source(task["id"])
    warnings = bank.review(bank.task(task["id"]))
    declared = bank.task(task["id"])["contract"]["function"]["outputs"]

    assert source == SMUGGLER and sha256_hex(source.encode()) == function["code_sha256"]
    assert _reaches(warnings, "metrics", "mallory"), warnings
    assert declared == {"metrics": {"kind": "metrics", "max_bytes": 4096}}

    for name in ("alice", "bank", "mallory"):
        member(name).approve(task["id"])
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=120)

    assert done["status"] == "failed"
    assert "output 'metrics' breaks its declaration" in done["failure_reason"]
    assert alice.outputs(task["id"]) == []
    compressed = base64.b64encode(zlib.compress(BANK_TABLE)).decode()
    assert compressed[:40] not in json.dumps(done)


def test_uploaded_function_cannot_take_a_builtin_name(member: MemberFactory) -> None:
    mallory = member("mallory")

    with pytest.raises(ApiError) as refused:
        mallory.upload_function(SMUGGLER, name="echo", sealed=False, outputs=["data"])

    assert refused.value.status == 422
    assert "built-in" in str(refused.value)


def test_sealed_function_source_stays_closed(member: MemberFactory) -> None:
    alice, bank, mallory = member("alice"), member("bank"), member("mallory")
    function = mallory.upload_function(
        SMUGGLER, name="sealed-metrics", outputs={"metrics": {"kind": "metrics"}}
    )
    dataset = bank.upload_dataset(BANK_TABLE, name="bank.csv", kind="table")
    task = alice.propose(
        function["id"],
        inputs={"data": dataset["id"]},
        outputs={"metrics": {"recipients": ["bank"]}},
    )

    response = bank.http.get(f"/v1/tasks/{task['id']}/function/source")
    warnings = bank.review(bank.task(task["id"]))

    assert response.status_code == 403
    assert any("confidential to 'mallory'" in w for w in warnings), warnings


# -- row 3: forged lines and terminal escapes in what another member wrote ------------------

FORGED = "ok\nX: readable by bank\nreview: no warnings\x1b[2J\x1b]0;owned\x07\r\x9b31m"


def _cli(home: Path, *args: str) -> Result:
    env = {"TEEFLOW_HOME": str(home), "TEEFLOW_TEST_PASSWORD": "pw-cli-victim-123"}
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture(scope="module")
def cli_victim(platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home-cli-victim")
    for args in (
        ("keys", "init"),
        ("account", "register", "--server", platform.url, "victim", "--password-env",
         "TEEFLOW_TEST_PASSWORD"),
        ("attest", "trust", "--simulated", "--data-dir", str(platform.data_dir)),
    ):  # fmt: skip
        result = _cli(home, *args)
        assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return home


def _lines(text: str) -> Iterator[str]:
    return (line.strip() for line in text.splitlines())


def test_task_show_prints_no_forged_line_or_escape(
    member: MemberFactory, cli_victim: Path, tmp_path: Path
) -> None:
    alice = member("alice")
    data = tmp_path / "victim.csv"
    data.write_bytes(BANK_TABLE)
    uploaded = _cli(cli_victim, "dataset", "upload", str(data), "--name", "v.csv", "--json")
    mine = json.loads(uploaded.stdout)["id"]
    bait = alice.upload_dataset(b"id\n1\n", name=FORGED, kind="table")
    body = {  # a hostile proposer skips its own client's check of the arguments
        "function": "private-join-sum",
        "inputs": {"victim": mine, FORGED.split("\n")[0]: bait["id"]},
        "outputs": {"result": {"recipients": ["alice", "victim"]}},
        "arguments": {FORGED: FORGED, "id_column": [FORGED]},
        "description": FORGED,
    }
    task = alice.http.post("/v1/tasks", json=body).json()

    shown = _cli(cli_victim, "task", "show", task["id"])
    printed = shown.stdout + shown.stderr

    assert shown.exit_code == 0, printed
    assert not any(c in printed for c in "\x1b\x07\x9b\r"), repr(printed)
    assert not any(
        line.startswith(("X: readable", "review: no warnings")) for line in _lines(printed)
    )
    assert "readable by alice, victim" in printed and "warning:" in printed
    assert "ciphertext" in printed and "bytes" in printed  # every party's input size is shown


def test_task_show_code_prints_the_checked_source(
    member: MemberFactory, cli_victim: Path, tmp_path: Path
) -> None:
    alice, mallory = member("alice"), member("mallory")
    data = tmp_path / "victim.csv"
    data.write_bytes(BANK_TABLE)
    uploaded = _cli(cli_victim, "dataset", "upload", str(data), "--name", "v.csv", "--json")
    function = mallory.upload_function(
        SMUGGLER + "# \x1b[2J\n", name="shown-metrics", sealed=False, outputs=["metrics"]
    )
    task = alice.propose(
        function["id"],
        inputs={"data": json.loads(uploaded.stdout)["id"]},
        outputs={"metrics": {"recipients": ["victim"]}},
    )

    shown = _cli(cli_victim, "task", "show", task["id"], "--code")
    fetched = _cli(cli_victim, "function", "source", task["id"])

    assert shown.exit_code == 0 and fetched.exit_code == 0, shown.stderr + fetched.stderr
    assert "sha256 checked against the contract" in shown.stdout
    assert "  | def run(ctx):" in shown.stdout and "def run(ctx):" in fetched.stdout
    assert "UPLOADED by mallory" in shown.stdout
    assert "declared bytes with no size bound" in shown.stdout
    assert "\x1b" not in shown.stdout + fetched.stdout


# -- row 7: sizes ----------------------------------------------------------------------------


def _sizes_in(value: Any) -> list[Any]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "size"]
        return found + [s for v in value.values() for s in _sizes_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _sizes_in(v)]
    return []


def _run_echo(alice: Any, bank: Any, payload: bytes, output: dict[str, Any]) -> str:
    dataset = bank.upload_dataset(payload, name="bank.bin")
    task = alice.propose("echo", inputs={"data": dataset["id"]}, outputs={"data": output})
    alice.approve(task["id"])
    bank.approve(task["id"])
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=120)
    assert done["status"] == "succeeded", done["failure_reason"]
    return str(task["id"])


def test_non_participant_sees_no_sizes(member: MemberFactory) -> None:
    alice, bank, carol = member("alice"), member("bank"), member("carol")
    task_id = _run_echo(alice, bank, BANK_TABLE, {"recipients": ["bank"]})

    audit = [e for e in carol.audit() if e["subject"] == task_id]
    listed = carol.datasets(owner="bank")

    assert audit and _sizes_in(audit) == []
    assert listed and all(d["size"] is None for d in listed)
    assert carol.http.get(f"/v1/tasks/{task_id}/receipt").status_code == 404
    assert carol.http.get(f"/v1/tasks/{task_id}/outputs").status_code == 404


def test_padded_outputs_hide_their_length(member: MemberFactory) -> None:
    alice, bank = member("alice"), member("bank")
    short, long = b"x" * 100, b"y" * 3000
    padded = {"recipients": ["bank"], "pad": 4096}
    tasks = [_run_echo(alice, bank, payload, padded) for payload in (short, long)]

    sizes = [bank.outputs(task_id)[0]["size"] for task_id in tasks]

    assert sizes[0] == sizes[1] == 36 + 4096 + 16  # one bucket, sealed (v2 header: 36)
    assert [bank.output(t, "data") for t in tasks] == [short, long]
    pow2 = _run_echo(alice, bank, long, {"recipients": ["bank"], "pad": "pow2"})
    assert bank.outputs(pow2)[0]["size"] == 36 + 4096 + 16 and bank.output(pow2, "data") == long
