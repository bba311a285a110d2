"""YAML text to a scenario: safe loading, size and shape limits, line numbers for errors.

PyYAML's SafeLoader builds the document; before it does, the composed node graph is
measured with aliases expanded (an alias bomb or a recursive alias is refused, not
built), and every path's line is recorded so that errors point into the text.
"""

from __future__ import annotations

import yaml

from engine.lang.ir import ErrorItem, Scenario, ScenarioError, key_path
from engine.lang.validate import MAX_DEPTH, MAX_NODES, parse_scenario


def _lines(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = key_path(path, key.value)
            out[sub] = key.start_mark.line + 1
            _lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, f"{path}[{i}]", out)


MAX_DOCUMENT = 64 * 1024


def _shape_problem(root: yaml.Node) -> str | None:
    """Why the composed document is not of a scenario's shape, counting aliases expanded."""
    count = 0
    ancestors: set[int] = set()

    def walk(node: yaml.Node, depth: int) -> str | None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            return f"expands to more than {MAX_NODES} values (through YAML aliases?)"
        if depth > MAX_DEPTH:
            return f"is nested more than {MAX_DEPTH} levels deep"
        if id(node) in ancestors:
            return "contains an alias to itself (a recursive structure)"
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            return None
        ancestors.add(id(node))
        for child in children:
            problem = walk(child, depth + 1)
            if problem:
                return problem
        ancestors.discard(id(node))
        return None

    return walk(root, 0)


def _yaml_error(exc: yaml.YAMLError) -> ScenarioError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    return ScenarioError([ErrorItem("", f"not valid YAML: {problem}", line)])


def _compose(text: str) -> tuple[yaml.Node | None, object]:
    """The YAML node graph (for line numbers) and the document built from it, parsed once."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ScenarioError([ErrorItem("", "not valid YAML: nested too deeply")]) from None
        except (ValueError, OverflowError):
            # PyYAML's scanner calls chr() on a double-quoted "\U0011FFFF" unchecked.
            bad = "not valid YAML: an escape sequence that is not a character"
            raise ScenarioError([ErrorItem("", bad, loader.get_mark().line + 1)]) from None
        if node is None:
            return None, None
        problem = _shape_problem(node)
        if problem:
            raise ScenarioError(
                [ErrorItem("", f"the document {problem}", node.start_mark.line + 1)]
            )
        try:
            return node, loader.construct_document(node)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            # PyYAML's scalar constructors fail in their own ways on an explicitly tagged
            # value they cannot read: an int of 5000 digits or `!!timestamp 2024-02-31`
            # (ValueError), `!!timestamp junk` (AttributeError), `!!bool maybe` (KeyError).
            why = "it has too many digits" if "digits" in str(exc) else "an explicit !!tag?"
            raise ScenarioError([ErrorItem("", f"a value cannot be read ({why})")]) from None
    finally:
        loader.dispose()


def load_scenario_text(text: str) -> Scenario:
    """Parse YAML (or JSON, a subset) text into a Scenario; errors carry line numbers."""
    if len(text) > MAX_DOCUMENT:
        raise ScenarioError(
            [ErrorItem("", f"document is {len(text)} bytes; at most {MAX_DOCUMENT} allowed")]
        )
    try:
        node, doc = _compose(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from None
    lines: dict[str, int] = {}
    if node is not None:
        _lines(node, "", lines)
    return parse_scenario(doc, lines)
