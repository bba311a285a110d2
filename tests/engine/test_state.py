"""The world's values: immutable, and `evolve` is NamedTuple._replace, field for field."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from engine.state import Actor, Expected, File, Page, Proc, Pte, Slot, World

WORLD = World(
    pages=(Page(),),
    ptes=(("app", "buf", Pte()),),
    procs=(Proc("app"),),
    files=(("f", File()),),
    swap=(Slot(),),
    expect=(("app:buf", Expected(allowed=("0",), latest="0")),),
    writers=(("A", "app"),),
    actors=(Actor(),),
)
VALUES: tuple[Any, ...] = (
    Page(),
    Pte(),
    Slot(),
    File(),
    Expected(allowed=("0",), latest="0"),
    Proc("app"),
    Actor(),
    WORLD,
)


def changed(value: object) -> object:
    """A different value of the same type as `value`."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | str):
        return value + type(value)(1)
    assert isinstance(value, tuple)
    return (*value, value[0]) if value else ("x",)


def settable(cls: Any) -> list[str]:
    return [name for name in cls._fields if name != "name"]  # a process keeps its name


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_evolve_takes_every_field(value: Any) -> None:
    assert list(inspect.signature(value.evolve).parameters) == settable(type(value))


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_evolve_is_replace(value: Any) -> None:
    assert value.evolve() == value
    for name in settable(type(value)):
        new = changed(getattr(value, name))
        assert value.evolve(**{name: new}) == value._replace(**{name: new})
        assert getattr(value.evolve(**{name: new}), name) == new


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_values_are_immutable(value: Any) -> None:
    with pytest.raises(AttributeError):
        setattr(value, value._fields[0], None)
