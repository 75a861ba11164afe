"""Replaying the log as a stream: line by line from an offset, in bounded memory.

The log is read in chunks of ``CHUNK`` bytes; each whole line is parsed and folded into the state, then dropped,
so memory holds one chunk and the state, never the log or a list of its events. The state itself keeps only what
is live: every ``SPILL_EVERY`` lines the caller's ``spill`` moves history (notes, iterations that left the window)
to the archive (``iteratr.session.archive``). A last line without ``\\n`` is torn (a crash mid-write): it is not
consumed, and a warning says so (the next write repairs it).
"""

from __future__ import annotations

import sys
import zlib

from iteratr.errors import StoreError
from iteratr.session.events import parse_line
from iteratr.session.reducer import apply

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from iteratr.session.state import State

CHUNK = 1 << 20
SPILL_EVERY = 20_000


class Progress:
    """What a replay consumed: whole lines, the byte offset after them, and where the file ended when read.

    In a segmented log (``iteratr.session.segments``) ``offset`` and ``end`` count bytes of the whole log (the
    closed segments, then ``events.jsonl``); the part consumed lies in segment ``seg`` (closed segment ``seg``, or
    ``events.jsonl`` when ``seg`` is the number of closed segments), which begins at ``base``, and ``crc`` is the
    CRC-32 of that segment's first ``offset - base`` bytes only: a check never reads the closed segments before
    it, which are never rewritten. An unsegmented log is segment 0 at base 0."""

    __slots__ = ("base", "crc", "end", "lines", "offset", "seg")

    def __init__(self, offset: int, lines: int, crc: int, seg: int = 0, base: int = 0) -> None:
        self.offset, self.lines, self.crc, self.end = offset, lines, crc, offset
        self.seg, self.base = seg, base

    @property
    def local(self) -> int:
        """Bytes of segment ``seg`` consumed."""
        return self.offset - self.base


def line_number(f: Any, offset: int) -> int:
    """The number of the line starting at byte ``offset`` of ``f`` (counted from 1): for an error message only."""
    f.seek(0)
    count, left = 1, offset
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            break
        count += chunk.count(b"\n")
        left -= len(chunk)
    return count


def stream(
    f: Any,
    state: State,
    done: Progress,
    path: Path,
    *,
    limit: int | None = None,
    spill: Callable[[Progress], None] | None = None,
    warn_torn: bool = True,
) -> int:
    """Fold the lines of ``f`` after ``done.offset`` (up to ``limit`` bytes into the file) into ``state``; advance
    ``done``. Returns the number of events applied."""
    f.seek(done.offset)
    pending = b""
    applied = since_spill = 0
    pos = done.offset
    while True:
        want = CHUNK if limit is None else min(CHUNK, limit - pos)
        chunk = f.read(want) if want > 0 else b""
        if not chunk:
            break
        buf_start = pos - len(pending)  # where ``buf`` starts in the file
        pos += len(chunk)
        buf = pending + chunk if pending else chunk
        cut = buf.rfind(b"\n") + 1
        if not cut:
            pending = buf
            continue
        whole, pending = buf[:cut], buf[cut:]
        view = memoryview(whole)
        flushed = line_start = 0  # bytes of ``whole`` counted in ``done``; where the current line starts
        try:  # text, decoded once per chunk: json then skips its own detection and decoding on every line
            lines: list[Any] = whole.decode("utf-8").split("\n")[:-1]
        except UnicodeDecodeError:  # a bad line somewhere: each line as bytes, so the bad one is named
            lines = whole.split(b"\n")[:-1]
        for raw in lines:
            line_end = whole.index(b"\n", line_start) + 1
            done.lines += 1
            if raw.strip():
                try:
                    event = parse_line(raw, done.lines, path)
                except StoreError:  # named by its line in this file (``done.lines`` counts the whole log's)
                    parse_line(raw, line_number(f, buf_start + line_start), path)
                    raise
                apply(state, event)
                applied += 1
                since_spill += 1
            if spill is not None and since_spill >= SPILL_EVERY:  # the history so far, up to this line's end
                done.crc = zlib.crc32(view[flushed:line_end], done.crc)
                done.offset += line_end - flushed
                flushed = line_end
                spill(done)
                since_spill = 0
            line_start = line_end
        done.crc = zlib.crc32(view[flushed:], done.crc)
        done.offset += cut - flushed
    done.end = pos
    if pending and warn_torn:
        print(
            f"iteratr: warning: {path}: ignoring a torn last line ({len(pending)} bytes, "
            "probably a crash mid-write); the next write repairs it",
            file=sys.stderr,
        )
    return applied


def crc_of(f: Any, length: int) -> int | None:
    """The CRC-32 of the first ``length`` bytes of ``f``, read in chunks; None if the file is shorter."""
    f.seek(0)
    crc, left = 0, length
    while left:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            return None
        crc = zlib.crc32(chunk, crc)
        left -= len(chunk)
    return crc
