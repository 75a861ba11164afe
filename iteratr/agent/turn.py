"""One prompt turn as the agent reports it: its streamed updates become iteratr's events and its result.

``Turn`` collects what a turn said (text, tool calls, cost, the model in effect) from ACP
``session/update`` notifications and hands a readable event for each to the runner's listener;
``answer_permission`` answers the agent's permission requests (allow always, else allow once) and
reports the choice. Kept apart from the runner, which owns the clocks and the process, because this
is translation only: the same updates always give the same events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
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

if TYPE_CHECKING:
    from acp.schema import PermissionOption, PromptResponse, RequestPermissionResponse, ToolCallUpdate

Emit = Callable[[object], None]
TEXT_KEPT = 1024 * 1024  # characters of a turn's text kept in its result (judging "no output"); the rest is logged


def _text_of(content: Any) -> str:
    return content.text if getattr(content, "type", None) == "text" else ""


@dataclass
class Turn:
    body: asyncio.Future[PromptResponse | None] | None = None
    session_id: str | None = None
    prompting: bool = False
    cancel_requested: bool = False
    text: list[str] = field(default_factory=list)  # the first TEXT_KEPT characters: 50 MB of text is not kept
    text_size: int = 0
    tools: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)  # id: title, kind, status
    cost: float | None = None
    currency: str | None = None
    model: str | None = None

    def result(self, stop_reason: str, response: PromptResponse | None = None) -> TurnResult:
        tokens = response.usage if response is not None else None
        usage = None
        if tokens is not None or self.cost is not None:
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
            if (new[0], new[2]) != (old[0], old[2]):  # content-only progress is not news
                final = new[2] in ("completed", "failed")
                emit(ToolCallEvent(update.tool_call_id, title, new[1], new[2], final))
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
    turn: Turn | None, tool_call: ToolCallUpdate, options: list[PermissionOption], emit: Emit
) -> RequestPermissionResponse:
    """Allow always, else allow once; "cancelled" when no turn runs or it is being cancelled."""
    from acp.schema import AllowedOutcome, DeniedOutcome, RequestPermissionResponse

    from iteratr.agent.protocol import pick_permission

    known = turn.tools.get(tool_call.tool_call_id, (None, None, None))[0] if turn else None
    title = tool_call.title or known or tool_call.tool_call_id
    choice = pick_permission(options)
    if turn is None or turn.cancel_requested or choice is None:
        # The protocol wants "cancelled" for requests that arrive after session/cancel.
        emit(PermissionEvent(title, "cancelled"))
        return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
    emit(PermissionEvent(title, choice.kind))
    return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id=choice.option_id))
