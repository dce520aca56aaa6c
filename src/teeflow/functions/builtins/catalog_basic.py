"""Registers the platform built-ins: echo, psi, private-join-sum."""

from __future__ import annotations

from teeflow.functions.builtins import signatures as sig
from teeflow.functions.outputs import OutputDeclaration
from teeflow.functions.registry import Builtin, register

__all__: list[str] = []

register(
    Builtin(
        name="echo",
        summary="Copy every input to the output slot of the same name (a platform self-test).",
        module="teeflow.functions.builtins.echo",
        inputs="any number of inputs, of any format",
        outputs=("*",),
        declarations={"*": OutputDeclaration("bytes", 0, scale=1.0, of="slot")},
        min_inputs=1,
    )
)

register(
    Builtin(
        name="psi",
        summary=(
            "Private set intersection: each party learns which of its own ids every party holds."
        ),
        module="teeflow.functions.builtins.psi",
        inputs="two or more CSV tables with an id column, or plain lists of ids (one per line)",
        outputs=("flags:*", "intersection_size"),
        # A row "a\n" of input X becomes "a,0\n": at most twice X, plus the header.
        declarations={
            "flags:*": OutputDeclaration("table", 64, scale=2.0, of="slot"),
            "intersection_size": OutputDeclaration("metrics", 256),
        },
        signature=sig.PSI,
        min_inputs=2,
    )
)

register(
    Builtin(
        name="private-join-sum",
        summary="Sum the amounts of the ids that every party holds.",
        module="teeflow.functions.builtins.join_sum",
        inputs="two or more CSV tables with columns id and amount",
        outputs=("result",),
        # One row per common id, each no longer than that id's rows in the inputs together.
        declarations={"result": OutputDeclaration("table", 64, scale=1.0)},
        signature=sig.JOIN_SUM,
        min_inputs=2,
    )
)
