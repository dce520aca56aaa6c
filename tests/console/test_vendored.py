"""The vendored htmx is exactly the pinned release (npm htmx.org), and pages load only it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import teeflow.console

STATIC = Path(teeflow.console.__file__).parent / "static"
HTMX_VERSION = "2.0.11"
HTMX_SHA256 = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"


def test_htmx_is_the_pinned_release() -> None:
    data = (STATIC / "htmx.min.js").read_bytes()

    assert hashlib.sha256(data).hexdigest() == HTMX_SHA256
    assert f'version:"{HTMX_VERSION}"' in data.decode()


def test_templates_load_no_script_from_elsewhere() -> None:
    templates = Path(teeflow.console.__file__).parent / "templates"
    for page in templates.glob("*.html"):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page.name
        assert "<script>" not in text and "style=" not in text and "hx-on" not in text, page.name
