"""``iteratr mcp`` over real stdio: the server spawned as the agent spawns it, spoken to with the MCP SDK's client.

Each tool is held to ``iteratr tool``: the same calls on two sessions (one through MCP, one through the CLI) give
the same answers, the same one-line errors, and the same store. A malformed call gets a schema error naming the
field, writes nothing, and the server goes on serving.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from iteratr import toolcli
from iteratr.mcp import server as mcp_server
from iteratr.mcp import tools
from tests.conftest import ITERATR_CMD, run_cli


@asynccontextmanager
async def connect(cwd: Path, session: str = "S", **env: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=ITERATR_CMD[0],
        args=[*ITERATR_CMD[1:], "mcp"],
        env={**os.environ, "ITERATR_SESSION": session, **env},
        cwd=str(cwd),
    )
    async with Client(params, read_timeout_seconds=60) as client:
        yield client


def serve(cwd: Path, body: Callable[[Client], Awaitable[None]], **env: str) -> None:
    async def main() -> None:
        async with connect(cwd, **env) as client:
            await body(client)

    anyio.run(main)


def text_of(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def session_files(cwd: Path, session: str = "S") -> dict[str, bytes]:
    folder = cwd / ".iteratr" / session
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()} if folder.exists() else {}


def test_it_lists_every_tool_with_its_schema(tmp_path: Path) -> None:
    async def body(client: Client) -> None:
        listing = await client.list_tools()
        assert [t.name for t in listing.tools] == list(tools.TOOLS)
        for tool in listing.tools:
            description, schema, read_only = tools.TOOLS[tool.name]
            assert tool.description == description
            assert tool.input_schema == schema
            assert tool.annotations is not None and tool.annotations.read_only_hint is read_only
        assert client.server_info is not None and client.server_info.name == "iteratr"

    serve(tmp_path, body)


# Calls made in order on a fresh session, once through MCP and once through `iteratr tool`; refusals included.
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("task_list", {}),
    ("task_next", {}),
    ("session_complete", {}),
    (
        "task_batch_add",
        {
            "tasks": [
                {"content": "Write the parser", "priority": 4},
                {"content": "Test the parser", "depends_on": ["TAS-1"]},
                {"content": "Document it", "status": "remaining", "priority": 0, "depends_on": ["TAS-1", "TAS-2"]},
            ]
        },
    ),
    ("task_batch_add", {"tasks": [{"content": "ok"}, {"content": "bad", "depends_on": ["TAS-99"]}]}),
    ("task_add", {"content": "  Release  ", "priority": 1, "depends_on": ["3"]}),
    ("task_add", {"content": "   "}),
    ("task_status", {"id": "TAS-9", "status": "completed"}),
    ("task_status", {"id": "1", "status": "in_progress"}),
    ("task_status", {"id": "TAS-1", "status": "in_progress"}),
    ("task_priority", {"id": "tas-4", "priority": 3}),
    ("task_depends", {"id": "TAS-1", "depends_on": "TAS-3"}),
    ("task_depends", {"id": "TAS-2", "depends_on": "TAS-2"}),
    ("task_depends", {"id": "TAS-4", "depends_on": "TAS-2"}),
    ("task_depends", {"id": "bogus", "depends_on": "TAS-2"}),
    ("task_next", {}),
    ("note_add", {"content": "the grammar is LL(1)", "type": "decision"}),
    ("note_add", {"content": "", "type": "tip"}),
    ("note_list", {}),
    ("note_list", {"type": "tip"}),
    ("iteration_summary", {"summary": "started the parser"}),
    ("session_complete", {}),
    ("task_status", {"id": "TAS-1", "status": "completed"}),
    ("task_status", {"id": "TAS-2", "status": "cancelled"}),
    ("task_status", {"id": "TAS-3", "status": "blocked"}),
    ("task_status", {"id": "TAS-4", "status": "completed"}),
    ("task_next", {}),
    ("session_complete", {}),
    ("task_list", {}),
    ("task_list", {"all": True}),
]


def cli_args(name: str, arguments: dict[str, Any]) -> list[str]:
    args = ["tool", tools.subcommand(name), "-n", "S"]
    for flag, value in tools.options(arguments).items():
        if isinstance(value, bool):
            args += [flag] if value else []
        elif isinstance(value, list) and flag == "--tasks":
            args += [flag, json.dumps(value)]
        elif isinstance(value, list):
            args += [flag, *value]
        else:
            args += [flag, str(value)]
    return args


def test_each_tool_answers_and_refuses_as_the_cli_does(tmp_path: Path) -> None:
    """Same answers (text and JSON), same one-line errors, same store: the two paths share their code."""
    via_mcp, via_cli = tmp_path / "mcp", tmp_path / "cli"
    via_mcp.mkdir()
    via_cli.mkdir()
    answers: list[tuple[bool, str, Any]] = []

    async def body(client: Client) -> None:
        for name, arguments in CALLS:
            result = await client.call_tool(name, arguments)
            structured = result.structured_content
            answers.append((bool(result.is_error), text_of(result), structured and structured["result"]))

    serve(via_mcp, body)
    for (name, arguments), (is_error, text, structured) in zip(CALLS, answers, strict=True):
        cli = run_cli(*cli_args(name, arguments), cwd=via_cli, expect=None)
        said = f"{name} {arguments}: MCP {text!r}, CLI {cli!r}"
        if cli.returncode == 0:
            assert not is_error and text == cli.stdout.rstrip("\n"), said
            if tools.TOOLS[name][2]:  # a read: its JSON as --json prints it
                as_json = run_cli(*cli_args(name, arguments), "--json", cwd=via_cli).stdout
                assert structured == json.loads(as_json), said
        else:
            assert cli.returncode == 2 and is_error, said
            assert cli.stderr == f"iteratr: error: {text}\n".replace(str(via_mcp), str(via_cli)), said
    assert sum(e for e, _, _ in answers) >= 9  # the refusals above were refused
    for cwd in (via_mcp, via_cli):
        assert "TAS-5" not in session_files(cwd)["events.jsonl"].decode()  # the refused batch added nothing
    for read in ("task-list", "note-list"):
        listed = [json.loads(run_cli("tool", read, "-n", "S", "--json", cwd=cwd).stdout) for cwd in (via_mcp, via_cli)]
        assert listed[0] == listed[1] != []
    assert session_files(via_mcp)["tasks.yaml"] == session_files(via_cli)["tasks.yaml"]


MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    ("task_batch_add", {"tasks": '[{"content": "as a string"}]'}, "tasks: must be an array"),
    ("task_batch_add", {"tasks": [{"content": "fine"}, {"content": "bad", "priority": 7}]}, "tasks[1].priority"),
    ("task_batch_add", {"tasks": [{"content": "a", "owner": "me"}]}, "tasks[0]: unknown field(s) owner"),
    ("task_add", {"priority": 2}, "content: required field missing"),
    ("task_add", {"content": "x", "status": "done"}, 'status: "done" is not one of'),
    ("task_status", {"id": 1, "status": "completed"}, "id: must be a string, not 1"),
    ("task_priority", {"id": "TAS-1", "priority": -1}, "priority: -1 is out of range"),
    ("note_add", {"content": "n", "type": "idea"}, 'type: "idea" is not one of learning, stuck, tip, decision'),
    ("iteration_summary", {"summary": None}, "summary: must be a string, not null"),
    ("session_complete", {"force": True}, "unknown field(s) force"),
    ("task_remove", {"id": "TAS-1"}, "unknown tool 'task_remove'"),
]


def test_a_malformed_call_is_a_schema_error_naming_the_field_and_writes_nothing(tmp_path: Path) -> None:
    run_cli("tool", "task-add", "-n", "S", "--content", "seed", cwd=tmp_path)
    before = session_files(tmp_path)
    seen: list[tuple[bool, str]] = []

    async def body(client: Client) -> None:
        for name, arguments, _ in MALFORMED:
            result = await client.call_tool(name, arguments)
            seen.append((bool(result.is_error), text_of(result)))
        # The server is still there, and still writes.
        result = await client.call_tool("task_status", {"id": "TAS-1", "status": "completed"})
        seen.append((bool(result.is_error), text_of(result)))

    serve(tmp_path, body)
    for (name, _, field), (is_error, text) in zip(MALFORMED, seen, strict=False):
        assert is_error and text.startswith(f"invalid arguments for {name}: ") and field in text, (name, text)
        assert "\n" not in text
    assert seen[-1] == (False, "TAS-1 [P2] completed: seed")
    after = session_files(tmp_path)
    assert after["events.jsonl"].startswith(before["events.jsonl"])
    assert after["events.jsonl"].count(b"\n") == before["events.jsonl"].count(b"\n") + 1  # only the last call


def test_a_refused_call_leaves_the_store_unchanged(tmp_path: Path) -> None:
    run_cli("tool", "task-batch-add", "-n", "S", "--tasks", '[{"content": "a"}, {"content": "b"}]', cwd=tmp_path)
    run_cli("tool", "task-depends", "-n", "S", "--id", "TAS-2", "--depends-on", "TAS-1", cwd=tmp_path)
    before = session_files(tmp_path)
    refused: list[tuple[str, dict[str, Any]]] = [
        ("task_depends", {"id": "TAS-1", "depends_on": "TAS-2"}),  # a cycle
        ("task_batch_add", {"tasks": [{"content": "c"}, {"content": "d", "depends_on": ["TAS-7"]}]}),
        ("session_complete", {}),
        ("task_status", {"id": "TAS-3", "status": "completed"}),
        ("note_add", {"content": " ", "type": "tip"}),
    ]
    results: list[bool] = []

    async def body(client: Client) -> None:
        for name, arguments in refused:
            results.append(bool((await client.call_tool(name, arguments)).is_error))

    serve(tmp_path, body)
    assert results == [True] * len(refused)
    assert session_files(tmp_path) == before


def raw_exchange(cwd: Path, lines: list[str], answers: int) -> list[dict[str, Any]]:
    """Send raw lines to `iteratr mcp` and read ``answers`` JSON-RPC responses back."""
    proc = subprocess.Popen(
        [*ITERATR_CMD, "mcp"],
        cwd=cwd,
        env={**os.environ, "ITERATR_SESSION": "S"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write("".join(line + "\n" for line in lines))
        proc.stdin.flush()
        replies = [json.loads(proc.stdout.readline()) for _ in range(answers)]
        assert proc.poll() is None  # still serving
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return replies


def request(number: int, method: str, params: dict[str, Any]) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": number, "method": method, "params": params})


def test_garbage_on_the_wire_never_ends_the_server(tmp_path: Path) -> None:
    init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}
    replies = raw_exchange(
        tmp_path,
        [
            request(1, "initialize", init),
            json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            "this is not JSON",
            request(2, "tools/call", {"name": "task_add", "arguments": "not an object"}),
            request(3, "tools/call", {"name": "task_add", "arguments": {"content": "still here"}}),
        ],
        answers=3,
    )
    by_id = {reply.get("id"): reply for reply in replies}
    assert by_id[1]["result"]["serverInfo"]["name"] == "iteratr"
    assert "error" in by_id[2]  # the protocol layer refuses arguments that are not an object
    assert by_id[3]["result"]["content"][0]["text"] == "added TAS-1 [P2] remaining: still here"
    assert "still here" in session_files(tmp_path)["events.jsonl"].decode()


def test_a_bug_in_a_call_is_an_error_result_not_a_dead_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """In process: an exception that is no IteratrError comes back as an error naming it and the crash log."""
    monkeypatch.setenv("ITERATR_SESSION", "S")
    monkeypatch.chdir(tmp_path)

    def broken(*_args: object) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(toolcli, "execute", broken)
    result = mcp_server.call(mcp_server.open_store(), "task_list", {})
    assert result.is_error
    assert text_of(result).startswith("internal error in task_list: RuntimeError: boom (traceback in ")


def test_without_a_session_it_stops_with_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("mcp", cwd=tmp_path, expect=2)
    no_session = "no session given: set ITERATR_SESSION (iteratr build sets it for the agent)"
    assert result.stderr == f"iteratr: error: {no_session}\n"
    assert run_cli("mcp", "extra", cwd=tmp_path, env={"ITERATR_SESSION": "S"}, expect=2).stderr.count("\n") == 1
    assert "task_batch_add" in run_cli("mcp", "--help", cwd=tmp_path).stdout


def test_the_mcp_path_imports_no_click(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        f"sys.argv = ['iteratr', 'mcp', '--help']\n"
        f"sys.path.insert(0, {str(Path(ITERATR_CMD[-1]).parent)!r})\n"
        "from iteratr.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('click', 'git', 'jinja2', 'acp') if m in sys.modules), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr
