"""A scripted OpenAI Responses API server, so Codex (through ``codex-acp``) runs offline in tests.

Codex no longer speaks chat-completions (``wire_api = "chat"`` is refused: "no longer supported"); a provider in
its ``config.toml`` (``model_providers.<id>``: ``base_url``, ``env_key``, ``wire_api = "responses"``) points it at
``POST <base_url>/responses``, ``stream: true``. Requests:

- agent turns (with ``tools``): the last ``user`` message item holding text is iteratr's prompt (Codex puts its
  environment context and instructions in ``<…>``-tagged text, which is skipped); the ``function_call`` items after
  it, answered by ``function_call_output`` items (matched by ``call_id``), are the steps so far. The script's
  :class:`~tests.e2e.model_server.Bash` becomes a call of Codex's shell tool, whichever it offers;
- side requests (no ``tools``): a short text, listed in ``side_requests``; ``GET …/models`` lists one model.

Codex offers an MCP server's tools as a Responses ``namespace`` tool (``{"type": "namespace", "name":
"mcp__iteratr", "tools": [{"type": "function", "name": "task_add", …}, …]}``), and a call of one is a
``function_call`` naming both (``"namespace": "mcp__iteratr", "name": "task_add"``). Here such a tool is known by
the name Codex itself gives it (its instructions too), ``<namespace>__<name>``: ``mcp__iteratr__task_add`` in
``AgentTurn.tools``, in a step, and in a script's :class:`~tests.e2e.model_server.Call`.

Each answer streams the Responses events (``response.created`` … ``response.completed``), the last with a usage
that differs per call (``model_server.usage_for``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from .model_server import Action, AgentTurn, Bash, Step, Text
from .scripted_api import Reply, ScriptedApiServer, sse

MODEL_ID = "scripted"
# Codex's shell tools, in the order preferred: (name, how the command is passed).
SHELL_TOOLS = ("shell_command", "exec_command", "shell", "local_shell")


def _item_texts(item: dict[str, Any]) -> list[str]:
    content = item.get("content")
    if isinstance(content, str):
        return [content]
    texts = [
        str(part.get("text", ""))
        for part in content or []
        if isinstance(part, dict) and part.get("type") in ("input_text", "output_text", "text")
    ]
    return [t for t in texts if not t.lstrip().startswith("<")]


def _output_text(output: Any) -> str:
    """What a command printed, from Codex's answer (plain text, or JSON with ``output``; headers dropped)."""
    if isinstance(output, list):
        output = "\n".join(str(p.get("text", "")) for p in output if isinstance(p, dict))
    text = str(output)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and "output" in data:
        text = str(data["output"])
    # exec_command answers "Chunk ID: …\nWall time: …\nProcess exited with code 0\n…\nOutput:\n<output>".
    marker = "\nOutput:\n"
    if marker in text:
        text = text.split(marker, 1)[1]
    return text


def offered(tools: Any) -> dict[str, tuple[str, str]]:
    """The tools a request offers, by name: a plain tool's name -> ("", name); a namespace's tool's
    ``<namespace>__<name>`` -> (namespace, name)."""
    found: dict[str, tuple[str, str]] = {}
    for tool in tools or []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "namespace":
            space = str(tool.get("name", ""))
            for inner in tool.get("tools") or []:
                if isinstance(inner, dict):
                    found[f"{space}__{inner.get('name', '')}"] = (space, str(inner.get("name", "")))
        else:
            name = str(tool.get("name", tool.get("type", "")))
            found[name] = ("", name)
    return found


def _command(name: str, arguments: dict[str, Any]) -> str:
    command = arguments.get("command", arguments.get("cmd", ""))
    if isinstance(command, list):  # ["bash", "-lc", "<script>"]
        return str(command[-1]) if command else ""
    return str(command)


def parse_turn(body: dict[str, Any], received_at: float) -> AgentTurn:
    items: list[dict[str, Any]] = [i for i in body.get("input") or [] if isinstance(i, dict)]
    last_user = max(
        (
            n
            for n, item in enumerate(items)
            if item.get("role") == "user" and item.get("type", "message") == "message" and "".join(_item_texts(item))
        ),
        default=-1,
    )
    prompt = "\n".join(_item_texts(items[last_user])) if last_user >= 0 else ""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    order: list[str] = []
    results: dict[str, str] = {}
    for item in items[last_user + 1 :]:
        if item.get("type") == "function_call":
            try:
                arguments = json.loads(item.get("arguments") or "{}")
            except ValueError:
                arguments = {"raw": item.get("arguments")}
            name = str(item.get("name", ""))
            if item.get("namespace"):
                name = f"{item['namespace']}__{name}"
            else:
                arguments = {**arguments, "command": _command(name, arguments)}
            calls[str(item.get("call_id"))] = (name, arguments)
            order.append(str(item.get("call_id")))
        elif item.get("type") == "function_call_output":
            results[str(item.get("call_id"))] = _output_text(item.get("output"))
    steps = tuple(Step(calls[i][0], calls[i][1], results.get(i, "")) for i in order)
    return AgentTurn(prompt=prompt, steps=steps, tools=tuple(offered(body.get("tools"))), received_at=received_at)


class ResponsesServer(ScriptedApiServer):
    """The Responses API at ``base_url`` (``…/v1``, what a Codex provider's ``base_url`` takes)."""

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def answer(self, method: str, path: str, body: dict[str, Any], raw: bytes) -> Reply:
        route = path.split("?", 1)[0].rstrip("/")
        if method == "GET" and route.endswith("/models"):
            self.record_side("GET models")
            return Reply(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model"}], "models": []})
        if method != "POST" or not route.endswith("/responses"):
            self.record_side(f"{method} {path}")
            return Reply(404, {"error": {"message": f"no route {path}"}})
        turn = parse_turn(body, time.time())
        action, served = self.serve(turn, bool(body.get("tools")), str(body.get("model", "")), raw)
        tools = offered(body.get("tools"))
        return Reply(stream=self._events(action, tools, served.prompt_tokens, served.completion_tokens))

    def _item(self, action: Action, tool_names: dict[str, tuple[str, str]]) -> dict[str, Any]:
        n = self.state.next_id()
        if isinstance(action, Text):
            return {
                "type": "message",
                "id": f"msg_{n}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": action.text, "annotations": []}],
            }
        if isinstance(action, Bash):
            name = next((t for t in SHELL_TOOLS if t in tool_names), "shell")
            if name in ("shell", "local_shell"):
                arguments: dict[str, Any] = {"command": ["bash", "-lc", action.command]}
            elif name == "exec_command":
                arguments = {"cmd": action.command}
            else:
                arguments = {"command": action.command}
        else:  # a call of any tool by name (an MCP tool): model_server's ``Call``
            name, arguments = action.tool, dict(action.arguments)
        space, name = tool_names.get(name, ("", name))
        return {
            "type": "function_call",
            "id": f"fc_{n}",
            "call_id": f"call_{n}",
            **({"namespace": space} if space else {}),
            "name": name,
            "arguments": json.dumps(arguments),
            "status": "completed",
        }

    def _events(
        self, action: Action, tool_names: dict[str, tuple[str, str]], input_tokens: int, output_tokens: int
    ) -> list[bytes]:
        response_id = f"resp_{self.state.next_id()}"
        item = self._item(action, tool_names)
        base = {"id": response_id, "object": "response", "created_at": int(time.time()), "model": MODEL_ID}
        usage = {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + output_tokens,
        }
        events = [
            sse("response.created", {"type": "response.created", "response": {**base, "status": "in_progress"}}),
            sse("response.output_item.added", {"type": "response.output_item.added", "output_index": 0, "item": item}),
        ]
        if isinstance(action, Text):
            delta = {"item_id": item["id"], "output_index": 0, "delta": action.text}
            events.append(sse("response.output_text.delta", {"type": "response.output_text.delta", **delta}))
        events += [
            sse("response.output_item.done", {"type": "response.output_item.done", "output_index": 0, "item": item}),
            sse(
                "response.completed",
                {
                    "type": "response.completed",
                    "response": {**base, "status": "completed", "output": [item], "usage": usage},
                },
            ),
        ]
        return events
