"""``iteratr status``'s text views: one session, one line per fact, and the one-line entry of the session list.

Pure: the JSON-ready data ``status.collect`` gathers in, lines out, no colour (they read the same in a mail).
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from iteratr.commands import status_detail
from iteratr.session.state import TASK_STATUSES
from iteratr.text import clock, duration_text

NOTES_SHOWN = 5
MESSAGES_SHOWN = 5


# -- rendering ---------------------------------------------------------------------------------------


def _epoch(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _ago(ts: str | None, now: float) -> str:
    when = _epoch(ts)
    if when is None:
        return "?"
    return f"{clock(ts)}, {duration_text(max(0.0, now - when))} ago"


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _progress(data: dict[str, Any]) -> str:
    if data["complete"]:
        return "complete"
    done = data["tasks"].get("completed", 0)
    return f"{done}/{data['task_total']} tasks done" if data["task_total"] else "not planned yet"


def _iteration_line(it: dict[str, Any], running: bool, now: float, currency: str | None = None) -> str:
    head = f"#{it['n']}" + (f" {it['kind']}" if it["kind"] != "main" else "")
    outcome = it["outcome"]
    if outcome is None:
        if running:
            return f"{head} running, started {_ago(it['started'], now)}"
        return f"{head} unfinished, started {_ago(it['started'], now)}: its run is gone (the next build records it)"
    label = {"timeout": "TIMED OUT", "failed": "FAILED", "interrupted": "interrupted"}.get(outcome, outcome)
    line = f"{head} {label}, started {_ago(it['started'], now)}, took {duration_text(it['duration'])}"
    line += status_detail.usage_words(it, currency)
    detail = _first_line(it["summary"]) if outcome == "ok" else _first_line(it["error"])
    if outcome != "ok" and it["summary"]:
        detail += f" (summary: {_first_line(it['summary'])})"
    return f"{line}: {detail}" if detail else line


def render(data: dict[str, Any], now: float | None = None) -> list[str]:
    """The text view of one session, one line per fact, no colour: it reads the same in a mail."""
    from iteratr.run.runlock import describe

    now = time.time() if now is None else now
    lines = [f"session {data['session']} | branch {data['branch']} | {_progress(data)}"]
    if data["running"]:
        lines.append(f"running: yes, {describe(data['holder'])}")
    else:
        lines.append("running: no")
    where = {"worktree": "worktree", "checkout": "this checkout"}.get(data["source"])
    if where:
        lines.append(f"read from: {where} {data['work_tree']} (live files)")
    else:
        lines.append(f"read from: branch {data['branch']} (its last commit)")
    if data["log_missing"]:
        lines.append(f"no event log at {data['log_missing']} (another --data-dir?)")
    activity = f", last activity {_ago(data['last_activity'], now)}" if data["last_activity"] else ""
    lines.append(f"iterations: {data['iterations']} done{activity}")
    counts = data["tasks"]
    shown = ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in TASK_STATUSES if counts.get(s))
    lines.append(f"tasks: {shown} ({data['task_total']} in all)" if data["task_total"] else "tasks: none yet")
    lines += status_detail.task_lines(data["task_list"], data["session"], data["closed_total"])
    task = data["in_progress"]
    if task:
        lines.append(f"in progress: {task['id']}: {_first_line(task['content'])}")
    if data["recent"]:
        lines.append("recent iterations:")
        lines += [f"  {_iteration_line(it, data['running'], now, data['currency'])}" for it in data["recent"]]
    lines += _notes_lines(data["notes"], data["note_total"])
    lines += _message_lines(data["pending_messages"], data["inbox_has_text"], now, data["running"])
    if data["tokens"] or data["cost"] is not None:
        usage = [f"{data['tokens']:,} tokens"] if data["tokens"] else []
        if data["cost"] is not None:
            usage.append(f"cost {data['cost']:.4f} {data['currency'] or ''}".rstrip())
        if data["totals"]["partial"]:
            usage.append("some turns: last call only, as the agent reports")
        lines.append("usage: " + ", ".join(usage))
    lines += status_detail.totals_lines(data)
    failure = data["last_failure"]
    if failure:
        lines.append(f"last failure: {_iteration_line(failure, False, now)}")
    return lines


def _notes_lines(notes: list[dict[str, Any]], total: int) -> list[str]:
    if not notes:
        return []
    which = f", the last {NOTES_SHOWN}" if total > NOTES_SHOWN else ""
    lines = [f"notes ({total}{which}):"]
    for n in notes[-NOTES_SHOWN:]:
        lines.append(f"  {n['id']} [{n['type']}] #{n['iteration']}: {_first_line(n['content'])}")
    return lines


def _message_lines(messages: list[dict[str, Any]], inbox_text: bool, now: float, running: bool) -> list[str]:
    """Messages taken but not yet in a prompt, and text still sitting in inbox.md."""
    if not messages and not inbox_text:
        return []
    lines = [f"pending messages: {len(messages)}" + (" + text in inbox.md" if inbox_text else "")]
    for m in messages[-MESSAGES_SHOWN:]:
        lines.append(f"  {m['id']} ({_ago(m['ts'], now)}): {_first_line(m['text'])}")
    if inbox_text:
        lines.append(f"  inbox.md holds text not taken yet ({status_detail.inbox_taker(running)})")
    return lines


def render_line(data: dict[str, Any], now: float | None = None) -> str:
    """One line of the session list."""
    now = time.time() if now is None else now
    parts = [
        data["session"],
        "running" if data["running"] else "idle",
        _progress(data),
        f"{data['iterations']} iteration(s)",
    ]
    if data["last_activity"]:
        parts.append(f"last activity {_ago(data['last_activity'], now)}")
    if data["source"] == "worktree":
        parts.append(f"worktree {data['work_tree']}")
    return " | ".join(parts)
