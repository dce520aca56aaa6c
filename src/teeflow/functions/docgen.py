"""Generate the built-in reference in docs/functions.md from the declarations.

``python -m teeflow.functions.docgen [docs/functions.md]`` rewrites the part of the file between
the two markers below; ``render()`` returns that part (a test compares it with the file). Pure
text from functions/declarations.py, so the docs cannot drift from what is checked.
"""

from __future__ import annotations

import sys
from pathlib import Path

from teeflow.functions.declarations import column_text
from teeflow.functions.registry import Builtin, builtin_catalogue

__all__ = ["BEGIN", "END", "render", "render_builtin", "update"]

BEGIN = "<!-- BEGIN GENERATED: python -m teeflow.functions.docgen -->"
END = "<!-- END GENERATED -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_builtin(builtin: Builtin) -> str:
    """One built-in's section: summary, input slots, arguments table, outputs."""
    lines = [f"### `{builtin.name}`", "", builtin.summary, "", "Inputs:", ""]
    for slot in builtin.signature.inputs:
        others = len(builtin.signature.inputs) > 1
        name = (
            f"`{slot.name}`"
            if slot.name != "*"
            else ("every other slot" if others else "each input")
        )
        lines.append(f"- {name}: {slot.kind} ({', '.join(slot.formats)}): {slot.meaning}")
        lines += [f"  - needs {column_text(column)}" for column in slot.columns]
    if not builtin.signature.inputs:
        lines.append(f"- {builtin.inputs}")
    lines += ["", "Arguments:", ""]
    if builtin.signature.arguments:
        lines += ["| name | type | default | meaning |", "|---|---|---|---|"]
        for arg in builtin.signature.arguments:
            default = (
                "required"
                if arg.required
                else ("" if arg.default is None else f"`{arg.default!r}`")
            )
            cells = [f"`{arg.name}`", arg.type_text(), default, arg.meaning]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    else:
        lines.append("none")
    lines += [f"- {rule}" for rule in builtin.signature.rules]
    lines += ["", f"Outputs: {', '.join(f'`{slot}`' for slot in builtin.outputs)}", ""]
    return "\n".join(lines)


def render() -> str:
    """The generated section, markers included."""
    body = [render_builtin(b) for _, b in sorted(builtin_catalogue().items())]
    note = (
        "Every built-in also accepts `memory_bytes` (int: enclave memory the task may use). "
        "`teeflow function show NAME` prints the same."
    )
    return "\n".join([BEGIN, "", note, "", *body, END])


def update(path: Path) -> bool:
    """Rewrite the generated section of ``path``; True when it changed."""
    text = path.read_text(encoding="utf-8")
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + render() + tail
    else:
        new = text.rstrip("\n") + "\n\n## Built-in reference\n\n" + render() + "\n"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/functions.md")
    print(f"{target}: {'updated' if update(target) else 'up to date'}")
