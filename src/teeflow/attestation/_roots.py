"""Pinned hardware roots of trust: the Intel SGX Root CA and AMD's ARK keys.

These are measured, build-time trust anchors. Changing them changes what every verifier
in the enclave trusts, so they live in code, not in configuration.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["AMD_ARK_SPKI_SHA256", "INTEL_SGX_ROOT_CA_DER", "INTEL_SGX_ROOT_CA_SHA256"]

# Intel SGX Root CA (2018-05-21..2049-12-31), the root of every DCAP PCK, TCB-info and
# QE-identity chain. https://certificates.trustedservices.intel.com/IntelSGXRootCA.der
INTEL_SGX_ROOT_CA_SHA256 = "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
INTEL_SGX_ROOT_CA_DER = base64.b64decode(
    "MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIwaDEaMBgGA1UEAwwR"
    "SW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50"
    "YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIz"
    "NTk1OVowaDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0"
    "aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYTAlVTMFkwEwYHKoZI"
    "zj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi71OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL"
    "0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOBuzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScG"
    "rDBSBgNVHR8ESzBJMEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50"
    "ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SVUr9QGzknBqwwDgYD"
    "VR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYIKoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9C"
    "iSDcNoowLuPRLsWGf/Yi7GSX94BgwTwgAiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI="
)
if (
    hashlib.sha256(INTEL_SGX_ROOT_CA_DER).hexdigest() != INTEL_SGX_ROOT_CA_SHA256
):  # pragma: no cover
    raise RuntimeError("embedded Intel SGX Root CA does not match its pinned SHA-256")

# SHA-256 of the SubjectPublicKeyInfo DER of each AMD Root Key (ARK), per product line.
# Source: AMD KDS https://kdsintf.amd.com/vcek/v1/Milan/cert_chain. Add Genoa/Turin here
# (from KDS, checked out of band) before accepting reports from those processors.
AMD_ARK_SPKI_SHA256: Mapping[str, str] = MappingProxyType(
    {"Milan": "9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9"}
)
