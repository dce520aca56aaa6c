"""Functions: the enclave's built-ins and members' uploaded Python functions.

An uploaded function's source is a dataset of kind ``function`` (sealed when its code is
confidential); the contract pins it by the SHA-256 of its plaintext source.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from teeflow.functions.outputs import MAX_METRICS_BYTES, uploaded_declarations
from teeflow.functions.registry import builtin_catalogue
from teeflow.server.contracts import declared_outputs
from teeflow.server.deps import CurrentUser, PlatformDep
from teeflow.server.errors import ApiError, error_responses
from teeflow.server.store import FunctionRecord

router = APIRouter(prefix="/v1/functions", tags=["functions"])


class OutputDeclared(BaseModel):
    kind: Literal["metrics", "table", "model", "bytes"]
    max_bytes: int | None = Field(default=None, gt=0)


class FunctionCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = Field(default="", max_length=2000)
    code_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    sealed: bool
    source_dataset_id: str
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] | dict[str, OutputDeclared] = Field(
        default_factory=list,
        description="output slot -> kind and size bound (functions/outputs.py); "
        "bare slot names declare opaque, unbounded outputs",
    )
    arguments: dict[str, str] = Field(default_factory=dict)


def public_function(record: FunctionRecord) -> dict[str, Any]:
    return {
        "id": record.function_id,
        "kind": "uploaded",
        "name": record.name,
        "owner": record.owner,
        "summary": record.description,
        "code_sha256": record.code_sha256,
        "sealed": record.sealed,
        "source_dataset_id": record.source_dataset_id,
        **record.spec,
    }


def _declared(outputs: list[str] | dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Output declarations as the contract carries them (``{slot: {kind, max_bytes}}``)."""
    if not isinstance(outputs, list):
        outputs = {slot: spec.model_dump() for slot, spec in outputs.items()}
    declared = declared_outputs({"outputs": outputs})
    for spec in declared.values():
        if spec["kind"] == "metrics" and spec["max_bytes"] is None:
            spec["max_bytes"] = MAX_METRICS_BYTES
    try:
        uploaded_declarations(declared)
    except ValueError as exc:
        raise ApiError.invalid(str(exc)) from None
    return declared


@router.get("", responses=error_responses(401))
def list_functions(_: CurrentUser, platform: PlatformDep) -> list[dict[str, Any]]:
    builtins = [b.describe() for b in builtin_catalogue().values()]
    uploaded = [public_function(r) for r in platform.store.list_functions()]
    return sorted(builtins, key=lambda f: f["name"]) + uploaded


@router.post("", status_code=201, responses=error_responses(401, 422))
def upload_function(
    body: FunctionCreate, user: CurrentUser, platform: PlatformDep
) -> dict[str, Any]:
    source = platform.store.get_dataset(body.source_dataset_id)
    if source is None or source.owner != user.username or source.state != "ready":
        raise ApiError.invalid(
            "source_dataset_id must be a ready dataset you own (upload the code first)"
        )
    if body.name in builtin_catalogue():
        raise ApiError.invalid(
            f"{body.name!r} is the name of a built-in function; choose another name so that no "
            "member can mistake your code for the built-in"
        )
    outputs = _declared(body.outputs)
    for slot in [*body.inputs, *outputs]:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$", slot):
            raise ApiError.invalid(f"slot name {slot!r} is not valid")
    now = platform.clock()
    record = platform.store.create_function(
        function_id=uuid.uuid4().hex,
        name=body.name,
        owner=user.username,
        description=body.description,
        code_sha256=body.code_sha256,
        sealed=body.sealed,
        source_dataset_id=body.source_dataset_id,
        spec={"inputs": body.inputs, "outputs": outputs, "arguments": body.arguments},
        now=now,
    )
    platform.store.append_audit(
        actor=user.username,
        action="function.upload",
        subject=record.function_id,
        details={"name": body.name, "code_sha256": body.code_sha256, "sealed": body.sealed},
        now=now,
    )
    return public_function(record)
