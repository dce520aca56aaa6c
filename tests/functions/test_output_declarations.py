"""The enclave's check of outputs against their declarations (functions/outputs.py)."""

from __future__ import annotations

import base64
import json
import zlib

import pytest

from teeflow.functions.outputs import OutputDeclaration, check_outputs, uploaded_declarations
from teeflow.functions.registry import builtin_catalogue

TABLE = b"id,amount\n" + b"".join(b"%d,%d\n" % (i, i * 7) for i in range(500))


def test_metrics_carrying_a_compressed_copy_is_refused() -> None:
    declarations = uploaded_declarations({"metrics": {"kind": "metrics", "max_bytes": 65536}})
    smuggled = {"auc": 0.9, "x": base64.b64encode(zlib.compress(TABLE)).decode()}
    as_numbers = {"auc": 0.9, "x": list(zlib.compress(TABLE))}

    reasons = [
        check_outputs({"metrics": json.dumps(m).encode()}, declarations, {"data": len(TABLE)})
        for m in (smuggled, as_numbers)
    ]

    assert reasons[0] is not None and "breaks its declaration" in reasons[0]
    assert reasons[1] is None  # numbers pass the kind check; the size bound is what limits them
    small = uploaded_declarations({"metrics": {"kind": "metrics", "max_bytes": 256}})
    assert check_outputs({"metrics": json.dumps(as_numbers).encode()}, small, {}) is not None


def test_reason_never_quotes_the_output() -> None:
    declarations = uploaded_declarations({"metrics": {"kind": "metrics", "max_bytes": 4096}})

    reason = check_outputs(
        {"metrics": b'{"secret-key-name-' + b"x" * 200 + b'": 1}'}, declarations, {}
    )

    assert reason is not None and "secret" not in reason


def test_undeclared_output_is_refused() -> None:
    reason = check_outputs({"other": b"{}"}, {"metrics": OutputDeclaration("metrics", 64)}, {})

    assert reason == ("output 'other' breaks its declaration: the function declares no such output")


def test_echo_bound_follows_its_input() -> None:
    echo = builtin_catalogue()["echo"].declarations

    assert check_outputs({"data": TABLE}, echo, {"data": len(TABLE)}) is None
    assert check_outputs({"data": TABLE + b"!"}, echo, {"data": len(TABLE)}) is not None


def test_every_builtin_declares_every_output() -> None:
    for builtin in builtin_catalogue().values():
        assert set(builtin.outputs) == set(builtin.declarations), builtin.name


@pytest.mark.parametrize(
    "spec", [{"kind": "metrics"}, {"kind": "csv"}, {"kind": "bytes", "max_bytes": 0}]
)
def test_bad_declarations_are_refused(spec: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="output 'x'"):
        uploaded_declarations({"x": spec})
