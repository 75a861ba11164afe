"""What a person sees of the loop: the headline and footer of each iteration, the agent's digest, the stop line.

Pure rendering of the state and the attempt onto the Printer, apart from the loop so that the loop
reads as control flow and the wording can be read (and changed) in one place. The event log and
``--log-file`` get every agent event; the screen a readable digest of them.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from iteratr.agent.events import AgentText, PermissionEvent, ToolCallEvent
from iteratr.run import prompt

if TYPE_CHECKING:
    from collections.abc import Callable

    from iteratr.output import Printer
    from iteratr.run.attempt import Attempt
    from iteratr.run.guards import Totals
    from iteratr.session.state import State, Task

log = logging.getLogger("iteratr.agent")
TOOL_TAIL_LINES = 5  # of a failed tool call's output, shown under its line
TOOL_TAIL_CHARS = 300
# How a permission decision reads: the option kind iteratr chose for the agent.
_DECIDED = {
    "allow_once": "allowed once",
    "allow_always": "allowed always",
    "reject_once": "denied",
    "reject_always": "denied always",
    "cancelled": "cancelled",
}


class Screen:
    def __init__(self, printer: Printer, branch: str) -> None:
        self.out = printer
        self.branch = branch
        self.model: str | None = None  # the model in effect, as the agent reported it: a failed turn names it

    def headline(self, state: State, attempt: Attempt, *, retry: bool) -> None:
        if attempt.kind == "planning":
            self.out.header(f"#{attempt.n} planning{' (retry)' if retry else ''}")
            return
        task = state.in_progress() or _next_task(state)
        what = f" | {task.id}: {task.content}" if task else ""
        self.out.header(f"#{attempt.n}{' (retry)' if retry else ''}{what}")

    def footer(self, after: State, attempt: Attempt) -> None:
        done = after.counts()["completed"]
        parts = [
            f"#{attempt.n} {attempt.outcome}",
            time.strftime("%H:%M:%S"),  # the clock time it ended (local): when to look in other logs
            prompt.duration_text(attempt.duration),
            f"tasks {done}/{len(after.tasks)} done",
        ]
        usage = attempt.usage or {}
        if usage.get("total_tokens") is not None:
            partial = " (last call only, as the agent reports)" if usage.get("source") == "last-call" else ""
            parts.append(f"tokens: {usage['total_tokens']:,}{partial}")
        if usage.get("cost") is not None:
            parts.append(f"cost {usage['cost']:.4f} {usage.get('currency') or ''}".rstrip())
        style = "ok" if attempt.outcome == "ok" else "fail"
        self.out.line("=== " + " | ".join(parts), style)
        if attempt.error:
            model = attempt.model or self.model
            which = f" (model {model})" if model and attempt.outcome in ("failed", "timeout") else ""
            self.out.line(f"    {attempt.error}{which}", style)

    def model_reported(self, model: str | None, *, chosen: bool) -> None:
        """The model the agent said it uses, the default included, or that it said none."""
        self.model = model
        self.out.line(f"model: {model_words(model, chosen=chosen)}")

    def final(
        self,
        reason: str,
        totals: Totals | None = None,
        outcomes: dict[str, int] | None = None,
        wall: float | None = None,
    ) -> None:
        """The ``stopped:`` line: why, where to look, and this run's totals: iterations (by outcome), tokens and
        cost as the agent reported them, and the wall time."""
        said = [totals.words()] if totals is not None else []
        if outcomes:
            said.append("by outcome: " + ", ".join(f"{count} {outcome}" for outcome, count in outcomes.items()))
        if wall is not None:
            said.append(f"wall time {prompt.duration_text(wall)}")
        spent = f" (this run: {'; '.join(said)})" if said else ""
        self.out.line(f"stopped: {reason}. History: git log {self.branch}{spent}", "head")

    def tool_call(self, event: ToolCallEvent) -> None:
        """``[tool] pytest -q -> failed (exit 1)``, then the end of a failed call's output (capped), so that a
        failing command never reads like a passing one."""
        said = "ok" if event.succeeded else ("failed" if event.status == "completed" else event.status or "failed")
        if event.exit_status is not None:
            said += f" (exit {event.exit_status})"
        self.out.line(f"  [tool] {event.title} -> {said}", "tool" if event.succeeded else "fail")
        if not event.succeeded:
            for line in output_tail(event.output):
                self.out.line(f"      | {line}", "dim")

    def blocked(self, tasks: list[Task], note: Callable[[str], str | None]) -> None:
        """Each blocked task with its latest ``stuck`` note: what the person has to look at."""
        for task in tasks:
            said = note(task.id)
            self.out.line(f"  {task.id} blocked: {task.content}", "fail")
            self.out.line(f"    stuck: {said}" if said else "    (no stuck note)", "dim")

    def agent_event(self, event: object) -> None:
        # The --log-file gets every event; the screen a readable digest. Not the agent's text: the Printer
        # already logs each of its lines ("agent: ..."), and the log holds each message once.
        if log.isEnabledFor(logging.DEBUG) and not isinstance(event, AgentText):
            log.debug("agent event: %.500r", event)
        if isinstance(event, AgentText):
            self.out.agent_text(event.text)
        elif isinstance(event, ToolCallEvent) and event.final:
            self.tool_call(event)
        elif isinstance(event, PermissionEvent):
            words = _DECIDED.get(event.option, event.option) + (f": {event.reason}" if event.reason else "")
            self.out.line(
                f"  [permission] {event.title}: {words}", "dim" if event.option.startswith("allow") else "fail"
            )


def model_words(model: str | None, *, chosen: bool) -> str:
    """``anthropic/x``, ``opencode/big-pickle (the agent's default)``, or that the agent reported none."""
    if model is None:
        return "not reported by the agent"
    return model if chosen else f"{model} (the agent's default)"


def output_tail(text: str, lines: int = TOOL_TAIL_LINES, chars: int = TOOL_TAIL_CHARS) -> list[str]:
    """The last non-blank ``lines`` lines of ``text``, at most ``chars`` characters in all (the end kept)."""
    kept: list[str] = []
    room = chars
    for line in reversed([x.rstrip() for x in text.splitlines() if x.strip()][-lines:]):
        if room <= 0:
            break
        kept.append(line if len(line) <= room else "…" + line[len(line) - room + 1 :])
        room -= len(line)
    return kept[::-1]


def _next_task(state: State) -> Task | None:
    from iteratr.session.ops import task_next

    return task_next(state)[0]
