"""The store's journal: an event echoed into ``events.jsonl`` by hand is not the agent's tool call (issue 12, the log).

A well-formed ``task.status ... completed`` appended with ``echo >>`` used to pass the log check, and completion is
derived from the tasks, so it forged the end of a session. Only lines whose digest the store journaled count now.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from iteratr.agent.events import TurnResult
from iteratr.run.integrity import check_log
from iteratr.session import journal, ops
from iteratr.session.store import Store
from tests.fakes import FakeAgent, Script
from tests.run.harness import run_loop

BY_HAND = "a line written into the log by hand, not through iteratr tool"


def line(type: str, it: int = 1, **data: object) -> bytes:
    return (json.dumps({"v": 1, "ts": f"t{it}", "type": type, "iteration": it, "data": data}) + "\n").encode()


COMMITTED = line("task.added", 0, id="TAS-1") + line("iteration.started", 1, n=1)


def test_the_digest_is_sha256_whichever_module_computes_it() -> None:
    assert journal.digest(b"x\n") == hashlib.sha256(b"x\n").hexdigest()[:16].encode()


def test_only_journaled_lines_pass_and_each_digest_counts_once() -> None:
    tool = line("note.added", 2, id="NOT-1")
    forged = line("task.status", 2, id="TAS-1", status="completed")
    journaled = {journal.digest(tool): 1}
    result = check_log(COMMITTED, COMMITTED + tool + forged + tool, journaled=journaled)
    assert result.repaired == COMMITTED + tool  # the copy of the tool's line has no digest left to spend
    assert result.set_aside == [forged, tool]
    assert result.problems == [BY_HAND, BY_HAND]
    assert journaled == {journal.digest(tool): 1}  # the caller's counts are not spent
    # Without a journal (outside git) a valid event passes, as before.
    assert not check_log(COMMITTED, COMMITTED + forged).tampered


def test_loop_lines_need_no_journal_entry_but_must_be_iteratrs() -> None:
    started = line("iteration.started", 2, n=2)
    result = check_log(COMMITTED, COMMITTED + started, allowed_loop_lines=frozenset({started}), journaled={})
    assert not result.tampered


def test_the_store_journals_before_it_appends_and_the_journal_rotates(spec_repo: Path) -> None:
    store = Store(spec_repo / ".iteratr", "SPEC")
    assert store.journal_path is not None
    assert spec_repo / ".git" in store.journal_path.parents  # under the git dir, where no commit carries it
    ops.note_add(store, "hello", "learning")
    lines = store.events_path.read_bytes().splitlines(keepends=True)
    assert journal.digests(store.journal_path) == {journal.digest(lines[-1]): 1}
    journal.seal(store.journal_path)  # staged for a commit: still vouched for until the commit is made
    ops.note_add(store, "after the staging", "learning")
    assert len(journal.digests(store.journal_path)) == 2
    journal.committed(store.journal_path)
    last = store.events_path.read_bytes().splitlines(keepends=True)[-1]
    assert journal.digests(store.journal_path) == {journal.digest(last): 1}


def test_outside_git_there_is_no_journal(tmp_path: Path) -> None:
    store = Store(tmp_path / ".iteratr", "SPEC")
    ops.note_add(store, "hello", "learning")
    assert store.journal_path is None
    assert not list(tmp_path.rglob(journal.JOURNAL_FILE))


def test_a_completion_echoed_into_the_log_is_set_aside(spec_repo: Path) -> None:
    async def forge(agent: FakeAgent, prompt: str) -> TurnResult:
        ops.note_add(agent.store, "kept: written through the store", "learning")
        ids = sorted(agent.store.load().tasks)
        with agent.store.events_path.open("a") as f:  # echo '{...}' >> events.jsonl
            for n, task in enumerate(ids):
                event = {"v": 1, "ts": f"2026-01-01T00:00:0{n}.000000Z", "type": "task.status", "iteration": 1}
                f.write(json.dumps({**event, "data": {"id": task, "status": "completed"}}) + "\n")
        return TurnResult("end_turn", "forged\n", 0, None, None)

    run = run_loop(spec_repo, Script("follow", forge), iterations=2, expect=3)  # forge is #1's and #2's turn
    assert BY_HAND in run.output and "the session log was tampered with" in run.output
    tamper = run.events("tamper")
    assert [e["iteration"] for e in tamper] == [1, 2]
    assert all(set(e["data"]["problems"]) == {BY_HAND} for e in tamper)
    state = run.state
    assert state.tasks and all(t.status != "completed" for t in state.tasks.values())
    assert not state.complete
    assert [n.content for n in state.notes].count("kept: written through the store") == 2
    aside = (run.session_dir / "events.set-aside.log").read_text()
    assert aside.count('"completed"') == 2 * len(state.tasks)
