"""The control plane's in-memory relay for inference sessions (server/relay.py)."""

from __future__ import annotations

import pytest

from teeflow.server.relay import (
    DuplicateRequest,
    PendingRequest,
    RelayedAnswer,
    RelayFull,
    SessionRelay,
)

ANSWER = RelayedAnswer(sealed="c2VhbGVk", signature="c2ln")


def _request(requester: str = "alice", request_id: str = "r1", size: int = 8) -> PendingRequest:
    return PendingRequest(requester, request_id, "A" * size, "S")


def test_a_request_travels_to_the_executor_and_its_answer_back_once() -> None:
    relay = SessionRelay()
    relay.submit("t", _request())

    taken = relay.take("t", 16, executor="x1")
    delivered = relay.answer("t", "alice", "r1", ANSWER, executor="x1")

    assert taken == [_request()] and delivered
    assert relay.collect("t", "alice", "r1") == ANSWER
    assert relay.collect("t", "alice", "r1") is None
    assert not relay.pending("t", "alice", "r1")


def test_requests_are_taken_oldest_first_up_to_the_limit() -> None:
    relay = SessionRelay()
    for index in range(3):
        relay.submit("t", _request(request_id=f"r{index}"))

    first = relay.take("t", 2, executor="x")
    rest = relay.take("t", 2, executor="x")

    assert [r.request_id for r in first] == ["r0", "r1"] and [r.request_id for r in rest] == ["r2"]
    assert relay.take("other-task", 2, executor="x") == []


def test_only_the_executor_that_took_a_request_can_answer_it() -> None:
    relay = SessionRelay()
    relay.submit("t", _request())
    relay.take("t", 1, executor="x1")

    assert not relay.answer("t", "alice", "r1", ANSWER, executor="x2")
    assert not relay.answer("t", "bob", "r1", ANSWER, executor="x1")  # not bob's request
    assert relay.collect("t", "alice", "r1") is None
    assert relay.answer("t", "alice", "r1", ANSWER, executor="x1")


def test_a_pending_request_id_cannot_be_queued_twice_but_another_requester_may_use_it() -> None:
    relay = SessionRelay()
    relay.submit("t", _request())

    with pytest.raises(DuplicateRequest):
        relay.submit("t", _request())
    relay.submit("t", _request(requester="bob"))

    assert len(relay.take("t", 16, executor="x")) == 2


def test_the_queue_and_the_memory_budget_are_bounded() -> None:
    by_count = SessionRelay(max_queued=2)
    by_bytes = SessionRelay(max_bytes=20)
    by_count.submit("t", _request(request_id="a"))
    by_count.submit("t", _request(request_id="b"))
    by_bytes.submit("t", _request(request_id="a", size=10))

    with pytest.raises(RelayFull):
        by_count.submit("t", _request(request_id="c"))
    with pytest.raises(RelayFull):
        by_bytes.submit("t", _request(request_id="b", size=10))
    by_bytes.take("t", 1, executor="x")  # taking frees the budget
    by_bytes.submit("t", _request(request_id="b", size=10))


def test_what_nobody_collects_expires() -> None:
    now = [0.0]
    relay = SessionRelay(answer_ttl=10.0, clock=lambda: now[0])
    relay.submit("t", _request(request_id="answered"))
    relay.take("t", 1, executor="x")
    relay.answer("t", "alice", "answered", ANSWER, executor="x")
    relay.submit("t", _request(request_id="never-taken"))

    now[0] = 11.0
    relay.submit("t", _request(request_id="late"))  # expiry runs on submit

    assert not relay.pending("t", "alice", "answered")
    assert not relay.pending("t", "alice", "never-taken")
    assert relay.pending("t", "alice", "late")


def test_closing_an_ended_session_drops_its_requests_but_keeps_given_answers() -> None:
    relay = SessionRelay(max_bytes=100)
    for request_id in ("answered", "taken", "queued"):
        relay.submit("t", _request(request_id=request_id, size=20))
    relay.take("t", 2, executor="x")
    relay.answer("t", "alice", "answered", ANSWER, executor="x")

    relay.close("t")

    assert relay.collect("t", "alice", "answered") == ANSWER
    assert not relay.pending("t", "alice", "taken")
    assert not relay.pending("t", "alice", "queued")
    for index in range(4):  # the dropped requests' budget is free again
        relay.submit("u", _request(request_id=f"r{index}", size=20))


def test_listeners_get_a_queued_request_and_its_answer_instead_of_collect() -> None:
    relay = SessionRelay()
    queued: list[str] = []
    answers: list[RelayedAnswer] = []
    relay.on_queued("t", lambda: queued.append("t"))

    listened = relay.submit("t", _request(), on_answer=answers.append)
    relay.take("t", 1, executor="x1")
    delivered = relay.answer("t", "alice", "r1", ANSWER, executor="x1")

    assert listened and queued == ["t"] and delivered and answers == [ANSWER]
    assert relay.collect("t", "alice", "r1") is None  # handed over, not kept
    assert not relay.pending("t", "alice", "r1")
    assert not relay.submit("other", _request())  # no listener for that session


def test_an_answer_listener_hears_only_the_executor_that_took_the_request() -> None:
    relay = SessionRelay()
    answers: list[RelayedAnswer] = []
    relay.submit("t", _request(), on_answer=answers.append)
    relay.take("t", 1, executor="x1")

    assert not relay.answer("t", "alice", "r1", ANSWER, executor="x2")
    assert not relay.answer("t", "bob", "r1", ANSWER, executor="x1")
    assert answers == []


def test_a_forgotten_listener_leaves_the_answer_to_collect() -> None:
    relay = SessionRelay()
    answers: list[RelayedAnswer] = []
    relay.submit("t", _request(), on_answer=answers.append)
    relay.take("t", 1, executor="x1")
    relay.forget("t", "alice", "r1")

    assert relay.answer("t", "alice", "r1", ANSWER, executor="x1")
    assert answers == [] and relay.collect("t", "alice", "r1") == ANSWER


def test_only_the_newest_queued_listener_is_called_and_an_old_one_cannot_remove_it() -> None:
    relay = SessionRelay()
    calls: list[str] = []

    def old() -> None:
        calls.append("old")

    def new() -> None:
        calls.append("new")

    relay.on_queued("t", old)
    relay.on_queued("t", new)
    relay.off_queued("t", old)  # the old channel closing after the new one opened
    relay.submit("t", _request("alice"))
    relay.off_queued("t", new)
    relay.submit("t", _request("bob"))

    assert calls == ["new"]


def test_closing_or_expiring_drops_the_listeners_of_requests_never_answered() -> None:
    now = [0.0]
    relay = SessionRelay(answer_ttl=10, clock=lambda: now[0])
    answers: list[RelayedAnswer] = []
    relay.submit("t", _request("alice"), on_answer=answers.append)
    relay.submit("t", _request("bob"), on_answer=answers.append)
    relay.take("t", 1, executor="x1")
    relay.close("t")
    now[0] = 11.0
    relay.submit("u", _request("carol"), on_answer=answers.append)
    relay.take("u", 1, executor="x1")
    now[0] = 22.0
    relay.submit("u", _request("dave"))  # expires carol's taken request

    assert not relay.answer("t", "alice", "r1", ANSWER, executor="x1")
    assert not relay.answer("u", "carol", "r1", ANSWER, executor="x1")
    assert answers == [] and relay._answer_listeners == {}
