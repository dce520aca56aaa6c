"""Fixtures for the enclave tests: a trained model and signed session tasks (session_kit.py)."""

from __future__ import annotations

from typing import Any

import pytest
from session_kit import Served, ServeFactory, make_served, train_model


@pytest.fixture(scope="session")
def model_bytes() -> bytes:
    return train_model()


@pytest.fixture
def serve(model_bytes: bytes) -> ServeFactory:
    def make(**kwargs: Any) -> Served:
        return make_served(model_bytes, **kwargs)

    return make
