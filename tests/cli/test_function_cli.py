"""``teeflow function upload --output SLOT:KIND[:MAX_BYTES]``: declarations are checked here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teeflow.cli.function import _declarations
from teeflow.cli.main import app


def test_declarations_parse() -> None:
    assert _declarations(["metrics:metrics:4096", "out:bytes"]) == {
        "metrics": {"kind": "metrics", "max_bytes": 4096},
        "out": {"kind": "bytes", "max_bytes": None},
    }


@pytest.mark.parametrize("bad", ["metrics", "metrics:csv", "metrics:metrics:lots", ":table"])
def test_bad_declaration_fails_before_anything_is_uploaded(
    bad: str, tmp_path: Path, teeflow_home: Path
) -> None:
    source = tmp_path / "f.py"
    source.write_text("def run(ctx):\n    pass\n")

    result = CliRunner().invoke(
        app, ["function", "upload", str(source), "--name", "f", "--output", bad]
    )

    assert result.exit_code == 1
    assert result.stderr.startswith("error: --output expects SLOT:KIND[:MAX_BYTES]")


def test_function_show_prints_a_built_in_s_declaration(teeflow_home: Path) -> None:
    result = CliRunner().invoke(app, ["function", "show", "private-join-sum"])

    assert result.exit_code == 0, result.output
    assert "| `amount_column` | str | `'amount'` | name of the amount column |" in result.stdout
    assert "needs the amount column (named by `amount_column`, default `amount`)" in result.stdout


def test_function_show_json_and_an_unknown_name(teeflow_home: Path) -> None:
    shown = CliRunner().invoke(app, ["function", "show", "tabular-train", "--json"])
    unknown = CliRunner().invoke(app, ["function", "show", "tabular-trian"])

    label = next(a for a in json.loads(shown.stdout)["arguments"] if a["name"] == "label_column")
    assert label["required"] is True and label["type"] == "str"
    assert unknown.exit_code == 1
    assert "no built-in function named 'tabular-trian'" in unknown.stderr
