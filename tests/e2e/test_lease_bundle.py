"""Small inputs and an uploaded function's code ride in the lease bundle (routes/executors.py
``_bundle``), so the executor makes no request of its own for them; the enclave checks them
exactly as downloaded ones: an operator who swaps the bytes the lease carries is refused.

The control plane runs with its access log on, so each test sees which requests the executor
made for its task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from teeflow.client import Client
from teeflow.server.launcher import LocalPlatform
from teeflow.server.routes.executors import INLINE_BYTES

from .conftest import MemberFactory, echo_task, operator_db, refused_by_enclave

COUNTER = """
def run(ctx):
    rows = ctx.inputs["data"].read_bytes()
    ctx.outputs["metrics"].write_json({"lines": rows.count(b"\\n")})
"""

OTHER = COUNTER.replace('"lines"', '"lines_seen"')


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    """One executor and the access log on (it records the executor's requests by path)."""
    env = {"TEEFLOW_ACCESS_LOG": "1", "TEEFLOW_CHECKPOINT_INTERVAL_S": "0"}
    with LocalPlatform(tmp_path_factory.mktemp("platform"), executors=1, env=env) as running:
        yield running


def _executor_requests(platform: LocalPlatform, task_id: str) -> list[str]:
    """The paths under /v1/executor/tasks/TASK that the control plane served for ``task_id``
    before its finish: downloads, heartbeats, events. (A batch of one finishes through
    ``.../finish``, whose log line may come after the member saw the task end.)"""
    log = (platform.data_dir / "logs" / "server.log").read_text(errors="replace")
    paths = re.findall(rf'"[A-Z]+ /v1/executor/tasks/{task_id}(/\S*) HTTP', log)
    return [path for path in paths if path != "/finish"]


def _counter_task(creator: Client, owner: Client, rows: bytes) -> tuple[str, str]:
    """A proposed task of ``creator``'s unsealed uploaded function over ``owner``'s ``rows``;
    (task id, the function code's dataset id)."""
    function = creator.upload_function(
        COUNTER,
        name=f"count-{len(rows)}",
        sealed=False,
        inputs=["data"],
        outputs={"metrics": {"kind": "metrics"}},
    )
    dataset = owner.upload_dataset(rows, name="rows.csv", kind="other")
    task = creator.propose(
        function["id"],
        inputs={"data": dataset["id"]},
        outputs={"metrics": {"recipients": [str(creator.username)]}},
    )
    source = task["contract"]["function"]["source_dataset_id"]
    return str(task["id"]), str(source)


def _approve_and_run(task_id: str, *members: Client) -> None:
    for client in members:
        client.approve(task_id)
    members[0].run(task_id)


def test_small_input_and_function_code_come_with_the_lease(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task_id, _ = _counter_task(alice, bank, b"a\nb\nc\n")
    _approve_and_run(task_id, alice, bank)

    done = alice.wait(task_id, timeout=60)

    assert done["status"] == "succeeded", done["failure_reason"]
    assert json.loads(alice.output(task_id, "metrics")) == {"lines": 3}
    assert _executor_requests(platform, task_id) == []  # no download, no heartbeat


def test_a_large_input_still_streams_through_its_own_request(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    rows = b"x" * 99 + b"\n"
    task_id, _ = _counter_task(alice, bank, rows * (INLINE_BYTES // len(rows) + 1))
    _approve_and_run(task_id, alice, bank)

    done = alice.wait(task_id, timeout=60)

    assert done["status"] == "succeeded", done["failure_reason"]
    assert _executor_requests(platform, task_id) == ["/inputs/data"]


def test_an_input_swapped_in_the_lease_is_refused(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task_id = echo_task(alice, bank, b"approved rows\n")
    substitute = bank.upload_dataset(b"substituted rows\n", name="other.csv", kind="other")
    approved = alice.task(task_id)["contract"]["inputs"]["data"]["dataset_id"]
    blobs = platform.data_dir / "blobs" / "datasets"
    # The operator swaps the stored bytes: a small input's go out inside the lease.
    (blobs / approved).write_bytes((blobs / substitute["id"]).read_bytes())
    _approve_and_run(task_id, alice, bank)

    reason = refused_by_enclave(alice, task_id)

    assert "differs from the approved" in reason
    assert _executor_requests(platform, task_id) == []  # it came with the lease


def test_function_code_swapped_in_the_lease_is_refused(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task_id, source = _counter_task(alice, bank, b"a\n")
    other = alice.upload_function(
        OTHER, name="other-count", sealed=False, inputs=["data"], outputs=["metrics"]
    )
    with operator_db(platform) as db:
        (other_source,) = db.execute(
            "SELECT source_dataset_id FROM functions WHERE function_id = ?", (other["id"],)
        ).fetchone()
    blobs = platform.data_dir / "blobs" / "datasets"
    (blobs / source).write_bytes((blobs / other_source).read_bytes())
    _approve_and_run(task_id, alice, bank)

    reason = refused_by_enclave(alice, task_id)

    assert "differs from the code hash" in reason
    assert _executor_requests(platform, task_id) == []


def _joint_output(alice: Client, bank: Client, shop: Client) -> tuple[str, str]:
    """A joint output of bank and shop (small: kept in its database row); (task id, dataset id)."""
    bank_ds = bank.upload_dataset(b"id,amount\nu1,5\nu2,6\n", name="b.csv", kind="table")
    shop_ds = shop.upload_dataset(b"id,amount\nu2,1\nu3,9\n", name="s.csv", kind="table")
    produce = alice.propose(
        "private-join-sum",
        inputs={"bank": bank_ds["id"], "shop": shop_ds["id"]},
        outputs={"result": {"joint_owners": ["bank", "shop"]}},
    )
    _approve_and_run(produce["id"], alice, bank, shop)
    produced = alice.wait(produce["id"], timeout=60)
    assert produced["status"] == "succeeded", produced["failure_reason"]
    (joint,) = bank.http.get(f"/v1/tasks/{produce['id']}/outputs").json()
    return str(produce["id"]), str(joint["dataset_id"])


def _use_joint(bank: Client, shop: Client, dataset_id: str) -> str:
    use = bank.propose(
        "echo", inputs={"joint": dataset_id}, outputs={"joint": {"recipients": ["bank"]}}
    )
    _approve_and_run(use["id"], bank, shop)
    return str(use["id"])


def test_a_joint_output_kept_in_its_row_comes_with_the_lease_as_an_input(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank, shop = member("alice"), member("bank"), member("shop")
    produced, dataset_id = _joint_output(alice, bank, shop)
    with operator_db(platform) as db:
        (key,) = db.execute(
            "SELECT blob_key FROM outputs WHERE task_id = ?", (produced,)
        ).fetchone()
    use = _use_joint(bank, shop, dataset_id)

    done = bank.wait(use, timeout=60)

    assert key.startswith("rows/")
    assert done["status"] == "succeeded", done["failure_reason"]
    assert bank.output(use, "joint") == b"id,amount\nu2,7\n"
    assert _executor_requests(platform, use) == []


def test_a_joint_output_swapped_in_its_row_is_refused_as_an_input(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank, shop = member("alice"), member("bank"), member("shop")
    (_, first), (_, second) = _joint_output(alice, bank, shop), _joint_output(alice, bank, shop)
    with operator_db(platform) as db:
        (other,) = db.execute(
            "SELECT r.content FROM row_blobs r JOIN datasets d ON d.blob_key = r.blob_key"
            " WHERE d.dataset_id = ?",
            (first,),
        ).fetchone()
        changed = db.execute(
            "UPDATE row_blobs SET content = ? WHERE blob_key ="
            " (SELECT blob_key FROM datasets WHERE dataset_id = ?)",
            (other, second),
        )
        assert changed.rowcount == 1
    use = _use_joint(bank, shop, second)

    reason = refused_by_enclave(bank, use)

    assert "differs from the approved" in reason
    assert _executor_requests(platform, use) == []
