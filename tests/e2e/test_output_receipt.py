"""An output comes in one request with the contract and enclave-signed receipt it is checked
against (client/_outputs.py); the member's client refuses a tampered or foreign receipt there,
and another task's output served in its place, before decrypting anything."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from teeflow.client import Client, ClientError
from teeflow.crypto import b64d, b64e, canonical_json

from .conftest import MemberFactory, echo_task, same_member

RECEIPT, CONTRACT = "X-Teeflow-Receipt", "X-Teeflow-Contract"

Rewrite = Callable[[httpx.Request, httpx.Response], httpx.Response]


class _Hostile(httpx.BaseTransport):
    """The control plane's answers, passed through ``rewrite`` (request path, response)."""

    def __init__(self, rewrite: Rewrite, path_map: dict[str, str] | None = None) -> None:
        self._inner = httpx.HTTPTransport()
        self._rewrite = rewrite
        self._path_map = path_map or {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        for old, new in self._path_map.items():
            path = path.replace(old, new)
        if path != request.url.path:
            request = httpx.Request(
                request.method, request.url.copy_with(path=path), headers=request.headers
            )
        return self._rewrite(request, self._inner.handle_request(request))

    def close(self) -> None:
        self._inner.close()


def _through(client: Client, rewrite: Rewrite, path_map: dict[str, str] | None = None) -> Client:
    """The same member, talking to a control plane whose answers ``rewrite`` alters."""
    return same_member(client, transport=_Hostile(rewrite, path_map))


def _with_header(response: httpx.Response, name: str, value: str) -> httpx.Response:
    headers = httpx.Headers(response.headers)
    headers[name] = value
    return httpx.Response(
        response.status_code,
        headers=headers,
        stream=response.stream,
        extensions=response.extensions,
    )


def _ran(creator: Client, owner: Client, payload: bytes) -> str:
    task_id = echo_task(creator, owner, payload)
    creator.approve(task_id)
    owner.approve(task_id)
    creator.run(task_id)
    assert creator.wait(task_id, timeout=120)["status"] == "succeeded"
    return task_id


@pytest.fixture(scope="module")
def two_tasks(member: MemberFactory) -> tuple[Client, str, str]:
    creator, owner = member("or-creator"), member("or-owner")
    return owner, _ran(creator, owner, b"first rows\n"), _ran(creator, owner, b"second rows\n")


def test_the_output_comes_with_the_receipt_it_is_checked_against(
    two_tasks: tuple[Client, str, str],
) -> None:
    owner, task_id, _ = two_tasks
    seen: list[httpx.Response] = []

    def keep(_: httpx.Request, response: httpx.Response) -> httpx.Response:
        seen.append(response)
        return response

    with _through(owner, keep) as member:
        plaintext = member.output(task_id, "data")

    assert plaintext == b"first rows\n"
    assert len(seen) == 1
    receipt = json.loads(b64d(seen[0].headers[RECEIPT]))
    assert receipt == owner.task(task_id)["receipt"]


def test_a_tampered_receipt_with_the_output_is_refused(two_tasks: tuple[Client, str, str]) -> None:
    owner, task_id, _ = two_tasks

    def tamper(_: httpx.Request, response: httpx.Response) -> httpx.Response:
        if RECEIPT not in response.headers:
            return response
        receipt = json.loads(b64d(response.headers[RECEIPT]))
        receipt["body"]["run"]["authorised_at"] = "2000-01-01T00:00:00+00:00"
        return _with_header(response, RECEIPT, b64e(canonical_json(receipt)))

    with _through(owner, tamper) as member, pytest.raises(ClientError, match="does not verify"):
        member.output(task_id, "data")


def test_another_tasks_receipt_with_the_output_is_refused(
    two_tasks: tuple[Client, str, str],
) -> None:
    owner, task_id, other_id = two_tasks
    foreign = b64e(canonical_json(owner.task(other_id)["receipt"]))

    def swap(_: httpx.Request, response: httpx.Response) -> httpx.Response:
        return _with_header(response, RECEIPT, foreign) if RECEIPT in response.headers else response

    with _through(owner, swap) as member, pytest.raises(ClientError, match="another contract"):
        member.output(task_id, "data")


def test_another_tasks_output_served_in_its_place_is_refused(
    two_tasks: tuple[Client, str, str],
) -> None:
    # A coherent answer: the other task's ciphertext, key, contract and receipt, all genuine,
    # for a task this member also approved; every request for one task goes to the other.
    owner, task_id, other_id = two_tasks

    def same(_: httpx.Request, response: httpx.Response) -> httpx.Response:
        return response

    with (
        _through(owner, same, {task_id: other_id}) as member,
        pytest.raises(ClientError, match="another task"),
    ):
        member.output(task_id, "data")
