"""``iteratr mcp``: serve the session tools over MCP on stdio, with the official SDK's low-level server.

The agent starts this once per ACP session, that is once per iteration (``iteratr.agent.mcp_servers`` puts it in
``session/new``), and then calls tools over the one connection: a call costs a message, not a Python start
and a store open (``bench/bench_mcp.py``). The session and data dir come from the environment the build gives the
agent (``ITERATR_SESSION``, ``ITERATR_DATA_DIR``), as for ``iteratr tool``.

Why the low-level ``Server`` and not the decorator layer (``MCPServer``): the tools are a table
(``iteratr.mcp.tools``) whose schemas are written from the store's own vocabularies, and a call must go through
the very code ``iteratr tool`` runs (``toolcli.execute``), with the same messages; a wrapper that builds schemas
from Python signatures and validates through pydantic would be a second description of the same rules, with its
own error wording.

Every call answers: a schema error (naming the field), a refusal from the store (the CLI's one-line message) and
even a bug come back as a tool result with ``isError``, never as a dead server. A refused call writes nothing:
arguments are checked before anything runs, and the store's writes are all or nothing.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from iteratr import paths, toolcli
from iteratr.errors import IteratrError, UsageError
from iteratr.mcp import tools

if TYPE_CHECKING:
    import mcp_types
    from mcp.server import ServerRequestContext
    from mcp.server.lowlevel import Server

    from iteratr.session.store import Store


def serve_stdio() -> int:
    """Serve the session of the environment on this process's stdio until the client closes it."""
    store = open_store()
    import anyio

    anyio.run(serve, store)
    return 0


def open_store() -> Store:
    """The session's store, from the environment as ``iteratr tool`` reads it; nothing is touched on disk until a
    tool is called."""
    session = os.environ.get("ITERATR_SESSION")
    if not session:
        raise UsageError("no session given: set ITERATR_SESSION (iteratr build sets it for the agent)")
    from iteratr.session.store import Store

    return Store(paths.data_dir_from(None), session)


def build(store: Store) -> Server[Any]:
    """The SDK server for ``store``'s session: the tool list, and calls answered through ``call``."""
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from iteratr import __version__

    listing = types.ListToolsResult(
        tools=[
            types.Tool(
                name=name,
                description=description,
                input_schema=schema,
                annotations=types.ToolAnnotations(read_only_hint=read_only),
            )
            for name, (description, schema, read_only) in tools.TOOLS.items()
        ]
    )

    async def list_tools(_ctx: ServerRequestContext[Any], _params: Any) -> mcp_types.ListToolsResult:
        return listing

    async def call_tool(_ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams) -> Any:
        return call(store, params.name, params.arguments)

    return Server(
        tools.SERVER_NAME,
        version=__version__,
        instructions=f"The task list, notes and summaries of iteratr session {store.name}.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def call(store: Store, name: str, arguments: object) -> mcp_types.CallToolResult:
    """One tool call: the subcommand's text answer, its JSON as structured content; or an error result."""
    import mcp_types as types

    try:
        checked = tools.check(name, arguments)
        result, text = toolcli.execute(tools.subcommand(name), store, tools.options(checked))
        answer = text()
    except tools.SchemaError as exc:
        return _error(f"invalid arguments for {name}: {exc}")
    except IteratrError as exc:
        return _error(str(exc))  # what `iteratr tool` prints after "iteratr: error: "
    except Exception as exc:  # a bug must not end the agent's tools for the rest of the iteration
        return _error(f"internal error in {name}: {type(exc).__name__}: {exc} ({_log_crash()})")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=answer)], structured_content={"result": result}
    )


def _error(message: str) -> mcp_types.CallToolResult:
    import mcp_types as types

    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], is_error=True)


def _log_crash() -> str:
    import traceback

    from iteratr.boundary import crash_log_path

    path = crash_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write("--- iteratr mcp\n")
            traceback.print_exc(file=f)
    except OSError:
        traceback.print_exc(file=sys.stderr)
        return "traceback on the server's stderr"
    return f"traceback in {path}"


async def serve(store: Store) -> None:
    from mcp.server.stdio import stdio_server

    server = build(store)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
