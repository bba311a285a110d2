"""Bad scenario documents are rejected with errors that name the field and what is allowed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import engine
from engine.lang.validate import MAX_ACTORS
from tests.engine.builders import doc

GOOD_YAML = """\
id: tiny
title: a tiny scenario
summary: one actor takes and drops a GUP reference
refs:
  - {commit: 6c8e2a256915, title: "mm: fix race", version: "5.18"}
variants:
  buggy: {kernel: "5.17"}
setup:
  - write: {addr: buf, value: A}
actors:
  - name: dio
    ops:
      - gup_fast: {addr: buf, mode: get, write: true}
      - put_page: {}
expect:
  buggy: {violations: [], reachable: [page_kept]}
"""


def base() -> dict[str, Any]:
    return doc(
        {"dio": [{"gup_fast": {"addr": "buf", "mode": "get"}}, {"put_page": {}}]},
        variants={"buggy": {"kernel": "5.17"}},
    )


def errors_of(document: object) -> list[engine.ErrorItem]:
    with pytest.raises(engine.ScenarioError) as err:
        engine.parse_scenario(document)
    assert err.value.errors
    return err.value.errors


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def error_at(errors: list[engine.ErrorItem], path: str) -> engine.ErrorItem:
    for e in errors:
        if e.path == path:
            return e
    raise AssertionError(f"no error at {path!r}; got {[str(e) for e in errors]}")


def test_the_good_document_parses() -> None:
    sc = engine.load_scenario_text(GOOD_YAML)
    assert sc.id == "tiny"
    assert [op.kind for op in sc.actors[0].ops] == ["gup_fast", "put_page"]
    engine.parse_scenario(base())


def test_unknown_top_level_key() -> None:
    d = base()
    d["bogus"] = 1
    e = error_at(errors_of(d), "bogus")
    assert "unknown key" in e.message
    assert "actors" in e.message and "expect" in e.message


def test_unknown_operation_lists_the_allowed_ones() -> None:
    d = base()
    d["actors"][0]["ops"][0] = {"frobnicate": {}}
    e = error_at(errors_of(d), "actors[0].ops[0].frobnicate")
    assert "unknown operation" in e.message
    for op in ("gup_fast", "shrink_folio_list", "madvise_free", "dma_write", "dio_read"):
        assert op in e.message


def test_bad_enum_names_the_exact_path() -> None:
    d = base()
    d["actors"][0]["ops"][0]["gup_fast"]["mode"] = "steal"
    errors = errors_of(d)
    assert errors[0].path == "actors[0].ops[0].gup_fast.mode"
    assert "'steal'" in errors[0].message
    assert "get, pin" in errors[0].message


def test_unknown_op_parameter() -> None:
    d = base()
    d["actors"][0]["ops"][0]["gup_fast"]["speed"] = "fast"
    e = error_at(errors_of(d), "actors[0].ops[0].gup_fast.speed")
    assert "unknown key" in e.message and "fast_only" in e.message


def test_missing_required_parameter() -> None:
    d = base()
    d["actors"][0]["ops"].append({"dma_write": {}})
    e = error_at(errors_of(d), "actors[0].ops[2].dma_write.value")
    assert "required" in e.message


def test_unknown_file_reference() -> None:
    d = base()
    d["files"] = {"f": {"data": "D"}}
    d["actors"][0]["ops"].append({"writeback": {"file": "nope"}})
    e = error_at(errors_of(d), "actors[0].ops[2].writeback.file")
    assert "unknown file 'nope'" in e.message
    assert "f" in e.message.split(":")[-1]


def test_unknown_process() -> None:
    d = base()
    d["actors"][0]["ops"].append({"write": {"addr": "buf", "value": "B", "proc": "ghost"}})
    e = error_at(errors_of(d), "actors[0].ops[2].write.proc")
    assert "unknown process 'ghost'" in e.message
    assert "app" in e.message


def test_a_forked_child_is_a_known_process() -> None:
    d = base()
    d["setup"].append({"fork": {"child": "kid"}})
    d["actors"][0]["ops"].append({"write": {"addr": "buf", "value": "B", "proc": "kid"}})
    engine.parse_scenario(d)


def test_put_page_without_a_prior_gup() -> None:
    d = doc({"dio": [{"put_page": {}}]})
    e = error_at(errors_of(d), "actors[0].ops[0].put_page")
    assert "gup" in e.message and "no such op comes before it" in e.message


def test_put_page_after_a_pin_and_unpin_after_a_get() -> None:
    d = doc(
        {
            "a": [{"gup_fast": {"addr": "buf", "mode": "pin"}}, {"put_page": {}}],
            "b": [{"gup": {"addr": "buf", "mode": "get"}}, {"unpin": {}}],
        }
    )
    errors = errors_of(d)
    assert "needs get" in error_at(errors, "actors[0].ops[1].put_page").message
    assert "needs pin" in error_at(errors, "actors[1].ops[1].unpin").message


def test_device_ops_are_not_allowed_in_setup() -> None:
    d = base()
    d["setup"].append({"gup_fast": {"addr": "buf", "mode": "get"}})
    e = error_at(errors_of(d), "setup[1].gup_fast")
    assert "not allowed in setup" in e.message


def test_setup_only_op_in_an_actor() -> None:
    d = base()
    d["files"] = {"f": {"data": "D"}}
    d["actors"][0]["ops"].append({"mmap_file": {"addr": "fbuf", "file": "f"}})
    assert "only allowed in setup" in error_at(errors_of(d), "actors[0].ops[2].mmap_file").message


def test_expect_with_an_unknown_variant() -> None:
    d = base()
    d["expect"] = {"nope": {"violations": []}}
    e = error_at(errors_of(d), "expect.nope")
    assert "unknown key" in e.message and "buggy" in e.message


def test_expect_default_without_variants() -> None:
    d = doc({"a": [{"read": {"addr": "buf"}}]})
    d["expect"] = {"default": {"violations": [], "reachable": ["page_kept"]}}
    assert engine.parse_scenario(d).expect["default"].reachable == ("page_kept",)
    d["expect"] = {"buggy": {"violations": []}}
    assert "default" in error_at(errors_of(d), "expect.buggy").message


def test_expect_with_unknown_violation_and_label() -> None:
    d = base()
    d["expect"] = {"buggy": {"violations": ["oops"], "reachable": ["nowhere"]}}
    errors = errors_of(d)
    assert "lost_write" in error_at(errors, "expect.buggy.violations[0]").message
    assert "page_freed" in error_at(errors, "expect.buggy.reachable[0]").message


def test_too_many_actors() -> None:
    d = base()
    d["actors"] = [
        {"name": f"a{i}", "ops": [{"read": {"addr": "buf"}}]} for i in range(MAX_ACTORS + 1)
    ]
    e = error_at(errors_of(d), "actors")
    assert f"at most {MAX_ACTORS}" in e.message


def test_duplicate_actor_name() -> None:
    d = base()
    d["actors"].append(copy.deepcopy(d["actors"][0]))
    assert "duplicate" in error_at(errors_of(d), "actors[1].name").message


def test_bad_kernel_version() -> None:
    d = base()
    d["variants"] = {"old": {"kernel": "2.6"}}
    assert "4.12" in error_at(errors_of(d), "variants.old.kernel").message


def test_unknown_fix_switch() -> None:
    d = base()
    d["variants"]["buggy"]["fixes"] = {"nofix": True}
    e = error_at(errors_of(d), "variants.buggy.fixes.nofix")
    assert "lazyfree_refcount_check" in e.message


def test_every_error_is_reported_at_once() -> None:
    d = base()
    d["bogus"] = 1
    d["actors"][0]["ops"][0]["gup_fast"]["mode"] = "steal"
    paths = {e.path for e in errors_of(d)}
    assert {"bogus", "actors[0].ops[0].gup_fast.mode"} <= paths


def test_not_a_mapping() -> None:
    assert errors_of(["a", "list"])[0].message.startswith("must be a mapping")


# -- YAML text -------------------------------------------------------------------------------


def test_yaml_syntax_error_gives_a_line_number() -> None:
    text = GOOD_YAML.replace("      - put_page: {}", "      - put_page: {\n")
    with pytest.raises(engine.ScenarioError) as err:
        engine.load_scenario_text(text)
    (e,) = err.value.errors
    assert "not valid YAML" in e.message
    assert e.line is not None and e.line >= line_of(text, "put_page: {")
    assert f"line {e.line}" in str(err.value)


def test_yaml_errors_carry_the_line_of_the_field() -> None:
    text = GOOD_YAML.replace("mode: get", "mode: steal")
    with pytest.raises(engine.ScenarioError) as err:
        engine.load_scenario_text(text)
    e = err.value.errors[0]
    assert e.path == "actors[0].ops[0].gup_fast.mode"
    assert e.line == line_of(text, "mode: steal")
    assert str(e).startswith(f"actors[0].ops[0].gup_fast.mode (line {e.line}):")


def test_a_yaml_bool_value_is_rejected_with_a_hint() -> None:
    text = GOOD_YAML.replace("value: A", "value: yes")
    with pytest.raises(engine.ScenarioError) as err:
        engine.load_scenario_text(text)
    e = err.value.errors[0]
    assert e.path == "setup[0].write.value"
    assert "quote" in e.message
    assert e.line == line_of(text, "value: yes")


def test_a_quoted_yes_is_a_value() -> None:
    sc = engine.load_scenario_text(GOOD_YAML.replace("value: A", 'value: "yes"'))
    assert sc.setup[0].params["value"] == "yes"


def test_an_oversized_document_is_rejected() -> None:
    with pytest.raises(engine.ScenarioError) as err:
        engine.load_scenario_text(GOOD_YAML + "#" * 70_000)
    assert "at most" in err.value.errors[0].message


def test_catalog_file_errors_name_the_file(tmp_path: Any) -> None:
    from engine.lang.catalog import load_file

    path = tmp_path / "bad.yaml"
    path.write_text(GOOD_YAML.replace("mode: get", "mode: steal"))
    with pytest.raises(engine.ScenarioError) as err:
        load_file(path)
    assert err.value.errors[0].path == "bad.yaml: actors[0].ops[0].gup_fast.mode"


def test_an_unquoted_kernel_version_is_not_silently_changed() -> None:
    text = GOOD_YAML.replace('kernel: "5.17"', "kernel: 5.10")
    try:
        sc = engine.load_scenario_text(text)
    except engine.ScenarioError as err:
        assert err.errors[0].path == "variants.buggy.kernel"
    else:
        assert sc.variants[0].kernel == "5.10"
