"""Two faults of issue 12 that would put a log and a view that disagree into a commit:

- recovery committing what a crash left on disk (a torn last line, a stale ``tasks.yaml``) as is;
- an ``iteratr tool`` write landing between the staging of ``events.jsonl`` and of ``tasks.yaml``.

Each commit's ``tasks.yaml`` must be what ``tasks_view`` renders from that same commit's ``events.jsonl``.
"""

from __future__ import annotations

import fcntl
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from iteratr import paths
from iteratr.gitrepo import blob
from iteratr.run.attempt import Attempt
from iteratr.run.record import Recorder
from iteratr.session import ops, tasks_view, tree_log
from iteratr.session.reducer import replay
from iteratr.session.store import Store
from tests.conftest import git

EVENTS = f".iteratr/S/{paths.EVENTS_FILE}"
TASKS = f".iteratr/S/{paths.TASKS_FILE}"


def committed(repo: Path, path: str, ref: str = "iteratr/S") -> bytes:
    found = blob(repo, ref, path)
    assert found is not None, f"{path} is not in {ref}"
    return found


def assert_commit_is_consistent(repo: Path, ref: str = "iteratr/S") -> list[dict[str, Any]]:
    """Every committed log line is whole and parses; the committed view is the render of the committed log."""
    log = tree_log.read(repo, ref, ".iteratr/S")  # the closed segments, then events.jsonl
    assert log is not None, f"no log in {ref}"
    assert log.endswith(b"\n"), f"a torn last line was committed: {log.splitlines()[-1]!r}"
    events = [json.loads(line) for line in log.splitlines()]
    assert all(isinstance(e, dict) and "type" in e for e in events)
    want, _ = tasks_view.render("S", replay(events))
    assert committed(repo, TASKS, ref).decode() == want
    return events


def task_contents(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["content"] for e in events if e["type"] == "task.added"]


# -- recovery repairs the log and renders the view before it commits -------------------------------------


def crash_leftovers(store: Store) -> None:
    """What a kill leaves: the view of an older state, and half a line being appended (no ``\\n``)."""
    stale = store.tasks_path.read_bytes()
    ops.task_add(store, [{"content": "Second"}])
    store.tasks_path.write_bytes(stale)  # as if killed after the event was durable, before the view was renamed
    with store.events_path.open("ab") as f:
        f.write(b'{"v": 1, "ts": "2026-01-01T00:00:00.000000Z", "type": "task.added", "iteration": 1, "da')


def test_recovery_of_an_uncommitted_iteration_commits_a_whole_log_and_its_view(recorder: Recorder, repo: Path) -> None:
    first = Attempt(n=0, kind="planning")
    before = recorder.started(0, "planning", [])
    ops.task_add(recorder.store, [{"content": "First"}])
    recorder.commit(before, recorder.ended(first), first)
    recorder.started(1, "main", [])
    recorder.ended(Attempt(n=1, kind="main", outcome="failed", error="boom", duration=1.0))
    crash_leftovers(recorder.store)

    recorder.recover()

    assert git(repo, "log", "-1", "--format=%s", "iteratr/S") == "iteratr(S): #1 failed: boom"
    events = assert_commit_is_consistent(repo)
    assert task_contents(events) == ["First", "Second"]  # the view was stale: it lacked Second
    assert recorder.store.events_path.read_bytes() == committed(repo, EVENTS)  # the torn bytes are gone
    assert git(repo, "status", "--porcelain") == ""


def test_recovery_of_an_unfinished_iteration_commits_a_whole_log_and_its_view(recorder: Recorder, repo: Path) -> None:
    """Here recovery appends the iteration's end first, and that append repairs the tail and renders the
    view too; the commit must be whole either way."""
    first = Attempt(n=0, kind="planning")
    before = recorder.started(0, "planning", [])
    ops.task_add(recorder.store, [{"content": "First"}])
    recorder.commit(before, recorder.ended(first), first)
    recorder.started(1, "main", [])
    crash_leftovers(recorder.store)

    recorder.recover()

    assert git(repo, "log", "-1", "--format=%s", "iteratr/S").startswith("iteratr(S): #1 interrupted")
    events = assert_commit_is_consistent(repo)
    assert task_contents(events) == ["First", "Second"]
    assert git(repo, "status", "--porcelain") == ""


# -- a tool write while the recorder stages the log and the view -----------------------------------------


def test_a_tool_write_while_staging_waits_so_the_commit_s_view_matches_its_log(
    recorder: Recorder, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``git add`` reads ``events.jsonl`` and then ``tasks.yaml``; a write that lands in between must wait
    for the store's lock, or the commit holds the new view of a log without the new event."""
    log_staged = threading.Event()  # the recorder staged the log: the writer goes now
    writer_settled = threading.Event()  # the writer is blocked on the store's lock, or its write is done
    writer_blocked = threading.Event()
    failures: list[BaseException] = []
    real_flock = fcntl.flock
    real_run = recorder.repo.run

    def flock(fd: Any, operation: int) -> None:
        # In the writer only: say whether it waits on the lock, then wait (without the fix it never does).
        if threading.current_thread() is writer and operation == fcntl.LOCK_EX:
            try:
                real_flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                writer_blocked.set()
                writer_settled.set()
        real_flock(fd, operation)

    def run(*args: str, **kwargs: Any) -> str:
        if args[:3] != ("add", "--force", "--") or EVENTS not in args:
            return real_run(*args, **kwargs)
        # Stage the log, let the tool write land, then stage the rest: git add's own order, made wide.
        out = real_run("add", "--force", "--", EVENTS, **kwargs)
        log_staged.set()
        assert writer_settled.wait(30), "the writer neither blocked nor finished"
        return out + real_run("add", "--force", "--", *(a for a in args[3:] if a != EVENTS), **kwargs)

    def tool_write() -> None:
        try:
            assert log_staged.wait(30), "the recorder never staged the log"
            ops.task_add(Store(repo / ".iteratr", "S"), [{"content": "Late"}])  # as `iteratr tool` would
        except BaseException as exc:
            failures.append(exc)
        finally:
            writer_settled.set()

    writer = threading.Thread(target=tool_write, name="tool-write")
    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(recorder.repo, "run", run)
    attempt = Attempt(n=0, kind="planning")
    before = recorder.started(0, "planning", [])
    ops.task_add(recorder.store, [{"content": "First"}])
    after = recorder.ended(attempt)
    writer.start()
    try:
        recorder.commit(before, after, attempt)
    finally:
        log_staged.set()
        writer.join(30)
    assert not writer.is_alive() and not failures, failures

    events = assert_commit_is_consistent(repo)
    assert task_contents(events) == ["First"]
    assert writer_blocked.is_set(), "the tool write did not wait for the store's lock"
    # The late write is not lost: it is in the work tree, for the next commit.
    assert [t.content for t in recorder.store.load().tasks.values()] == ["First", "Late"]
    monkeypatch.undo()
    recorder.commit_end_of_run()
    assert task_contents(assert_commit_is_consistent(repo)) == ["First", "Late"]
