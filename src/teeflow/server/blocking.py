"""``@in_worker_thread``: a blocking route body in a worker thread, with one thread hop, not two.

FastAPI runs a plain ``def`` route in a worker thread, and then, because the route is plain,
checks its return value against the response model in a second trip to a worker thread. Each
trip costs about as much CPU as a short store call (a task queue put, a condition notify, a
wake of the loop through its self-pipe, anyio's cancel scope), and under load each is also a
handoff of the GIL. Put under the route's decorator, this makes the route a coroutine whose body
still runs in a worker thread (so a store call never blocks the event loop), while the check and
the serialisation of the answer run on the loop::

    @router.post("/{task_id}/run", ...)
    @in_worker_thread
    def run(task_id: str, body: RunRequest, user: CurrentUser, platform: PlatformDep) -> ...:

The body runs through ``anyio.to_thread.run_sync``, exactly as FastAPI would run it: the same
thread limiter, the context copied in, and a cancelled request still waits for the body to end.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread

__all__ = ["in_worker_thread"]

P = ParamSpec("P")
R = TypeVar("R")


def in_worker_thread(body: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``body`` as a coroutine function with its signature (FastAPI reads the parameters and
    the response model through ``__wrapped__``) that runs it in a worker thread."""

    @functools.wraps(body)
    async def route(*args: P.args, **kwargs: P.kwargs) -> R:
        return await anyio.to_thread.run_sync(functools.partial(body, *args, **kwargs))

    return route
