"""What ``iteratr status`` shows beyond the counts: the tasks by name with the iterations each took, and the
totals of the last run and of the session by outcome, time, tokens and cost.

The iterations a task took come from the event order, as ``iteratr report`` reads them
(``report_facts.gather``): every iteration it was in progress during, or the one that completed it. One
reading for both, so the page and the terminal never disagree. Pure: data in, JSON-ready data or lines out.
"""

from __future__ import annotations

from typing import Any

from iteratr.commands import report_facts
from iteratr.run import guards
from iteratr.session.state import CLOSED_STATUSES, State, id_number
from iteratr.text import clock, duration_text

CLOSED_SHOWN = 10  # closed tasks listed (the latest); open ones are always all listed
_ORDER = {"in_progress": 0, "remaining": 1, "blocked": 2, "completed": 3, "cancelled": 4}


def task_list(state: State, fold: report_facts.SpanFold) -> tuple[list[dict[str, Any]], int]:
    """The tasks status shows, each with the iterations it took: the open ones (the one in progress, then remaining
    by priority), then the closed ones (blocked, completed, cancelled), of which only the last ``CLOSED_SHOWN``;
    and how many closed ones there are. Done tasks are history: only the last few are read."""
    live = state.tasks.live()
    done = state.tasks.last_done(CLOSED_SHOWN)
    counts = state.counts()
    closed_total = sum(n for status, n in counts.items() if status in CLOSED_STATUSES)
    tasks = sorted(
        [*live, *done],
        key=lambda t: (_ORDER.get(t.status, 5), -t.priority if t.status not in CLOSED_STATUSES else 0, id_number(t.id)),
    )
    open_ = [t for t in tasks if t.status not in CLOSED_STATUSES]
    shown = [*open_, *[t for t in tasks if t.status in CLOSED_STATUSES][-CLOSED_SHOWN:]]
    last = state.current_iteration
    rows = []
    for task in shown:
        span = fold.span(task.id, last)
        rows.append({**task.to_dict(), "iterations": list(span.iterations) if span else []})
    return rows, closed_total


def totals(state: State, its: dict[str, Any]) -> dict[str, Any]:
    """The session's and its last run's totals, JSON-ready: outcomes and time from the iterations' fold
    (``status_iterations``), tokens and cost from the state's running sums."""
    session = {**its["session"], **_usage(guards.session_totals(state))}
    last = its["last_run"]
    if last is None:
        return {"session": session, "last_run": None}
    return {"session": session, "last_run": {**last, **_usage(guards.run_totals(state, last["run"]))}}


def _usage(t: guards.Totals) -> dict[str, Any]:
    return {
        "tokens": t.tokens if t.tokens_known else None,
        "cost": t.cost if t.cost_known else None,
        "currency": t.currency,
        "partial": t.partial,
    }


# -- text ---------------------------------------------------------------------------------------------------


def iterations_text(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``#1-3, #5``."""
    parts: list[str] = []
    start = prev = None
    for n in [*numbers, None]:
        if n is not None and prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            parts.append(f"#{start}" if start == prev else f"#{start}-{prev}")
        start = prev = n
    return ", ".join(parts)


def task_lines(tasks: list[dict[str, Any]], session: str, closed_total: int | None = None) -> list[str]:
    """One line per task under the counts: ``> `` marks the one in progress; closed ones only the latest few.
    ``closed_total``: how many closed tasks there are in all, when ``tasks`` holds only the last ones."""
    open_ = [t for t in tasks if t["status"] not in CLOSED_STATUSES]
    closed = [t for t in tasks if t["status"] in CLOSED_STATUSES]
    shown = closed[-CLOSED_SHOWN:]
    lines = [_task_line(t) for t in [*open_, *shown]]
    total = len(closed) if closed_total is None else closed_total
    if total > len(shown):
        more = total - len(shown)
        lines.append(f"    … {more} earlier closed task(s): iteratr tool task-list --name {session}")
    return lines


def _task_line(task: dict[str, Any]) -> str:
    mark = ">" if task["status"] == "in_progress" else " "
    text = (task["content"] or "").strip().splitlines()
    took = f" ({iterations_text(task['iterations'])})" if task["iterations"] else ""
    return f"  {mark} {task['id']} {task['status'].replace('_', ' ')}: {text[0] if text else ''}{took}"


def totals_text(part: dict[str, Any]) -> str:
    """``3 iteration(s) (2 ok, 1 failed), 4m 10s, 1,234 tokens, cost 0.0120 USD``."""
    count = sum(part["outcomes"].values())
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(part["outcomes"].items(), key=lambda kv: -kv[1]))
    words = [f"{count} iteration(s)" + (f" ({outcomes})" if outcomes else ""), duration_text(part["duration"])]
    if part["tokens"] is not None:
        words.append(f"{part['tokens']:,} tokens" + (" (some turns: last call only)" if part["partial"] else ""))
    if part["cost"] is not None:
        words.append(f"cost {part['cost']:.4f} {part['currency'] or ''}".rstrip())
    return ", ".join(words)


def totals_lines(data: dict[str, Any]) -> list[str]:
    found = data["spent"]
    lines = []
    if found["last_run"] is not None:
        run = found["last_run"]
        lines.append(f"last run (started {clock(run['run'])}): {totals_text(run)}")
    lines.append(f"session: {totals_text(found['session'])}; {len(data['runs'])} run(s)")
    return lines


def usage_words(it: dict[str, Any], currency: str | None) -> str:
    """``, 1,234 tokens, cost 0.0120 USD`` for an iteration line, or nothing when the agent reported none."""
    words = ""
    if it.get("tokens") is not None:
        words += f", {it['tokens']:,} tokens"
    if it.get("cost") is not None:
        words += f", cost {it['cost']:.4f} {currency or ''}".rstrip()
    return words


def inbox_taker(running: bool) -> str:
    """Who takes text waiting in inbox.md: ``running`` is the session's run lock held (the "running:" line)."""
    return "the running build takes it within a second" if running else "the next build takes it when it starts"
