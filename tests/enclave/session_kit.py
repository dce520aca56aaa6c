"""An enclave, its participants and a signed ``tabular-serve`` contract, in process, with a fake
host: what the untrusted executor would hand the enclave session (fixtures in conftest.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from teeflow.crypto import (
    DataKey,
    PrivateKey,
    SigningKey,
    b64e,
    hpke_seal,
    key_wrap_info,
    seal_bytes,
    sha256_hex,
)
from teeflow.enclave.contract import APPROVAL_DOMAIN, contract_hash
from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.run_state import sign_run_authorisation
from teeflow.enclave.runtime import EnclaveRuntime, TaskBundle
from teeflow.enclave.session import SessionRequest
from teeflow.enclave.session_wire import REQUEST_ID, new_request_id, open_response, seal_request
from teeflow.functions.api import Context, InputData, OutputData
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.functions.registry import get_builtin

MEASUREMENT = "ab" * 32
NOW = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class Party:
    name: str
    signing_key: SigningKey = field(default_factory=SigningKey.generate)
    receiving_key: PrivateKey = field(default_factory=PrivateKey.generate)

    def public(self) -> dict[str, str]:
        return {
            "sign_pk": self.signing_key.verify_key.b64(),
            "enc_pk": self.receiving_key.public_key.b64(),
        }


@dataclass
class FakeHost:
    """The untrusted host: hands out the model ciphertext, records the sealed events."""

    model_ciphertext: bytes
    events: list[tuple[str, str]] = field(default_factory=list)
    checkpoints: list[tuple[int, bytes]] = field(default_factory=list)

    def read_input(self, slot: str) -> bytes:
        assert slot == "model"
        return self.model_ciphertext

    def read_function_source(self) -> bytes:
        raise AssertionError("a built-in has no uploaded source")

    def load_checkpoint(self) -> bytes | None:
        return self.checkpoints[-1][1] if self.checkpoints else None

    def save_checkpoint(self, sealed: bytes, sequence: int) -> None:
        self.checkpoints.append((sequence, sealed))

    def emit_event(self, recipient: str, payload: str) -> None:
        self.events.append((recipient, payload))


@dataclass
class Served:
    """A signed session contract and everything needed to open it and talk to it."""

    runtime: EnclaveRuntime
    bundle: TaskBundle
    host: FakeHost
    parties: dict[str, Party]
    model: bytes
    ids: dict[str, str] = field(default_factory=dict)

    def rid(self, tag: str) -> str:
        """The request id a test calls ``tag``: a fresh one the first time, then the same (a
        ``tag`` that is a request id already is that id)."""
        if REQUEST_ID.match(tag):
            return tag
        if tag not in self.ids:
            self.ids[tag] = new_request_id(tag)
        return self.ids[tag]

    @property
    def chash(self) -> str:
        return contract_hash(self.bundle.contract)

    def request(
        self, sender: str, payload: bytes, request_id: str, *, signer: str | None = None
    ) -> SessionRequest:
        """A request from ``sender``, sealed to the enclave and signed by ``signer`` (default:
        the sender itself); ``request_id`` is a tag for :meth:`rid`."""
        request_id = self.rid(request_id)
        ciphertext, signature = seal_request(
            payload,
            contract_hash=self.chash,
            requester=sender,
            request_id=request_id,
            enclave_key=self.runtime.identity.receiving_key.public_key,
            signing_key=self.parties[signer or sender].signing_key,
        )
        return SessionRequest(sender, request_id, ciphertext, signature)

    def open(self, request: SessionRequest, sealed: bytes, signature: bytes) -> dict[str, Any]:
        """What the requester reads of the enclave's answer (IntegrityError if forged)."""
        return open_response(
            sealed,
            signature,
            contract_hash=self.chash,
            requester=request.requester,
            request_id=request.request_id,
            request_ciphertext=request.ciphertext,
            enclave_key=self.runtime.identity.signing_key.verify_key,
            receiving_key=self.parties[request.requester].receiving_key,
        )


def train_model() -> bytes:
    """A small MLP from ``tabular-train`` on the two hospitals' tables."""
    data = breast_cancer_hospitals()
    model = OutputData("model")
    with tempfile.TemporaryDirectory() as scratch:
        ctx = Context(
            inputs={
                "hospital_a": InputData("hospital_a", data["hospital_a.csv"]),
                "hospital_b": InputData("hospital_b", data["hospital_b.csv"]),
            },
            args={
                "label_column": "malignant",
                "id_column": "patient_id",
                "model": "mlp",
                "hidden": [16],
                "epochs": 3,
                "batch_size": 64,
                "seed": 0,
            },
            outputs={"model": model},
            scratch=Path(scratch),
        )
        get_builtin("tabular-train").load()(ctx)
    return model.getvalue()


ServeFactory = Callable[..., "Served"]


def make_served(
    model_bytes: bytes,
    *,
    arguments: dict[str, Any] | None = None,
    function: str = "tabular-serve",
    outputs: dict[str, Any] | None = None,
    skip_approval: str | None = None,
) -> Served:
    """A signed ``tabular-serve`` task: ``owner`` holds the model, ``alice`` and ``owner`` may
    query, ``bob`` is a participant (he receives the usage) who may not."""
    identity = EnclaveIdentity.generate()
    runtime = EnclaveRuntime(
        identity=identity, tee="sim", measurement=MEASUREMENT, clock=lambda: NOW
    )
    parties = {name: Party(name) for name in ("owner", "alice", "bob")}
    key = DataKey.generate()
    ciphertext = seal_bytes(model_bytes, key)
    contract: dict[str, Any] = {
        "version": 2,
        "task_id": "task-1",
        "nonce": "n-1",
        "created_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(days=7)).isoformat(),
        "creator": "owner",
        "function": {
            "kind": "builtin",
            "name": function,
            "code_sha256": get_builtin(function).code_sha256,
        },
        "executor": {
            "tee": "sim",
            "measurement": MEASUREMENT,
            "public_keys": identity.public_keys(),
        },
        "participants": {name: party.public() for name, party in parties.items()},
        "inputs": {
            "model": {
                "dataset_id": "model-1",
                "owners": ["owner"],
                "ciphertext_sha256": sha256_hex(ciphertext),
                "joint": None,
            }
        },
        "arguments": {"requesters": ["alice", "owner"], **(arguments or {})},
        "outputs": outputs or {"usage": {"recipients": ["bob", "owner"]}},
        "disclosure": {"errors": ["owner"]},
    }
    chash = contract_hash(contract)
    approvals: dict[str, dict[str, Any]] = {}
    for name, party in parties.items():
        if name == skip_approval:
            continue
        signature = b64e(party.signing_key.sign(APPROVAL_DOMAIN, chash.encode("ascii")))
        approvals[name] = {"signature": signature, "wrapped_keys": {}}
    if "owner" in approvals:
        info = key_wrap_info("input", chash, "model")
        approvals["owner"]["wrapped_keys"]["model"] = b64e(
            hpke_seal(key.raw, identity.receiving_key.public_key, info=info)
        )
    run = sign_run_authorisation(
        chash, parties["owner"].signing_key, issued_at=NOW, run_nonce="0" * 32
    )
    bundle = TaskBundle(contract=contract, approvals=approvals, run_authorisation=run)
    return Served(runtime, bundle, FakeHost(ciphertext), parties, model_bytes)
