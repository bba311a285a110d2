"""Custom scenarios in links: round trip, and bounded decoding of hostile input."""

from __future__ import annotations

import base64
import zlib

import pytest

import engine
from app.links import LinkError, decode_doc, encode_doc, parse_schedule
from app.runref import RunRef


def test_round_trip_is_url_safe() -> None:
    doc = {"id": "x", "title": "ünïcode & <tags>", "actors": [{"name": "a", "ops": []}]}
    token = encode_doc(doc)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_doc(token, 10_000) == doc


@pytest.mark.parametrize("token", ["***", "AAAA", base64.urlsafe_b64encode(b"plain").decode()])
def test_garbage_is_a_link_error(token: str) -> None:
    with pytest.raises(LinkError):
        decode_doc(token, 10_000)


def test_zip_bomb_is_refused() -> None:
    token = base64.urlsafe_b64encode(zlib.compress(b"[" + b" " * 5_000_000 + b"]")).decode()
    assert len(token) < 10_000
    with pytest.raises(LinkError, match="larger than"):
        decode_doc(token, 100_000)


def test_non_object_is_refused() -> None:
    with pytest.raises(LinkError, match="object"):
        decode_doc(_encode_list(), 1000)


def _encode_list() -> str:
    return base64.urlsafe_b64encode(zlib.compress(b"[1, 2]")).decode().rstrip("=")


def test_query_keeps_commas_readable() -> None:
    params = RunRef(variant="buggy", schedule=("dio", "kswapd"), at=2, digest="abc123")
    e = engine.ENGINE_VERSION
    assert params.query() == f"v=buggy&t=dio,kswapd&at=2&d=abc123&e={e}"
    assert params.on_variant("fixed", coming_from="buggy").query() == (
        f"v=fixed&t=dio,kswapd&at=2&d=abc123&e={e}&cmp=buggy"
    )


def test_a_step_keeps_the_schedule_or_branches() -> None:
    ref = RunRef(schedule=("dio", "kswapd", "dio"), at=1)
    assert ref.stepped("kswapd") == RunRef(schedule=("dio", "kswapd", "dio"), at=2)
    assert ref.stepped("dio") == RunRef(schedule=("dio", "dio"), at=2)
    assert RunRef(schedule=("dio",)).stepped("kswapd").schedule == ("dio", "kswapd")


def test_a_snapshot_survives_its_json() -> None:
    ref = RunRef({"id": "x"}, "buggy", "6.1", {"a": True}, ("dio",), 1)
    assert RunRef.from_json(ref.to_json()) == ref
    assert RunRef.from_json(RunRef().to_json()) == RunRef()
    assert RunRef.from_load(ref.to_load()) == ref
    assert parse_schedule(" dio, ,kswapd,") == ("dio", "kswapd")
