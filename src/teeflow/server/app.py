"""``create_app(settings)``: the FastAPI control plane. Nothing is built at import time."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig

from teeflow.crypto import private_directory, read_or_create_secret
from teeflow.server.blobs import BlobStore, open_blob_store
from teeflow.server.body_limit import JsonBodyLimit
from teeflow.server.errors import install_error_handlers
from teeflow.server.notify import Notifier
from teeflow.server.notify_pg import notifier_for
from teeflow.server.relay import SessionRelay
from teeflow.server.row_blobs import RowBackedBlobStore
from teeflow.server.settings import Settings
from teeflow.server.store import Store

__all__ = [
    "LOG_FORMAT",
    "NO_TELEMETRY",
    "Platform",
    "add_routes",
    "app_from_environment",
    "create_app",
    "utcnow",
]

LOG_FORMAT = "%(asctime)s %(name)s %(message)s"

NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}
"""FastAPI's OpenTelemetry hooks, all off: the control plane exports nothing, whatever the
``OTEL_*`` / ``FASTAPI_OTEL_AUTO_CONFIGURE`` environment says, and no request pays for probing
the global providers."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Platform:
    """What every request handler needs; one per app."""

    settings: Settings
    store: Store
    blobs: BlobStore
    executor_secret: str
    clock: Callable[[], datetime] = utcnow
    notifier: Notifier = field(default_factory=Notifier)
    relay: SessionRelay = field(default_factory=SessionRelay)
    """Inference-session requests and answers in flight (in memory, sealed end to end)."""


def load_executor_secret(settings: Settings) -> str:
    """The operator's secret that executors present to register (created on first start)."""
    made = read_or_create_secret(
        settings.executor_secret_path, lambda: secrets.token_urlsafe(32).encode()
    )
    return made.decode().strip()


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    from teeflow.server.routes import (
        accounts,
        channel,
        datasets,
        executor_batch,
        executors,
        functions,
        keyrelease,
        operator,
        output_datasets,
        sessions,
        tasks,
    )

    # Only the platform's own user may enter its data directory (database, secrets, blobs, logs).
    private_directory(settings.data_dir, tighten=True)
    store = Store.from_url(settings.resolved_database_url)
    store.migrate()
    platform = Platform(
        settings=settings,
        store=store,
        blobs=RowBackedBlobStore(open_blob_store(settings), store),
        executor_secret=load_executor_secret(settings),
        clock=clock,
        notifier=notifier_for(store.engine),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await platform.store.credentials.aclose()
            platform.notifier.close()

    app = FastAPI(
        title="teeflow control plane",
        version="1",
        summary="Untrusted control plane: it stores ciphertext, wrapped keys and signatures only.",
        lifespan=lifespan,
        telemetry=NO_TELEMETRY,
    )
    app.state.platform = platform
    app.add_middleware(JsonBodyLimit, limit=settings.max_json_bytes)
    install_error_handlers(app)
    # The task path's routes first: a request is tried against the routes in order, and no two
    # routers' routes can match the same path (tests/hostile/test_web_stack.py), so the order of
    # the routers decides nothing but the cost.
    for module in (
        executor_batch,
        tasks,
        executors,
        accounts,
        datasets,
        functions,
        output_datasets,
        sessions,
        channel,
        operator,
        keyrelease,
    ):
        add_routes(app, module.router)

    @app.get("/v1/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Add ``router``'s routes to ``app``'s own table, as they are.

    ``app.include_router`` keeps each router as one nested entry that FastAPI matches route by
    route through its own bookkeeping (about ten Python calls per route tried, twice for the
    router that matches); routes in the app's table cost Starlette's one regular-expression match
    each. The routers carry their prefix and tags in their routes and no dependencies of their
    own (``include_router`` without arguments adds nothing to a route), so only
    ``app.dependency_overrides`` would not reach them, which teeflow does not use."""
    app.router.routes.extend(router.routes)


def app_from_environment() -> FastAPI:
    """The app of one worker process of several, configured from ``TEEFLOW_*`` (uvicorn's
    factory for ``--workers N``)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    return create_app(Settings())
