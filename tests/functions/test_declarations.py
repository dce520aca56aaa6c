"""Each rule of a built-in's typed declaration (functions/declarations.py), and that the
declarations agree with what the built-ins read."""

from __future__ import annotations

from typing import Any

import pytest

from teeflow.functions.builtins import signatures
from teeflow.functions.declarations import Argument, ArgumentError, Column, InputSlot, Signature
from teeflow.functions.registry import builtin_catalogue

EPOCHS = Argument("epochs", "int", "training epochs", default=5, low=1, high=1000)
RATE = Argument("learning_rate", "float", "Adam learning rate", low=1e-7, high=10)
MODEL = Argument("model", "enum", "network", default="cnn", choices=("cnn", "resnet18"))


def _problems(signature: Signature, args: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(ArgumentError) as refused:
        signature.check_arguments(args, **kwargs)
    return refused.value.problems


@pytest.mark.parametrize(
    ("argument", "good", "bad"),
    [
        (EPOCHS, [1, 1000, "7"], [0, 1001, 2.5, "five", True, None]),
        (RATE, [1e-7, 0.5, 10, "0.01"], [0, 11, "fast", float("nan"), float("inf"), False]),
        (MODEL, ["cnn", "resnet18"], ["svm", "CNN", 1]),
        (Argument("flag", "bool", "x"), [True, False], ["true", 1, None]),
        (Argument("name", "str", "x"), ["id"], ["", 3, ["id"]]),
        (Argument("label", "scalar", "x"), ["yes", 1, 0.5], [True, None, [1]]),
        (
            Argument("hidden", "int_list", "x", low=1, high=4096),
            [[32], [64, 32], "64,32", 8],
            [[], [0], [5000], "a,b", [1.5]],
        ),
        (
            Argument("mean", "float_list", "x", max_items=4),
            [[0.5], 0.5, [0.1, 0.2, 0.3]],
            [[], [1, 2, 3, 4, 5], ["0.5"], [True]],
        ),
        (
            Argument("augment", "enum_list", "x", choices=("hflip", "vflip")),
            [["hflip"], "vflip", []],
            [["rotate"], 3],
        ),
        (Argument("requesters", "str_list", "x"), [["alice"]], [[], "alice", [""], [1]]),
        (
            Argument("size", "size", "x", low=4, high=1024),
            [28, [28, 32]],
            [3, [28], [28, 2000], "28", True],
        ),
        (
            Argument("dp", "object", "x", keys=(("epsilon", 1e-3, 100.0), ("delta", 0.0, 0.1))),
            [{"epsilon": 1, "delta": 1e-5}, {}],
            [{"epsilon": 1000}, {"eps": 1}, {"delta": "0"}, 1],
        ),
    ],
)
def test_each_type_accepts_its_values_and_refuses_the_others(
    argument: Argument, good: list[Any], bad: list[Any]
) -> None:
    assert [argument.problem(value) for value in good] == [None] * len(good)
    assert all(argument.problem(value) for value in bad)


def test_an_unknown_argument_suggests_the_closest_and_lists_the_accepted_ones() -> None:
    signature = Signature(arguments=(EPOCHS, MODEL))

    with pytest.raises(ArgumentError) as refused:
        signature.check_arguments({"epoch": 3})

    assert refused.value.problems == ["unknown argument `epoch`; did you mean `epochs`?"]
    assert str(refused.value).endswith(
        "Accepted arguments: epochs (int 1..1000, default 5); model (one of cnn, resnet18, "
        "default 'cnn')"
    )


def test_every_problem_is_reported_at_once_and_a_missing_required_one_too() -> None:
    signature = Signature(arguments=(EPOCHS, Argument("label_column", "str", "y", required=True)))

    problems = _problems(signature, {"epochs": 0, "zzz": 1})

    assert problems == [
        "argument `epochs` must be int 1..1000, got 0",
        "unknown argument `zzz`",
        "argument `label_column` is required",
    ]


def test_platform_arguments_are_accepted_by_every_built_in() -> None:
    Signature().check_arguments({"memory_bytes": 1 << 30})
    assert _problems(Signature(), {"memory_bytes": -1}) == [
        "argument `memory_bytes` must be int 1..1125899906842624, got -1"
    ]


def test_a_per_slot_mapping_must_name_the_task_s_slots() -> None:
    mapping = Argument("id_columns", "mapping", "x", extra_keys=("request",))
    signature = Signature(arguments=(mapping,))

    signature.check_arguments({"id_columns": {"bank": "cust", "request": "id"}}, slots=["bank"])
    problems = _problems(signature, {"id_columns": {"bureau": "cust"}}, slots=["bank"])

    assert problems == [
        "argument `id_columns` names input slot(s) bureau, which this task does not have; "
        "its slots are bank"
    ]
    assert _problems(signature, {"id_columns": {"bank": ""}}, slots=["bank"])


LABEL = Column("the label column", "label_column", when="pooled")
ID = Column("the id column", "id_column", per_slot="id_columns", when="named")
JOIN_ID = Column("the id column", "id_column", "id", per_slot="id_columns")
TABLES = Signature(inputs=(InputSlot("*", "table", ("csv",), "a table", columns=(LABEL, ID)),))


def _names(signature: Signature, slot: str, args: dict[str, Any], slots: list[str]) -> list[str]:
    return [name for name, _ in signature.required_columns(slot, args, table_slots=slots)]


def test_the_label_is_needed_in_a_single_table_and_in_pooled_rows_only() -> None:
    args = {"label_column": "y"}

    assert _names(TABLES, "a", args, ["a"]) == ["y"]
    assert _names(TABLES, "a", {**args, "partition": "rows"}, ["a", "b"]) == ["y"]
    assert _names(TABLES, "a", args, ["a", "b"]) == []  # joined: another party may hold it


def test_an_id_column_is_needed_where_an_argument_names_it() -> None:
    assert _names(TABLES, "a", {"label_column": "y"}, ["a", "b"]) == []
    assert _names(TABLES, "a", {"id_column": "pid"}, ["a", "b"]) == ["pid"]
    per_slot = {"id_column": "pid", "id_columns": {"b": "cust_no"}}
    assert _names(TABLES, "b", per_slot, ["a", "b"]) == ["cust_no"]
    assert _names(TABLES, "a", {**per_slot, "partition": "rows"}, ["a", "b"]) == []


def test_a_default_column_is_needed_unless_renamed() -> None:
    joined = Signature(inputs=(InputSlot("*", "table", ("csv",), "t", columns=(JOIN_ID,)),))

    assert _names(joined, "a", {}, ["a", "b"]) == ["id"]
    assert _names(joined, "a", {"id_column": "key"}, ["a", "b"]) == ["key"]
    assert _names(joined, "b", {"id_columns": {"b": "cust"}}, ["a", "b"]) == ["cust"]


def test_a_named_slot_wins_over_the_catch_all() -> None:
    signature = signatures.TABULAR_PREDICT

    assert signature.slot("model") is not None and signature.slot("model").kind == "model"  # type: ignore[union-attr]
    assert signature.slot("bank") is not None and signature.slot("bank").kind == "table"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", sorted(builtin_catalogue()))
def test_each_declared_default_passes_its_own_check(name: str) -> None:
    for argument in builtin_catalogue()[name].signature.arguments:
        if argument.default is not None:
            assert argument.problem(argument.default) is None, argument.name


def test_the_declared_ranges_match_what_the_built_ins_enforce() -> None:
    train = builtin_catalogue()["tabular-train"].signature
    image = builtin_catalogue()["image-classify-train"].signature

    train.check_arguments({"label_column": "y", "epochs": 10000, "test_fraction": 0.05})
    assert _problems(train, {"label_column": "y", "epochs": 10001})
    image.check_arguments({"epochs": 1000, "test_fraction": 0.01, "image_size": [4, 1024]})
    assert _problems(image, {"epochs": 1001})
    assert _problems(image, {"image_size": 3})


def test_session_limits_take_numbers_only_and_decimals_may_be_null() -> None:
    serve = builtin_catalogue()["tabular-serve"].signature
    base = {"requesters": ["bank"]}

    serve.check_arguments({**base, "max_rows": 10, "decimals": None, "max_seconds": 60.5})
    problems = _problems(serve, {**base, "max_rows": "10"})

    assert problems == ["argument `max_rows` must be int 1..1000000000, got '10'"]
    assert _problems(serve, {"max_rows": 10}) == ["argument `requesters` is required"]
