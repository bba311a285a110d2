"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (in process, no server).

Every operation, valid and invalid inputs: never a 5xx, every status code documented, and
bodies that match the documented response models. The budget is small and fixed so the whole
fuzz suite stays well under a minute on two cores; explorations run with low state and time
limits for the same reason (the bounds themselves are tested in tests/app/test_bounds.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import engine
from app.config import Settings
from app.main import create_app
from tests.fuzz.budget import budget

FUZZ_SETTINGS = replace(Settings(), max_states=2_000, explore_time_limit_s=0.5)
app = create_app(engine.load_catalog(), FUZZ_SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@budget(60)
def test_api_never_fails_and_matches_its_schema(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate(checks=CHECKS)
