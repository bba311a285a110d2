"""The one base class of every input error: what a user sent is wrong, not the engine.

Scenario documents, kernel configurations, schedules and set-ups each have their own
error class (each names the offending field and what is allowed); all of them derive
from `InputError`. A client (the API, a socket, the CLI) answers an `InputError` as the
user's mistake and lets every other exception reach its logs as a server error: a
KeyError from inside a step is an engine bug, never "bad input".

`InputError` subclasses ValueError so that code written before it existed keeps working.
"""

from __future__ import annotations


class InputError(ValueError):
    """Input that does not follow the language, the API or the schedule rules."""
