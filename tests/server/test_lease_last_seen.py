"""A lease request records its executor as seen at most once a second, however often its
long-poll wakes or however many leases one batch takes (routes/executors.py ``LastSeen``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

from teeflow.server.app import Platform
from teeflow.server.routes.executors import LastSeen
from teeflow.server.store import ExecutorRecord

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


class _Store:
    def __init__(self) -> None:
        self.touched: list[tuple[str, datetime]] = []

    def touch_executor(self, executor_id: str, now: datetime) -> None:
        self.touched.append((executor_id, now))


def test_a_request_touches_its_executor_at_most_once_a_second() -> None:
    store = _Store()
    platform = cast(Platform, SimpleNamespace(store=store))
    executor = ExecutorRecord(
        executor_id="x", tee="sim", measurement="m", evidence={}, public_keys={},
        token_hash="h", registered_at=T0, last_seen_at=T0,
    )  # fmt: skip
    seen = LastSeen(executor)

    for ms in (0, 500, 999, 1000, 1001, 1999, 2000, 2500):
        seen.touch(platform, T0 + timedelta(milliseconds=ms))

    at: list[Any] = [now for _, now in store.touched]
    assert at == [T0 + timedelta(milliseconds=1000), T0 + timedelta(milliseconds=2000)]
    assert {executor_id for executor_id, _ in store.touched} == {"x"}
