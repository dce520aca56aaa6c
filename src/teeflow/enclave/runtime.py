"""The trusted task runner: checks everything the untrusted host hands in, then runs the function.

The host (control plane + executor shim) is not trusted. It supplies a :class:`TaskBundle`
(contract, approvals, provenance of joint inputs) and byte streams through :class:`Host`. The
enclave recomputes the contract hash, checks it was made for this measurement and key, checks
every participant's signature, checks every ciphertext hash, and only then unwraps keys. Outputs
are sealed under fresh keys wrapped to the contract's recipients (or, for joint outputs, to the
enclave itself); the result carries a receipt signed with the enclave key.
"""

from __future__ import annotations

import shutil
import tempfile
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from teeflow.crypto import (
    DataKey,
    IntegrityError,
    PublicKey,
    b64e,
    canonical_json,
    hpke_seal,
    key_wrap_info,
    seal_bytes,
    sha256_hex,
    unseal_bytes,
)
from teeflow.enclave.checks import TaskRejected, check_bundle
from teeflow.enclave.identity import EnclaveIdentity, derive_key
from teeflow.enclave.receipt import sign_receipt
from teeflow.functions.api import Context, FunctionError, InputData, OutputData

__all__ = ["EnclaveRuntime", "ExecutionResult", "Host", "SealedOutput", "TaskBundle"]


class Host(Protocol):
    """Untrusted I/O the enclave uses. Nothing it returns is believed without a check."""

    def read_input(self, slot: str) -> bytes: ...

    def read_function_source(self) -> bytes: ...

    def load_checkpoint(self) -> bytes | None: ...

    def save_checkpoint(self, sealed: bytes, sequence: int) -> None: ...

    def emit_event(self, recipient: str, payload: str) -> None: ...


@dataclass(frozen=True)
class TaskBundle:
    """What the control plane hands the enclave for one task."""

    contract: Mapping[str, Any]
    approvals: Mapping[str, Mapping[str, Any]]
    """username -> {"signature": b64, "wrapped_keys": {slot: b64}}"""
    joint_inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """input slot -> {"receipt": signed receipt of the producing task, "wrapped_key": b64}"""


@dataclass(frozen=True)
class SealedOutput:
    ciphertext: bytes
    ciphertext_sha256: str
    wrapped_keys: dict[str, str]
    """recipient username -> b64 HPKE-wrapped key; for a joint output: {"enclave": …}."""
    joint_owners: list[str] | None


@dataclass(frozen=True)
class ExecutionResult:
    status: str
    """"succeeded" or "failed"."""
    outputs: dict[str, SealedOutput]
    receipt: dict[str, Any]
    reason: str
    """Public failure reason (never function data); empty on success."""


class EnclaveRuntime:
    """Runs tasks for one enclave identity and measurement."""

    def __init__(
        self,
        *,
        identity: EnclaveIdentity,
        tee: str,
        measurement: str,
        function_timeout_s: float = 3600.0,
    ) -> None:
        self.identity = identity
        self.tee = tee
        self.measurement = measurement
        self.function_timeout_s = function_timeout_s

    def execute(self, bundle: TaskBundle, host: Host, *, now: datetime) -> ExecutionResult:
        """Check and run one task. Never raises for a task-level problem: it returns a failed
        result with a public reason and a signed receipt."""
        contract = bundle.contract
        chash = ""
        input_hashes: dict[str, str] = {}
        try:
            plan = check_bundle(
                bundle, identity=self.identity, tee=self.tee, measurement=self.measurement
            )
            chash = plan.contract_hash
            inputs, input_hashes = self._open_inputs(
                plan.contract_hash, bundle, plan.input_keys, host
            )
            source = self._open_function(plan.function_key, contract, host)
        except TaskRejected as exc:
            return self._failed(contract, chash, input_hashes, str(exc), now)
        scratch = Path(tempfile.mkdtemp(prefix="teeflow-task-", dir=_scratch_root()))
        try:
            outputs = {slot: OutputData(slot) for slot in contract["outputs"]}
            ctx = self._context(chash, contract, inputs, outputs, scratch, host)
            error = self._run_function(contract, source, ctx)
            if error is None:
                missing = [slot for slot, out in outputs.items() if not out.written]
                if missing:
                    error = f"function did not write output(s) {missing}"
            if error is not None:
                self._emit(chash, contract, "errors", host, {"kind": "error", "message": error})
                recipients = contract.get("disclosure", {}).get("errors", [])
                reason = "function failed; its error was sent encrypted to: " + (
                    ", ".join(recipients) or "nobody (the contract discloses errors to no one)"
                )
                return self._failed(contract, chash, input_hashes, reason, now)
            sealed = {
                slot: self._seal_output(chash, contract, slot, out) for slot, out in outputs.items()
            }
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        receipt = self._receipt(contract, chash, input_hashes, sealed, "succeeded", "", now)
        return ExecutionResult("succeeded", sealed, receipt, "")

    # -- inputs -----------------------------------------------------------------------------

    def _open_inputs(
        self, chash: str, bundle: TaskBundle, keys: Mapping[str, DataKey], host: Host
    ) -> tuple[dict[str, InputData], dict[str, str]]:
        inputs: dict[str, InputData] = {}
        hashes: dict[str, str] = {}
        for slot, spec in bundle.contract["inputs"].items():
            ciphertext = host.read_input(slot)
            digest = sha256_hex(ciphertext)
            if digest != spec["ciphertext_sha256"]:
                raise TaskRejected(
                    f"input {slot!r}: ciphertext hash {digest[:16]}… differs from the approved "
                    f"{spec['ciphertext_sha256'][:16]}… (the dataset changed after approval)"
                )
            try:
                plaintext = unseal_bytes(ciphertext, keys[slot])
            except IntegrityError as exc:
                raise TaskRejected(f"input {slot!r} does not decrypt: {exc}") from None
            inputs[slot] = InputData(slot, plaintext, owner=",".join(spec["owners"]))
            hashes[slot] = digest
        return inputs, hashes

    def _open_function(
        self, key: DataKey | None, contract: Mapping[str, Any], host: Host
    ) -> str | None:
        function = contract["function"]
        if function["kind"] == "builtin":
            return None
        blob = host.read_function_source()
        if function.get("sealed"):
            if key is None:
                raise TaskRejected("sealed function code has no wrapped key from its owner")
            try:
                blob = unseal_bytes(blob, key)
            except IntegrityError as exc:
                raise TaskRejected(f"function code does not decrypt: {exc}") from None
        if sha256_hex(blob) != function["code_sha256"]:
            raise TaskRejected("function code differs from the code hash the parties approved")
        try:
            return blob.decode("utf-8")
        except UnicodeDecodeError:
            raise TaskRejected("function code is not UTF-8 Python source") from None

    # -- running ----------------------------------------------------------------------------

    def _context(
        self,
        chash: str,
        contract: Mapping[str, Any],
        inputs: dict[str, InputData],
        outputs: dict[str, OutputData],
        scratch: Path,
        host: Host,
    ) -> Context:
        checkpoint_key = derive_key(self.identity.secret, purpose="checkpoint", context=chash)
        restored: bytes | None = None
        counter = [0]
        sealed = host.load_checkpoint()
        if sealed is not None:
            try:
                payload = unseal_bytes(sealed, checkpoint_key)
            except IntegrityError as exc:
                raise TaskRejected(f"checkpoint does not decrypt: {exc}") from None
            # The sequence travels inside the sealed checkpoint, so a resumed run keeps counting
            # where the crashed one stopped.
            counter[0], restored = int.from_bytes(payload[:8], "big"), payload[8:]

        def save(state: bytes) -> None:
            counter[0] += 1
            payload = counter[0].to_bytes(8, "big") + state
            host.save_checkpoint(seal_bytes(payload, checkpoint_key), counter[0])

        def progress(metrics: Mapping[str, Any]) -> None:
            self._emit(chash, contract, "progress", host, {"kind": "progress", **metrics})

        return Context(
            inputs=inputs,
            args=dict(contract["arguments"]),
            outputs=outputs,
            scratch=scratch,
            _progress=progress,
            _checkpoint=save,
            _restored=restored,
        )

    def _run_function(
        self, contract: Mapping[str, Any], source: str | None, ctx: Context
    ) -> str | None:
        """Run the function; return a party-facing error message, or None on success."""
        function = contract["function"]
        try:
            if source is None:
                from teeflow.functions.registry import get_builtin

                get_builtin(function["name"]).load()(ctx)
            else:
                from teeflow.functions.sandbox import run_in_sandbox

                run_in_sandbox(source, ctx, timeout_s=self.function_timeout_s)
        except FunctionError as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - any function failure fails the task, not the enclave
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            return f"function raised {last}"
        return None

    def _emit(
        self,
        chash: str,
        contract: Mapping[str, Any],
        channel: str,
        host: Host,
        data: dict[str, Any],
    ) -> None:
        for name in contract.get("disclosure", {}).get(channel, []):
            recipient = PublicKey.from_b64(contract["participants"][name]["enc_pk"])
            info = key_wrap_info("event", chash, name)
            host.emit_event(
                name, b64e(hpke_seal(canonical_json(_jsonable(data)), recipient, info=info))
            )

    # -- outputs ----------------------------------------------------------------------------

    def _seal_output(
        self, chash: str, contract: Mapping[str, Any], slot: str, out: OutputData
    ) -> SealedOutput:
        spec = contract["outputs"][slot]
        key = DataKey.generate()
        ciphertext = seal_bytes(out.getvalue(), key)
        wrapped: dict[str, str] = {}
        joint = spec.get("joint_owners")
        if joint:
            info = key_wrap_info("joint-output", chash, slot)
            enclave_pk = self.identity.receiving_key.public_key
            wrapped["enclave"] = b64e(hpke_seal(key.raw, enclave_pk, info=info))
        else:
            for name in spec["recipients"]:
                recipient = PublicKey.from_b64(contract["participants"][name]["enc_pk"])
                info = key_wrap_info("output", chash, slot)
                wrapped[name] = b64e(hpke_seal(key.raw, recipient, info=info))
        return SealedOutput(
            ciphertext, sha256_hex(ciphertext), wrapped, list(joint) if joint else None
        )

    def _receipt(
        self,
        contract: Mapping[str, Any],
        chash: str,
        inputs: Mapping[str, str],
        outputs: Mapping[str, SealedOutput],
        status: str,
        reason: str,
        now: datetime,
    ) -> dict[str, Any]:
        body = {
            "version": 1,
            "task_id": contract.get("task_id", ""),
            "contract_hash": chash,
            "tee": self.tee,
            "measurement": self.measurement,
            "simulated": self.tee == "sim",
            "status": status,
            "reason": reason,
            "inputs": dict(inputs),
            "outputs": {
                slot: {
                    "ciphertext_sha256": out.ciphertext_sha256,
                    "size": len(out.ciphertext),
                    "recipients": sorted(w for w in out.wrapped_keys if w != "enclave"),
                    "joint_owners": out.joint_owners,
                }
                for slot, out in outputs.items()
            },
            "finished_at": now.isoformat(),
        }
        return sign_receipt(body, self.identity.signing_key)

    def _failed(
        self,
        contract: Mapping[str, Any],
        chash: str,
        inputs: Mapping[str, str],
        reason: str,
        now: datetime,
    ) -> ExecutionResult:
        receipt = self._receipt(contract, chash, inputs, {}, "failed", reason, now)
        return ExecutionResult("failed", {}, receipt, reason)


def _jsonable(data: Mapping[str, Any]) -> dict[str, Any]:
    """Progress metrics as plain JSON values (floats stay floats, numpy scalars become Python)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, float) and value != value:  # NaN is not JSON
            value = None
        out[str(key)] = value
    return out


def _scratch_root() -> str | None:
    """Task scratch space in memory (/dev/shm) where the host has it."""
    shm = Path("/dev/shm")  # noqa: S108 - a fresh mkdtemp (0700) inside it, not a fixed name
    return str(shm) if shm.is_dir() else None
