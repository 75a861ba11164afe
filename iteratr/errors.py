"""The one exception root of iteratr, and the exit statuses it maps to.

Core code raises these and never calls ``sys.exit``; the single error boundary (``iteratr.boundary``)
prints ``iteratr: error: <message>`` on one line and exits with ``exit_code``. Anything that is not an
``IteratrError`` is a bug: the boundary logs its traceback to a file and says where.

``EXIT_STATUSES`` is the one table of exit statuses: ``iteratr build --help`` prints it, and a test holds
the README's table to it. Kept free of heavy imports (no dataclasses, no typing): ``iteratr tool`` imports
this on every call.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_LOCKED = 4
EXIT_NEEDS_PERSON = 5
EXIT_INTERRUPTED = 130


class ExitStatus:
    """One row of the exit-status table: the code, its constant's name here, and what it means."""

    __slots__ = ("code", "meaning", "name")

    def __init__(self, code: int, name: str, meaning: str) -> None:
        self.code, self.name, self.meaning = code, name, meaning

    def __repr__(self) -> str:
        return f"ExitStatus({self.code}, {self.name!r}, {self.meaning!r})"


EXIT_STATUSES = (
    ExitStatus(EXIT_OK, "EXIT_OK", "the session is complete (for other commands: done)"),
    ExitStatus(
        EXIT_FAILED,
        "EXIT_FAILED",
        "the run failed (failure limit, agent cannot start, git error; a remote that cannot be reached, a branch "
        "diverged from the remote's, a push rejected because another machine pushed)",
    ),
    ExitStatus(
        EXIT_USAGE,
        "EXIT_USAGE",
        "bad usage, config, spec, template, id or session name: nothing was written. "
        "Also a model the agent refuses, found before git is touched (refused mid-run: committed as failed first), "
        "and a budget the agent turns out not to measure (no cost or token figures after its first turn)",
    ),
    ExitStatus(EXIT_INCOMPLETE, "EXIT_INCOMPLETE", "stopped by --iterations or a budget with work left"),
    ExitStatus(
        EXIT_LOCKED,
        "EXIT_LOCKED",
        "the session is locked by another run (here, or on another machine holding its lease; or this run lost "
        "the lease)",
    ),
    ExitStatus(
        EXIT_NEEDS_PERSON,
        "EXIT_NEEDS_PERSON",
        "stopped: needs a person (the agent is stuck, or every open task is blocked)",
    ),
    ExitStatus(EXIT_INTERRUPTED, "EXIT_INTERRUPTED", "interrupted (Ctrl+C or SIGTERM)"),
)


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
