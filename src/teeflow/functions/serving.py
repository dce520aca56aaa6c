"""The API of a built-in that serves an inference session instead of running once.

A session built-in (registered with ``session=True``) defines ``open_session(ctx) -> Predictor``.
The enclave calls it once when the session starts, with the decrypted inputs (the model) and the
contract's arguments in ``ctx``; the predictor keeps the model in memory and answers every request
the enclave has authenticated. Its ``run(ctx)`` only explains that it runs as a session.

Contract with the enclave session (enclave/session.py):
- ``predict`` gets the plaintext of one request and ``max_rows``, the most rows the session's limits
  leave for it (``max_rows_per_request``, and what is left of ``max_rows``); it refuses a request
  with more rows (FunctionError) before it scores any, and returns ``{"predictions": [row, ...]}``,
  one row per scored row, probabilities under ``probability`` or ``p_<class>``. The enclave counts
  the rows, rounds those probabilities when the contract sets ``decimals``, and seals the answer
  for the requester alone.
- A request the requester must fix raises :class:`~teeflow.functions.api.FunctionError`; its
  message goes, sealed, to that requester only, and the session goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from teeflow.functions.api import Context, FunctionError

__all__ = ["OpenSession", "Predictor", "check_rows"]


class Predictor(Protocol):
    def predict(self, request: bytes, *, max_rows: int) -> dict[str, Any]:
        """The answer to one request's plaintext (``{"predictions": [...]}``); FunctionError for a
        bad request or one with more than ``max_rows`` rows."""
        ...


OpenSession = Callable[[Context], Predictor]


def check_rows(rows: int, max_rows: int) -> None:
    """FunctionError unless a request holds 1 to ``max_rows`` rows."""
    if rows < 1:
        raise FunctionError("the request holds no rows")
    if rows > max_rows:
        raise FunctionError(
            f"the request holds {rows} rows; this session answers at most {max_rows} now "
            "(its limit per request, or what is left of its total): send fewer rows"
        )
