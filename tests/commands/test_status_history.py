"""``iteratr status`` costs what is live (issue 17): it reads through the store's snapshot (a branch through its
mirror), never replays the log, lists only what it shows, and folds only the lines added since its last call; the
fold gives what a full replay gives. A build's first look (``agent_start.known_session``) reads the same way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iteratr.commands import report_facts, status, status_render, status_spans
from iteratr.commands.status_iterations import IterationFold
from iteratr.gitrepo import GitRepo
from iteratr.run import agent_start
from iteratr.session import reducer
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from iteratr.session.state import State
from iteratr.session.store import Store
from iteratr.session.tasks import Tasks
from tests.conftest import REPO_ROOT, git

DATA = Path(".iteratr")


def task(tid: str, status_: str = "remaining") -> dict[str, Any]:
    return make_event("task.added", {"id": tid, "content": f"do {tid}", "status": status_, "priority": 2}, 0)


def a_session(repo: Path, closed: int, notes: int) -> Store:
    """Session S checked out: ``closed`` tasks done over iterations 1..closed, one open task, ``notes`` notes."""
    git(repo, "switch", "-q", "-c", "iteratr/S")
    store = Store(repo / DATA, "S")
    store.append(make_event("iteration.started", {"n": 0, "kind": "planning"}, 0))
    store.append(*[task(f"TAS-{i}") for i in range(1, closed + 2)])
    store.append(make_event("iteration.ended", {"n": 0, "outcome": "ok", "duration": 1.0}, 0))
    for n in range(1, closed + 1):
        store.append(
            make_event("iteration.started", {"n": n, "kind": "main", "run": "R1"}, n),
            make_event("task.status", {"id": f"TAS-{n}", "status": "in_progress"}, n),
            make_event("task.status", {"id": f"TAS-{n}", "status": "completed"}, n),
            make_event("iteration.ended", {"n": n, "outcome": "ok", "duration": 2.0, "run": "R1"}, n),
        )
    for i in range(1, notes + 1):
        store.append(make_event("note.added", {"id": f"NOT-{i}", "content": f"note {i}", "type": "tip"}, closed))
    return store


def collect(repo: Path) -> dict[str, Any]:
    status._LAST.clear()  # a one-shot status: nothing remembered from an earlier call
    return status.collect(status.Repo(repo), "S", DATA)


def no_history(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any read of the whole history (a replay, every note, every iteration, every task) fails the test."""

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("status read the whole history")

    monkeypatch.setattr(reducer, "replay", refuse)
    monkeypatch.setattr(State, "notes", property(refuse))
    monkeypatch.setattr(State, "iterations", property(refuse))
    monkeypatch.setattr(Tasks, "_everything", refuse)


def test_status_lists_only_what_it_shows_and_reads_no_history(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = a_session(repo, closed=14, notes=8)
    collect(repo)  # the first read after the writes: the snapshot is the store's own
    store.append(make_event("note.added", {"id": "NOT-9", "content": "note 9", "type": "tip"}, 14))
    no_history(monkeypatch)

    data = collect(repo)

    assert [t["id"] for t in data["task_list"]] == ["TAS-15", *[f"TAS-{i}" for i in range(5, 15)]]
    assert data["task_list"][-1]["iterations"] == [14] and data["closed_total"] == 14
    assert [n["id"] for n in data["notes"]] == [f"NOT-{i}" for i in range(5, 10)] and data["note_total"] == 9
    assert data["iterations"] == 15 and data["spent"]["session"]["duration"] == 29.0
    text = "\n".join(status_render.render(data))
    assert "notes (9, the last 5):" in text and "… 4 earlier closed task(s)" in text
    assert "    TAS-14 completed: do TAS-14 (#14)" in text


def test_a_status_folds_only_the_lines_added_since_the_last(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = a_session(repo, closed=3, notes=1)
    starts: list[int] = []
    real = status_spans._fold_from

    def recording(f: Any, found: status_spans.Folded) -> None:
        starts.append(found.offset)
        real(f, found)

    monkeypatch.setattr(status_spans, "_fold_from", recording)
    collect(repo)
    size = store.events_path.stat().st_size
    store.append(make_event("task.status", {"id": "TAS-4", "status": "in_progress"}, 3))
    data = collect(repo)
    assert starts == [0, size]  # the second call went on from where the first stopped
    assert data["in_progress"]["id"] == "TAS-4" and data["task_list"][0]["iterations"] == [3]
    store.rewrite(store.events_path.read_bytes()[:size])  # the log cut back: folded again from the start
    assert collect(repo)["in_progress"] is None and starts[-1] == 0


def test_a_branch_is_read_through_its_mirror_copying_only_what_changed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = a_session(repo, closed=2, notes=1)
    git(repo, "add", "--force", ".iteratr")
    git(repo, "commit", "-q", "-m", "iteratr(S): #2")
    git(repo, "switch", "-q", "main")
    first = collect(repo)
    assert first["source"] == "branch" and first["task_total"] == 3 and first["iterations"] == 3
    copied: list[str] = []
    import iteratr.freshest as freshest

    real = freshest._copy_blob

    def recording(root: Path, oid: str, target: Path) -> None:
        copied.append(target.name)
        real(root, oid, target)

    monkeypatch.setattr(freshest, "_copy_blob", recording)
    git(repo, "switch", "-q", "iteratr/S")
    store.append(make_event("task.status", {"id": "TAS-3", "status": "blocked"}, 2))
    git(repo, "commit", "-q", "-m", "blocked", "--", ".iteratr/S/events.jsonl")
    git(repo, "checkout", "-q", "--", ".iteratr/S/tasks.yaml")  # left as committed: its blob is unchanged
    git(repo, "switch", "-q", "main")
    no_history(monkeypatch)
    later = collect(repo)
    assert copied == ["events.jsonl"]  # the unchanged tasks.yaml was not copied again
    assert later["tasks"]["blocked"] == 1 and later["last_activity"] != first["last_activity"]


def test_the_fold_gives_what_a_full_replay_gives(tmp_path: Path) -> None:
    """On a generated long session with a re-ended old iteration and a reopened task, folded in two steps."""
    log = tmp_path / "S" / "events.jsonl"
    gen = [sys.executable, str(REPO_ROOT / "bench" / "gen_session.py"), "--events", "4000", "--live", "20"]
    subprocess.run([*gen, "--out", str(log)], check=True, capture_output=True)
    lines = log.read_bytes().splitlines(keepends=True)
    events = [json.loads(line) for line in lines]
    last_n = max(e["data"]["n"] for e in events if e["type"] == "iteration.started")
    done = [e["data"]["id"] for e in events if e["type"] == "task.status" and e["data"]["status"] == "completed"]
    extra = [
        make_event("iteration.ended", {"n": 3, "outcome": "failed", "duration": 5.0, "error": "by hand"}, last_n),
        make_event("task.status", {"id": done[-1], "status": "in_progress"}, last_n),
    ]
    log.write_bytes(b"".join(lines[: len(lines) // 2]))
    cache = tmp_path / "fold.marshal"
    status_spans.folded(log, cache)
    with log.open("ab") as f:
        f.write(b"".join(lines[len(lines) // 2 :]) + b"".join(json.dumps(e).encode() + b"\n" for e in extra))
    found = status_spans.folded(log, cache)
    everything = events + extra
    state = replay(everything)
    its = found.its.summary()
    ended = [it for it in state.iterations.values() if it.outcome is not None and it.kind != "manual"]
    assert its["ended"] == len(ended)
    outcomes: dict[str, int] = {}
    for it in ended:
        outcomes[it.outcome or ""] = outcomes.get(it.outcome or "", 0) + 1
    assert its["session"]["outcomes"] == outcomes
    assert its["session"]["duration"] == pytest.approx(sum(it.duration or 0.0 for it in ended))
    assert its["last_failure"]["n"] == 3 and its["last_failure"]["error"] == "by hand"
    spans = report_facts.gather(state, everything).spans
    shown = [t.id for t in state.tasks.live()] + [t.id for t in state.tasks.last_done(10)]
    for task_id in shown:
        mine, theirs = found.fold.span(task_id, state.current_iteration), spans.get(task_id)
        assert (mine.iterations if mine else []) == (theirs.iterations if theirs else []), task_id


def test_a_stale_fold_is_exact_too() -> None:
    fold = IterationFold(window=2)
    for n in range(6):
        fold.add(make_event("iteration.started", {"n": n, "kind": "main"}, n))
        fold.add(make_event("iteration.ended", {"n": n, "outcome": "ok", "duration": 1.0}, n))
    fold.add(make_event("iteration.ended", {"n": 0, "outcome": "failed", "duration": 1.0}, 5))
    assert fold.stale  # an iteration already summed changed: the caller folds again with every one kept


def test_a_builds_first_look_reads_through_the_snapshot(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = a_session(repo, closed=2, notes=0)
    git(repo, "add", "--force", ".iteratr")
    git(repo, "commit", "-q", "-m", "iteratr(S): #2")
    store.load()
    count = len(store.events())
    with monkeypatch.context() as patched:  # the snapshot is current: not one event is applied again
        patched.setattr(reducer, "replay", lambda *_a, **_k: pytest.fail("replayed the log"))
        patched.setattr(reducer, "apply", lambda *_a, **_k: pytest.fail("applied an event"))
        here = agent_start.known_session(GitRepo.open(repo), "S", DATA)
    assert here is not None and here.checked_out == repo and len(here.state.tasks) == 3
    git(repo, "switch", "-q", "main")
    there = agent_start.known_session(GitRepo.open(repo), "S", DATA)  # from the branch, through its mirror
    assert there is not None and there.checked_out is None and there.state.counts()["completed"] == 2
    assert sum(1 for _ in there.events()) == count  # streamed when asked


def test_a_remote_tracking_session_is_read_through_its_mirror(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from iteratr.commands import status_remote

    a_session(repo, closed=2, notes=0)
    git(repo, "add", "--force", ".iteratr")
    git(repo, "commit", "-q", "-m", "iteratr(S): #2")
    git(repo, "update-ref", "refs/remotes/origin/iteratr/S", "HEAD")
    git(repo, "switch", "-q", "main")
    no_history(monkeypatch)
    data = status_remote.collect(repo, "S", "origin", DATA)
    assert data["task_total"] == 3 and data["iterations"] == 3 and data["last_activity"] is not None
