"""`iteratr tool note-list`: the last 30 notes (of a type) and how many older ones there are, `--all` every one,
streamed from the snapshot's archive (whole, or rebuilt from a committed checkpoint) without holding every note."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from iteratr.session import note_list
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from iteratr.session.state import NOTE_TYPES
from iteratr.session.store import Store, snapshot_path
from tests.conftest import run_cli

S = "S"


def _session(root: Path, count: int = 100) -> list[dict[str, object]]:
    """``count`` notes, types in turn, each appended on its own so that each save moves it into the archive."""
    store = Store(root / ".iteratr", S)
    store.create()
    events = []
    for i in range(count):
        event = make_event(
            "note.added", {"id": f"NOT-{i + 1}", "content": f"note {i + 1}", "type": NOTE_TYPES[i % 4]}, i
        )
        store.append(event)
        events.append(event)
    return events


def _every(events: list[dict[str, object]], note_type: str | None = None) -> list[dict[str, object]]:
    return [n.to_dict() for n in replay(events).notes if note_type is None or n.type == note_type]


def test_the_last_thirty_and_a_count_of_the_rest_then_all_with_all(tmp_path: Path) -> None:
    events = _session(tmp_path)
    every_stuck = _every(events, "stuck")  # 25 of the 100
    every = _every(events)

    def listed(*args: str) -> str:
        return run_cli("tool", "note-list", "--name", S, *args, cwd=tmp_path).stdout

    assert json.loads(listed("--json")) == every[-30:]
    text = listed().splitlines()
    assert text[:-1] == [note_list.note_line(n) for n in every[-30:]]
    assert text[-1] == "(70 older notes not listed: note-list --all lists every one)"
    assert json.loads(listed("--json", "--type", "stuck")) == every_stuck  # 25: all of them, nothing left out
    assert "older" not in listed("--type", "stuck")
    assert json.loads(listed("--all", "--json")) == every
    assert listed("--all", "--type", "tip").splitlines() == [note_list.note_line(n) for n in _every(events, "tip")]


def test_a_type_is_read_from_the_archive_streamed_and_never_held_whole(tmp_path: Path) -> None:
    events = _session(tmp_path, 200)
    state = Store(tmp_path / ".iteratr", S).load()
    shown, total = note_list.last_notes(state, "learning")
    assert (shown, total) == (_every(events, "learning")[-30:], 50)
    assert state._notes is None  # the state never built its list of every note
    assert list(note_list.AllNotes(state, None)) == _every(events)
    assert state._notes is None


def test_after_a_fresh_clone_the_archive_is_rebuilt_from_the_log_and_streamed(tmp_path: Path) -> None:
    events = _session(tmp_path, 120)
    store = Store(tmp_path / ".iteratr", S)
    assert store.write_checkpoint(every=1)
    shutil.rmtree(snapshot_path(store.data_dir, S).parent)  # type: ignore[union-attr]  # as after a fresh clone
    for _ in range(2):  # the first read rebuilds the archive whole, the second streams the rebuilt one
        state = Store(tmp_path / ".iteratr", S).load()
        assert note_list.last_notes(state, "tip") == (_every(events, "tip")[-30:], 30)
        assert list(note_list.AllNotes(state, "stuck")) == _every(events, "stuck")


def test_a_lost_archive_is_read_from_the_log_instead(tmp_path: Path) -> None:
    events = _session(tmp_path, 60)
    store = Store(tmp_path / ".iteratr", S)
    folder = snapshot_path(store.data_dir, S).parent  # type: ignore[union-attr]
    lost = [p for p in folder.iterdir() if p.name.startswith("notes.")]
    assert lost
    for path in lost:  # a cache someone cleaned up: the snapshot still names it
        path.unlink()
    state = Store(tmp_path / ".iteratr", S).load()
    assert list(note_list.AllNotes(state, None)) == _every(events)
    assert note_list.last_notes(state, "decision") == (_every(events, "decision")[-30:], 15)


def test_an_archive_broken_part_way_goes_on_from_the_log_with_no_note_twice(tmp_path: Path) -> None:
    events = _session(tmp_path, 60)
    store = Store(tmp_path / ".iteratr", S)
    folder = snapshot_path(store.data_dir, S).parent  # type: ignore[union-attr]
    [notes] = [p for p in folder.iterdir() if p.name.startswith("notes.")]
    blob = bytearray(notes.read_bytes())
    blob[-12:] = b"\xff" * 12  # the last saved batch unreadable; the ones before it are read first
    notes.write_bytes(bytes(blob))
    state = Store(tmp_path / ".iteratr", S).load()
    assert [n["id"] for n in note_list.AllNotes(state, None)] == [n["id"] for n in _every(events)]
