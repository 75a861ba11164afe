"""The MCP tools of a session: their names, descriptions and JSON schemas, and the check of a call against them.

Each tool is one ``iteratr tool`` subcommand (``task_add`` is ``task-add``), and each of its arguments one of that
subcommand's flags (``depends_on`` is ``--depends-on``), so both paths run the same code with the same values
(``iteratr.toolcli.execute``). The vocabularies (statuses, note types, the priority range) come from
``iteratr.session.state``, the one place that defines them, so the schema an agent sees is the rule the store
applies.

A call is checked against the very schema the server advertises (``check``), before anything runs: a malformed
call gets one line naming the field (``tasks[1].priority: must be a whole number 0..4``) and writes nothing. Only
the small part of JSON Schema these schemas use is implemented (type, enum, minimum, maximum, required,
additionalProperties, items, minItems); tests hold it to the ``jsonschema`` package on the same schemas. One rule
goes beyond them: no string may hold a NUL character, which ``iteratr tool``'s command line cannot carry either.

No SDK import here: the table is plain data, cheap to import for tests and for the prompt.
"""

from __future__ import annotations

from iteratr.session.state import NOTE_TYPES, PRIORITY_DEFAULT, PRIORITY_MAX, PRIORITY_MIN, TASK_STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SERVER_NAME = "iteratr"  # agents show the tools under it: opencode as iteratr_task_add

_ID = {"type": "string", "description": "a task id, e.g. TAS-3 (or just 3)"}
_STATUS = {"type": "string", "enum": list(TASK_STATUSES)}
_PRIORITY = {
    "type": "integer",
    "minimum": PRIORITY_MIN,
    "maximum": PRIORITY_MAX,
    "description": f"{PRIORITY_MIN} is the lowest, {PRIORITY_MAX} the highest; default {PRIORITY_DEFAULT}",
}
_NOTE_TYPE = {"type": "string", "enum": list(NOTE_TYPES)}
_NEW_TASK = {
    "type": "object",
    "properties": {
        "content": {"type": "string", "description": "what to do, one unit of work"},
        "status": {**_STATUS, "description": "default remaining"},
        "priority": _PRIORITY,
        "depends_on": {
            "type": "array",
            "items": _ID,
            "description": "ids of tasks that must be completed first (earlier ones of the same batch too)",
        },
    },
    "required": ["content"],
    "additionalProperties": False,
}


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


# name -> (description, input schema, read only)
TOOLS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "task_add": ("Add a single task.", _NEW_TASK, False),
    "task_batch_add": (
        "Add several tasks at once, all or nothing; ids are given in order.",
        _object({"tasks": {"type": "array", "items": _NEW_TASK, "minItems": 1}}, "tasks"),
        False,
    ),
    "task_status": ("Set a task's status.", _object({"id": _ID, "status": _STATUS}, "id", "status"), False),
    "task_priority": (
        f"Set a task's priority ({PRIORITY_MIN} = lowest, {PRIORITY_MAX} = highest).",
        _object({"id": _ID, "priority": _PRIORITY}, "id", "priority"),
        False,
    ),
    "task_depends": (
        "Make a task depend on another (refused for unknown ids, itself, and cycles).",
        _object({"id": _ID, "depends_on": {**_ID, "description": "the task it waits for"}}, "id", "depends_on"),
        False,
    ),
    "task_list": (
        "List the open tasks grouped by status; the completed and cancelled ones are counted (all: list them too).",
        _object({"all": {"type": "boolean", "description": "also list completed and cancelled tasks"}}),
        True,
    ),
    "task_next": ("Show the task to work on next: the one in progress, else the best ready one.", _object({}), True),
    "note_add": (
        "Record a note for later iterations.",
        _object({"content": {"type": "string"}, "type": _NOTE_TYPE}, "content", "type"),
        False,
    ),
    "note_list": (
        "List the last 30 notes, optionally of one type (all: list every one).",
        _object({"type": _NOTE_TYPE, "all": {"type": "boolean", "description": "list every note, not the last 30"}}),
        True,
    ),
    "iteration_summary": (
        "Record what this iteration did.",
        _object({"summary": {"type": "string"}}, "summary"),
        False,
    ),
    "session_complete": (
        "Mark the session complete (refused while tasks are open; iteratr also sees the end itself).",
        _object({}),
        False,
    ),
}


def subcommand(name: str) -> str:
    """The ``iteratr tool`` subcommand of a tool: ``task_batch_add`` -> ``task-batch-add``."""
    return name.replace("_", "-")


def options(arguments: dict[str, Any]) -> dict[str, Any]:
    """A checked call's arguments as the subcommand's flags (``depends_on`` -> ``--depends-on``)."""
    return {"--" + key.replace("_", "-"): value for key, value in arguments.items()}


class SchemaError(ValueError):
    """A call that does not match its tool's schema; the message names the field."""


_TYPES = {
    "string": "a string",
    "integer": "a whole number",
    "array": "an array",
    "object": "an object",
    "boolean": "true or false",
}


def check(name: str, arguments: object) -> dict[str, Any]:
    """``arguments`` checked against tool ``name``'s schema (whole numbers as ``int``); raises SchemaError."""
    if name not in TOOLS:
        raise SchemaError(f"unknown tool {name!r}: use one of {', '.join(TOOLS)}")
    value = _check(TOOLS[name][1], {} if arguments is None else arguments, "")
    assert isinstance(value, dict)
    return value


def _check(schema: dict[str, Any], value: Any, where: str) -> Any:
    kind = schema["type"]
    field = where or "arguments"
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 2.0 is the whole number 2
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise SchemaError(f"{field}: must be {_TYPES[kind]}, not {_short(value)}")
    if kind == "string" and "\x00" in value:
        # The one rule beyond the schema: a command line cannot carry a NUL, and git refuses a commit message
        # holding one, so a task or summary with it would stop the build at its commit.
        raise SchemaError(f"{field}: must not contain a NUL character (U+0000)")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{field}: {_short(value)} is not one of {', '.join(schema['enum'])}")
    if "minimum" in schema and not schema["minimum"] <= value <= schema["maximum"]:
        low, high = schema["minimum"], schema["maximum"]
        raise SchemaError(f"{field}: {_short(value)} is out of range: use a whole number {low}..{high}")
    if kind == "array":
        if len(value) < schema.get("minItems", 0):
            raise SchemaError(f"{field}: give at least {schema['minItems']} item(s)")
        return [_check(schema["items"], item, f"{where}[{i}]") for i, item in enumerate(value)]
    if kind == "object":
        properties = schema["properties"]
        unknown = sorted(set(value) - set(properties))
        if unknown:
            accepted = ", ".join(properties) or "none"
            raise SchemaError(f"{field}: unknown field(s) {', '.join(unknown)}: accepted {accepted}")
        missing = [key for key in schema["required"] if key not in value]
        if missing:
            prefix = f"{where}." if where else ""
            raise SchemaError(f"{prefix}{missing[0]}: required field missing")
        prefix = f"{where}." if where else ""
        return {key: _check(properties[key], item, prefix + key) for key, item in value.items()}
    return value


def _short(value: Any) -> str:
    """A value as JSON, cut to a readable length."""
    import json

    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
