"""``iteratr trust`` in-process: what it shows, what an answer records, --yes, --list, --revoke, and the build gate."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from iteratr import trust
from iteratr.commands import trust as trust_cmd
from iteratr.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from iteratr.output import Printer


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    (tmp_path / ".iteratr.hooks.yml").write_text("version: 1\nhooks:\n  session_start:\n    - command: make evil\n")
    (tmp_path / "iteratr.yml").write_text("agent: ./evil-acp --serve\n")
    return tmp_path


def _run(
    work_tree: Path, answers: list[bool] | None, *, yes: bool = False, list_only: bool = False, revoke: bool = False
) -> tuple[int, str, list[str]]:
    out, asked = io.StringIO(), []

    def ask(question: str) -> bool:
        asked.append(question)
        assert answers
        return answers.pop(0)

    status = trust_cmd.run(
        work_tree,
        printer=Printer(out),
        ask=None if answers is None else ask,
        yes=yes,
        list_only=list_only,
        revoke=revoke,
    )
    return status, out.getvalue(), asked


def test_it_shows_exactly_what_would_run_then_asks_and_records(planted: Path) -> None:
    status, out, asked = _run(planted, [True, True])
    assert status == EXIT_OK
    assert "  session_start: make evil" in out and "  agent: ./evil-acp --serve" in out
    assert asked == [
        "Trust .iteratr.hooks.yml and let iteratr run what it shows?",
        "Trust iteratr.yml and let iteratr run what it shows?",
    ]
    assert trust.check(planted) == []
    assert _run(planted, [])[1].startswith("nothing to trust")


def test_a_no_records_nothing_for_that_file_and_fails(planted: Path) -> None:
    status, out, _ = _run(planted, [False, True])
    assert status == EXIT_FAILED
    assert "warning: .iteratr.hooks.yml is not trusted" in out
    assert [f.name for f in trust.check(planted)] == [".iteratr.hooks.yml"]


def test_yes_trusts_without_asking_and_no_terminal_refuses_naming_yes(planted: Path) -> None:
    status, out, _ = _run(planted, None)
    assert status == EXIT_USAGE and "iteratr trust --yes" in out
    assert len(trust.check(planted)) == 2
    assert _run(planted, None, yes=True)[0] == EXIT_OK
    assert trust.check(planted) == []


def test_list_shows_the_state_of_each_file_and_every_record(planted: Path) -> None:
    _run(planted, None, yes=True)
    (planted / "iteratr.yml").write_text("agent: ./other-acp\n")
    status, out, _ = _run(planted, None, list_only=True)
    assert status == EXIT_OK
    assert ".iteratr.hooks.yml: trusted" in out
    assert "iteratr.yml: untrusted: iteratr.yml sets agent, which runs a command and changed since" in out
    assert "(changed since)" in out and "(as trusted)" in out and "2 files" in out


def test_revoke_forgets_this_repository(planted: Path) -> None:
    _run(planted, None, yes=True)
    status, out, _ = _run(planted, None, revoke=True)
    assert status == EXIT_OK and out.count("no longer trusted") == 2
    assert len(trust.check(planted)) == 2
    assert "nothing was trusted" in _run(planted, None, revoke=True)[1]


def test_gate_asks_once_on_a_terminal_and_refuses_without_one(planted: Path) -> None:
    out = io.StringIO()
    with pytest.raises(trust.UntrustedError, match=r"trust them with `iteratr trust`"):
        trust_cmd.gate(planted, printer=Printer(out), ask=None, override=False)
    assert out.getvalue() == ""  # headless: one line from the boundary, nothing else
    with pytest.raises(trust.UntrustedError):
        trust_cmd.gate(planted, printer=Printer(out), ask=lambda q: False, override=False)
    trust_cmd.gate(planted, printer=Printer(io.StringIO()), ask=None, override=True)  # --trust: no record
    assert len(trust.check(planted)) == 2
    questions: list[str] = []

    def ask(question: str) -> bool:
        questions.append(question)
        return True

    trust_cmd.gate(planted, printer=Printer(out), ask=ask, override=False)
    assert questions == ["Trust .iteratr.hooks.yml, iteratr.yml and let iteratr run what it shows?"]
    assert trust.check(planted) == []
