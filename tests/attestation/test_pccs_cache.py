"""PCCS collateral cache: one file per (tee, FMSPC, CA), refetched when stale."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from teeflow.attestation import AttestationError, Evidence, PccsCache, verify_evidence

NOW = datetime(2025, 7, 1, tzinfo=UTC)
STALE = datetime(2025, 7, 20, tzinfo=UTC)  # past the collateral's nextUpdate


class CountingFetch:
    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    def __call__(self, raw_quote: bytes) -> str:
        self.calls += 1
        return self.text


@pytest.fixture
def quote(testdata: Path) -> bytes:
    return (testdata / "sgx" / "phala_sgx_quote_v3.bin").read_bytes()


@pytest.fixture
def fetch(testdata: Path) -> CountingFetch:
    return CountingFetch((testdata / "sgx" / "phala_sgx_quote_v3.collateral.json").read_text())


def test_miss_fetches_and_writes_one_file_per_fmspc(tmp_path, quote, fetch):
    cache = PccsCache(tmp_path, fetch=fetch)

    collateral = cache.get(quote, now=NOW)

    assert fetch.calls == 1
    assert [p.name for p in tmp_path.iterdir()] == ["sgx-00A067110000-processor.json"]
    assert verify_evidence(Evidence(tee="sgx", raw=quote), now=NOW, collateral=collateral)


def test_fresh_entry_is_served_from_disk(tmp_path, quote, fetch):
    cache = PccsCache(tmp_path, fetch=fetch)
    cache.get(quote, now=NOW)

    PccsCache(tmp_path, fetch=fetch).get(quote, now=NOW)

    assert fetch.calls == 1


def test_stale_entry_is_refetched(tmp_path, quote, fetch):
    cache = PccsCache(tmp_path, fetch=fetch)
    cache.get(quote, now=NOW)

    cache.get(quote, now=STALE)

    assert fetch.calls == 2


def test_corrupt_entry_is_refetched(tmp_path, quote, fetch):
    cache = PccsCache(tmp_path, fetch=fetch)
    cache.path_for(quote).write_text("{not json")

    cache.get(quote, now=NOW)

    assert fetch.calls == 1
    assert cache.path_for(quote).read_text() == fetch.text


def test_unparseable_fetch_result_is_not_cached(tmp_path, quote):
    cache = PccsCache(tmp_path, fetch=CountingFetch("garbage"))

    with pytest.raises(AttestationError, match="cannot load DCAP collateral"):
        cache.get(quote, now=NOW)

    assert not cache.path_for(quote).exists()
