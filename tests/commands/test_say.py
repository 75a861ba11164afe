"""`iteratr say`: which session's inbox it writes, what it says, and its errors, with real repos and locks.

Delivery of what `say` writes, during a running build and at the next build, is tested with real builds
in tests/test_inbox_loop.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from iteratr.commands import say as saycmd
from iteratr.errors import EXIT_USAGE, UsageError
from iteratr.output import Printer
from iteratr.run.inbox import INBOX_HEADER, MAX_MESSAGE_BYTES, SAY_MARK, ensure_inbox
from iteratr.run.runlock import RunLock, lock_path
from tests.conftest import git, run_cli


def say(*, name: str | None, data_dir: str | None, text: str) -> str:
    """Run ``iteratr say`` in-process; return the line it printed."""
    stream = io.StringIO()
    assert saycmd.run(name=name, data_dir=data_dir, text=text, out=Printer(stream)) == 0
    return stream.getvalue().rstrip("\n")


NOT_RUNNING = "no build is running, so it will be picked up when the next build starts"
RUNNING = "the running build puts it into the next prompt"


def make_session(data_dir: Path, name: str) -> Path:
    """A session directory as `iteratr build` leaves it (its inbox is what `say` needs)."""
    session_dir = data_dir / name
    session_dir.mkdir(parents=True)
    ensure_inbox(session_dir)
    return session_dir


def said(session_dir: Path) -> str:
    """What was appended to the inbox after its header."""
    text = (session_dir / "inbox.md").read_text()
    assert text.startswith(INBOX_HEADER)
    return text[len(INBOX_HEADER) :].replace(SAY_MARK + "\n", "")  # each say's mark: tests/run/test_inbox_says.py


@pytest.fixture
def here(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo)
    return repo


def test_say_appends_to_the_only_session_and_says_when_it_is_picked_up(here: Path) -> None:
    session_dir = make_session(here / ".iteratr", "SPEC")
    line = say(name=None, data_dir=None, text="the tests are in tests/unit")
    assert line == f"message for session SPEC saved to .iteratr/SPEC/inbox.md; {NOT_RUNNING}"
    say(name="SPEC", data_dir=None, text="skip the docs task\n")
    assert said(session_dir) == "\nthe tests are in tests/unit\n\nskip the docs task\n"


def test_say_tells_a_running_build_from_none_by_the_session_lock(here: Path) -> None:
    make_session(here / ".iteratr", "SPEC")
    common = Path(git(here, "rev-parse", "--absolute-git-dir"))
    lock = RunLock(lock_path(common, "SPEC"), "SPEC", here).acquire()
    try:
        assert say(name="SPEC", data_dir=None, text="while it runs").endswith(RUNNING)
    finally:
        lock.release()
    assert say(name="SPEC", data_dir=None, text="after it ended").endswith(NOT_RUNNING)


def test_an_unknown_session_is_a_usage_error_listing_the_sessions(here: Path) -> None:
    make_session(here / ".iteratr", "alpha")
    make_session(here / ".iteratr", "beta")
    result = run_cli("say", "-n", "gamma", "hello", cwd=here, expect=EXIT_USAGE)
    assert "no session 'gamma'" in result.stderr and "sessions there: alpha, beta" in result.stderr
    assert not (here / ".iteratr" / "gamma").exists()


def test_without_a_name_several_sessions_need_one_and_iteratr_session_picks_it(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_session(here / ".iteratr", "alpha")
    beta = make_session(here / ".iteratr", "beta")
    with pytest.raises(UsageError, match=r"several sessions \(alpha, beta\): choose one with --name"):
        say(name=None, data_dir=None, text="hello")
    monkeypatch.setenv("ITERATR_SESSION", "beta")
    assert "session beta" in say(name=None, data_dir=None, text="hello beta")
    assert said(beta) == "\nhello beta\n"


def test_without_a_name_the_one_running_session_is_picked(here: Path) -> None:
    make_session(here / ".iteratr", "alpha")
    beta = make_session(here / ".iteratr", "beta")
    common = Path(git(here, "rev-parse", "--absolute-git-dir"))
    with pytest.raises(UsageError, match=r"several sessions \(alpha, beta\): choose one with --name"):
        say(name=None, data_dir=None, text="none runs: which?")
    assert not lock_path(common, "alpha").exists(), "asking leaves no lock file behind"
    locks = [RunLock(lock_path(common, "beta"), "beta", here).acquire()]
    try:
        assert say(name=None, data_dir=None, text="to the running one").startswith("message for session beta ")
        assert said(beta) == "\nto the running one\n"
        locks.append(RunLock(lock_path(common, "alpha"), "alpha", here).acquire())
        with pytest.raises(UsageError, match=r"several sessions \(alpha, beta\): choose one with --name"):
            say(name=None, data_dir=None, text="two run: which?")
    finally:
        for lock in locks:
            lock.release()


def test_no_session_at_all_and_a_bad_name_are_usage_errors(here: Path) -> None:
    with pytest.raises(UsageError, match=r"no session found .* start one with `iteratr build`"):
        say(name=None, data_dir=None, text="hello")
    with pytest.raises(UsageError, match="invalid session name"):
        say(name="../etc", data_dir=None, text="hello")
    assert not (here / ".iteratr").exists()


def test_a_session_running_in_a_linked_worktree_is_reached_from_the_main_checkout(here: Path) -> None:
    work_tree = here / ".iteratr" / "worktrees" / "W"
    git(here, "worktree", "add", "-q", "-b", "iteratr/W", str(work_tree))
    session_dir = make_session(work_tree / ".iteratr", "W")
    line = say(name=None, data_dir=None, text="to the worktree")
    assert line == f"message for session W saved to .iteratr/worktrees/W/.iteratr/W/inbox.md; {NOT_RUNNING}"
    assert said(session_dir) == "\nto the worktree\n"
    assert not (here / ".iteratr" / "W").exists()


def test_say_from_a_subdirectory_reaches_the_inbox_the_build_at_the_top_reads(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    top = make_session(here / ".iteratr", "SPEC")
    work_tree = here / ".iteratr" / "worktrees" / "W"
    git(here, "worktree", "add", "-q", "-b", "iteratr/W", str(work_tree))
    linked = make_session(work_tree / ".iteratr", "W")
    (here / "specs").mkdir()
    monkeypatch.chdir(here / "specs")
    assert f"saved to {top / 'inbox.md'}" in say(name="SPEC", data_dir=None, text="from specs/")
    say(name="W", data_dir=None, text="to the worktree from specs/")
    assert said(top) == "\nfrom specs/\n"
    assert said(linked) == "\nto the worktree from specs/\n"
    assert not (here / "specs" / ".iteratr").exists() and not (work_tree / "specs" / ".iteratr").exists()


def test_a_session_known_only_by_its_branch_gets_an_inbox_here(here: Path) -> None:
    git(here, "branch", "iteratr/B")
    git(here, "branch", "iteratr/B.archived-20250101T000000Z")  # an archived session is not a session
    line = say(name=None, data_dir=None, text="for the next build")
    assert "session B saved to .iteratr/B/inbox.md" in line
    assert said(here / ".iteratr" / "B") == "\nfor the next build\n"


def test_say_works_outside_a_git_repository_and_with_another_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    session_dir = make_session(plain / "state", "S")
    monkeypatch.chdir(plain)
    with pytest.raises(UsageError, match="no session found"):
        say(name=None, data_dir=None, text="hello")
    assert say(name=None, data_dir="state", text="hello").endswith(NOT_RUNNING)
    assert said(session_dir) == "\nhello\n"


def test_the_cli_reads_stdin_and_refuses_empty_and_oversized_messages(repo: Path) -> None:
    session_dir = make_session(repo / ".iteratr", "SPEC")
    result = run_cli("say", cwd=repo, input="line one\nline two\n")
    assert "saved to .iteratr/SPEC/inbox.md" in result.stdout
    assert said(session_dir) == "\nline one\nline two\n"
    empty = run_cli("say", cwd=repo, input="<!-- only a comment -->\n", expect=EXIT_USAGE)
    assert "empty message" in empty.stderr
    big = run_cli("say", cwd=repo, input="x" * (MAX_MESSAGE_BYTES + 1), expect=EXIT_USAGE)
    assert "the limit is 65536 bytes" in big.stderr
    assert said(session_dir) == "\nline one\nline two\n", "a refused message leaves the inbox alone"
