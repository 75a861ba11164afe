"""Closed segments of a session log: issue 17's segmented layout (the store reads through here).

Design (``/work/notes/store-segments.md``): ``S/events.jsonl`` stays the open segment, where every append goes
under the flock on it. At a commit the loop closes it: the file is hard-linked as the next closed segment
``S/events/<a>/<b>/<c>/<d>/<n>.jsonl`` (never rewritten after), then an empty ``events.jsonl`` is renamed over
it. The log is the closed segments in number order, then ``events.jsonl``.

Segment files are nested ten to a directory, four directories deep (``segment_rel``), so that the git trees a
commit rewrites (the directories down to the new segment) stay small: measured with plain git, about 1.3 kB of
``.git`` a commit for the trees and the commit object, against 59 kB with every segment in one directory.

A crash between the link and the rename leaves ``events.jsonl`` and the last segment as one inode: readers skip
``events.jsonl`` then (``open_is_closed``), and the next close (or any locker) finishes the swap
(``finish_close``). Standard library only.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import BinaryIO

SEGMENTS_DIR = "events"
OPEN_FILE = "events.jsonl"
# The recorder closes events.jsonl at a commit once it holds this much: below it, each commit stores a new copy of a
# small file (a few kB packed); above it, a closed segment is stored once. Closing at every commit would add a
# segment and its trees (~1.3 kB) per iteration even when it logged a few hundred bytes.
CLOSE_AT = 16 << 10
FAN = 10  # entries per directory below the top one
LEVELS = 3  # directories of FAN entries between the top one and a segment file


def segment_rel(n: int) -> str:
    """Where closed segment ``n`` lives under the session dir: ``events/<n // 10^4>/<d>/<d>/<d>/<n:07d>.jsonl``."""
    if n < 0:
        raise ValueError("a segment number is never negative")
    parts = [str(n // FAN ** (LEVELS + 1))]
    parts += [str(n // FAN**level % FAN) for level in range(LEVELS, 0, -1)]
    return "/".join([SEGMENTS_DIR, *parts, f"{n:07d}.jsonl"])


def is_segment_rel(rel: str) -> bool:
    """Whether ``rel`` (under the session dir) names a closed segment, exactly as ``segment_rel`` would."""
    stem = rel.rsplit("/", 1)[-1].removesuffix(".jsonl")
    return stem.isdigit() and stem.isascii() and segment_rel(int(stem)) == rel


def _numbered(folder: Path, files: bool) -> list[tuple[int, str]]:
    """Entries of ``folder`` that are segment files (``files``: regular files) or segment directories, by number:
    only names ``segment_rel`` gives (``0000012.jsonl``, ``3``), so a file planted as ``012.jsonl`` or ``01/`` is
    never a segment any reader takes (it would read a number twice). A link is neither (never followed: links to
    ``.`` made every search of the last segment exponential), nor a file where a directory goes or the reverse."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        name = entry.name
        stem = name[: -len(".jsonl")] if files and name.endswith(".jsonl") else (None if files else name)
        if stem is None or not (stem.isdigit() and stem.isascii()):
            continue
        n = int(stem)
        if stem != (f"{n:07d}" if files else str(n)):
            continue
        try:
            kind_ok = entry.is_file(follow_symlinks=False) if files else entry.is_dir(follow_symlinks=False)
        except OSError:
            continue
        if kind_ok:
            found.append((n, name))
    return sorted(found)


def _where(folder: Path, session_dir: Path, n: int) -> bool:
    """Whether segment ``n`` belongs in ``folder`` (its name alone could be copied into any directory)."""
    return (folder / f"{n:07d}.jsonl") == session_dir / segment_rel(n)


def closed(session_dir: Path) -> list[int]:
    """Every closed segment's number, in order (a full replay walks them all)."""
    numbers: list[int] = []

    def walk(folder: Path, depth: int) -> None:
        if depth == LEVELS + 1:
            numbers.extend(n for n, _ in _numbered(folder, files=True) if _where(folder, session_dir, n))
            return
        for _, name in _numbered(folder, files=False):
            walk(folder / name, depth + 1)

    walk(session_dir / SEGMENTS_DIR, 0)
    return numbers


def last(session_dir: Path) -> int | None:
    """The last closed segment's number: down the highest directory of each level (not every segment), back up to
    the next one where a directory holds none (an empty ``events/9/`` planted there must not hide them all)."""

    def search(folder: Path, depth: int) -> int | None:
        if depth == LEVELS + 1:
            files = [n for n, _ in _numbered(folder, files=True) if _where(folder, session_dir, n)]
            return files[-1] if files else None
        for _, name in reversed(_numbered(folder, files=False)):
            found = search(folder / name, depth + 1)
            if found is not None:
                return found
        return None

    return search(session_dir / SEGMENTS_DIR, 0)


def open_is_closed(session_dir: Path) -> bool:
    """``events.jsonl`` is the last closed segment itself (a close cut short by a crash): it holds nothing new."""
    n = last(session_dir)
    if n is None:
        return False
    try:
        a = os.stat(session_dir / OPEN_FILE, follow_symlinks=False)
        b = os.stat(session_dir / segment_rel(n), follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


def finish_close(session_dir: Path) -> bool:
    """Put an empty ``events.jsonl`` in place if a close was cut short; call under the log's lock."""
    if not open_is_closed(session_dir):
        return False
    _empty_open(session_dir)
    return True


def close(session_dir: Path) -> int | None:
    """Close the open segment (call under the log's lock, with no torn tail): returns the new segment's number, or
    None when ``events.jsonl`` is empty (nothing to close)."""
    finish_close(session_dir)
    path = session_dir / OPEN_FILE
    if os.stat(path, follow_symlinks=False).st_size == 0:
        return None
    before = last(session_dir)
    n = 0 if before is None else before + 1
    target = session_dir / segment_rel(n)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(path, target, follow_symlinks=False)  # atomic: the segment exists whole, or not at all
    _sync_dir(target.parent)
    _empty_open(session_dir)
    return n


def _empty_open(session_dir: Path) -> None:
    tmp = session_dir / (OPEN_FILE + ".iteratr-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, session_dir / OPEN_FILE)
    _sync_dir(session_dir)


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def count(session_dir: Path) -> int:
    """How many closed segments there are (numbered from 0): the last one's number plus one."""
    n = last(session_dir)
    return 0 if n is None else n + 1


def new_since(session_dir: Path, known: int) -> list[int]:
    """Closed segments numbered ``known`` and after (what a commit has not seen yet)."""
    return [n for n in closed(session_dir) if n >= known] if count(session_dir) > known else []


class LogView:
    """The closed segments and the open one read as one file (``read``, ``seek``, ``tell``): what the streamed
    replay and the CRC checks need. Sizes are taken when the view is made; the open segment is read to its end.

    ``opener(path)`` opens a segment for reading (the store's opens never follow a link in the data dir)."""

    def __init__(
        self,
        session_dir: Path,
        numbers: list[int] | None = None,
        opener: Callable[[Path], BinaryIO] | None = None,
    ) -> None:
        numbers = closed(session_dir) if numbers is None else numbers
        self.paths = [session_dir / segment_rel(n) for n in numbers]
        if not open_is_closed(session_dir):
            self.paths.append(session_dir / OPEN_FILE)
        self._opener = opener or (lambda path: open(path, "rb"))  # noqa: SIM115  (closed by _close_file)
        self.sizes = [os.stat(p, follow_symlinks=False).st_size for p in self.paths]
        self._pos = 0
        self._index = 0
        self._file: object | None = None

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_END:
            pos += sum(self.sizes)
        self._pos = pos
        self._index = 0
        start = 0
        while self._index < len(self.sizes) - 1 and pos >= start + self.sizes[self._index]:
            start += self.sizes[self._index]
            self._index += 1
        self._start = start
        self._close_file()
        return pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if not hasattr(self, "_start"):
            self.seek(0)
        out: list[bytes] = []
        want = size
        while want != 0 and self._index < len(self.paths):
            f = self._opened()
            chunk = f.read(want if want > 0 else -1)  # type: ignore[attr-defined]
            last_one = self._index == len(self.paths) - 1
            if chunk:
                out.append(chunk)
                self._pos += len(chunk)
                if want > 0:
                    want -= len(chunk)
                continue
            if last_one:
                break
            self._start += self.sizes[self._index]
            self._index += 1
            self._close_file()
        return b"".join(out)

    def where(self, pos: int) -> tuple[Path, int]:
        """The file holding byte ``pos`` of the log (the last one past its end), and the offset there."""
        start = 0
        for path, size in zip(self.paths, self.sizes, strict=True):
            if pos < start + size or path == self.paths[-1]:
                return path, pos - start
            start += size
        raise ValueError("an empty log view")

    def open_file(self, path: Path) -> BinaryIO:
        """One of its files, opened as the view opens them (the store's opener never follows a link)."""
        return self._opener(path)

    def _opened(self) -> object:
        if self._file is None:
            f = self._opener(self.paths[self._index])  # kept open between reads, closed by _close_file
            f.seek(self._pos - self._start)
            self._file = f
        return self._file

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()  # type: ignore[attr-defined]
            self._file = None

    def close(self) -> None:
        self._close_file()

    def __enter__(self) -> LogView:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
