"""The one error boundary: maps ``IteratrError`` to a one-line message and its exit status.

Anything else is a bug. Its traceback goes to a crash log, and the user is told where, in one line.
Both the click CLI and the fast ``iteratr tool`` path run through ``guarded``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from iteratr.errors import EXIT_FAILED, EXIT_INTERRUPTED, IteratrError


def crash_log_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "iteratr" / "crash.log"


def _log_traceback() -> Path | None:
    import traceback

    path = crash_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
            from iteratr.session.events import utc_now

            f.write(f"--- {utc_now()} iteratr {' '.join(sys.argv[1:])}\n")
            traceback.print_exc(file=f)
        return path
    except OSError:
        return None


def report(message: str) -> None:
    print(f"iteratr: error: {message}", file=sys.stderr, flush=True)


def _to_log_file(message: str, code: int) -> None:
    """With ``--log-file`` set up, the error and exit status go into the log too: an unattended run's
    log must say why it ended. ``logging`` is never imported here just for that (``iteratr tool``)."""
    logging = sys.modules.get("logging")
    if logging is not None and logging.getLogger().handlers:  # no handler: Python would echo it to stderr
        logging.getLogger("iteratr.run").error("error: %s (exit status %d)", message, code)


def guarded(fn: Callable[[], int | None]) -> int:
    try:
        return fn() or 0
    except IteratrError as exc:
        report(str(exc))
        _to_log_file(str(exc), exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        print("iteratr: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing useful left to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:  # the boundary: anything else is a bug, logged with its traceback
        where = _log_traceback()
        place = f"traceback in {where}" if where else "traceback could not be written"
        report(f"unexpected {type(exc).__name__}: {exc} ({place}; please report it)")
        return EXIT_FAILED
