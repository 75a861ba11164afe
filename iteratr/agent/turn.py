"""One prompt turn as the agent reports it: its streamed updates become iteratr's events and its result.

``Turn`` collects what a turn said (text, tool calls, cost, the model in effect) from ACP
``session/update`` notifications and hands a readable event for each to the runner's listener;
``answer_permission`` answers the agent's permission requests under the run's policy
(``iteratr.agent.permissions``) and reports each decision with its reason. Kept apart from the runner, which
owns the clocks and the process, because this is translation and policy only: the same input, the same answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iteratr.agent.events import (
    AgentText,
    AgentThought,
    PermissionEvent,
    PlanEvent,
    ToolCallEvent,
    TurnResult,
    Usage,
    UsageEvent,
)
from iteratr.agent.permissions import DEFAULT, Decision, Policy, decide
from iteratr.agent.usage import usage_from_meta

if TYPE_CHECKING:
    from acp.schema import PermissionOption, PromptResponse, RequestPermissionResponse, ToolCallUpdate

Emit = Callable[[object], None]
log = logging.getLogger("iteratr.agent")
TEXT_KEPT = 1024 * 1024  # characters of a turn's text kept in its result (judging "no output"); the rest is logged


def _text_of(content: Any) -> str:
    return content.text if getattr(content, "type", None) == "text" else ""


OUTPUT_KEPT = 4096  # characters of a tool call's output kept for the screen (its end: where errors are)
# Where agents put a command's exit status in a tool call's ``rawOutput`` (ACP leaves its shape to the agent):
# opencode's bash tool sends {"output": ..., "metadata": {"exit": N}}; others use exitCode, exit_code, returncode.
_EXIT_KEYS = ("exit", "exitCode", "exit_code", "exitStatus", "returncode", "status_code")
_OUTPUT_KEYS = ("output", "stdout", "stderr", "error", "result")


def _exit_of(raw: dict[str, Any]) -> int | None:
    for where in (raw, raw.get("metadata")):
        if isinstance(where, dict):
            for key in _EXIT_KEYS:
                value = where.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    return value
    return None


def tool_result(raw_output: Any, content: list[Any] | None) -> tuple[int | None, str]:
    """(exit status or None, the end of the output) from what a tool call update reports: the exit status
    from ``rawOutput`` (see ``_EXIT_KEYS``), the output from its text, else from the update's text content."""
    exit_status: int | None = None
    texts: list[str] = []
    if isinstance(raw_output, dict):
        exit_status = _exit_of(raw_output)
        texts = [raw_output[k] for k in _OUTPUT_KEYS if isinstance(raw_output.get(k), str) and raw_output[k].strip()]
    elif isinstance(raw_output, str):
        texts = [raw_output]
    if not texts:
        for item in content or []:
            text = _text_of(getattr(item, "content", None))
            if text:
                texts.append(text)
    return exit_status, "\n".join(texts)[-OUTPUT_KEPT:]


@dataclass
class Turn:
    body: asyncio.Future[PromptResponse | None] | None = None
    session_id: str | None = None
    prompting: bool = False
    cancel_requested: bool = False
    text: list[str] = field(default_factory=list)  # the first TEXT_KEPT characters: 50 MB of text is not kept
    text_size: int = 0
    tools: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)  # id: title, kind, status
    tool_results: dict[str, tuple[int | None, str]] = field(default_factory=dict)  # id: exit status, output's end
    cost: float | None = None
    currency: str | None = None
    model: str | None = None

    def result(self, stop_reason: str, response: PromptResponse | None = None) -> TurnResult:
        tokens = response.usage if response is not None else None
        usage = None
        if tokens is None and response is not None:  # Gemini CLI puts the prompt's totals in _meta instead
            usage = usage_from_meta(response.field_meta, self.cost, self.currency)
        if usage is None and (tokens is not None or self.cost is not None):
            usage = Usage(
                input_tokens=tokens.input_tokens if tokens else None,
                output_tokens=tokens.output_tokens if tokens else None,
                total_tokens=tokens.total_tokens if tokens else None,
                cost=self.cost,
                currency=self.currency,
            )
        return TurnResult(stop_reason, "".join(self.text), len(self.tools), usage, self.model, self.session_id)

    def on_update(self, update: Any, emit: Emit) -> str | None:
        """Take one ``session/update``; returns the model in effect if the update changed it."""
        from acp import schema as s

        from iteratr.agent.protocol import model_option

        if isinstance(update, s.AgentMessageChunk):
            text = _text_of(update.content)
            if text:
                if self.text_size < TEXT_KEPT:
                    self.text.append(text[: TEXT_KEPT - self.text_size])
                self.text_size += len(text)
                emit(AgentText(text))
        elif isinstance(update, s.AgentThoughtChunk):
            text = _text_of(update.content)
            if text:
                emit(AgentThought(text))
        elif isinstance(update, (s.ToolCallStart, s.ToolCallProgress)):
            old = self.tools.get(update.tool_call_id, (None, None, None))
            title = update.title or old[0] or update.tool_call_id
            new = (title, update.kind or old[1], update.status or old[2])
            self.tools[update.tool_call_id] = new
            seen = tool_result(update.raw_output, update.content)
            if seen != (None, ""):
                self.tool_results[update.tool_call_id] = seen
            if (new[0], new[2]) != (old[0], old[2]):  # content-only progress is not news
                final = new[2] in ("completed", "failed")
                exit_status, output = self.tool_results.get(update.tool_call_id, (None, "")) if final else (None, "")
                emit(ToolCallEvent(update.tool_call_id, title, new[1], new[2], final, exit_status, output))
        elif isinstance(update, s.AgentPlanUpdate):
            emit(PlanEvent([entry.content for entry in update.entries]))
        elif isinstance(update, s.UsageUpdate):
            if update.cost is not None:
                self.cost, self.currency = update.cost.amount, update.cost.currency
                emit(UsageEvent(Usage(None, None, None, self.cost, self.currency)))
        elif isinstance(update, s.ConfigOptionUpdate):
            option = model_option(update.config_options)
            if option is not None:
                self.model = option.current_value
                return self.model
        return None


def answer_permission(
    turn: Turn | None,
    tool_call: ToolCallUpdate,
    options: list[PermissionOption],
    emit: Emit,
    *,
    policy: Policy = DEFAULT,
    work_tree: Path,
) -> RequestPermissionResponse:
    """Decide one request under ``policy`` (``iteratr.agent.permissions``), report the decision and its reason
    (a ``PermissionEvent``, and the log at info), and answer it: the chosen option, or "cancelled" when the
    decision names no option, no turn runs, or the turn is being cancelled."""
    from acp.schema import AllowedOutcome, DeniedOutcome, RequestPermissionResponse

    known = turn.tools.get(tool_call.tool_call_id, (None, None, None)) if turn else (None, None, None)
    title = tool_call.title or known[0] or tool_call.tool_call_id
    kind = tool_call.kind or known[1]
    if turn is None or turn.cancel_requested:
        # The protocol wants "cancelled" for requests that arrive after session/cancel.
        why = "no turn is running" if turn is None else "the turn is being cancelled"
        decision = Decision(None, False, f"cancelled {kind or 'other'} {title!r}: {why}", why)
    else:
        decision = decide(
            policy,
            kind=kind,
            title=title,
            raw_input=tool_call.raw_input,
            locations=[location.path for location in tool_call.locations or []],
            options=options,
            work_tree=work_tree,
        )
    chosen = next((o for o in options if decision.option_id is not None and o.option_id == decision.option_id), None)
    if chosen is None:  # nothing to pick: the whole sentence says why ("…, but no allow option offered")
        why = decision.why if turn is None or turn.cancel_requested else decision.reason
    else:
        why = "default policy" if policy == DEFAULT and decision.why == "mode allow" else decision.why
    log.info("permission %s %r: %s", kind or "other", title, decision.reason)
    emit(PermissionEvent(title, chosen.kind if chosen else "cancelled", why))
    if chosen is None:
        return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
    return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id=chosen.option_id))
