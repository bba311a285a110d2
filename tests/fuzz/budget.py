"""The fuzz suite's budget: small and deterministic by default, larger on request.

`PAGERACE_FUZZ_EXAMPLES=2000 pytest tests/fuzz` runs a long, randomised hunt (every run new
inputs); the default is a fixed set of examples that keeps tests/fuzz well under a minute.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings

BUDGET = os.environ.get("PAGERACE_FUZZ_EXAMPLES")


def budget(default: int) -> Any:
    """Hypothesis settings for `default` examples (or PAGERACE_FUZZ_EXAMPLES, randomised)."""
    return settings(
        max_examples=int(BUDGET) if BUDGET else default,
        deadline=None,
        derandomize=not BUDGET,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
