"""Sign-in throttling that no one can turn into a lockout of someone else (issue 17).

Failed sign-ins are counted three ways over ``login_window_seconds``, each with its own
threshold and exponential backoff measured from the latest failure it counts:

===================  ==================================  =========================================
counted by           threshold (setting)                 backoff after the threshold
===================  ==================================  =========================================
(account, source)    ``login_failures_allowed`` (5)      ``login_backoff_seconds`` (30) doubling,
                                                         at most ``login_backoff_max_seconds``
source, any account  ``login_source_failures_allowed``   the same
                     (20)
account, any source  ``login_account_failures_allowed``  1 s doubling, at most
                     (50)                                ``login_account_backoff_max_seconds`` (30)
===================  ==================================  =========================================

So a stranger guessing a member's password from one address throttles that address only; the
member signs in from anywhere else at once. Against many addresses at once the member is only
delayed, by at most ``login_account_backoff_max_seconds``; and a sign-in that proves possession
of the account's registered signing key (teeflow/signin.py; the client always sends one) skips
every backoff: a stranger holds no such key. The password is still checked. Tokens already issued
are never touched. Attempts refused for backoff do not count as failures, so hammering a throttled
account does not extend its backoff. The source is the TCP peer, or behind a reverse proxy listed
in ``trusted_proxies`` the address it forwards (:func:`client_address`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from teeflow.server.settings import Settings
from teeflow.server.store import Store

__all__ = ["Throttle", "client_address"]


def client_address(peer: str, forwarded_for: str | None, trusted_proxies: Iterable[str]) -> str:
    """The address a request came from: the TCP peer, or, when the peer is one of
    ``trusted_proxies``, the nearest ``X-Forwarded-For`` entry that is not a trusted proxy
    (entries further left were written by the client itself and prove nothing)."""
    trusted = set(trusted_proxies)
    if peer not in trusted or not forwarded_for:
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if hop and hop not in trusted:
            return hop[:64]
    return peer


@dataclass(frozen=True)
class Throttle:
    store: Store
    settings: Settings

    def retry_after(self, *, username: str, source: str, now: datetime) -> float:
        """Seconds until a sign-in for ``username`` from ``source`` may be tried (0: now)."""
        s = self.settings
        since = now - timedelta(seconds=s.login_window_seconds)
        checks = (
            (
                self.store.login_failures(since=since, username=username, source=source),
                s.login_failures_allowed,
                s.login_backoff_seconds,
                s.login_backoff_max_seconds,
            ),
            (
                self.store.login_failures(since=since, source=source),
                s.login_source_failures_allowed,
                s.login_backoff_seconds,
                s.login_backoff_max_seconds,
            ),
            (
                self.store.login_failures(since=since, username=username),
                s.login_account_failures_allowed,
                1.0,
                s.login_account_backoff_max_seconds,
            ),
        )
        wait = 0.0
        for (count, latest), allowed, base, cap in checks:
            if count < allowed or latest is None:
                continue
            delay = min(base * 2 ** min(count - allowed, 32), cap)
            wait = max(wait, (latest + timedelta(seconds=delay) - now).total_seconds())
        return wait

    def failed(self, *, username: str, source: str, now: datetime) -> None:
        self.store.record_login_failure(username=username, source=source, now=now)

    def succeeded(self, *, username: str, source: str) -> None:
        """Forget this source's failures for the account; other sources keep theirs."""
        self.store.clear_login_failures(username, source=source)
