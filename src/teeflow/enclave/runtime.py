"""The trusted task runner: checks everything the untrusted host hands in, then runs the function.

The host (control plane + executor shim) is not trusted. It supplies a :class:`TaskBundle`
(contract, approvals, provenance of joint inputs) and byte streams through :class:`Host`. The
enclave recomputes the contract hash, checks it was made for this measurement and key, checks
every participant's signature, checks every ciphertext hash, and only then unwraps keys. Outputs
are sealed under fresh keys wrapped to the contract's recipients (or, for joint outputs, to the
enclave itself); the result carries a receipt signed with the enclave key.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from teeflow.enclave.checkpoint_seal import CheckpointKeyError, open_checkpoint, seal_checkpoint
from teeflow.enclave.checks import TaskRejected, check_bundle
from teeflow.enclave.events import EventCounter
from teeflow.enclave.function_run import run_function, scratch_root, task_context
from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.keyring import KeyId, Keyring
from teeflow.enclave.memory import (
    MemoryBudgetExceeded,
    check_memory_budget,
    peak_memory_bytes,
    reset_peak_memory,
)
from teeflow.enclave.opening import checkpoint_state, open_function, open_inputs
from teeflow.enclave.outbox import Outbox
from teeflow.enclave.receipt import sign_receipt
from teeflow.enclave.run_state import RunGrant, stale_message
from teeflow.enclave.sealing import declaration_problem, owner_keys, seal_output, sealed_events
from teeflow.enclave.spend import privacy_receipt, refused_spend, spend_problem
from teeflow.enclave.task import (
    ExecutionResult,
    Host,
    OpenedTask,
    OpenRefused,
    SealedOutput,
    TaskBundle,
)
from teeflow.enclave.timing import PhaseTimer, TimedHost
from teeflow.functions.api import OutputData

__all__ = [
    "EnclaveRuntime",
    "ExecutionResult",
    "Host",
    "OpenRefused",
    "OpenedTask",
    "SealedOutput",
    "TaskBundle",
]
# The task's types live in enclave/task.py; they are re-exported here, where the executor and
# the inference session have always imported them.


class EnclaveRuntime:
    """Runs tasks for one enclave identity and measurement."""

    def __init__(
        self,
        *,
        identity: EnclaveIdentity,
        tee: str,
        measurement: str,
        function_timeout_s: float = 3600.0,
        checkpoint_interval_s: float = 1.0,
        progress_interval_s: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        memory_limit_bytes: int | None = None,
        key_epoch: int = 0,
        keyring: Keyring | None = None,
    ) -> None:
        self.identity = identity
        self.key_epoch = key_epoch
        """The epoch of ``identity`` in its keyring (0: a sim identity sealed on this host)."""
        self.keyring = keyring
        """Every epoch released to this measurement (None for a sealed sim identity)."""
        self.memory_limit_bytes = memory_limit_bytes
        """The TEE's memory (enclave size / CVM memory); larger tasks are refused (memory.py)."""
        self.tee = tee
        self.measurement = measurement
        self.function_timeout_s = function_timeout_s
        self.checkpoint_interval_s = checkpoint_interval_s
        """Functions that ask ``ctx.checkpoint_due()`` save at most this often (0: every time):
        an epoch longer than this is always checkpointed, shorter ones are batched, so a crash
        redoes at most one epoch or this many seconds of training, whichever is more."""
        self.progress_interval_s = progress_interval_s
        """Progress events leave at most this often; the latest one is always sent at the end."""
        self.clock = clock
        """The enclave's own time, for contract expiry and the run authorisation's start window
        (never the host's ``now``; a TEE's clock is only as good as docs/run-authorisation.md
        says)."""

    def execute(self, bundle: TaskBundle, host: Host, *, now: datetime) -> ExecutionResult:
        """Check and run one task. Never raises for a task-level problem: it returns a failed
        result with a public reason and a signed receipt."""
        timer = PhaseTimer()
        # Checkpoint and progress uploads leave on this thread while the function goes on; it
        # calls the untimed host (the timer is not thread-safe) and keeps its own total.
        outbox = Outbox()
        try:
            with timer.phase("other"):
                result = self._execute(bundle, TimedHost(host, timer), now, timer, outbox)
        finally:
            outbox.close()
        timings = {**timer.totals, "io (background)": outbox.seconds}
        if "function" in timer.cpu:  # the function's thread CPU: steadier than wall under load
            timings["function (cpu)"] = timer.cpu["function"]
        return dataclasses.replace(result, timings=timings)

    def _execute(
        self, bundle: TaskBundle, host: Host, now: datetime, timer: PhaseTimer, outbox: Outbox
    ) -> ExecutionResult:
        contract = bundle.contract
        try:
            opened = self._open_task(bundle, host, timer)
        except OpenRefused as exc:
            unspent = privacy_receipt(refused_spend(contract), ran=False)
            return self._failed(
                contract, exc.contract_hash, exc.input_hashes, str(exc), now, unspent
            )
        chash, input_hashes = opened.contract_hash, opened.input_hashes
        # From here the function reads the inputs: a DP spend stands whatever happens next.
        privacy = privacy_receipt(opened.spend, ran=True)
        source = opened.source
        try:
            size = sum(i.size for i in opened.inputs.values())
            check_memory_budget(contract, size, limit=self.memory_limit_bytes)
        except MemoryBudgetExceeded as exc:  # refused before the function ran: nothing spent
            unspent = privacy_receipt(opened.spend, ran=False)
            return self._failed(contract, chash, input_hashes, str(exc), now, unspent)
        reset_peak_memory()
        scratch = Path(tempfile.mkdtemp(prefix="teeflow-task-", dir=scratch_root()))
        try:
            outputs = {slot: OutputData(slot) for slot in contract["outputs"]}
            ctx = task_context(
                opened, contract, outputs, scratch, host, timer, outbox,
                identity=self.identity,
                seal_checkpoint=self.seal_checkpoint,
                checkpoint_interval_s=self.checkpoint_interval_s,
                progress_interval_s=self.progress_interval_s,
            )  # fmt: skip
            ctx.min_rows = opened.min_rows
            with timer.phase("function"):
                error = run_function(contract, source, ctx, timeout_s=self.function_timeout_s)
            if error is None:
                error = spend_problem(opened.spend, ctx.privacy_spent)
                privacy = privacy_receipt(opened.spend, ran=True, reported=ctx.privacy_spent)
            ctx.progress()  # flush the latest progress held back by the pacing
            with timer.phase("io"):
                outbox.drain()  # every checkpoint and event is out before the result
            if error is None:
                missing = [slot for slot, out in outputs.items() if not out.written]
                if missing:
                    error = f"function did not write output(s) {missing}"
            if error is not None:
                reason = self._disclose_error(chash, contract, host, timer, error, opened.events)
                return self._failed(contract, chash, input_hashes, reason, now, privacy)
            refused = declaration_problem(contract, opened.inputs, outputs)
            if refused is not None:  # checked before anything is sealed: nothing leaves
                return self._failed(contract, chash, input_hashes, refused, now, privacy)
            with timer.phase("crypto"):
                sealed = {
                    slot: seal_output(self.identity, chash, contract, slot, out)
                    for slot, out in outputs.items()
                }
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        run = {"run_id": opened.grant.run_id, "authorised_at": opened.grant.issued_at.isoformat()}
        receipt = self.receipt(
            contract,
            chash,
            input_hashes,
            sealed,
            status="succeeded",
            reason="",
            now=now,
            extra={"run": run, "peak_memory_bytes": peak_memory_bytes(), **privacy},
        )
        return ExecutionResult("succeeded", sealed, receipt, "")

    # -- inputs -----------------------------------------------------------------------------

    def open_task(
        self, bundle: TaskBundle, host: Host, *, own_checkpoint: bool = False
    ) -> OpenedTask:
        """Every check :meth:`execute` makes, then the inputs decrypted in memory, for code that
        runs the function its own way (an inference session). Raises :class:`OpenRefused`.

        ``own_checkpoint``: the caller seals a checkpoint of its own format (a session's
        counters), so the function checkpoint is not read here; a run authorisation past its
        start window is then accepted only if the host hands in a checkpoint to resume."""
        return self._open_task(bundle, host, PhaseTimer(), own_checkpoint=own_checkpoint)

    def _open_task(
        self, bundle: TaskBundle, host: Host, timer: PhaseTimer, *, own_checkpoint: bool = False
    ) -> OpenedTask:
        chash = ""
        input_hashes: dict[str, str] = {}
        try:
            with timer.phase("checks"):
                plan = check_bundle(
                    bundle,
                    identity=self.identity,
                    tee=self.tee,
                    measurement=self.measurement,
                    now=self.clock(),
                    keyring=self.keyring,
                )
            chash = plan.contract_hash
            if own_checkpoint:
                if not plan.grant.fresh and host.load_checkpoint() is None:
                    raise TaskRejected(stale_message(plan.grant))
                resumed: tuple[bytes | None, int, EventCounter] = (None, 0, EventCounter())
            else:
                resumed = self._load_checkpoint(chash, plan.grant, host)
            inputs, input_hashes = open_inputs(bundle, plan.input_keys, host, timer)
            source = open_function(plan.function_key, bundle.contract, host)
        except TaskRejected as exc:
            raise OpenRefused(str(exc), contract_hash=chash, input_hashes=input_hashes) from None
        return OpenedTask(
            chash, inputs, input_hashes, source, plan.grant, *resumed,
            min_rows=plan.min_rows, spend=plan.spend,
        )  # fmt: skip

    def _load_checkpoint(
        self, chash: str, grant: RunGrant, host: Host
    ) -> tuple[bytes | None, int, EventCounter]:
        """The sealed checkpoint's function state, checkpoint sequence and event counter
        (enclave/opening.py: :func:`checkpoint_state`); none handed in: a fresh start, which a
        run authorisation past its start window does not allow."""
        sealed = host.load_checkpoint()
        if sealed is None:
            if not grant.fresh:
                raise TaskRejected(stale_message(grant))
            return None, 0, EventCounter()
        try:
            payload = self.open_checkpoint(chash, sealed)
        except CheckpointKeyError as exc:
            raise TaskRejected(str(exc)) from None
        return checkpoint_state(payload, grant)

    @property
    def key_id(self) -> KeyId:
        """(measurement, epoch) of the key this runtime holds; epoch 0 is the sim sealed
        identity of decision 0003 (not from a key service)."""
        return KeyId(self.measurement, self.key_epoch)

    def seal_checkpoint(self, chash: str, payload: bytes) -> bytes:
        """``payload`` sealed under this runtime's key id (checkpoint_seal.py)."""
        return seal_checkpoint(
            payload, chash=chash, key_id=self.key_id, secret=self.identity.secret
        )

    def open_checkpoint(self, chash: str, sealed: bytes) -> bytes:
        """A checkpoint's payload, opened with the key its header names (this runtime's own, or
        an epoch of its keyring); CheckpointKeyError if unknown or it does not open."""

        def secret_for(key_id: KeyId) -> bytes | None:
            if key_id.measurement != self.measurement:
                return None
            if key_id.epoch == self.key_epoch:
                return self.identity.secret
            held = self.keyring.identities.get(key_id.epoch) if self.keyring else None
            return held.secret if held is not None and key_id.epoch > 0 else None

        return open_checkpoint(sealed, chash=chash, secret_for=secret_for)

    # -- events ----------------------------------------------------------------------------

    def _emit(
        self,
        chash: str,
        contract: Mapping[str, Any],
        channel: str,
        host: Host,
        timer: PhaseTimer,
        data: dict[str, Any],
        events: EventCounter,
    ) -> None:
        sealed = sealed_events(self.identity, chash, contract, channel, timer, data, events)
        for name, payload in sealed:
            host.emit_event(name, payload)

    def disclose_error(
        self,
        chash: str,
        contract: Mapping[str, Any],
        host: Host,
        error: str,
        events: EventCounter | None = None,
    ) -> str:
        """Send a function's ``error`` signed and sealed to the parties the contract discloses
        errors to (``events``: the task's event sequence, fresh if None); return the public
        failure reason, which names them and nothing else."""
        return self._disclose_error(
            chash, contract, host, PhaseTimer(), error, events or EventCounter()
        )

    def _disclose_error(
        self,
        chash: str,
        contract: Mapping[str, Any],
        host: Host,
        timer: PhaseTimer,
        error: str,
        events: EventCounter,
    ) -> str:
        data = {"kind": "error", "message": error}
        self._emit(chash, contract, "errors", host, timer, data, events)
        recipients = contract.get("disclosure", {}).get("errors", [])
        return "function failed; its error was sent encrypted to: " + (
            ", ".join(recipients) or "nobody (the contract discloses errors to no one)"
        )

    # -- outputs ----------------------------------------------------------------------------

    def seal_output(
        self, chash: str, contract: Mapping[str, Any], slot: str, out: OutputData
    ) -> SealedOutput:
        """Seal what was written to ``out`` for the recipients (or joint owners) of ``slot``."""
        return seal_output(self.identity, chash, contract, slot, out)

    def receipt(
        self,
        contract: Mapping[str, Any],
        chash: str,
        inputs: Mapping[str, str],
        outputs: Mapping[str, SealedOutput],
        *,
        status: str,
        reason: str,
        now: datetime,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A receipt signed with the enclave key, binding contract, inputs and outputs; ``extra``
        adds fields (an inference session's request counts).

        A joint output records each owner's public keys (``joint_owner_keys``: name ->
        {"sign_pk", "enc_pk"}, as the contract every owner signed shows them): a later task may
        use it only if those very keys sign it (checks.py), whatever names the host shows."""
        body = {
            "version": 1,
            "task_id": contract.get("task_id", ""),
            "contract_hash": chash,
            "tee": self.tee,
            "measurement": self.measurement,
            "key_id": {"measurement": self.measurement, "epoch": self.key_epoch},
            "simulated": self.tee == "sim",
            "status": status,
            "reason": reason,
            "inputs": dict(inputs),
            "outputs": {
                slot: {
                    # No size: the receipt reaches the audit log, which every member reads
                    # (docs/decisions/0007-what-sizes-others-see.md); the hash binds the bytes.
                    "ciphertext_sha256": out.ciphertext_sha256,
                    "recipients": sorted(w for w in out.wrapped_keys if w != "enclave"),
                    "joint_owners": out.joint_owners,
                    "joint_owner_keys": owner_keys(contract, out.joint_owners),
                }
                for slot, out in outputs.items()
            },
            "finished_at": now.isoformat(),
            **(extra or {}),
        }
        return sign_receipt(body, self.identity.signing_key)

    def failed(
        self,
        contract: Mapping[str, Any],
        chash: str,
        inputs: Mapping[str, str],
        reason: str,
        *,
        now: datetime,
    ) -> ExecutionResult:
        """A failed result with a public ``reason`` and its signed receipt."""
        return self._failed(contract, chash, inputs, reason, now)

    def _failed(
        self,
        contract: Mapping[str, Any],
        chash: str,
        inputs: Mapping[str, str],
        reason: str,
        now: datetime,
        extra: Mapping[str, Any] | None = None,
    ) -> ExecutionResult:
        receipt = self.receipt(
            contract, chash, inputs, {}, status="failed", reason=reason, now=now, extra=extra
        )
        return ExecutionResult("failed", {}, receipt, reason)
