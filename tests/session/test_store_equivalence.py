"""Property tests: whatever path a read takes (snapshot, archive, lines after the snapshot, a streamed cold replay
that spills history, a lost archive, a touched log), the state and ``tasks.yaml`` equal a full replay of the log.

Random event sequences from a seeded generator (hypothesis is not a dependency): each seed is one test case, so a
failure names the seed that reproduces it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from iteratr.session import replay as replay_module
from iteratr.session import tasks_view
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from iteratr.session.state import DONE_STATUSES, id_number
from iteratr.session.store import Store
from iteratr.session.tasks import changes


class Session:
    """A random but plausible session: tasks, notes, iterations, messages, hooks, and the odd hand-made line."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tasks = 0
        self.notes = 0
        self.messages = 0
        self.n = -1
        self.open_n: int | None = None

    def event(self) -> dict[str, Any]:
        rng, roll = self.rng, self.rng.random()
        it = max(self.n, 0)
        if roll < 0.12 or not self.tasks:
            self.tasks += 1
            deps = [f"TAS-{rng.randint(1, self.tasks - 1)}"] if self.tasks > 1 and rng.random() < 0.3 else []
            content = f"task {self.tasks} " + "x" * rng.randint(0, 40)
            data: dict[str, Any] = {"id": f"TAS-{self.tasks}", "content": content}
            data.update(status="remaining", priority=rng.randint(0, 4), depends_on=deps)
            return make_event("task.added", data, it)
        if roll < 0.35:
            status = rng.choice(["remaining", "in_progress", "completed", "blocked", "cancelled"])
            return make_event("task.status", {"id": f"TAS-{rng.randint(1, self.tasks)}", "status": status}, it)
        if roll < 0.40:
            return make_event("task.priority", {"id": f"TAS-{rng.randint(1, self.tasks)}", "priority": 3}, it)
        if roll < 0.43:
            dep = f"TAS-{rng.randint(1, self.tasks)}"
            return make_event("task.depends", {"id": f"TAS-{rng.randint(1, self.tasks)}", "depends_on": dep}, it)
        if roll < 0.60:
            self.notes += 1
            kind = rng.choice(["learning", "stuck", "tip", "decision"])
            data = {"id": f"NOT-{self.notes}", "content": f"note {self.notes}", "type": kind}
            return make_event("note.added", data, it)
        if roll < 0.72:
            if self.open_n is None:
                self.n += 1
                self.open_n = self.n
                return make_event("iteration.started", {"n": self.n, "kind": "main", "run": "r1"}, self.n)
            n, self.open_n = self.open_n, None
            usage = {"total_tokens": rng.randint(1, 900), "cost": 0.01, "currency": "USD", "source": "turn"}
            data = {"n": n, "outcome": rng.choice(["ok", "failed"]), "duration": 1.5, "usage": usage, "progress": True}
            return make_event("iteration.ended", data, n)
        if roll < 0.80:  # a summary, now and then for an old iteration (by hand) or one never started
            n = rng.choice([it, rng.randint(0, it + 3)])
            return make_event("iteration.summary", {"summary": f"summary of {n}"}, n)
        if roll < 0.86:
            self.messages += 1
            return make_event("user.message", {"id": f"MSG-{self.messages}", "text": "hi", "source": "inbox.md"}, it)
        if roll < 0.90 and self.messages:
            return make_event("user.delivered", {"ids": [f"MSG-{self.messages}"], "iteration": it}, it)
        if roll < 0.94:
            data = {"hook": "on_task_complete", "task_id": f"TAS-{rng.randint(1, self.tasks)}", "exit_status": 0}
            return make_event("hook.ran", data, it)
        if roll < 0.97:
            return make_event("session.completed", {}, it)
        return make_event("iteration.started", {"n": "not a number"}, it)  # a bad line the reducer skips


def expected(store: Store) -> tuple[dict[str, Any], str]:
    state = replay(store.events())
    return state.to_dict(), tasks_view.render(store.name, state)[0]


def check(store: Store) -> None:
    fresh = Store(store.data_dir, store.name)
    state = fresh.load()
    full = replay(store.events())
    # The live indexes, before anything reads the history: what the loop and the prompt ask of them.
    assert set(state.unhooked) == {t.id for t in full.tasks.values() if t.status == "completed"} - set(
        full.completed_hooked
    )
    done = [t.id for t in sorted(full.tasks.values(), key=lambda t: id_number(t.id)) if t.status in DONE_STATUSES]
    assert [t.id for t in state.tasks.last_done(5)] == done[-5:]
    assert state.counts() == full.counts() and len(state.tasks) == len(full.tasks)
    for run in ("*", "r1", None):  # the guard rails' budgets: the session's and a run's sums, from the index
        want = full.iteration_totals(run)
        got = state.iteration_totals(run)
        assert got[:3] == want[:3] and got[4:] == want[4:] and got[3] == pytest.approx(want[3])
    assert [t.id for t in state.open_tasks()] == sorted((t.id for t in full.open_tasks()), key=id_number)
    want_state, want_view = expected(store)
    assert state.to_dict() == want_state
    fresh.write_view(state)  # the view as a write renders it from this state and the snapshot's render cache
    assert store.tasks_path.read_text() == want_view


def cache_dir(store: Store) -> Path:
    return store.dir / "cache"


def small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """History moves often: cold replays spill to the archive every 7 events, and iterations leave a live window
    of 3 (their sums move)."""
    monkeypatch.setattr(replay_module, "SPILL_EVERY", 7)
    for module in ("iteratr.session.state", "iteratr.session.windowed"):
        monkeypatch.setattr(f"{module}.WINDOW", 3)


@pytest.mark.parametrize("seed", range(12))
def test_every_read_path_equals_a_full_replay(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    small_windows(monkeypatch)
    rng = random.Random(seed)
    session = Session(rng)
    store = Store(tmp_path / ".iteratr", "S")
    for step in range(40):
        batch = [session.event() for _ in range(rng.randint(1, 12))]
        how = rng.random()
        if how < 0.6:  # through the store, as iteratr tool and the loop write
            Store(store.data_dir, "S").append(*batch)
        else:  # appended behind the store's back (a merge, a `git pull`): the snapshot covers a prefix
            store.create()
            with open(store.events_path, "ab") as f:
                f.write(b"".join(json.dumps(e).encode() + b"\n" for e in batch))
        trouble = rng.random()
        if trouble < 0.1:
            shutil.rmtree(cache_dir(store), ignore_errors=True)  # a fresh clone: a cold, spilling replay
        elif trouble < 0.2:
            for entry in cache_dir(store).glob("notes.*"):
                entry.write_bytes(entry.read_bytes()[:3])  # an archive cut short: the log is replayed for it
        elif trouble < 0.3:
            os.utime(store.events_path, ns=(step, step))  # a touch: stat changed, bytes not
        if rng.random() < 0.5 or step == 39:
            check(store)


def test_a_stat_only_change_is_healed_by_the_first_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / ".iteratr", "S")
    session = Session(random.Random(1))
    store.transact(lambda _s: [session.event() for _ in range(200)])
    os.utime(store.events_path, ns=(1, 1))  # an identical checkout, a touch
    reads: list[int] = []
    real = replay_module.crc_of

    def counting(f: Any, length: int) -> int | None:
        reads.append(length)
        return real(f, length)

    monkeypatch.setattr("iteratr.session.store.crc_of", counting)  # the store checks the cover
    first = Store(store.data_dir, "S").load().to_dict()
    assert len(reads) == 1  # the first read checks the covered bytes ...
    second = Store(store.data_dir, "S").load().to_dict()
    assert len(reads) == 1  # ... and saved the snapshot with the new stat: the next read trusts it
    assert first == second == expected(store)[0]


def test_a_cold_replay_keeps_only_the_live_state_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """History goes to the archive while the log is replayed: what the state holds in memory stays live-sized."""
    from iteratr.session.state import RECENT_NOTES, WINDOW, State

    monkeypatch.setattr(replay_module, "SPILL_EVERY", 50)
    store = Store(tmp_path / ".iteratr", "S")
    events = []
    for n in range(400):
        events.append(make_event("iteration.started", {"n": n, "kind": "main"}, n))
        events.append(make_event("note.added", {"id": f"NOT-{n + 1}", "content": "n", "type": "tip"}, n))
        events.append(make_event("iteration.ended", {"n": n, "outcome": "ok", "duration": 1.0}, n))
    store.transact(lambda _s: events)
    shutil.rmtree(cache_dir(store))
    biggest = 0
    from iteratr.session.reducer import apply as real_apply

    def watching(state: State, event: dict[str, Any]) -> None:
        nonlocal biggest
        real_apply(state, event)
        biggest = max(biggest, len(state._its), len(state._new_notes))

    monkeypatch.setattr(replay_module, "apply", watching)
    state = Store(store.data_dir, "S").load()
    assert biggest <= 50 + WINDOW + RECENT_NOTES  # never the 400 notes and iterations at once
    assert state.to_dict() == expected(store)[0]


def test_tasks_yaml_shows_the_counts_the_tasks_not_done_and_the_last_notes(tmp_path: Path) -> None:
    """A long session's done tasks and notes would make every write, and every commit of the view, cost the history."""
    from ruamel.yaml import YAML

    store = Store(tmp_path / ".iteratr", "S")
    for n, status in enumerate(["completed", "remaining", "cancelled", "blocked", "in_progress"], 1):
        data = {"id": f"TAS-{n}", "content": "t", "status": status, "priority": 2, "depends_on": []}
        store.append(make_event("task.added", data, 0))
    for n in range(1, 101):
        store.append(make_event("note.added", {"id": f"NOT-{n}", "content": f"note {n}", "type": "tip"}, 0))
    view = YAML(typ="safe").load(store.tasks_path.read_text())
    assert view["counts"] == {"remaining": 1, "in_progress": 1, "completed": 1, "blocked": 1, "cancelled": 1}
    assert [t["id"] for t in view["tasks"]] == ["TAS-2", "TAS-4", "TAS-5"]
    assert [n["id"] for n in view["notes"]] == [f"NOT-{n}" for n in range(71, 101)]
    state = Store(store.data_dir, "S").load()
    assert len(state.notes) == 100 and len(state.tasks) == 5  # all of them are still there to read


@pytest.mark.parametrize("seed", range(6))
def test_the_changes_between_two_reads_are_those_of_full_replays(tmp_path: Path, seed: int) -> None:
    """What the commit message and the progress check compare (``tasks.changes``), from live states only."""
    rng = random.Random(seed)
    session = Session(rng)
    store = Store(tmp_path / ".iteratr", "S")
    store.append(*[session.event() for _ in range(300)])
    for _ in range(6):
        before, full_before = Store(store.data_dir, "S").load(), replay(store.events())
        store.append(*[session.event() for _ in range(rng.randint(1, 30))])
        after, full_after = Store(store.data_dir, "S").load(), replay(store.events())
        want = []
        for task in sorted(full_after.tasks.values(), key=lambda t: id_number(t.id)):
            old = full_before.tasks.get(task.id)
            if old is None or old.status != task.status:
                want.append((old.status if old else None, task.to_dict()))
        assert [(was, task.to_dict()) for was, task in changes(before.tasks, after.tasks)] == want


def test_a_line_that_is_not_utf8_is_named_by_its_number(tmp_path: Path) -> None:
    from iteratr.errors import StoreError

    store = Store(tmp_path / ".iteratr", "S")
    store.append(make_event("note.added", {"id": "NOT-1", "content": "a", "type": "tip"}, 0))
    with open(store.events_path, "ab") as f:
        f.write(b'{"v": 1, "type": "note.added", "data": {"content": "\xff"}}\n')
    shutil.rmtree(cache_dir(store), ignore_errors=True)
    with pytest.raises(StoreError, match=r"events\.jsonl:2: invalid event line"):
        Store(store.data_dir, "S").load()
