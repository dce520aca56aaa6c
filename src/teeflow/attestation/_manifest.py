"""Render the Gramine manifest that runs the teeflow executor inside an SGX enclave.

The output is a Gramine manifest template (valid TOML): feed it to ``gramine-manifest``
(which fills in ``{{ gramine.libos }}`` and ``{{ gramine.runtimedir() }}``), then
``gramine-sgx-sign``. Everything the enclave loads is a trusted file, so the measured
MRENCLAVE covers the interpreter, its standard library, teeflow and its dependencies.
"""

from __future__ import annotations

import sys
import sysconfig
from importlib import util
from pathlib import Path
from typing import Any

import tomli_w

from teeflow.attestation._libos import MEASURED

__all__ = ["DATA_DIR", "ENCLAVE_MODULES", "render_gramine_manifest"]

DATA_DIR = "/teeflow-data"

# Top-level modules the executor imports (distribution names differ for some of them).
ENCLAVE_MODULES = (
    "cryptography", "blake3", "rfc8785", "numpy", "pandas", "paddle", "sklearn",
    "pyarrow", "PIL", "pydicom", "dcap_qvl",
)  # fmt: skip
_TEEFLOW_DIR = Path(__file__).resolve().parents[1]


def _site_dirs(modules: tuple[str, ...]) -> list[str]:
    """The site-packages directories that hold ``modules`` (found without importing them)."""
    dirs: set[str] = set()
    for name in modules:
        spec = util.find_spec(name)
        if spec is None or spec.origin is None:
            continue  # not installed here; the manifest lists what this host would run
        origin = Path(spec.origin).resolve()
        # A package lives in <site>/<name>/__init__.py, a plain module in <site>/<name>.py.
        dirs.add(str(origin.parent.parent if spec.submodule_search_locations else origin.parent))
    return sorted(dirs)


def _outermost(paths: set[str]) -> list[str]:
    """Drop paths that lie inside another listed path (one mount/trusted entry covers them)."""
    return sorted(p for p in paths if not any(p != q and Path(p).is_relative_to(q) for q in paths))


def render_gramine_manifest(
    *,
    python: str | None = None,
    entrypoint_module: str = "teeflow.executor",
    enclave_size: str | None = None,
    max_threads: int | None = None,
    edmm: bool = False,
    server_url: str = "https://control-plane.example:8000",
    key_service_policy: str = "/teeflow/kbs-policy.json",
    ca_cert: str | None = "/teeflow/ca.pem",
    teeflow_dir: Path | None = None,
    modules: tuple[str, ...] = ENCLAVE_MODULES,
) -> str:
    """A Gramine SGX manifest for ``python -m <entrypoint_module> --tee sgx ...`` with DCAP
    attestation. ``enclave_size`` / ``max_threads`` default to the measured footprint
    (:data:`MEASURED`); ``edmm`` turns on SGX2 dynamic memory (``sgx.edmm_enable``). The
    executor's arguments are baked into ``loader.argv`` (measured), its data directory is an
    encrypted mount keyed to MRENCLAVE (``_sgx_mrenclave``), and the key-service policy and
    ``ca_cert`` (the CA the control plane's HTTPS certificate chains to; None: the system's
    roots, which the manifest then does not list) are trusted files. No ``insecure__`` option
    is set."""
    enclave_size = enclave_size or MEASURED.enclave_size
    max_threads = max_threads or MEASURED.max_threads
    interpreter = str(Path(python or sys.executable).resolve())
    package = str((teeflow_dir or _TEEFLOW_DIR).resolve())
    package_root = str(Path(package).parent)
    stdlib = _outermost({sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")})
    site = [d for d in _site_dirs(modules) if d not in stdlib]
    python_dirs = _outermost({*stdlib, *site, package_root})
    config_dirs = {str(Path(key_service_policy).parent)}
    if ca_cert:
        config_dirs.add(str(Path(ca_cert).parent))
    trusted = [
        "file:{{ gramine.libos }}",
        "file:{{ gramine.runtimedir() }}/",
        "file:/lib/x86_64-linux-gnu/",
        "file:/usr/lib/x86_64-linux-gnu/",
        f"file:{interpreter}",
        f"file:{key_service_policy}",
        *([f"file:{ca_cert}"] if ca_cert else []),
        *(f"file:{d}/" for d in stdlib),
        f"file:{package}/",
        *(f"file:{d}/" for d in site if d != package_root),
    ]
    mounts = [
        {"path": "/lib", "uri": "file:{{ gramine.runtimedir() }}"},
        {"path": "/lib/x86_64-linux-gnu", "uri": "file:/lib/x86_64-linux-gnu"},
        {"path": "/usr/lib/x86_64-linux-gnu", "uri": "file:/usr/lib/x86_64-linux-gnu"},
        *({"path": d, "uri": f"file:{d}"} for d in python_dirs),
        {"path": str(Path(interpreter).parent), "uri": f"file:{Path(interpreter).parent}"},
        {"type": "tmpfs", "path": "/tmp"},  # noqa: S108 - enclave-private tmpfs
        # The executor's data directory: sealed to this enclave's MRENCLAVE by Gramine.
        {"type": "encrypted", "path": DATA_DIR, "uri": "file:teeflow-data",
         "key_name": "_sgx_mrenclave"},
        *({"path": d, "uri": f"file:{d}"} for d in _outermost(config_dirs)),
    ]  # fmt: skip
    manifest: dict[str, Any] = {
        "libos": {"entrypoint": interpreter},
        "loader": {
            "entrypoint": {"uri": "file:{{ gramine.libos }}"},
            "log_level": "error",
            "argv": [
                interpreter,
                "-m",
                entrypoint_module,
                "--tee",
                "sgx",
                "--server",
                server_url,
                "--data-dir",
                DATA_DIR,
                "--key-service-policy",
                key_service_policy,
                "--memory-limit",
                enclave_size,
                *(["--ca-cert", ca_cert] if ca_cert else []),
            ],
            "env": {
                "LD_LIBRARY_PATH": "/lib:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu",
                "PYTHONPATH": ":".join([package_root, *site]),
                "PYTHONDONTWRITEBYTECODE": "1",
                "TEEFLOW_TEE": "sgx",
                # The registration secret only lets an executor register (docs/tee-hosts.md).
                "TEEFLOW_EXECUTOR_SECRET": {"passthrough": True},
            },
        },
        "fs": {"mounts": mounts},
        "sys": {"enable_extra_runtime_domain_names_conf": True},
        "sgx": {
            "debug": False,
            "edmm_enable": edmm,
            "enclave_size": enclave_size,
            "max_threads": max_threads,  # named sgx.thread_num before Gramine 1.5
            "remote_attestation": "dcap",
            "trusted_files": trusted,
        },
    }
    header = (
        "# Gramine manifest template for the teeflow executor (generated by "
        "`teeflow enclave manifest`).\n# Render with gramine-manifest, then sign with "
        "gramine-sgx-sign; its MRENCLAVE is the measurement to allow-list.\n"
    )
    return header + tomli_w.dumps(manifest)
