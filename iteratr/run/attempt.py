"""What one iteration came to, decided in one place before anything is recorded.

``classify`` turns what the agent's turn gave (a result or an error) into an outcome; the loop then
adds the one rule that needs the state after the turn (a planning turn must add tasks) and records
the iteration's end once. Kept apart from the loop because it is pure: the same result always gives
the same outcome, which is easy to test without an agent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from iteratr.agent.events import ModelError, TurnResult, TurnTimeout
from iteratr.errors import AgentError, IteratrError
from iteratr.run.hooks import HookResult

if TYPE_CHECKING:
    from iteratr.session.state import State


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
    run: str | None = None  # the run's id (its start time): per-run totals come from the log
    progress: bool | None = None  # the guard rails' verdict (iteratr.run.guards.made_progress)
    budget: str | None = None  # a budget that cut the turn (max_time): the run stops with exit 3

    def fail(self, outcome: str, error: str) -> None:
        self.outcome, self.error = outcome, error

    def end_data(self) -> dict[str, Any]:
        """The ``iteration.ended`` event's data: outcome and duration always, the rest when known."""
        data: dict[str, Any] = {"n": self.n, "outcome": self.outcome, "duration": self.duration}
        for key in ("error", "stop_reason", "usage", "model", "run", "progress"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        return data


STOP_REASONS = {
    "max_tokens": "the model hit its output token limit (stop reason max_tokens)",
    "max_turn_requests": "the agent hit its limit of requests in one turn (stop reason max_turn_requests)",
    "refusal": "the model refused to continue (stop reason refusal)",
    "cancelled": "the agent cancelled the turn (stop reason cancelled)",
}
EMPTY_TURN = (
    "the agent ended its turn without any output; check its credentials (API key) and the model"
    " (--model), and see the agent's log"
)
PLANNED_NOTHING = "the planning iteration added no tasks"


def classify(attempt: Attempt, result: TurnResult) -> None:
    """A turn that ended: only ``end_turn`` with some output (text or a tool call) is a success."""
    attempt.stop_reason = result.stop_reason
    attempt.model = result.model
    if result.usage is not None:
        u = result.usage
        attempt.usage = {
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "total_tokens": u.total_tokens,
            "cost": u.cost,
            "currency": u.currency,
            "source": u.source or "turn",
        }
    if result.stop_reason != "end_turn":
        attempt.fail("failed", STOP_REASONS.get(result.stop_reason, f"the agent stopped with {result.stop_reason!r}"))
    elif not result.text.strip() and result.tool_calls == 0:
        attempt.fail("failed", EMPTY_TURN)


def classify_error(attempt: Attempt, exc: AgentError) -> None:
    """A turn that raised. A refused model also ends the run, once the iteration is committed."""
    if isinstance(exc, TurnTimeout):
        attempt.fail("timeout", str(exc))
    else:
        attempt.fail("failed", str(exc))
    if isinstance(exc, ModelError):
        attempt.fatal = exc  # retrying cannot help: the user must pick another model


def check_planning(attempt: Attempt, after: State) -> None:
    """A planning turn that ended fine but planned nothing is a failure, so that it is retried."""
    if attempt.kind == "planning" and attempt.outcome == "ok" and not after.tasks:
        attempt.fail("failed", PLANNED_NOTHING)
