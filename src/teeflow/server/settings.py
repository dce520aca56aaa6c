"""Control-plane settings: one data directory by default; PostgreSQL and limits by settings.

Nothing here is a security switch for the enclave: the control plane is untrusted, and what it is
configured to do cannot make the enclave run an unapproved task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TEEFLOW_", extra="ignore")

    data_dir: Path = Path("teeflow-data")
    database_url: str | None = None
    """SQLAlchemy URL; default: SQLite in the data directory."""
    token_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    max_upload_bytes: int = Field(default=8 << 30, gt=0)
    max_json_bytes: int = Field(default=32 << 20, gt=0)
    """Largest body of a request that is not a streamed upload (JSON read whole into memory)."""
    row_output_bytes: int = Field(default=64 << 10, ge=0)
    """Outputs sent inline with a finish, of at most this much ciphertext, are stored in the
    database with the finish (one commit) instead of as a blob file (server/row_blobs.py); 0
    keeps every output in the blob store. Inline outputs are at most 64 KiB either way."""
    lease_seconds: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=5, gt=0)
    """Leases of one task before it is failed (each expired lease means an executor died)."""
    login_failures_allowed: int = Field(default=5, gt=0)
    """Failed sign-ins for one account from one source before that pair backs off
    (server/throttle.py)."""
    login_source_failures_allowed: int = Field(default=20, gt=0)
    """Failed sign-ins from one source, any accounts, before that source backs off."""
    login_account_failures_allowed: int = Field(default=50, gt=0)
    """Failed sign-ins for one account, any sources, before it is delayed (never locked)."""
    login_window_seconds: int = Field(default=300, gt=0)
    """Failures older than this are forgotten."""
    login_backoff_seconds: float = Field(default=30.0, gt=0)
    """First backoff of a source (or account and source) over its threshold; doubles after
    each further failure."""
    login_backoff_max_seconds: float = Field(default=300.0, gt=0)
    login_account_backoff_max_seconds: float = Field(default=30.0, gt=0)
    """Longest delay an account's failures from all sources together impose: a modest delay,
    never a lockout; a sign-in signed with the account's key skips it."""
    trusted_proxies: list[str] = Field(default_factory=list)
    """Addresses of reverse proxies in front of the control plane (``TEEFLOW_TRUSTED_PROXIES``,
    a JSON list): only from them is ``X-Forwarded-For`` believed, for the sign-in throttle."""
    max_storage_bytes: int = Field(default=50 << 30, gt=0)
    """Ciphertext a member may store (datasets and uploaded functions together)."""
    max_open_tasks: int = Field(default=100, gt=0)
    """Tasks a member may have proposed, approved, queued or running at once."""
    max_open_proposals_per_member: int = Field(default=10, gt=0)
    """Open tasks one member may propose that name another given member as a participant."""
    max_wait_seconds: float = Field(default=30.0, ge=0)
    """Longest a long-poll (task wait, lease, inference answer) is held; keep it under the idle
    timeout of any proxy in front of the control plane."""
    stale_upload_seconds: float = Field(default=3600.0, ge=0)
    """At start, temporary files of uploads untouched this long are deleted (a crash left them).
    0 suits one control plane alone; several sharing a blob directory need the margin."""
    operator_page: bool = False
    """Serve the read-only ``/operator`` status page (no secrets; no operator accounts exist,
    so turn it on only where the operator alone reaches the port or a proxy authenticates)."""
    blob_store: Literal["local", "s3"] = "local"
    """Where ciphertext blobs live: ``DATA_DIR/blobs`` or an S3-compatible bucket."""
    s3_endpoint_url: str | None = None
    """For a store other than AWS (MinIO, Ceph ...); default: AWS's endpoint for the region."""
    s3_bucket: str | None = None
    s3_prefix: str = ""
    """Object keys are ``PREFIX/KEY``, so several deployments can share a bucket."""
    s3_region: str | None = None
    key_service_url: str | None = None
    """The key service executors get the enclave key from (relayed at ``/kbs/v0``); without
    one, sim executors share it by the sealing secret in ``platform_dir`` (decision 0015)."""
    ca_cert: Path | None = None
    """``TEEFLOW_CA_CERT``: the CA the key service's https certificate must chain to (default:
    the system's roots)."""
    insecure_http: bool = False
    """``TEEFLOW_INSECURE_HTTP``: allow a plain-http key service URL on another host."""
    # S3 credentials are deliberately not settings: boto3's standard chain (AWS_ACCESS_KEY_ID ...,
    # a profile or an instance role) provides them, so they never sit in teeflow's configuration.

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> Self:
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError("TEEFLOW_BLOB_STORE=s3 needs a bucket: set TEEFLOW_S3_BUCKET")
        return self

    def long_poll_seconds(self, wait: float, *, executor: bool = False) -> float:
        """How long a long-poll asking for ``wait`` seconds is held: at most
        ``max_wait_seconds``, and for an executor at most half a lease, so that leases which
        expire while every executor waits are found and re-queued promptly."""
        held = min(wait, self.max_wait_seconds)
        return min(held, self.lease_seconds / 2) if executor else held

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'teeflow.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def executor_secret_path(self) -> Path:
        return self.data_dir / "executor-secret"

    @property
    def platform_dir(self) -> Path:
        """Where the (simulated) platform keeps its quoting key and sealed enclave identities."""
        return self.data_dir / "platform"
