"""The SGX LibOS configurations: each rule of the Gramine manifest checked on the parsed TOML;
Occlum and SCONE generated from the same measured footprint."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import teeflow
from teeflow.attestation import (
    MEASURED,
    EnclaveFootprint,
    render_gramine_manifest,
    render_occlum_config,
    render_scone_config,
)
from teeflow.cli.main import app


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in [key, *_keys(item)]]
    if isinstance(value, list):
        return [k for item in value for k in _keys(item)]
    return []


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return tomllib.loads(
        render_gramine_manifest(
            key_service_policy="/etc/teeflow/kbs.json", ca_cert="/etc/teeflow/tls/ca.pem"
        )
    )


def test_no_insecure_option_and_no_debug(manifest: dict[str, Any]) -> None:
    assert not [k for k in _keys(manifest) if k.startswith("insecure__")]
    assert manifest["sgx"]["debug"] is False
    assert manifest["sgx"]["remote_attestation"] == "dcap"


def test_sized_from_the_measured_footprint(manifest: dict[str, Any]) -> None:
    size = manifest["sgx"]["enclave_size"]
    assert size == MEASURED.enclave_size
    assert MEASURED.enclave_size_bytes >= 2 * MEASURED.peak_memory_bytes
    assert MEASURED.enclave_size_bytes & (MEASURED.enclave_size_bytes - 1) == 0  # power of two
    assert manifest["sgx"]["max_threads"] == MEASURED.max_threads > MEASURED.peak_threads
    assert manifest["sgx"]["edmm_enable"] is False


def test_sizes_and_edmm_can_be_overridden() -> None:
    text = render_gramine_manifest(enclave_size="16G", max_threads=128, edmm=True)
    sgx = tomllib.loads(text)["sgx"]
    assert (sgx["enclave_size"], sgx["max_threads"], sgx["edmm_enable"]) == ("16G", 128, True)


def test_trusted_files_cover_what_the_executor_loads(manifest: dict[str, Any]) -> None:
    trusted = manifest["sgx"]["trusted_files"]
    package = Path(teeflow.__file__).resolve().parent
    assert f"file:{manifest['libos']['entrypoint']}" in trusted
    assert f"file:{package}/" in trusted
    assert "file:/etc/teeflow/kbs.json" in trusted  # the key-service policy is measured
    assert "file:/etc/teeflow/tls/ca.pem" in trusted  # so is the control plane's TLS anchor
    mounted = [m["path"] for m in manifest["fs"]["mounts"]]
    assert "/etc/teeflow" in mounted and len(mounted) == len(set(mounted))


def test_data_directory_is_an_encrypted_mount_sealed_to_the_enclave(
    manifest: dict[str, Any],
) -> None:
    argv = manifest["loader"]["argv"]
    data_dir = argv[argv.index("--data-dir") + 1]
    encrypted = [m for m in manifest["fs"]["mounts"] if m.get("type") == "encrypted"]
    assert [(m["path"], m["key_name"]) for m in encrypted] == [(data_dir, "_sgx_mrenclave")]


def test_executor_arguments_are_baked_in(manifest: dict[str, Any]) -> None:
    argv = manifest["loader"]["argv"]
    assert argv[1:5] == ["-m", "teeflow.executor", "--tee", "sgx"]
    assert argv[argv.index("--key-service-policy") + 1] == "/etc/teeflow/kbs.json"
    assert argv[argv.index("--memory-limit") + 1] == manifest["sgx"]["enclave_size"]
    assert argv[argv.index("--ca-cert") + 1] == "/etc/teeflow/tls/ca.pem"
    # Only the registration secret comes from the host, by name.
    passthrough = [k for k, v in manifest["loader"]["env"].items() if isinstance(v, dict)]
    assert passthrough == ["TEEFLOW_EXECUTOR_SECRET"]


def test_occlum_and_scone_use_the_same_figures() -> None:
    footprint = EnclaveFootprint(peak_memory_bytes=700 << 20, peak_threads=20)
    occlum_text = render_occlum_config(footprint)
    occlum = json.loads("\n".join(x for x in occlum_text.splitlines() if not x.startswith("//")))
    scone = render_scone_config(footprint)

    limits = occlum["resource_limits"]
    assert footprint.enclave_size_bytes == 2 << 30
    assert limits["user_space_size"] == "2048MB"
    assert limits["max_num_of_threads"] == footprint.max_threads
    assert occlum["metadata"]["debuggable"] is False
    assert "SCONE_HEAP=2048M" in scone and "SCONE_MODE=HW" in scone.replace("  ", " ")


def test_cli_renders_each_libos(tmp_path: Path) -> None:
    runner = CliRunner()
    for libos in ("gramine", "occlum", "scone"):
        out = tmp_path / libos
        result = runner.invoke(app, ["enclave", "manifest", "--libos", libos, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_text()
    refused = runner.invoke(app, ["enclave", "manifest", "--tee", "tdx"])
    assert refused.exit_code == 2
