"""The trusted task runner: checks everything the untrusted host hands in, then runs the function.

The host (control plane + executor shim) is not trusted. It supplies a :class:`TaskBundle`
(contract, approvals, provenance of joint inputs) and byte streams through :class:`Host`. The
enclave recomputes the contract hash, checks it was made for this measurement and key, checks
every participant's signature, checks every ciphertext hash, and only then unwraps keys. Outputs
are sealed under fresh keys wrapped to the contract's recipients (or, for joint outputs, to the
enclave itself); the result carries a receipt signed with the enclave key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from teeflow.crypto import (
    DataKey,
    IntegrityError,
    PublicKey,
    b64e,
    content_digest_like,
    hpke_seal,
    key_wrap_info,
    pad,
    seal_stream,
    sha256_hex,
    unseal_bytes,
)
from teeflow.enclave.checkpoint_seal import CheckpointKeyError, open_checkpoint, seal_checkpoint
from teeflow.enclave.checks import TaskRejected, check_bundle
from teeflow.enclave.events import EventCounter, seal_event
from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.keyring import KeyId, Keyring
from teeflow.enclave.memory import (
    MemoryBudgetExceeded,
    check_memory_budget,
    peak_memory_bytes,
    reset_peak_memory,
)
from teeflow.enclave.outbox import Outbox
from teeflow.enclave.receipt import sign_receipt
from teeflow.enclave.run_state import RunGrant, stale_message
from teeflow.enclave.spend import privacy_receipt, refused_spend, spend_problem
from teeflow.functions.api import Context, FunctionError, InputData, OutputData
from teeflow.functions.outputs import check_outputs, uploaded_declarations

__all__ = [
    "EnclaveRuntime",
    "ExecutionResult",
    "Host",
    "OpenRefused",
    "OpenedTask",
    "SealedOutput",
    "TaskBundle",
]


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
    run_authorisation: Mapping[str, Any] | None = None
    """The creator's signed run authorisation (enclave/run_state.py); none: the task never runs."""
    withdrawals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """username -> that participant's signed withdrawal of its approval."""


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
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent per phase (see :class:`PhaseTimer`); for the executor's log and benchmarks."""


@dataclass(frozen=True)
class OpenedTask:
    """A task that passed every check, its inputs decrypted in enclave memory."""

    contract_hash: str
    inputs: dict[str, InputData]
    input_hashes: dict[str, str]
    """slot -> the ciphertext SHA-256 that was checked (for the receipt)."""
    source: str | None
    """Uploaded function source; None for a built-in."""
    grant: RunGrant
    """The run authorisation the task runs under."""
    restored: bytes | None = None
    """The function's state from the sealed checkpoint, if the host handed one in."""
    checkpoint_seq: int = 0
    events: EventCounter = field(default_factory=EventCounter)
    """The enclave's event sequence, continued from the checkpoint."""
    min_rows: int = 0
    """Aggregation threshold from the strictest input policy (enclave/policies.py)."""
    spend: dict[str, dict[str, float]] = field(default_factory=dict)
    """input slot -> the DP budget the task declares it spends (enclave/budget.py)."""


class OpenRefused(TaskRejected):
    """:meth:`EnclaveRuntime.open_task` refused the task; says how far the checks got."""

    def __init__(self, reason: str, *, contract_hash: str, input_hashes: dict[str, str]) -> None:
        super().__init__(reason)
        self.contract_hash = contract_hash
        self.input_hashes = input_hashes


class PhaseTimer:
    """Wall time per phase of one task: checks, io (host calls), crypto, function.

    Phases nest: time in an inner phase (a checkpoint sealed and saved from inside the function)
    counts for the inner phase only, so the phases add up to the task's wall time.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._stack: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:
            outer, since = self._stack[-1]
            self.totals[outer] = self.totals.get(outer, 0.0) + now - since
        self._stack.append((name, now))
        try:
            yield
        finally:
            end = time.perf_counter()
            _, since = self._stack.pop()
            self.totals[name] = self.totals.get(name, 0.0) + end - since
            if self._stack:
                self._stack[-1] = (self._stack[-1][0], end)


class _Pace:
    """Lets something happen at most once per ``interval`` seconds (always when it is 0)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -float("inf")

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval

    def mark(self) -> None:
        self._last = time.monotonic()


class _TimedHost:
    """The host, with every call counted as ``io``."""

    def __init__(self, host: Host, timer: PhaseTimer) -> None:
        self._host = host
        self._timer = timer
        self.inner = host
        """The host itself, for calls made off the timed thread."""

    def read_input(self, slot: str) -> bytes:
        with self._timer.phase("io"):
            return self._host.read_input(slot)

    def read_function_source(self) -> bytes:
        with self._timer.phase("io"):
            return self._host.read_function_source()

    def load_checkpoint(self) -> bytes | None:
        with self._timer.phase("io"):
            return self._host.load_checkpoint()

    def save_checkpoint(self, sealed: bytes, sequence: int) -> None:
        with self._timer.phase("io"):
            self._host.save_checkpoint(sealed, sequence)

    def emit_event(self, recipient: str, payload: str) -> None:
        with self._timer.phase("io"):
            self._host.emit_event(recipient, payload)


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
                result = self._execute(bundle, _TimedHost(host, timer), now, timer, outbox)
        finally:
            outbox.close()
        timings = {**timer.totals, "io (background)": outbox.seconds}
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
        scratch = Path(tempfile.mkdtemp(prefix="teeflow-task-", dir=_scratch_root()))
        try:
            outputs = {slot: OutputData(slot) for slot in contract["outputs"]}
            ctx = self._context(opened, contract, outputs, scratch, host, timer, outbox)
            ctx.min_rows = opened.min_rows
            with timer.phase("function"):
                error = self._run_function(contract, source, ctx)
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
            refused = _declaration_problem(contract, opened.inputs, outputs)
            if refused is not None:  # checked before anything is sealed: nothing leaves
                return self._failed(contract, chash, input_hashes, refused, now, privacy)
            with timer.phase("crypto"):
                sealed = {
                    slot: self._seal_output(chash, contract, slot, out)
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
            inputs, input_hashes = self._open_inputs(chash, bundle, plan.input_keys, host, timer)
            source = self._open_function(plan.function_key, bundle.contract, host)
        except TaskRejected as exc:
            raise OpenRefused(str(exc), contract_hash=chash, input_hashes=input_hashes) from None
        return OpenedTask(
            chash, inputs, input_hashes, source, plan.grant, *resumed,
            min_rows=plan.min_rows, spend=plan.spend,
        )  # fmt: skip

    def _load_checkpoint(
        self, chash: str, grant: RunGrant, host: Host
    ) -> tuple[bytes | None, int, EventCounter]:
        """The sealed checkpoint's function state, checkpoint sequence and event counter.

        Layout inside the seal: checkpoint seq (8 bytes, big-endian), event seq (8), the run id
        it was made under (32), then the function's state. The sequences travel inside it, so a
        resumed run counts on where the crashed one stopped. A run authorisation past its start
        window is accepted only to resume a checkpoint made under that same authorisation.
        """
        sealed = host.load_checkpoint()
        if sealed is None:
            if not grant.fresh:
                raise TaskRejected(stale_message(grant))
            return None, 0, EventCounter()
        try:
            payload = self.open_checkpoint(chash, sealed)
        except CheckpointKeyError as exc:
            raise TaskRejected(str(exc)) from None
        if len(payload) < _CHECKPOINT_HEADER:
            raise TaskRejected("checkpoint is too short to be one this enclave made")
        run_id = payload[16:_CHECKPOINT_HEADER].hex()
        if not grant.fresh and run_id != grant.run_id:
            raise TaskRejected(stale_message(grant))
        seq, event_seq = int.from_bytes(payload[:8], "big"), int.from_bytes(payload[8:16], "big")
        return payload[_CHECKPOINT_HEADER:], seq, EventCounter(seq=event_seq)

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

    def _open_inputs(
        self,
        chash: str,
        bundle: TaskBundle,
        keys: Mapping[str, DataKey],
        host: Host,
        timer: PhaseTimer,
    ) -> tuple[dict[str, InputData], dict[str, str]]:
        inputs: dict[str, InputData] = {}
        hashes: dict[str, str] = {}
        for slot, spec in bundle.contract["inputs"].items():
            ciphertext = host.read_input(slot)
            with timer.phase("crypto"):
                # Only the hash is checked here: the plaintext is decrypted, a chunk at a time, as
                # the function reads it (each chunk authenticated before use; functions/api.py).
                # The algorithm is the one the approved digest names, never the file's own.
                digest = content_digest_like(ciphertext, spec["ciphertext_sha256"])
                if digest != spec["ciphertext_sha256"]:
                    raise TaskRejected(
                        f"input {slot!r}: ciphertext hash {digest[:16]}… differs from the approved"
                        f" {spec['ciphertext_sha256'][:16]}… (the dataset changed after approval)"
                    )
                try:
                    owner = ",".join(spec["owners"])
                    inputs[slot] = InputData.sealed(slot, ciphertext, keys[slot], owner=owner)
                except IntegrityError as exc:
                    raise TaskRejected(f"input {slot!r} does not decrypt: {exc}") from None
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
        opened: OpenedTask,
        contract: Mapping[str, Any],
        outputs: dict[str, OutputData],
        scratch: Path,
        host: Host,
        timer: PhaseTimer,
        outbox: Outbox,
    ) -> Context:
        """The function's context. Checkpoints and progress events are sealed here, in the
        function's thread, and uploaded by ``outbox`` while the function goes on."""
        raw_host = host.inner if isinstance(host, _TimedHost) else host
        chash = opened.contract_hash
        counter = [opened.checkpoint_seq]
        run_id = bytes.fromhex(opened.grant.run_id)
        events = opened.events

        checkpoint_pace = _Pace(self.checkpoint_interval_s)
        progress_pace = _Pace(self.progress_interval_s)
        held: list[Mapping[str, Any]] = []

        def save(state: bytes) -> None:
            counter[0] += 1
            sequence = counter[0]
            with timer.phase("crypto"):
                header = sequence.to_bytes(8, "big") + events.seq.to_bytes(8, "big") + run_id
                sealed = self.seal_checkpoint(chash, header + state)
            with timer.phase("io"):  # only waits while the previous upload holds the queue
                outbox.submit(lambda: raw_host.save_checkpoint(sealed, sequence))
            checkpoint_pace.mark()

        def progress(metrics: Mapping[str, Any]) -> None:
            # Called with no metrics: send what is held back. Otherwise the latest metrics win.
            if metrics:
                held[:] = [metrics]
                if not progress_pace.due():
                    return
            if held:
                data = {"kind": "progress", **held.pop()}
                sealed_events = self._sealed_events(
                    chash, contract, "progress", timer, data, events
                )
                for name, payload in sealed_events:
                    with timer.phase("io"):
                        outbox.submit(functools.partial(raw_host.emit_event, name, payload))
                progress_pace.mark()

        return Context(
            inputs=opened.inputs,
            args=dict(contract["arguments"]),
            outputs=outputs,
            scratch=scratch,
            _progress=progress,
            _checkpoint=save,
            _checkpoint_due=checkpoint_pace.due,
            _restored=opened.restored,
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
        timer: PhaseTimer,
        data: dict[str, Any],
        events: EventCounter,
    ) -> None:
        for name, payload in self._sealed_events(chash, contract, channel, timer, data, events):
            host.emit_event(name, payload)

    def _sealed_events(
        self,
        chash: str,
        contract: Mapping[str, Any],
        channel: str,
        timer: PhaseTimer,
        data: dict[str, Any],
        events: EventCounter,
    ) -> list[tuple[str, str]]:
        """One event per recipient the contract discloses ``channel`` to, each signed by the
        enclave with its own sequence number and sealed to that recipient (enclave/events.py)."""
        seq = events.next()
        sealed = []
        for name in contract.get("disclosure", {}).get(channel, []):
            recipient = PublicKey.from_b64(contract["participants"][name]["enc_pk"])
            with timer.phase("crypto"):
                payload = seal_event(
                    _jsonable(data),
                    chash=chash,
                    recipient=name,
                    recipient_key=recipient,
                    signing_key=self.identity.signing_key,
                    attempt=events.attempt,
                    seq=seq,
                )
            sealed.append((name, payload))
        return sealed

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
        return self._seal_output(chash, contract, slot, out)

    def _seal_output(
        self, chash: str, contract: Mapping[str, Any], slot: str, out: OutputData
    ) -> SealedOutput:
        spec = contract["outputs"][slot]
        key = DataKey.generate()
        plaintext = out.getvalue()
        if spec.get("pad") is not None:  # length hiding, inside the sealed plaintext
            plaintext = pad(plaintext, spec["pad"])
        sink = io.BytesIO()
        sealed = seal_stream(io.BytesIO(plaintext), sink, key)  # hashes as it seals
        ciphertext = sink.getvalue()
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
            ciphertext, sealed.ciphertext_digest, wrapped, list(joint) if joint else None
        )

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
                    "joint_owner_keys": _owner_keys(contract, out.joint_owners),
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


_CHECKPOINT_HEADER = 48
"""Bytes before the function's state in a sealed checkpoint (see ``_load_checkpoint``)."""


def _declaration_problem(
    contract: Mapping[str, Any], inputs: Mapping[str, InputData], outputs: Mapping[str, OutputData]
) -> str | None:
    """The public reason an output breaks what the function declared (functions/outputs.py)."""
    function = contract["function"]
    try:
        if function["kind"] == "builtin":
            from teeflow.functions.registry import get_builtin

            declarations = get_builtin(function["name"]).declarations
        else:
            declarations = uploaded_declarations(function.get("outputs") or {})
    except (KeyError, ValueError) as exc:
        return f"the function's output declarations are unusable: {exc}"
    return check_outputs(
        {slot: out.getvalue() for slot, out in outputs.items()},
        declarations,
        {slot: data.size for slot, data in inputs.items()},
    )


def _owner_keys(
    contract: Mapping[str, Any], owners: list[str] | None
) -> dict[str, dict[str, str]] | None:
    if not owners:
        return None
    participants = contract["participants"]
    return {
        name: {"sign_pk": participants[name]["sign_pk"], "enc_pk": participants[name]["enc_pk"]}
        for name in owners
    }


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
