"""The platform with its blobs in S3: a control plane and an executor (separate processes) with
``TEEFLOW_BLOB_STORE=s3`` against moto's S3 server on loopback, and a member's echo task."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, scan_for

BUCKET = "teeflow-e2e"
PREFIX = "prod"
CREDENTIALS = {
    "aws_access_key_id": "AKIATEEFLOWE2ECANARY",
    "aws_secret_access_key": "e2e/secret+canary/DO-NOT-LEAK-9876543210",
    "region_name": "us-east-1",
}


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, Any]]:
    """(endpoint URL, client) of an S3 server holding an empty bucket."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=url, **CREDENTIALS)
        client.create_bucket(Bucket=BUCKET)
        yield url, client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, s3: tuple[str, Any]
) -> Iterator[LocalPlatform]:
    """Overrides the conftest's platform (and so ``member``'s) with one that stores in S3."""
    env = {
        "TEEFLOW_BLOB_STORE": "s3",
        "TEEFLOW_S3_ENDPOINT_URL": s3[0],
        "TEEFLOW_S3_BUCKET": BUCKET,
        "TEEFLOW_S3_PREFIX": PREFIX,
        "TEEFLOW_S3_REGION": CREDENTIALS["region_name"],
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_EC2_METADATA_DISABLED": "true",
        # Every output to the bucket too, not the database (server/row_blobs.py): this module
        # checks what the bucket holds.
        "TEEFLOW_ROW_OUTPUT_BYTES": "0",
    }
    with LocalPlatform(tmp_path_factory.mktemp("platform"), executors=1, env=env) as running:
        yield running


def test_an_echo_task_keeps_only_ciphertext_in_the_bucket(
    member: MemberFactory, platform: LocalPlatform, s3: tuple[str, Any]
) -> None:
    alice, bank = member("alice"), member("bank")
    marker = f"S3CANARY{uuid.uuid4().hex}".encode()
    payload = b"id,amount\n" + marker + b",1\n"
    dataset = bank.upload_dataset(payload, name="bank.csv", kind="table")
    task = alice.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["alice"]}}
    )
    for client in (alice, bank):
        client.approve(task["id"])

    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=120)

    assert done["status"] == "succeeded", done["failure_reason"]
    assert alice.output(done["id"], "data") == payload
    client = s3[1]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.startswith(f"{PREFIX}/") and dataset["id"] in k for k in keys)
    assert any(k.startswith(f"{PREFIX}/") and done["id"] in k for k in keys)
    objects = {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}
    assert [k for k, data in objects.items() if marker in data] == []
    assert not (platform.data_dir / "blobs").exists()
    secrets = [CREDENTIALS["aws_secret_access_key"].encode(), marker]
    assert scan_for(platform.data_dir, secrets) == []  # logs and database included
