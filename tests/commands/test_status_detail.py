"""`iteratr status` in-process: tasks by name with their iterations, iterations with cost, run and session totals,
and who takes text waiting in inbox.md (by the run lock, not by guess)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from iteratr.commands import status as statuscmd
from iteratr.commands import status_detail
from iteratr.output import Printer
from iteratr.run.inbox import ensure_inbox
from iteratr.run.runlock import RunLock, lock_path
from iteratr.session.events import make_event
from tests.conftest import git

RUN_1, RUN_2 = "2026-01-01T10:00:00+00:00", "2026-01-01T12:00:00+00:00"


def task(tid: str, content: str, priority: int = 2) -> dict[str, Any]:
    return {"id": tid, "content": content, "status": "remaining", "priority": priority}


def ended(n: int, outcome: str, duration: float, run: str, tokens: int, cost: float) -> dict[str, Any]:
    usage = {"total_tokens": tokens, "cost": cost, "currency": "USD"}
    data = {"n": n, "outcome": outcome, "duration": duration, "run": run, "usage": usage}
    return make_event("iteration.ended", data, n)


EVENTS = [
    make_event("iteration.started", {"n": 0, "kind": "planning", "run": RUN_1}, 0),
    make_event("task.added", task("TAS-1", "write the parser", 3), 0),
    make_event("task.added", task("TAS-2", "write the printer", 1), 0),
    make_event("task.added", task("TAS-3", "write the docs", 4), 0),
    ended(0, "ok", 10.0, RUN_1, 100, 0.01),
    make_event("iteration.started", {"n": 1, "kind": "main", "run": RUN_1}, 1),
    make_event("task.status", {"id": "TAS-1", "status": "in_progress"}, 1),
    ended(1, "failed", 20.0, RUN_1, 200, 0.02),
    make_event("iteration.started", {"n": 2, "kind": "main", "run": RUN_2}, 2),
    make_event("task.status", {"id": "TAS-1", "status": "completed"}, 2),
    make_event("task.status", {"id": "TAS-2", "status": "in_progress"}, 2),
    ended(2, "ok", 30.0, RUN_2, 300, 0.03),
]


@pytest.fixture
def session(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Session S checked out, its log as written: TAS-1 done over #1-2, TAS-2 in progress, TAS-3 waiting."""
    git(repo, "switch", "-q", "-c", "iteratr/S")
    log = repo / ".iteratr" / "S" / "events.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("".join(json.dumps(e) + "\n" for e in EVENTS))
    git(repo, "add", str(log))
    git(repo, "commit", "-q", "-m", "iteratr(S): #2")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(repo.parent / "xdg"))
    return repo


def status(repo: Path, *, as_json: bool = False) -> str:
    stream = io.StringIO()
    assert statuscmd.run(name="S", data_dir=None, as_json=as_json, watch=False, cwd=repo, out=Printer(stream)) == 0
    return stream.getvalue()


def test_the_tasks_by_name_open_first_with_the_iterations_each_took(session: Path) -> None:
    lines = status(session).splitlines()
    at = lines.index("tasks: 1 remaining, 1 in progress, 1 completed (3 in all)")
    assert lines[at + 1 : at + 4] == [
        "  > TAS-2 in progress: write the printer (#2)",
        "    TAS-3 remaining: write the docs",
        "    TAS-1 completed: write the parser (#1-2)",
    ]
    data = json.loads(status(session, as_json=True))
    assert [(t["id"], t["status"], t["iterations"]) for t in data["task_list"]] == [
        ("TAS-2", "in_progress", [2]),
        ("TAS-3", "remaining", []),
        ("TAS-1", "completed", [1, 2]),
    ]


def test_iterations_with_outcome_duration_and_cost_and_the_run_and_session_totals(session: Path) -> None:
    text = status(session)
    assert "  #1 FAILED, started " in text and ", took 20.0s, 200 tokens, cost 0.0200 USD" in text
    assert "last run (started 2026-01-01 12:00 UTC): 1 iteration(s) (1 ok), 30.0s, 300 tokens, cost 0.0300 USD" in text
    assert "session: 3 iteration(s) (2 ok, 1 failed), 1m00s, 600 tokens, cost 0.0600 USD; 2 run(s)" in text
    spent = json.loads(status(session, as_json=True))["spent"]
    assert spent["session"]["outcomes"] == {"ok": 2, "failed": 1} and spent["session"]["duration"] == 60.0
    assert spent["last_run"]["run"] == RUN_2 and spent["last_run"]["tokens"] == 300


def test_inbox_text_is_taken_by_a_running_build_only_when_one_holds_the_lock(session: Path) -> None:
    inbox = ensure_inbox(session / ".iteratr" / "S")
    inbox.write_text(inbox.read_text() + "please also\n")
    assert "inbox.md holds text not taken yet (the next build takes it when it starts)" in status(session)
    common = Path(git(session, "rev-parse", "--absolute-git-dir"))
    lock = RunLock(lock_path(common, "S"), "S", session).acquire()
    try:
        assert "inbox.md holds text not taken yet (the running build takes it within a second)" in status(session)
    finally:
        lock.release()


def test_only_the_last_closed_tasks_are_listed() -> None:
    tasks = [{"id": f"TAS-{i}", "content": f"t{i}", "status": "completed", "iterations": [i]} for i in range(1, 13)]
    lines = status_detail.task_lines([{**tasks[0], "id": "TAS-13", "status": "remaining"}, *tasks], "S")
    assert lines[0] == "    TAS-13 remaining: t1 (#1)"
    assert lines[1] == "    TAS-3 completed: t3 (#3)" and len(lines) == 1 + status_detail.CLOSED_SHOWN + 1
    assert lines[-1] == "    … 2 earlier closed task(s): iteratr tool task-list --name S"


def test_iterations_text_joins_runs_of_numbers() -> None:
    assert status_detail.iterations_text([1, 2, 3, 5, 7, 8]) == "#1-3, #5, #7-8"
    assert status_detail.iterations_text([]) == ""
