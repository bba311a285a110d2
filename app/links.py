"""Shareable links: the dashboard URL and custom scenarios packed into it.

A link is the product's unit of sharing (`/s/{id}?v=&t=&at=&d=`). Custom scenarios travel in
the `s=` parameter as zlib-compressed, base64url JSON, so sharing needs no server storage.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import engine


class LinkError(engine.InputError):
    """The `s=` parameter could not be turned back into a scenario document."""


class LinkTooLarge(LinkError):
    """The `s=` parameter inflates to more than the allowed document size, or holds a number
    with more digits than Python reads into an int."""


class LinkScenarioError(LinkError):
    """The `s=` parameter holds a document that is not a valid scenario: the link's fault."""

    def __init__(self, err: engine.ScenarioError) -> None:
        super().__init__(str(err))
        self.scenario_error = err


class NumberTooLong(engine.InputError):
    """A JSON integer longer than Python's int-string limit (4,300 digits by default): json
    refuses to read it, and we say where it is instead of failing with a 500."""

    def __init__(self, path: str, digits: int, limit: int) -> None:
        super().__init__(f"the number at {path} has too many digits ({digits}; at most {limit})")
        self.path = path


class _Huge(str):
    """Stands for an over-long integer while `loads_bounded` looks for where it is."""


def _huge_path(value: Any, path: str) -> tuple[str, _Huge] | None:
    if isinstance(value, _Huge):
        return path, value
    items: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        items = [(f"{path}.{key}" if path else str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(f"{path}[{index}]", item) for index, item in enumerate(value)]
    for where, item in items:
        found = _huge_path(item, where)
        if found is not None:
            return found
    return None


def loads_bounded(text: str | bytes) -> Any:
    """`json.loads`, except that an integer over Python's int-string limit raises
    `NumberTooLong` naming its path (e.g. `actors[0].ops[1].at`), rather than a bare
    ValueError. Only the failing case pays for the second, path-finding parse."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError as err:
        if "digits" not in str(err):
            raise
    limit = sys.get_int_max_str_digits()

    def parse_int(digits: str) -> int | _Huge:
        return _Huge(digits) if len(digits.lstrip("-")) > limit else int(digits)

    found = _huge_path(json.loads(text, parse_int=parse_int), "")
    if found is None:  # a key? keys are strings in JSON: cannot happen, but say something
        raise NumberTooLong("body", 0, limit)
    path, huge = found
    raise NumberTooLong(path or "body", len(huge.lstrip("-")), limit)


def encode_doc(doc: Mapping[str, Any]) -> str:
    """Pack a scenario document into a URL-safe string."""
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    packed = zlib.compress(raw, 9)
    return base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")


def unpack_json(text: str, max_bytes: int) -> Any:
    """The JSON value packed in an `s=` parameter; bounded so a tiny link cannot inflate
    into gigabytes."""
    try:
        packed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise LinkError("the s= parameter is not valid base64url") from err
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(packed, max_bytes)
    except zlib.error as err:
        raise LinkError("the s= parameter is not a compressed scenario") from err
    if inflater.unconsumed_tail:
        raise LinkTooLarge(f"the scenario in the link is larger than {max_bytes} bytes")
    try:
        return loads_bounded(raw)
    except NumberTooLong as err:
        raise LinkTooLarge(f"in the scenario in the link, {err}") from err
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise LinkError("the scenario in the link is not valid JSON") from err


def decode_doc(text: str, max_bytes: int) -> dict[str, Any]:
    """Unpack `encode_doc` output."""
    doc = unpack_json(text, max_bytes)
    if not isinstance(doc, dict):
        raise LinkError("the scenario in the link is not a JSON object")
    return doc


def parse_schedule(text: str | None) -> tuple[str, ...]:
    """`a,b,,c` -> ("a", "b", "c"): empty entries are dropped, names are trimmed."""
    if not text:
        return ()
    return tuple(name.strip() for name in text.split(",") if name.strip())


def join_names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"
