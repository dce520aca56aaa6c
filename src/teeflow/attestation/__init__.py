"""Remote attestation: evidence from a TEE, verified into Claims, accepted by a Policy.

The same Claims -> Policy path runs for every TEE (``sim``, ``sgx``, ``tdx``, ``sev-snp``).
Verification never reads the wall clock: the caller passes ``now``. Every failure raises
:class:`AttestationError`.

Typical use::

    claims = verify(evidence, policy, now=datetime.now(UTC), collateral=collateral)
    check_binding(claims, enclave_public_key_bundle, nonce)
"""

from teeflow.attestation._binding import check_binding, report_data_for
from teeflow.attestation._collateral import (
    AMD_KDS_URL,
    CollateralSource,
    DirectoryCollateral,
    FetchingCollateral,
    hardware_verifier,
    kds_fetch,
    snp_vcek_name,
)
from teeflow.attestation._dcap import dcap_tee_of, load_dcap_collateral, verify_dcap
from teeflow.attestation._errors import AttestationError
from teeflow.attestation._layout import ReportFields, read_report
from teeflow.attestation._libos import (
    MEASURED,
    EnclaveFootprint,
    render_occlum_config,
    render_scone_config,
)
from teeflow.attestation._manifest import render_gramine_manifest
from teeflow.attestation._model import REPORT_DATA_SIZE, TEE_TYPES, Claims, Evidence, TeeType
from teeflow.attestation._pccs import CollateralFetch, PccsCache, pccs_fetch
from teeflow.attestation._policy import SIMULATED_TCB_STATUS, Policy
from teeflow.attestation._providers import (
    TSM_ROOT,
    EvidenceProvider,
    GramineSgxProvider,
    SimProvider,
    TsmProvider,
    get_provider,
)
from teeflow.attestation._quote_layout import strip_quote_padding
from teeflow.attestation._roots import INTEL_SGX_ROOT_CA_SHA256
from teeflow.attestation._sev_guest import (
    FIELD_GUEST_POLICY,
    FIELD_MEASUREMENT,
    SNP_GET_DERIVED_KEY,
    SevGuestDevice,
    SevGuestFile,
    parse_key_request,
    snp_derived_key,
)
from teeflow.attestation._sim import (
    SimQuotingKey,
    sim_measurement,
    sim_measurement_inputs,
    verify_sim,
)
from teeflow.attestation._snp import SNP_TCB_STATUS, SnpCollateral, verify_snp
from teeflow.attestation._verify import verify, verify_evidence

__all__ = [
    "AMD_KDS_URL",
    "FIELD_GUEST_POLICY",
    "FIELD_MEASUREMENT",
    "INTEL_SGX_ROOT_CA_SHA256",
    "MEASURED",
    "REPORT_DATA_SIZE",
    "SIMULATED_TCB_STATUS",
    "SNP_GET_DERIVED_KEY",
    "SNP_TCB_STATUS",
    "TEE_TYPES",
    "TSM_ROOT",
    "AttestationError",
    "Claims",
    "CollateralFetch",
    "CollateralSource",
    "DirectoryCollateral",
    "EnclaveFootprint",
    "Evidence",
    "EvidenceProvider",
    "FetchingCollateral",
    "GramineSgxProvider",
    "PccsCache",
    "Policy",
    "ReportFields",
    "SevGuestDevice",
    "SevGuestFile",
    "SimProvider",
    "SimQuotingKey",
    "SnpCollateral",
    "TeeType",
    "TsmProvider",
    "check_binding",
    "dcap_tee_of",
    "get_provider",
    "hardware_verifier",
    "kds_fetch",
    "load_dcap_collateral",
    "parse_key_request",
    "pccs_fetch",
    "read_report",
    "render_gramine_manifest",
    "render_occlum_config",
    "render_scone_config",
    "report_data_for",
    "sim_measurement",
    "sim_measurement_inputs",
    "snp_derived_key",
    "snp_vcek_name",
    "strip_quote_padding",
    "verify",
    "verify_dcap",
    "verify_evidence",
    "verify_sim",
    "verify_snp",
]
