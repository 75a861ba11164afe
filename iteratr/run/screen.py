"""What a person sees of the loop: the headline and footer of each iteration, the agent's digest, the stop line.

Pure rendering of the state and the attempt onto the Printer, apart from the loop so that the loop
reads as control flow and the wording can be read (and changed) in one place. The event log and
``--log-file`` get every agent event; the screen a readable digest of them.
"""

from __future__ import annotations

import logging
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

    def headline(self, state: State, attempt: Attempt, *, retry: bool) -> None:
        if attempt.kind == "planning":
            self.out.header(f"#{attempt.n} planning")
            return
        task = state.in_progress() or _next_task(state)
        what = f" | {task.id}: {task.content}" if task else ""
        self.out.header(f"#{attempt.n}{' (retry)' if retry else ''}{what}")

    def footer(self, after: State, attempt: Attempt) -> None:
        done = sum(1 for t in after.tasks.values() if t.status == "completed")
        parts = [
            f"#{attempt.n} {attempt.outcome}",
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
            self.out.line(f"    {attempt.error}", style)

    def model(self, model: str, *, chosen: bool) -> None:
        source = "" if chosen else " (the agent's default)"
        self.out.line(f"model: {model}{source}")

    def final(self, reason: str, totals: Totals | None = None) -> None:
        """The ``stopped:`` line: why, what this run spent (as the agent reported it), where to look."""
        spent = f" (this run: {totals.words()})" if totals is not None else ""
        self.out.line(f"stopped: {reason}. History: git log {self.branch}{spent}", "head")

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
            style = "tool" if event.status == "completed" else "fail"
            self.out.line(f"  [tool] {event.title} -> {event.status}", style)
        elif isinstance(event, PermissionEvent):
            words = _DECIDED.get(event.option, event.option) + (f": {event.reason}" if event.reason else "")
            self.out.line(
                f"  [permission] {event.title}: {words}", "dim" if event.option.startswith("allow") else "fail"
            )


def _next_task(state: State) -> Task | None:
    from iteratr.session.ops import task_next

    return task_next(state)[0]
