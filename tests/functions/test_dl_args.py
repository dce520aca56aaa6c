"""A built-in reads its arguments' names, defaults and bounds from its declaration
(functions/dl/args.py over functions/builtins/signatures.py): there is no second list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from teeflow.functions.api import Context, FunctionError
from teeflow.functions.builtins import signatures
from teeflow.functions.dl.args import (
    check_known,
    declared_choice,
    declared_float,
    declared_int,
    declared_int_list,
)
from teeflow.functions.dl.networks import IMAGE_MODELS, TABULAR_MODELS
from teeflow.functions.dl.tables import PARTITIONS

TRAIN = signatures.TABULAR_TRAIN


def _ctx(args: dict[str, Any]) -> Context:
    return Context(inputs={}, args=args, outputs={}, scratch=Path("."))


def test_an_undeclared_argument_is_refused_and_the_declared_ones_are_named() -> None:
    with pytest.raises(FunctionError, match="unknown argument") as refused:
        check_known(_ctx({"epochs": 3, "epoch": 3}), TRAIN)

    assert str(refused.value).startswith("unknown argument(s) epoch;")
    assert "label_column" in str(refused.value)
    check_known(_ctx({"epochs": 3, "memory_bytes": 1 << 20}), TRAIN)  # platform argument


def test_defaults_and_bounds_come_from_the_declaration() -> None:
    empty = _ctx({})

    assert declared_int(empty, TRAIN, "epochs") == 20
    assert declared_float(empty, TRAIN, "test_fraction") == 0.2
    assert declared_float(empty, TRAIN, "learning_rate", default=0.1) == 0.1
    assert declared_choice(empty, TRAIN, "model") == "logistic"
    assert declared_int_list(empty, TRAIN, "hidden") == [32]
    assert declared_int(empty, signatures.IMAGE_TRAIN, "epochs") == 5
    with pytest.raises(FunctionError, match="between 1 and 10000"):
        declared_int(_ctx({"epochs": 10001}), TRAIN, "epochs")
    with pytest.raises(FunctionError, match="one of gbdt, logistic, mlp"):
        declared_choice(_ctx({"model": "svm"}), TRAIN, "model")


def test_an_argument_a_built_in_does_not_declare_cannot_be_read() -> None:
    with pytest.raises(LookupError, match="not declared"):
        declared_int(_ctx({}), TRAIN, "num_layers")


def test_declared_choices_are_what_the_enclave_code_implements() -> None:
    image_models = signatures.IMAGE_TRAIN.argument("model")
    tabular_models = TRAIN.argument("model")
    partition = TRAIN.argument("partition")

    assert image_models is not None and image_models.choices == IMAGE_MODELS
    assert tabular_models is not None and tabular_models.choices == (*TABULAR_MODELS, "gbdt")
    assert partition is not None and partition.choices == PARTITIONS
