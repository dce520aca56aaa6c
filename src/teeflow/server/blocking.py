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

The body runs on a thread pool of the module's own (``concurrent.futures``, as many threads as
anyio's default limiter allows FastAPI), with the request's context copied in, and a cancelled
request still waits for its body to end before the cancellation goes on, as anyio's
``to_thread.run_sync`` does. The pool rather than anyio's worker threads: its hand-off is a
``SimpleQueue`` in C where anyio's is a ``queue.Queue`` (a lock and a condition in Python) plus a
cancel scope, about half the CPU per hop (30 µs against 60-75 µs, measured in isolation).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["MAX_THREADS", "in_worker_thread", "run_blocking"]

P = ParamSpec("P")
R = TypeVar("R")

MAX_THREADS = 40
"""Route bodies in flight at once per process (anyio's default limit for FastAPI's own)."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="teeflow-route")
        return _pool


async def run_blocking(call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``call(*args, **kwargs)`` in a worker thread of the pool; its result or its exception.

    The awaitable form of :func:`in_worker_thread` for a coroutine route that has a blocking
    step (``await run_in_threadpool(read)`` becomes ``await run_blocking(read)``)."""
    bound = functools.partial(contextvars.copy_context().run, call, *args, **kwargs)
    done = asyncio.get_running_loop().run_in_executor(_threads(), bound)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        # The call is not interruptible: let it end (its store transaction with it) first.
        await asyncio.wait([done])
        raise


def in_worker_thread(body: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``body`` as a coroutine function with its signature (FastAPI reads the parameters and
    the response model through ``__wrapped__``) that runs it with :func:`run_blocking`."""

    @functools.wraps(body)
    async def route(*args: P.args, **kwargs: P.kwargs) -> R:
        return await run_blocking(body, *args, **kwargs)

    return route
