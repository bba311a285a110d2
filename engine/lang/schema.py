"""A JSON Schema of the scenario language, made from the same registries the validator reads
(issue 15 item 7): the ops and their parameters (engine.kernel.OPS), the macros, the fix
switches, the violations and outcome labels, the naming rules and the limits.

Editors use it for completion and checks as you type: yaml-language-server (VS Code's YAML
extension, Neovim, Helix...) reads `# yaml-language-server: $schema=URL` at the top of a file,
and the app serves it at /api/schema/scenario.json. The validator stays the authority: the
schema cannot say everything it checks (an op's device needs an earlier GUP by the same
actor, a `proc` must be forked first), and what it does say, it says the same way.
"""

from __future__ import annotations

from typing import Any

from engine import invariants
from engine.fixes import SWITCHES
from engine.kernel import OPS
from engine.kernel.machine import Param
from engine.lang import validate as lang

SCHEMA_ID = "https://pagerace.invalid/api/schema/scenario.json"  # replaced by the server's URL
DRAFT = "https://json-schema.org/draft/2020-12/schema"
NAME = lang.NAME.pattern
# A kernel "X.Y" as the validator takes it (4.12 to 6.99); the range is checked there.
KERNEL = r"^[4-6]\.[0-9]{1,2}$"


def _param(spec: Param) -> dict[str, Any]:
    if spec.kind == "bool":
        return {"type": "boolean"}
    if spec.kind == "choice":
        return {"enum": list(spec.choices)}
    if spec.kind == "value":
        return {"type": ["string", "integer"], "pattern": lang.VALUE.pattern}
    if spec.kind == "addr":
        subpages = "".join(lang.SUBPAGES)
        return {"type": "string", "pattern": f"{NAME[:-1]}(#[{subpages}])?$"}
    if spec.kind in ("region", "file", "proc", "name"):
        return {"type": "string", "pattern": NAME}
    return {}  # a kind this schema does not know yet: the validator checks it


def _op(name: str) -> dict[str, Any]:
    kind = OPS[name]
    params = {
        p.name: {**_param(p), "description": f"{p.kind}{' (required)' if p.required else ''}"}
        for p in kind.params
    }
    body: dict[str, Any] = {
        "type": "object",
        "properties": params,
        "additionalProperties": False,
    }
    required = [p.name for p in kind.params if p.required]
    if required:
        body["required"] = required
    return {"description": " ".join(kind.doc.split()), "anyOf": [body, {"type": "null"}]}


def _macro(name: str) -> dict[str, Any]:
    parts = " + ".join(kind for kind, _ in lang.MACROS[name])
    return {
        "description": f"a macro: {parts}",
        "type": "object",
        "properties": {
            "addr": _param(Param("addr", "addr")),
            "value": _param(Param("value", "value")),
            "proc": _param(Param("proc", "proc")),
        },
        "required": ["addr", "value"],
        "additionalProperties": False,
    }


def _ops(limit: int, setup: bool) -> dict[str, Any]:
    names = [n for n in sorted(OPS) if setup or not OPS[n].setup_only]
    properties = {n: _op(n) for n in names}
    if not setup:
        properties.update({n: _macro(n) for n in lang.MACROS})
    return {
        "type": "array",
        "maxItems": limit,
        "items": {
            "description": "one operation: a one-key mapping, e.g. `write: {addr: buf, value: A}`",
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": properties,
            "additionalProperties": False,
        },
    }


def scenario_schema(schema_id: str = SCHEMA_ID) -> dict[str, Any]:
    """The scenario language as a JSON Schema (draft 2020-12). Every top-level key the
    validator takes (lang.TOP_KEYS) is one; those not described here accept any value."""
    schema = _schema(schema_id)
    for key in lang.TOP_KEYS:
        schema["properties"].setdefault(key, {})
    return schema


def _schema(schema_id: str) -> dict[str, Any]:
    violations = [v.name for v in invariants.INVARIANTS]
    fates = "|".join(f.value for f in invariants.Fate)
    switches = {
        name: {"type": "boolean", "description": " ".join(fix.effect.split())}
        for name, fix in SWITCHES.items()
    }
    expect = {
        "type": "object",
        "properties": {
            "violations": {
                "type": "array",
                "maxItems": 8,
                "items": {"enum": violations},
            },
            "reachable": {
                "type": "array",
                "maxItems": 8,
                "items": {"type": "string", "pattern": f"^({fates})"},
            },
        },
        "additionalProperties": False,
    }
    return {
        "$schema": DRAFT,
        "$id": schema_id,
        "title": "pagerace scenario",
        "description": "A page-lifecycle race: setup, actors and their ops, kernels to try "
        "(variants) and what must hold (expect). docs/scenario-language.md says the rest.",
        "type": "object",
        "required": ["id", "title", "actors"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": lang.ID.pattern},
            "title": {"type": "string", "maxLength": 120},
            "summary": {"type": "string", "maxLength": lang.MAX_TEXT},
            "tags": {
                "type": "array",
                "maxItems": 12,
                "items": {"type": "string", "pattern": NAME},
            },
            "refs": {
                "type": "array",
                "maxItems": 8,
                "items": {
                    "type": "object",
                    "properties": {
                        "commit": {"type": "string", "pattern": lang.COMMIT.pattern},
                        "title": {"type": "string"},
                        "version": {"type": "string", "pattern": KERNEL},
                    },
                    "additionalProperties": False,
                },
            },
            "variants": {
                "type": "object",
                "maxProperties": lang.MAX_VARIANTS,
                "propertyNames": {"pattern": NAME},
                "additionalProperties": {
                    "type": "object",
                    "properties": {
                        "kernel": {
                            "type": "string",
                            "pattern": KERNEL,
                            "description": "a kernel release, quoted: 4.12 to 6.99",
                        },
                        "fixes": {
                            "type": "object",
                            "properties": switches,
                            "additionalProperties": False,
                        },
                    },
                    "required": ["kernel"],
                    "additionalProperties": False,
                },
            },
            "files": {
                "type": "object",
                "maxProperties": lang.MAX_FILES,
                "propertyNames": {"pattern": NAME},
                "additionalProperties": {
                    "type": "object",
                    "properties": {"data": _param(Param("data", "value"))},
                    "additionalProperties": False,
                },
            },
            "swap": {
                "type": "object",
                "description": "the swap device's switches (synchronous: zram-like), each "
                "true or false",
                "properties": {"synchronous": {"type": "boolean"}},
                "additionalProperties": {"type": "boolean"},
            },
            "setup": _ops(lang.MAX_SETUP, setup=True),
            "actors": {
                "type": "array",
                "minItems": 1,
                "maxItems": lang.MAX_ACTORS,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "pattern": NAME},
                        "label": {"type": "string", "maxLength": 120},
                        "cpu": {
                            "oneOf": [
                                {"type": "string", "pattern": lang.CPU.pattern},
                                {"type": "integer", "minimum": 0, "maximum": lang.MAX_CPU - 1},
                            ],
                            "description": "the CPU the actor runs on (its TLB), `CPU1` or 1: "
                            "once one actor names a cpu or a thread, every actor has a TLB",
                        },
                        "thread": {
                            "type": "string",
                            "pattern": lang.THREAD.pattern,
                            "description": "the process this actor is a thread of, its ops' "
                            "default `proc` (`app`, or a child a fork creates), or the "
                            "thread's own name",
                        },
                        "ops": _ops(lang.MAX_OPS, setup=False),
                    },
                    "required": ["name", "ops"],
                    "additionalProperties": False,
                },
            },
            "expect": {
                "type": "object",
                "description": "per variant (`default` without variants)",
                "additionalProperties": expect,
            },
        },
    }
