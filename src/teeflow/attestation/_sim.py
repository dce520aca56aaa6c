"""The ``sim`` TEE: a measured executor process and a local, simulated quoting key.

It gives no hardware protection. Its measurement and its signed claims are real, so every
protocol check downstream runs unchanged; a Policy accepts it only with
``allow_simulated`` and the quoting key pinned in ``sim_quoting_keys``.
"""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import REPORT_DATA_SIZE, Claims, Evidence, require_aware
from teeflow.attestation._policy import SIMULATED_TCB_STATUS
from teeflow.crypto import (
    CryptoError,
    SigningKey,
    VerifyKey,
    b64d,
    b64e,
    canonical_json,
    read_or_create_secret,
)

__all__ = [
    "ENCLAVE_DEPENDENCIES",
    "TRUSTED_PACKAGES",
    "SimQuotingKey",
    "sim_measurement",
    "sim_measurement_inputs",
    "verify_sim",
]

TRUSTED_PACKAGES = ("enclave", "functions", "crypto", "attestation")
ENCLAVE_DEPENDENCIES = (
    "cryptography", "blake3", "rfc8785", "numpy", "pandas", "paddlepaddle", "scikit-learn",
    "pyarrow", "pillow", "pydicom", "dcap-qvl", "lightgbm",
)  # fmt: skip
SIM_QUOTE_DOMAIN = "sim-quote"
_FORMAT = "teeflow-sim-quote/v1"
_KEY_FILE = "sim-quoting-key"
_DEFAULT_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def sim_measurement_inputs(package_dir: Path | None = None) -> dict[str, Any]:
    """What the sim measurement covers: trusted ``*.py`` files and dependency versions.

    ``package_dir`` is the ``teeflow`` package directory (default: the installed one).
    """
    base = (package_dir or _DEFAULT_PACKAGE_DIR).resolve()
    files = []
    for sub in TRUSTED_PACKAGES:
        for path in sorted((base / sub).rglob("*.py")):
            rel = path.relative_to(base).as_posix()
            files.append([rel, hashlib.sha256(path.read_bytes()).hexdigest()])
    deps = []
    for name in ENCLAVE_DEPENDENCIES:
        try:
            deps.append([name, metadata.version(name)])
        except metadata.PackageNotFoundError:
            deps.append([name, "not-installed"])
    return {"files": sorted(files), "dependencies": deps}


def sim_measurement(package_dir: Path | None = None) -> str:
    """Hex SHA-256 of the canonical JSON of :func:`sim_measurement_inputs`."""
    return hashlib.sha256(canonical_json(sim_measurement_inputs(package_dir))).hexdigest()


def _iso(moment: datetime) -> str:
    return require_aware(moment).isoformat()


class SimQuotingKey:
    """The local simulated quoting key; the only thing that signs sim evidence."""

    def __init__(self, key: SigningKey) -> None:
        self._key = key

    @classmethod
    def load_or_create(cls, data_dir: Path) -> SimQuotingKey:
        """Load ``data_dir/sim-quoting-key`` or create it with mode 0600."""
        path = Path(data_dir) / _KEY_FILE
        try:
            read_or_create_secret(path, lambda: SigningKey.generate().to_bytes())
        except OSError as exc:
            raise AttestationError(f"cannot create {path}: {exc.strerror}", code="config") from exc
        return cls._load(path)

    @classmethod
    def _load(cls, path: Path) -> SimQuotingKey:
        try:
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                raise AttestationError(
                    f"{path} is readable by other users; chmod 600 it", code="config"
                )
            return cls(SigningKey.from_bytes(path.read_bytes()))
        except (OSError, CryptoError) as exc:
            raise AttestationError(
                f"cannot load the sim quoting key {path}", code="config"
            ) from exc

    @property
    def public_key_hex(self) -> str:
        """Hex Ed25519 public key; pin it in ``Policy.sim_quoting_keys``."""
        return self._key.verify_key.raw.hex()

    def quote(
        self,
        report_data: bytes,
        *,
        measurement: str,
        now: datetime,
        validity: timedelta = timedelta(hours=1),
    ) -> Evidence:
        """Sign a sim claims document binding ``report_data`` to ``measurement`` at ``now``."""
        if len(report_data) != REPORT_DATA_SIZE:
            raise AttestationError(f"report_data must be {REPORT_DATA_SIZE} bytes", code="config")
        doc = {
            "format": _FORMAT,
            "tee": "sim",
            "measurement": measurement.lower(),
            "report_data": report_data.hex(),
            "issued_at": _iso(now),
            "expires_at": _iso(now + validity),
            "debug": False,
            "quoting_key": self.public_key_hex,
        }
        signature = self._key.sign(SIM_QUOTE_DOMAIN, canonical_json(doc))
        return Evidence(
            tee="sim", raw=canonical_json({"claims": doc, "signature": b64e(signature)})
        )

    def __repr__(self) -> str:
        return f"SimQuotingKey(public={self.public_key_hex})"


def _parse(raw: bytes) -> tuple[dict[str, Any], bytes]:
    try:
        outer = json.loads(raw)
        doc, signature = outer["claims"], b64d(outer["signature"])
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError("format")
        return doc, signature
    except (ValueError, TypeError, KeyError, RecursionError, CryptoError) as exc:
        # RecursionError: JSON nested deeper than the parser's recursion limit.
        raise AttestationError("sim evidence is malformed; request a new quote") from exc


def verify_sim(raw: bytes, *, now: datetime, pinned_keys: frozenset[str]) -> Claims:
    """Verify a sim quote signed by one of ``pinned_keys`` (hex) and valid at ``now``."""
    doc, signature = _parse(raw)
    key_hex = str(doc.get("quoting_key", "")).lower()
    if key_hex not in pinned_keys:
        raise AttestationError(
            "sim evidence is signed by a quoting key that the policy does not pin; add the "
            "executor's SimQuotingKey.public_key_hex to sim_quoting_keys",
            code="signature",
        )
    try:
        VerifyKey(bytes.fromhex(key_hex)).verify(SIM_QUOTE_DOMAIN, canonical_json(doc), signature)
        claims = Claims(
            tee="sim",
            measurements={"measurement": str(doc["measurement"])},
            report_data=bytes.fromhex(doc["report_data"]),
            tcb_status=SIMULATED_TCB_STATUS,
            advisory_ids=(),
            debug=doc["debug"] is not False,
            simulated=True,
            collateral_valid_from=require_aware(datetime.fromisoformat(doc["issued_at"])),
            collateral_valid_until=require_aware(datetime.fromisoformat(doc["expires_at"])),
            details={"quoting_key": key_hex},
        )
    except CryptoError as exc:
        raise AttestationError(
            "sim evidence signature is invalid: the claims were altered or signed by another key",
            code="signature",
        ) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise AttestationError("sim evidence claims are malformed") from exc
    if not claims.collateral_valid_from <= require_aware(now) <= claims.collateral_valid_until:
        raise AttestationError(
            f"sim evidence is not valid at {now.isoformat()} (issued "
            f"{doc['issued_at']}, expires {doc['expires_at']}); request a new quote",
            code="expired",
        )
    return claims
