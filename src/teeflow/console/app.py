"""``create_app(client, launch)``: the member's console, a FastAPI app over ``teeflow.Client``.

It runs on the member's own machine (``teeflow console``): signing, unwrapping and decryption
happen in this process with the member's keyring, and only what ``Client`` sends ever reaches the
control plane. Pages are server-rendered Jinja2 templates (autoescaped: every string from the
control plane or another member is text, never markup) with vendored htmx for the few live
parts; see _security.py for the token, CSRF, origin and CSP checks.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from teeflow.client import Client
from teeflow.console._security import CSRF_FIELD, LaunchSecrets, SecurityMiddleware, require_csrf

__all__ = ["ConsoleState", "StateDep", "create_app", "page"]

_HERE = Path(__file__).parent


@dataclass
class ConsoleState:
    """One launch's state: the member's signed-in client and what it decrypted (memory only)."""

    client: Client
    launch: LaunchSecrets
    templates: Jinja2Templates
    outputs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    """Decrypted outputs by (task, slot), kept for pictures; never written to disk here."""
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Decrypted progress events by task."""
    opened: set[tuple[str, str]] = field(default_factory=set)
    """Outputs this member downloaded in this launch (the To do page's "new" marks)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    _functions: list[dict[str, Any]] | None = None

    @property
    def me(self) -> str:
        return self.client.username or ""

    def functions(self) -> list[dict[str, Any]]:
        """The platform's function catalogue (fetched once per launch)."""
        if self._functions is None:
            self._functions = self.client.functions()
        return self._functions

    def output(self, task_id: str, slot: str) -> bytes:
        """Output ``slot`` decrypted here (``Client.output`` checks it against the receipt)."""
        key = (task_id, slot)
        if key not in self.outputs:
            data = self.client.output(task_id, slot)
            assert isinstance(data, bytes)  # no destination: bytes
            with self.lock:
                self.outputs[key] = data
        return self.outputs[key]

    def new_events(self, task_id: str) -> list[dict[str, Any]]:
        """Every progress event of the task decrypted so far, fetching only the new ones."""
        seen = self.events.setdefault(task_id, [])
        after = max((int(e["seq"]) for e in seen), default=0)
        fresh = self.client.events(task_id, after=after)
        with self.lock:
            seen.extend(e for e in fresh if int(e["seq"]) > after)
        return list(seen)


def _state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


StateDep = Annotated[ConsoleState, Depends(_state)]


def page(
    state: ConsoleState,
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """Render ``template`` with what every page needs (member, CSRF token, active tab)."""
    return state.templates.TemplateResponse(
        request,
        template,
        {"me": state.me, "csrf": state.launch.csrf, "csrf_field": CSRF_FIELD, **context},
        status_code=status_code,
    )


def create_app(client: Client, launch: LaunchSecrets) -> FastAPI:
    """The console app for ``client`` (signed in, keys unlocked) and this launch's secrets."""
    from teeflow.console import pages_data, pages_info, pages_tasks

    templates = Jinja2Templates(directory=_HERE / "templates")
    app = FastAPI(
        title="teeflow console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(require_csrf)],
    )
    app.state.launch = launch
    app.state.console = ConsoleState(client=client, launch=launch, templates=templates)
    app.add_middleware(SecurityMiddleware, secrets_=launch)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    for module in (pages_tasks, pages_data, pages_info):
        app.include_router(module.router)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        return page(
            app.state.console,
            request,
            "error.html",
            status_code=exc.status_code,
            message=str(exc.detail),
        )

    return app
