"""Plain scrolling output: one readable line at a time, the same in a terminal, a log file and CI.

Colour only when stdout is a terminal, ``NO_COLOR`` is unset and ``TERM`` is not ``dumb``. Every
line is flushed as it is written, so ``tail -f`` and cron mail see the run as it goes. Lines also
go to the ``logging`` logger ``iteratr.run`` so that ``--log-file`` gets them with timestamps.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import time
from typing import TextIO

from iteratr.secrets import Masker

log = logging.getLogger("iteratr.run")


class MaskingFilter(logging.Filter):
    """For a log file: each record's message with secret-looking environment values masked."""

    def __init__(self) -> None:
        super().__init__()
        self.mask = Masker()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


# What a turn's agent text may take on screen: its first and last lines, each cut to a length. An agent can
# stream without end; the full text is in agent.log (``iteratr.agent.agent_log``) and the --log-file.
HEAD_LINES = 40
TAIL_LINES = 10
LINE_MAX = 2000  # characters of one printed line

STYLES = {"head": "1;36", "ok": "32", "fail": "1;31", "warn": "33", "dim": "2", "user": "1;35", "tool": "34"}


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR") is not None or os.environ.get("TERM", "dumb") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def is_interactive() -> bool:
    """A person at a terminal: both standard input and output are ttys, so a question can be asked."""
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class Printer:
    def __init__(self, stream: TextIO | None = None, *, timestamps: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.timestamps = timestamps  # each line begins with the local time, HH:MM:SS (config ``timestamps``)
        self.colour = use_colour(self.stream)
        self.closed = False  # the stream's reader went away (a closed pipe): nothing more is written to it
        self.mask = Masker()  # secret-looking environment values never reach the screen (iteratr.secrets)
        self._partial = ""  # agent text not yet ended by a newline (at most LINE_MAX characters of it)
        self._cut = 0  # characters of the partial line past LINE_MAX, dropped
        self._shown = 0  # agent lines printed in this turn
        self._omitted = 0  # agent lines of this turn not printed
        self._late = 0  # lines past the head printed before the turn's end (a tool line came after them)
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)

    def _style(self, text: str, style: str | None) -> str:
        if not style or not self.colour:
            return text
        return f"\x1b[{STYLES[style]}m{text}\x1b[0m"

    def line(self, text: str, style: str | None = None, level: int = logging.INFO) -> None:
        self._end_partial()
        self._write(text, style)
        log.log(level, text)

    def _write(self, text: str, style: str | None = None, *, stamp: bool = True) -> None:
        if self.closed:
            return
        text = self.mask(text)
        if stamp and self.timestamps:
            text = f"{time.strftime('%H:%M:%S')} {text}"
        try:
            try:
                self.stream.write(self._style(text, style) + "\n")
                self.stream.flush()
            except UnicodeEncodeError:
                self.stream.write(text.encode("ascii", "backslashreplace").decode() + "\n")
                self.stream.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        """``iteratr build | head -3``, or quitting ``less``: the output has no reader any more. The run goes on
        (a half-done iteration must not be cut short by a pager); it says so once, on stderr and in the log."""
        self.closed = True
        if self.stream is sys.stdout:
            # Python flushes stdout at exit: pointed at /dev/null, that flush cannot fail (and exit 120).
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
        said = "standard output was closed (its reader went away); the run goes on, without printing"
        log.warning(said)
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(f"iteratr: {said}\n")
            sys.stderr.flush()

    def info(self, text: str) -> None:
        self.line(text)

    def text(self, text: str) -> None:
        """Output as it is (JSON, a table, several lines): no style, not logged, one flushed write."""
        self._end_partial()
        self._write(text, stamp=False)

    def warn(self, text: str) -> None:
        self.line(f"warning: {text}", "warn", logging.WARNING)

    def error(self, text: str) -> None:
        self.line(f"error: {text}", "fail", logging.ERROR)

    def header(self, text: str) -> None:
        self.line(f"=== {text}", "head")

    def agent_text(self, chunk: str) -> None:
        """Stream agent text, joined into whole lines (chunks arrive split anywhere), within the turn's caps."""
        *complete, rest = chunk.split("\n")
        for piece in complete:
            self._add_partial(piece)
            self._agent_line()
        self._add_partial(rest)

    def flush_agent(self) -> None:
        """The turn's text is over: its last line, then what the cap left out, and the last lines."""
        self._agent_line()
        if self._omitted:
            self._write(f"  … {self._omitted} lines omitted; full text in agent.log", "dim")
            log.info("agent: … %d lines omitted", self._omitted)
        self._show_tail()
        self._shown = self._omitted = self._late = 0

    def _add_partial(self, piece: str) -> None:
        room = LINE_MAX - len(self._partial)
        if len(piece) > room:
            self._cut += len(piece) - max(room, 0)
            piece = piece[: max(room, 0)]
        self._partial += piece

    def _end_partial(self) -> None:
        """Another line is printed: the agent's partial line ends first, and lines held for the tail show
        if none was left out yet (so that a turn under the cap reads in order)."""
        self._agent_line()
        if not self._omitted and self._late + len(self._tail) <= TAIL_LINES:
            self._late += len(self._tail)
            self._show_tail()

    def _agent_line(self) -> None:
        text, cut = self._partial, self._cut
        self._partial, self._cut = "", 0
        if not text.strip():
            return
        if cut:
            text += f" … ({cut} more characters)"
        log.info("agent: %s", text)
        if self._shown < HEAD_LINES:
            self._shown += 1
            self._write(f"  {text}")
            return
        if len(self._tail) == self._tail.maxlen:
            self._omitted += 1
        self._tail.append(text)

    def _show_tail(self) -> None:
        while self._tail:
            self._write(f"  {self._tail.popleft()}")
