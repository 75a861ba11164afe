"""What ``iteratr report`` shows of a long history, read in one streamed pass each, never held whole.

A session a million events long has about 116,000 iterations, 113,000 tasks and 300,000 notes. The page counts all
of them (iterations by outcome, time, runs, notes by type) and shows the detail of the last few: the last
``ITERATIONS`` iterations, the open tasks and the last ``DONE_TASKS`` done ones, the last ``NOTES`` notes of each
type and the last ``MESSAGES`` messages, saying how many it left out. Iterations and notes come from the snapshot's
archive a saved batch at a time (``State.iter_iteration_rows``, ``State.iter_note_rows``); what is kept of every
iteration is a few bytes (its outcome, duration and run) in arrays, so the page and the memory stay bounded.
"""

from __future__ import annotations

from array import array
from collections import deque

from iteratr.commands.report_svg import OUTCOME_COLOURS, outcome_of
from iteratr.session.compact import number_of
from iteratr.session.state import NOTE_TYPES, Iteration, Message, State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

ITERATIONS = 200  # the last iterations shown one by one (a bar and a row each)
DONE_TASKS = 50  # the done tasks shown besides the open ones (at most tasks.RECENT: no archive read)
NOTES = 20  # the last notes of each type
MESSAGES = 50  # the last messages
_OUTCOMES = tuple(OUTCOME_COLOURS)


class Timeline:
    """Every iteration a run made (a summary written by hand is none), counted; the last ``shown`` kept whole."""

    __slots__ = ("by_outcome", "codes", "count", "duration", "run_numbers", "run_starts", "runs", "shown", "unfinished")

    def __init__(self) -> None:
        self.shown: list[Iteration] = []  # the last ones, in number order
        self.count = 0
        self.by_outcome: dict[str, int] = {}  # in the order each outcome first came
        self.duration = 0.0
        self.runs = 0
        self.run_starts: dict[int, str] = {}  # shown iteration that began a run -> the run's id
        self.run_numbers: dict[str, int] = {}  # a shown run's id -> its number, counted from the session's first
        self.unfinished: list[int] = []  # iterations with no outcome (running, or their run was killed)
        self.codes = bytearray()  # per number: 0 no iteration of the timeline, else 1 + its outcome's index

    def numbers(self) -> Iterator[int]:
        """The timeline's iteration numbers, in order."""
        return (n for n, code in enumerate(self.codes) if code)


def scan(state: State, shown: int = ITERATIONS) -> Timeline:
    """The timeline, from one streamed read of the iterations (a later row of a number replaces an earlier one)."""
    found = Timeline()
    size = state.current_iteration + 1
    codes = found.codes = bytearray(size)
    durations = array("d", bytes(8 * size))
    run_of = array("l", [-1]) * size
    run_index: dict[str, int] = {}
    low = size - 1 - shown
    kept: dict[int, Iteration] = {}
    running: set[int] = set()  # no outcome (yet): the burn-down shows them as the log ends
    for row in state.iter_iteration_rows():
        it = Iteration.from_row(row)
        n = it.n
        if n.__class__ is not int or not 0 <= n < size:
            continue
        if it.kind == "manual":
            codes[n] = 0
            kept.pop(n, None)
            running.discard(n)
            continue
        codes[n] = 1 + _OUTCOMES.index(outcome_of(it))
        durations[n] = it.duration or 0.0
        run_of[n] = run_index.setdefault(it.run, len(run_index)) if it.run else -1
        if it.outcome is None:
            running.add(n)
        else:
            running.discard(n)
        if n > low:
            kept[n] = it
    run_ids = list(run_index)
    number_of_run: dict[int, int] = {}
    previous = -1
    for n in found.numbers():
        found.count += 1
        outcome = _OUTCOMES[codes[n] - 1]
        found.by_outcome[outcome] = found.by_outcome.get(outcome, 0) + 1
        found.duration += durations[n]
        run = run_of[n]
        if run < 0:
            continue
        number = number_of_run.setdefault(run, len(number_of_run) + 1)
        if run != previous and n in kept:
            found.run_starts[n] = run_ids[run]
            found.run_numbers[run_ids[run]] = number
        previous = run
    found.runs = len(number_of_run)
    found.shown = [kept[n] for n in sorted(kept)]
    found.unfinished = sorted(n for n in running if codes[n])
    return found


def notes_by_type(state: State, shown: int = NOTES) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, int]]:
    """The last ``shown`` notes' rows of each type, and how many of each there are: the known types first."""
    last: dict[str, deque[tuple[Any, ...]]] = {}
    counts: dict[str, int] = {}
    for row in state.iter_note_rows():
        kind = row[2]
        if kind not in last:
            last[kind] = deque(maxlen=shown)
        last[kind].append(row)
        counts[kind] = counts.get(kind, 0) + 1
    order = [*NOTE_TYPES, *sorted(set(last) - set(NOTE_TYPES))]
    return {k: list(last[k]) for k in order if k in last}, counts


def last_messages(state: State, shown: int = MESSAGES) -> list[Message]:
    """The ``shown`` messages with the highest numbers, in number order: the delivered ones streamed from the
    archive, the waiting ones from the live state (which wins for an id in both)."""
    rows: dict[str, tuple[Any, ...]] = {}
    for row in state.archived_rows("messages"):
        rows[row[0]] = row
        if len(rows) > 4 * shown:
            rows = dict(_highest(rows, shown))
    for row in state.messages.live_rows():
        rows[row[0]] = row
    found = []
    for mid, text, ts, delivered_to in (row for _, row in _highest(rows, shown)):
        msg = Message(mid, text, ts)
        msg.delivered_to = delivered_to
        found.append(msg)
    return found


def _highest(rows: dict[str, tuple[Any, ...]], count: int) -> list[tuple[str, tuple[Any, ...]]]:
    def key(item: tuple[str, tuple[Any, ...]]) -> tuple[int, str]:
        n = number_of(item[0], "MSG-")
        return (n if n is not None else 10**9, item[0])

    return sorted(rows.items(), key=key)[-count:]
