"""Transport security between hosts: TLS for the control plane and the key service.

teeflow's confidentiality does not rest on TLS: data keys, keyrings and outputs are HPKE-sealed
end to end, and members and executors attest the enclave and the key service themselves. What
TLS protects is what would otherwise cross the network in clear: members' passwords and bearer
tokens, the executor registration secret and executors' tokens, and metadata (who runs which
task, sizes, states). So a URL that is plain ``http`` to another host is refused unless the
caller says ``insecure_http`` (docs/tee-hosts.md, "HTTPS between hosts").

- :func:`client_verify`: what a client (member, executor, key-release transport, the control
  plane's relay) passes to httpx as ``verify=`` for a URL, after checking its scheme and host.
- :func:`control_plane_http`: the members' and executors' httpx client for the control plane
  (bearer tokens, no cookie jar).
- :func:`serve_tls_options`: uvicorn's TLS settings for a server; no plain http off loopback.
- :func:`make_private_ca`: a self-signed CA and a server certificate for a private deployment.
"""

from teeflow.tls._certs import TlsFiles, make_private_ca
from teeflow.tls._client import (
    CA_CERT_ENV,
    INSECURE_HTTP_ENV,
    InsecureTransportError,
    client_verify,
    env_ca_cert,
    env_insecure_http,
    is_loopback,
)
from teeflow.tls._http import control_plane_http
from teeflow.tls._serve import add_serve_arguments, serve_tls_options
from teeflow.tls._websocket import ClientConnection, connect_websocket

__all__ = [
    "CA_CERT_ENV",
    "INSECURE_HTTP_ENV",
    "ClientConnection",
    "InsecureTransportError",
    "TlsFiles",
    "add_serve_arguments",
    "client_verify",
    "connect_websocket",
    "control_plane_http",
    "env_ca_cert",
    "env_insecure_http",
    "is_loopback",
    "make_private_ca",
    "serve_tls_options",
]
