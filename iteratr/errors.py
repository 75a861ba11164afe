"""The one exception root of iteratr, and the exit statuses it maps to.

Core code raises these and never calls ``sys.exit``; the CLI's single error boundary
(``iteratr.cli.main``) prints ``iteratr: error: <message>`` on one line and exits with
``exit_code``. Anything that is not an ``IteratrError`` is a bug: the boundary logs its
traceback to a file and says where.

Exit statuses (documented in the README and in ``iteratr build --help``):

====  ==========================================================
0     the session is complete (or the command did what was asked)
1     the run failed (failure limit, agent cannot start, git error)
2     bad usage, config, spec, template, id or session name
3     stopped by ``--iterations`` with work left
4     the session is locked by another run
130   interrupted (Ctrl+C)
====  ==========================================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 130


class IteratrError(Exception):
    """Root of every error iteratr reports to a user. ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(IteratrError):
    """Bad input: flags, ids, session names, JSON, values out of range. Nothing was written."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """A config, hooks or template file is invalid. The message names the file and line."""


class SpecError(UsageError):
    """The spec file is missing, empty or not UTF-8."""


class StoreError(IteratrError):
    """The session's event log cannot be read or written (corrupt line, I/O error)."""

    exit_code = EXIT_FAILED


class GitError(IteratrError):
    """git is missing, the directory is not a repository, or a git command failed."""

    exit_code = EXIT_FAILED


class AgentError(IteratrError):
    """The ACP agent could not be started or misbehaved beyond what a retry can fix."""

    exit_code = EXIT_FAILED


class LockedError(IteratrError):
    """Another run holds this session's lock."""

    exit_code = EXIT_LOCKED


class Interrupted(IteratrError):
    """The user pressed Ctrl+C. State on disk is consistent."""

    exit_code = EXIT_INTERRUPTED
