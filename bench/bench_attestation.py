"""Median verification time per quote (SGX, TDX, SEV-SNP, sim), collateral already loaded.

Run: .venv/bin/python bench/bench_attestation.py [--rounds N]
Needs the vectors in ../shared/testdata/attestation.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from _report import TARGETS, Figure, write_json
from teeflow.attestation import (
    Evidence,
    SimQuotingKey,
    SnpCollateral,
    load_dcap_collateral,
    report_data_for,
    sim_measurement,
    strip_quote_padding,
    verify_evidence,
)

TESTDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "testdata" / "attestation"
DCAP_NOW = datetime(2025, 7, 1, tzinfo=UTC)
SNP_NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _median_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    rounds = args.rounds
    sgx = Evidence(tee="sgx", raw=(TESTDATA / "sgx/phala_sgx_quote_v3.bin").read_bytes())
    sgx_coll = load_dcap_collateral(TESTDATA / "sgx/phala_sgx_quote_v3.collateral.json")
    # The sample is zero-padded after the quote; evidence must be exactly one quote.
    tdx_raw = strip_quote_padding((TESTDATA / "tdx/phala_tdx_quote_v4.bin").read_bytes())
    tdx = Evidence(tee="tdx", raw=tdx_raw)
    tdx_coll = load_dcap_collateral(TESTDATA / "tdx/phala_tdx_quote_v4.collateral.json")
    snp = Evidence(
        tee="sev-snp", raw=(TESTDATA / "sev-snp/gosev_milan_attestation_report.bin").read_bytes()
    )
    snp_coll = SnpCollateral.from_files(
        vcek=TESTDATA / "sev-snp/gosev_milan_vcek.der",
        chain=TESTDATA / "sev-snp/amd_ask_ark_milan.pem",
    )
    with tempfile.TemporaryDirectory() as tmp:
        key = SimQuotingKey.load_or_create(Path(tmp))
    sim = key.quote(report_data_for(b"bench"), measurement=sim_measurement(), now=DCAP_NOW)
    pins = frozenset({key.public_key_hex})

    cases: dict[str, Callable[[], object]] = {
        "sgx (DCAP quote v3)": lambda: verify_evidence(sgx, now=DCAP_NOW, collateral=sgx_coll),
        "tdx (DCAP quote v4)": lambda: verify_evidence(tdx, now=DCAP_NOW, collateral=tdx_coll),
        "sev-snp (Milan)": lambda: verify_evidence(snp, now=SNP_NOW, collateral=snp_coll),
        "sim": lambda: verify_evidence(sim, now=DCAP_NOW, sim_quoting_keys=pins),
    }
    print(f"median verification time over {rounds} rounds (collateral preloaded)")
    figures = []
    for name, fn in cases.items():
        median = _median_ms(fn, rounds)
        print(f"  {name:<22} {median:8.3f} ms")
        figures.append(
            Figure(
                f"P8-{name.split()[0]}",
                f"attestation verification, {name}",
                None,
                median,
                "ms",
                target_on="teeflow",
                target=TARGETS["P8"],
                note=f"median of {rounds}, collateral loaded; real evidence from ../shared",
            )
        )
    write_json(figures, args.json)


if __name__ == "__main__":
    main()
