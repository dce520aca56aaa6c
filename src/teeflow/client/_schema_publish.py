"""A dataset's schema summary, published by its owner, signed so the operator cannot alter it.

Publishing is opt-in (``teeflow dataset schema ID --publish``): nothing is published by default.
The signed document is ``{"schema": {dataset_id, owner, ciphertext_sha256, summary}, "signature"}``
with an Ed25519 signature over its canonical JSON (RFC 8785) under :data:`SCHEMA_DOMAIN`. A
partner checks it against the owner's key it pinned (client/_pins.py), never the server's word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from teeflow.client._errors import ClientError
from teeflow.crypto import CryptoError, SigningKey, VerifyKey, b64d, b64e, canonical_json

if TYPE_CHECKING:
    from teeflow.client._client import Client

__all__ = [
    "SCHEMA_DOMAIN",
    "partner_schema_notes",
    "publish_schema",
    "sign_schema",
    "verified_dataset",
    "verify_schema",
]

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


def verified_dataset(client: Client, dataset_id: str) -> dict[str, Any]:
    """One dataset's metadata (owners, state, producing task), as the control plane shows it;
    ``schema`` is its owner's published schema summary, verified
    against the owner's pinned key (None when unpublished). ClientError when it does not
    verify: the control plane altered it."""
    record: dict[str, Any] = client._call("GET", f"/v1/datasets/{quote(dataset_id, safe='')}")
    if record.get("schema") is not None:
        owner = str(record["owner"])
        pinned = client.keys.signing_key.verify_key.b64() if owner == client._me() else None
        pinned = pinned or (client.home.pinned_member(owner) or {}).get("sign_pk")
        if pinned is None:  # trust on first use, as for a contract's participants
            from teeflow.client._pins import pin_record

            keys = client.member(owner)
            client.home.pin_member(owner, pin_record(keys, source=f"dataset {dataset_id}"))
            pinned = keys["sign_pk"]
        record["schema"] = verify_schema(record, owner_sign_pk=str(pinned))
    return record


def publish_schema(client: Client, dataset_id: str) -> dict[str, Any]:
    """Publish (opt-in) the schema summary this member's upload check recorded for its own
    dataset, signed with its key: column names and types, row count, class names and
    counts, never values. Returns the summary published."""
    record = client.home.dataset_record(dataset_id)
    if record is None or not isinstance(record.get("schema"), dict):
        raise ClientError(
            f"no schema summary recorded for dataset {dataset_id}: only a table or image "
            "file uploaded from this home has one"
        )
    signed = sign_schema(
        dataset_id=dataset_id,
        owner=client._me(),
        ciphertext_sha256=record["ciphertext_sha256"],
        summary=record["schema"],
        key=client.keys.signing_key,
    )
    client._call("PUT", f"/v1/datasets/{quote(dataset_id, safe='')}/schema", json=signed)
    summary: dict[str, Any] = record["schema"]
    return summary
