"""``iteratr version`` (and ``iteratr --version``): the version of iteratr and of Python."""

from __future__ import annotations

import sys

from iteratr import __version__
from iteratr.output import Printer


def version_line() -> str:
    return f"iteratr {__version__} (Python {sys.version.split()[0]})"


def run(*, out: Printer | None = None) -> int:
    (out or Printer()).text(version_line())
    return 0
