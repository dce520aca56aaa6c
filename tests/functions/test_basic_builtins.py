"""The platform built-ins (echo, psi, private-join-sum), run end to end through a Context."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from teeflow.functions.api import Context, FunctionError, InputData, OutputData
from teeflow.functions.registry import get_builtin


def run_builtin(
    name: str, inputs: dict[str, bytes], outputs: list[str], tmp_path: Path, **args: Any
) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    progress: list[dict[str, Any]] = []
    ctx = Context(
        inputs={slot: InputData(slot=slot, data=data, owner=slot) for slot, data in inputs.items()},
        args=args,
        outputs={slot: OutputData(slot=slot) for slot in outputs},
        scratch=tmp_path,
        _progress=lambda metrics: progress.append(dict(metrics)),
    )
    get_builtin(name).load()(ctx)
    return {slot: out.getvalue() for slot, out in ctx.outputs.items()}, progress


def test_catalogue_declares_the_basic_builtins() -> None:
    assert get_builtin("echo").outputs == ("*",)
    assert get_builtin("psi").outputs == ("flags:*", "intersection_size")
    assert get_builtin("private-join-sum").outputs == ("result",)
    assert len(get_builtin("psi").code_sha256) == 64


def test_echo_copies_each_slot_and_reports_progress(tmp_path: Path) -> None:
    inputs = {"a": b"\x00\x01binary", "b": "text é".encode()}

    outputs, progress = run_builtin("echo", inputs, ["a", "b"], tmp_path)

    assert outputs == inputs
    assert progress == [{"step": 1, "of": 1}]


def test_echo_without_a_matching_output_slot_fails(tmp_path: Path) -> None:
    with pytest.raises(FunctionError, match="add output slots b"):
        run_builtin("echo", {"a": b"1", "b": b"2"}, ["a"], tmp_path)


BANK = b"id,balance\nu3,10\nu1,20\nu9,30\nu2,40\n"
SHOP = b"customer,id\nx,u2\ny,u7\nz,u3\n"
TELCO = b"u3\nu2\nu8\n"


def test_psi_gives_each_party_only_its_own_flags(tmp_path: Path) -> None:
    inputs = {"bank": BANK, "shop": SHOP}
    outputs = ["flags:bank", "flags:shop", "intersection_size"]

    result, _ = run_builtin("psi", inputs, outputs, tmp_path)

    assert result["flags:bank"] == b"id,in_intersection\nu3,1\nu1,0\nu9,0\nu2,1\n"
    assert result["flags:shop"] == b"id,in_intersection\nu2,1\nu7,0\nu3,1\n"
    assert json.loads(result["intersection_size"]) == {"size": 2}
    # The bank never sees the shop's u7; the shop never sees the bank's u1 or u9.
    assert b"u7" not in result["flags:bank"]
    assert b"u1" not in result["flags:shop"] and b"u9" not in result["flags:shop"]


def test_psi_three_parties_with_a_plain_id_list_and_custom_column(tmp_path: Path) -> None:
    inputs = {
        "bank": BANK.replace(b"id,", b"uid,"),
        "telco": TELCO,
        "shop": SHOP.replace(b",id", b",uid"),
    }

    result, _ = run_builtin(
        "psi", inputs, ["flags:telco", "intersection_size"], tmp_path, id_column="uid"
    )

    assert result["flags:telco"] == b"id,in_intersection\nu3,1\nu2,1\nu8,0\n"
    assert json.loads(result["intersection_size"]) == {"size": 2}


def test_psi_rejects_a_table_without_the_id_column(tmp_path: Path) -> None:
    with pytest.raises(FunctionError, match="no column 'id'"):
        run_builtin("psi", {"a": b"name,secret\nx,1\n", "b": TELCO}, ["flags:a"], tmp_path)


def test_psi_rejects_an_output_slot_for_no_input(tmp_path: Path) -> None:
    with pytest.raises(FunctionError, match="matches no input"):
        run_builtin("psi", {"a": TELCO, "b": TELCO}, ["flags:c"], tmp_path)


def test_join_sum_two_parties(tmp_path: Path) -> None:
    inputs = {
        "a": b"id,amount\n10,1.5\n9,2\n3,4\n",
        "b": b"amount,id,note\n0.25,9,x\n1,10,y\n7,5,z\n",
    }

    result, progress = run_builtin("private-join-sum", inputs, ["result"], tmp_path)

    assert result["result"] == b"id,amount\n9,2.25\n10,2.5\n"
    assert progress == [{"step": 1, "of": 1}]


def test_join_sum_three_parties_keeps_only_ids_common_to_all(tmp_path: Path) -> None:
    inputs = {
        "a": b"id,amount\nk1,1\nk2,2\nk3,3\nk2,0.5\n",
        "b": b"id,amount\nk2,10\nk3,10\nk4,10\n",
        "c": b"id,amount\nk3,100\nk2,-100\n",
    }

    result, _ = run_builtin("private-join-sum", inputs, ["result"], tmp_path)

    assert result["result"] == b"id,amount\nk2,-87.5\nk3,113\n"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            b"id,amount\nk1,1\nk2,SECRET-VALUE\n",
            "input 'b', line 3: the 'amount' value is not a number",
        ),
        (b"id,amount\nk1,1\nk2,nan\n", "input 'b', line 3: the 'amount' value is not a number"),
        (b"id,amount\nk1,1,SECRET-VALUE\n", "input 'b', line 2: expected 2 fields, found 3"),
        (
            b"id,SECRET-VALUE\nk1,1\n",
            "input 'b': the header must name the columns 'id' and 'amount'",
        ),
        (b"id,amount\n,SECRET-VALUE\n", "input 'b', line 2: the 'id' value is empty"),
    ],
)
def test_join_sum_bad_input_names_slot_and_line_but_not_values(
    tmp_path: Path, table: bytes, message: str
) -> None:
    inputs = {"a": b"id,amount\nk1,1\n", "b": table}

    with pytest.raises(FunctionError) as caught:
        run_builtin("private-join-sum", inputs, ["result"], tmp_path)

    assert str(caught.value) == message
    assert "SECRET" not in str(caught.value)


def test_join_sum_rejects_non_utf8_input(tmp_path: Path) -> None:
    with pytest.raises(FunctionError, match="input 'a' is not UTF-8 text"):
        run_builtin(
            "private-join-sum", {"a": b"\xff\xfe", "b": b"id,amount\n"}, ["result"], tmp_path
        )
