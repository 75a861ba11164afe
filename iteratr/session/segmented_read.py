"""The store's read of a segmented log (``iteratr.session.segments``): fold what a cover does not reach yet, from
the segment it ends in through every closed segment after it, then ``events.jsonl``, streamed.

The cover (``replay.Progress``) moves segment by segment: at each closed segment's end it names the next one, at
offset 0 with CRC 0, so what a snapshot or checkpoint saved names the newest segment, and a check reads only that
segment's bytes."""

from __future__ import annotations

import os
import sys

from iteratr.errors import StoreError
from iteratr.session import segments
from iteratr.session.events import parse_line
from iteratr.session.replay import Progress, line_number, stream

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from typing import Any

    from iteratr.session.state import Event, State
    from iteratr.session.store import Store


def advance(
    store: Store, state: State, done: Progress, open_f: Any, n_closed: int, spill: Callable[[Progress], None] | None
) -> int:
    """Fold what ``done`` does not cover: the rest of its segment, every closed segment after it, then the
    open one; ``done`` ends in ``events.jsonl`` (segment ``n_closed``)."""

    def spilled(part: Progress) -> Progress:
        return Progress(done.base + part.offset, part.lines, part.crc, done.seg, done.base)

    def local_spill(part: Progress) -> None:
        if spill is not None:
            spill(spilled(part))

    applied = 0
    while done.seg < n_closed:
        path = store.dir / segments.segment_rel(done.seg)
        with store.open_segment(done.seg) as g:
            part = Progress(done.local, done.lines, done.crc)
            applied += stream(g, state, part, path, spill=local_spill if spill else None)
            size = os.fstat(g.fileno()).st_size
        done.lines = part.lines
        done.seg, done.base, done.crc = done.seg + 1, done.base + size, 0
        done.offset = done.end = done.base
    part = Progress(done.local, done.lines, done.crc)
    applied += stream(open_f, state, part, store.events_path, spill=local_spill if spill else None)
    done.offset, done.lines, done.crc, done.end = (
        done.base + part.offset,
        part.lines,
        part.crc,
        done.base + part.end,
    )
    return applied


class Empty:
    """An open segment that holds nothing new (``events.jsonl`` is the last closed segment: a close cut short)."""

    def seek(self, pos: int, whence: int = 0) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""


def events(view: segments.LogView, shown: Path) -> Iterator[Event]:
    """Every event of the whole log ``view`` reads (``Store.view``), in order, one line at a time: memory stays
    bounded. A bad line is named by its file (a closed segment, or events.jsonl: ``shown``) and its line there."""
    with view as f:
        line_no, pending, start = 0, b"", 0
        while chunk := f.read(1 << 20):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            for raw in lines:
                line_no += 1
                if raw.strip():
                    try:
                        yield parse_line(raw, line_no, shown)
                    except StoreError:
                        path, offset = view.where(start)
                        with view.open_file(path) as g:
                            parse_line(raw, line_number(g, offset), shown if path == view.paths[-1] else path)
                        raise
                start += len(raw) + 1
        if pending:
            print(
                f"iteratr: warning: {shown}: ignoring a torn last line ({len(pending)} bytes, "
                "probably a crash mid-write); the next write repairs it",
                file=sys.stderr,
            )
