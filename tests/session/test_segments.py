"""The segmented layout (issue 17): names, listing, close, a close cut short, the segments read as one file, and the
store on a segmented log (every read equals a full replay)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from iteratr.errors import StoreError
from iteratr.session import segments
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from iteratr.session.replay import crc_of
from iteratr.session.store import Store


def test_segment_names_nest_ten_to_a_directory_in_number_order() -> None:
    assert segments.segment_rel(0) == "events/0/0/0/0/0000000.jsonl"
    assert segments.segment_rel(12345) == "events/1/2/3/4/0012345.jsonl"
    rels = [segments.segment_rel(n) for n in range(0, 30000, 7)]
    assert len({r.rsplit("/", 1)[0] for r in rels[:2]}) <= 2
    with pytest.raises(ValueError):
        segments.segment_rel(-1)


def test_close_moves_the_open_segment_and_the_log_reads_the_same(tmp_path: Path) -> None:
    rng = random.Random(4)
    session = tmp_path / "S"
    session.mkdir()
    log = session / segments.OPEN_FILE
    log.write_bytes(b"")
    everything = b""
    assert segments.close(session) is None  # nothing to close
    for n in range(130):
        lines = b"".join(f'{{"n": {n}, "i": {i}}}\n'.encode() for i in range(rng.randint(1, 4)))
        with open(log, "ab") as f:
            f.write(lines)
        everything += lines
        if rng.random() < 0.8:
            assert segments.close(session) == segments.last(session)
            assert log.stat().st_size == 0
    numbers = segments.closed(session)
    assert numbers == list(range(len(numbers))) and segments.last(session) == numbers[-1]
    with segments.LogView(session) as view:
        assert view.read() == everything
        view.seek(17)
        assert view.read(1000) == everything[17:1017]
        assert view.tell() == 1017
        assert crc_of(view, len(everything)) == crc_of(_BytesFile(everything), len(everything))
        assert view.seek(0, os.SEEK_END) == len(everything)


def test_a_close_cut_short_by_a_crash_is_read_once_and_finished(tmp_path: Path) -> None:
    session = tmp_path / "S"
    session.mkdir()
    log = session / segments.OPEN_FILE
    log.write_bytes(b'{"a": 1}\n')
    segments.close(session)
    log.write_bytes(b'{"b": 2}\n')
    target = session / segments.segment_rel(1)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(log, target)  # the crash: linked, not yet swapped
    assert segments.open_is_closed(session)
    with segments.LogView(session) as view:
        assert view.read() == b'{"a": 1}\n{"b": 2}\n'  # not twice
    assert segments.finish_close(session)
    assert log.read_bytes() == b"" and target.read_bytes() == b'{"b": 2}\n'
    assert not segments.finish_close(session)


class _BytesFile:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def seek(self, pos: int) -> int:
        self.pos = pos
        return pos

    def read(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk


# -- the store on a segmented log ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_the_store_on_a_segmented_log_equals_a_full_replay(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends through the store and behind its back, closes at random (as the recorder's), lost caches (cold reads
    through the checkpoint), touches, a close cut short: every read equals a full replay of the whole log."""
    from tests.session.test_store_equivalence import Session, cache_dir, check, small_windows

    small_windows(monkeypatch)
    rng = random.Random(seed)
    session = Session(rng)
    store = Store(tmp_path / ".iteratr", "S")
    everything = b""
    for step in range(40):
        batch = [session.event() for _ in range(rng.randint(1, 12))]
        lines = b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in batch)
        if rng.random() < 0.7:
            Store(store.data_dir, "S").append(*batch)
        else:
            store.create()
            with open(store.events_path, "ab") as f:
                f.write(lines)
        everything += lines
        roll = rng.random()
        if roll < 0.4:
            with store.locked():
                store.close_segment(0)
        elif roll < 0.45:  # a close cut short: linked, not swapped
            n = segments.count(store.dir)
            target = store.dir / segments.segment_rel(n)
            target.parent.mkdir(parents=True, exist_ok=True)
            if store.events_path.stat().st_size:
                os.link(store.events_path, target)
        if rng.random() < 0.2:
            store.write_checkpoint(every=1)
        trouble = rng.random()
        if trouble < 0.15:
            shutil.rmtree(cache_dir(store), ignore_errors=True)  # a fresh clone: checkpoint, then the lines after
        elif trouble < 0.25:
            os.utime(store.events_path, ns=(step, step))
        if rng.random() < 0.5 or step == 39:
            check(store)
            with store.view() as view:
                assert view.read() == everything
    assert segments.count(store.dir) > 3


def test_a_writer_that_waited_on_the_lock_during_a_close_appends_to_the_new_events_jsonl(tmp_path: Path) -> None:
    import threading

    store = Store(tmp_path / ".iteratr", "S")
    store.append(make_event("note.added", {"id": "NOT-1", "content": "a", "type": "tip"}, 0))
    started = threading.Event()

    def write() -> None:
        started.set()
        Store(store.data_dir, "S").append(make_event("note.added", {"id": "NOT-2", "content": "b", "type": "tip"}, 0))

    writer = threading.Thread(target=write)
    with store.locked():
        writer.start()
        started.wait()
        # the writer now blocks on the lock of the old events.jsonl (or has not opened it yet); the close swaps it
        for _ in range(50):
            if _lock_waiters(store.events_path):
                break
            threading.Event().wait(0.01)
        assert store.close_segment(0) is not None
    writer.join(10)
    assert b"NOT-2" in store.events_path.read_bytes()  # not in the closed segment, where it would be lost to git
    assert b"NOT-2" not in (store.dir / segments.segment_rel(0)).read_bytes()
    assert [e["data"]["id"] for e in store.events()] == ["NOT-1", "NOT-2"]


def _lock_waiters(path: Path) -> bool:
    """Whether some process waits for a lock on ``path`` (/proc/locks marks waiters with ``->``)."""
    ino = os.stat(path).st_ino
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return True
    return any("->" in line and f":{ino} " in line for line in text.splitlines())


def test_an_old_checkpoint_format_1_is_read_over_its_session_s_first_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / ".iteratr", "S")
    for i in range(30):
        store.append(make_event("task.added", {"id": f"TAS-{i + 1}", "content": "t", "status": "remaining"}, 0))
    store.write_checkpoint(every=1)
    head, body = store.checkpoint_path.read_bytes().split(b"\n", 1)
    found = json.loads(head)
    old = {"checkpoint": 1, "bytes": found["bytes"], "lines": found["lines"], "crc32": found["crc32"]}
    store.checkpoint_path.write_bytes(json.dumps(old).encode() + b"\n" + body)  # as the last release wrote it
    with store.locked():
        assert store.close_segment(0) is not None  # the old events.jsonl becomes segment 0
    store.append(make_event("task.status", {"id": "TAS-1", "status": "completed"}, 0))
    shutil.rmtree(store.dir / "cache", ignore_errors=True)
    from iteratr.session import replay as replay_module

    seen: list[int] = []
    real = replay_module.crc_of

    def counting(f: Any, length: int) -> int | None:
        seen.append(length)
        return real(f, length)

    monkeypatch.setattr("iteratr.session.store.crc_of", counting)
    state = Store(store.data_dir, "S").load()
    assert seen == [found["bytes"]]  # the checkpoint was believed: only segment 0's covered bytes were read
    assert state.to_dict() == replay(store.events()).to_dict()


def test_the_tool_s_branch_fallback_and_status_read_every_segment(tmp_path: Path) -> None:
    from iteratr.commands import status_spans
    from iteratr.session import tree_log
    from tests.conftest import git

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    store = Store(repo / ".iteratr", "S")
    for i in range(6):
        store.append(make_event("iteration.started", {"n": i, "kind": "main"}, i))
        store.append(make_event("iteration.ended", {"n": i, "outcome": "ok", "duration": 1.0}, i))
        with store.locked():
            store.close_segment(0)
    whole = b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in store.events())
    git(repo, "add", "-f", ".iteratr")
    git(repo, "commit", "-q", "-m", "s")
    assert tree_log.read(repo, "HEAD", ".iteratr/S") == whole
    assert status_spans.folded(store.events_path, None).its.summary()["ended"] == 6


@pytest.mark.parametrize("how", ["load", "iter_events"])
def test_a_bad_line_in_a_closed_segment_is_named_by_its_file_and_its_line_there(tmp_path: Path, how: str) -> None:
    store = Store(tmp_path / ".iteratr", "S")
    for n in range(3):  # three segments of two lines each, then events.jsonl
        store.append(make_event("note.added", {"id": f"NOT-{2 * n + 1}", "content": "a", "type": "learning"}, 0))
        store.append(make_event("note.added", {"id": f"NOT-{2 * n + 2}", "content": "b", "type": "learning"}, 0))
        with store.locked():
            store.close_segment()
    segment = store.dir / segments.segment_rel(1)
    first, _ = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(first + b"{not json\n")  # the second line of the second segment: line 4 of the whole log
    shutil.rmtree(store.dir / "cache", ignore_errors=True)
    for cache in (tmp_path / ".iteratr").rglob("state.marshal"):
        cache.unlink()
    with pytest.raises(StoreError) as caught:
        if how == "load":
            Store(store.data_dir, "S").load()
        else:
            list(Store(store.data_dir, "S").iter_events())
    assert f"{segment}:2: invalid event line" in str(caught.value)


def test_only_the_names_iteratr_gives_are_segments(tmp_path: Path) -> None:
    """A file planted as ``012.jsonl``, a real segment's name in another directory, or a directory ``01`` is never
    read as a segment: each would give a reader a number twice."""
    session = tmp_path / "S"
    session.mkdir()
    (session / segments.OPEN_FILE).write_bytes(b"")
    for n in range(3):
        (session / segments.OPEN_FILE).write_bytes(f'{{"n": {n}}}\n'.encode())
        segments.close(session)
    leaf = (session / segments.segment_rel(0)).parent
    (leaf / "00.jsonl").write_text('{"planted": 1}\n')
    (leaf / "012.jsonl").write_text('{"planted": 2}\n')
    elsewhere = session / "events" / "0" / "0" / "1" / "5"
    elsewhere.mkdir(parents=True)
    (elsewhere / "0000002.jsonl").write_text('{"planted": 3}\n')  # segment 2's name, not its directory
    (session / "events" / "0" / "00").mkdir()
    (session / "events" / "0" / "00" / "0000009.jsonl").write_text('{"planted": 4}\n')
    (session / "events" / "9" / "9").mkdir(parents=True)  # a higher directory holding no segment
    assert segments.closed(session) == [0, 1, 2]
    assert segments.count(session) == 3
    with segments.LogView(session) as view:
        assert b"planted" not in view.read()


def test_links_files_and_directories_in_the_wrong_place_are_no_segments(tmp_path: Path) -> None:
    """A file where a segment directory goes, a directory named like a segment file, and links (twenty of them to
    the top, which made the search of the last segment exponential) are passed over, quickly."""
    session = tmp_path / "S"
    session.mkdir()
    for n in range(3):
        (session / segments.OPEN_FILE).write_bytes(f'{{"n": {n}}}\n'.encode())
        segments.close(session)
    top = session / "events"
    (top / "9").write_text("a file where a directory goes\n")
    (session / segments.segment_rel(3)).mkdir()  # a directory named like the next segment file
    for k in range(10, 30):
        (top / str(k)).symlink_to(".")
    leaf = (session / segments.segment_rel(0)).parent
    (leaf / "0000004.jsonl").symlink_to(leaf / "0000000.jsonl")
    assert segments.count(session) == 3
    assert segments.closed(session) == [0, 1, 2]
    with segments.LogView(session) as view:
        assert view.read().count(b"\n") == 3
