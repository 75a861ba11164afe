"""The committed checkpoint: the live state at a point of the log, so the first read after a fresh clone (or a lost
cache) parses what is live, not the whole history.

``S/checkpoint.jsonl`` is committed with the log on the session branch. It is two JSON lines (``jq`` reads them):

    {"checkpoint": 2, "bytes": B, "lines": L, "crc32": C, "segment": K, "base": A}
    <the live state, State.pack_live, in a tagged JSON form>   (``encode``: tuples, bytes and dicts kept exact)

The first line says what of the log it covers: the first B bytes (L lines) of the whole log, which are the closed
segments before segment K (A bytes; ``iteratr.session.segments``) and the first B - A bytes of segment K (closed
segment K, or ``events.jsonl`` when K segments are closed), whose CRC-32 is C. Format 1, written before the log was
segmented, has no "segment" and "base": it covers the first B bytes of an unsegmented log, which is segment 0 at
base 0 (a session's first closed segment is its old ``events.jsonl``), so it is read as format 2 with K = A = 0.

A read with no snapshot (``iteratr.session.store``) loads it when those bytes still have CRC-32 C (only the one
segment's bytes are read: closed segments are never rewritten), then replays only the lines after them; any
mismatch (a log rewritten, merged, cut, or a checkpoint edited into nonsense) makes it a full replay, as before.
The history before B (notes by type, old iterations, done tasks) is not in it: it is read on demand from the log
(the archive is marked partial, ``iteratr.session.archive``).

JSON, not marshal: the data dir is a cloned repository's, anyone's to write, and JSON decodes to plain values
only. A checkpoint states what a log could state too (tasks, notes, counters), so it can claim nothing a
forged log line could not; the loop rewrites it when the file on disk is not the one this clone last wrote
(``iteratr.session.checkpoint_writer``), so an agent's edit during a turn is never committed.

Standard library only: ``iteratr tool`` reads through here.
"""

from __future__ import annotations

from iteratr import safe_open
from iteratr.errors import UsageError
from iteratr.session.replay import Progress
from iteratr.session.state import State

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import Any

    from iteratr.session.state import History

CHECKPOINT_FILE = "checkpoint.jsonl"
VERSION = 2
READS = (1, 2)
# Lines of log after the last checkpoint before the loop writes a new one at a commit: the checkpoint is the live
# state's size (tens of kB), so committing one every this many events costs a few bytes per event.
EVERY = 20_000
_MAX_BYTES = 64 << 20  # a live state is far smaller; a bigger file is not one iteratr wrote


def encode(value: Any) -> Any:
    """``value`` (as ``State.pack_live`` makes it) as JSON values, with tuples, bytes and dicts tagged so that
    ``decode`` gives back exactly the same types."""
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {"t": [encode(v) for v in value]}
    if isinstance(value, bytes):
        import base64

        return {"b": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {"d": [[encode(k), encode(v)] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__}")


def decode(value: Any) -> Any:
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        ((tag, inner),) = value.items()
        if tag == "t":
            return tuple(decode(v) for v in inner)
        if tag == "b":
            import base64

            return base64.b64decode(inner, validate=True)
        if tag == "d":
            return {_key(decode(k)): decode(v) for k, v in inner}
        raise ValueError(f"unknown tag {tag!r}")
    return value


def _key(key: Any) -> Any:
    hash(key)  # a list as a key is no checkpoint iteratr wrote: TypeError, caught by the reader
    return key


def render(state: State, done: Progress) -> bytes:
    import json

    header = {
        "checkpoint": VERSION,
        "bytes": done.offset,
        "lines": done.lines,
        "crc32": done.crc,
        "segment": done.seg,
        "base": done.base,
    }
    body = json.dumps(encode(_packed(state)), ensure_ascii=False, separators=(",", ":"))
    return json.dumps(header).encode() + b"\n" + body.encode() + b"\n"


def _packed(state: State) -> tuple[Any, ...]:
    """``state.pack_live()`` with the sums of the iterations that left the window but are not archived yet: the
    snapshot saves those to its archive before it packs (``save_history``), a checkpoint has no archive, and
    without them a read from it lost their tokens and cost (the guard rails' budgets)."""
    import copy

    from iteratr.session.sums import Sums
    from iteratr.session.windowed import WINDOW

    packed = list(state.pack_live())
    low = state._max_n - WINDOW
    if state._all_its:  # nothing archived: the sums of every iteration below the window, afresh
        sums = Sums()
        sums.add_rows(state._its[n].row() for n in sorted(state._its) if n <= low)
        leaving = [n for n in state._its if n <= low]
    else:
        rows = state.history_delta()["iterations"]
        sums = Sums(copy.deepcopy(state._sums.by))
        sums.add_rows(rows)
        leaving = [row[0] for row in rows]
    packed[19] = sums.by
    if leaving:
        packed[14] = max(packed[14], *leaving)
    return tuple(packed)


def header(data_dir: Path, rel: str) -> dict[str, Any] | None:
    """The first line of the checkpoint, if there is a readable one (cheap: the state is not parsed)."""
    import json

    try:
        with safe_open.open_read(data_dir, rel) as f:
            found = json.loads(f.readline(4096))
    except (OSError, ValueError, UsageError):
        return None
    return found if _cover(found) is not None else None


def _cover(found: Any) -> Progress | None:
    """What a checkpoint's first line says it covers, or None when it is no header this release reads."""
    if not isinstance(found, dict) or found.get("checkpoint") not in READS:
        return None
    keys = ("bytes", "lines", "crc32") + (("segment", "base") if found["checkpoint"] >= 2 else ())
    if not all(isinstance(found.get(k), int) and not isinstance(found[k], bool) and found[k] >= 0 for k in keys):
        return None
    if found.get("base", 0) > found["bytes"]:
        return None
    return Progress(found["bytes"], found["lines"], found["crc32"], found.get("segment", 0), found.get("base", 0))


def load(
    data_dir: Path, rel: str, valid: Callable[[Progress], bool], history: History | None
) -> tuple[State, Progress] | None:
    """The state the checkpoint holds and the part of the log it covers, or None when there is no checkpoint, it is
    not one this release reads, or the log's covered bytes are not what it names (``valid``: the store's check of
    one segment's CRC). json and base64 are imported here, not by every ``iteratr tool`` call: the cold path."""
    import json

    try:
        with safe_open.open_read(data_dir, rel) as f:
            blob = f.read(_MAX_BYTES + 1)
    except (OSError, UsageError):
        return None
    if len(blob) > _MAX_BYTES:
        return None
    first, _, rest = blob.partition(b"\n")
    try:
        cover = _cover(json.loads(first))
        if cover is None:
            return None
        if not valid(cover):  # the log was rewritten (or is shorter) since: it does not cover this
            return None
        packed = decode(json.loads(rest))
        if not isinstance(packed, tuple):
            return None
        state = State.unpack_live(packed, history)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        return None
    return state, cover
