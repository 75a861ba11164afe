"""Guard rails: when a run is done, stuck or over budget, judged by iteratr from the log, never claimed by the agent.

- **Completion is derived.** A session is complete when it has at least one task, every task is ``completed`` or
  ``cancelled``, and no user message waits. An agent's ``session-complete`` call, or a ``session.completed`` line
  it writes by hand, changes nothing here.
- **Blocked is a stop, not a spin.** When every task that is not done is ``blocked``, no iteration can help: the
  run stops for a person (exit 5), naming each blocked task and its latest ``stuck`` note.
- **Progress is measured.** An iteration made progress if a task reached ``completed`` or ``cancelled``, a task
  was added, a user message was delivered, or the work tree outside the session's own files changed. Status
  churn (``in_progress`` again), notes and summaries are not progress: an agent can write those forever.
  Each ``iteration.ended`` records its verdict, so the count of iterations without progress survives restarts
  (a cron job cannot reset it by starting again).
- **Budgets hold across runs.** ``session_max_*`` count from the event log's totals; ``max_*`` count this run.
  A budget is checked before an iteration starts: a turn is never cut off for money, only for ``max_time``.

Pure functions over :class:`~iteratr.session.state.State`: the loop calls them, tests call them directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from iteratr.session.state import DONE_STATUSES, WINDOW, Iteration, State, Task
from iteratr.session.tasks import changes

__all__ = ["DONE_STATUSES", "Budgets", "Totals"]


@dataclass(frozen=True)
class Budgets:
    """Limits from config; ``None`` is no limit. A cost limit without a currency is in the agent's currency."""

    max_cost: float | None = None
    max_tokens: int | None = None
    max_time: float | None = None  # seconds of wall time for this run
    session_max_cost: float | None = None
    session_max_tokens: int | None = None
    max_cost_currency: str | None = None
    session_max_cost_currency: str | None = None

    @property
    def counts_cost(self) -> bool:
        return self.max_cost is not None or self.session_max_cost is not None

    @property
    def counts_tokens(self) -> bool:
        return self.max_tokens is not None or self.session_max_tokens is not None


@dataclass
class Totals:
    """What one run (or a whole session) has spent: tokens and cost, and how far the agent reported them."""

    tokens: int = 0
    cost: float = 0.0
    currency: str | None = None
    cost_known: bool = False  # at least one turn reported a cost
    tokens_known: bool = False
    partial: bool = False  # some turn's tokens are only part of it (the agent reported only its last model call)
    iterations: int = 0

    def add(self, usage: dict[str, object] | None) -> None:
        if not usage:
            return
        tokens = usage.get("total_tokens")
        if isinstance(tokens, int):
            self.tokens += tokens
            self.tokens_known = True
        cost = usage.get("cost")
        if isinstance(cost, int | float):
            self.cost += float(cost)
            self.cost_known = True
            currency = usage.get("currency")
            if isinstance(currency, str) and currency:
                self.currency = currency
        if usage.get("source") == "last-call":
            self.partial = True

    @classmethod
    def of(cls, iterations: Iterable[Iteration], currency: str | None = None) -> Totals:
        """The sum over recorded iterations (from the event log, so it holds across runs)."""
        totals = cls(currency=currency)
        for it in iterations:
            totals.iterations += 1
            totals.add({"total_tokens": it.tokens, "cost": it.cost, "source": it.usage_source})
        return totals

    def words(self) -> str:
        """For the ``stopped:`` line and ``status``: "3 iterations, 1,234 tokens, cost 0.0120 USD"."""
        parts = [f"{self.iterations} iteration(s)"]
        if self.tokens_known:
            parts.append(
                f"{self.tokens:,} tokens"
                + (" (some turns: last call only, as the agent reports)" if self.partial else "")
            )
        if self.cost_known:
            parts.append(f"cost {self.cost:.4f} {self.currency or ''}".rstrip())
        return ", ".join(parts)


def run_totals(state: State, run: str) -> Totals:
    return _summed(state.iteration_totals(run), state.currency)


def session_totals(state: State) -> Totals:
    return _summed(state.iteration_totals(), state.currency)


def _summed(sums: list[Any], currency: str | None) -> Totals:
    """The state's running sums (kept as the log is replayed, so no iteration of the history is read again)."""
    iterations, tokens, tokens_known, cost, cost_known, partial = sums
    return Totals(tokens, cost, currency, cost_known, tokens_known, partial, iterations)


def is_complete(state: State) -> bool:
    """Every task done (completed or cancelled), at least one task, and no message waiting for the agent."""
    return state.complete


def all_blocked(state: State) -> list[Task]:
    """The blocked tasks, when every task not done is blocked (so no iteration can make progress); else []."""
    if state.pending_messages():
        return []  # a message may unblock them: the agent gets to read it first
    undone = state.tasks.live()  # the tasks not done: never the session's history
    if undone and all(t.status == "blocked" for t in undone):
        return sorted(undone, key=lambda t: _number(t.id))
    return []


def latest_stuck_note(state: State, task_id: str) -> str | None:
    """The text of the newest ``stuck`` note that names ``task_id``, else the newest ``stuck`` note at all."""
    stuck = [n for n in state.notes if n.type == "stuck"]
    naming = [n for n in stuck if _names(n.content, task_id)]
    pick = naming or stuck
    return pick[-1].content if pick else None


def made_progress(before: State, after: State, *, delivered: int, tree_changed: bool) -> bool:
    """Whether the iteration between ``before`` and ``after`` moved the session forward (see the module doc)."""
    if delivered or tree_changed:
        return True
    if len(after.tasks) > len(before.tasks):
        return True
    for old, task in changes(before.tasks, after.tasks):  # what changed, not every task
        if task.status in DONE_STATUSES and (old is None or old not in DONE_STATUSES):
            return True
    return False


def without_progress(state: State, up_to: int) -> int:
    """How many ended iterations in a row, up to the last, made no progress (from the log: survives restarts),
    counted only as far as ``up_to``: the answer is ``min(the count, up_to)``.

    Interrupted ones are passed over (Ctrl+C is not the agent's doing); an iteration with no verdict (an older
    log) ends the count, as progress does. The live window answers any ``up_to`` within ``WINDOW``; only a larger
    limit, with the whole window stalled, reads older iterations (from the archive: it grows with the history).
    """
    if up_to <= 0:
        return 0
    count = 0
    recent = state.recent_iterations(WINDOW)
    stalled_window = all(it.progress is False or it.outcome in (None, "interrupted") for it in recent)
    if up_to > WINDOW and len(recent) == WINDOW and stalled_window:
        recent = [state.iterations[n] for n in sorted(state.iterations)]
    for it in reversed(recent):
        if it.outcome is None or it.outcome == "interrupted":
            continue
        if it.progress is not False or count >= up_to:
            break
        count += 1
    return count


TASK_CHANGES = ("task.added", "task.status", "task.depends", "task.priority")


def acted_since(state: State, events: Iterable[dict[str, Any]]) -> bool:
    """Whether someone changed the tasks after the last iteration ended (between runs, by hand). ``events`` is
    consumed lazily and only up to the first such change: pass a stream, never a list of the log."""
    ended = [it.n for it in state.recent_iterations(WINDOW) if it.outcome is not None]  # live, not all
    if not ended and state.current_iteration >= WINDOW:
        ended = [n for n, it in state.iterations.items() if it.outcome is not None]
    last = max(ended, default=None)
    seen_end = False
    for event in events:
        if event["type"] == "iteration.ended" and (event.get("data") or {}).get("n") == last:
            seen_end = True
        elif seen_end and event["type"] in TASK_CHANGES:
            return True
    return False


def over_budget(budgets: Budgets, *, run: Totals, session: Totals, elapsed: float) -> str | None:
    """Which budget the next iteration would start over, as the ``stopped:`` line's words; None if none."""
    unit = f" {run.currency or session.currency}".rstrip() if (run.currency or session.currency) else ""
    checks: list[tuple[str, float | int | None, float | int, str]] = [
        ("max_cost", budgets.max_cost, run.cost, f"this run spent {run.cost:.4f}{unit}"),
        ("session_max_cost", budgets.session_max_cost, session.cost, f"the session spent {session.cost:.4f}{unit}"),
        ("max_tokens", budgets.max_tokens, run.tokens, f"this run used {run.tokens:,} tokens"),
        (
            "session_max_tokens",
            budgets.session_max_tokens,
            session.tokens,
            f"the session used {session.tokens:,} tokens",
        ),
        ("max_time", budgets.max_time, elapsed, f"this run has taken {duration_words(elapsed)}"),
    ]
    for key, limit, spent, words in checks:
        if limit is not None and spent >= limit:
            shown = duration_words(limit) if key == "max_time" else f"{limit:g}"
            return f"budget {key} ({shown}) reached: {words}"
    return None


def unmeasured_budget(budgets: Budgets, first_turn: Totals) -> str | None:
    """A budget the agent turns out not to measure, judged after its first turn; None when every one is measured.

    A cost budget with an agent that reports no cost would otherwise be a silent "unlimited"; so would one in
    another currency than the agent's.
    """
    if budgets.counts_cost and not first_turn.cost_known:
        return (
            "the agent reports no cost, so max_cost / session_max_cost cannot be enforced: "
            "remove them, or use an agent that reports cost"
        )
    for key, currency in (
        ("max_cost", budgets.max_cost_currency),
        ("session_max_cost", budgets.session_max_cost_currency),
    ):
        if currency and first_turn.currency and currency != first_turn.currency:
            return (
                f"{key} is in {currency} but the agent reports cost in {first_turn.currency}: "
                f"give {key} in {first_turn.currency}, or without a currency"
            )
    if budgets.counts_tokens and not first_turn.tokens_known:
        return "the agent reports no token counts, so max_tokens / session_max_tokens cannot be enforced"
    return None


def duration_words(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _names(text: str, task_id: str) -> bool:
    """Whether ``text`` names ``task_id`` as a whole id: TAS-1 is not named by "TAS-12"."""
    at = text.find(task_id)
    while at >= 0:
        end = at + len(task_id)
        if end == len(text) or not text[end].isdigit():
            return True
        at = text.find(task_id, end)
    return False


def _number(task_id: str) -> int:
    digits = task_id.rpartition("-")[2]
    return int(digits) if digits.isdigit() else 0
