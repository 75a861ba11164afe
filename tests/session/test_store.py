"""Unit tests of ``iteratr.store``: the event format, refusals, torn and invalid lines, and the snapshot cache."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from iteratr.errors import StoreError, UsageError
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from iteratr.session.state import State
from iteratr.session.store import Store


def store_at(tmp_path: Path, name: str = "S") -> Store:
    return Store(tmp_path / ".iteratr", name)


def add_task(store: Store, content: str, **extra: Any) -> State:
    def decide(s: State) -> list[dict[str, Any]]:
        data = {"id": s.next_task_id, "content": content, "status": "remaining", "priority": 2, "depends_on": []}
        return [make_event("task.added", {**data, **extra}, 0)]

    return store.transact(decide)[0]


def full_replay(store: Store) -> dict[str, Any]:
    """The state from the log alone, with no cache involved."""
    return replay(store.events()).to_dict()


def loaded(store: Store) -> dict[str, Any]:
    """What a fresh reader (a new process) gets, cache included."""
    return Store(store.data_dir, store.name).load().to_dict()


def test_events_have_the_documented_fields(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    add_task(store, "first")
    lines = store.events_path.read_bytes().splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert set(event) >= {"v", "ts", "type", "iteration", "data"}
    assert event["v"] == 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["ts"])
    assert event["type"] == "task.added"
    assert event["iteration"] == 0
    assert event["data"]["content"] == "first"


def test_appends_accumulate_and_a_reader_sees_them(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    for n in range(5):
        add_task(store, f"task {n}")
    state = Store(store.data_dir, "S").load()
    assert list(state.tasks) == [f"TAS-{n}" for n in range(1, 6)]
    assert store.events_path.read_bytes().endswith(b"\n")
    assert len(store.events()) == 5


def test_a_refused_transaction_writes_nothing(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    add_task(store, "first")
    before = store.events_path.read_bytes(), store.tasks_path.read_bytes()

    def refuse(_s: State) -> list[dict[str, Any]]:
        raise UsageError("no")

    with pytest.raises(UsageError):
        store.transact(refuse)
    assert (store.events_path.read_bytes(), store.tasks_path.read_bytes()) == before


def test_a_refused_or_empty_transaction_on_a_new_session_creates_nothing(tmp_path: Path) -> None:
    store = store_at(tmp_path, "new")

    def refuse(_s: State) -> list[dict[str, Any]]:
        raise UsageError("no")

    with pytest.raises(UsageError):
        store.transact(refuse)
    assert store.transact(lambda _s: [])[1] == []
    assert not (tmp_path / ".iteratr").exists()


def test_reading_an_unknown_session_names_the_existing_ones_and_creates_nothing(tmp_path: Path) -> None:
    add_task(store_at(tmp_path, "alpha"), "x")
    with pytest.raises(UsageError, match=r"no session 'beta'.*sessions there: alpha"):
        store_at(tmp_path, "beta").load()
    assert not (tmp_path / ".iteratr" / "beta").exists()
    with pytest.raises(UsageError, match="none exists yet"):
        Store(tmp_path / "elsewhere", "beta").load()
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".", "..", "a b", "x" * 65, "é"])
def test_invalid_session_names_are_refused_before_anything_is_touched(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="invalid session name"):
        Store(tmp_path / ".iteratr", name)
    assert list(tmp_path.iterdir()) == []


def test_create_writes_the_gitignore_and_an_empty_view(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    store.create()
    assert store.events_path.read_bytes() == b""
    assert "tasks: []" in store.tasks_path.read_text()
    gitignore = (tmp_path / ".iteratr" / ".gitignore").read_text()
    assert "*/cache/" in gitignore


# -- torn and invalid lines -----------------------------------------------------------------------


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_at(tmp_path)
    add_task(store, "kept")
    with open(store.events_path, "ab") as f:
        f.write(b'{"v": 1, "ts": "2026-01-01T00:00:00.000000Z", "type": "task.added", "data": {"id": "TA')
    capsys.readouterr()
    state = Store(store.data_dir, "S").load()
    assert list(state.tasks) == ["TAS-1"]
    err = capsys.readouterr().err
    assert "torn last line" in err
    assert "events.jsonl" in err


def test_the_next_write_repairs_a_torn_last_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = store_at(tmp_path)
    add_task(store, "kept")
    with open(store.events_path, "ab") as f:
        f.write(b'{"v": 1, "type": "task.ad')
    add_task(Store(store.data_dir, "S"), "after the crash")
    raw = store.events_path.read_bytes()
    assert raw.endswith(b"\n")
    events = [json.loads(line) for line in raw.splitlines()]  # every line is whole JSON again
    assert [e["data"]["content"] for e in events] == ["kept", "after the crash"]
    assert [e["data"]["id"] for e in events] == ["TAS-1", "TAS-2"]
    assert "removing a torn last line" in capsys.readouterr().err
    assert loaded(store) == full_replay(store)


def test_an_invalid_line_in_the_middle_names_its_line_number(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    for n in range(3):
        add_task(store, f"task {n}")
    lines = store.events_path.read_bytes().splitlines(keepends=True)
    lines[1] = b"<<<<<<< HEAD\n"
    store.events_path.write_bytes(b"".join(lines))
    (store.dir / "cache").joinpath("state.marshal").unlink()
    with pytest.raises(StoreError) as info:
        Store(store.data_dir, "S").load()
    assert f"{store.events_path}:2:" in str(info.value)
    assert info.value.hint and "fix or remove that line" in info.value.hint


def test_a_line_that_is_json_but_not_an_event_is_invalid(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    add_task(store, "x")
    with open(store.events_path, "ab") as f:
        f.write(b'["a list"]\n')
    with pytest.raises(StoreError, match=r":2: invalid event line"):
        Store(store.data_dir, "S").load()


def test_a_newer_schema_version_is_refused_not_misread(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    add_task(store, "x")
    with open(store.events_path, "ab") as f:
        f.write(b'{"v": 2, "ts": "t", "type": "task.added", "iteration": 0, "data": {}}\n')
    with pytest.raises(StoreError, match=r":2: event schema v2 is newer") as info:
        Store(store.data_dir, "S").load()
    assert info.value.hint == "upgrade iteratr"


@pytest.mark.parametrize("version", [b'"1"', b"null", b"1.0", b"true"])
def test_a_schema_version_that_is_not_a_whole_number_is_an_invalid_line(tmp_path: Path, version: bytes) -> None:
    # A hand-edited "v": "1" used to reach the `>` comparison and end in a TypeError traceback.
    store = store_at(tmp_path)
    add_task(store, "x")
    with open(store.events_path, "ab") as f:
        f.write(b'{"v": ' + version + b', "ts": "t", "type": "task.added", "iteration": 0, "data": {}}\n')
    with pytest.raises(StoreError, match=r":2: invalid event line \(schema version .* is not a whole number\)"):
        Store(store.data_dir, "S").load()


def test_blank_lines_are_ignored(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    add_task(store, "x")
    with open(store.events_path, "ab") as f:
        f.write(b"\n   \n")
    add_task(Store(store.data_dir, "S"), "y")
    assert list(Store(store.data_dir, "S").load().tasks) == ["TAS-1", "TAS-2"]


# -- the snapshot cache ---------------------------------------------------------------------------


def busy_store(tmp_path: Path, tasks: int = 40) -> Store:
    """A session with enough events that the last 4 KiB of the log are only a small part of it."""
    store = store_at(tmp_path)
    for n in range(1, tasks + 1):
        add_task(store, f"task number {n} " + "x" * 100, priority=n % 5)
        if n % 3 == 0:
            store.append(make_event("task.status", {"id": f"TAS-{n}", "status": "completed"}, 1))
    store.transact(lambda s: [make_event("note.added", {"id": s.next_note_id, "content": "a note", "type": "tip"}, 1)])
    return store


def snapshot_path(store: Store) -> Path:
    return store.dir / "cache" / "state.marshal"


def test_the_snapshot_is_written_and_used(tmp_path: Path) -> None:
    store = busy_store(tmp_path)
    assert snapshot_path(store).exists()
    assert loaded(store) == full_replay(store)


def test_cache_plus_appended_lines_equals_a_full_replay(tmp_path: Path) -> None:
    store = busy_store(tmp_path)
    loaded(store)  # cache covers the whole log now
    snap = snapshot_path(store).read_bytes()
    for n in range(3):  # appends by writers whose snapshot is then thrown away, e.g. by another checkout
        add_task(Store(store.data_dir, "S"), f"later {n}", priority=0)
    snapshot_path(store).write_bytes(snap)
    assert loaded(store) == full_replay(store)
    assert loaded(store)["tasks"][-1]["content"] == "later 2"


@pytest.mark.parametrize("how", ["rename", "in_place"])
def test_a_log_rewritten_with_the_same_length_is_detected(tmp_path: Path, how: str) -> None:
    """A `git checkout` of another version of the log, byte for byte as long as the cached one."""
    store = busy_store(tmp_path)
    loaded(store)
    raw = store.events_path.read_bytes()
    # Another history of the same length: one status early in the log differs (completed <-> cancelled).
    first = raw.index(b'"status": "completed"')
    assert first < len(raw) - 8192  # far before the tail the cache keeps
    other = raw[:first] + b'"status": "cancelled"' + raw[first + len(b'"status": "completed"') :]
    assert len(other) == len(raw) and other != raw
    if how == "rename":  # what git does
        tmp = store.events_path.with_name("events.tmp")
        tmp.write_bytes(other)
        os.replace(tmp, store.events_path)
    else:
        with open(store.events_path, "r+b") as f:
            f.write(other)
    assert loaded(store) == full_replay(store)
    assert "cancelled" in [t["status"] for t in loaded(store)["tasks"]]


def test_a_log_checked_out_at_an_older_version_is_detected(tmp_path: Path) -> None:
    store = busy_store(tmp_path)
    older = store.events_path.read_bytes()
    add_task(store, "added after the older version")
    add_task(store, "and another")
    loaded(store)
    store.events_path.write_bytes(older)  # shorter than the cache's offset
    assert loaded(store) == full_replay(store)
    assert "and another" not in json.dumps(loaded(store))
    # ... and then a different history grows past the old offset.
    add_task(Store(store.data_dir, "S"), "a different future " + "y" * 300)
    assert loaded(store) == full_replay(store)


def test_a_deleted_cache_is_rebuilt(tmp_path: Path) -> None:
    store = busy_store(tmp_path)
    expected = full_replay(store)
    snapshot_path(store).unlink()
    assert loaded(store) == expected
    assert snapshot_path(store).exists()
    shutil.rmtree(store.dir / "cache")  # the snapshot and its archive of the history
    assert loaded(store) == expected


@pytest.mark.parametrize(
    "corrupt",
    [b"", b"garbage", b"\x00" * 100, "truncated", "other-version"],
)
def test_a_corrupt_cache_is_ignored(tmp_path: Path, corrupt: bytes | str) -> None:
    import marshal

    store = busy_store(tmp_path)
    expected = full_replay(store)
    snap = snapshot_path(store).read_bytes()
    if corrupt == "truncated":
        data = snap[: len(snap) // 2]
    elif corrupt == "other-version":
        value = marshal.loads(snap)
        value["version"] = -1
        data = marshal.dumps(value)
    else:
        assert isinstance(corrupt, bytes)
        data = corrupt
    snapshot_path(store).write_bytes(data)
    assert loaded(store) == expected
    add_task(Store(store.data_dir, "S"), "written over a corrupt cache")
    assert loaded(store) == full_replay(store)


def test_a_snapshot_of_another_session_is_not_trusted(tmp_path: Path) -> None:
    one = busy_store(tmp_path)
    two = store_at(tmp_path, "T")
    add_task(two, "only task of T")
    snapshot_path(two).write_bytes(snapshot_path(one).read_bytes())
    assert loaded(two) == full_replay(two)


def _full_disk_at(limit: int) -> Any:
    """preexec_fn: writes past ``limit`` bytes fail (EFBIG, as on a full disk) instead of killing the process."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_loses_no_event_and_leaves_the_log_whole(tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import ITERATR_CMD, run_cli

    run_cli("tool", "task-add", "--content", "first", "--name", "S", cwd=tmp_path)
    log = tmp_path / ".iteratr" / "S" / "events.jsonl"
    before = log.read_bytes()
    # Room for part of the next line but not all of it: the write is cut short half-way.
    proc = subprocess.run(
        [*ITERATR_CMD, "tool", "task-add", "--content", "x" * 300, "--name", "S"],
        cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        preexec_fn=_full_disk_at(len(before) + 60), env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith(f"iteratr: error: cannot append to {log}") and proc.stderr.count("\n") == 1
    assert log.read_bytes() == before  # the partial line was taken back: no torn line, nothing half-written
    # With space again, the store carries on: the refused task never got an id.
    added = run_cli("tool", "task-add", "--content", "second", "--name", "S", "--json", cwd=tmp_path)
    assert json.loads(added.stdout)["id"] == "TAS-2"


def test_fresh_is_the_held_state_until_someone_else_writes(tmp_path: Path) -> None:
    loop = store_at(tmp_path)
    held = add_task(loop, "one")
    assert loop.fresh(held) is held  # nothing written since its own append: no read
    assert loop.fresh(State()) is not held  # not what its last append returned: read
    other = store_at(tmp_path)  # another writer (an `iteratr tool` call)
    add_task(other, "two")
    seen = loop.fresh(held)
    assert seen is not held and seen.to_dict() == full_replay(loop)
    held = add_task(loop, "three")
    with loop.events_path.open("ab") as f:  # a line appended by hand, without the store
        f.write(json.dumps(make_event("note.added", {"id": "NOT-1", "content": "x", "type": "learning"}, 0)).encode())
        f.write(b"\n")
    assert loop.fresh(held).to_dict() == full_replay(loop)
