"""docs/functions.md's built-in reference is generated from the declarations and kept current."""

from __future__ import annotations

from pathlib import Path

from teeflow.functions.docgen import BEGIN, END, render, update

DOCS = Path(__file__).parents[2] / "docs" / "functions.md"


def test_the_generated_reference_in_the_docs_is_current() -> None:
    text = DOCS.read_text(encoding="utf-8")

    generated = text[text.index(BEGIN) : text.index(END) + len(END)]

    assert generated == render(), "run `python -m teeflow.functions.docgen` and commit the docs"


def test_update_rewrites_only_the_generated_part(tmp_path: Path) -> None:
    page = tmp_path / "functions.md"
    page.write_text(f"# Functions\n\nprose\n\n{BEGIN}\nstale\n{END}\n\nmore prose\n")

    changed, again = update(page), update(page)

    text = page.read_text()
    assert (changed, again) == (True, False)
    assert text.startswith("# Functions\n\nprose\n\n") and text.endswith("\n\nmore prose\n")
    assert "### `tabular-train`" in text and "stale" not in text
