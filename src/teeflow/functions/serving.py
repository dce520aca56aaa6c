"""The API of a built-in that serves an inference session instead of running once.

A session built-in (registered with ``session=True``) defines ``open_session(ctx) -> Predictor``.
The enclave calls it once when the session starts, with the decrypted inputs (the model) and the
contract's arguments in ``ctx``; the predictor keeps the model in memory and answers every request
the enclave has authenticated. Its ``run(ctx)`` only explains that it runs as a session.

Contract with the enclave session (enclave/session.py):
- ``predict`` gets the plaintext of one request and returns a JSON-able answer; the enclave seals
  it for the requester alone.
- A request the requester must fix raises :class:`~teeflow.functions.api.FunctionError`; its
  message goes, sealed, to that requester only, and the session goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from teeflow.functions.api import Context

__all__ = ["OpenSession", "Predictor"]


class Predictor(Protocol):
    def predict(self, request: bytes) -> Any:
        """The JSON-able answer to one request's plaintext; FunctionError for a bad request."""
        ...


OpenSession = Callable[[Context], Predictor]
