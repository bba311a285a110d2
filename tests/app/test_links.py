"""Custom scenarios in links: round trip, and bounded decoding of hostile input."""

from __future__ import annotations

import base64
import zlib

import pytest

from app.links import LinkError, LinkParams, decode_doc, encode_doc, parse_schedule


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
    params = LinkParams("buggy", ("dio", "kswapd"), 2, "abc123", None)
    assert params.query() == "v=buggy&t=dio,kswapd&at=2&d=abc123"
    assert parse_schedule(" dio, ,kswapd,") == ("dio", "kswapd")
