"""``iteratr version`` (and ``iteratr --version``): the version of iteratr and of Python.

``iteratr.cli`` imports this for ``--version`` on every start, so the Printer (and ``logging``) is
imported only when the command runs.
"""

from __future__ import annotations

import sys

from iteratr import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from iteratr.output import Printer


def version_line() -> str:
    return f"iteratr {__version__} (Python {sys.version.split()[0]})"


def run(*, out: Printer | None = None) -> int:
    from iteratr.output import Printer

    (out or Printer()).text(version_line())
    return 0
