"""``agent.log``: the agent's stderr and its full text, in a file rotated with a bound, like ``--log-file``.

An agent can write without end (a chatty model, a loop printing a build log, 50 MB of text). The child's
stderr therefore never gets the file itself, where it could write past any bound: iteratr reads the pipe
and appends here. When the file passes ``MAX_BYTES`` it is rotated (``agent.log`` -> ``agent.log.1`` ... ->
``agent.log.<BACKUPS>``, the oldest dropped), so the session's logs never hold more than about
``MAX_BYTES × (BACKUPS + 1)``. The files are git-ignored (``*.log``, ``*.log.*`` in the data dir's
``.gitignore``) and private (0600).

Each write opens the file again (``O_APPEND``, never through a link): every writer (the stderr pump, the
SDK's log records, the agent's text) always appends to the current file, whoever rotated it last. What is
written here is never committed, and is what the screen's caps point to ("full text in agent.log").

Secret-looking environment values (``iteratr.secrets``) are masked here too: the file is private and never
committed, but "masked in everything iteratr writes" is the simpler promise, and costs one regex per write.
A stream (the stderr pipe, the agent's text) arrives in pieces split anywhere, so a secret can straddle two
writes: each stream keeps back the tail that could be the start of a secret until the next piece, or a
``flush`` (end of turn, EOF, or one of iteratr's own lines), decides.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path

from iteratr.secrets import MASK, secret_values

MAX_BYTES = 5 * 1024 * 1024  # as --log-file (commands.build.LOG_MAX_BYTES)
BACKUPS = 3


class StreamMasker:
    """Masks secret values in a byte stream that arrives in pieces, holding back a possible secret's start."""

    def __init__(self, values: list[str]) -> None:
        encoded = sorted({v.encode("utf-8", errors="replace") for v in values}, key=len, reverse=True)
        self._values = encoded
        self._pattern = re.compile(b"|".join(re.escape(v) for v in encoded)) if encoded else None
        self._carry = b""

    def mask(self, data: bytes) -> bytes:
        """``data`` masked whole, with nothing held back (a piece known to be complete)."""
        return data if self._pattern is None else self._pattern.sub(MASK.encode(), data)

    def feed(self, data: bytes) -> bytes:
        """What can be written now of the stream so far; the tail that may begin a secret waits."""
        if self._pattern is None:
            return data
        masked = self.mask(self._carry + data)
        hold = self._held_tail(masked)
        self._carry = masked[len(masked) - hold :] if hold else b""
        return masked[: len(masked) - hold]

    def flush(self) -> bytes:
        carry, self._carry = self._carry, b""
        return carry

    def _held_tail(self, data: bytes) -> int:
        """The length of the longest end of ``data`` that is a proper start of some secret value."""
        longest = max((len(v) for v in self._values), default=0)
        for k in range(min(longest - 1, len(data)), 0, -1):
            tail = data[-k:]
            if any(v.startswith(tail) for v in self._values):
                return k
        return 0


class AgentLog:
    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = MAX_BYTES,
        backups: int = BACKUPS,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._values = secret_values(environ)
        self._whole = StreamMasker(self._values)
        self._streams: dict[str, StreamMasker] = {}

    def write(self, data: bytes, stream: str | None = None) -> None:
        """Append ``data``, secrets masked; rotate once the file is past the bound. A failing disk costs the log,
        not the run. ``stream`` names a source whose pieces may split a secret (masked across pieces)."""
        if stream is None:
            self._append(self._whole.mask(data))
        else:
            self._append(self._streams.setdefault(stream, StreamMasker(self._values)).feed(data))

    def flush(self) -> None:
        """Write what each stream held back: the stream ended, or iteratr's own line follows."""
        for masker in self._streams.values():
            self._append(masker.flush())

    def _append(self, data: bytes) -> None:
        if not data:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            os.write(fd, data)
            size = os.fstat(fd).st_size
        except OSError:
            return
        finally:
            os.close(fd)
        if size > self.max_bytes:
            self.rotate()

    def line(self, text: str) -> None:
        """One line of iteratr's own (``iteratr: …``), told apart from the agent's words."""
        self.flush()
        self.write(f"iteratr: {text}\n".encode("utf-8", errors="replace"))

    def rotate(self) -> None:
        for k in range(self.backups - 1, 0, -1):
            with contextlib.suppress(OSError):
                os.replace(self._numbered(k), self._numbered(k + 1))
        with contextlib.suppress(OSError):
            if self.backups > 0:
                os.replace(self.path, self._numbered(1))
            else:
                os.truncate(self.path, 0)

    def files(self) -> list[Path]:
        """The log and its rotations that exist, newest first."""
        candidates = [self.path] + [self._numbered(k) for k in range(1, self.backups + 1)]
        return [p for p in candidates if p.exists()]

    def _numbered(self, k: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{k}")
