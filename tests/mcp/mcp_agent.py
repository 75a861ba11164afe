"""A minimal ACP agent that uses the MCP servers its client gives it in ``session/new``, for tests.

Run as ``python mcp_agent.py NAME LOG``: it answers ``initialize`` as agent NAME, appends what each ``session/new``
carried to LOG (one JSON line per session: ``{"session": ..., "mcpServers": [...]}``), and on a prompt starts every
stdio server of the session with the MCP SDK's client, calls ``task_add`` with the prompt's text as the task, and
says the tool's answer. So a test sees both what iteratr passed and that it runs as the agent would run it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any, cast

import acp
from acp import schema as s
from mcp import Client
from mcp.client.stdio import StdioServerParameters


class McpAgent:
    def __init__(self, name: str, log: str) -> None:
        self._name = name
        self._log = log
        self._client: Any = None
        self._servers: dict[str, list[Any]] = {}

    def on_connect(self, conn: Any) -> None:
        self._client = conn

    async def initialize(self, protocol_version: int, **kwargs: Any) -> s.InitializeResponse:
        return s.InitializeResponse(
            protocol_version=acp.PROTOCOL_VERSION, agent_info=s.Implementation(name=self._name, version="0.0")
        )

    async def new_session(self, cwd: str, mcp_servers: list[Any] | None = None, **kwargs: Any) -> s.NewSessionResponse:
        session_id = f"mcp-{len(self._servers) + 1}"
        self._servers[session_id] = list(mcp_servers or [])
        servers = [srv.model_dump(mode="json", by_alias=True, exclude_none=True) for srv in self._servers[session_id]]
        with open(self._log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"session": session_id, "mcpServers": servers}) + "\n")
        return s.NewSessionResponse(session_id=session_id)

    async def prompt(self, prompt: list[Any], session_id: str, **kwargs: Any) -> s.PromptResponse:
        text = "".join(getattr(block, "text", "") for block in prompt)
        for server in self._servers[session_id]:
            params = StdioServerParameters(
                command=server.command, args=list(server.args), env={e.name: e.value for e in server.env}
            )
            async with Client(params) as client:
                result = await client.call_tool("task_add", {"content": text})
            answer = "".join(getattr(c, "text", "") for c in result.content)
            await self._client.session_update(session_id, acp.update_agent_message_text(f"{server.name}: {answer}\n"))
        return s.PromptResponse(stop_reason="end_turn")

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        return None


if __name__ == "__main__":
    asyncio.run(acp.run_agent(cast(acp.Agent, McpAgent(sys.argv[1], sys.argv[2]))))
