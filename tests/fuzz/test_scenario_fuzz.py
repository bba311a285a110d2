"""Fuzzing scenario documents: through the engine's parser, as YAML text, and over HTTP.

Junk and near-valid documents (real op names and params, junk mixed in) go to
`engine.parse_scenario`, `engine.load_scenario_text` and `POST /api/run` / `/api/explore`:
only ScenarioError (a 422 over HTTP) may come out, and every document that parses must run
and explore within bounds. Each bug the fuzzers found has a regression test at the bottom.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

import engine
from app.config import Settings
from app.links import decode_doc, encode_doc
from app.main import create_app
from app.schemas import ErrorResponse, ExploreResponse, RunResponse
from engine.kernel import OPS
from tests.fuzz.budget import budget
from tests.fuzz.strategies import ACTORS, any_document, documents, junk, valid_documents

MAX_STATES = 400
TIME_LIMIT_S = 0.5
FUZZ_SETTINGS = replace(Settings(), max_states=MAX_STATES, explore_time_limit_s=TIME_LIMIT_S)
client = TestClient(create_app(engine.load_catalog(), FUZZ_SETTINGS))
FULLWIDTH_KERNEL = "\uff15.\uff11\uff17"  # 5.17 in fullwidth digits
schedules = st.lists(st.sampled_from([*ACTORS, "nobody"]), max_size=10)


def parse_or_none(doc: Any) -> engine.Scenario | None:
    """The scenario, or None after checking that the ScenarioError names its problems."""
    try:
        return engine.parse_scenario(doc)
    except engine.ScenarioError as err:
        assert err.errors
        for item in err.errors:
            assert isinstance(item.path, str) and item.message
        return None


def configs(scenario: engine.Scenario) -> list[engine.Config]:
    names: list[str | None] = [v.name for v in scenario.variants] or [None]
    return [engine.make_config(scenario, variant=name) for name in names]


def check_runs(scenario: engine.Scenario, schedule: list[str]) -> None:
    """A scenario that parsed explores within bounds, and its examples replay."""
    for config in configs(scenario):
        began = time.perf_counter()
        result = engine.explore(scenario, config, max_states=MAX_STATES, time_limit_s=TIME_LIMIT_S)
        assert time.perf_counter() - began < TIME_LIMIT_S + 5
        assert result.states <= MAX_STATES
        assert result.interleavings == sum(o.interleavings for o in result.outcomes)
        for outcome in result.outcomes[:3]:
            run = engine.run_schedule(scenario, config, outcome.example)
            assert run.finished
            engine.render_diagram(scenario, config, run)
            json.dumps(engine.run_to_json(run))
        run = engine.replay(scenario, config, schedule)  # errors are returned, not raised
        error = run.error
        assert error is None or isinstance(error, engine.ScheduleError)
        assert len(run.steps) <= len(schedule)
    # Custom scenarios travel in links: the packed document comes back as the same scenario.
    again = engine.parse_scenario(decode_doc(encode_doc(scenario.document), 1 << 20))
    assert again.digest == scenario.digest


@budget(150)
@given(doc=any_document, schedule=schedules)
def test_parse_scenario_raises_only_scenario_error(doc: Any, schedule: list[str]) -> None:
    scenario = parse_or_none(doc)
    if scenario is not None:
        check_runs(scenario, schedule)


@budget(80)
@given(doc=documents(), flow=st.booleans())
def test_yaml_text_agrees_with_the_document(doc: dict[str, Any], flow: bool) -> None:
    text = yaml.safe_dump(doc, default_flow_style=flow, sort_keys=False)
    direct = parse_or_none(doc)
    try:
        loaded = engine.load_scenario_text(text)
    except engine.ScenarioError:
        assert direct is None
        return
    assert direct is not None and loaded.digest == direct.digest


# Fragments that make YAML nasty: anchors and aliases, tags (Python objects must never be
# built), flow collections, merge keys, odd scalars.
NASTY = [
    "&a ",
    "*a",
    "!!python/object/apply:os.system ['true'] ",
    "!!python/name:os.system ",
    "!!binary aGk= ",
    "!!set ",
    "!!timestamp 2024-02-31 ",
    "<<: *a\n",
    "[",
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "? ",
    "\t",
    "'",
    '"',
    "9" * 5000,
    "1e999",
    ".nan",
    "~",
    "\n",
    "&b [*b]",
    "\ufeff",
    '"\\U0011FFFF"',
    '"\\x"',
]


@budget(120)
@given(
    doc=documents(),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(NASTY)), max_size=4),
)
def test_nasty_yaml_text_only_raises_scenario_error(
    doc: dict[str, Any], edits: list[tuple[int, str]]
) -> None:
    text = yaml.safe_dump(doc, sort_keys=False)
    for position, fragment in edits:
        at = position % (len(text) + 1)
        text = text[:at] + fragment + text[at:]
    try:
        scenario = engine.load_scenario_text(text)
    except engine.ScenarioError:
        return
    check_runs(scenario, [])


@budget(60)
@given(text=st.text(max_size=200))
def test_any_text_only_raises_scenario_error(text: str) -> None:
    with contextlib.suppress(engine.ScenarioError):
        engine.load_scenario_text(text)


def api_error(response: Any) -> ErrorResponse:
    assert response.status_code == 422, response.text[:500]
    body = ErrorResponse.model_validate(response.json())
    assert body.errors and all(item.path for item in body.errors)
    return body


@budget(60)
@given(doc=any_document, schedule=schedules)
def test_api_run_and_explore_answer_200_or_422(doc: Any, schedule: list[str]) -> None:
    explored = client.post("/api/explore", json={"scenario": doc})
    ran = client.post("/api/run", json={"scenario": doc, "schedule": schedule})
    if isinstance(doc, str):  # a catalog id: unknown ones are a documented 404
        assert explored.status_code == ran.status_code == 404
        return
    assert explored.status_code in (200, 422), explored.text[:500]
    assert ran.status_code in (200, 422), ran.text[:500]
    if explored.status_code == 422:
        api_error(explored)
        api_error(ran)  # an invalid scenario is invalid for every endpoint
        return
    result = ExploreResponse.model_validate(explored.json())
    assert result.states <= MAX_STATES
    if ran.status_code == 200:
        RunResponse.model_validate(ran.json())
    else:
        assert api_error(ran).errors[0].path.startswith("schedule")
    for outcome in result.outcomes[:2]:  # every example the explorer reports replays
        example = client.post("/api/run", json={"scenario": doc, "schedule": outcome.example})
        assert example.status_code == 200, example.text[:500]
        assert RunResponse.model_validate(example.json()).finished


@budget(40)
@given(doc=any_document)
def test_custom_scenario_links_never_fail(doc: Any) -> None:
    token = encode_doc(doc if isinstance(doc, dict) else {"doc": doc})
    for suffix in ("", "/frame"):
        response = client.get(f"/s/fuzz{suffix}?s={token}&t=a,b,a&at=2")
        assert response.status_code in (200, 400), response.text[:500]


def test_the_generator_knows_every_operation() -> None:
    """A new op in engine.kernel is fuzzed as soon as it exists (generic_op draws from OPS)."""
    seen: set[str] = set()

    @budget(1000)  # 32 ops: enough draws that each appears
    @given(doc=valid_documents())
    def collect(doc: dict[str, Any]) -> None:
        for actor in doc["actors"]:
            seen.update(next(iter(op)) for op in actor["ops"])

    collect()
    assert set(OPS) - {"mmap_file"} <= seen  # mmap_file is setup-only: drawn there


EDITOR_STATUSES = (200, 413, 422)


@budget(40)
@given(
    doc=documents(),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(NASTY)), max_size=3),
    variant=st.sampled_from(["", "buggy", "x" * 100, "<script>"]),
)
def test_editor_check_and_explore_never_fail(
    doc: dict[str, Any], edits: list[tuple[int, str]], variant: str
) -> None:
    """The editor checks any text as you type: YAML the fuzzers make, as a form post."""
    text = yaml.safe_dump(doc, sort_keys=False)
    for position, fragment in edits:
        at = position % (len(text) + 1)
        text = text[:at] + fragment + text[at:]
    form = {"text": text, "v": variant}
    for path in ("/edit/check", "/edit/explore"):
        response = client.post(path, data=form)
        assert response.status_code in EDITOR_STATUSES, (path, response.text[:300])
        assert "<script>" not in response.text


# --- regressions: one per bug the fuzzers found ---------------------------------------------


def test_regression_key_ending_in_a_dot_does_not_hang() -> None:
    """`_Checker.err` looked for a line number by cutting path segments and looped forever
    when nothing could be cut ("a." or "x[" as a key). Found by schemathesis on /api/diagram."""
    for doc in ({"a.": 1}, {"x[": 1}, {"actors": [{"name": "a", "ops": [{"write": {"v.": 1}}]}]}):
        with pytest.raises(engine.ScenarioError):
            engine.parse_scenario(doc)
    with pytest.raises(engine.ScenarioError, match="unknown key"):
        engine.load_scenario_text("a.: 1\nid: x\n")


def test_regression_variants_that_are_not_a_mapping() -> None:
    """`tuple(variants)` raised TypeError for an int."""
    for variants in (5, 1.5, True, "abc", ["buggy"]):
        with pytest.raises(engine.ScenarioError, match="variants"):
            engine.parse_scenario({"id": "x", "title": "t", "variants": variants})


def test_regression_actors_that_are_not_a_list() -> None:
    """`_procs` iterated `actors` before it was checked: an int raised TypeError."""
    for actors in (5, 1.5, {"a": 1}):
        with pytest.raises(engine.ScenarioError, match="actors"):
            engine.parse_scenario({"id": "x", "title": "t", "actors": actors})


BOMB = "".join(
    f"k{i}: &k{i} [" + ",".join(["x" if i == 0 else f"*k{i - 1}"] * 9) + "]\n" for i in range(9)
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BOMB, "expands to more than"),  # 9**9 values: hung in _lines
        (BOMB + "id: x\nrefs: [{commit: *k8}]\n", "expands to more than"),
        ("id: x\ntitle: t\ntags: &a [*a]\n", "alias to itself"),  # RecursionError
        ("id: x\ntitle: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
        ("id: x\ntitle: " + "[" * 40 + "]" * 40 + "\n", "nested more than"),
        ("id: x\ntitle: " + "9" * 5000 + "\n", "too many digits"),  # ValueError
        ("id: !!timestamp 2024-02-31\n", "cannot be read"),  # ValueError
        ("id: !!timestamp 2024-02-31 id\n", "cannot be read"),  # AttributeError in PyYAML
        ("id: !!bool maybe\n", "cannot be read"),  # KeyError in PyYAML
        ('id: "\\U0011FFFF"\n', "escape sequence"),  # ValueError in PyYAML's scanner
        ('id: "\\UFFFFFFFF"\n', "escape sequence"),  # OverflowError in PyYAML's scanner
        ("id: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_regression_nasty_yaml(text: str, message: str) -> None:
    began = time.perf_counter()
    with pytest.raises(engine.ScenarioError, match=message):
        engine.load_scenario_text(text)
    assert time.perf_counter() - began < 5


def test_regression_editor_survives_pyyaml_escape_errors() -> None:
    """The editor re-read a document-level error with yaml.safe_load for its column, and
    PyYAML's chr() failure on "\\U0011FFFF" escaped as a 500."""
    for text in ('id: "\\U0011FFFF"\n', 'id: x\ntitle: "\\UFFFFFFFF"\n'):
        checked = client.post("/edit/check", data={"text": text})
        assert checked.status_code == 200
        assert "escape sequence" in checked.text
        assert client.post("/edit/explore", data={"text": text}).status_code == 422


def test_regression_aliases_that_expand_a_little_still_work() -> None:
    """Anchors and aliases are fine YAML: only their expanded size is bounded."""
    seed = engine.load_catalog()["madv-free-vs-dio"]
    text = yaml.safe_dump(json.loads(json.dumps(seed.document)), sort_keys=False)
    text = text.replace("setup:\n", "setup: &setup\n", 1) + "\n"
    assert engine.load_scenario_text(text).digest == seed.digest


def test_regression_deep_or_huge_documents_are_scenario_errors() -> None:
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    with pytest.raises(engine.ScenarioError, match="nested more than"):
        engine.parse_scenario({"id": "x", "title": deep})
    with pytest.raises(engine.ScenarioError, match="more than"):
        engine.parse_scenario({"id": "x", "tags": list(range(50_000))})


def test_regression_odd_keys_are_named_unambiguously() -> None:
    """An unknown key "" at the top had the path "" (and "a.b" looked like a nested path)."""
    with pytest.raises(engine.ScenarioError) as raised:
        engine.parse_scenario({"": 1, "a.b": 2})
    assert [item.path for item in raised.value.errors][:2] == ['[""]', '["a.b"]']
    response = client.post("/api/run", json={"scenario": {"": 1}})
    assert '[""]' in [item.path for item in api_error(response).errors]
    response = client.post("/api/run", json={"scenario": {"id": "x" * 100}})
    assert all(item.path for item in api_error(response).errors)


def test_regression_kernel_in_other_digits() -> None:
    """`\\d` in the kernel pattern let fullwidth digits through, echoed as the kernel's name."""
    doc = {"id": "x", "title": "t", "variants": {"v": {"kernel": FULLWIDTH_KERNEL}}}
    with pytest.raises(engine.ScenarioError, match="kernel"):
        engine.parse_scenario(doc)
    response = client.post(
        "/api/run", json={"scenario": "madv-free-vs-dio", "kernel": FULLWIDTH_KERNEL}
    )
    assert api_error(response).errors[0].path == "kernel"


@pytest.mark.parametrize("content", [b'{"scenario": "\xc3\x28"}', b"\xf0\x9f\xef\x92\xad"])
def test_regression_non_utf8_body_is_422(content: bytes) -> None:
    """FastAPI answered a body that is not UTF-8 with an undocumented bare 400 (schemathesis)."""
    for path in ("/api/run", "/api/explore", "/api/diagram"):
        response = client.post(path, content=content, headers={"content-type": "application/json"})
        assert api_error(response).errors[0].path == "body"


def test_regression_diagram_errors_are_documented_as_json() -> None:
    """/api/diagram's errors were documented as text/plain (its success type) but sent as
    JSON (schemathesis: undocumented Content-Type)."""
    responses = client.get("/openapi.json").json()["paths"]["/api/diagram"]["post"]["responses"]
    for status in ("404", "413", "422"):
        assert list(responses[status]["content"]) == ["application/json"]
    assert list(responses["200"]["content"]) == ["text/plain", "text/markdown"]  # ?format=md


@given(junk)
@budget(30)
def test_junk_as_a_whole_request_body(body: Any) -> None:
    for path in ("/api/run", "/api/explore", "/api/diagram"):
        response = client.post(path, json=body)
        assert response.status_code in (200, 404, 422), response.text[:300]
