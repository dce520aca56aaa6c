"""A long-lived confidential inference session: the model is opened once, requests are answered
one by one until the session ends (docs/inference.md).

A session is a task like any other: its contract names a session built-in (``tabular-serve``),
the model as its only input, the ``requesters`` who may query it and optional limits, and every
participant signed it. :meth:`InferenceSession.open` makes every check that
:meth:`EnclaveRuntime.execute` makes (``check_bundle``: signatures, measurement, ciphertext
hashes) before it unwraps the model's key, then loads the model once. The untrusted host then
hands in requests (:class:`SessionRequest`); for each, :meth:`InferenceSession.handle`

1. checks the request is signed (domain ``inference-request``) by the key the contract pins for its
   requester, that the requester is one of the contract's ``requesters``, that its id is new in this
   session, and that the session is within its limits (requests, rows, rate, lifetime:
   enclave/session_limits.py);
2. opens the request (HPKE, bound to contract hash, requester and request id), runs the prediction
   with at most the rows the limits leave (``max_rows_per_request``, and what is left of
   ``max_rows``), and rounds its probabilities when the contract sets ``decimals``;
3. seals the answer, or a party-facing error, to that requester alone and signs it (domain
   ``inference-response``), so the host can neither read, forge nor swap it.

A refused or failed request gets an answer only its requester can read, and the session goes on.
The session ends when it reaches ``max_requests``, ``max_rows`` or ``max_seconds`` (:meth:`finish`:
the ``usage`` output and a receipt) or when the host stops it (:meth:`stop`: a receipt; the task was
canceled or its lease lost). Receipts and ``usage`` count requests and rows; they never hold a
request or an answer.

The counters and the requesters' anti-replay windows (bounded: enclave/session_replay.py) are
sealed into the session's checkpoint (:meth:`checkpoint`,
which the host calls before it hands answers back), so a session resumed on another executor goes
on counting where the last checkpoint stopped (the bound is stated in enclave/session_limits.py).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from teeflow.crypto import (
    CryptoError,
    IntegrityError,
    PublicKey,
    VerifyKey,
    hpke_open,
    hpke_seal,
    sha256_hex,
)
from teeflow.enclave.checks import TaskRejected
from teeflow.enclave.function_run import scratch_root
from teeflow.enclave.runtime import (
    EnclaveRuntime,
    ExecutionResult,
    Host,
    OpenedTask,
    OpenRefused,
    TaskBundle,
)
from teeflow.enclave.session_limits import (
    RateWindow,
    SessionCounters,
    SessionLimits,
    counters_key,
    round_probabilities,
)
from teeflow.enclave.session_replay import ReplayWindows
from teeflow.enclave.session_wire import (
    MAX_REQUEST_BYTES,
    REQUEST_DOMAIN,
    REQUEST_ID,
    RESPONSE_DOMAIN,
    request_info,
    request_message,
    response_info,
    response_message,
)
from teeflow.functions.api import Context, FunctionError, OutputData
from teeflow.functions.serving import Predictor

__all__ = [
    "USAGE_SLOT",
    "InferenceSession",
    "SessionLimits",
    "SessionRefused",
    "SessionRequest",
    "SessionResponse",
    "is_session_contract",
]

USAGE_SLOT = "usage"


@dataclass(frozen=True)
class SessionRequest:
    """One request as the host relays it; nothing in it is believed before the checks."""

    requester: str
    request_id: str
    ciphertext: bytes
    signature: bytes


@dataclass(frozen=True)
class SessionResponse:
    requester: str
    request_id: str
    sealed: bytes = b""
    """The answer envelope, HPKE-sealed to the requester (see enclave/session_wire.py)."""
    signature: bytes = b""
    """The enclave's signature over the sealed answer, bound to the request."""
    refused: str = ""
    """A public code, with nothing sealed, when there is no one to seal to: the request names no
    participant of the contract, or its id is malformed."""


class SessionRefused(Exception):
    """The session cannot start; ``result`` is the failed task result with its signed receipt."""

    def __init__(self, result: ExecutionResult) -> None:
        super().__init__(result.reason)
        self.result = result


class _Refusal(Exception):
    """A request is refused; the message goes, sealed, to its requester only."""


def is_session_contract(contract: Mapping[str, Any]) -> bool:
    """Whether the contract's function is a session built-in (for the host, to pick the loop)."""
    from teeflow.functions.registry import builtin_catalogue

    function = contract.get("function", {})
    if not isinstance(function, Mapping) or function.get("kind") != "builtin":
        return False
    builtin = builtin_catalogue().get(str(function.get("name")))
    return builtin is not None and builtin.session


@dataclass(frozen=True)
class _Party:
    verify_key: VerifyKey
    public_key: PublicKey


class InferenceSession:
    """One running session in the enclave. Not thread-safe: the host calls it from one loop."""

    def __init__(
        self,
        *,
        runtime: EnclaveRuntime,
        contract: Mapping[str, Any],
        opened: OpenedTask,
        predictor: Predictor,
        limits: SessionLimits,
        started_at: datetime,
        scratch: Path,
        counters: SessionCounters | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._contract = contract
        self._chash = opened.contract_hash
        self._input_hashes = dict(opened.input_hashes)
        self._predictor: Predictor | None = predictor
        self.limits = limits
        self._started_at = started_at
        self._scratch = scratch
        self._clock = clock
        self._started = clock()
        self._counts = counters or SessionCounters(started_at=started_at.isoformat())
        self._replay = ReplayWindows.from_state(self._counts.replay)  # unseal checked it
        self._rate = RateWindow(limits.max_requests_per_minute)
        self._counters_key = counters_key(runtime.identity.secret, self._chash)
        self._parties = {  # a name with NUL cannot be bound into HPKE info: no one to answer
            name: _Party(VerifyKey.from_b64(keys["sign_pk"]), PublicKey.from_b64(keys["enc_pk"]))
            for name, keys in contract["participants"].items()
            if "\x00" not in name
        }

    @property
    def contract_hash(self) -> str:
        return self._chash

    @classmethod
    def open(
        cls,
        runtime: EnclaveRuntime,
        bundle: TaskBundle,
        host: Host,
        *,
        now: datetime,
        clock: Callable[[], float] = time.monotonic,
    ) -> InferenceSession:
        """Check the task as :meth:`EnclaveRuntime.execute` does and load the model once.

        Raises :class:`SessionRefused` carrying the failed result (public reason, signed receipt).
        """
        contract = bundle.contract
        try:
            opened = runtime.open_task(bundle, host, own_checkpoint=True)
        except OpenRefused as exc:
            failed = runtime.failed(
                contract, exc.contract_hash, exc.input_hashes, str(exc), now=now
            )
            raise SessionRefused(failed) from None
        chash = opened.contract_hash
        try:
            open_session = _session_builtin(contract)
            limits = SessionLimits.from_contract(contract)
            _check_outputs(contract)
            sealed = host.load_checkpoint()
            key = counters_key(runtime.identity.secret, chash)
            counters = None if sealed is None else SessionCounters.unseal(sealed, key)
        except TaskRejected as exc:
            failed = runtime.failed(contract, chash, opened.input_hashes, str(exc), now=now)
            raise SessionRefused(failed) from None
        scratch = Path(tempfile.mkdtemp(prefix="teeflow-session-", dir=scratch_root()))
        ctx = Context(
            inputs=opened.inputs, args=dict(contract["arguments"]), outputs={}, scratch=scratch
        )
        try:
            predictor = open_session(ctx)
        except Exception as exc:  # noqa: BLE001 - a function failure fails the task, not the enclave
            shutil.rmtree(scratch, ignore_errors=True)
            reason = runtime.disclose_error(
                chash, contract, host, _function_error(exc), opened.events
            )
            failed = runtime.failed(contract, chash, opened.input_hashes, reason, now=now)
            raise SessionRefused(failed) from None
        return cls(
            runtime=runtime,
            contract=contract,
            opened=opened,
            predictor=predictor,
            limits=limits,
            started_at=now,
            scratch=scratch,
            counters=counters,
            clock=clock,
        )

    # -- limits -----------------------------------------------------------------------------

    @property
    def end(self) -> str | None:
        """Why the session takes no more requests ("max_requests", "max_rows", "max_seconds"),
        or None."""
        if self._counts.used >= self.limits.max_requests:
            return "max_requests"
        if self._counts.rows >= self.limits.max_rows:
            return "max_rows"
        if self.seconds_left() <= 0:
            return "max_seconds"
        return None

    def seconds_left(self) -> float:
        return self.limits.max_seconds - self._elapsed()

    def _elapsed(self) -> float:
        """Seconds served, this run and the runs this session was resumed from."""
        return self._counts.elapsed_seconds + (self._clock() - self._started)

    def checkpoint(self, host: Host) -> None:
        """Seal the counters and anti-replay windows into the session's checkpoint, so a session
        resumed elsewhere goes on counting and refusing replays. The host calls it before
        answers leave."""
        self._counts.sequence += 1
        state = SessionCounters(
            **{
                **vars(self._counts),
                "elapsed_seconds": self._elapsed(),
                "replay": self._replay.state(),
            }
        )
        host.save_checkpoint(state.seal(self._counters_key), state.sequence)

    # -- requests ---------------------------------------------------------------------------

    def handle(self, request: SessionRequest) -> SessionResponse:
        """Answer one request; never raises for anything the request holds."""
        party = self._parties.get(request.requester) if isinstance(request.requester, str) else None
        if party is None:
            self._counts.refused += 1
            return SessionResponse(request.requester, request.request_id, refused="not_a_party")
        if not isinstance(request.request_id, str) or not REQUEST_ID.match(request.request_id):
            self._counts.refused += 1
            return SessionResponse(request.requester, request.request_id, refused="malformed")
        request_sha256 = sha256_hex(request.ciphertext)
        try:
            plaintext = self._admit(request, party, request_sha256)
        except _Refusal as exc:
            self._counts.count(request.requester, "refused")
            envelope: dict[str, Any] = {"status": "error", "error": str(exc)}
            return self._answer(request, party, request_sha256, envelope)
        try:
            if plaintext is None:
                raise FunctionError(
                    "the request does not decrypt for this session (sealed to another enclave, "
                    "contract or request id)"
                )
            if self._predictor is None:
                raise FunctionError("the session has ended")
            allowed = min(
                self.limits.max_rows_per_request, self.limits.max_rows - self._counts.rows
            )
            result = self._predictor.predict(plaintext, max_rows=allowed)
            rows = _rows(result)
            if rows > allowed:  # a predictor that ignored its bound: its answer never leaves
                raise FunctionError(f"the answer holds {rows} rows, more than the {allowed} left")
            envelope = {
                "status": "ok",
                "result": round_probabilities(result, self.limits.decimals),
            }
            self._counts.count(request.requester, "answered", rows)
        except Exception as exc:  # noqa: BLE001 - a bad request fails that request only
            envelope = {"status": "error", "error": _function_error(exc)}
            self._counts.count(request.requester, "failed")
        return self._answer(request, party, request_sha256, envelope)

    def _admit(self, request: SessionRequest, party: _Party, request_sha256: str) -> bytes | None:
        """Authenticate and authorise; return the plaintext (None if it does not decrypt)."""
        if len(request.ciphertext) > MAX_REQUEST_BYTES:
            raise _Refusal(f"the request is larger than {MAX_REQUEST_BYTES} bytes")
        message = request_message(
            self._chash,
            request.requester,
            request.request_id,
            request.ciphertext,
            ciphertext_sha256=request_sha256,
        )
        try:
            party.verify_key.verify(REQUEST_DOMAIN, message, request.signature)
        except CryptoError:
            raise _Refusal(
                "the request's signature does not verify: it was altered on the way, or not "
                "signed with your key for this session"
            ) from None
        if request.requester not in self.limits.requesters:
            raise _Refusal(
                f"{request.requester!r} is not a requester of this session; the contract allows "
                f"{sorted(self.limits.requesters)}"
            )
        replayed = self._replay.refusal(request.requester, request.request_id)
        if replayed is not None:
            raise _Refusal(replayed)
        end = self.end
        if end is not None:
            raise _Refusal(f"the session has reached its {end} and answers no more requests")
        now = self._clock()
        wait = self._rate.wait(now)
        if wait > 0:
            raise _Refusal(
                f"the session's rate limit is {self.limits.max_requests_per_minute} requests a "
                f"minute; send this request again in {math.ceil(wait)} s with a new request id"
            )
        self._rate.admit(now)
        self._replay.admit(request.requester, request.request_id)
        try:
            return hpke_open(
                request.ciphertext,
                self._runtime.identity.receiving_key,
                info=request_info(self._chash, request.requester, request.request_id),
            )
        except IntegrityError:
            return None

    def _answer(
        self,
        request: SessionRequest,
        party: _Party,
        request_sha256: str,
        envelope: Mapping[str, Any],
    ) -> SessionResponse:
        payload = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
        info = response_info(self._chash, request.requester, request.request_id)
        sealed = hpke_seal(payload, party.public_key, info=info)
        message = response_message(
            self._chash,
            request.requester,
            request.request_id,
            request_sha256=request_sha256,
            sealed=sealed,
        )
        signature = self._runtime.identity.signing_key.sign(RESPONSE_DOMAIN, message)
        return SessionResponse(request.requester, request.request_id, sealed, signature)

    # -- ending -----------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Request counts (never contents), for the receipt."""
        return {
            "requests_answered": self._counts.answered,
            "requests_failed": self._counts.failed,
            "requests_refused": self._counts.refused,
            "rows_answered": self._counts.rows,
            "started_at": self._counts.started_at or self._started_at.isoformat(),
            "end": self.end or "stopped",
        }

    def finish(self, *, now: datetime) -> ExecutionResult:
        """End the session normally: the sealed ``usage`` output and a signed receipt."""
        summary = self.summary()
        usage = OutputData(USAGE_SLOT)
        usage.write_json({**summary, "by_requester": self._counts.by_requester})
        sealed = {
            USAGE_SLOT: self._runtime.seal_output(self._chash, self._contract, USAGE_SLOT, usage)
        }
        receipt = self._runtime.receipt(
            self._contract,
            self._chash,
            self._input_hashes,
            sealed,
            status="succeeded",
            reason="",
            now=now,
            extra={"session": summary},
        )
        self.close()
        return ExecutionResult("succeeded", sealed, receipt, "")

    def stop(self, *, now: datetime) -> dict[str, Any]:
        """End the session because the host stopped it (task canceled, lease lost): a receipt
        with the request counts, no outputs."""
        receipt = self._runtime.receipt(
            self._contract,
            self._chash,
            self._input_hashes,
            {},
            status="stopped",
            reason="the session was stopped (task canceled or its lease lost)",
            now=now,
            extra={"session": self.summary()},
        )
        self.close()
        return receipt

    def close(self) -> None:
        """Drop the model and scratch space; the session answers nothing afterwards."""
        self._predictor = None
        shutil.rmtree(self._scratch, ignore_errors=True)


def _session_builtin(contract: Mapping[str, Any]) -> Callable[[Context], Predictor]:
    from teeflow.functions.registry import get_builtin

    function = contract["function"]
    if function["kind"] == "builtin":
        builtin = get_builtin(function["name"])  # check_bundle found it and checked its hash
        if builtin.session:
            return builtin.load_session()
    raise TaskRejected(f"function {function.get('name')!r} does not serve inference sessions")


def _rows(result: Any) -> int:
    """Rows in a predictor's answer (``{"predictions": [...]}``, functions/serving.py)."""
    predictions = result.get("predictions") if isinstance(result, dict) else None
    if not isinstance(predictions, list):
        raise FunctionError("the function's answer is not {'predictions': [...]}")
    return len(predictions)


def _check_outputs(contract: Mapping[str, Any]) -> None:
    outputs = contract["outputs"]
    if set(outputs) != {USAGE_SLOT} or "recipients" not in outputs[USAGE_SLOT]:
        raise TaskRejected(
            f"an inference session has one output, {USAGE_SLOT!r}, with recipients (its request "
            "counts); name who receives it"
        )


def _function_error(exc: Exception) -> str:
    if isinstance(exc, FunctionError):
        return str(exc)
    return "function raised " + traceback.format_exception_only(type(exc), exc)[-1].strip()
