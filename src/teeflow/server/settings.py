"""Control-plane settings: one data directory by default; PostgreSQL and limits by settings.

Nothing here is a security switch for the enclave: the control plane is untrusted, and what it is
configured to do cannot make the enclave run an unapproved task.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TEEFLOW_", extra="ignore")

    data_dir: Path = Path("teeflow-data")
    database_url: str | None = None
    """SQLAlchemy URL; default: SQLite in the data directory."""
    token_ttl_seconds: int = Field(default=12 * 3600, gt=0)
    max_upload_bytes: int = Field(default=8 << 30, gt=0)
    lease_seconds: float = Field(default=15.0, gt=0)
    max_attempts: int = Field(default=5, gt=0)
    """Leases of one task before it is failed (each expired lease means an executor died)."""
    login_failures_allowed: int = Field(default=5, gt=0)
    login_window_seconds: int = Field(default=300, gt=0)

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
