"""``@in_worker_thread`` and ``run_blocking``: blocking work off the event loop, in one hop."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Annotated, Any

import httpx
import pytest
from fastapi import FastAPI, Query
from fastapi.exceptions import ResponseValidationError
from pydantic import BaseModel

from teeflow.server.blocking import in_worker_thread, run_blocking


class Answer(BaseModel):
    n: int
    thread: str


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/answer")
    @in_worker_thread
    def answer(n: Annotated[int, Query(ge=0)]) -> Answer:
        return Answer(n=n, thread=threading.current_thread().name)

    @app.get("/wrong")
    @in_worker_thread
    def wrong() -> Answer:
        return {"n": "not a number"}  # type: ignore[return-value]

    @app.get("/loop")
    async def loop() -> dict[str, str]:
        return {"thread": threading.current_thread().name}

    return app


def _get(app: FastAPI, url: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get(url)

    return asyncio.run(call())


def test_the_body_runs_in_a_worker_thread_not_on_the_loop() -> None:
    app = _app()
    answer = _get(app, "/answer?n=3")
    loop = _get(app, "/loop")
    assert answer.status_code == 200
    assert answer.json()["n"] == 3
    assert answer.json()["thread"] != loop.json()["thread"]


def test_parameters_and_the_response_model_still_apply() -> None:
    app = _app()
    assert _get(app, "/answer?n=-1").status_code == 422
    schema: dict[str, Any] = app.openapi()
    ok = schema["paths"]["/answer"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Answer"}
    assert schema["paths"]["/answer"]["get"]["operationId"].startswith("answer_")
    with pytest.raises(ResponseValidationError):
        _get(app, "/wrong")


def test_a_cancelled_request_waits_for_its_body_to_end() -> None:
    started, release, ended = threading.Event(), threading.Event(), threading.Event()

    @in_worker_thread
    def body() -> str:
        started.set()
        release.wait(timeout=30)
        ended.set()
        return "done"

    async def scenario() -> tuple[bool, bool]:
        task = asyncio.create_task(body())
        await asyncio.to_thread(started.wait, 30)
        task.cancel()
        await asyncio.sleep(0.05)
        pending_while_body_runs = not task.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pending_while_body_runs, ended.is_set()

    pending_while_body_runs, ended_before_cancel = asyncio.run(scenario())
    assert pending_while_body_runs
    assert ended_before_cancel


def test_the_request_context_reaches_the_body() -> None:
    seen: contextvars.ContextVar[str] = contextvars.ContextVar("seen")

    @in_worker_thread
    def body() -> str:
        return seen.get()

    async def scenario() -> str:
        seen.set("request 1")
        return await body()

    assert asyncio.run(scenario()) == "request 1"


def test_run_blocking_returns_or_raises_what_the_call_does() -> None:
    def divide(a: int, b: int) -> float:
        return a / b

    assert asyncio.run(run_blocking(divide, 6, b=3)) == 2.0
    with pytest.raises(ZeroDivisionError):
        asyncio.run(run_blocking(divide, 1, b=0))
