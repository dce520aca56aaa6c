"""Hostile-input fixtures: an in-process control plane and members registered through its API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from teeflow.client import MemberKeys, public_keys
from teeflow.crypto import PrivateKey, SigningKey, b64e
from teeflow.enclave.contract import APPROVAL_DOMAIN
from teeflow.enclave.run_state import sign_run_authorisation
from teeflow.server.app import create_app, utcnow
from teeflow.server.settings import Settings

from ._asgi import AppClient

PASSWORD = "hostile input never wins"


@dataclass
class Member:
    username: str
    password: str
    keys: MemberKeys
    token: str
    http: AppClient


@dataclass
class Api:
    """An app over its own data directory, with an anonymous client."""

    app: FastAPI
    settings: Settings
    anon: AppClient
    members: list[Member]

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def member(self, username: str) -> Member:
        """Register ``username`` with fresh keys (as a member's own machine does) and sign in."""
        keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
        body = {"username": username, "password": PASSWORD, **public_keys(keys)}
        assert self.anon.post("/v1/users", json=body).status_code == 201
        login = self.anon.post("/v1/sessions", json={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
        token = login.json()["token"]
        member = Member(username, PASSWORD, keys, token, AppClient(self.app, token=token))
        self.members.append(member)
        return member

    def register_executor(self, **overrides: Any) -> str:
        """Register an executor with the operator's secret; returns its bearer token.

        The control plane does not verify evidence (members and the enclave do), so any
        well-formed registration is accepted here.
        """
        body = {
            "secret": self.settings.executor_secret_path.read_text().strip(),
            "tee": "sim",
            "measurement": "0" * 64,
            "evidence": {"tee": "sim", "raw": "e30="},
            "public_keys": {"x25519": "AA==", "ed25519": "AA=="},
            **overrides,
        }
        response = self.anon.post("/v1/executors", json=body)
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    def close(self) -> None:
        for member in self.members:
            member.http.close()
        self.anon.close()
        self.app.state.platform.store.close()


@contextmanager
def open_api(
    data_dir: Path, *, clock: Callable[[], datetime] = utcnow, **settings: Any
) -> Iterator[Api]:
    """A fresh app over ``data_dir`` with ``Settings(**settings)``; everything closed after."""
    config = Settings(data_dir=data_dir, **settings)
    app = create_app(config, clock=clock)
    api = Api(app=app, settings=config, anon=AppClient(app), members=[])
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with open_api(tmp_path / "data") as made:
        yield made


def upload_dataset(member: Member, content: bytes, *, name: str = "rows.csv") -> dict[str, Any]:
    """Create a dataset and upload ``content`` as its (already sealed) ciphertext."""
    created = member.http.post("/v1/datasets", json={"name": name, "kind": "table"})
    assert created.status_code == 201, created.text
    dataset_id = created.json()["id"]
    uploaded = member.http.put(f"/v1/datasets/{dataset_id}/content", content=content)
    assert uploaded.status_code == 200, uploaded.text
    result: dict[str, Any] = uploaded.json()
    return result


def propose_echo(member: Member, dataset_id: str) -> dict[str, Any]:
    """Propose the built-in ``echo`` over one of ``member``'s datasets, output to ``member``."""
    body = {
        "function": "echo",
        "inputs": {"data": dataset_id},
        "outputs": {"data": {"recipients": [member.username]}},
    }
    response = member.http.post("/v1/tasks", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def approve(member: Member, task: dict[str, Any]) -> dict[str, Any]:
    """Sign the task's contract hash; the wrapped keys are opaque to the control plane."""
    signature = member.keys.signing_key.sign(APPROVAL_DOMAIN, task["contract_hash"].encode("ascii"))
    slots = [
        s for s, spec in task["contract"]["inputs"].items() if spec["owners"] == [member.username]
    ]
    body = {"signature": b64e(signature), "wrapped_keys": {slot: "AA==" for slot in slots}}
    response = member.http.post(f"/v1/tasks/{task['id']}/approve", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def run_body(
    member: Member, task: dict[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """The body of ``POST /v1/tasks/{id}/run``: the creator's signed run authorisation."""
    authorisation = sign_run_authorisation(
        task["contract_hash"],
        member.keys.signing_key,
        issued_at=now or utcnow(),
        run_nonce="0" * 32,
    )
    return {"authorisation": authorisation}


def leased_task(api: Api, member: Member, executor_token: str) -> dict[str, Any]:
    """A one-member echo task, approved, run and leased by the executor: the lease bundle."""
    dataset = upload_dataset(member, b"TFSEAL ciphertext stand-in")
    task = propose_echo(member, dataset["id"])
    approve(member, task)
    response = member.http.post(f"/v1/tasks/{task['id']}/run", json=run_body(member, task))
    assert response.status_code == 200, response.text
    with AppClient(api.app, token=executor_token) as executor:
        leased = executor.post("/v1/executor/lease")
    assert leased.status_code == 200, leased.text
    result: dict[str, Any] = leased.json()
    assert result["task_id"] == task["id"]
    return result
