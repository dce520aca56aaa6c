"""Fake TEE hardware for tests: report layouts as the hardware writes them, signed by a TEST key.

Nothing here is reachable from production code. The "hardware root" is an Ed25519 key made by the
test; :class:`FakeHardwareVerifier` is injected where a real deployment verifies DCAP / SEV-SNP
evidence, and it marks every claim ``simulated`` so a policy accepts it only with
``allow_simulated`` (STYLE.md: simulation is a TEE type a policy must allow, not a bypass).

The device trees behave like the kernel's and Gramine's pseudo-files. They are FIFOs served by a
thread that plays the kernel:

- configfs-tsm (Documentation/ABI/testing/configfs-tsm): writing ``inblob`` increments
  ``generation``; reading ``outblob`` returns a report over the last inblob; ``generation``
  reads the current count; ``provider`` names the guest driver.
- Gramine ``/dev/attestation``: writing ``user_report_data`` then reading ``quote`` returns a quote
  over it; ``attestation_type`` reads ``dcap``; ``keys/_sgx_mrenclave`` is the 16-byte sealing
  key of this measurement on this (fake) CPU.
- ``/dev/sev-guest`` (:class:`FakeSevGuest`): ``SNP_GET_DERIVED_KEY`` reads the MSG_KEY_REQ at
  the request's address and writes MSG_KEY_RSP at the response's, as the kernel does.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import select
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

from teeflow.attestation import (
    SNP_GET_DERIVED_KEY,
    AttestationError,
    Claims,
    Evidence,
    TeeType,
    parse_key_request,
    read_report,
)
from teeflow.attestation._snp_report import parse_report as parse_snp_report
from teeflow.crypto import CryptoError, SigningKey, VerifyKey

FAKE_DOMAIN = "fake-tee-hardware"
_SNP_SIGNED_END = 0x2A0


@dataclass
class FakeHardware:
    """One fake CPU: its root key, the measurement of what it runs, debug and TCB level."""

    tee: str
    measurement: bytes
    root: SigningKey = field(default_factory=SigningKey.generate)
    debug: bool = False
    tcb_svn: int = 5

    def sealing_key(self, size: int = 32, fields: int = 0) -> bytes:
        """What the CPU's key derivation gives this measurement (EGETKEY for MRENCLAVE,
        MSG_KEY_REQ with ``fields``): a function of the chip's root and the measurement."""
        material = hashlib.sha256(
            self.root.verify_key.raw + self.measurement + fields.to_bytes(8, "little")
        )
        return material.digest()[:size]

    def report(self, report_data: bytes) -> bytes:
        """Evidence bytes in the hardware's own layout over ``report_data`` (64 bytes)."""
        if len(report_data) != 64:
            raise ValueError("report_data must be 64 bytes")
        if self.tee == "sev-snp":
            raw = bytearray(0x4A0)
            raw[0:4] = (2).to_bytes(4, "little")
            raw[0x34:0x38] = (1).to_bytes(4, "little")  # SIGNATURE_ALGO: ECDSA P-384
            policy = 0x30000 | ((1 << 19) if self.debug else 0)
            raw[0x08:0x10] = policy.to_bytes(8, "little")
            raw[0x50:0x90] = report_data
            raw[0x90:0xC0] = self.measurement[:48].ljust(48, b"\0")
            raw[0x180] = self.tcb_svn
            raw[0x2A0:0x2E0] = self.root.sign(FAKE_DOMAIN, bytes(raw[:_SNP_SIGNED_END]))
            return bytes(raw)
        header = bytearray(48)
        if self.tee == "sgx":
            header[0:2] = (3).to_bytes(2, "little")
            body = bytearray(384)
            body[0] = self.tcb_svn  # CPUSVN
            body[48] = 0x05 | (0x02 if self.debug else 0)  # ATTRIBUTES: INIT, MODE64, DEBUG
            body[64:96] = self.measurement[:32].ljust(32, b"\0")
            body[320:384] = report_data
        else:
            header[0:2] = (4).to_bytes(2, "little")
            header[4:8] = (0x81).to_bytes(4, "little")
            body = bytearray(584)
            body[0] = self.tcb_svn  # TEE_TCB_SVN
            body[120] = 0x01 if self.debug else 0  # TDATTRIBUTES.DEBUG
            body[136:184] = self.measurement[:48].ljust(48, b"\0")
            body[520:584] = report_data
        signed = bytes(header + body)
        signature = self.root.sign(FAKE_DOMAIN, signed)
        return signed + len(signature).to_bytes(4, "little") + signature

    @property
    def measurement_hex(self) -> str:
        size = 32 if self.tee == "sgx" else 48
        return self.measurement[:size].ljust(size, b"\0").hex()


class FakeHardwareVerifier:
    """Verifies :class:`FakeHardware` evidence against the pinned TEST root; claims are simulated.

    ``min_tcb_svn`` stands in for the TCB info collateral: below it the status is OutOfDate.
    """

    def __init__(self, root: VerifyKey, *, min_tcb_svn: int = 5) -> None:
        self.root = root
        self.min_tcb_svn = min_tcb_svn

    def __call__(self, evidence: Evidence, now: datetime) -> Claims:
        raw = evidence.raw
        if evidence.tee == "sev-snp":
            signed, signature, svn = raw[:_SNP_SIGNED_END], raw[0x2A0:0x2E0], raw[0x180]
        elif evidence.tee in ("sgx", "tdx"):
            size = 48 + (384 if evidence.tee == "sgx" else 584)
            signed, signature, svn = raw[:size], raw[size + 4 : size + 68], raw[48]
        else:
            raise AttestationError(f"the fake verifier does not take {evidence.tee} evidence")
        try:
            self.root.verify(FAKE_DOMAIN, signed, signature)
        except CryptoError as exc:
            raise AttestationError("fake hardware signature is invalid", code="signature") from exc
        fields = read_report(evidence)
        snp = parse_snp_report(raw) if evidence.tee == "sev-snp" else None
        return Claims(
            tee=evidence.tee,
            measurements=fields.measurements,
            report_data=fields.report_data,
            tcb_status="UpToDate" if svn >= self.min_tcb_svn else "OutOfDate",
            advisory_ids=(),
            debug=fields.debug,
            simulated=True,  # a test root, not a vendor's: only allow_simulated accepts it
            collateral_valid_from=now - timedelta(hours=1),
            collateral_valid_until=now + timedelta(hours=1),
            details={"verifier": "FAKE hardware root (tests only)"},
            guest_policy=snp.guest_policy if snp else {},
            reported_tcb=snp.tcb_levels if snp else {},
            vmpl=snp.vmpl if snp else None,
        )


class _Device(threading.Thread):
    """A fake kernel for one device directory: reads inputs, serves outputs on demand."""

    def __init__(
        self, directory: Path, hardware: FakeHardware, inputs: str, outputs: dict[str, str]
    ):
        super().__init__(daemon=True)
        self.directory = directory
        self.hardware = hardware
        self.inputs = inputs
        self.outputs = outputs  # file name -> "report" | "generation"
        self.generation = 0
        self.report_data = bytes(64)
        self.stop = threading.Event()
        directory.mkdir(parents=True, exist_ok=True)
        for name in (inputs, *outputs):
            os.mkfifo(directory / name)

    def run(self) -> None:
        # O_RDWR keeps the FIFO open without a writer, so a writer never blocks and no EOF.
        in_fd = os.open(self.directory / self.inputs, os.O_RDWR | os.O_NONBLOCK)
        self._pending = b""
        try:
            busy: set[str] = set()
            while not self.stop.is_set():
                select.select([in_fd], [], [], 0.002)
                if self._drain(in_fd):
                    busy.clear()
                for name in list(busy):
                    try:
                        os.close(os.open(self.directory / name, os.O_WRONLY | os.O_NONBLOCK))
                    except OSError:  # ENXIO: no reader any more
                        busy.discard(name)
                for name, kind in self.outputs.items():
                    with contextlib.suppress(OSError):
                        fd = os.open(self.directory / name, os.O_WRONLY | os.O_NONBLOCK)
                        if name in busy:
                            # Its last reader may still be open: serve each reader once.
                            os.close(fd)
                            continue
                        busy.clear()  # one client at a time: the previous reader is done
                        busy.add(name)
                        try:
                            # A reader is waiting: whatever it wrote before is in the pipe now.
                            self._drain(in_fd)
                            busy.add(name)
                            os.set_blocking(fd, True)
                            if kind == "report":
                                os.write(fd, self.hardware.report(self.report_data))
                            else:
                                os.write(fd, f"{self.generation}\n".encode())
                        finally:
                            os.close(fd)
        finally:
            os.close(in_fd)

    def _drain(self, in_fd: int) -> bool:
        """Take what was written to the input; True if a new report_data arrived."""
        with contextlib.suppress(BlockingIOError):
            self._pending += os.read(in_fd, 4096)
        fresh = False
        while len(self._pending) >= 64:
            self.report_data, self._pending = self._pending[:64], self._pending[64:]
            self.generation += 1
            fresh = True
        return fresh

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)


def fake_tsm(root: Path, hardware: FakeHardware, *, entry: str = "teeflow") -> _Device:
    """A running fake configfs-tsm report tree at ``root`` with one entry named ``entry``."""
    provider = {"tdx": "tdx_guest", "sev-snp": "sev_guest"}[hardware.tee]
    device = _Device(root / entry, hardware, "inblob", {"outblob": "report", "generation": "gen"})
    (root / entry / "provider").write_text(provider + "\n")
    device.start()
    return device


def fake_gramine(root: Path, hardware: FakeHardware) -> _Device:
    """A running fake Gramine /dev/attestation under ``root`` (``root/dev/attestation``)."""
    directory = root / "dev" / "attestation"
    device = _Device(directory, hardware, "user_report_data", {"quote": "report"})
    (directory / "attestation_type").write_text("dcap\n")
    (directory / "keys").mkdir()
    (directory / "keys" / "_sgx_mrenclave").write_bytes(hardware.sealing_key(16))
    device.start()
    return device


class DirectProvider:
    """An EvidenceProvider straight on :class:`FakeHardware` (no device tree), for unit tests."""

    def __init__(self, hardware: FakeHardware) -> None:
        self.hardware = hardware

    @property
    def tee(self) -> TeeType:
        return cast(TeeType, self.hardware.tee)

    def get_evidence(self, report_data: bytes) -> Evidence:
        return Evidence(self.tee, self.hardware.report(report_data))


class FakeSevGuest:
    """``/dev/sev-guest`` of a fake SEV-SNP guest: answers SNP_GET_DERIVED_KEY like the kernel
    and firmware (reads the request struct at its address, writes the response at its)."""

    def __init__(self, hardware: FakeHardware) -> None:
        self.hardware = hardware
        self.requests: list[tuple[int, int, int]] = []

    def ioctl(self, request: int, arg: bytearray) -> None:
        if request != SNP_GET_DERIVED_KEY:
            raise OSError(25, "inappropriate ioctl for device")
        _req, resp_addr, root, fields, vmpl, _svn = parse_key_request(bytes(arg))
        self.requests.append((root, fields, vmpl))
        response = bytearray(64)
        if root > 1 or vmpl > 3:
            response[0:4] = (0x16).to_bytes(4, "little")  # INVALID_PARAM
        else:
            response[0x20:0x40] = self.hardware.sealing_key(32, fields)
        ctypes.memmove(resp_addr, bytes(response), len(response))
