"""Per-member quotas, so that no member can exhaust the platform or bury another member's task
list (issue 17). Every refusal is a 4xx that says the quota and how to get under it.

- storage: ciphertext bytes of a member's datasets (``max_storage_bytes``), checked before and
  while an upload streams; ``teeflow dataset delete`` frees space;
- open tasks: tasks a member proposed that are not yet finished (``max_open_tasks``);
- proposals naming a member: open proposals (state ``proposed``) from one member that name a
  given other member (``max_open_proposals_per_member``), so nobody floods another's list.
"""

from __future__ import annotations

from collections.abc import Iterable

from teeflow.server.app import Platform
from teeflow.server.errors import ApiError

__all__ = ["OPEN_TASK_STATES", "check_task_quotas", "storage_left"]

OPEN_TASK_STATES = frozenset({"proposed", "approved", "queued", "running"})


def storage_left(platform: Platform, owner: str) -> int:
    """Bytes ``owner`` may still upload; ApiError 413 when nothing is left."""
    quota = platform.settings.max_storage_bytes
    left = quota - platform.store.storage_used(owner)
    if left <= 0:
        raise storage_quota_error(quota)
    return left


def storage_quota_error(quota: int) -> ApiError:
    return ApiError(
        413,
        "storage_quota_exceeded",
        f"this upload would take your stored ciphertext over your quota of {quota} bytes; "
        "delete datasets you no longer need (`teeflow dataset delete ID`) and upload again",
    )


def check_task_quotas(platform: Platform, *, creator: str, participants: Iterable[str]) -> None:
    """ApiError 429 when ``creator`` has too many open tasks, or too many open proposals that
    name one of ``participants``."""
    settings, store = platform.settings, platform.store
    open_tasks = store.count_tasks(creator=creator, statuses=OPEN_TASK_STATES)
    if open_tasks >= settings.max_open_tasks:
        raise ApiError(
            429,
            "task_quota_exceeded",
            f"you have {open_tasks} unfinished tasks, your quota is {settings.max_open_tasks}; "
            "cancel tasks you no longer need (`teeflow task cancel ID`) or wait for some to end",
        )
    for other in sorted(set(participants) - {creator}):
        pending = store.count_tasks(
            creator=creator, statuses=frozenset({"proposed"}), participant=other
        )
        if pending >= settings.max_open_proposals_per_member:
            raise ApiError(
                429,
                "proposal_quota_exceeded",
                f"you already have {pending} proposals waiting for {other!r}, at most "
                f"{settings.max_open_proposals_per_member} may wait at once; cancel some "
                "(`teeflow task cancel ID`) or wait until they are approved or rejected",
            )
