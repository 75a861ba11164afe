"""The session inbox: the file a user saves text into to talk to a running agent.

File mechanics only; the caller (the build loop) records events. Taking the inbox is
rename-then-read: ``inbox.md`` is renamed to ``inbox.taking-<ns>-<pid>`` (atomic, so a writer's
bytes land either in the renamed inode or in the fresh ``inbox.md``), a new ``inbox.md`` is created
with the header, and every taking file is read from the offset the caller has already recorded.
A writer that opened the old inode before the rename may still append to it, so taking files are
re-read on every take and deleted only once fully consumed and untouched for a grace period.
The caller records each ``Taken``'s ``(source, end)`` durably before ``release``; a crash at any
point then re-reads unrecorded bytes (nothing lost) and skips recorded ones (nothing doubled).

Every open goes through ``iteratr.safe_open``: an ``inbox.md`` (or taking file, or ``rejected/``) that is a
symlink, say one committed pointing at ``~/.aws/credentials``, is refused with exit 2 naming it, and
nothing is read from it or written through it. A message moved aside to ``rejected/`` leaves no other
copy: its taking file is deleted as soon as the move is recorded (``release``), without the grace period.

Each ``iteratr say`` is its own message, even when several arrive while no build runs and are taken in one
rename: ``append`` starts each with the comment ``SAY_MARK``, and a take splits a range at every mark, one
``Taken`` per piece (the marks are comments, so they never reach the agent). Text saved by hand has no mark:
it joins the message it follows, as one save of the file always did.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from iteratr import safe_open
from iteratr.errors import UsageError
from iteratr.fsutil import atomic_writer, fsync_dir
from iteratr.paths import INBOX_FILE

INBOX_HEADER = (
    "<!-- iteratr inbox: write a message for the agent below these comments and save the file. -->\n"
    "<!-- iteratr picks it up within a second, puts it into the agent's next prompt, and empties -->\n"
    "<!-- this file back to this header (reload it in your editor before writing again). -->\n"
    '<!-- Or run: iteratr say "your message". Comments and blank lines are not sent. -->\n'
)
MAX_MESSAGE_BYTES = 64 * 1024
SAY_MARK = "<!-- iteratr say: a message begins -->"  # where ``append`` starts a message (see the module doc)
_SAY_MARK_B = SAY_MARK.encode()
SETTLE = 0.5  # seconds a file must be untouched before a half-written tail is taken as it is
TAKING_PREFIX = "inbox.taking-"
REJECTED_DIR = "rejected"
_RAW_CAP = 16 * MAX_MESSAGE_BYTES  # beyond this, a range is rejected unread (bounded memory)
_TAKING_RE = re.compile(re.escape(TAKING_PREFIX) + r"(\d+)-(\d+)")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_COMMENT_B = re.compile(rb"<!--.*?(?:-->|\Z)", re.S)


@dataclass(frozen=True)
class Taken:
    """One message taken from the inbox: bytes ``[start, end)`` of the taking file ``source``."""

    source: str
    start: int
    end: int
    text: str
    warning: str | None
    rejected_path: Path | None


def clean(text: str) -> str:
    """The real text of a message: comments (an unclosed one runs to the end) and outer whitespace removed."""
    return _COMMENT.sub("", text.replace("\r\n", "\n")).strip()


def ensure_inbox(session_dir: Path) -> Path:
    """Create ``inbox.md`` holding only the header if it is missing; return its path."""
    if not session_dir.is_dir():
        raise UsageError(f"no session directory {session_dir}: start the session with `iteratr build` first")
    _create_with_header(session_dir)
    return session_dir / INBOX_FILE


def _where(session_dir: Path, name: str) -> tuple[Path, str]:
    """``session_dir/name`` as safe_open takes it: the data dir, and the path below it (the session dir is
    checked for a link too)."""
    return session_dir.parent, f"{session_dir.name}/{name}"


def has_text(session_dir: Path) -> bool:
    """Cheap check: does ``inbox.md`` hold real text? (Taking files are not looked at.)"""
    return _has_real_text(session_dir, INBOX_FILE)


def take(session_dir: Path, consumed: Mapping[str, int]) -> list[Taken]:
    """Take new text from the inbox, oldest first; ``consumed`` maps source -> end already recorded.

    ``consumed[source]`` is the ``end`` of the last recorded ``Taken`` from that source. Calling
    again with the same ``consumed`` returns the same ranges (plus anything written since), so a
    crash before recording loses nothing. Ranges holding no real text are not returned (``release``
    cleans them up). A range over ``MAX_MESSAGE_BYTES`` is copied to ``rejected/`` and returned with
    ``text == ""``. While a file was written to less than ``SETTLE`` seconds ago, a split UTF-8
    character or an unclosed comment at its end is left for a later take.
    """
    inbox = session_dir / INBOX_FILE
    if _has_real_text(session_dir, INBOX_FILE):
        try:
            os.rename(inbox, session_dir / _new_source(session_dir))
        except FileNotFoundError:
            pass  # replaced or removed between the check and the rename; the next take sees it
        else:
            fsync_dir(session_dir)  # a rename lost to power failure would re-take recorded text
    _create_with_header(session_dir)
    taken = []
    for name in _taking_names(session_dir):
        taken += _take_from(session_dir, name, consumed.get(name, 0))
    return taken


def release(session_dir: Path, consumed: Mapping[str, int], *, grace: float = 2.0) -> None:
    """Delete taking files with no unrecorded real text that nobody has written to for ``grace`` seconds.

    The grace period covers a writer that opened ``inbox.md`` just before it was taken: its bytes
    land in the taking file. A writer that holds the old file open, idle, for longer is not covered.
    """
    for name in _taking_names(session_dir):
        path = session_dir / name
        try:
            _, data, mtime = _read_from(session_dir, name, consumed.get(name, 0), _RAW_CAP)
        except FileNotFoundError:
            continue
        rejected = name in consumed and _was_rejected(session_dir, name)  # its copy is in rejected/: no other
        if (rejected or time.time() - mtime >= grace) and not clean(data.decode("utf-8", "replace")):
            path.unlink(missing_ok=True)


def append(session_dir: Path, text: str) -> Path:
    """Append a message as one write (for ``iteratr say``), separated from earlier text by a blank line and
    started by ``SAY_MARK``, so that a take keeps it apart from the messages around it."""
    body = text.replace(SAY_MARK, "").strip("\r\n").rstrip()  # a mark inside the text must not split it
    if not clean(body):
        raise UsageError("empty message: give the text as arguments or on stdin (comments alone are not sent)")
    size = len(body.encode("utf-8", "replace"))
    if size > MAX_MESSAGE_BYTES:
        raise UsageError(f"message is {size} bytes; the limit is {MAX_MESSAGE_BYTES} bytes (64 KiB)")
    path = ensure_inbox(session_dir)
    fd = safe_open.open_fd(*_where(session_dir, INBOX_FILE), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        end = os.fstat(fd).st_size
        # Cosmetic only (racy by nature): a blank line between messages, even after an unterminated line.
        prefix = "" if end == 0 else "\n" if os.pread(fd, 1, end - 1) == b"\n" else "\n\n"
        data = (prefix + SAY_MARK + "\n" + body + "\n").encode("utf-8", "replace")
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


async def watch(
    session_dir: Path,
    on_change: Callable[[], Awaitable[None] | None],
    stop: asyncio.Event,
) -> None:
    """Call ``on_change`` when the inbox changes, until ``stop`` is set.

    It is called once as soon as the watcher is live (so the caller can take what was written
    before), then after each burst of changes (50 ms quiet, 200 ms at most), and once more ``SETTLE``
    seconds after the last change, so a tail held back while a writer was mid-save is taken.
    The directory is watched, not the file: a rename-over replaces the file's inode. Changes to
    taking files count too (a late writer appending to a taken file). Cancelling the task also
    sets ``stop`` (watchfiles does that).
    """
    import logging
    from contextlib import aclosing

    from watchfiles import Change, awatch

    # watchfiles logs every filtered-out batch at debug ("all changes filtered out": agent.log, events.jsonl, ...):
    # most of a debug --log-file would be that. Its warnings still get through.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)

    def wanted(change: Change, path: str) -> bool:
        name = os.path.basename(path)
        return name == INBOX_FILE or (name.startswith(TAKING_PREFIX) and change != Change.deleted)

    async def call() -> None:
        result = on_change()
        if inspect.isawaitable(result):
            await result

    live = False
    last_change: float | None = None
    changes = awatch(
        session_dir, watch_filter=wanted, debounce=200, step=50, stop_event=stop, recursive=False,
        rust_timeout=int(SETTLE * 500), yield_on_timeout=True,
    )  # fmt: skip
    async with aclosing(changes):
        async for batch in changes:
            now = time.monotonic()
            if batch:
                last_change = now
            elif live and (last_change is None or now - last_change < SETTLE):
                continue
            else:
                last_change = None
            live = True
            await call()
            if stop.is_set():
                return


def _create_with_header(session_dir: Path) -> None:
    # O_EXCL: a writer that recreated the inbox first keeps its file. O_APPEND: an appender racing
    # this create must not have its line overwritten by the header. A link in its place is refused.
    where = _where(session_dir, INBOX_FILE)
    while True:  # a build may take (rename away) the file between our two opens: then create it again
        try:
            fd = safe_open.open_fd(*where, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        except FileExistsError:
            try:
                os.close(safe_open.open_fd(*where, os.O_RDONLY))  # there already: refused if it is a link
            except FileNotFoundError:
                continue
            return
        break
    try:
        os.write(fd, INBOX_HEADER.encode())
    finally:
        os.close(fd)


def _has_real_text(session_dir: Path, name: str) -> bool:
    try:
        data = safe_open.read_bytes(*_where(session_dir, name), limit=_RAW_CAP + 1)
    except FileNotFoundError:
        return False
    return len(data) > _RAW_CAP or bool(clean(data.decode("utf-8", "replace")))


def _takings(session_dir: Path) -> list[tuple[int, int, str]]:
    """Taking files as (ns, pid, name), in the order they were taken."""
    found = []
    for entry in os.scandir(session_dir):
        match = _TAKING_RE.fullmatch(entry.name)
        if match:
            found.append((int(match[1]), int(match[2]), entry.name))
    return sorted(found)


def _taking_names(session_dir: Path) -> list[str]:
    return [name for _, _, name in _takings(session_dir)]


def _new_source(session_dir: Path) -> str:
    # Names sort in taking order; never below an existing one, even if the wall clock stepped back.
    newest = max((ns for ns, _, _ in _takings(session_dir)), default=0)
    return f"{TAKING_PREFIX}{max(time.time_ns(), newest + 1)}-{os.getpid()}"


def _read_from(session_dir: Path, name: str, offset: int, limit: int) -> tuple[int, bytes, float]:
    """Bytes from ``offset`` (from 0 if the file shrank: it was rewritten in place), and the mtime after reading."""
    with safe_open.open_read(*_where(session_dir, name)) as f:
        if os.fstat(f.fileno()).st_size < offset:
            offset = 0
        f.seek(offset)
        data = f.read(limit + 1)
        return offset, data, os.fstat(f.fileno()).st_mtime


def _take_from(session_dir: Path, name: str, offset: int) -> list[Taken]:
    try:
        start, data, mtime = _read_from(session_dir, name, offset, _RAW_CAP)
    except FileNotFoundError:
        return []
    if len(data) > _RAW_CAP:
        rejected = _rejected_path(session_dir, name, start)
        return [Taken(name, start, _copy_aside(session_dir, name, start, rejected), "", None, rejected)]
    if time.time() - mtime < SETTLE:
        data = data[: _complete_prefix(data)]
    taken = []
    begin = 0  # a piece with no text (the header, blank lines) joins the next: ranges stay contiguous
    for end in _cuts(data):
        item = _piece(session_dir, name, start + begin, data[begin:end])
        if item is not None:
            taken.append(item)
            begin = end
    return taken


def _cuts(data: bytes) -> list[int]:
    """Where each message in ``data`` ends: before every ``SAY_MARK`` but one at its start, and at its end."""
    cuts = []
    at = data.find(_SAY_MARK_B, 1)
    while at != -1:
        cuts.append(at)
        at = data.find(_SAY_MARK_B, at + 1)
    return [*cuts, len(data)]


def _piece(session_dir: Path, name: str, start: int, data: bytes) -> Taken | None:
    """One message, bytes ``[start, start + len(data))`` of the taking file ``name``; None if it holds no text."""
    if not data:
        return None
    try:
        decoded, warning = data.decode("utf-8"), None
    except UnicodeDecodeError:
        decoded = data.decode("utf-8", "replace")
        warning = "the message had bytes that are not UTF-8; they were replaced with U+FFFD"
    text = clean(decoded)
    end = start + len(data)
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        rejected = _rejected_path(session_dir, name, start)
        safe_open.atomic_write(*_where(session_dir, f"{REJECTED_DIR}/{rejected.name}"), data, 0o600)
        return Taken(name, start, end, "", warning, rejected)
    return Taken(name, start, end, text, warning, None) if text else None


def _complete_prefix(data: bytes) -> int:
    """Length of ``data`` without a tail a writer may be mid-way through: a split UTF-8 character,
    an unclosed ``<!--`` comment or the start of one (taking it now would split it across messages)."""
    cut = len(data)
    for back in range(1, min(4, cut) + 1):
        byte = data[cut - back]
        if byte & 0xC0 != 0x80:  # the last lead byte: does its sequence run past the end?
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
            if need > back:
                cut -= back
            break
    comments = list(_COMMENT_B.finditer(data, 0, cut))
    if comments and not comments[-1].group().endswith(b"-->"):
        cut = comments[-1].start()
    for part in (b"<!-", b"<!", b"<"):
        if data[:cut].endswith(part):
            return cut - len(part)
    return cut


def _rejected_path(session_dir: Path, source: str, start: int) -> Path:
    # Derived from the source, not the clock, so a take repeated after a crash rewrites the same file.
    match = _TAKING_RE.fullmatch(source)
    ns = int(match[1]) if match else time.time_ns()
    stamp = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y%m%dT%H%M%S")
    return session_dir / REJECTED_DIR / f"{stamp}.{ns % 1_000_000_000:09d}Z-{start}.md"


def _was_rejected(session_dir: Path, source: str) -> bool:
    """Whether a message of the taking file ``source`` was moved aside to ``rejected/`` (by its name)."""
    prefix = _rejected_path(session_dir, source, 0).name.rsplit("-", 1)[0] + "-"
    try:
        return any(entry.name.startswith(prefix) for entry in os.scandir(session_dir / REJECTED_DIR))
    except OSError:
        return False


def _copy_aside(session_dir: Path, name: str, start: int, dest: Path) -> int:
    """Copy ``name`` from ``start`` to its current end into ``dest``, in chunks; return the end offset."""
    # rejected/ is made and checked (not a link) through safe_open; then the temp file and rename go in it.
    os.close(safe_open.open_parent(*_where(session_dir, f"{REJECTED_DIR}/{dest.name}"), create=True))
    end = start
    with safe_open.open_read(*_where(session_dir, name)) as src, atomic_writer(dest, mode=0o600) as fd:
        src.seek(start)
        while chunk := src.read(1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
            end += len(chunk)
    return end
