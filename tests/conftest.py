"""Fixtures shared by every test package: the catalog, loaded once."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

import engine


@pytest.fixture(scope="session")
def catalog() -> Mapping[str, engine.Scenario]:
    return engine.load_catalog()
