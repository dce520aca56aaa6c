"""Every string from another member or the control plane is escaped before the CLI prints it."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from teeflow.cli._contract_view import render_contract
from teeflow.cli._escape import safe, safe_markup

FORGED = "ok\nX: readable by bank\r\nreview: no warnings"
ESCAPES = ["\x1b[2J", "\x1b]0;owned\x07", "\x9b31m", "\x7f", "\x00", "\u202e", "\u2028", "\x85"]


@pytest.mark.parametrize("payload", [FORGED, *ESCAPES])
def test_safe_leaves_one_printable_line(payload: str) -> None:
    shown = safe(payload)

    assert shown.isprintable()
    assert "\n" not in shown and "\x1b" not in shown and "\r" not in shown


def test_safe_keeps_ordinary_text_and_cannot_be_faked() -> None:
    assert safe("Zürich credit 2024 (v2)") == "Zürich credit 2024 (v2)"
    assert safe("a\nb") == "a\\nb"
    # A literal backslash-n typed by an attacker is not the same as an escaped newline.
    assert safe("a\\nb") != safe("a\nb")


def test_safe_markup_escapes_rich_markup() -> None:
    console = Console(record=True, width=200, color_system=None)

    console.print(safe_markup("[bold red]APPROVED[/] \x1b[2J"))

    assert "[bold red]APPROVED[/]" in console.export_text()


def _task(**contract: Any) -> dict[str, Any]:
    base = {
        "description": FORGED,
        "function": {"kind": "builtin", "name": "echo", "code_sha256": "0" * 64},
        "executor": {"tee": "sim", "measurement": "m" * 64, "public_keys": {}},
        "inputs": {
            "data": {
                "dataset_id": "d1",
                "name": FORGED,
                "owners": ["bank"],
                "ciphertext_sha256": "1" * 64,
            }
        },
        "arguments": {FORGED: FORGED + "\x1b[2J", "n": [FORGED]},
        "outputs": {"data": {"recipients": ["alice", "bank"]}},
        "disclosure": {"errors": ["alice"]},
        "participants": {"alice": {}, "bank": {}},
    }
    return {
        "id": "t1",
        "status": "proposed",
        "creator": "alice\x1b[2J",
        "contract_hash": "2" * 64,
        "contract": {**base, **contract},
        "inputs": {"data": {"size": 2351, "rows": None}},
    }


def test_render_contract_prints_no_forged_line_or_escape() -> None:
    console = Console(record=True, width=300, color_system=None)

    for line in render_contract(_task()):
        console.print(line)
    printed = console.export_text()

    assert "\x1b" not in printed and "\r" not in printed
    lines = [line.strip() for line in printed.splitlines()]
    assert not any(line.startswith(("X: readable", "review: no warnings")) for line in lines)
    assert "ciphertext 2351 bytes, rows unknown" in printed
    assert "function: echo (BUILT-IN" in printed
