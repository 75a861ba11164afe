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
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

MAX_BYTES = 5 * 1024 * 1024  # as --log-file (commands.build.LOG_MAX_BYTES)
BACKUPS = 3


class AgentLog:
    def __init__(self, path: Path, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups

    def write(self, data: bytes) -> None:
        """Append ``data``; rotate once the file is past the bound. A failing disk costs the log, not the run."""
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
