"""A scripted Anthropic Messages API server, so Claude Code (through ``claude-code-acp``) runs offline in tests.

Claude Code honours ``ANTHROPIC_BASE_URL`` (and ``ANTHROPIC_API_KEY``) and sends ``POST /v1/messages`` (with
``?beta=true``), ``stream: true``. Two kinds of request arrive:

- agent turns (with ``tools``): the last ``user`` message holding text is iteratr's prompt (Claude Code puts
  ``<system-reminder>`` text blocks beside it, which are skipped), and the ``tool_use`` blocks of the assistant
  messages after it, with the ``tool_result`` blocks that answer them, are the steps so far. The script's
  :class:`~tests.e2e.model_server.Bash` becomes a call of Claude Code's ``Bash`` tool;
- side requests (no ``tools``: a session title, a quota check) get a short text and are listed in
  ``side_requests``; ``POST /v1/messages/count_tokens`` gets a count.

The answer streams the Messages API's events (``message_start`` … ``message_stop``) with a usage per call that
differs from call to call (``model_server.usage_for``), recorded in ``served``.
"""

from __future__ import annotations

import json
from typing import Any

from .model_server import Action, AgentTurn, Bash, Step, Text
from .scripted_api import Reply, ScriptedApiServer, sse, text_blocks

MODEL_ID = "claude-scripted"
BASH_TOOL = "Bash"


def _prompt_text(content: Any) -> str:
    parts = [text for text in text_blocks(content) if not text.lstrip().startswith("<system-reminder>")]
    return "\n".join(parts)


def _result_text(content: Any) -> str:
    return "\n".join(text_blocks(content))


def parse_turn(body: dict[str, Any], received_at: float) -> AgentTurn:
    messages: list[dict[str, Any]] = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    last_user = max(
        (i for i, m in enumerate(messages) if m.get("role") == "user" and _prompt_text(m.get("content")).strip()),
        default=-1,
    )
    prompt = _prompt_text(messages[last_user].get("content")) if last_user >= 0 else ""
    calls: dict[str, tuple[str, dict[str, Any]]] = {}
    order: list[str] = []
    results: dict[str, str] = {}
    for message in messages[last_user + 1 :]:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                calls[str(block.get("id"))] = (str(block.get("name", "")), dict(block.get("input") or {}))
                order.append(str(block.get("id")))
            elif block.get("type") == "tool_result":
                results[str(block.get("tool_use_id"))] = _result_text(block.get("content"))
    steps = tuple(Step(calls[i][0], calls[i][1], results.get(i, "")) for i in order)
    tools = tuple(str(t.get("name", "")) for t in body.get("tools") or [] if isinstance(t, dict))
    return AgentTurn(prompt=prompt, steps=steps, tools=tools, received_at=received_at)


class AnthropicServer(ScriptedApiServer):
    """The Messages API at ``root_url`` (which is what ``ANTHROPIC_BASE_URL`` takes: no ``/v1``)."""

    def answer(self, method: str, path: str, body: dict[str, Any], raw: bytes) -> Reply:
        import time

        route = path.split("?", 1)[0].rstrip("/")
        if method == "POST" and route.endswith("/messages/count_tokens"):
            self.record_side("count_tokens")
            return Reply(200, {"input_tokens": max(1, len(raw) // 4)})
        if method != "POST" or not route.endswith("/v1/messages"):
            self.record_side(f"{method} {path}")
            return Reply(404, {"type": "error", "error": {"type": "not_found_error", "message": f"no route {path}"}})
        turn = parse_turn(body, time.time())
        action, served = self.serve(turn, bool(body.get("tools")), str(body.get("model", "")), raw)
        input_tokens, output_tokens = served.prompt_tokens, served.completion_tokens
        message_id = f"msg_{self.state.next_id()}"
        if body.get("stream"):
            return Reply(stream=self._events(message_id, action, input_tokens, output_tokens))
        return Reply(200, self._message(message_id, action, input_tokens, output_tokens))

    def _block(self, action: Action) -> dict[str, Any]:
        if isinstance(action, Text):
            return {"type": "text", "text": action.text}
        if isinstance(action, Bash):
            name, arguments = BASH_TOOL, {"command": action.command, "description": action.description}
        else:  # a call of any tool by name (an MCP tool): model_server's ``Call``
            name, arguments = str(action.tool), dict(action.arguments)
        return {"type": "tool_use", "id": f"toolu_{self.state.next_id()}", "name": name, "input": arguments}

    def _message(self, message_id: str, action: Action, input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": MODEL_ID,
            "content": [self._block(action)],
            "stop_reason": "end_turn" if isinstance(action, Text) else "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }

    def _events(self, message_id: str, action: Action, input_tokens: int, output_tokens: int) -> list[bytes]:
        start = self._message(message_id, action, input_tokens, 0)
        start["content"], start["stop_reason"] = [], None
        start["usage"] = {
            "input_tokens": input_tokens,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        events = [sse("message_start", {"type": "message_start", "message": start})]
        block = self._block(action)
        if isinstance(action, Text):
            opened: dict[str, Any] = {"type": "text", "text": ""}
            delta: dict[str, Any] = {"type": "text_delta", "text": action.text}
        else:
            opened = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": opened}),
            sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn" if isinstance(action, Text) else "tool_use"},
                    "usage": {"output_tokens": output_tokens},
                },
            ),
            sse("message_stop", {"type": "message_stop"}),
        ]
        return events
