"""A member's side of an inference session: seal, sign, send, check, open (docs/inference.md).

The rows never leave the member's machine in the clear: each request is HPKE-sealed to the enclave
key of the contract the member reviewed (and, as a participant, signed), and signed with the
member's own key; the answer is accepted only with the enclave's signature over it and this very
request, and opens only with the member's key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from teeflow.client._channel import SessionChannel, error_message
from teeflow.client._errors import ClientError, InferenceError
from teeflow.crypto import CryptoError, PublicKey, VerifyKey, b64d, b64e
from teeflow.enclave.contract import contract_hash
from teeflow.enclave.session_wire import new_request_id, open_response, seal_request

if TYPE_CHECKING:
    from teeflow.client._client import Client

__all__ = ["SessionClient"]

_LONG_POLL_SECONDS = 20.0


class SessionClient:
    """Requests to one running inference session, as one member."""

    def __init__(self, client: Client, task: Mapping[str, Any]) -> None:
        contract = task["contract"]
        keys = contract["executor"]["public_keys"]
        self._client = client
        self.task_id: str = task["id"]
        self.contract_hash = contract_hash(contract)
        self._enclave_key = PublicKey.from_b64(keys["x25519"])
        self._enclave_verify_key = VerifyKey.from_b64(keys["ed25519"])

        self._channel: SessionChannel | None = None

    @classmethod
    def open(cls, client: Client, task_id: str, *, channel: bool = False) -> SessionClient:
        """Review the session's contract (attesting its enclave) before sending it anything;
        ``channel``: then open the long-lived channel to the relay (ClientError if refused)."""
        task = client.task(task_id)
        client.review(task)
        session = cls(client, task)
        if channel:
            session.connect()
        return session

    def connect(self, http: httpx.Client | None = None) -> None:
        """Send requests over one WebSocket to the relay from now on (client/_channel.py);
        ``http``: the relay's address and credentials where they differ from the client's."""
        self.close()
        self._channel = SessionChannel(http or self._client.http, self._client.tls, self.task_id)

    def close(self) -> None:
        """Close the channel, if one is open (requests then go over HTTP)."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def __enter__(self) -> SessionClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def infer(self, rows: Any, *, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Predictions for ``rows``: a list of ``{column: value}``, a pandas DataFrame, or the
        bytes of a CSV table. Raises InferenceError if the enclave refused or failed the request."""
        result = self.request(_payload(rows), timeout=timeout)
        predictions = result.get("predictions") if isinstance(result, dict) else None
        if not isinstance(predictions, list):
            raise ClientError("the session's answer holds no predictions")
        return predictions

    def request(
        self, payload: bytes, *, request_id: str | None = None, timeout: float = 60.0
    ) -> Any:
        """Send one request's plaintext; return the enclave's (JSON) answer."""
        me = self._client._me()
        request_id = request_id or new_request_id()
        ciphertext, signature = seal_request(
            payload,
            contract_hash=self.contract_hash,
            requester=me,
            request_id=request_id,
            enclave_key=self._enclave_key,
            signing_key=self._client.keys.signing_key,
        )
        body = {
            "request_id": request_id,
            "ciphertext": b64e(ciphertext),
            "signature": b64e(signature),
        }
        if self._channel is not None:
            data = self._channel.exchange(body, timeout=timeout)
            if data.get("status") == "error":
                raise ClientError(error_message(data))
        else:
            data = self._over_http(body, timeout)
        if data.get("refused"):
            raise InferenceError(f"the enclave refused the request ({data['refused']})")
        try:
            envelope = open_response(
                b64d(data["sealed"]),
                b64d(data["signature"]),
                contract_hash=self.contract_hash,
                requester=me,
                request_id=request_id,
                request_ciphertext=ciphertext,
                enclave_key=self._enclave_verify_key,
                receiving_key=self._client.keys.receiving_key,
            )
        except (CryptoError, KeyError, TypeError) as exc:
            raise ClientError(
                "the answer was not made by the session's enclave for this request"
            ) from exc
        if envelope["status"] != "ok":
            raise InferenceError(str(envelope.get("error", "the request failed")))
        return envelope.get("result")

    def _over_http(self, body: dict[str, str], timeout: float) -> dict[str, Any]:
        request_id = body["request_id"]
        deadline = time.monotonic() + timeout
        path = f"/v1/tasks/{self.task_id}/requests"
        data = self._client._call("POST", path, json=body, params={"wait": _wait(deadline)})
        while data.get("status") == "pending":
            if time.monotonic() >= deadline:
                raise ClientError(f"no answer to request {request_id} within {timeout:.0f} s")
            data = self._client._call(
                "GET", f"{path}/{request_id}", params={"wait": _wait(deadline)}
            )
        return dict(data)


def _wait(deadline: float) -> float:
    return round(min(max(deadline - time.monotonic(), 0.0), _LONG_POLL_SECONDS), 3)


def _payload(rows: Any) -> bytes:
    if isinstance(rows, bytes):
        return rows
    if hasattr(rows, "to_dict"):  # a pandas DataFrame
        rows = rows.to_dict("records")
    if not isinstance(rows, Sequence) or not all(isinstance(row, Mapping) for row in rows):
        raise ClientError("rows must be a list of {column: value}, a DataFrame or CSV bytes")
    return json.dumps({"rows": [dict(row) for row in rows]}, default=_plain).encode("utf-8")


def _plain(value: Any) -> Any:
    """numpy scalars (from a DataFrame) as plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent as JSON")
