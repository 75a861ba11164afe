"""``iteratr tool note-list``: the last notes (of a type), or every one with ``--all``, never all held at once.

A session a million events long has about 300,000 notes. An agent asking for the ``stuck`` ones wants the last
few, not a list that fills its context, so the answer is the last ``SHOWN`` and says how many older ones there
are; ``--all`` lists every one, written as it is read. Either way the notes are streamed from the snapshot's
archive (``State.iter_note_rows``), so memory holds the ones shown, not the history.
"""

from __future__ import annotations

from collections import deque

from iteratr.session.state import RECENT_NOTES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, TextIO

    from iteratr.session.state import State

SHOWN = 30  # as many as the prompt and tasks.yaml show
assert SHOWN <= RECENT_NOTES  # the last notes of every type come from the live state, without the archive


def note_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"id": row[0], "content": row[1], "type": row[2], "iteration": row[3]}


def note_line(note: dict[str, Any]) -> str:
    return f"{note['id']} #{note['iteration']} {note['type']}: {note['content']}"


def last_notes(state: State, note_type: str | None, count: int = SHOWN) -> tuple[list[dict[str, Any]], int]:
    """The last ``count`` notes (of ``note_type``) in log order, and how many there are in all."""
    if note_type is None:
        recent = state.recent_note_rows(count)
        if len(recent) == min(count, state.note_count):
            return [note_dict(row) for row in recent], state.note_count
    kept: deque[tuple[Any, ...]] = deque(maxlen=count)
    total = 0
    for row in state.iter_note_rows():
        if note_type is None or row[2] == note_type:
            total += 1
            kept.append(row)
    return [note_dict(row) for row in kept], total


def listed_text(notes: list[dict[str, Any]], total: int, note_type: str | None) -> str:
    if not notes:
        return "no notes"
    lines = [note_line(n) for n in notes]
    if total > len(notes):
        kind = f"{note_type} " if note_type else ""
        lines.append(f"({total - len(notes):,} older {kind}notes not listed: note-list --all lists every one)")
    return "\n".join(lines)


class AllNotes:
    """``note-list --all``: every note (of a type), written as it is read (``write``), not gathered first."""

    def __init__(self, state: State, note_type: str | None) -> None:
        self.state = state
        self.note_type = note_type

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for row in self.state.iter_note_rows():
            if self.note_type is None or row[2] == self.note_type:
                yield note_dict(row)

    def write(self, out: TextIO, *, as_json: bool) -> None:
        if as_json:
            import json

            out.write("[")
            for i, note in enumerate(self):
                out.write((", " if i else "") + json.dumps(note, ensure_ascii=False))
            out.write("]\n")
            return
        empty = True
        for note in self:
            out.write(note_line(note) + "\n")
            empty = False
        if empty:
            out.write("no notes\n")

    def text(self) -> str:
        return "\n".join(note_line(n) for n in self) or "no notes"
