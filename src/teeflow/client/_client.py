"""``teeflow.Client``: what a member's own machine does.

It seals data locally, uploads only ciphertext, attests the enclave against the member's own
policy before wrapping any key to it, checks a contract against its own records before signing,
and decrypts outputs locally after checking them against the enclave's signed receipt.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import httpx

from teeflow.attestation import AttestationError, Claims, Policy, verify
from teeflow.client._errors import ClientError, raise_for_error
from teeflow.client._events import EventChecker, RejectedEvent
from teeflow.client._home import MemberHome
from teeflow.client._ledger import PrivacyLedger
from teeflow.client._privacy import budget_statements, make_policy, settle
from teeflow.client._trust import attest_evidence, check_trusted_contract, remember_attested
from teeflow.client.keyring import MemberKeys
from teeflow.crypto import (
    IntegrityError,
    PublicKey,
    VerifyKey,
    b64e,
    hpke_seal,
    key_wrap_info,
    sha256_hex,
)
from teeflow.enclave.checks import FUNCTION_SLOT
from teeflow.enclave.contract import APPROVAL_DOMAIN, contract_hash
from teeflow.enclave.key_id_claim import check_key_id_claim
from teeflow.enclave.receipt import verify_receipt
from teeflow.enclave.run_state import DEFAULT_START_WITHIN_S
from teeflow.signin import SIGN_IN_DOMAIN, sign_in_message
from teeflow.tls import InsecureTransportError, client_verify, control_plane_http

if TYPE_CHECKING:
    from teeflow.client._inference import SessionClient

__all__ = ["Client", "public_keys"]

log = logging.getLogger("teeflow.client")

TERMINAL = {"succeeded", "failed", "canceled", "rejected"}
_LONG_POLL_SECONDS = 20.0  # under the HTTP read timeout; the server caps it at 30
T = TypeVar("T")
_RECENT_TASKS = 256  # tasks kept from propose for the next step, approve (Client._recent_tasks)
_APPROVED_RUNS = 4096  # contracts approved, kept for the creator's run (Client._approved_runs)


def _keep(kept: dict[str, T], key: str, value: T, most: int) -> None:
    """``kept[key] = value``, dropping the oldest entries beyond ``most``."""
    kept[key] = value
    while len(kept) > most:
        kept.pop(next(iter(kept)))


def public_keys(keys: MemberKeys) -> dict[str, str]:
    """A member's public keys as the server and contracts spell them."""
    return {
        "sign_pk": keys.signing_key.verify_key.b64(),
        "enc_pk": keys.receiving_key.public_key.b64(),
    }


class Client:
    """A member's session with one control plane."""

    def __init__(
        self,
        server: str,
        *,
        keys: MemberKeys,
        home: MemberHome | None = None,
        token: str | None = None,
        username: str | None = None,
        policy: Policy | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        verifier: Callable[..., Claims] = verify,
        ca_cert: Path | None = None,
        insecure_http: bool = False,
    ) -> None:
        """``ca_cert``: the CA the server's certificate must chain to (default: the system's
        roots); plain http to another host raises ClientError unless ``insecure_http``
        (teeflow.tls.client_verify). An injected ``transport`` is not the network: no check."""
        self.server = server.rstrip("/")
        self.ca_cert = ca_cert
        self.insecure_http = insecure_http
        tls: ssl.SSLContext | bool = True
        if transport is None:
            try:
                tls = client_verify(self.server, ca_cert=ca_cert, insecure_http=insecure_http)
            except InsecureTransportError as exc:
                raise ClientError(str(exc)) from exc
        self.tls = tls
        """How the session channel (client/_channel.py) checks the server, as ``verify``."""
        self.keys = keys
        self.home = home or MemberHome()
        self.username = username
        self._policy = policy
        self._clock = clock
        self._verify = verifier
        """``verify(evidence, policy, now=...)``; tests on fake TEE hardware inject theirs."""
        self._attested: dict[str, Any] | None = None
        self._event_checkers: dict[str, EventChecker] = {}
        self._recent_tasks: dict[str, dict[str, Any]] = {}
        """Tasks as this client last received them from propose, so the next step (approve)
        need not fetch them again: it reviews the contract either way, the contract cannot
        change under its hash, and the control plane refuses a step the task's state no longer
        allows."""
        self._approved_runs: dict[str, tuple[str, list[str]]] = {}
        """task id -> (hash of the contract this client reviewed and approved, the members the
        approval's answer showed as withdrawn): what :meth:`run` signs for, without fetching
        the task again; a few hundred bytes each, so many more are kept than whole tasks."""
        self.http = control_plane_http(
            self.server,
            timeout=httpx.Timeout(120.0, connect=5.0),
            transport=transport,
            verify=tls,
        )
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach the control plane at {self.server}: {exc}") from exc
        raise_for_error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- accounts ---------------------------------------------------------------------------

    def register(self, username: str, password: str) -> dict[str, Any]:
        body = {"username": username, "password": password, **public_keys(self.keys)}
        result: dict[str, Any] = self._call("POST", "/v1/users", json=body)
        return result

    def login(self, username: str, password: str, *, remember: bool = True) -> str:
        # Signed with this member's key: a stranger's wrong passwords for this name never hold
        # the member back (server/throttle.py); the password is checked all the same.
        at = self._clock().isoformat()
        proof = self.keys.signing_key.sign(SIGN_IN_DOMAIN, sign_in_message(username, at))
        body = {
            "username": username,
            "password": password,
            "proof": {"at": at, "signature": b64e(proof)},
        }
        data = self._call("POST", "/v1/sessions", json=body)
        token: str = data["token"]
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.username = username
        me = self._call("GET", "/v1/users/me")
        if (
            me["sign_pk"] != public_keys(self.keys)["sign_pk"]
            or me["enc_pk"] != public_keys(self.keys)["enc_pk"]
        ):
            raise ClientError(
                "the server holds other public keys for this account than your keyring"
            )
        if remember:
            self.home.save_credentials(
                server=self.server,
                username=username,
                token=token,
                ca_cert=self.ca_cert,
                insecure_http=self.insecure_http,
            )
        return token

    def member(self, username: str) -> dict[str, Any]:
        """A member's public keys as the control plane serves them (not trusted: see _pins.py)."""
        result: dict[str, Any] = self._call("GET", f"/v1/users/{quote(username, safe='')}")
        return result

    def logout(self) -> None:
        self._call("DELETE", "/v1/sessions")
        self.home.clear_credentials()

    # -- attestation ------------------------------------------------------------------------

    def policy(self) -> Policy:
        if self._policy is None:
            if not self.home.policy_path.exists():
                raise ClientError(
                    f"no attestation policy at {self.home.policy_path}: write one, or for a local "
                    "simulated platform run `teeflow attest trust --simulated` "
                    "(no hardware protection)"
                )
            self._policy = Policy.from_file(self.home.policy_path)
        return self._policy

    def enclave(self) -> dict[str, Any]:
        """The executor evidence the control plane publishes, NOT verified: tee, measurement,
        public_keys, evidence, executors. :meth:`attest` verifies it against the policy."""
        result: dict[str, Any] = self._call("GET", "/v1/enclave")
        return result

    def attest(self) -> dict[str, Any]:
        """Verify the executor's evidence against this member's policy; return what was attested."""
        info = self._call("GET", "/v1/enclave")
        now = self._clock()
        try:
            claims, public_keys = attest_evidence(
                info["evidence"], info["public_keys"], self.policy(), now=now, verifier=self._verify
            )
            # The key id the executor registered with, signed by the key just attested: an
            # operator who altered it in the database is caught here.
            key_id = check_key_id_claim(
                info.get("key_id"), public_keys=public_keys, measurement=claims.measurement
            )
        except (AttestationError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ClientError(f"enclave attestation failed: {exc}") from exc
        remember_attested(self.home, claims, public_keys, at=now)
        self._attested = {
            "tee": claims.tee,
            "measurement": claims.measurement,
            "public_keys": public_keys,
            "key_id": {"measurement": key_id.measurement, "epoch": key_id.epoch},
            "simulated": claims.simulated,
            "tcb_status": claims.tcb_status,
        }
        return dict(self._attested)

    # -- datasets & functions ---------------------------------------------------------------

    def upload_dataset(
        self,
        source: Path | bytes,
        *,
        name: str,
        kind: str = "other",
        description: str = "",
        rows: int | None = None,
    ) -> dict[str, Any]:
        """Seal ``source`` locally under a fresh key and upload only the ciphertext; the
        dataset record. A table or image file is checked first (ClientError says what is wrong)
        and its schema summary kept in this member's home; see client/_uploads.py."""
        from teeflow.client._uploads import upload_dataset

        return upload_dataset(
            self, source, name=name, kind=kind, description=description, rows=rows
        )

    def datasets(self, *, owner: str | None = None) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call(
            "GET", "/v1/datasets", params={"owner": owner} if owner else None
        )
        return result

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        """One dataset's metadata (owners, state, producing task), as the control plane shows it;
        ``schema`` is its owner's published schema summary, verified against the owner's pinned
        key (None when unpublished). ClientError when it does not verify: the control plane
        altered it (client/_schema_publish.py)."""
        from teeflow.client._schema_publish import verified_dataset

        return verified_dataset(self, dataset_id)

    def publish_schema(self, dataset_id: str) -> dict[str, Any]:
        """Publish (opt-in) the schema summary this member's upload check recorded for its own
        dataset, signed with its key: column names and types, row count, class names and
        counts, never values. Returns the summary published."""
        from teeflow.client._schema_publish import publish_schema

        return publish_schema(self, dataset_id)

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset you own on the control plane: its ciphertext goes, its record and
        audit entries stay. ApiError 409 while an unfinished task uses it. The local data key
        is kept (delete $TEEFLOW_HOME/datasets/ID.json yourself if you no longer want it)."""
        self._call("DELETE", f"/v1/datasets/{dataset_id}")

    def functions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/v1/functions")
        return result

    def upload_function(
        self,
        source: str,
        *,
        name: str,
        sealed: bool = True,
        description: str = "",
        inputs: list[str] | None = None,
        outputs: list[str] | Mapping[str, Mapping[str, Any]] | None = None,
        arguments: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Upload Python source; ``sealed`` keeps the code confidential to the enclave.

        ``outputs`` declares each output slot: ``{slot: {"kind": "metrics" | "table" | "model" |
        "bytes", "max_bytes": n}}`` (functions/outputs.py); bare names declare opaque, unbounded
        outputs. The enclave refuses an output that breaks its declaration.
        """
        from teeflow.client._uploads import upload_function

        return upload_function(
            self,
            source,
            name=name,
            sealed=sealed,
            description=description,
            inputs=inputs,
            outputs=outputs,
            arguments=arguments,
        )

    # -- tasks ------------------------------------------------------------------------------

    def propose(
        self,
        function: str,
        *,
        inputs: Mapping[str, str],
        outputs: Mapping[str, Mapping[str, Any]],
        arguments: Mapping[str, Any] | None = None,
        disclosure: Mapping[str, list[str]] | None = None,
        description: str = "",
        expires_in_s: int | None = None,
    ) -> dict[str, Any]:
        """Propose a task; the contract expires ``expires_in_s`` seconds from now (the control
        plane's default, 7 days, if None), after which no enclave runs it.

        Raises ClientError, before anything is sent, when the arguments break a built-in's
        declaration (client/_declared.py)."""
        from teeflow.client._declared import check_proposal

        check_proposal(function, arguments=arguments or {}, inputs=inputs)
        body: dict[str, Any] = {
            "function": function,
            "inputs": dict(inputs),
            "outputs": {k: dict(v) for k, v in outputs.items()},
            "arguments": dict(arguments or {}),
            "disclosure": dict(disclosure or {}),
            "description": description,
        }
        if expires_in_s is not None:
            body["expires_in_s"] = expires_in_s
        result: dict[str, Any] = self._call("POST", "/v1/tasks", json=body)
        self._remember(result)
        return result

    def _remember(self, task: dict[str, Any]) -> None:
        _keep(self._recent_tasks, task["id"], task, _RECENT_TASKS)

    def _recent_or_fetch(self, task_id: str) -> dict[str, Any]:
        """The task as this client last received it (once), else as the control plane shows it."""
        task = self._recent_tasks.pop(task_id, None)
        return task if task is not None else self.task(task_id)

    def task(self, task_id: str) -> dict[str, Any]:
        """The task as the control plane shows it. If this member withdrew its approval and the
        task's enclave-signed receipt shows it ran anyway, ``withdrawal_breach`` says so (and it
        is logged as an error)."""
        result: dict[str, Any] = self._call("GET", f"/v1/tasks/{task_id}")
        if result.get("id") != task_id:
            raise ClientError(f"the control plane answered for task {task_id} with another task")
        return self._check_withdrawal(result)

    def _check_withdrawal(self, task: dict[str, Any]) -> dict[str, Any]:
        from teeflow.client._run_state import withdrawal_breach

        withdrawn = self.home.withdrawal(task["id"])
        if withdrawn is None or not task.get("receipt"):
            return task
        try:
            body = self._verified_receipt(task)["body"]
        except ClientError:
            return task  # a receipt that does not verify shows no run
        breach = withdrawal_breach(task, withdrawn, body)
        if breach:
            log.error("%s", breach)
            task = {**task, "withdrawal_breach": breach}
        return task

    def function_source(self, task_id: str) -> str:
        """The plain source of task ``task_id``'s uploaded function, checked against the code
        hash in its contract (which :meth:`review` checks against the server's contract hash).

        Raises ClientError when the code differs from what the contract pins, and ApiError (403)
        when the code is sealed: confidential to its owner.
        """
        task = self.task(task_id)
        function = task["contract"]["function"]
        if contract_hash(task["contract"]) != task.get("contract_hash"):
            raise ClientError("the server's contract hash does not match the contract it shows")
        response = self.http.get(f"/v1/tasks/{task_id}/function/source")
        raise_for_error(response)
        if sha256_hex(response.content) != function["code_sha256"]:
            raise ClientError(
                "the function source the server sent differs from the code the contract pins"
            )
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClientError("the function source is not UTF-8 text") from exc

    def tasks(
        self,
        *,
        role: str | None = None,
        status: str | None = None,
        creator: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Your tasks, oldest first; ``role`` is ``creator`` (yours) or ``invited`` (others'
        naming you); ``status``/``creator`` filter; ``limit``/``offset`` page."""
        params = {"role": role, "status": status, "creator": creator, "limit": limit}
        query = {k: v for k, v in params.items() if v is not None}
        if offset:
            query["offset"] = offset
        result: list[dict[str, Any]] = self._call("GET", "/v1/tasks", params=query or None)
        return result

    def review(self, task: Mapping[str, Any]) -> list[str]:
        """Check the contract against this member's own records; return warnings for a human.

        Raises ClientError for anything that must block approval.
        """
        from teeflow.client._review import review_contract

        attested = self._attested or self.attest()
        return review_contract(
            task, me=self._me(), keys=self.keys, home=self.home, attested=attested
        )

    def approve(
        self,
        task_id: str,
        *,
        run: bool = False,
        start_within_s: int = DEFAULT_START_WITHIN_S,
        task: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Review, sign the contract hash and wrap this member's keys to the attested enclave.

        ``run`` (the creator only; ClientError otherwise) also signs the run authorisation
        :meth:`run` would sign, now: the control plane queues the task as the last approval
        arrives, no `run` call needed. The start window (``start_within_s``) counts from now;
        if the others approve after it has passed, the task waits ``approved`` and the creator
        runs it again with :meth:`run` (docs/run-authorisation.md).

        ``task``: the task as the caller has just fetched it with :meth:`task` (ClientError if
        it is another task's), so it is not fetched again; it is reviewed here either way."""
        if task is None:
            task = self._recent_or_fetch(task_id)
        elif task.get("id") != task_id:
            raise ClientError(f"the task given to approve is not task {task_id}")
        if run and task.get("creator") != self._me():
            raise ClientError(f"only the task's creator ({task.get('creator')}) can run it")
        self.review(task)
        contract = task["contract"]
        chash = contract_hash(contract)
        enclave_pk = PublicKey.from_b64(contract["executor"]["public_keys"]["x25519"])
        wrapped: dict[str, str] = {}
        for slot, spec in contract["inputs"].items():
            if spec.get("joint") or spec["owners"] != [self._me()]:
                continue
            key = self.home.dataset_key(spec["dataset_id"])
            if key is None:
                raise ClientError(
                    f"no local key for your dataset {spec['dataset_id']} (input {slot!r})"
                )
            wrapped[slot] = b64e(
                hpke_seal(key.raw, enclave_pk, info=key_wrap_info("input", chash, slot))
            )
        function = contract["function"]
        if function.get("sealed") and function.get("owner") == self._me():
            key = self.home.dataset_key(function["source_dataset_id"])
            if key is None:
                raise ClientError("no local key for your function's sealed source")
            info = key_wrap_info("function", chash, FUNCTION_SLOT)
            wrapped[FUNCTION_SLOT] = b64e(hpke_seal(key.raw, enclave_pk, info=info))
        wrapped.update(  # reserves this task's DP spend in the owner's own ledger
            budget_statements(
                contract, chash=chash, me=self._me(), ledger=self.ledger, key=self.keys.signing_key
            )
        )
        signature = b64e(self.keys.signing_key.sign(APPROVAL_DOMAIN, chash.encode("ascii")))
        # Kept before the approval leaves: from now on only this contract's receipt is believed.
        self.home.record_approval(
            task_id=task_id,
            contract_hash=chash,
            enclave_keys=contract["executor"]["public_keys"],
            at=self._clock().isoformat(),
        )
        body: dict[str, Any] = {"signature": signature, "wrapped_keys": wrapped}
        if run:
            from teeflow.client._run_state import run_authorisation

            body["run"] = run_authorisation(
                task_id,
                chash,
                task.get("withdrawn", []),
                self.keys.signing_key,
                now=self._clock(),
                start_within_s=start_within_s,
            )
        result: dict[str, Any] = self._call("POST", f"/v1/tasks/{task_id}/approve", json=body)
        withdrawn = [str(name) for name in result.get("withdrawn", [])]
        _keep(self._approved_runs, task_id, (chash, withdrawn), _APPROVED_RUNS)
        return result

    @property
    def ledger(self) -> PrivacyLedger:
        """This member's own record of its dataset policies and DP spends (client/_ledger.py)."""
        return PrivacyLedger(self.home.root)

    def set_policy(self, dataset_id: str, **rules: Any) -> dict[str, Any]:
        """Sign and attach a policy to one of this member's datasets: ``functions``,
        ``recipients`` (lists or None for any), ``min_rows``, ``raw_rows``, ``dp=(epsilon,
        delta)``; see enclave/policies.py. Returns the signed policy."""
        record = self.home.dataset_record(dataset_id)
        if record is None:
            raise ClientError(
                f"you hold no key for dataset {dataset_id}: only its owner sets a policy"
            )
        try:
            signed = make_policy(
                owner=self._me(),
                ciphertext_sha256=record["ciphertext_sha256"],
                key=self.keys.signing_key,
                **rules,
            )
        except ValueError as exc:
            raise ClientError(f"policy refused: {exc}") from exc
        self._call("PUT", f"/v1/datasets/{dataset_id}/policy", json=signed)
        self.ledger.set_policy(dataset_id, signed)
        return signed

    def settle(self, task_id: str) -> dict[str, str]:
        """Apply the task's enclave-signed receipt to this member's ledger: a refund when the
        function never ran, else the spend the receipt states. ``{input slot: state}``."""
        task = self.task(task_id)
        body = self._verified_receipt(task)["body"]
        return settle(task["contract"], body, me=self._me(), ledger=self.ledger)

    def reject(self, task_id: str, reason: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/v1/tasks/{task_id}/reject", json={"reason": reason}
        )
        return result

    def run(self, task_id: str, *, start_within_s: int = DEFAULT_START_WITHIN_S) -> dict[str, Any]:
        """Sign a run authorisation for the task's contract and queue it: the contract this
        client has just approved (its hash kept from :meth:`approve`, nothing fetched), else
        the one the control plane shows now. An enclave starts the task only within
        ``start_within_s`` seconds of now (by its clock); later it only resumes a checkpoint of
        this run (docs/run-authorisation.md)."""
        from teeflow.client._run_state import run_authorisation

        approved = self._approved_runs.pop(task_id, None)
        if approved is None:  # approved by another client (or long ago): as shown now
            task = self.task(task_id)
            approved = (contract_hash(task["contract"]), task.get("withdrawn", []))
        chash, withdrawn = approved
        authorisation = run_authorisation(
            task_id,
            chash,
            withdrawn,
            self.keys.signing_key,
            now=self._clock(),
            start_within_s=start_within_s,
        )
        result: dict[str, Any] = self._call(
            "POST", f"/v1/tasks/{task_id}/run", json={"authorisation": authorisation}
        )
        return result

    def withdraw(self, task_id: str) -> dict[str, Any]:
        """Withdraw this member's approval before the task runs: sign a withdrawal, keep it in
        the member's home and send it. The enclave refuses a task it is shown a withdrawal for;
        if the receipt later shows it ran anyway, :meth:`task` reports ``withdrawal_breach``."""
        from teeflow.client._run_state import withdrawal

        task = self.task(task_id)
        signed = withdrawal(task, self.keys.signing_key, username=self._me(), now=self._clock())
        result: dict[str, Any] = self._call(
            "POST", f"/v1/tasks/{task_id}/withdraw", json={"withdrawal": signed}
        )
        self.home.save_withdrawal(task_id, signed)
        return result

    def cancel(self, task_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/v1/tasks/{task_id}/cancel")
        return result

    def events(self, task_id: str, *, after: int = 0) -> list[dict[str, Any]]:
        """Progress and error messages the enclave signed for this member, decrypted.

        Events that are not the enclave's (forged by the control plane, for another task or
        member, or a replay of one already shown) are never returned: they are logged and
        listed by :meth:`rejected_events`.
        """
        return self._events(self.task(task_id), after=after)

    def rejected_events(self, task_id: str) -> list[RejectedEvent]:
        """Deliveries of ``task_id`` this client refused to show, with the reason for each."""
        checker = self._event_checkers.get(task_id)
        return list(checker.rejected) if checker else []

    def _events(self, task: Mapping[str, Any], *, after: int) -> list[dict[str, Any]]:
        task_id = task["id"]
        chash = contract_hash(task["contract"])
        checker = self._event_checkers.get(task_id)
        if checker is None or checker.chash != chash:
            checker = self._event_checkers[task_id] = EventChecker(
                task_id=task_id,
                chash=chash,
                recipient=self._me(),
                receiving_key=self.keys.receiving_key,
                enclave_key=VerifyKey.from_b64(
                    task["contract"]["executor"]["public_keys"]["ed25519"]
                ),
            )
        deliveries = self._call("GET", f"/v1/tasks/{task_id}/events", params={"after": after})
        return checker.check(deliveries)

    def wait(
        self,
        task_id: str,
        *,
        timeout: float = 600.0,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Block until the task ends (long-polling the control plane); report events on the way."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            # Held by the control plane until the task ends or (with on_event) an event arrives.
            params: dict[str, Any] = {
                "wait": min(max(deadline - time.monotonic(), 0.0), _LONG_POLL_SECONDS),
                "until_done": True,
            }
            if on_event is not None:
                params["events_after"] = seen
            task: dict[str, Any] = self._call("GET", f"/v1/tasks/{task_id}", params=params)
            status = task["status"]
            if on_event is not None:
                for event in self._events(task, after=seen):
                    on_event(event)
                # Past rejected deliveries too, so a forged event is not fetched again.
                seen = max(seen, self._event_checkers[task_id].last_seq)
            if status in TERMINAL:
                return self._check_withdrawal(task)
            if time.monotonic() > deadline:
                raise ClientError(f"task {task_id} still {status} after {timeout:.0f} s")

    def open_session(self, task_id: str, *, channel: bool = False) -> SessionClient:
        """A running inference session's client: reviews its contract (attesting the enclave)
        once, then seals, signs and sends requests and opens their answers. ``channel``: over
        one WebSocket to the relay, opened now (no round trip per request; ClientError if the
        control plane refuses it), instead of one HTTP call per request; close it with
        ``SessionClient.close()`` or ``with``."""
        from teeflow.client._inference import SessionClient

        return SessionClient.open(self, task_id, channel=channel)

    def infer(self, task_id: str, rows: Any, *, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Predictions of inference session ``task_id`` for ``rows`` (a list of
        ``{column: value}``, a DataFrame or CSV bytes); see :meth:`open_session` for many."""
        return self.open_session(task_id).infer(rows, timeout=timeout)

    def outputs(self, task_id: str) -> list[dict[str, Any]]:
        """The task's outputs: slot, ciphertext hash, recipients or joint owners, dataset id."""
        result: list[dict[str, Any]] = self._call("GET", f"/v1/tasks/{task_id}/outputs")
        return result

    def output_table(self, task_id: str) -> list[dict[str, Any]]:
        """The task's outputs for a table: slot, recipients, joint, owners, dataset id(s)."""
        from teeflow.client._outputs import output_rows

        return output_rows(self, task_id)

    def keep_output(
        self,
        task_id: str,
        slot: str,
        *,
        name: str | None = None,
        kind: str = "model",
        description: str = "",
    ) -> dict[str, Any]:
        """Register output ``slot`` (addressed to this member) as a dataset it owns, usable in
        later tasks without uploading it again; see client/_outputs.py."""
        from teeflow.client._outputs import keep_output

        return keep_output(self, task_id, slot, name=name, kind=kind, description=description)

    def receipt(self, task_id: str) -> dict[str, Any]:
        """The enclave-signed receipt, verified against the enclave key in the contract.

        Raises ClientError unless this member approved that very contract, or (not having
        approved this task) attested that enclave key under its own policy (client/_trust.py).
        """
        return self._verified_receipt(self.task(task_id))

    def _verified_receipt(self, task: Mapping[str, Any]) -> dict[str, Any]:
        contract = task["contract"]
        if contract.get("task_id") != task["id"]:  # another task's contract, receipt, output
            raise ClientError(
                f"the control plane answered for task {task['id']} with another task's "
                "contract; do not trust its receipt or outputs"
            )
        check_trusted_contract(self.home, str(task["id"]), contract_hash(contract), contract)
        receipt = task.get("receipt") or self._call("GET", f"/v1/tasks/{task['id']}/receipt")
        enclave_key = VerifyKey.from_b64(contract["executor"]["public_keys"]["ed25519"])
        try:
            body = dict(verify_receipt(receipt, enclave_key))
        except IntegrityError as exc:
            raise ClientError(f"receipt does not verify: {exc}") from exc
        if body.get("contract_hash") != contract_hash(task["contract"]):
            raise ClientError("receipt is for another contract")
        return {"body": body, "signature": receipt["signature"]}

    def output(self, task_id: str, slot: str, destination: Path | None = None) -> bytes | Path:
        """Download, check against the receipt, and decrypt an output addressed to this member
        (written to ``destination`` when given). Raises ApiError (403) for an output not
        addressed to this member and for a joint output; see client/_outputs.py."""
        from teeflow.client._outputs import download_output

        return download_output(self, task_id, slot, destination)

    def audit(self, *, after: int = 0) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            page = self._call("GET", "/v1/audit", params={"after": after, "limit": 1000})
            events.extend(page)
            if len(page) < 1000:
                return events
            after = page[-1]["seq"]

    def _me(self) -> str:
        if not self.username:
            raise ClientError("sign in first: `teeflow account login`")
        return self.username
