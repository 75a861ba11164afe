"""The session log is iteratr's: check that a turn only appended to it, and repair what an agent did to it.

iteratr keeps the bytes of the log as it last committed them. When a turn ends, the log on disk must still
begin with exactly those bytes; what follows them is what the turn appended (``iteratr tool`` calls, the
user's ``say``). Anything else is tampering: the file truncated, deleted, rewritten, or a line edited.

On tampering the log is put back: the committed bytes first, then every *valid* event the turn added that
is not already among them, in the order they appear. Lines that are not valid events (and, when the prefix
was broken, lines of the committed log the agent edited) are set aside in a file beside the log, so nothing
is silently dropped, and the caller records a ``tamper`` event saying what it found.

A valid event the turn appended is the agent's own only if it was written through iteratr's store (``iteratr
tool``, ``iteratr say``, a hook's tool call): the store journals a digest of every line it writes, outside the
repository (``iteratr.session.journal``). A line with no digest there was written into the log by hand
(``echo ... >> events.jsonl``) and is set aside. Without a journal (outside git) any valid event passes.

Pure functions over bytes: the recorder feeds them the committed and current contents and writes the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from iteratr.session.journal import digest

# Event types only iteratr's own loop writes. An agent may append task and note events through `iteratr tool`,
# but a line of one of these types that appeared during a turn was written by hand.
LOOP_ONLY_TYPES = frozenset(
    {"iteration.started", "iteration.ended", "user.delivered", "hook.ran", "inbox.consumed", "tamper"}
)


@dataclass
class LogCheck:
    """The verdict on one turn's log."""

    repaired: bytes  # the log as it must be now (== current when nothing was wrong)
    problems: list[str] = field(default_factory=list)  # what was found, for the output and the tamper event
    set_aside: list[bytes] = field(default_factory=list)  # lines not kept, to save beside the log

    @property
    def tampered(self) -> bool:
        return bool(self.problems)


def check_log(
    committed: bytes,
    current: bytes | None,
    *,
    allowed_loop_lines: frozenset[bytes] = frozenset(),
    journaled: dict[bytes, int] | None = None,
) -> LogCheck:
    """Compare the log on disk (``current``; None if the file is gone) with what iteratr last committed.

    ``allowed_loop_lines`` are lines of loop-only types that iteratr itself appended during the turn (a
    ``hook.ran`` from a pre-iteration hook, the ``iteration.started``): they are not the agent's.
    ``journaled``: the store's journal (digest -> times written since the commit); each appended event must
    have its digest there, once per copy. None: no journal (outside git), so any valid event passes.
    """
    unspent = dict(journaled) if journaled is not None else None
    if current is None:
        return LogCheck(committed, ["the session log was deleted"]) if committed else LogCheck(b"")
    problems: list[str] = []
    edits: list[bytes] = []
    base = committed
    if current.startswith(committed):
        added_blob = current[len(committed) :]
    else:
        problems.append(_describe_break(committed, current))
        # Lines of the committed log still present are not new. Of the rest, those that stand before the last
        # committed line still present are edits of the committed log (set aside); those after it were appended.
        committed_lines = _multiset(committed.splitlines(keepends=True))
        current_lines = current.splitlines(keepends=True)
        matched = []
        for index, line in enumerate(current_lines):
            if committed_lines.get(line, 0):
                committed_lines[line] -= 1
                matched.append(index)
        last_matched = matched[-1] if matched else -1
        taken = set(matched)
        edits = [ln for i, ln in enumerate(current_lines) if i < last_matched and i not in taken]
        added_blob = b"".join(ln for i, ln in enumerate(current_lines) if i > last_matched)
        if edits:
            problems.append(f"{len(edits)} committed line(s) of the session log were edited")
    kept: list[bytes] = []
    set_aside: list[bytes] = list(edits) if not current.startswith(committed) else []
    torn = b""
    lines = added_blob.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        torn = lines.pop()  # a torn tail is the store's to repair, not tampering
    for line in lines:
        if not line.strip():
            continue
        verdict = _judge(line, allowed_loop_lines, unspent)
        if verdict is None:
            kept.append(line)
        else:
            set_aside.append(line)
            problems.append(verdict)
    if problems and kept:
        kept = _without_reused_ids(base, kept, set_aside, problems)
    if base and not base.endswith(b"\n"):
        base += b"\n"
    repaired = base + b"".join(kept) + (torn if not problems else b"")
    if torn and problems:
        set_aside.append(torn)
    return LogCheck(repaired if problems else current, problems, set_aside)


ADDING_TYPES = frozenset({"task.added", "note.added", "user.message"})


def _without_reused_ids(base: bytes, kept: list[bytes], set_aside: list[bytes], problems: list[str]) -> list[bytes]:
    """An agent that wrote into an emptied log handed out ids again (``TAS-1`` re-planned): such an event would
    replace a committed task or note in the restored log, so it is set aside, not kept."""
    seen = {_added_id(line) for line in base.splitlines()} - {None}
    result = []
    for line in kept:
        found = _added_id(line)
        if found is not None and found in seen:
            set_aside.append(line)
            problems.append(f"an event reusing the committed id {found[1]} was appended")
            continue
        if found is not None:
            seen.add(found)
        result.append(line)
    return result


def _added_id(line: bytes) -> tuple[str, str] | None:
    if not any(t.encode() in line for t in ADDING_TYPES):
        return None
    try:
        event = json.loads(line)
        if event["type"] in ADDING_TYPES:
            return event["type"], str(event["data"]["id"])
    except (ValueError, KeyError, TypeError):
        pass
    return None


def _judge(line: bytes, allowed_loop_lines: frozenset[bytes], unspent: dict[bytes, int] | None) -> str | None:
    """None for a valid event the agent may have appended; else what is wrong with the line. A journaled line
    spends its digest in ``unspent``, so a copy of a line written once through the store is set aside."""
    try:
        event = json.loads(line)
    except ValueError:
        return "a line that is not JSON was appended to the log"
    if not isinstance(event, dict) or not isinstance(event.get("type"), str) or not isinstance(event.get("data"), dict):
        return "a line that is not an event was appended to the log"
    if event["type"] in LOOP_ONLY_TYPES and line not in allowed_loop_lines:
        return f"a {event['type']} event was written into the log by hand"
    if unspent is not None and event["type"] not in LOOP_ONLY_TYPES:
        key = digest(line)
        if unspent.get(key, 0) <= 0:
            return "a line written into the log by hand, not through iteratr tool"
        unspent[key] -= 1
    # Without a journal a hand-written session.completed is kept: completion is derived from the tasks
    # (iteratr.run.guards), so it changes nothing, and `iteratr tool session-complete` writes the same line.
    return None


def _describe_break(committed: bytes, current: bytes) -> str:
    if not current:
        return "the session log was emptied"
    if len(current) < len(committed) and committed.startswith(current):
        return f"the session log was truncated ({len(committed) - len(current)} committed bytes removed)"
    return "committed lines of the session log were changed or removed"


def _multiset(lines: list[bytes]) -> dict[bytes, int]:
    counts: dict[bytes, int] = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    return counts
