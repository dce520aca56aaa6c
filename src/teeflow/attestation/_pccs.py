"""Fetching DCAP collateral from a PCCS/PCS, cached on disk per TEE, FMSPC and PCK CA.

The cache needs no integrity protection: collateral is signed by Intel and every field is
checked again by the verifier. It only avoids a network round trip per quote. Entries are
refetched once the TCB info or QE identity reaches its ``nextUpdate``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dcap_qvl

from teeflow.attestation._dcap import load_dcap_collateral
from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import require_aware
from teeflow.attestation._pcs_client import TlsVerify, fetch_dcap_collateral

__all__ = ["CollateralFetch", "PccsCache", "collateral_file_name", "pccs_fetch"]

CollateralFetch = Callable[[bytes], str]
"""Fetch collateral for a raw quote; returns dcap-qvl QuoteCollateralV3 JSON."""


def pccs_fetch(pccs_url: str, *, verify: TlsVerify) -> CollateralFetch:
    """A fetch function that asks ``pccs_url`` (a PCCS) with httpx under ``verify`` (what
    ``teeflow.tls.client_verify`` gives for the URL: https against the configured CA, plain
    http only to loopback or with the insecure opt-in); see _pcs_client.py."""

    def fetch(raw_quote: bytes) -> str:
        return fetch_dcap_collateral(pccs_url, raw_quote, verify=verify)

    return fetch


def _next_update(collateral_json: str) -> datetime:
    try:
        outer = json.loads(collateral_json)
        dates = [
            datetime.fromisoformat(json.loads(outer[part])["nextUpdate"])
            for part in ("tcb_info", "qe_identity")
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise AttestationError(
            "cached DCAP collateral lacks nextUpdate", code="collateral"
        ) from exc
    return min(dates)


def collateral_file_name(raw_quote: bytes) -> str:
    """``<tee>-<FMSPC>-<ca>.json``: the file holding collateral for this quote's platform."""
    try:
        quote = dcap_qvl.parse_quote(raw_quote)
        name = f"{'tdx' if quote.is_tdx() else 'sgx'}-{quote.fmspc()}-{quote.ca()}"
    except ValueError as exc:
        raise AttestationError("cannot parse the DCAP quote to find its FMSPC") from exc
    if not name.replace("-", "").isalnum():
        raise AttestationError("quote has an unexpected FMSPC or CA name")
    return f"{name}.json"


class PccsCache:
    """Collateral per (tee, FMSPC, PCK CA), fetched on a miss or when stale at ``now``."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        fetch: CollateralFetch,
        refresh_margin: timedelta = timedelta(hours=1),
    ) -> None:
        self._dir = Path(cache_dir)
        self._fetch = fetch
        self._margin = refresh_margin

    def path_for(self, raw_quote: bytes) -> Path:
        """The cache file for this quote's platform (:func:`collateral_file_name`)."""
        return self._dir / collateral_file_name(raw_quote)

    def get(self, raw_quote: bytes, *, now: datetime) -> Any:
        """Collateral for ``raw_quote`` that stays fresh past ``now`` (+ refresh margin)."""
        path = self.path_for(raw_quote)
        deadline = require_aware(now) + self._margin
        try:
            text = path.read_text(encoding="utf-8")
            if _next_update(text) > deadline:
                return load_dcap_collateral(text)
        except (OSError, AttestationError):
            pass  # a miss, or an unreadable/stale entry: fetch a new one below
        text = self._fetch(raw_quote)
        collateral = load_dcap_collateral(text)  # refuse to cache what does not parse
        self._store(path, text)
        return collateral

    def _store(self, path: Path, text: str) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            Path(tmp).replace(path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
