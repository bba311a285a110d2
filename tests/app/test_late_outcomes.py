"""A room's snapshot carries the presenter's last "Explore all" (review L2), through the
stored JSON that the memory and Redis brokers both keep."""

from __future__ import annotations

from app.runref import RunRef


def test_the_outcomes_survive_the_stored_snapshot() -> None:
    shown = {"outcomes_url": "/s/x/outcomes?v=buggy&live=1", "states": 141, "interleavings": 9}
    ref = RunRef(scenario="x", variant="buggy", schedule=("a", "b"), at=1, outcomes=shown)
    back = RunRef.from_json(ref.to_json())
    assert back == ref and back.outcomes == shown


def test_a_snapshot_without_outcomes_keeps_its_old_shape() -> None:
    ref = RunRef(scenario="x", variant="buggy", schedule=("a",), at=1)
    assert "outcomes" not in ref.to_json()
    assert RunRef.from_json(ref.to_json()).outcomes is None
    # A stored value of the wrong shape is dropped, not trusted.
    assert RunRef.from_json('{"scenario": "x", "outcomes": "nope"}').outcomes is None
