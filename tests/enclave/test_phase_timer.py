"""The enclave's phase timer: wall and thread CPU time per phase, nested phases counted once."""

from __future__ import annotations

import time

from teeflow.enclave.timing import PhaseTimer


def _burn(cpu_seconds: float) -> None:
    """Spend ``cpu_seconds`` of this thread's CPU time (however fast the machine)."""
    until = time.thread_time() + cpu_seconds
    while time.thread_time() < until:
        pass


def test_cpu_of_an_inner_phase_counts_for_it_and_not_for_the_outer_one() -> None:
    timer = PhaseTimer()
    with timer.phase("function"):
        _burn(0.05)
        with timer.phase("crypto"):
            _burn(0.2)
        _burn(0.05)

    assert timer.totals.keys() == timer.cpu.keys() == {"function", "crypto"}
    assert timer.cpu["crypto"] >= 0.2
    assert 0.1 <= timer.cpu["function"] < 0.2  # its own 0.1 s, not the inner 0.2 s
    # A thread cannot spend more CPU than wall time in a phase.
    for phase, cpu in timer.cpu.items():
        assert cpu <= timer.totals[phase] + 0.01
