"""A scripted Gemini API server, so Gemini CLI (``gemini --experimental-acp``) runs offline in tests.

Gemini CLI honours ``GOOGLE_GEMINI_BASE_URL`` (with it set, it authenticates as a "gateway"; ``GEMINI_API_KEY``
is sent as ``x-goog-api-key``) and calls ``POST /v1beta/models/<model>:streamGenerateContent?alt=sse``. Requests:

- agent turns (with ``tools``): the last ``user`` content holding text is iteratr's prompt; the ``functionCall``
  parts of the ``model`` contents after it, answered in order by ``functionResponse`` parts, are the steps so far.
  The script's :class:`~tests.e2e.model_server.Bash` becomes a call of Gemini CLI's ``run_shell_command``, whose
  answer reads ``Output: <what the command printed>`` (then ``Error:``/``Exit Code:`` lines): the output is what the
  script sees;
- side requests (no ``tools``: the next-speaker check, model routing, a title; ``:generateContent``,
  ``:countTokens``): a short answer, JSON when JSON is asked for, listed in ``side_requests``.

Each streamed answer is one SSE event with ``usageMetadata`` (a figure per call, ``model_server.usage_for``).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from .model_server import Action, AgentTurn, Bash, Step, Text
from .scripted_api import Reply, ScriptedApiServer

SHELL_TOOL = "run_shell_command"
MODEL_VERSION = "gemini-scripted"
# Where Gemini CLI's shell answer stops being the command's output.
_OUTPUT_END = re.compile(r"\n(?:Error|Exit Code|Signal|Background PIDs|Process Group PGID): ")


def _texts(content: dict[str, Any]) -> list[str]:
    """The text parts of a content, less the ``<session_context>`` part Gemini CLI puts before the prompt."""
    texts = [p["text"] for p in content.get("parts") or [] if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return [str(t) for t in texts if not str(t).lstrip().startswith("<session_context>")]


def _shell_output(response: Any) -> str:
    """What the command printed, from Gemini CLI's answer ``<untrusted_context>\nOutput: …\nExit Code: …``."""
    if not isinstance(response, dict):
        return json.dumps(response)
    text = str(response.get("output", response.get("error", json.dumps(response)))).strip()
    text = text.removeprefix("<untrusted_context>").removesuffix("</untrusted_context>").strip()
    if text.startswith("Output: "):
        text = _OUTPUT_END.split(text[len("Output: ") :], maxsplit=1)[0]
    return text


def parse_turn(body: dict[str, Any], received_at: float) -> AgentTurn:
    contents: list[dict[str, Any]] = [c for c in body.get("contents") or [] if isinstance(c, dict)]
    last_user = max(
        (i for i, c in enumerate(contents) if c.get("role") == "user" and "".join(_texts(c)).strip()), default=-1
    )
    prompt = "\n".join(_texts(contents[last_user])) if last_user >= 0 else ""
    calls: list[tuple[str, dict[str, Any]]] = []
    results: list[str] = []
    for content in contents[last_user + 1 :]:
        for part in content.get("parts") or []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("functionCall"), dict):
                call = part["functionCall"]
                calls.append((str(call.get("name", "")), dict(call.get("args") or {})))
            elif isinstance(part.get("functionResponse"), dict):
                results.append(_shell_output(part["functionResponse"].get("response")))
    steps = tuple(Step(name, args, results[i] if i < len(results) else "") for i, (name, args) in enumerate(calls))
    tools = tuple(
        str(d.get("name", ""))
        for t in body.get("tools") or []
        if isinstance(t, dict)
        for d in t.get("functionDeclarations") or []
        if isinstance(d, dict)
    )
    return AgentTurn(prompt=prompt, steps=steps, tools=tools, received_at=received_at)


def _fill(schema: Any) -> Any:
    """A value that fits a JSON schema: its required properties filled, the first of an enum, 1 for a number."""
    if not isinstance(schema, dict):
        return None
    kind = str(schema.get("type", "")).lower()
    if schema.get("enum"):
        return schema["enum"][0]
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        wanted = schema.get("required") or list(props)
        return {name: _fill(props.get(name)) for name in wanted}
    if kind == "array":
        return []
    if kind in ("number", "integer"):
        return 1
    if kind == "boolean":
        return False
    return "scripted"


def _json_answer(body: dict[str, Any]) -> str:
    """A side request that asks for JSON (model routing, the next-speaker check): an answer fitting its schema; the
    next speaker is always the user, so a finished answer ends the turn."""
    config = body.get("generationConfig") or {}
    answer = _fill(config.get("responseJsonSchema") or config.get("responseSchema") or {})
    if isinstance(answer, dict) and "next_speaker" in answer:
        answer["next_speaker"] = "user"
    return json.dumps(answer if answer is not None else {})


class GeminiServer(ScriptedApiServer):
    """The Gemini API at ``root_url`` (what ``GOOGLE_GEMINI_BASE_URL`` takes)."""

    def answer(self, method: str, path: str, body: dict[str, Any], raw: bytes) -> Reply:
        route = path.split("?", 1)[0]
        if method == "POST" and route.endswith(":countTokens"):
            self.record_side("countTokens")
            return Reply(200, {"totalTokens": max(1, len(raw) // 4)})
        stream = route.endswith(":streamGenerateContent")
        if method != "POST" or not (stream or route.endswith(":generateContent")):
            self.record_side(f"{method} {path}")
            return Reply(404, {"error": {"code": 404, "message": f"no route {path}", "status": "NOT_FOUND"}})
        turn = parse_turn(body, time.time())
        wants_json = (body.get("generationConfig") or {}).get("responseMimeType") == "application/json"
        side = (
            f"no-tools call ({'json' if wants_json else 'text'})",
            _json_answer(body) if wants_json else "Scripted session",
        )
        model = route.rsplit("/", 1)[-1].split(":", 1)[0]
        action, served = self.serve(turn, bool(body.get("tools")), model, raw, side)
        payload = self._response(action, served.prompt_tokens, served.completion_tokens)
        if stream:
            return Reply(stream=[b"data: " + json.dumps(payload).encode() + b"\r\n\r\n"])
        return Reply(200, payload)

    def _response(self, action: Action, prompt_tokens: int, output_tokens: int) -> dict[str, Any]:
        if isinstance(action, Text):
            part: dict[str, Any] = {"text": action.text}
        elif isinstance(action, Bash):
            args = {"command": action.command, "description": action.description}
            part = {"functionCall": {"name": SHELL_TOOL, "args": args}}
        else:  # a call of any tool by name (an MCP tool): model_server's ``Call``
            part = {"functionCall": {"name": action.tool, "args": dict(action.arguments)}}
        return {
            "candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": prompt_tokens + output_tokens,
            },
            "modelVersion": MODEL_VERSION,
            "responseId": f"resp-{self.state.next_id()}",
        }
