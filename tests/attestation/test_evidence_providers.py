"""Evidence providers against fake device trees, and the Gramine manifest."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

import teeflow
from teeflow.attestation import (
    AttestationError,
    GramineSgxProvider,
    Policy,
    SimProvider,
    SimQuotingKey,
    TsmProvider,
    get_provider,
    render_gramine_manifest,
    report_data_for,
    verify,
)

REPORT_DATA = report_data_for(b"keys", b"n" * 32)


def _gramine_tree(root: Path, kind: str = "dcap") -> Path:
    dev = root / "dev" / "attestation"
    dev.mkdir(parents=True)
    (dev / "attestation_type").write_text(kind + "\n")
    (dev / "quote").write_bytes(b"\x03\x00fake-quote")
    return dev


def _tsm_entry(root: Path, name: str, provider: str) -> Path:
    entry = root / name
    entry.mkdir(parents=True)
    (entry / "generation").write_text("1\n")
    (entry / "provider").write_text(provider + "\n")
    (entry / "outblob").write_bytes(b"report-bytes")
    return entry


def test_gramine_provider_writes_report_data_and_reads_quote(tmp_path):
    dev = _gramine_tree(tmp_path)

    evidence = GramineSgxProvider(root=tmp_path).get_evidence(REPORT_DATA)

    assert (dev / "user_report_data").read_bytes() == REPORT_DATA
    assert evidence.tee == "sgx"
    assert evidence.raw == b"\x03\x00fake-quote"


def test_gramine_provider_refuses_non_dcap_attestation(tmp_path):
    _gramine_tree(tmp_path, kind="none")

    with pytest.raises(AttestationError, match='remote_attestation = "dcap"'):
        GramineSgxProvider(root=tmp_path).get_evidence(REPORT_DATA)


def test_gramine_provider_outside_an_enclave_says_so(tmp_path):
    with pytest.raises(AttestationError, match="inside the TEE") as info:
        GramineSgxProvider(root=tmp_path).get_evidence(REPORT_DATA)

    assert info.value.code == "provider"


@pytest.mark.parametrize(("tee", "provider"), [("tdx", "tdx_guest"), ("sev-snp", "sev_guest")])
def test_tsm_provider_writes_inblob_and_reads_outblob(tmp_path, tee, provider):
    entry = _tsm_entry(tmp_path, "r1", provider)

    evidence = TsmProvider(tee, root=tmp_path, name="r1").get_evidence(REPORT_DATA)

    assert (entry / "inblob").read_bytes() == REPORT_DATA
    assert evidence.tee == tee
    assert evidence.raw == b"report-bytes"


def test_tsm_provider_rejects_the_wrong_guest_type(tmp_path):
    _tsm_entry(tmp_path, "r1", "sev_guest")

    with pytest.raises(AttestationError, match="not a tdx guest"):
        TsmProvider("tdx", root=tmp_path, name="r1").get_evidence(REPORT_DATA)


def test_tsm_provider_detects_a_concurrent_writer(tmp_path, monkeypatch):
    entry = _tsm_entry(tmp_path, "r1", "tdx_guest")
    original = Path.read_bytes

    def racing_read(self: Path) -> bytes:
        if self.name == "outblob":
            (entry / "generation").write_text("2\n")
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", racing_read)

    with pytest.raises(AttestationError, match="changed while it was read"):
        TsmProvider("tdx", root=tmp_path, name="r1").get_evidence(REPORT_DATA)


def test_providers_refuse_short_report_data(tmp_path):
    _gramine_tree(tmp_path)

    with pytest.raises(AttestationError, match="64 bytes"):
        GramineSgxProvider(root=tmp_path).get_evidence(b"short")


def test_sim_provider_evidence_verifies(tmp_path):
    key = SimQuotingKey.load_or_create(tmp_path)
    now = datetime(2026, 2, 1, tzinfo=UTC)
    provider = SimProvider(key, clock=lambda: now)
    policy = Policy(
        allowed_measurements={provider.measurement},
        allow_simulated=True,
        sim_quoting_keys={key.public_key_hex},
    )

    claims = verify(provider.get_evidence(REPORT_DATA), policy, now=now)

    assert claims.report_data == REPORT_DATA
    assert claims.simulated


@pytest.mark.parametrize(
    ("tee", "kind"),
    [
        ("sim", SimProvider),
        ("sgx", GramineSgxProvider),
        ("tdx", TsmProvider),
        ("sev-snp", TsmProvider),
    ],
)
def test_get_provider_factory(tmp_path, tee, kind):
    provider = get_provider(tee, data_dir=tmp_path, root=tmp_path)

    assert isinstance(provider, kind)
    assert provider.tee == tee


def test_get_provider_rejects_unknown_tee():
    with pytest.raises(AttestationError, match="unknown TEE type"):
        get_provider("tpm")


def test_gramine_manifest_is_valid_toml_and_lists_trusted_files():
    text = render_gramine_manifest(enclave_size="4G", max_threads=16)

    manifest = tomllib.loads(text)
    trusted = manifest["sgx"]["trusted_files"]
    package = Path(teeflow.__file__).resolve().parent
    assert manifest["sgx"]["remote_attestation"] == "dcap"
    assert manifest["sgx"]["enclave_size"] == "4G"
    assert manifest["sgx"]["max_threads"] == 16
    assert manifest["sgx"]["debug"] is False
    assert manifest["loader"]["argv"][1:5] == ["-m", "teeflow.executor", "--tee", "sgx"]
    assert f"file:{manifest['libos']['entrypoint']}" in trusted
    assert f"file:{package}/" in trusted
    numpy_dir = Path(__import__("numpy").__file__).resolve().parent
    assert any(
        numpy_dir.is_relative_to(entry[5:]) for entry in trusted if entry.startswith("file:/")
    )
