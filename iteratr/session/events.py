"""The event format of ``events.jsonl``: how an event is made, and how lines are parsed back.

Format of ``events.jsonl``: one JSON object per line, UTF-8, ``\\n``-terminated::

    {"v": 1, "ts": "2026-11-24T04:40:00.123456Z", "type": "task.added", "iteration": 3, "data": {...}}

``v`` is the schema version (this code writes and reads 1; a larger one is refused rather than
misread). ``ts`` is UTC ISO-8601. ``iteration`` is the iteration the event belongs to. Types and
their ``data``:

=====================  ==============================================================================
task.added             id, content, status, priority (0..4, 0 = lowest), depends_on (list of ids)
task.status            id, status (remaining | in_progress | completed | blocked | cancelled)
task.priority          id, priority
task.depends           id, depends_on (one id; dependencies accumulate)
note.added             id, content, type (learning | stuck | tip | decision)
iteration.started      n, kind (planning | main | recovery), run? (the run's id: its start time)
iteration.ended        n, outcome (ok | failed | timeout | interrupted), error?, stop_reason?,
                       duration (s), usage? {input_tokens, output_tokens, total_tokens, cost, currency,
                       source (turn | agent-record | last-call)}, progress? (bool, see iteratr.run.guards)
iteration.summary      summary (for the event's ``iteration``)
session.completed      (none): recorded by the loop (or `session-complete`), never believed: completion
                       is derived from the tasks (``State.complete``)
user.message           id (MSG-n), text, source? (inbox file taken), start?, end? (byte range)
inbox.consumed         source, end (bytes of a taken inbox file consumed without a message)
user.delivered         ids (message ids), iteration (the prompt they went into)
hook.ran               hook, command, exit_status, timed_out, duration, task_id?
tamper                 what (log | branch), problems (list of what was found), set_aside? (file),
                       rewritten? (refs keeping the agent's rewritten commits): written by the loop
                       when it repaired what an agent did to the log or the branch (iteratr.run.history)
=====================  ==============================================================================
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from iteratr.errors import StoreError
from iteratr.session.state import Event

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.session.state: only mypy needs typing
    from typing import Any

SCHEMA_VERSION = 1


def utc_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def make_event(type: str, data: dict[str, Any], iteration: int) -> Event:
    return {"v": SCHEMA_VERSION, "ts": utc_now(), "type": type, "iteration": iteration, "data": data}


def parse_lines(blob: bytes, first_line_no: int, path: Path) -> tuple[list[Event], int]:
    """Parse whole lines of ``blob``; return the events and the number of bytes consumed.

    A last line without ``\\n`` is torn (a crash mid-write): it is not consumed, and a warning goes to stderr.
    """
    events: list[Event] = []
    end = blob.rfind(b"\n") + 1
    if end < len(blob):
        print(
            f"iteratr: warning: {path}: ignoring a torn last line ({len(blob) - end} bytes, "
            "probably a crash mid-write); the next write repairs it",
            file=sys.stderr,
        )
    if not end:
        return events, 0
    for offset, raw in enumerate(blob[:end].splitlines()):
        if raw.strip():
            events.append(parse_line(raw, first_line_no + offset, path))
    return events, end


def parse_line(raw: bytes | str, line_no: int, path: Path) -> Event:
    """One line of the log as an event; a line that is not one is a ``StoreError`` naming ``path:line_no``."""
    import json  # here: a reader whose snapshot is up to date has no line to parse and skips the import

    try:
        event = json.loads(raw)
        if not isinstance(event, dict) or "type" not in event:
            raise ValueError("not an event object")
        version = event.get("v", 1)
        if version.__class__ is not int:  # compared below; a string would raise TypeError
            raise ValueError(f"schema version {version!r} is not a whole number")
    except ValueError as exc:
        raise StoreError(
            f"{path}:{line_no}: invalid event line ({exc})",
            hint="the log was edited by hand or by a merge; fix or remove that line, "
            "or restore it with `git checkout -- <file>`",
        ) from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}:{line_no}: event schema v{event['v']} is newer than this iteratr understands (v{SCHEMA_VERSION})",
            hint="upgrade iteratr",
        )
    return event
