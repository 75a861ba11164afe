"""What one iteration came to, and the commit message that records it.

Kept apart from the loop because it is pure: the same attempt and states always give the same
message, which is what ``git log iteratr/S`` shows a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from iteratr.errors import IteratrError
from iteratr.run import prompt
from iteratr.run.hooks import HookResult
from iteratr.session.state import State, id_number


@dataclass
class Attempt:
    """What one iteration came to, for the event log, the commit and the output."""

    n: int
    kind: str
    outcome: str = "ok"  # ok | failed | timeout | interrupted
    error: str | None = None
    stop_reason: str | None = None
    duration: float | None = 0.0  # None: not known (an iteration found unfinished after a kill)
    usage: dict[str, Any] | None = None
    model: str | None = None
    delivered: list[str] = field(default_factory=list)
    fatal: IteratrError | None = None  # an error that must end the run once the iteration is committed
    on_error: list[HookResult] = field(default_factory=list)  # piped, for the retry's prompt


STOP_REASONS = {
    "max_tokens": "the model hit its output token limit (stop reason max_tokens)",
    "max_turn_requests": "the agent hit its limit of requests in one turn (stop reason max_turn_requests)",
    "refusal": "the model refused to continue (stop reason refusal)",
    "cancelled": "the agent cancelled the turn (stop reason cancelled)",
}


def commit_message(session: str, before: State, after: State, attempt: Attempt) -> str:
    it = after.iterations.get(attempt.n)
    summary = (it.summary or "").strip().splitlines()[0] if it and it.summary else ""
    changes = []
    for task in sorted(after.tasks.values(), key=lambda t: id_number(t.id)):
        old = before.tasks.get(task.id)
        if old is None:
            changes.append(f"- {task.id} added ({task.status}): {task.content}")
        elif old.status != task.status:
            changes.append(f"- {task.id} {old.status} -> {task.status}: {task.content}")
    if attempt.outcome == "ok":
        what = summary or (f"planning: {len(after.tasks)} tasks" if attempt.kind == "planning" else "")
        what = what or (changes[0][2:] if changes else "no summary recorded")
    else:
        label = {"timeout": "timed out", "interrupted": "interrupted"}.get(attempt.outcome, "failed")
        what = f"{label}: {(attempt.error or '').splitlines()[0]}" if attempt.error else label
    subject = f"iteratr({session}): #{attempt.n} {what}"
    if len(subject) > 100:
        subject = subject[:97] + "..."
    body = [f"Outcome: {attempt.outcome}, {prompt.duration_text(attempt.duration)}"]
    if summary and attempt.outcome != "ok":
        body.append(f"Summary: {summary}")
    if attempt.error and len(attempt.error) > 60:
        body.append(f"Error: {attempt.error}")
    if changes:
        body += ["", "Tasks:", *changes]
    if attempt.delivered:
        body.append(f"User messages delivered: {', '.join(attempt.delivered)}")
    trailers = [f"Iteratr-Session: {session}", f"Iteratr-Iteration: {attempt.n}"]
    return "\n".join([subject, "", *body, "", *trailers]) + "\n"
