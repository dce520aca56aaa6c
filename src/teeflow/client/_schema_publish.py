"""A dataset's schema summary, published by its owner, signed so the operator cannot alter it.

Publishing is opt-in (``teeflow dataset schema ID --publish``): nothing is published by default.
The signed document is ``{"schema": {dataset_id, owner, ciphertext_sha256, summary}, "signature"}``
with an Ed25519 signature over its canonical JSON (RFC 8785) under :data:`SCHEMA_DOMAIN`. A
partner checks it against the owner's key it pinned (client/_pins.py), never the server's word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teeflow.client._errors import ClientError
from teeflow.crypto import CryptoError, SigningKey, VerifyKey, b64d, b64e, canonical_json

__all__ = ["SCHEMA_DOMAIN", "partner_schema_notes", "sign_schema", "verify_schema"]

SCHEMA_DOMAIN = "teeflow/dataset-schema/v1"


def sign_schema(
    *,
    dataset_id: str,
    owner: str,
    ciphertext_sha256: str,
    summary: Mapping[str, Any],
    key: SigningKey,
) -> dict[str, Any]:
    """The owner's signed schema document for one dataset's ciphertext."""
    body = {
        "dataset_id": dataset_id,
        "owner": owner,
        "ciphertext_sha256": ciphertext_sha256,
        "summary": dict(summary),
    }
    return {"schema": body, "signature": b64e(key.sign(SCHEMA_DOMAIN, canonical_json(body)))}


def verify_schema(record: Mapping[str, Any], *, owner_sign_pk: str) -> dict[str, Any] | None:
    """The verified summary of a dataset record's published schema (None when unpublished).

    Raises ClientError when the document does not verify against the owner's pinned key, or
    names another dataset, owner or ciphertext: the operator altered or moved it."""
    signed = record.get("schema")
    if signed is None:
        return None
    refused = (
        f"the schema published for dataset {record.get('id')} does not verify against its "
        f"owner {record.get('owner')!r}'s key: the control plane altered it; do not rely on it"
    )
    try:
        body = signed["schema"]
        VerifyKey.from_b64(owner_sign_pk).verify(
            SCHEMA_DOMAIN, canonical_json(body), b64d(signed["signature"])
        )
    except (CryptoError, KeyError, TypeError, ValueError):
        raise ClientError(refused) from None
    if (body.get("dataset_id"), body.get("owner"), body.get("ciphertext_sha256")) != (
        record.get("id"),
        record.get("owner"),
        record.get("ciphertext_sha256"),
    ):
        raise ClientError(refused)
    summary: dict[str, Any] = dict(body["summary"])
    return summary


def partner_schema_notes(contract: Mapping[str, Any], *, me: str) -> list[str]:
    """One review line per input another member owns: its published schema summary, checked
    against the owner's key in the contract (which the review checked against the pins), or
    "not published". ClientError for a schema that does not verify."""
    notes = []
    participants: Mapping[str, Mapping[str, Any]] = contract["participants"]
    for slot, spec in sorted(contract["inputs"].items()):
        owners = list(spec["owners"])
        keys = participants.get(owners[0]) if len(owners) == 1 else None
        if me in owners or spec.get("joint") or keys is None:
            continue
        record = {
            "id": spec.get("dataset_id"),
            "owner": owners[0],
            "ciphertext_sha256": spec.get("ciphertext_sha256"),
            "schema": spec.get("schema"),
        }
        summary = verify_schema(record, owner_sign_pk=str(keys["sign_pk"]))
        notes.append(f"input {slot!r} of {owners[0]!r}: {schema_text(summary)}")
    return notes


def schema_text(summary: Mapping[str, Any] | None) -> str:
    """One line of a schema summary, e.g. ``csv, 120 rows; id:integer, income:number``."""
    if not summary:
        return "schema not published (its owner has not opted in)"
    parts = [f"{summary.get('format', '?')}, {summary.get('rows', '?')} rows"]
    columns = summary.get("columns") or []
    if columns:
        parts.append(", ".join(f"{c.get('name')}:{c.get('type')}" for c in columns))
    classes = summary.get("classes") or {}
    if classes:
        parts.append("classes " + ", ".join(f"{k} ({v})" for k, v in classes.items()))
    return "published schema (signed by its owner): " + "; ".join(parts)
