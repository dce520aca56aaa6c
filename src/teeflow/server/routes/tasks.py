"""Tasks: propose, show, approve, reject, run, cancel, withdraw, outputs, receipt, events.

State machine (guarded transitions, each an atomic compare-and-set in the store):
proposed -> approved (every participant signed) -> queued (creator runs it, or approved with its
run authorisation: then queued as the last approval arrives) -> running (leased)
-> succeeded | failed; proposed/approved/queued/running -> canceled; proposed -> rejected;
proposed/approved/queued/running -> canceled when a participant withdraws its approval (an
enclave that already started the task has checked its approvals; the withdrawal binds only an
enclave that is shown it before it starts).
The enclave re-checks every approval, the creator's signed run authorisation, the contract's
expiry and any withdrawal itself (enclave/run_state.py): a row edited to "approved" or "queued"
gets it nowhere.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from teeflow.crypto import CryptoError, VerifyKey, b64d, b64e, canonical_json
from teeflow.enclave.budget import BUDGET_PREFIX, verify_budget_statement
from teeflow.enclave.checks import FUNCTION_SLOT
from teeflow.enclave.contract import APPROVAL_DOMAIN, contract_hash
from teeflow.enclave.run_state import (
    RunStateError,
    verify_run_authorisation,
    verify_withdrawal,
)
from teeflow.server.app import Platform
from teeflow.server.blocking import in_worker_thread, run_blocking
from teeflow.server.contracts import Proposal, build_contract, plain_json
from teeflow.server.deps import MAX_SEQUENCE, CurrentUser, PlatformDep
from teeflow.server.errors import ApiError, error_responses
from teeflow.server.notify import QUEUE, task_key, wait_for
from teeflow.server.quotas import check_task_quotas
from teeflow.server.routes._streams import BLOB_RESPONSE, send_blob
from teeflow.server.store import (
    ApprovalRecord,
    AuditEntry,
    Conflict,
    DatasetFacts,
    NotFound,
    OutputRecord,
    TaskRecord,
    UserRecord,
    input_dataset_ids,
)

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

WRAPPED_KEY_HEADER = "X-Teeflow-Wrapped-Key"


class Approval(BaseModel):
    signature: str = Field(max_length=200)
    wrapped_keys: dict[str, str] = Field(default_factory=dict)
    run: dict[str, Any] | None = Field(
        default=None,
        description="the creator only: its signed run authorisation, so the task is queued as "
        "the last approval arrives (docs/run-authorisation.md)",
    )


class Rejection(BaseModel):
    reason: str = Field(default="", max_length=1000)


class RunRequest(BaseModel):
    authorisation: dict[str, Any] = Field(
        description="the creator's signed run authorisation (docs/run-authorisation.md)"
    )


class Withdrawal(BaseModel):
    withdrawal: dict[str, Any] = Field(description="the participant's signed withdrawal")


def task_public(
    platform: Platform,
    task: TaskRecord,
    facts: tuple[list[ApprovalRecord], DatasetFacts] | None = None,
) -> dict[str, Any]:
    """The task as members see it; ``facts`` (approvals, input datasets) are read when not
    given (:meth:`~teeflow.server.store.Store.task_view` reads them with the task)."""
    inputs = task.contract.get("inputs", {})
    if facts is None:
        facts = platform.store.task_view_facts(task.task_id, input_dataset_ids(task.contract))
    approvals, datasets = facts
    return {
        "id": task.task_id,
        "status": task.status,
        "creator": task.creator,
        "contract": task.contract,
        "contract_hash": task.contract_hash,
        "approvals": {a.username: a.decision for a in approvals},
        "pending": sorted(set(task.participants) - {a.username for a in approvals}),
        "failure_reason": task.failure_reason,
        "attempts": task.attempts,
        "receipt": task.receipt,
        "inputs": {
            slot: _input_facts(datasets.get(spec.get("dataset_id", "")))
            for slot, spec in inputs.items()
        },
        "run_authorisation": task.run_authorisation,
        "withdrawn": sorted(task.withdrawals),
        "created_at": task.created_at.isoformat(),
        "updated_at": task.updated_at.isoformat(),
    }


def _input_facts(dataset: tuple[int | None, dict[str, Any]] | None) -> dict[str, Any]:
    """What the control plane knows of an input, for the participants' review: ciphertext
    size, and rows when the owner published a schema summary (None: unknown)."""
    if dataset is None:
        return {"size": None, "rows": None}
    size, meta = dataset
    rows = meta.get("rows")
    return {
        "size": size,
        "rows": rows if isinstance(rows, int) and not isinstance(rows, bool) else None,
    }


def public_view(platform: Platform, task_id: str, user: UserRecord) -> dict[str, Any]:
    """:func:`task_public` of a task the caller takes part in, read in one transaction;
    :class:`ApiError` 404 otherwise."""
    view = platform.store.task_view(task_id)
    if view is None or user.username not in view[0].participants:
        raise ApiError.not_found(f"task {task_id}")
    task, approvals, datasets = view
    return task_public(platform, task, (approvals, datasets))


def task_for(platform: Platform, task_id: str, user: UserRecord) -> TaskRecord:
    task = platform.store.get_task(task_id)
    if task is None or user.username not in task.participants:
        raise ApiError.not_found(f"task {task_id}")
    return task


def _budget_statements(wrapped_keys: dict[str, str], user: UserRecord) -> list[dict[str, Any]]:
    """The owner's signed budget statements in an approval (enclave/budget.py), for the audit
    log: each approved DP spend is an audit event. The enclave checks them again."""
    spends = []
    for key, text in sorted(wrapped_keys.items()):
        if not key.startswith(BUDGET_PREFIX):
            continue
        try:
            spends.append(verify_budget_statement(text, VerifyKey.from_b64(user.sign_pk)))
        except ValueError as exc:
            raise ApiError.invalid(f"approval's budget statement refused: {exc}") from None
    return spends


def _audit(user: UserRecord, action: str, task_id: str, **details: Any) -> AuditEntry:
    return AuditEntry(actor=user.username, action=action, subject=task_id, details=details)


@router.post("", status_code=201, responses=error_responses(401, 422, 429, 503))
@in_worker_thread
def propose(body: Proposal, user: CurrentUser, platform: PlatformDep) -> dict[str, Any]:
    contract = build_contract(platform, body, creator=user.username)
    check_task_quotas(platform, creator=user.username, participants=contract["participants"])
    chash = contract_hash(contract)
    task = platform.store.create_task(
        task_id=contract["task_id"],
        creator=user.username,
        contract=contract,
        contract_hash=chash,
        participants=sorted(contract["participants"]),
        now=platform.clock(),
        audit=_audit(user, "task.propose", contract["task_id"], contract_hash=chash),
    )
    return task_public(platform, task)


@router.get("", responses=error_responses(401, 422))
@in_worker_thread
def list_tasks(
    user: CurrentUser,
    platform: PlatformDep,
    role: Literal["creator", "invited"] | None = Query(
        None, description="only tasks you created, or only those others named you in"
    ),
    status: str | None = Query(None, max_length=16, description="only tasks in this state"),
    creator: str | None = Query(None, max_length=64, description="only tasks this member created"),
    limit: int | None = Query(None, ge=1, le=1000, description="at most this many tasks"),
    offset: int = Query(0, ge=0, description="skip this many (oldest first)"),
) -> list[dict[str, Any]]:
    """Your tasks, oldest first, a page at a time; filters keep your own from being buried."""
    tasks = platform.store.list_tasks(
        participant=user.username,
        role=role,
        status=status,
        creator=creator,
        limit=limit,
        offset=offset,
    )
    return [task_public(platform, t) for t in tasks]


MAX_WAIT_SECONDS = 30.0
TERMINAL_STATES = frozenset({"succeeded", "failed", "canceled", "rejected"})


@router.get("/{task_id}", responses=error_responses(401, 404, 422))
async def show(
    task_id: str,
    user: CurrentUser,
    platform: PlatformDep,
    wait: float = Query(0.0, ge=0.0, le=MAX_WAIT_SECONDS, description="long-poll up to seconds"),
    status: str | None = Query(None, description="with wait: return once the status differs"),
    until_done: bool = Query(
        False, description="with wait: return once the task has ended (succeeded, failed, ...)"
    ),
    events_after: int | None = Query(
        None,
        ge=0,
        le=MAX_SEQUENCE,
        description="with wait: return once an event after this seq is addressed to you",
    ),
) -> dict[str, Any]:
    """The task. With ``wait``, held until its status differs from ``status``, an event after
    ``events_after`` arrives for the caller, or ``wait`` seconds pass; then returned as it is."""

    def view() -> dict[str, Any]:
        return public_view(platform, task_id, user)

    def over(now: str) -> bool:
        changed = now in TERMINAL_STATES if until_done else status is None or now != status
        if events_after is not None and not changed:
            changed = bool(
                platform.store.list_events(
                    task_id=task_id, recipient=user.username, after_seq=events_after
                )
            )
        return changed

    def current() -> tuple[dict[str, Any], bool]:
        public = view()
        return public, over(public["status"])

    def view_if_over() -> dict[str, Any] | None:
        """The view if the wait is over, else None. Once woken, a long-poll reads the status
        alone (one small read) and builds the whole view only to answer."""
        now = platform.store.participant_task_status(task_id, user.username)
        if now is None:
            raise ApiError.not_found(f"task {task_id}")
        return view() if over(now) else None

    if wait <= 0:
        return await run_blocking(view)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + platform.settings.long_poll_seconds(wait)
    public: dict[str, Any] | None = None  # the view as of the last check, if it read one
    first = True
    while True:
        with platform.notifier.subscribe(task_key(task_id)) as woken:
            if first:  # often already over (a task that ended): the view answers at once
                first = False
                answer, done = await run_blocking(current)
                if done:
                    return answer
                public = answer
            else:
                public = await run_blocking(view_if_over)
                if public is not None:
                    return public
            remaining = deadline - loop.time()
            if remaining <= 0 or not await wait_for(woken, remaining):
                return public if public is not None else await run_blocking(view)


def _expected_slots(contract: dict[str, Any], username: str) -> set[str]:
    slots = {
        slot
        for slot, spec in contract["inputs"].items()
        if not spec.get("joint") and spec["owners"] == [username]
    }
    function = contract["function"]
    if function.get("sealed") and function.get("owner") == username:
        slots.add(FUNCTION_SLOT)
    return slots


@router.post("/{task_id}/approve", responses=error_responses(401, 404, 409, 422))
@in_worker_thread
def approve(
    task_id: str, body: Approval, user: CurrentUser, platform: PlatformDep
) -> dict[str, Any]:
    task = task_for(platform, task_id, user)
    if task.status != "proposed":
        raise ApiError.conflict(f"task is {task.status}; only a proposed task can be approved")
    try:
        VerifyKey.from_b64(user.sign_pk).verify(
            APPROVAL_DOMAIN, task.contract_hash.encode("ascii"), b64d(body.signature)
        )
    except CryptoError:
        raise ApiError.invalid("signature does not verify over this task's contract hash") from None
    missing = _expected_slots(task.contract, user.username) - set(body.wrapped_keys)
    if missing:
        raise ApiError.invalid(f"approval lacks wrapped keys for {sorted(missing)}")
    spends = _budget_statements(body.wrapped_keys, user)
    if body.run is not None:
        _check_run_authorisation(platform, task, user, body.run)
    try:
        task = platform.store.approve_task(
            task_id=task_id,
            username=user.username,
            signature=body.signature,
            wrapped_keys=body.wrapped_keys,
            now=platform.clock(),
            audit=_audit(
                user,
                "task.approve",
                task_id,
                contract_hash=task.contract_hash,
                signature=body.signature,
                **({"privacy_spend": spends} if spends else {}),
                **({"run_authorisation": body.run} if body.run is not None else {}),
            ),
            approved_audit=AuditEntry(
                actor="control-plane", action="task.approved", subject=task_id, details={}
            ),
            run_authorisation=body.run,
            queued_audit=AuditEntry(  # on the run authorisation the creator's approval carried
                actor="control-plane", action="task.queued", subject=task_id, details={}
            ),
            participants=task.participants,
        )
    except Conflict:
        raise ApiError.conflict("you have already decided on this task") from None
    except NotFound:
        raise ApiError.not_found(f"task {task_id}") from None
    if task.status == "queued":
        platform.notifier.notify(task_key(task_id), QUEUE)
    else:
        platform.notifier.notify(task_key(task_id))
    return task_public(platform, task)


def _check_run_authorisation(
    platform: Platform, task: TaskRecord, user: UserRecord, authorisation: dict[str, Any]
) -> None:
    """403 unless ``user`` created ``task``; 422 unless ``authorisation`` is the creator's
    signed run authorisation for the task's contract. The enclave checks it again (with expiry
    and withdrawals); checking it here too refuses a malformed one before it is stored."""
    if task.creator != user.username:
        raise ApiError.forbidden("only the task's creator can run it")
    try:
        verify_run_authorisation(
            plain_json(authorisation),
            task.contract_hash,
            key=VerifyKey.from_b64(task.contract["participants"][task.creator]["sign_pk"]),
            now=platform.clock(),
        )
    except (RunStateError, ValueError) as exc:
        raise ApiError.invalid(f"run authorisation refused: {exc}") from None


@router.post("/{task_id}/reject", responses=error_responses(401, 404, 409, 422))
def reject(
    task_id: str, body: Rejection, user: CurrentUser, platform: PlatformDep
) -> dict[str, Any]:
    task = task_for(platform, task_id, user)
    if task.status != "proposed":
        raise ApiError.conflict(f"task is {task.status}; only a proposed task can be rejected")
    now = platform.clock()
    try:
        platform.store.add_approval(
            task_id=task_id,
            username=user.username,
            decision="reject",
            signature=None,
            wrapped_keys={},
            now=now,
        )
    except Conflict:
        raise ApiError.conflict("you have already decided on this task") from None
    done = platform.store.transition(
        task_id,
        from_states={"proposed"},
        to="rejected",
        now=now,
        failure_reason=f"rejected by {user.username}: {body.reason}".strip(": "),
        audit=_audit(user, "task.reject", task_id, reason=body.reason),
    )
    platform.notifier.notify(task_key(task_id))
    if done is None:
        raise ApiError.conflict(f"task is {task.status}; only a proposed task can be rejected")
    return task_public(platform, done)


@router.post("/{task_id}/run", responses=error_responses(401, 403, 404, 409, 422))
@in_worker_thread
def run(task_id: str, body: RunRequest, user: CurrentUser, platform: PlatformDep) -> dict[str, Any]:
    view = platform.store.task_view(task_id)  # one read: the task and the facts of its answer
    if view is None or user.username not in view[0].participants:
        raise ApiError.not_found(f"task {task_id}")
    task, approvals, datasets = view
    _check_run_authorisation(platform, task, user, body.authorisation)
    done = platform.store.transition(
        task_id,
        from_states={"approved"},
        to="queued",
        now=platform.clock(),
        run_authorisation=body.authorisation,
        audit=_audit(user, "task.run", task_id, run_authorisation=body.authorisation),
        participants=task.participants,
    )
    platform.notifier.notify(task_key(task_id), QUEUE)
    if done is None and task.withdrawals:
        raise ApiError.conflict(
            f"not running task {task_id}: {', '.join(sorted(task.withdrawals))} withdrew approval"
        )
    if done is None:
        raise ApiError.conflict(
            f"task is {task.status}; it runs only once every participant approved "
            f"(pending: {task_public(platform, task, (approvals, datasets))['pending']})"
        )
    # Approvals are recorded only while a task is proposed and input facts do not change, so
    # those read with the task still hold for the queued task.
    return task_public(platform, done, (approvals, datasets))


@router.post("/{task_id}/cancel", responses=error_responses(401, 403, 404, 409, 422))
def cancel(task_id: str, user: CurrentUser, platform: PlatformDep) -> dict[str, Any]:
    task = task_for(platform, task_id, user)
    if task.creator != user.username:
        raise ApiError.forbidden("only the task's creator can cancel it")
    done = platform.store.transition(
        task_id,
        from_states={"proposed", "approved", "queued", "running"},
        to="canceled",
        now=platform.clock(),
        audit=_audit(user, "task.cancel", task_id),
    )
    platform.notifier.notify(task_key(task_id))
    if done is None:
        raise ApiError.conflict(f"task is {task.status} and can no longer be canceled")
    return task_public(platform, done)


@router.post("/{task_id}/withdraw", responses=error_responses(401, 404, 409, 422))
def withdraw(
    task_id: str, body: Withdrawal, user: CurrentUser, platform: PlatformDep
) -> dict[str, Any]:
    """Record the caller's signed withdrawal of its approval and cancel the task.

    The enclave refuses a task it is shown a withdrawal for; the withdrawing member's client
    reports a task that ran anyway (the operator could have withheld the withdrawal).
    """
    task = task_for(platform, task_id, user)
    try:
        verify_withdrawal(
            plain_json(body.withdrawal),
            task.contract_hash,
            username=user.username,
            key=VerifyKey.from_b64(user.sign_pk),
        )
    except (RunStateError, ValueError) as exc:
        raise ApiError.invalid(str(exc)) from None
    done = platform.store.withdraw(
        task_id=task_id,
        username=user.username,
        withdrawal=body.withdrawal,
        from_states={"proposed", "approved", "queued", "running"},
        now=platform.clock(),
        audit=_audit(user, "task.withdraw", task_id, withdrawal=body.withdrawal),
    )
    platform.notifier.notify(task_key(task_id))
    if done is None:
        raise ApiError.conflict(
            f"task is {task.status}; an approval can be withdrawn only before the task ends"
        )
    return task_public(platform, done)


@router.get("/{task_id}/outputs", responses=error_responses(401, 404, 422))
@in_worker_thread
def outputs(task_id: str, user: CurrentUser, platform: PlatformDep) -> list[dict[str, Any]]:
    from teeflow.server.routes.output_datasets import kept_datasets

    return [
        {
            "slot": o.slot,
            "ciphertext_sha256": o.ciphertext_sha256,
            "size": o.size,
            "recipients": sorted(k for k in o.wrapped_keys if k != "enclave"),
            "joint_owners": o.joint_owners,
            "dataset_id": o.dataset_id,
            "readable_by_you": user.username in o.wrapped_keys,
            "kept_as": [
                d.dataset_id for d in kept_datasets(platform, task_id, o.slot, user.username)
            ],
        }
        for o in _task_outputs(platform, task_id, user)[1]
    ]


def _task_outputs(
    platform: Platform, task_id: str, user: UserRecord
) -> tuple[TaskRecord, list[OutputRecord]]:
    """The task and its outputs, read together; 404 unless the caller takes part."""
    found = platform.store.task_outputs(task_id)
    if found is None or user.username not in found[0].participants:
        raise ApiError.not_found(f"task {task_id}")
    return found


def _output_for(
    platform: Platform, task_id: str, slot: str, user: UserRecord
) -> tuple[TaskRecord, OutputRecord]:
    """The task and its output ``slot``, read together, if the caller may read that output:
    404 unless the caller takes part and the slot exists, 403 unless it is a recipient (a
    jointly owned output is readable by no one)."""
    task, outputs = _task_outputs(platform, task_id, user)
    for output in outputs:
        if output.slot == slot:
            if output.joint_owners:
                from teeflow.server.routes.output_datasets import joint_output_message

                raise ApiError.forbidden(
                    joint_output_message(slot, output.joint_owners, output.dataset_id)
                )
            if user.username not in output.wrapped_keys:
                raise ApiError.forbidden(f"you are not a recipient of output {slot!r}")
            return task, output
    raise ApiError.not_found(f"output {slot!r}")


@router.get(
    "/{task_id}/outputs/{slot}/content",
    response_class=Response,
    responses={**BLOB_RESPONSE, **error_responses(401, 403, 404, 422)},
)
def output_content(
    task_id: str, slot: str, user: CurrentUser, platform: PlatformDep
) -> StreamingResponse:
    task, output = _output_for(platform, task_id, slot, user)
    # The caller's wrapped key, and the contract and receipt it checks the ciphertext against,
    # ride along, saving round trips; the key opens only for the caller.
    return send_blob(
        platform,
        output.blob_key,
        filename=f"{task_id}-{slot}.sealed",
        headers={WRAPPED_KEY_HEADER: output.wrapped_keys[user.username], **_receipt_headers(task)},
    )


RECEIPT_HEADER = "X-Teeflow-Receipt"
CONTRACT_HEADER = "X-Teeflow-Contract"
_MAX_RECEIPT_HEADERS = 48 * 1024
"""Left out above this (bytes of both headers), well under an HTTP client's header limit; the
client then fetches the task, as it would without them."""


def _receipt_headers(task: TaskRecord) -> dict[str, str]:
    """The task's signed receipt and contract (standard base64 of their canonical JSON), which
    the member's client checks exactly as it checks the task view's (client/_outputs.py)."""
    if task.receipt is None:
        return {}
    headers = {
        RECEIPT_HEADER: b64e(canonical_json(task.receipt)),
        CONTRACT_HEADER: b64e(canonical_json(task.contract)),
    }
    return headers if sum(map(len, headers.values())) <= _MAX_RECEIPT_HEADERS else {}


@router.get("/{task_id}/outputs/{slot}/key", responses=error_responses(401, 403, 404, 422))
@in_worker_thread
def output_key(task_id: str, slot: str, user: CurrentUser, platform: PlatformDep) -> dict[str, str]:
    output = _output_for(platform, task_id, slot, user)[1]
    return {
        "wrapped_key": output.wrapped_keys[user.username],
        "ciphertext_sha256": output.ciphertext_sha256,
    }


@router.get(
    "/{task_id}/function/source",
    response_class=Response,
    responses={**BLOB_RESPONSE, **error_responses(401, 403, 404, 409, 422)},
)
def function_source(task_id: str, user: CurrentUser, platform: PlatformDep) -> StreamingResponse:
    """The plain source of the task's uploaded function, for every participant to read before
    approving; the client checks it against the contract's ``code_sha256``."""
    function = task_for(platform, task_id, user).contract["function"]
    if function["kind"] != "uploaded":
        raise ApiError.conflict(
            f"{function['name']!r} is a built-in: its code is teeflow's own, in the measurement"
        )
    if function.get("sealed"):
        raise ApiError.forbidden(
            f"the function's code is sealed (confidential to {function.get('owner')!r})"
        )
    record = platform.store.get_dataset(function.get("source_dataset_id") or "")
    if record is None or record.state != "ready" or record.blob_key is None:
        raise ApiError.not_found("the function's source")
    return send_blob(platform, record.blob_key, filename=f"{function['name']}.py")


@router.get("/{task_id}/receipt", responses=error_responses(401, 404, 409, 422))
@in_worker_thread
def receipt(task_id: str, user: CurrentUser, platform: PlatformDep) -> dict[str, Any]:
    task = task_for(platform, task_id, user)
    if task.receipt is None:
        raise ApiError.conflict(f"task is {task.status}; it has no receipt yet")
    return task.receipt


@router.get("/{task_id}/events", responses=error_responses(401, 404, 422))
def events(
    task_id: str,
    user: CurrentUser,
    platform: PlatformDep,
    after: int = Query(0, ge=0, le=MAX_SEQUENCE),
) -> list[dict[str, Any]]:
    task_for(platform, task_id, user)
    return [
        {"seq": e.seq, "kind": e.kind, "payload": e.payload, "at": e.created_at.isoformat()}
        for e in platform.store.list_events(
            task_id=task_id, recipient=user.username, after_seq=after
        )
    ]
