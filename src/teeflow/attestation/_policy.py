"""Policy: which verified Claims a party accepts.

A policy is data (a JSON or TOML file a member holds), never a runtime switch. Defaults fail
closed: only ``UpToDate`` TCBs, no debug enclaves, no simulated evidence, no risky platform
flags, and an empty measurement allow-list that accepts nothing.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import TEE_TYPES, Claims, TeeType, check_tee
from teeflow.attestation._snp_report import TCB_FIELDS

__all__ = ["SIMULATED_TCB_STATUS", "Policy"]

# The sim TEE has no TCB; its claims carry this status, which allow_simulated accepts.
SIMULATED_TCB_STATUS = "Simulated"
_PLATFORM_FLAGS = {
    "dynamic_platform": "allow_dynamic_platform",
    "cached_keys": "allow_cached_keys",
    "smt_enabled": "allow_smt",
}
_SET_FIELDS = frozenset(
    {
        "allowed_tees",
        "allowed_measurements",
        "accepted_tcb_statuses",
        "denied_advisories",
        "sim_quoting_keys",
    }
)
_BOOL_FIELDS = (
    "allow_debug", "allow_simulated", *_PLATFORM_FLAGS.values(), "allow_migration_agent",
    "require_single_socket",
)  # fmt: skip
_MAX_VMPL = 3


def _tcb_minimum(value: object) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise AttestationError(
            "policy field min_snp_tcb must be a table such as {snp = 8, microcode = 115}",
            code="config",
        )
    for name, level in value.items():
        if name not in TCB_FIELDS:
            raise AttestationError(
                f"min_snp_tcb has unknown component {name!r}; use {', '.join(TCB_FIELDS)}",
                code="config",
            )
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 255:
            raise AttestationError(
                f"min_snp_tcb.{name} must be an integer 0..255, got {level!r}", code="config"
            )
    return MappingProxyType(dict(sorted(value.items())))


def _hex_set(values: Iterable[str], what: str) -> frozenset[str]:
    out = set()
    for value in values:
        text = value.strip().lower().removeprefix("0x")
        try:
            bytes.fromhex(text)
        except ValueError as exc:
            raise AttestationError(f"{what} entry {value!r} is not hex", code="config") from exc
        out.add(text)
    return frozenset(out)


@dataclass(frozen=True)
class Policy:
    """What a relying party accepts. Construct directly or with :meth:`from_file`.

    ``allowed_measurements`` are matched against ``Claims.measurement`` (the primary one).
    ``sim_quoting_keys`` pins the hex Ed25519 public keys whose sim quotes are trusted.
    SEV-SNP only: ``min_snp_tcb`` sets a minimum REPORTED_TCB security patch level per
    component (``bootloader``, ``tee``, ``snp``, ``microcode``); ``allow_migration_agent``
    accepts a guest policy with MIGRATE_MA; ``require_single_socket`` demands
    SINGLE_SOCKET; ``max_vmpl`` (0..3) is the least privileged VMPL accepted.
    ``allow_smt`` covers both the PCK flag (DCAP) and PLATFORM_INFO.SMT_EN (SEV-SNP).
    """

    allowed_tees: frozenset[TeeType] = frozenset(TEE_TYPES)
    allowed_measurements: frozenset[str] = frozenset()
    accepted_tcb_statuses: frozenset[str] = frozenset({"UpToDate"})
    denied_advisories: frozenset[str] = frozenset()
    allow_debug: bool = False
    allow_simulated: bool = False
    allow_dynamic_platform: bool = False
    allow_cached_keys: bool = False
    allow_smt: bool = False
    sim_quoting_keys: frozenset[str] = frozenset()
    allow_migration_agent: bool = False
    require_single_socket: bool = False
    max_vmpl: int = 0
    min_snp_tcb: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Normalise whatever iterables the caller passed into frozensets of canonical values.
        set_ = object.__setattr__
        set_(self, "allowed_tees", frozenset(check_tee(t) for t in self.allowed_tees))
        set_(self, "allowed_measurements", _hex_set(self.allowed_measurements, "measurement"))
        set_(self, "accepted_tcb_statuses", frozenset(self.accepted_tcb_statuses))
        set_(self, "denied_advisories", frozenset(a.upper() for a in self.denied_advisories))
        set_(self, "sim_quoting_keys", _hex_set(self.sim_quoting_keys, "sim_quoting_keys"))
        set_(self, "min_snp_tcb", _tcb_minimum(self.min_snp_tcb))
        for name in _BOOL_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise AttestationError(f"policy field {name} must be true or false", code="config")
        vmpl = self.max_vmpl
        if isinstance(vmpl, bool) or not isinstance(vmpl, int) or not 0 <= vmpl <= _MAX_VMPL:
            raise AttestationError(
                f"policy field max_vmpl must be an integer 0..{_MAX_VMPL}", code="config"
            )

    def __hash__(self) -> int:
        # A value object like before min_snp_tcb: hash the mapping by its items.
        return hash(
            tuple(
                tuple(sorted(v.items())) if isinstance(v, Mapping) else v
                for v in (getattr(self, f.name) for f in fields(self))
            )
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """Build from a dict; unknown keys are an error (a typo must not loosen a policy)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise AttestationError(
                f"unknown policy field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                code="config",
            )
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in _SET_FIELDS:
                kwargs[key] = value  # checked by __post_init__
            elif isinstance(value, list | tuple | set | frozenset):
                kwargs[key] = frozenset(str(v) for v in value)
            else:
                raise AttestationError(f"policy field {key} must be a list", code="config")
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: Path | str) -> Policy:
        """Load a policy from ``*.toml`` or JSON (any other suffix)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as exc:
            raise AttestationError(
                f"cannot read policy {path}: {exc}; fix the file and retry", code="config"
            ) from exc
        if not isinstance(data, dict):
            raise AttestationError(f"policy {path} must be a JSON object", code="config")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON/TOML-ready dict; ``Policy.from_dict(p.to_dict()) == p``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    def check(self, claims: Claims, *, now: datetime) -> None:
        """Raise AttestationError (code ``policy`` or ``expired``) unless ``claims`` pass."""
        if not claims.collateral_valid_from <= now <= claims.collateral_valid_until:
            raise AttestationError(
                f"{claims.tee} evidence is outside its validity window "
                f"{claims.collateral_valid_from.isoformat()}..{claims.collateral_valid_until.isoformat()}"
                f" at {now.isoformat()}; refresh the collateral or request fresh evidence",
                code="expired",
            )
        if claims.tee not in self.allowed_tees:
            _reject(f"TEE type {claims.tee} is not in allowed_tees")
        if claims.simulated and not self.allow_simulated:
            _reject(
                "evidence is SIMULATED (no hardware protection); set allow_simulated only "
                "for development"
            )
        if claims.debug and not self.allow_debug:
            _reject(f"{claims.tee} enclave runs in DEBUG mode; its memory is readable by the host")
        status_ok = claims.tcb_status in self.accepted_tcb_statuses or (
            claims.simulated and claims.tcb_status == SIMULATED_TCB_STATUS
        )
        if not status_ok:
            _reject(
                f"TCB status {claims.tcb_status} is not accepted "
                f"(accepted: {', '.join(sorted(self.accepted_tcb_statuses))}); update the "
                "platform or add the status to accepted_tcb_statuses"
            )
        denied = sorted(set(claims.advisory_ids) & self.denied_advisories)
        if denied:
            _reject(f"platform is affected by denied advisories {', '.join(denied)}")
        for flag, allow_field in _PLATFORM_FLAGS.items():
            if claims.platform_flags.get(flag) and not getattr(self, allow_field):
                _reject(f"platform has {flag}=true; set {allow_field} to accept it")
        if claims.tee == "sev-snp":
            self._check_snp(claims)
        if claims.measurement not in self.allowed_measurements:
            _reject(
                f"measurement {claims.measurement} is not in allowed_measurements; "
                "add it only after reviewing what that build runs"
            )

    def _check_snp(self, claims: Claims) -> None:
        guest = claims.guest_policy
        if guest.get("migrate_ma", True) and not self.allow_migration_agent:
            _reject(
                "SEV-SNP guest policy allows a migration agent (MIGRATE_MA), which can export "
                "the guest; set allow_migration_agent only if you trust that agent"
            )
        if self.require_single_socket and not guest.get("single_socket", False):
            _reject("SEV-SNP guest policy does not set SINGLE_SOCKET (require_single_socket)")
        if claims.vmpl is None or claims.vmpl > self.max_vmpl:
            _reject(
                f"SEV-SNP report was requested at VMPL {claims.vmpl}, above max_vmpl "
                f"{self.max_vmpl}; it may come from less privileged guest software"
            )
        for name, minimum in self.min_snp_tcb.items():
            level = claims.reported_tcb.get(name)
            if level is None or level < minimum:
                _reject(
                    f"SEV-SNP reported TCB {name} SPL is {level}, below min_snp_tcb.{name} = "
                    f"{minimum}; update the platform firmware (or lower the minimum)"
                )


def _reject(reason: str) -> None:
    raise AttestationError(f"policy rejected the evidence: {reason}", code="policy")
