"""The executor host: untrusted glue between the control plane and the enclave runtime.

It pulls leased work over HTTP, feeds the enclave byte streams, heartbeats the lease and uploads
what the enclave sealed. It is outside the measurement on purpose: the enclave checks everything
it is handed, so a compromised host can delay work but not read data or forge results.
"""
