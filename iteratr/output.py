"""Plain scrolling output: one readable line at a time, the same in a terminal, a log file and CI.

Colour only when stdout is a terminal, ``NO_COLOR`` is unset and ``TERM`` is not ``dumb``. Every
line is flushed as it is written, so ``tail -f`` and cron mail see the run as it goes. Lines also
go to the ``logging`` logger ``iteratr.run`` so that ``--log-file`` gets them with timestamps.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

log = logging.getLogger("iteratr.run")

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
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = use_colour(self.stream)
        self._partial = ""  # agent text not yet ended by a newline

    def _style(self, text: str, style: str | None) -> str:
        if not style or not self.colour:
            return text
        return f"\x1b[{STYLES[style]}m{text}\x1b[0m"

    def line(self, text: str, style: str | None = None, level: int = logging.INFO) -> None:
        self.flush_agent()
        self._write(text, style)
        log.log(level, text)

    def _write(self, text: str, style: str | None = None) -> None:
        try:
            self.stream.write(self._style(text, style) + "\n")
            self.stream.flush()
        except UnicodeEncodeError:
            self.stream.write(text.encode("ascii", "backslashreplace").decode() + "\n")
            self.stream.flush()

    def info(self, text: str) -> None:
        self.line(text)

    def text(self, text: str) -> None:
        """Output as it is (JSON, a table, several lines): no style, not logged, one flushed write."""
        self.flush_agent()
        self._write(text)

    def warn(self, text: str) -> None:
        self.line(f"warning: {text}", "warn", logging.WARNING)

    def error(self, text: str) -> None:
        self.line(f"error: {text}", "fail", logging.ERROR)

    def header(self, text: str) -> None:
        self.line(f"=== {text}", "head")

    def agent_text(self, chunk: str) -> None:
        """Stream agent text, joined into whole lines (chunks arrive split anywhere)."""
        self._partial += chunk
        *complete, self._partial = self._partial.split("\n")
        for text in complete:
            if text.strip():
                self._write(f"  {text}")
                log.info("agent: %s", text)

    def flush_agent(self) -> None:
        if self._partial.strip():
            self._write(f"  {self._partial}")
            log.info("agent: %s", self._partial)
        self._partial = ""
