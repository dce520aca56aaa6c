"""The real server (uvicorn) takes the client's address from the TCP peer, never from an
``X-Forwarded-For`` header, unless the peer is in ``TEEFLOW_TRUSTED_PROXIES``.

uvicorn by default believes ``X-Forwarded-For`` from 127.0.0.1 and rewrites the client's address
before the app sees it, so any process on the control plane's host could give each guess a new
address and never meet the sign-in throttle for an account and an address. The hostile tests run
the app in process and cannot see this; here the control plane is the real server on loopback.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.launcher import LocalPlatform

from .conftest import PASSWORD, member_policy


def test_a_forged_forwarded_for_from_loopback_does_not_escape_the_sign_in_throttle(
    tmp_path: Path,
) -> None:
    with LocalPlatform(tmp_path / "platform", executors=0) as platform:
        keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
        bob = Client(
            platform.url,
            keys=keys,
            home=MemberHome(tmp_path / "bob"),
            policy=member_policy(platform),
        )
        bob.register("bob", PASSWORD)
        bob.close()
        with httpx.Client(base_url=platform.url) as guesser:
            statuses = [
                guesser.post(
                    "/v1/sessions",
                    json={"username": "bob", "password": f"guess-{n}"},
                    headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
                ).status_code
                for n in range(6)
            ]

    # Five failures for one account from one address, then that pair backs off (the default).
    assert statuses == [401] * 5 + [429], statuses
