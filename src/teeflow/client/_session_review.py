"""What a member's review says about an inference session (docs/inference.md, "Limits").

The limits are the contract's, read with the enclave's own parser and defaults
(enclave/session_limits.py), so the review shows exactly what the enclave will enforce.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teeflow.enclave.checks import TaskRejected
from teeflow.enclave.session import is_session_contract
from teeflow.enclave.session_limits import SessionLimits

__all__ = ["session_review_lines"]


def session_review_lines(contract: Mapping[str, Any], me: str) -> list[str]:
    """Lines for the review of an inference session's contract; [] for any other contract.

    Every participant sees the session's requesters and limits; an owner of its model (an
    input) is also warned about each limit above :data:`~teeflow.enclave.session_limits.LARGE`
    and about answers at full precision, both of which ease model extraction.
    """
    if not is_session_contract(contract):
        return []
    try:
        limits = SessionLimits.from_contract(contract)
    except TaskRejected as exc:
        return [f"inference session: the enclave will refuse to start it ({exc})"]
    precision = (
        "full precision" if limits.decimals is None else f"rounded to {limits.decimals} decimals"
    )
    lines = [
        f"inference session: requesters {sorted(limits.requesters)}; at most "
        f"{limits.max_rows_per_request} rows a request, {limits.max_rows} rows and "
        f"{limits.max_requests} requests in total, {limits.max_requests_per_minute} requests a "
        f"minute; lifetime {_duration(limits.max_seconds)}; probabilities {precision}"
    ]
    owns_model = any(me in spec.get("owners", []) for spec in contract["inputs"].values())
    if not owns_model:
        return lines
    others = sorted(limits.requesters - {me})
    for name, value in limits.large().items():
        lines.append(
            f"{name} = {value:g} is large: {others} can query your model at will "
            "(bulk export or model extraction); lower it or refuse"
        )
    if limits.decimals is None and others:
        lines.append(
            f"answers to {others} carry probabilities at full precision, which eases model "
            "extraction; ask for 'decimals' (e.g. 2) if they need no more"
        )
    return lines


def _duration(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:g} day(s)"
    if seconds >= 3600:
        return f"{seconds / 3600:g} hour(s)"
    return f"{seconds:g} s"
