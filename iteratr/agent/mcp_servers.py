"""The MCP server iteratr gives the agent in ``session/new``: ``iteratr mcp``, the session tools typed.

ACP makes stdio MCP servers part of every agent (``agentCapabilities.mcpCapabilities`` advertises only the
other transports, http and sse), so every turn's ``session/new`` carries the server once the run has set the
session's variables in the agent's environment. The agent starts it with the session (once per iteration) and
calls its tools over that one connection, instead of a Python start per ``iteratr tool`` call.

Its command is the one that runs this iteratr (``ITERATR_BIN``) with ``mcp``, its environment the session's
variables and the socket of the run's listener (``McpHost``): what the agent starts each iteration is a relay of
milliseconds, and the SDK's import is paid once per run (``iteratr.mcp.relay``). ``ITERATR_MCP=0`` (or off, false,
no) leaves the server out: the agent then has only the shell commands.

What the prompt can teach depends on how the agent names the server's tools to its model, which ACP does not say:
opencode shows ``task_add`` as ``iteratr_task_add``, Claude Code and Codex as ``mcp__iteratr__task_add``, Gemini
CLI as ``mcp_iteratr_task_add``. ``TOOL_PREFIXES`` holds the namings seen (by an end-to-end test); for an agent not
listed, the prompt keeps teaching ``iteratr tool`` through the shell, which works the same, while the typed tools
are still there for the agent to use. So does an agent that starts the server only under a condition iteratr
cannot see (``CONNECTS_ONLY_IF``): the prompt must never name tools the model was not given.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from iteratr import procs
from iteratr.agent.events import AgentInfo

SERVER_NAME = "iteratr"  # iteratr.mcp.tools.SERVER_NAME: the agent's tool names start from it
# The agent's name in its initialize answer (lower case) -> how it names the server's tools to its model, as the
# tool list of its model requests shows (tests/e2e/test_opencode_mcp.py for opencode, test_presets_mcp.py for the
# others).
TOOL_PREFIXES = {
    "opencode": f"{SERVER_NAME}_",
    "@zed-industries/claude-code-acp": f"mcp__{SERVER_NAME}__",  # Claude Code: mcp__<server>__<tool>
    # Codex offers them as a Responses namespace "mcp__iteratr" holding "task_add", …; its own instructions name
    # such a tool mcp__<server>__<tool>, and the model's calls name the namespace and the tool.
    "codex-acp": f"mcp__{SERVER_NAME}__",
    "gemini-cli": f"mcp_{SERVER_NAME}_",  # Gemini CLI: mcp_<server>_<tool>
}
# The variables the server needs: which session, and where its files are.
SERVER_ENV = ("ITERATR_SESSION", "ITERATR_DATA_DIR")
OFF = frozenset({"0", "off", "false", "no"})


def _gemini_trusts_the_folder(env: Mapping[str, str]) -> bool:
    """Gemini CLI connects no stdio MCP server, its own or the ACP client's, in a folder it does not trust, and a
    folder is untrusted until someone trusts it (``security.folderTrust.enabled`` defaults to true, 0.61.0). Of the
    ways to trust it, only its environment is visible here: ``GEMINI_CLI_TRUST_WORKSPACE=true`` (what ``--skip-trust``
    sets), unless ``GEMINI_RESTRICTED_MODE=true`` overrides it."""
    return env.get("GEMINI_CLI_TRUST_WORKSPACE") == "true" and env.get("GEMINI_RESTRICTED_MODE") != "true"


# Agents that start iteratr's server only under a condition: the agent's environment -> whether it will.
CONNECTS_ONLY_IF = {"gemini-cli": _gemini_trusts_the_folder}


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


class McpHost:
    """iteratr's MCP server for one agent process: the listener that serves the whole run, started with the agent
    (``iteratr mcp --listen``, see ``iteratr.mcp.relay``), and the relay to it that each ``session/new`` carries.

    If the listener cannot start, the server given is plain ``iteratr mcp``, which serves by itself. The listener
    reads nothing on stdin: it exits when the pipe closes, so a build killed with SIGKILL leaves it no time alive.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.server = iteratr_server(env)
        self._env = dict(env)
        self._given = self.server
        self._proc: asyncio.subprocess.Process | None = None
        self._dir: str | None = None

    async def start(self, cwd: Path) -> bool:
        """Start the listener, unless there is nothing to serve or it runs (it outlives an agent's restart); True if
        it was started now."""
        if self.server is None or (self._proc is not None and self._proc.returncode is None):
            return False
        await self.stop()
        self._dir = tempfile.mkdtemp(prefix="iteratr-mcp-")  # mode 0700: only this user reaches the socket
        path = os.path.join(self._dir, "socket")
        argv = [self.server.command, *self.server.args, "--listen", path]
        env = {**self._env, **dict(self.server.env)}
        try:
            self._proc = await procs.start_async(
                argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        except OSError:
            return False  # the relays find no socket and serve by themselves
        self._given = dataclasses.replace(self.server, env=(*self.server.env, ("ITERATR_MCP_SOCKET", path)))
        return True

    def servers(self) -> list[Any]:
        """``session/new``'s ``mcpServers``."""
        return [self._given.to_acp()] if self._given is not None else []

    def describe(self, info: AgentInfo) -> AgentInfo:
        return describe(info, self.server, self._env)

    async def stop(self) -> None:
        proc, self._proc, self._given = self._proc, None, self.server
        if proc is not None:
            if proc.stdin is not None:
                proc.stdin.close()  # its cue to exit
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 2.0)
            if proc.returncode is None:
                await procs.stop_async(proc, grace=1.0)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill_now(self) -> None:
        if self._proc is not None:
            procs.signal_group(self._proc.pid, signal.SIGKILL)
        if self._dir is not None:  # a killed listener cannot remove its own socket's directory
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


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


def describe(info: AgentInfo, server: StdioServer | None, env: Mapping[str, str] | None = None) -> AgentInfo:
    """``info`` saying how the agent names iteratr's tools (``AgentInfo.mcp_prefix``), where that is known and the
    agent, run with ``env``, starts the server."""
    if server is None:
        return info
    name = info.name.strip().lower()
    prefix = TOOL_PREFIXES.get(name)
    connects = CONNECTS_ONLY_IF.get(name)
    if prefix is None or (connects is not None and not connects(env or {})):
        return info
    return dataclasses.replace(info, mcp_prefix=prefix)
