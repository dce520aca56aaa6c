"""A member against the others (issue 17, item 6): sign-in throttling that cannot lock another
member out, storage and task quotas, dataset deletion, and proposals that cannot flood a list."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from teeflow.crypto import SigningKey, b64e
from teeflow.signin import SIGN_IN_DOMAIN, sign_in_message

from ._asgi import AppClient
from .conftest import PASSWORD, Api, Member, open_api, propose_echo, upload_dataset

START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class World:
    def __init__(self, api: Api, now: list[datetime]) -> None:
        self.api = api
        self.now = now

    def advance(self, seconds: float) -> None:
        self.now[0] += timedelta(seconds=seconds)

    def login(self, username: str, password: str, *, source: str, **extra: Any) -> Any:
        with AppClient(self.api.app, source=source) as client:
            body = {"username": username, "password": password, **extra}
            return client.post("/v1/sessions", json=body)

    def proof(self, username: str, key: SigningKey) -> dict[str, str]:
        at = self.now[0].isoformat()
        signature = key.sign(SIGN_IN_DOMAIN, sign_in_message(username, at))
        return {"at": at, "signature": b64e(signature)}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    now = [START]
    with open_api(
        tmp_path / "data",
        clock=lambda: now[0],
        max_storage_bytes=100,
        max_open_tasks=3,
        max_open_proposals_per_member=2,
        login_source_failures_allowed=8,
        login_account_failures_allowed=12,
    ) as api:
        api.register_executor()  # proposals need an executor to name
        yield World(api, now)


# -- sign-in throttling ---------------------------------------------------------------------


def test_a_strangers_wrong_passwords_throttle_the_stranger_not_the_member(world: World) -> None:
    bob = world.api.member("bob")
    tries = [world.login("bob", f"guess-{n}", source="203.0.113.7") for n in range(6)]

    from_elsewhere = world.login("bob", PASSWORD, source="198.51.100.2")

    assert [t.status_code for t in tries] == [401] * 5 + [429]
    assert "try again in 30 s" in tries[5].json()["error"]["message"]
    assert from_elsewhere.status_code == 200
    assert bob.http.get("/v1/users/me").status_code == 200  # tokens are never touched


def test_the_backoff_expires_and_then_doubles(world: World) -> None:
    world.api.member("bob")
    for n in range(5):
        world.login("bob", f"guess-{n}", source="203.0.113.7")

    world.advance(30)
    again = world.login("bob", "guess-5", source="203.0.113.7")
    world.advance(59)
    early = world.login("bob", "guess-6", source="203.0.113.7")
    world.advance(1)
    on_time = world.login("bob", PASSWORD, source="203.0.113.7")

    assert again.status_code == 401
    assert early.status_code == 429
    assert on_time.status_code == 200


def test_a_source_spraying_many_names_is_throttled(world: World) -> None:
    spray = [world.login(f"user{n}", "password1", source="203.0.113.9") for n in range(9)]

    assert [r.status_code for r in spray] == [401] * 8 + [429]


def test_guesses_from_many_sources_only_delay_the_account_and_never_its_key_holder(
    world: World,
) -> None:
    bob = world.api.member("bob")
    for n in range(12):
        world.login("bob", f"guess-{n}", source=f"203.0.113.{n + 10}")

    delayed = world.login("bob", PASSWORD, source="198.51.100.2")
    forged = world.login(
        "bob", PASSWORD, source="198.51.100.2", proof=world.proof("bob", SigningKey.generate())
    )
    signed = world.login(
        "bob", PASSWORD, source="198.51.100.2", proof=world.proof("bob", bob.keys.signing_key)
    )
    world.advance(1)
    later = world.login("bob", PASSWORD, source="198.51.100.3")

    assert delayed.status_code == 429 and forged.status_code == 429
    assert signed.status_code == 200
    assert later.status_code == 200


def test_a_key_signed_sign_in_still_needs_the_password(world: World) -> None:
    bob = world.api.member("bob")

    wrong = world.login(
        "bob", "not-it", source="198.51.100.2", proof=world.proof("bob", bob.keys.signing_key)
    )

    assert wrong.status_code == 401


# -- storage quota and deletion -------------------------------------------------------------


def _create(member: Member) -> str:
    created = member.http.post("/v1/datasets", json={"name": "t.csv", "kind": "table"})
    dataset_id: str = created.json()["id"]
    return dataset_id


def test_storage_over_the_quota_is_refused_until_the_owner_deletes(world: World) -> None:
    alice = world.api.member("alice")
    first = upload_dataset(alice, b"x" * 60)
    second = _create(alice)

    refused = alice.http.put(f"/v1/datasets/{second}/content", content=b"y" * 60)
    deleted = alice.http.delete(f"/v1/datasets/{first['id']}")
    accepted = alice.http.put(f"/v1/datasets/{second}/content", content=b"y" * 60)

    assert refused.status_code == 413
    error = refused.json()["error"]
    assert error["code"] == "storage_quota_exceeded"
    assert "100 bytes" in error["message"] and "teeflow dataset delete" in error["message"]
    assert deleted.status_code == 204 and accepted.status_code == 200


def test_deleting_a_dataset_removes_its_blob_and_keeps_its_record_and_audit(world: World) -> None:
    alice, bob = world.api.member("alice"), world.api.member("bob")
    dataset = upload_dataset(alice, b"ciphertext stand-in")
    task = propose_echo(alice, dataset["id"])
    blob = world.api.data_dir / "blobs" / "datasets" / dataset["id"]
    assert blob.exists()

    not_owner = bob.http.delete(f"/v1/datasets/{dataset['id']}")
    in_use = alice.http.delete(f"/v1/datasets/{dataset['id']}")
    alice.http.post(f"/v1/tasks/{task['id']}/cancel")
    deleted = alice.http.delete(f"/v1/datasets/{dataset['id']}")

    assert not_owner.status_code == 403
    assert in_use.status_code == 409 and task["id"] in in_use.json()["error"]["message"]
    assert deleted.status_code == 204
    assert not blob.exists()
    assert alice.http.get(f"/v1/datasets/{dataset['id']}").json()["state"] == "deleted"
    download = alice.http.get(f"/v1/datasets/{dataset['id']}/content")
    assert download.status_code == 409
    audit = world.api.app.state.platform.store.list_audit()
    assert [e.action for e in audit if e.subject == dataset["id"]][-1] == "dataset.delete"
    reuse = alice.http.post(
        "/v1/tasks",
        json={
            "function": "echo",
            "inputs": {"data": dataset["id"]},
            "outputs": {"data": {"recipients": ["alice"]}},
        },
    )
    assert reuse.status_code in (409, 422)


# -- task quotas and flooding ---------------------------------------------------------------


def test_open_tasks_over_the_quota_are_refused(world: World) -> None:
    alice = world.api.member("alice")
    dataset = upload_dataset(alice, b"z")
    for _ in range(3):
        propose_echo(alice, dataset["id"])

    body = {
        "function": "echo",
        "inputs": {"data": dataset["id"]},
        "outputs": {"data": {"recipients": ["alice"]}},
    }
    refused = alice.http.post("/v1/tasks", json=body)

    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "task_quota_exceeded" and "teeflow task cancel" in error["message"]


def test_proposals_naming_a_member_cannot_flood_their_list(world: World) -> None:
    bob, mallory = world.api.member("bob"), world.api.member("mallory")
    mine = upload_dataset(bob, b"bob's")
    own_task = propose_echo(bob, mine["id"])
    body = {
        "function": "echo",
        "inputs": {"data": mine["id"]},
        "outputs": {"data": {"recipients": ["mallory"]}},
    }

    flood = [mallory.http.post("/v1/tasks", json=body) for _ in range(3)]
    own = bob.http.get("/v1/tasks", params={"role": "creator"}).json()
    invited = bob.http.get("/v1/tasks", params={"role": "invited", "limit": 1}).json()

    assert [r.status_code for r in flood] == [201, 201, 429]
    assert flood[2].json()["error"]["code"] == "proposal_quota_exceeded"
    assert [t["id"] for t in own] == [own_task["id"]]
    assert len(invited) == 1 and invited[0]["creator"] == "mallory"


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(tmp_path: Path) -> None:
    now = [START]
    with open_api(tmp_path / "proxied", clock=lambda: now[0], trusted_proxies=["10.0.0.5"]) as api:
        api.member("bob")
        forged = {"X-Forwarded-For": "198.51.100.77, 203.0.113.7"}

        def attempt(source: str, password: str, headers: dict[str, str]) -> int:
            with AppClient(api.app, source=source) as client:
                body = {"username": "bob", "password": password}
                return client.post("/v1/sessions", json=body, headers=headers).status_code

        via_proxy = [attempt("10.0.0.5", f"guess-{n}", forged) for n in range(6)]
        other_client = attempt("10.0.0.5", PASSWORD, {"X-Forwarded-For": "198.51.100.2"})
        direct = [attempt("192.0.2.1", f"guess-{n}", forged) for n in range(6)]
        spoofed_elsewhere = attempt("192.0.2.1", PASSWORD, {"X-Forwarded-For": "198.51.100.9"})

    assert via_proxy == [401] * 5 + [429]  # the forwarded client, 203.0.113.7, is throttled
    assert other_client == 200  # another client behind the same proxy is not
    assert direct == [401] * 5 + [429]
    assert spoofed_elsewhere == 429  # an untrusted peer's X-Forwarded-For changes nothing
