"""Shared fixtures for the whole test suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"


@pytest.fixture
def teeflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated member home, so no test touches ~/.teeflow."""
    home = tmp_path / "home"
    monkeypatch.setenv("TEEFLOW_HOME", str(home))
    return home
