"""The review names everyone who receives something computed from my input (issue 17, item 1)."""

from __future__ import annotations

from typing import Any

from teeflow.client._exposure import (
    audience,
    exposure_warnings,
    output_declaration_warnings,
    statistics_warnings,
)
from teeflow.client._review import _warnings


def _contract(outputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "function": {"kind": "builtin", "name": "echo", "code_sha256": "0" * 64},
        "inputs": {"data": {"owners": ["bank"]}, "probe": {"owners": ["alice"]}},
        "outputs": outputs,
        "arguments": {},
        "disclosure": {"errors": ["bank"]},
        **extra,
    }


def test_co_recipient_proposer_is_warned_about() -> None:
    contract = _contract({"data": {"recipients": ["alice", "bank"]}})

    warnings = exposure_warnings(contract, "bank")

    assert warnings == [
        "your input 'data' reaches alice through output 'data' (readable by alice, bank); "
        "it reveals your input byte for byte"
    ]


def test_only_me_means_no_warning() -> None:
    contract = _contract({"data": {"recipients": ["bank"]}})

    assert exposure_warnings(contract, "bank") == []


def test_every_channel_counts() -> None:
    contract = _contract(
        {"model": {"joint_owners": ["alice", "bank"]}},
        disclosure={"progress": ["carol"], "errors": ["bank"]},
        arguments={"requesters": ["dave"]},
    )

    channels = audience(contract, "bank")["data"]
    warnings = exposure_warnings(contract, "bank")

    assert channels == {
        "joint output 'model'": ["alice", "bank"],
        "progress messages": ["carol"],
        "error messages": ["bank"],
        "session answers": ["dave"],
    }
    assert [w.split(" through ")[0] for w in warnings] == [
        "your input 'data' reaches alice",
        "your input 'data' reaches carol",
        "your input 'data' reaches dave",
    ]


def test_psi_flags_of_another_party_warn_about_my_ids() -> None:
    contract = _contract(
        {"flags:probe": {"recipients": ["alice"]}},
        function={"kind": "builtin", "name": "psi", "code_sha256": "0" * 64},
    )

    (warning,) = exposure_warnings(contract, "bank")

    assert "reaches alice" in warning and "your ids" in warning


def test_unbounded_uploaded_outputs_are_named() -> None:
    function = {
        "kind": "uploaded",
        "name": "f",
        "owner": "mallory",
        "sealed": False,
        "code_sha256": "0" * 64,
        "outputs": {"metrics": {"kind": "metrics", "max_bytes": 4096}, "out": {"kind": "bytes"}},
    }
    contract = _contract(
        {"metrics": {"recipients": ["bank"]}, "out": {"recipients": ["bank"]}}, function=function
    )

    warnings = output_declaration_warnings(contract, "bank")

    assert warnings == [
        "output 'out' of the uploaded function is declared bytes with no size bound: "
        "it can hold a copy of your input"
    ]


def test_sealed_code_warning_is_kept() -> None:
    function = {"kind": "uploaded", "name": "f", "owner": "mallory", "sealed": True}
    contract = _contract({"out": {"recipients": ["bank"]}}, function=function)

    warnings = _warnings(contract, "bank", {"simulated": False})

    assert any("confidential to 'mallory'" in w for w in warnings)


def _training(model: str, **arguments: Any) -> dict[str, Any]:
    return {
        "function": {"kind": "builtin", "name": "tabular-train", "code_sha256": "0" * 64},
        "inputs": {
            "bank": {"owners": ["bank"], "dataset_id": "b1"},
            "bureau": {"owners": ["bureau"], "dataset_id": "u1"},
        },
        "outputs": {"model": {"recipients": ["bank"]}, "metrics": {"recipients": ["bureau"]}},
        "arguments": {"label_column": "label", "model": model, **arguments},
        "disclosure": {},
    }


BUREAU_COLUMNS = {"cust_id": "text", "debt": "number", "age": "number", "region": "text"}


def test_the_bureau_is_told_which_of_its_column_statistics_the_banks_model_carries() -> None:
    contract = _training("mlp", id_columns={"bureau": "cust_id", "bank": "customer_no"})

    warnings = statistics_warnings(contract, "bureau", {"u1": BUREAU_COLUMNS}.get)

    assert warnings == [
        "the model file delivered to bank (output 'model') carries means and standard "
        "deviations of your columns debt, age; the category values of your columns region"
    ]


def test_a_gbdt_model_also_carries_split_thresholds_and_the_id_column_is_no_feature() -> None:
    contract = _training("gbdt", id_column="cust_id")

    (warning,) = statistics_warnings(contract, "bureau", {"u1": BUREAU_COLUMNS}.get)

    assert warning.endswith("region; LightGBM split thresholds on them")
    assert "cust_id" not in warning


def test_unknown_columns_still_warn_and_the_recipient_itself_is_not_warned() -> None:
    contract = _training("logistic")

    (warning,) = statistics_warnings(contract, "bureau", lambda dataset_id: None)

    assert "feature columns of your input 'bureau'" in warning and "bank" in warning
    assert statistics_warnings(contract, "bank", {"b1": {"x": "number"}}.get) == []


def test_a_model_kept_jointly_or_by_its_owner_alone_warns_no_one() -> None:
    joint = _training("mlp")
    joint["outputs"]["model"] = {"joint_owners": ["bank", "bureau"]}
    mine = _training("mlp")
    mine["outputs"]["model"] = {"recipients": ["bureau"]}

    for contract in (joint, mine):
        assert statistics_warnings(contract, "bureau", {"u1": BUREAU_COLUMNS}.get) == []


def test_a_model_trained_to_predict_the_bureaus_column_names_that_column() -> None:
    contract = _training("mlp", id_column="cust_id")
    contract["arguments"]["label_column"] = "region"

    (warning,) = statistics_warnings(contract, "bureau", {"u1": BUREAU_COLUMNS}.get)
    (unknown,) = statistics_warnings(contract, "bureau", lambda dataset_id: None)

    assert warning.endswith(
        "of your columns debt, age; your column 'region' as the label it "
        "predicts, with its distinct values when it has 3 or more"
    )
    assert "label column 'region' if it is yours" in unknown


def test_a_label_alone_from_the_bureau_still_warns() -> None:
    contract = _training("logistic", id_column="cust_id")
    contract["arguments"]["label_column"] = "region"

    (warning,) = statistics_warnings(
        contract, "bureau", {"u1": {"cust_id": "text", "region": "text"}}.get
    )

    assert "your column 'region' as the label it predicts" in warning
