"""Batched executor calls: several leases, or several finishes, in one request.

A busy executor pays the web stack's per-request cost once per batch instead of once per task
(decision 0025). Each lease and each finish is still its own compare-and-set with the same checks
as ``POST /v1/executor/lease`` and ``POST /v1/executor/tasks/{id}/finish``, which stay for one at
a time.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from teeflow.server.blocking import in_worker_thread
from teeflow.server.deps import CurrentExecutor, PlatformDep
from teeflow.server.errors import ApiError, error_responses
from teeflow.server.routes.executors import (
    Finish,
    LastSeen,
    LeaseWait,
    SessionsFlag,
    finished,
    finishing,
    lease_bundles,
    wait_for_work,
)
from teeflow.server.store import Finishing

router = APIRouter(tags=["executors"])

MAX_BATCH = 16
"""The most leases or finishes one request may carry."""


class FinishOf(Finish):
    task_id: str = Field(max_length=64)


class Finishes(BaseModel):
    finishes: list[FinishOf] = Field(min_length=1, max_length=MAX_BATCH)


@router.post("/v1/executor/leases", responses=error_responses(401, 422))
async def lease_many(
    request: Request,
    executor: CurrentExecutor,
    platform: PlatformDep,
    wait: LeaseWait = 0.0,
    sessions: SessionsFlag = True,
    limit: int = Query(4, ge=1, le=MAX_BATCH, description="the most leases to take"),
) -> dict[str, list[dict[str, Any]]]:
    """Lease up to ``limit`` queued tasks: ``{"leases": [bundle, ...]}``, each bundle as
    ``POST /v1/executor/lease`` returns it, oldest first; an empty list if none came within
    ``wait`` seconds. Only the first is waited for; the rest are what is queued then. A batch
    holds at most one inference session."""

    seen = LastSeen(executor)

    def take() -> list[dict[str, Any]] | None:
        # One store transaction for the batch; at most one session in it (an executor serves
        # one at a time).
        return lease_bundles(executor, platform, sessions, seen, limit=limit) or None

    return {"leases": await wait_for_work(request, platform, wait, take) or []}


@router.post("/v1/executor/finishes", responses=error_responses(401, 422))
@in_worker_thread
def finish_many(
    body: Finishes, executor: CurrentExecutor, platform: PlatformDep
) -> dict[str, list[dict[str, Any]]]:
    """Record several results: ``{"results": [{"task_id", "status"} or {"task_id", "error":
    {"code", "message"}}, ...]}`` in the order given. One refused finish (lease lost, an output
    missing) does not stop the others; each is recorded or refused whole."""
    results: list[dict[str, Any] | None] = []
    ready: list[tuple[int, Finishing]] = []
    # The batch's tasks in one read; each lease is checked against it here and again by the
    # store's compare-and-set.
    known = platform.store.tasks_by_id([item.task_id for item in body.finishes])
    for item in body.finishes:
        try:
            ready.append((len(results), finishing(platform, executor, item.task_id, item, known)))
            results.append(None)  # answered once the batch is recorded
        except ApiError as exc:
            results.append(_refused(item.task_id, exc))
    # The checked finishes in one store transaction (each in a savepoint of its own).
    recorded = platform.store.finish_batch([record for _, record in ready], now=platform.clock())
    for (index, record), done in zip(ready, recorded, strict=True):
        try:
            results[index] = {"task_id": record.task_id, **finished(platform, record, done)}
        except ApiError as exc:
            results[index] = _refused(record.task_id, exc)
    return {"results": [result for result in results if result is not None]}


def _refused(task_id: str, exc: ApiError) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "error": {"status": exc.status, "code": exc.code, "message": exc.message},
    }
