"""The segmented log in the loop (issue 17, "git stores each event once"): every commit closes ``events.jsonl`` into
a segment here (``CLOSE_AT`` 0), and every guarantee of the history-integrity issue holds for closed segments:
tamper checks (an edited, deleted or planted segment), and a crash between a close and its commit."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from iteratr.session import segments, tree_log
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from tests.conftest import git
from tests.fakes import FakeAgent, Script
from tests.run.harness import LoopRun, run_loop
from tests.run.test_faults import follow_then, iteratr_commits

SESSION = ".iteratr/SPEC"


@pytest.fixture(autouse=True)
def close_at_every_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(segments, "CLOSE_AT", 0)


def logical(run: LoopRun) -> bytes:
    with run.store.view() as view:
        return view.read()


def assert_history_is_whole(repo: Path, run: LoopRun) -> None:
    """Each iteratr commit's log (its segments, then its events.jsonl) is a prefix of the log now; the state is the
    replay of the log."""
    log = logical(run)
    commits = iteratr_commits(run)
    assert commits, run.output
    for sha in commits:
        assert subprocess.run(["git", "merge-base", "--is-ancestor", sha, "iteratr/SPEC"], cwd=repo).returncode == 0
        committed = tree_log.read(repo, sha, SESSION)
        assert committed is not None and log.startswith(committed), f"commit {sha} holds events the log lost"
    started = run.started()
    assert started == list(range(len(started))), started
    assert run.state.to_dict() == replay(run.store.events()).to_dict()


def test_each_commit_adds_one_plain_jsonl_segment_and_an_empty_events_jsonl(spec_repo: Path) -> None:
    run = run_loop(spec_repo, Script("follow", "follow", "follow", "follow"), iterations=4, expect=0)
    numbers = segments.closed(run.session_dir)
    assert len(numbers) == len(iteratr_commits(run)) >= 4
    assert git(spec_repo, "show", f"iteratr/SPEC:{SESSION}/events.jsonl") == ""
    # a closed segment is plain JSONL, committed once and never rewritten
    first = git(spec_repo, "show", f"iteratr/SPEC:{SESSION}/{segments.segment_rel(0)}")
    assert json.loads(first.splitlines()[0])["type"] == "iteration.started"
    changed = git(spec_repo, "log", "--format=", "--name-only", "iteratr/SPEC", "--", f"{SESSION}/events/").split()
    assert len(changed) == len(set(changed)) == len(numbers)  # each segment appears in exactly one commit
    assert run.state.complete
    assert_history_is_whole(spec_repo, run)


@pytest.mark.parametrize("how", ["edit", "delete", "rm-segments"])
def test_a_closed_segment_edited_or_deleted_is_put_back(spec_repo: Path, how: str) -> None:
    def damage(agent: FakeAgent) -> None:
        top = agent.store.dir / "events"
        first = agent.store.dir / segments.segment_rel(0)
        if how == "edit":  # TAS-1 marked completed in the history
            first.write_bytes(first.read_bytes().replace(b'"remaining"', b'"completed"'))
        elif how == "delete":
            first.unlink()
        else:
            shutil.rmtree(top)

    run = run_loop(spec_repo, Script("follow", "follow", follow_then(damage), "follow"), iterations=4, expect=0)
    assert "the session log was tampered with" in run.output
    tamper = run.events("tamper")
    assert tamper and tamper[0]["data"]["what"] == "log" and tamper[0]["iteration"] == 2
    assert any("closed segment" in p for p in tamper[0]["data"]["problems"])
    assert git(spec_repo, "status", "--porcelain", "--", f"{SESSION}/events/") == ""
    assert sorted(run.state.tasks) == ["TAS-1", "TAS-2", "TAS-3"] and run.state.complete
    assert_history_is_whole(spec_repo, run)


def test_a_planted_segment_is_checked_like_appended_lines_and_set_aside(spec_repo: Path) -> None:
    forged = {"v": 1, "ts": "x", "type": "task.status", "iteration": 0, "data": {"id": "TAS-3", "status": "completed"}}

    def plant(agent: FakeAgent) -> None:
        n = segments.count(agent.store.dir)
        target = agent.store.dir / segments.segment_rel(n)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(forged) + "\n")
        stray = agent.store.dir / "events" / "notes.txt"
        stray.write_text("not a segment\n")

    run = run_loop(spec_repo, Script("follow", follow_then(plant)), iterations=1, expect=3)
    aside = (run.session_dir / "events.set-aside.log").read_text()
    assert '"TAS-3"' in aside and "not a segment" in aside
    assert run.state.tasks["TAS-3"].status != "completed"
    assert not (run.session_dir / "events" / "notes.txt").exists()
    assert_history_is_whole(spec_repo, run)


def test_an_emptied_open_segment_gets_iteratr_s_own_lines_back(spec_repo: Path) -> None:
    """Right after a close events.jsonl holds only this turn's lines: emptying it keeps the committed part whole,
    and is still caught (iteratr's own lines are gone)."""

    def empty(agent: FakeAgent) -> None:
        agent.store.events_path.write_bytes(b"")

    run = run_loop(spec_repo, Script("follow", follow_then(empty), "follow", "follow"), iterations=4, expect=0)
    assert "the session log was tampered with" in run.output
    assert run.started() == list(range(len(run.started())))
    assert_history_is_whole(spec_repo, run)


def test_a_segment_closed_by_a_run_killed_before_its_commit_is_committed_by_the_next(spec_repo: Path) -> None:
    first = run_loop(spec_repo, Script("follow"), iterations=1, expect=3)
    with first.store.locked():
        assert first.store.close_segment(0) is None  # nothing since the commit: nothing to close
    first.store.append(make_event("note.added", {"id": "NOT-9", "type": "learning", "content": "x"}, 1))
    with first.store.locked():  # what a kill between the close and the commit leaves
        closed = first.store.close_segment(0)
    assert closed is not None and git(spec_repo, "status", "--porcelain", "--", str(closed)).startswith("??")
    run = run_loop(spec_repo, Script("follow", "follow", "follow"), iterations=3, expect=0)
    assert "tampered" not in run.output
    assert git(spec_repo, "status", "--porcelain", "--", f"{SESSION}/events/") == ""
    assert "NOT-9" in json.dumps(run.state.to_dict())
    assert_history_is_whole(spec_repo, run)


def test_a_segment_hidden_by_a_planted_gitignore_is_never_read(spec_repo: Path) -> None:
    """A self-ignoring .gitignore beside a committed segment hides a second file of segment 0's number (``00.jsonl``)
    from ``git status``. No reader takes it (not a name iteratr gives), the log and its history stay whole, and it is
    never committed."""

    def plant(agent: FakeAgent) -> None:
        folder = (agent.store.dir / segments.segment_rel(0)).parent
        (folder / ".gitignore").write_text("*\n")
        (folder / "00.jsonl").write_text('{"v": 1, "type": "note.added", "data": {}}\n')

    run = run_loop(spec_repo, Script("follow", "follow", follow_then(plant), "follow"), iterations=4, expect=0)
    numbers = segments.closed(run.session_dir)
    assert numbers == list(range(len(numbers)))
    events = run.store.events()
    assert len(events) == len({json.dumps(e, sort_keys=True) for e in events})  # no segment read twice
    committed = git(spec_repo, "ls-tree", "-r", "--name-only", "iteratr/SPEC").split()
    assert f"{SESSION}/events/0/0/0/0/00.jsonl" not in committed
    assert_history_is_whole(spec_repo, run)


def test_an_ignored_file_where_a_segment_directory_goes_breaks_no_reader(spec_repo: Path) -> None:
    def plant(agent: FakeAgent) -> None:
        top = agent.store.dir / "events"
        (top / ".gitignore").write_text(".gitignore\n9\n")
        (top / "9").write_text("x\n")

    run = run_loop(spec_repo, Script("follow", follow_then(plant), "follow", "follow"), iterations=4, expect=0)
    numbers = segments.closed(run.session_dir)
    assert numbers == list(range(len(numbers)))
    assert_history_is_whole(spec_repo, run)
