"""The MCP tool table: one tool per ``iteratr tool`` subcommand, schemas with the store's vocabularies, and the
check of a call, held to the ``jsonschema`` package on the very schemas the server advertises."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iteratr import toolcli
from iteratr.mcp import tools
from iteratr.session.state import NOTE_TYPES, PRIORITY_MAX, PRIORITY_MIN, TASK_STATUSES


def test_one_tool_per_subcommand_and_one_argument_per_flag() -> None:
    assert [tools.subcommand(name) for name in tools.TOOLS] == list(toolcli.COMMANDS)
    for name, (_, schema, _) in tools.TOOLS.items():
        flags = {flag for flag, *_ in toolcli.COMMANDS[tools.subcommand(name)][1]}
        if name == "task_batch_add":
            assert set(tools.options({"tasks": []})) == flags == {"--tasks"}
        else:
            assert set(tools.options(dict.fromkeys(schema["properties"]))) == flags, name
        required = {flag for flag, _, req, _ in toolcli.COMMANDS[tools.subcommand(name)][1] if req}
        assert set(tools.options(dict.fromkeys(schema["required"]))) == required, name


def test_schemas_carry_the_vocabularies_of_the_store() -> None:
    schemas = {name: schema for name, (_, schema, _) in tools.TOOLS.items()}
    item = schemas["task_batch_add"]["properties"]["tasks"]["items"]
    for task in (schemas["task_add"], item):
        assert task["properties"]["status"]["enum"] == list(TASK_STATUSES)
        assert task["properties"]["priority"] == {
            **task["properties"]["priority"],
            "type": "integer",
            "minimum": PRIORITY_MIN,
            "maximum": PRIORITY_MAX,
        }
        assert task["properties"]["depends_on"]["type"] == "array"
    assert schemas["task_batch_add"]["properties"]["tasks"]["type"] == "array"  # typed, not a JSON string
    assert item["type"] == "object" and item["required"] == ["content"]
    assert schemas["task_status"]["properties"]["status"]["enum"] == list(TASK_STATUSES)
    assert schemas["task_priority"]["properties"]["priority"]["maximum"] == PRIORITY_MAX
    assert schemas["note_add"]["properties"]["type"]["enum"] == list(NOTE_TYPES)
    assert schemas["note_list"]["properties"]["type"]["enum"] == list(NOTE_TYPES)
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["additionalProperties"] is False


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("task_status", {"id": "TAS-1", "status": "done"}, 'status: "done" is not one of remaining, in_progress'),
        ("task_status", {"id": "TAS-1"}, "status: required field missing"),
        ("task_priority", {"id": "TAS-1", "priority": 5}, "priority: 5 is out of range: use a whole number 0..4"),
        ("task_priority", {"id": "TAS-1", "priority": "high"}, 'priority: must be a whole number, not "high"'),
        ("task_priority", {"id": "TAS-1", "priority": True}, "priority: must be a whole number, not true"),
        ("task_add", {"content": "x", "colour": "red"}, "arguments: unknown field(s) colour: accepted content,"),
        ("task_add", {"content": "x", "depends_on": "TAS-1"}, 'depends_on: must be an array, not "TAS-1"'),
        ("task_batch_add", {"tasks": '[{"content": "x"}]'}, "tasks: must be an array, not"),
        ("task_batch_add", {"tasks": []}, "tasks: give at least 1 item(s)"),
        ("task_batch_add", {"tasks": [{"content": "a"}, {"priority": 1}]}, "tasks[1].content: required field missing"),
        ("task_batch_add", {"tasks": [{"content": "a", "depends_on": [3]}]}, "tasks[0].depends_on[0]: must be a"),
        ("note_add", {"content": "x", "type": "idea"}, 'type: "idea" is not one of learning, stuck, tip, decision'),
        ("task_list", {"all": "yes"}, 'all: must be true or false, not "yes"'),
        ("task_next", {"all": True}, "arguments: unknown field(s) all: accepted none"),
        ("task_list", [], "arguments: must be an object"),
        ("no_such_tool", {}, "unknown tool 'no_such_tool': use one of task_add,"),
        # A NUL, which no command line carries and git refuses in a commit message (the build would stop there).
        ("task_add", {"content": "a\x00b"}, "content: must not contain a NUL character"),
        ("task_batch_add", {"tasks": [{"content": "\x00"}]}, "tasks[0].content: must not contain a NUL character"),
        ("iteration_summary", {"summary": "done\x00"}, "summary: must not contain a NUL character"),
        ("note_add", {"content": "x", "type": "tip\x00"}, "type: must not contain a NUL character"),
        # A huge whole number is named in a line of readable length.
        (
            "task_priority",
            {"id": "TAS-1", "priority": 1e308},
            "priority: 1000000000000000010979063629440455417404923096773118463",
        ),
    ],
)
def test_a_malformed_call_is_refused_naming_the_field(name: str, arguments: Any, message: str) -> None:
    with pytest.raises(tools.SchemaError) as refused:
        tools.check(name, arguments)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200


def test_a_good_call_becomes_the_subcommands_flags() -> None:
    checked = tools.check("task_add", {"content": "x", "priority": 3.0, "depends_on": ["TAS-1"]})
    assert checked == {"content": "x", "priority": 3, "depends_on": ["TAS-1"]}
    assert isinstance(checked["priority"], int)
    assert tools.options(checked) == {"--content": "x", "--priority": 3, "--depends-on": ["TAS-1"]}
    assert tools.check("task_next", None) == {}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 8) | st.sampled_from(["", "x", "TAS-1", "done", *TASK_STATUSES]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["content", "id", "x"]), inner),
    max_leaves=6,
)
FIELDS = st.sampled_from(["content", "status", "priority", "depends_on", "id", "type", "summary", "tasks", "all", "x"])


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(list(tools.TOOLS)), arguments=st.dictionaries(FIELDS, JSON, max_size=4))
def test_the_check_is_the_advertised_schema(name: str, arguments: dict[str, Any]) -> None:
    """What ``check`` accepts is exactly what JSON Schema says the advertised schema accepts."""
    valid = jsonschema.Draft202012Validator(tools.TOOLS[name][1]).is_valid(arguments)
    try:
        tools.check(name, arguments)
    except tools.SchemaError:
        assert not valid, arguments
    else:
        assert valid, arguments
