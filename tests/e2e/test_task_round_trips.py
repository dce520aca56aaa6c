"""The task path's HTTP round trips: a member's client does not fetch again a task it has just
received from its own propose or approve, and still reviews what it signs; the creator's run
rides on its approval, an output comes with its receipt, and `wait` is one long-poll."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from teeflow.client import Client, ClientError
from teeflow.enclave.contract import contract_hash
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, executors_paused, member_policy, same_member


def _record(log: list[str], who: str) -> object:
    def hook(request: httpx.Request) -> None:
        log.append(f"{who} {request.method} {request.url.path}")

    return hook


def _logged(creator: Client, owner: Client) -> list[str]:
    log: list[str] = []
    creator.http.event_hooks["request"].append(_record(log, "creator"))
    owner.http.event_hooks["request"].append(_record(log, "owner"))
    return log


def test_an_echo_flow_with_the_creators_run_in_its_approval_takes_six_round_trips(
    member: MemberFactory,
) -> None:
    creator, owner = member("rt-creator"), member("rt-owner")
    dataset = owner.upload_dataset(b"id,amount\nr1,1\n", name="rt.csv", kind="table")
    creator.attest()  # once per session, not per task
    owner.attest()
    log = _logged(creator, owner)

    task = creator.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["rt-owner"]}}
    )
    creator.approve(task["id"], run=True)
    owner.approve(task["id"])
    done = creator.wait(task["id"])
    plaintext = owner.output(task["id"], "data")

    base = f"/v1/tasks/{task['id']}"
    assert done["status"] == "succeeded"
    assert plaintext == b"id,amount\nr1,1\n"
    assert log == [
        "creator POST /v1/tasks",
        f"creator POST {base}/approve",  # reviews what propose returned; signs the run too
        f"owner GET {base}",  # the owner sees the task here for the first time
        f"owner POST {base}/approve",  # the last approval queues it
        f"creator GET {base}",  # the long-poll until it ends
        f"owner GET {base}/outputs/data/content",  # with the receipt it is checked against
    ]


def test_an_echo_flow_with_an_explicit_run_takes_seven_round_trips(
    member: MemberFactory,
) -> None:
    creator, owner = member("rt-creator"), member("rt-owner")
    dataset = owner.upload_dataset(b"id,amount\nr3,3\n", name="rt3.csv", kind="table")
    creator.attest()
    owner.attest()
    log = _logged(creator, owner)

    task = creator.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["rt-owner"]}}
    )
    creator.approve(task["id"])
    owner.approve(task["id"])
    creator.run(task["id"])
    done = creator.wait(task["id"])
    plaintext = owner.output(task["id"], "data")

    base = f"/v1/tasks/{task['id']}"
    assert done["status"] == "succeeded"
    assert plaintext == b"id,amount\nr3,3\n"
    assert log == [
        "creator POST /v1/tasks",
        f"creator POST {base}/approve",
        f"owner GET {base}",
        f"owner POST {base}/approve",
        f"creator POST {base}/run",  # signed over the contract the creator approved
        f"creator GET {base}",
        f"owner GET {base}/outputs/data/content",
    ]


def test_the_creator_still_refuses_to_approve_an_enclave_it_did_not_attest(
    member: MemberFactory,
) -> None:
    creator, owner = member("rt-creator2"), member("rt-owner2")
    dataset = owner.upload_dataset(b"id,amount\nr2,2\n", name="rt2.csv", kind="table")
    task = creator.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["rt-owner2"]}}
    )
    # What propose returned is the control plane's word, like any GET: tamper with the copy the
    # client keeps, as a control plane answering propose with another enclave's key would.
    kept = creator._recent_tasks[task["id"]]
    foreign = owner.keys.receiving_key.public_key.b64()
    kept["contract"]["executor"]["public_keys"]["x25519"] = foreign
    kept["contract_hash"] = contract_hash(kept["contract"])  # a coherent, hostile answer

    with pytest.raises(ClientError, match="enclave other than the one you attested"):
        creator.approve(task["id"])

    assert creator.task(task["id"])["approvals"] == {}


def test_wait_is_one_long_poll_woken_as_the_task_ends(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    creator, owner = member("rt-creator"), member("rt-owner")
    dataset = owner.upload_dataset(b"id,amount\nr4,4\n", name="rt4.csv", kind="table")
    task = creator.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["rt-owner"]}}
    )
    creator.approve(task["id"], run=True)

    with ThreadPoolExecutor(1) as pool:
        with executors_paused(platform):  # no executor takes it until the long-poll is held
            assert owner.approve(task["id"])["status"] == "queued"
            log = _logged(creator, owner)
            waiting = pool.submit(creator.wait, task["id"])
            while not log:
                time.sleep(0.01)
            time.sleep(0.2)  # the request reaches the server and is held there
        done = waiting.result(timeout=120)

    assert done["status"] == "succeeded"
    # Woken by the control plane's notifier as the task ended; without it the long-poll would
    # come back still `queued` after its 20 s and the client would ask again.
    assert log == [f"creator GET /v1/tasks/{task['id']}"]


def test_approve_refuses_a_view_of_another_task_as_the_one_it_signs(
    member: MemberFactory,
) -> None:
    creator, owner = member("rt-creator5"), member("rt-owner5")
    dataset = owner.upload_dataset(b"id,amount\nr5,5\n", name="rt5.csv", kind="table")
    outputs = {"data": {"recipients": ["rt-owner5"]}}
    first = creator.propose("echo", inputs={"data": dataset["id"]}, outputs=outputs)
    second = creator.propose("echo", inputs={"data": dataset["id"]}, outputs=outputs)

    with pytest.raises(ClientError, match=f"not task {first['id']}"):
        creator.approve(first["id"], task=second)

    assert creator.task(first["id"])["approvals"] == {}
    assert creator.task(second["id"])["approvals"] == {}


def test_the_run_signs_the_contract_the_creator_approved_not_the_approvals_answer(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    creator, owner = member("rt-creator6"), member("rt-owner6")
    dataset = owner.upload_dataset(b"id,amount\nr6,6\n", name="rt6.csv", kind="table")
    task = creator.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["rt-owner6"]}}
    )

    def other_contract(request: httpx.Request, response: httpx.Response) -> httpx.Response:
        """The approval's answer shows a coherent task of another contract."""
        if not request.url.path.endswith("/approve"):
            return response
        shown = json.loads(response.read())
        shown["contract"]["arguments"] = {"rows": 1}
        shown["contract_hash"] = contract_hash(shown["contract"])
        return httpx.Response(response.status_code, json=shown)

    hostile = same_member(
        creator, policy=member_policy(platform), transport=_Rewriting(other_contract)
    )
    hostile._recent_tasks[task["id"]] = task  # what its propose returned
    hostile.approve(task["id"])
    owner.approve(task["id"])
    queued = hostile.run(task["id"])
    hostile.close()

    assert queued["status"] == "queued"
    assert creator.wait(task["id"])["status"] == "succeeded"


class _Rewriting(httpx.BaseTransport):
    """The control plane's answers, passed through ``rewrite``."""

    def __init__(self, rewrite: Callable[[httpx.Request, httpx.Response], httpx.Response]) -> None:
        self._inner = httpx.HTTPTransport()
        self._rewrite = rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._rewrite(request, self._inner.handle_request(request))

    def close(self) -> None:
        self._inner.close()
