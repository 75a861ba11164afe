"""The iterations each task took, for ``iteratr status``: folded from the log once, then only from where it left off.

The state (``iteratr.session``) keeps where each task ended, not which iterations it was in progress in; that comes
from the event order (``report_facts.SpanFold``). Passing over the whole log on every ``status`` would cost what
the history costs, so the fold is kept in a cache under the git dir (never committed, always rebuildable) with the
byte offset it covers, the log's stat and a digest of the 64 KiB before that offset:

- the same stat: nothing new, the fold is used as it is;
- a longer log whose bytes before the offset still end as they did: only the new lines are folded (a live run's
  appends, or the branch's next commit in its mirror, ``iteratr.freshest``);
- anything else (a log rewritten or cut short): folded again from the start, streamed line by line.

Only whole lines are folded: a line a live run is still writing waits for the next call. A line that is not JSON is
passed over here (status shows, it does not judge; the store names such a line when it reads the log). The cache
is written atomically; a cache that cannot be read or written only costs a fold from the start.
"""

from __future__ import annotations

import contextlib
import json
import marshal
import os
import zlib
from pathlib import Path
from typing import Any

from iteratr.commands.report_facts import SpanFold
from iteratr.commands.status_iterations import IterationFold
from iteratr.session import segments

FORMAT = 2
TAIL = 1 << 16  # the bytes before the covered offset whose digest must match for the fold to go on from there
CHUNK = 1 << 20
KEEP_DONE = 64  # done tasks whose spans are kept: status lists the last 10 closed ones


class Folded:
    """The folds (tasks' spans, iterations' sums), the offset they cover, and the time of the last event seen."""

    __slots__ = ("fold", "its", "last_ts", "offset")

    def __init__(
        self,
        fold: SpanFold | None = None,
        its: IterationFold | None = None,
        offset: int = 0,
        last_ts: str | None = None,
    ) -> None:
        self.fold = fold if fold is not None else SpanFold(KEEP_DONE)
        self.its = its if its is not None else IterationFold()
        self.offset, self.last_ts = offset, last_ts


def cache_path(common_dir: Path, log: Path) -> Path:
    """Where the fold of ``log`` is kept: under the git dir, keyed by the log's absolute path."""
    key = f"{zlib.crc32(os.fsencode(os.path.abspath(log))):08x}"
    return common_dir / "iteratr" / "cache" / "status" / f"{key}.marshal"


def folded(log: Path, cache: Path | None) -> Folded:
    """The fold of ``log`` as it is now (see the module doc); the cache is brought up to date when it moved."""
    try:
        if os.path.isdir(log.parent / segments.SEGMENTS_DIR):  # closed segments, then the log: read as one file
            f: Any = segments.LogView(log.parent)
            st = os.stat(log)
            stat = (st.st_ino, sum(f.sizes), st.st_mtime_ns)  # a close gives events.jsonl a new inode
        else:
            f = open(log, "rb")  # noqa: SIM115 - closed below, and kept open across the checks
            st = os.fstat(f.fileno())
            stat = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        return Folded()
    with f:
        saved = _load(cache)
        if saved is not None and saved[0] == stat:
            return saved[1]
        start = saved[1] if saved is not None and _continues(f, saved[1].offset, saved[2], stat[1]) else None
        found = start if start is not None else Folded()
        _fold_from(f, found)
        if found.its.stale:  # an old iteration changed: again from the start, every iteration kept whole
            found = Folded(its=IterationFold(None))
            _fold_from(f, found)
        if cache is not None:
            _save(cache, stat, found, _tail_digest(f, found.offset))
        return found


def _fold_from(f: Any, found: Folded) -> None:
    """Fold every whole line from ``found.offset`` on, streamed a chunk at a time (memory stays bounded)."""
    f.seek(found.offset)
    pending = b""
    while chunk := f.read(CHUNK):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for raw in lines:
            found.offset += len(raw) + 1
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict):
                found.fold.add(event)
                found.its.add(event)
                ts = event.get("ts")
                found.last_ts = ts if isinstance(ts, str) else found.last_ts


def _tail_digest(f: Any, offset: int) -> int:
    start = max(0, offset - TAIL)
    f.seek(start)
    return zlib.crc32(f.read(offset - start))


def _continues(f: Any, offset: int, digest: int, size: int) -> bool:
    """Whether the log still holds the bytes the fold covers: as long, and ending before the offset as it did."""
    return size >= offset and _tail_digest(f, offset) == digest


def _load(cache: Path | None) -> tuple[tuple[int, int, int], Folded, int] | None:
    if cache is None:
        return None
    try:
        packed = marshal.loads(cache.read_bytes())
        version, stat, offset, digest, last_ts, fold, its = packed
        if version != FORMAT:
            return None
        return tuple(stat), Folded(SpanFold.unpack(fold), IterationFold.unpack(its), offset, last_ts), digest
    except (OSError, ValueError, EOFError, TypeError):
        return None


def _save(cache: Path, stat: tuple[int, int, int], found: Folded, digest: int) -> None:
    packed = (FORMAT, stat, found.offset, digest, found.last_ts, found.fold.pack(), found.its.pack())
    with contextlib.suppress(OSError, ValueError):
        cache.parent.mkdir(parents=True, exist_ok=True)
        temp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        temp.write_bytes(marshal.dumps(packed))
        os.replace(temp, cache)
