"""True token and cost totals of a turn, where the protocol falls short: agent-specific code, kept in one place.

ACP lets an agent report usage two ways: ``usage_update`` notifications during a turn, and ``usage`` on the
``session/prompt`` response. What opencode 1.18.33 sends (recorded on the wire, see the README's "Usage and
cost" section): no ``usage_update`` at all, even with model prices configured, and a response ``usage`` that
covers only the turn's *last* model call, with no cost. A turn of ten model calls would be undercounted
about tenfold.

opencode keeps its own record of every session, and the ACP session id is opencode's: ``opencode export
<sessionID>`` prints it as JSON, with ``info.tokens`` (input, output, reasoning, cache read/write) and
``info.cost`` summed over every call. Since iteratr opens one ACP session per iteration, that record is the
turn's true total (every agent call; opencode's session-title call is not in it). It costs one opencode
start (1.2-1.7 s wall, about 1.5 s CPU), paid once per iteration, after the turn.

Gemini CLI 0.61 (``gemini --experimental-acp``) leaves ``usage`` empty and puts the prompt's totals, summed over
its model calls, in the response's ``_meta.quota.token_count``: read as the turn's own total (``turn``).

Codex through ``codex-acp`` 0.16.0 reports no token counts over ACP either; Codex writes a rollout of every
thread (the ACP session id) under ``$CODEX_HOME/sessions/``, whose last ``token_count`` event holds the totals.

Claude Code through ``claude-code-acp`` 0.16.2 reports no usage at all over ACP (its ``session/prompt`` answer is
the stop reason only). Claude Code writes a transcript of every session, named by the ACP session id, under
``~/.claude/projects/`` (``CLAUDE_CONFIG_DIR``): each model call's usage is there. Reading it is a file read.

Every result says where its figures came from (``source``), so the footer never shows a partial count as
the whole: ``turn`` (the agent's own per-turn total), ``agent-record`` (from the agent's session record),
``last-call`` (only the last model call, as the agent reports it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from iteratr import procs
from iteratr.agent.events import AgentInfo, TurnResult, Usage

if TYPE_CHECKING:
    from iteratr.agent.seam import Agent

log = logging.getLogger("iteratr.agent")
EXPORT_TIMEOUT = 30.0
# A session id that may name a file (a uuid): no path, no glob character.
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
RECORD_SETTLE = 3.0  # seconds to wait for Claude Code's transcript (Codex's rollout) to hold a turn's last call

SOURCE_WORDS = {
    "turn": "",
    "agent-record": "",
    "last-call": "last call only, as the agent reports",
}


@dataclass(frozen=True)
class TurnUsage:
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost: float | None
    currency: str | None
    source: str  # turn | agent-record | last-call

    def to_event(self) -> dict[str, object]:
        data: dict[str, object] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
            "source": self.source,
        }
        if self.currency:
            data["currency"] = self.currency
        return data


def is_opencode(argv: list[str]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) in ("opencode", "opencode.exe") and argv[1:2] == ["acp"]


def is_claude(argv: list[str]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) == "claude-code-acp"


def is_codex(argv: list[str]) -> bool:
    return bool(argv) and os.path.basename(argv[0]) == "codex-acp"


def has_record(argv: list[str]) -> bool:
    """Whether iteratr reads this agent's own record of a turn's usage (its ACP figures fall short)."""
    return is_opencode(argv) or is_claude(argv) or is_codex(argv)


def from_codex_rollout(lines: list[str]) -> TurnUsage | None:
    """The thread's totals from a Codex rollout (JSON lines): its last ``token_count`` event's ``total_token_usage``
    (OpenAI's figures: input counts the cached tokens, output the reasoning ones)."""
    totals: dict[str, object] | None = None
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        payload = entry.get("payload") if isinstance(entry, dict) and entry.get("type") == "event_msg" else None
        info = payload.get("info") if isinstance(payload, dict) and payload.get("type") == "token_count" else None
        if isinstance(info, dict) and isinstance(info.get("total_token_usage"), dict):
            totals = info["total_token_usage"]
    if totals is None:
        return None
    input_tokens, output_tokens = totals.get("input_tokens"), totals.get("output_tokens")
    if not isinstance(input_tokens, int) or not isinstance(output_tokens, int):
        return None
    return TurnUsage(input_tokens, output_tokens, input_tokens + output_tokens, None, None, source="agent-record")


def _task_complete(lines: list[str]) -> bool:
    return any('"task_complete"' in line for line in lines[-5:])


def codex_turn_usage(session_id: str, *, env: Mapping[str, str], settle: float = RECORD_SETTLE) -> TurnUsage | None:
    """Read ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-…-<session_id>.jsonl`` (``~/.codex`` by default); the ACP
    session id is Codex's thread id. Read again for up to ``settle`` seconds until the turn's ``task_complete``
    event is there, as the file may lag the ACP answer."""
    home = env.get("CODEX_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".codex")
    pattern = f"sessions/*/*/*/rollout-*-{session_id}.jsonl"
    return _read_settled(Path(home), pattern, _task_complete, from_codex_rollout, settle, "codex rollout")


def _read_settled(
    root: Path,
    pattern: str,
    complete: Callable[[list[str]], bool],
    parse: Callable[[list[str]], TurnUsage | None],
    settle: float,
    what: str,
) -> TurnUsage | None:
    """Parse the file ``pattern`` finds under ``root`` once ``complete`` says it holds the whole turn (or ``settle``
    seconds have passed: then what is there)."""
    deadline = time.monotonic() + settle
    lines: list[str] = []
    found: list[Path] = []
    while True:
        found = sorted(root.glob(pattern))
        if found:
            try:
                lines = found[-1].read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError as exc:
                log.warning("%s %s: %s", what, found[-1], exc)
                return None
        # No file at all: the agent keeps its record elsewhere (or none), and waiting will not bring one.
        if not found or complete(lines) or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if not found:
        log.warning("%s %s not found under %s", what, pattern, root)
        return None
    return parse(lines)


def from_claude_transcript(lines: list[str]) -> TurnUsage | None:
    """The totals of a Claude Code session transcript (JSON lines); None when it holds no assistant usage.

    Claude Code writes an assistant message once per content block, each line with the usage it had then, so lines
    are taken once per message id (the largest figures). What it records for output is the count at the answer's
    start (``message_start``), not the final one: the README says so.
    """
    per_message: dict[str, tuple[int, int]] = {}
    for number, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        message = entry.get("message") if isinstance(entry, dict) and entry.get("type") == "assistant" else None
        if not isinstance(message, dict) or not isinstance(message.get("usage"), dict):
            continue
        usage = message["usage"]
        counts = [usage.get(k) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
        input_tokens = sum(n for n in counts if isinstance(n, int))
        output = usage.get("output_tokens")
        output_tokens = output if isinstance(output, int) else 0
        key = str(message.get("id") or f"line-{number}")
        seen = per_message.get(key, (0, 0))
        per_message[key] = (max(seen[0], input_tokens), max(seen[1], output_tokens))
    if not per_message:
        return None
    input_total = sum(i for i, _ in per_message.values())
    output_total = sum(o for _, o in per_message.values())
    return TurnUsage(input_total, output_total, input_total + output_total, None, None, source="agent-record")


def _final_answer_recorded(lines: list[str]) -> bool:
    """Whether the transcript's last assistant entry is an answer (no ``tool_use``): the turn's last call is in."""
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("type") == "assistant":
            message = entry.get("message")
            content = message.get("content") if isinstance(message, dict) else None
            blocks = content if isinstance(content, list) else []
            return not any(isinstance(b, dict) and b.get("type") == "tool_use" for b in blocks)
    return False


def claude_turn_usage(session_id: str, *, env: Mapping[str, str], settle: float = RECORD_SETTLE) -> TurnUsage | None:
    """Read ``<config dir>/projects/*/<session_id>.jsonl`` (``CLAUDE_CONFIG_DIR``, else ``~/.claude``).

    Claude Code may answer ``session/prompt`` before its transcript holds the turn's last call (seen: the final
    answer written a moment later), so the file is read again, for up to ``settle`` seconds, until its last
    assistant entry is an answer rather than a tool call.
    """
    config_dir = env.get("CLAUDE_CONFIG_DIR") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".claude")
    pattern = f"projects/*/{session_id}.jsonl"
    return _read_settled(
        Path(config_dir), pattern, _final_answer_recorded, from_claude_transcript, settle, "claude transcript"
    )


def usage_from_meta(meta: object, cost: float | None = None, currency: str | None = None) -> Usage | None:
    """A prompt's token totals from ``PromptResponse._meta.quota.token_count`` (``input_tokens``, ``output_tokens``),
    where Gemini CLI 0.61 reports them, summed over every model call of the prompt, leaving ``usage`` empty."""
    quota = meta.get("quota") if isinstance(meta, dict) else None
    count = quota.get("token_count") if isinstance(quota, dict) else None
    if not isinstance(count, dict):
        return None
    numbers = [count.get("input_tokens"), count.get("output_tokens")]
    if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        return None
    input_tokens, output_tokens = int(numbers[0] or 0), int(numbers[1] or 0)
    return Usage(input_tokens, output_tokens, input_tokens + output_tokens, cost, currency, source="turn")


def record_usage(
    argv: list[str], session_id: str, *, cwd: Path, env: Mapping[str, str], timeout: float = EXPORT_TIMEOUT
) -> TurnUsage | None:
    """The agent's own record of the session's usage, for the agents ``has_record`` names; else None."""
    if not _SESSION_ID.fullmatch(session_id):  # it names a file or a command's argument: nothing else
        log.warning("session id %r is not a plain name; its record is not read", session_id)
        return None
    if is_opencode(argv):
        return opencode_turn_usage(argv, session_id, cwd=cwd, env=env, timeout=timeout)
    if is_claude(argv):
        return claude_turn_usage(session_id, env=env)
    if is_codex(argv):
        return codex_turn_usage(session_id, env=env)
    return None


def from_opencode_export(text: str) -> TurnUsage | None:
    """The session totals from ``opencode export`` JSON; None when the text is not such a record."""
    try:
        data = json.loads(text[text.find("{") :] if "{" in text else text)
    except ValueError:
        return None
    info = data.get("info") if isinstance(data, dict) else None
    tokens = info.get("tokens") if isinstance(info, dict) else None
    if not isinstance(tokens, dict):
        return None
    raw_cache = tokens.get("cache")
    cache: dict[str, object] = raw_cache if isinstance(raw_cache, dict) else {}
    numbers = {k: tokens.get(k) for k in ("input", "output", "reasoning")}
    if not all(isinstance(v, int) for v in numbers.values() if v is not None):
        return None
    cached = sum(v for v in (cache.get("read"), cache.get("write")) if isinstance(v, int))
    input_tokens = (numbers["input"] or 0) + cached
    output_tokens = (numbers["output"] or 0) + (numbers["reasoning"] or 0)
    cost = info.get("cost") if isinstance(info, dict) else None
    return TurnUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        cost=float(cost) if isinstance(cost, int | float) else None,
        currency="USD" if isinstance(cost, int | float) else None,  # opencode prices models in US dollars
        source="agent-record",
    )


def opencode_turn_usage(
    argv: list[str], session_id: str, *, cwd: Path, env: Mapping[str, str], timeout: float = EXPORT_TIMEOUT
) -> TurnUsage | None:
    """Run ``opencode export <session_id>`` and read the totals; None (logged) when that fails."""
    try:
        done = procs.run([argv[0], "export", session_id], cwd=cwd, env=env, timeout=timeout)
    except OSError as exc:
        log.warning("opencode export could not start: %s", exc)
        return None
    if done.returncode != 0:
        log.warning("opencode export %s: exit %s: %s", session_id, done.returncode, done.err[-300:])
        return None
    usage = from_opencode_export(done.out)
    if usage is None:
        log.warning("opencode export %s: no token totals in its output", session_id)
    return usage


class AgentRecordUsage:
    """An ``agent.seam.Agent`` whose turns report the agent's own record of their usage (opencode, Claude Code).

    After each turn that ended, ``opencode export`` runs (or Claude Code's transcript is read) in a thread (off
    the event loop: the inbox watcher and Ctrl+C stay live) and its totals replace what the protocol said. If
    that fails, the protocol's figure stays, marked ``last-call``: opencode 1.18.33's ``PromptResponse.usage``
    covers only the last model call, and the footer must say so rather than undercount in silence.
    """

    def __init__(self, inner: Agent, argv: list[str], *, cwd: Path, env: Mapping[str, str]) -> None:
        self.inner = inner
        self.argv, self.cwd, self.env = argv, cwd, env

    async def start(self) -> AgentInfo:
        return await self.inner.start()

    async def run_turn(self, prompt: str, *, iteration_timeout: float | None, idle_timeout: float | None) -> TurnResult:
        result = await self.inner.run_turn(prompt, iteration_timeout=iteration_timeout, idle_timeout=idle_timeout)
        if result.session_id:
            record = await asyncio.to_thread(record_usage, self.argv, result.session_id, cwd=self.cwd, env=self.env)
            result.usage = merged(result.usage, record)
        return result

    async def cancel(self) -> None:
        await self.inner.cancel()

    async def close(self) -> None:
        await self.inner.close()

    def kill_now(self) -> None:
        self.inner.kill_now()


def merged(reported: Usage | None, record: TurnUsage | None) -> Usage | None:
    """The agent's record where there is one; else the protocol's figures, marked as the last call only."""
    if record is None:
        if reported is None:
            return None
        return replace(reported, source="last-call")
    cost, currency = record.cost, record.currency
    if reported is not None and reported.cost is not None:  # a cost the agent reported itself wins
        cost, currency = reported.cost, reported.currency
    return Usage(record.input_tokens, record.output_tokens, record.total_tokens, cost, currency, source=record.source)
