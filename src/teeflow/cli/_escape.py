"""Make a string from someone else safe to print on a member's terminal.

Everything the CLI prints that came from another member or from the control plane (task
descriptions, argument keys and values, dataset and function names, failure and rejection
reasons, progress values, function source) goes through :func:`safe` first. Such a string must
not be able to:

- forge a line of the CLI's own output ("X: readable by bank", "review: no warnings"): line
  breaks of every kind become visible escapes (``\\n``, ``\\u2028``), so a value stays on its line;
- drive the terminal: C0 and C1 control characters, DEL and the ANSI escape (ESC, CSI) become
  ``\\x1b``-style escapes, so no sequence clears the screen, moves the cursor, sets the title or
  hides later lines;
- reorder what is shown: bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069) and
  other invisible format characters are escaped too;
- style itself: Rich markup (``[bold red]``) is escaped with :func:`rich.markup.escape`, for
  callers that print through a Rich console with markup on (:func:`safe_markup`).

Printable text, including non-ASCII letters, is kept as it is.
"""

from __future__ import annotations

import unicodedata

from rich.markup import escape as escape_markup

__all__ = ["safe", "safe_markup"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escaped(char: str) -> str:
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _unsafe(char: str) -> bool:
    # Cc: C0, DEL and C1 controls (ESC, CSI 0x9b, ...); Cf: format characters such as the
    # bidirectional overrides; Zl/Zp: line and paragraph separators; Cs: lone surrogates.
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def safe(value: object) -> str:
    """``str(value)`` with every line break, control, format and unassigned character written
    as a visible backslash escape, and backslashes doubled (so an escape cannot be faked).

    The result is one line of printable text; for plain (non-markup) output.
    """
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_NAMED.get(char) or (_escaped(char) if _unsafe(char) else char) for char in text)


def safe_markup(value: object) -> str:
    """:func:`safe`, then Rich markup escaped: for text printed with markup enabled."""
    return escape_markup(safe(value))
