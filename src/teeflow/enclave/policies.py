"""Dataset policies: what an owner lets leave the enclave from its dataset (issue 15).

The owner writes a policy on its own machine and signs it (Ed25519, domain ``dataset-policy``)::

    {"version": 1, "owner": "bank", "ciphertext_sha256": "<the sealed dataset>",
     "functions": ["tabular-train", "sha256:<code hash>"] | null,   # null: any function
     "recipients": ["alice", "bank"] | null,                        # null: anyone
     "min_rows": 20,            # fewest rows behind any disclosed aggregate (0: no threshold)
     "raw_rows": false,         # may row-carrying outputs (echo, flags, joins, predictions) leave?
     "dp": {"epsilon": 3.0, "delta": 1e-5} | null}   # differential-privacy budget

The control plane puts the signed policy into the contract's input spec (``inputs[slot].policy``),
so every participant signs over it. The owner's client refuses a contract that carries any other
policy than the one it set (client/_review.py); the enclave verifies the owner's signature and the
rules below before it unwraps a key. Each refusal names the rule, e.g.
``policy of input 'data' (owner 'bank'): rule 'functions': ...``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from teeflow.crypto import CryptoError, SigningKey, VerifyKey, b64d, b64e, canonical_json

__all__ = [
    "DP_FUNCTIONS",
    "POLICY_DOMAIN",
    "DatasetPolicy",
    "PolicyViolation",
    "aggregate_threshold",
    "check_policies",
    "declared_spend",
    "input_policies",
    "reached_members",
    "sign_policy",
    "verify_policy",
]

POLICY_DOMAIN = "dataset-policy"
POLICY_VERSION = 1
DP_FUNCTIONS = frozenset({"tabular-train", "image-classify-train"})
"""Built-ins that train with DP-SGD when the contract's ``arguments.dp`` asks for it."""
RAW_ROW_OUTPUTS = {
    "echo": ("*",),
    "psi": ("flags:",),
    "private-join-sum": ("result",),
    "tabular-predict": ("predictions",),
    "image-classify-predict": ("predictions",),
}
"""Built-in outputs that carry rows of an input (a prefix, or ``*`` for every output)."""


class PolicyViolation(Exception):
    """A contract breaks an input's policy; ``rule`` names the policy field, the message is
    public (no data, no keys)."""

    def __init__(self, slot: str, owner: str, rule: str, detail: str) -> None:
        super().__init__(f"policy of input {slot!r} (owner {owner!r}): rule {rule!r}: {detail}")
        self.slot, self.owner, self.rule = slot, owner, rule


@dataclass(frozen=True)
class DatasetPolicy:
    owner: str
    ciphertext_sha256: str
    functions: tuple[str, ...] | None = None
    recipients: tuple[str, ...] | None = None
    min_rows: int = 0
    raw_rows: bool = True
    dp_epsilon: float | None = None
    dp_delta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        dp = None
        if self.dp_epsilon is not None:
            dp = {"epsilon": self.dp_epsilon, "delta": self.dp_delta or 0.0}
        return {
            "version": POLICY_VERSION,
            "owner": self.owner,
            "ciphertext_sha256": self.ciphertext_sha256,
            "functions": None if self.functions is None else sorted(self.functions),
            "recipients": None if self.recipients is None else sorted(self.recipients),
            "min_rows": self.min_rows,
            "raw_rows": self.raw_rows,
            "dp": dp,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatasetPolicy:
        """Parse and check a policy body; ValueError says which field is wrong."""
        if data.get("version") != POLICY_VERSION:
            raise ValueError(f"unsupported policy version {data.get('version')!r}")
        owner, digest = data.get("owner"), data.get("ciphertext_sha256")
        if not isinstance(owner, str) or not owner or not isinstance(digest, str):
            raise ValueError("a policy names its owner and the dataset's ciphertext_sha256")
        lists = {}
        for key in ("functions", "recipients"):
            value = data.get(key)
            if value is not None and (
                not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)
            ):
                raise ValueError(f"policy field {key!r} must be null or a list of names")
            lists[key] = None if value is None else tuple(value)
        min_rows = data.get("min_rows", 0)
        if isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 0:
            raise ValueError("policy field 'min_rows' must be a non-negative integer")
        if not isinstance(data.get("raw_rows", True), bool):
            raise ValueError("policy field 'raw_rows' must be true or false")
        epsilon, delta = _budget(data.get("dp"))
        return cls(
            owner=owner,
            ciphertext_sha256=digest,
            functions=lists["functions"],
            recipients=lists["recipients"],
            min_rows=min_rows,
            raw_rows=bool(data.get("raw_rows", True)),
            dp_epsilon=epsilon,
            dp_delta=delta,
        )


def _budget(dp: Any) -> tuple[float | None, float | None]:
    if dp is None:
        return None, None
    if not isinstance(dp, Mapping):
        raise ValueError("policy field 'dp' must be null or {epsilon, delta}")
    epsilon, delta = dp.get("epsilon"), dp.get("delta", 0.0)
    for name, value in (("epsilon", epsilon), ("delta", delta)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"policy dp.{name} must be a non-negative number")
        if not math.isfinite(value):
            raise ValueError(f"policy dp.{name} must be finite")
    if float(delta) >= 1:
        raise ValueError("policy dp.delta must be below 1")
    return float(epsilon), float(delta)  # type: ignore[arg-type]


def sign_policy(policy: DatasetPolicy, key: SigningKey) -> dict[str, Any]:
    """``{"policy": body, "signature": b64}``: what the owner uploads and contracts carry."""
    body = policy.to_dict()
    return {"policy": body, "signature": b64e(key.sign(POLICY_DOMAIN, canonical_json(body)))}


def verify_policy(signed: Any, key: VerifyKey) -> DatasetPolicy:
    """Check the owner's signature and parse; ValueError on any problem."""
    if not isinstance(signed, Mapping) or not isinstance(signed.get("policy"), Mapping):
        raise ValueError("a signed policy is {policy, signature}")
    try:
        key.verify(POLICY_DOMAIN, canonical_json(dict(signed["policy"])), b64d(signed["signature"]))
    except (CryptoError, TypeError, ValueError):
        raise ValueError("the policy's signature does not verify against its owner's key") from None
    return DatasetPolicy.from_dict(signed["policy"])


def input_policies(contract: Mapping[str, Any]) -> dict[str, DatasetPolicy]:
    """Every input's verified policy, by slot; PolicyViolation (rule ``signature``) on a policy
    that is not its sole owner's, for another ciphertext, or unsigned."""
    policies: dict[str, DatasetPolicy] = {}
    for slot, spec in sorted(contract["inputs"].items()):
        signed = spec.get("policy")
        if signed is None:
            continue
        owners = list(spec["owners"])
        if len(owners) != 1:
            raise PolicyViolation(
                slot, ",".join(owners), "signature", "a joint input has no policy"
            )
        owner = owners[0]
        try:
            key = VerifyKey.from_b64(contract["participants"][owner]["sign_pk"])
            policy = verify_policy(signed, key)
        except (KeyError, ValueError, CryptoError) as exc:
            raise PolicyViolation(slot, owner, "signature", str(exc)) from None
        if policy.owner != owner or policy.ciphertext_sha256 != spec["ciphertext_sha256"]:
            raise PolicyViolation(
                slot, owner, "signature", "the policy was signed for another dataset or owner"
            )
        policies[slot] = policy
    return policies


def reached_members(contract: Mapping[str, Any]) -> set[str]:
    """Everyone who receives anything computed from the inputs: output recipients and joint
    owners, the members progress and errors are disclosed to, and session requesters."""
    names: set[str] = set()
    for spec in contract["outputs"].values():
        names.update(spec.get("recipients") or spec.get("joint_owners") or [])
    for listed in contract.get("disclosure", {}).values():
        names.update(listed)
    requesters = contract.get("arguments", {}).get("requesters")
    if isinstance(requesters, list):
        names.update(str(name) for name in requesters)
    return names


def declared_spend(contract: Mapping[str, Any]) -> tuple[float, float] | None:
    """The (epsilon, delta) every input of a DP training task spends, from ``arguments.dp``;
    None when the task does not train with differential privacy."""
    function, dp = contract["function"], contract.get("arguments", {}).get("dp")
    if function["kind"] != "builtin" or function["name"] not in DP_FUNCTIONS:
        return None
    if not isinstance(dp, Mapping):
        return None
    epsilon, delta = _budget(dp)
    return (epsilon or 0.0, delta or 0.0)


def _raw_row_outputs(contract: Mapping[str, Any]) -> list[str]:
    function = contract["function"]
    slots = sorted(contract["outputs"])
    if function["kind"] == "builtin":
        prefixes = RAW_ROW_OUTPUTS.get(function["name"], ())
        return [s for s in slots if "*" in prefixes or any(s.startswith(p) for p in prefixes)]
    declared = function.get("outputs") or {}
    return [s for s in slots if (declared.get(s) or {}).get("kind") != "metrics"]


def check_policies(contract: Mapping[str, Any]) -> dict[str, DatasetPolicy]:
    """Check the contract against every input's policy; return them by slot.

    Raises PolicyViolation naming the slot, owner and rule: ``signature``, ``functions``,
    ``recipients``, ``raw_rows`` or ``dp``. The remaining budget is checked separately
    (enclave/budget.py), against the owner's signed statement.
    """
    policies = input_policies(contract)
    function = contract["function"]
    names = {f"sha256:{function['code_sha256']}"}
    if function["kind"] == "builtin":
        names.add(function["name"])
    reached = reached_members(contract)
    spend = _spend_or_violation(contract, policies)
    for slot, policy in policies.items():
        if policy.functions is not None and not names & set(policy.functions):
            raise PolicyViolation(
                slot,
                policy.owner,
                "functions",
                f"function {function.get('name')!r} may not read this dataset; the policy allows "
                f"{', '.join(sorted(policy.functions)) or 'none'}",
            )
        allowed = set(policy.recipients or ()) | {policy.owner}
        strangers = sorted(reached - allowed) if policy.recipients is not None else []
        if strangers:
            raise PolicyViolation(
                slot,
                policy.owner,
                "recipients",
                f"{', '.join(strangers)} would receive what is computed from this dataset; the "
                f"policy allows {', '.join(sorted(allowed))}",
            )
        raw = _raw_row_outputs(contract)
        if not policy.raw_rows and raw:
            raise PolicyViolation(
                slot,
                policy.owner,
                "raw_rows",
                f"output(s) {', '.join(raw)} can carry rows of the dataset; the policy lets no "
                "row leave the enclave",
            )
        if policy.dp_epsilon is not None:
            _check_dp(slot, policy, spend, function)
    return policies


def _spend_or_violation(
    contract: Mapping[str, Any], policies: Mapping[str, DatasetPolicy]
) -> tuple[float, float] | None:
    try:
        return declared_spend(contract)
    except ValueError as exc:
        # Malformed DP arguments are refused whether or not an input has a policy.
        slot = next(iter(policies), None) or next(iter(sorted(contract["inputs"])), "-")
        owners = contract["inputs"].get(slot, {}).get("owners") or ["-"]
        raise PolicyViolation(slot, ",".join(owners), "dp", f"arguments.dp: {exc}") from None


def _check_dp(
    slot: str, policy: DatasetPolicy, spend: tuple[float, float] | None, function: Any
) -> None:
    if spend is None:
        raise PolicyViolation(
            slot,
            policy.owner,
            "dp",
            f"function {function.get('name')!r} gives no differential-privacy guarantee; this "
            f"dataset may only be read by DP training ({', '.join(sorted(DP_FUNCTIONS))} with "
            "arguments.dp = {epsilon, delta})",
        )
    epsilon, delta = spend
    if epsilon <= 0 or epsilon > (policy.dp_epsilon or 0.0) or delta > (policy.dp_delta or 0.0):
        raise PolicyViolation(
            slot,
            policy.owner,
            "dp",
            f"the task spends epsilon={epsilon:g}, delta={delta:g}; the policy's whole budget is "
            f"epsilon={policy.dp_epsilon:g}, delta={policy.dp_delta or 0.0:g}",
        )


def aggregate_threshold(contract: Mapping[str, Any]) -> int:
    """The fewest rows any disclosed aggregate may cover: the strictest input policy's
    ``min_rows`` (0 when no input has a policy). Call after :func:`check_policies`."""
    return max((p.min_rows for p in input_policies(contract).values()), default=0)
