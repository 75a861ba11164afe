"""The one error boundary: known errors are one line with their exit status; bugs say where their traceback is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from iteratr import errors
from iteratr.boundary import crash_log_path, guarded
from iteratr.errors import (
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_STATUSES,
    EXIT_USAGE,
    IteratrError,
    LockedError,
    UsageError,
)


def test_an_iteratr_error_is_one_line_with_its_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse() -> int:
        raise UsageError("invalid priority '9'", hint="use 0..4")

    assert guarded(refuse) == EXIT_USAGE
    assert capsys.readouterr().err == "iteratr: error: invalid priority '9' (use 0..4)\n"

    def locked() -> int:
        raise LockedError("session S is locked")

    assert guarded(locked) == EXIT_LOCKED


def test_a_bug_says_where_its_traceback_was_logged(capsys: pytest.CaptureFixture[str]) -> None:
    def bug() -> int:
        raise RuntimeError("something nobody expected")

    assert guarded(bug) == 1
    err = capsys.readouterr().err
    log = crash_log_path()
    assert err.count("\n") == 1, err
    assert err.startswith("iteratr: error: unexpected RuntimeError: something nobody expected")
    assert f"traceback in {log}" in err
    assert log.is_relative_to(Path(os.environ["XDG_STATE_HOME"]))  # never the real home in tests
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: something nobody expected" in text


def test_ctrl_c_outside_a_run_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    assert guarded(interrupted) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "iteratr: interrupted\n"


def test_success_returns_the_function_status() -> None:
    assert guarded(lambda: None) == 0
    assert guarded(lambda: 3) == 3


def _subclasses(cls: type[IteratrError]) -> list[type[IteratrError]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in _subclasses(direct))]


def test_every_error_exits_with_a_status_of_the_one_table() -> None:
    codes = {status.code for status in EXIT_STATUSES}
    wrong = {cls.__name__: cls.exit_code for cls in _subclasses(IteratrError) if cls.exit_code not in codes}
    assert wrong == {}
    assert EXIT_INTERRUPTED in codes  # Ctrl+C outside any IteratrError


def test_the_table_names_its_constants() -> None:
    assert [getattr(errors, status.name) for status in EXIT_STATUSES] == [status.code for status in EXIT_STATUSES]
    assert len({status.code for status in EXIT_STATUSES}) == len(EXIT_STATUSES)
