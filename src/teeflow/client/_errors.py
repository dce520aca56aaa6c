"""Client errors.

Hierarchy::

    ClientError          a member-side check failed, or the request could not be made
     ├── ApiError        the control plane answered with an error (status, code, message)
     └── InferenceError  the enclave answered an inference request with an error, sealed to you
"""

from __future__ import annotations

import httpx

__all__ = ["ApiError", "ClientError", "InferenceError", "raise_for_error"]


class ClientError(Exception):
    """Something the member must act on; the message says what."""


class ApiError(ClientError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} (HTTP {status} {code})")
        self.status = status
        self.code = code
        self.message = message


class InferenceError(ClientError):
    """The session's enclave refused or could not answer a request; the message says why (only
    you could read it)."""


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    code, message = "error", response.reason_phrase
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = str(body["error"].get("code", code))
            message = str(body["error"].get("message", message))
        elif isinstance(body, dict) and "detail" in body:
            code, message = "invalid", str(body["detail"])[:500]
    except ValueError:
        pass
    raise ApiError(response.status_code, code, message)
