"""The enclave's own checks of task state: expiry, run authorisation, withdrawals, and resuming a
checkpoint under a run authorisation past its start window (enclave/run_state.py, runtime.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from session_kit import Party

from teeflow.crypto import (
    DataKey,
    b64e,
    hpke_seal,
    key_wrap_info,
    seal_bytes,
    sha256_hex,
)
from teeflow.enclave.contract import APPROVAL_DOMAIN, contract_hash
from teeflow.enclave.events import open_event
from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.run_state import (
    MAX_START_WITHIN_S,
    RunStateError,
    check_run_state,
    sign_run_authorisation,
    sign_withdrawal,
)
from teeflow.enclave.runtime import EnclaveRuntime, TaskBundle
from teeflow.functions.api import Context

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MEASUREMENT = "cd" * 32
NONCE = "ab" * 16


@dataclass
class Kit:
    """A signed two-party task (alice creates and receives, bob owns the input)."""

    identity: EnclaveIdentity
    parties: dict[str, Party]
    contract: dict[str, Any]
    approvals: dict[str, dict[str, Any]]
    ciphertext: bytes

    @property
    def chash(self) -> str:
        return contract_hash(self.contract)

    def run(self, *, at: datetime = NOW, within: int = 600, by: str = "alice") -> dict[str, Any]:
        key = self.parties[by].signing_key
        return sign_run_authorisation(
            self.chash, key, issued_at=at, run_nonce=NONCE, start_within_s=within
        )

    def bundle(self, **changes: Any) -> TaskBundle:
        base = TaskBundle(self.contract, self.approvals, run_authorisation=self.run())
        return replace(base, **changes)


def make_kit(function: str = "echo", *, expires: timedelta = timedelta(days=7)) -> Kit:
    from teeflow.functions.registry import get_builtin

    identity = EnclaveIdentity.generate()
    parties = {"alice": Party("alice"), "bob": Party("bob")}
    key = DataKey.generate()
    ciphertext = seal_bytes(b"bob's rows\n", key)
    created = NOW - timedelta(hours=1)
    contract: dict[str, Any] = {
        "version": 2,
        "task_id": "t" * 32,
        "nonce": "n" * 32,
        "created_at": created.isoformat(),
        "expires_at": (created + expires).isoformat(),
        "creator": "alice",
        "function": {
            "kind": "builtin",
            "name": function,
            "code_sha256": get_builtin("echo").code_sha256,
        },
        "executor": {
            "tee": "sim",
            "measurement": MEASUREMENT,
            "public_keys": identity.public_keys(),
        },
        "participants": {name: party.public() for name, party in parties.items()},
        "inputs": {
            "data": {
                "dataset_id": "d" * 32,
                "owners": ["bob"],
                "ciphertext_sha256": sha256_hex(ciphertext),
                "joint": None,
            }
        },
        "arguments": {},
        "outputs": {"data": {"recipients": ["alice"]}},
        "disclosure": {"progress": ["alice"], "errors": ["alice"]},
    }
    chash = contract_hash(contract)
    approvals = {
        name: {
            "signature": b64e(party.signing_key.sign(APPROVAL_DOMAIN, chash.encode("ascii"))),
            "wrapped_keys": {},
        }
        for name, party in parties.items()
    }
    wrap = key_wrap_info("input", chash, "data")
    approvals["bob"]["wrapped_keys"]["data"] = b64e(
        hpke_seal(key.raw, identity.receiving_key.public_key, info=wrap)
    )
    return Kit(identity, parties, contract, approvals, ciphertext)


@pytest.fixture
def kit() -> Kit:
    return make_kit()


def check(kit: Kit, *, now: datetime = NOW, **bundle: Any) -> Any:
    built = kit.bundle(**bundle)
    return check_run_state(
        kit.contract,
        kit.chash,
        run_authorisation=built.run_authorisation,
        withdrawals=built.withdrawals,
        now=now,
    )


# -- check_run_state ---------------------------------------------------------------------------


def test_a_fresh_run_authorisation_of_the_creator_is_granted(kit: Kit) -> None:
    grant = check(kit, now=NOW + timedelta(minutes=5))

    assert grant.fresh and grant.issued_at == NOW


def test_past_the_start_window_the_grant_is_stale(kit: Kit) -> None:
    grant = check(kit, now=NOW + timedelta(minutes=11))

    assert not grant.fresh


def test_no_run_authorisation_is_refused(kit: Kit) -> None:
    with pytest.raises(RunStateError, match="creator has not authorised this run"):
        check(kit, run_authorisation=None)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda k: k.run(by="bob"), "does not verify"),
        (
            lambda k: sign_run_authorisation(
                "0" * 64, k.parties["alice"].signing_key, issued_at=NOW, run_nonce=NONCE
            ),
            "for another contract",
        ),
        (lambda k: {**k.run(), "body": {**k.run()["body"], "start_within_s": 99}}, "verify"),
        (lambda k: k.run(at=NOW + timedelta(hours=1)), "issued in the future"),
        (lambda k: k.run(within=MAX_START_WITHIN_S + 1), "start_within_s must be"),
        (lambda k: {"body": "x"}, "malformed"),
    ],
    ids=["other-signer", "other-contract", "edited", "future", "window-too-long", "malformed"],
)
def test_a_run_authorisation_that_is_not_the_creators_for_this_contract_is_refused(
    kit: Kit, make: Callable[[Kit], Any], message: str
) -> None:
    with pytest.raises(RunStateError, match=message):
        check(kit, run_authorisation=make(kit))


def test_an_expired_contract_is_refused() -> None:
    kit = make_kit(expires=timedelta(minutes=30))

    with pytest.raises(RunStateError, match="contract expired at"):
        check(kit)


def test_a_withdrawal_signed_by_the_participant_is_refused(kit: Kit) -> None:
    withdrawal = sign_withdrawal(
        kit.chash, kit.parties["bob"].signing_key, username="bob", withdrawn_at=NOW
    )

    with pytest.raises(RunStateError, match="'bob' withdrew its approval"):
        check(kit, withdrawals={"bob": withdrawal})


def test_a_withdrawal_that_is_not_the_participants_is_refused_as_such(kit: Kit) -> None:
    forged = sign_withdrawal(
        kit.chash, kit.parties["alice"].signing_key, username="bob", withdrawn_at=NOW
    )
    other = sign_withdrawal(
        "0" * 64, kit.parties["bob"].signing_key, username="bob", withdrawn_at=NOW
    )

    with pytest.raises(RunStateError, match="does not verify"):
        check(kit, withdrawals={"bob": forged})
    with pytest.raises(RunStateError, match="another contract"):
        check(kit, withdrawals={"bob": other})


# -- the runtime -------------------------------------------------------------------------------


@dataclass
class Host:
    ciphertext: bytes
    checkpoint: bytes | None = None
    saved: list[bytes] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)

    def read_input(self, slot: str) -> bytes:
        return self.ciphertext

    def read_function_source(self) -> bytes:
        raise AssertionError("built-in")

    def load_checkpoint(self) -> bytes | None:
        return self.checkpoint

    def save_checkpoint(self, sealed: bytes, sequence: int) -> None:
        self.saved.append(sealed)

    def emit_event(self, recipient: str, payload: str) -> None:
        self.events.append((recipient, payload))


def _checkpointing(ctx: Context) -> None:
    """Resumes from its own state: counts runs, checkpoints, reports progress, then echoes."""
    runs = int(ctx.restore() or b"0") + 1
    ctx.progress(runs=runs)
    ctx.checkpoint(str(runs).encode())
    for slot, data in ctx.inputs.items():
        ctx.outputs[slot].write(data.read_bytes())


@pytest.fixture
def checkpointing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``echo`` built-in, replaced by one that checkpoints (same approved code hash)."""
    from teeflow.functions import registry

    real = registry.get_builtin

    class _Builtin:
        code_sha256 = real("echo").code_sha256
        declarations = real("echo").declarations
        signature = real("echo").signature

        @staticmethod
        def load() -> Callable[[Context], None]:
            return _checkpointing

    monkeypatch.setattr(registry, "get_builtin", lambda name: _Builtin())


def runtime_at(kit: Kit, now: datetime) -> EnclaveRuntime:
    return EnclaveRuntime(
        identity=kit.identity,
        tee="sim",
        measurement=MEASUREMENT,
        checkpoint_interval_s=0,
        progress_interval_s=0,
        clock=lambda: now,
    )


def _event_seqs(kit: Kit, host: Host) -> list[int]:
    return [
        open_event(
            payload,
            chash=kit.chash,
            recipient="alice",
            receiving_key=kit.parties["alice"].receiving_key,
            enclave_key=kit.identity.signing_key.verify_key,
        )["seq"]
        for _, payload in host.events
    ]


@pytest.mark.usefixtures("checkpointing")
def test_a_stale_run_authorisation_resumes_only_its_own_checkpoint(kit: Kit) -> None:
    first = Host(kit.ciphertext)
    runtime_at(kit, NOW).execute(kit.bundle(), first, now=NOW)
    later = NOW + timedelta(hours=3)

    resumed = Host(kit.ciphertext, checkpoint=first.saved[-1])
    result = runtime_at(kit, later).execute(kit.bundle(), resumed, now=later)
    fresh_start = runtime_at(kit, later).execute(kit.bundle(), Host(kit.ciphertext), now=later)
    rerun = kit.bundle(run_authorisation=kit.run(at=NOW - timedelta(minutes=1)))
    other_run = runtime_at(kit, later).execute(
        rerun, Host(kit.ciphertext, first.saved[-1]), now=later
    )

    assert result.status == "succeeded"
    assert _event_seqs(kit, first) == [1] and _event_seqs(kit, resumed) == [2]
    assert fresh_start.status == other_run.status == "failed"
    assert "past its start window" in fresh_start.reason
    assert "past its start window" in other_run.reason


def test_the_enclave_uses_its_own_clock_not_the_hosts(kit: Kit) -> None:
    late = NOW + timedelta(days=30)

    result = runtime_at(kit, late).execute(kit.bundle(), Host(kit.ciphertext), now=NOW)

    assert result.status == "failed" and "contract expired" in result.reason


def test_a_succeeded_receipt_names_the_run_authorisation(kit: Kit) -> None:
    result = runtime_at(kit, NOW).execute(kit.bundle(), Host(kit.ciphertext), now=NOW)

    assert result.status == "succeeded"
    assert result.receipt["body"]["run"]["authorised_at"] == NOW.isoformat()
