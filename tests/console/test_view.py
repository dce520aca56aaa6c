"""Who may do what on the console's pages, from a task document alone."""

from __future__ import annotations

from typing import Any

from teeflow.console._view import my_outputs, output_kind, task_actions, todo_groups


def _task(
    status: str,
    *,
    pending: list[str],
    creator: str = "alice",
    approvals: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": "t1",
        "status": status,
        "creator": creator,
        "pending": pending,
        "approvals": approvals or {},
        "contract": {
            "function": {"name": "tabular-train", "kind": "builtin"},
            "outputs": {
                "metrics": {"recipients": ["alice", "bank"]},
                "model": {"recipients": ["alice"]},
                "joint": {"joint_owners": ["alice", "bank"]},
            },
        },
    }


def test_actions_follow_role_and_state() -> None:
    proposed = _task("proposed", pending=["bank"])
    approved = _task("approved", pending=[])

    assert task_actions(proposed, "bank") == ["approve", "reject"]
    assert task_actions(proposed, "alice") == ["cancel"]
    assert task_actions(approved, "alice") == ["run", "cancel"]
    assert task_actions(approved, "bank") == []
    assert task_actions(_task("succeeded", pending=[]), "alice") == []


def test_a_participant_who_approved_may_withdraw_until_the_task_ends() -> None:
    both = {"alice": "approve", "bank": "approve"}
    queued = _task("queued", pending=[], approvals=both)

    assert task_actions(queued, "bank") == ["withdraw"]
    assert task_actions(queued, "alice") == ["cancel", "withdraw"]
    assert task_actions(
        _task("proposed", pending=["bank"], approvals={"alice": "approve"}), "bank"
    ) == [
        "approve",
        "reject",
    ]
    assert task_actions({**queued, "withdrawn": ["bank"]}, "bank") == []
    assert task_actions(_task("succeeded", pending=[], approvals=both), "bank") == []


def test_only_named_recipients_get_outputs_and_joint_ones_go_to_nobody() -> None:
    task = _task("succeeded", pending=[])

    assert my_outputs(task, "alice") == ["metrics", "model"]
    assert my_outputs(task, "bank") == ["metrics"]
    assert my_outputs(task, "eve") == []


def test_todo_groups_and_new_outputs() -> None:
    waiting, done = (
        _task("proposed", pending=["bank"]),
        {**_task("succeeded", pending=[]), "id": "t2"},
    )

    groups = todo_groups([waiting, done], "bank", opened={("t2", "metrics")})

    assert [t["id"] for t in groups["approve"]] == ["t1"]
    assert [(o["id"], o["slot"], o["new"]) for o in groups["outputs"]] == [("t2", "metrics", False)]


def test_output_kind_from_the_builtin_catalogue_or_the_contract() -> None:
    task = _task("succeeded", pending=[])
    catalogue = [
        {
            "kind": "builtin",
            "name": "tabular-train",
            "output_declarations": {"metrics": "metrics, at most 65536 bytes"},
        }
    ]
    uploaded = {
        **task,
        "contract": {
            **task["contract"],
            "function": {
                "name": "f",
                "kind": "uploaded",
                "outputs": {"metrics": {"kind": "table"}},
            },
        },
    }

    assert output_kind(task, "metrics", catalogue) == "metrics"
    assert output_kind(task, "model", catalogue) is None
    assert output_kind(uploaded, "metrics", catalogue) == "table"
