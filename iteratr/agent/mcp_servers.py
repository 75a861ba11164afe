"""The MCP server iteratr gives the agent in ``session/new``: ``iteratr mcp``, the session tools typed.

ACP makes stdio MCP servers part of every agent (``agentCapabilities.mcpCapabilities`` advertises only the
other transports, http and sse), so every turn's ``session/new`` carries the server once the run has set the
session's variables in the agent's environment. The agent starts it with the session (once per iteration) and
calls its tools over that one connection, instead of a Python start per ``iteratr tool`` call.

Its command is the one that runs this iteratr (``ITERATR_BIN``) with ``mcp``, its environment the session's
variables. ``ITERATR_MCP=0`` (or off, false, no) leaves it out: the agent then has only the shell commands.

What the prompt can teach depends on how the agent names the server's tools, which ACP does not say: opencode
shows ``task_add`` as ``iteratr_task_add``. ``TOOL_PREFIXES`` holds the namings seen (by an end-to-end test); for
an agent not listed, the prompt keeps teaching ``iteratr tool`` through the shell, which works the same, while
the typed tools are still there for the agent to use.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from typing import Any

from iteratr.agent.events import AgentInfo

SERVER_NAME = "iteratr"  # iteratr.mcp.tools.SERVER_NAME: the agent's tool names start from it
# The agent's name in its initialize answer (lower case) -> how it names the server's tools, proven by a test:
# tests/e2e/test_opencode_mcp.py for opencode.
TOOL_PREFIXES = {"opencode": f"{SERVER_NAME}_"}
# The variables the server needs: which session, and where its files are.
SERVER_ENV = ("ITERATR_SESSION", "ITERATR_DATA_DIR")
OFF = frozenset({"0", "off", "false", "no"})


@dataclasses.dataclass(frozen=True)
class StdioServer:
    """An MCP server the agent starts over stdio, as ACP's ``McpServerStdio`` describes it."""

    name: str
    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]

    def to_acp(self) -> Any:
        from acp.schema import EnvVariable, McpServerStdio

        return McpServerStdio(
            name=self.name,
            command=self.command,
            args=list(self.args),
            env=[EnvVariable(name=k, value=v) for k, v in self.env],
        )


def iteratr_server(env: Mapping[str, str]) -> StdioServer | None:
    """``iteratr mcp`` for the session in ``env`` (the agent's environment), or None: no session there (a probe
    from ``doctor`` or ``setup``), or ``ITERATR_MCP`` turns it off."""
    if env.get("ITERATR_MCP", "").strip().lower() in OFF:
        return None
    binary = shlex.split(env.get("ITERATR_BIN", ""))
    if not binary or not env.get("ITERATR_SESSION"):
        return None
    variables = tuple((name, env[name]) for name in SERVER_ENV if env.get(name))
    return StdioServer(SERVER_NAME, binary[0], (*binary[1:], "mcp"), variables)


def describe(info: AgentInfo, server: StdioServer | None) -> AgentInfo:
    """``info`` saying how the agent names iteratr's tools (``AgentInfo.mcp_prefix``), where that is known."""
    if server is None:
        return info
    prefix = TOOL_PREFIXES.get(info.name.strip().lower())
    return dataclasses.replace(info, mcp_prefix=prefix) if prefix is not None else info
