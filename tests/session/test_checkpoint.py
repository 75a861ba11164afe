"""The committed checkpoint: a cold read (a fresh clone, a lost cache) that begins from it gives exactly what a full
replay gives, replays only the lines after it, and ignores a checkpoint that does not match the log."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from iteratr.session import checkpoint
from iteratr.session import replay as replay_module
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from iteratr.session.store import Store
from tests.session.test_store_equivalence import Session, cache_dir, check, small_windows


def starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The offsets the store's replays begin at."""
    seen: list[int] = []
    real = replay_module.stream

    def watching(f: Any, state: Any, done: Any, *args: Any, **kwargs: Any) -> int:
        seen.append(done.offset)
        return real(f, state, done, *args, **kwargs)

    monkeypatch.setattr("iteratr.session.segmented_read.stream", watching)  # the store streams through here
    return seen


@pytest.mark.parametrize("seed", range(10))
def test_a_cold_read_from_the_checkpoint_equals_a_full_replay(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_windows(monkeypatch)
    rng = random.Random(seed)
    session = Session(rng)
    store = Store(tmp_path / ".iteratr", "S")
    for step in range(30):
        batch = [session.event() for _ in range(rng.randint(1, 12))]
        Store(store.data_dir, "S").append(*batch)
        if rng.random() < 0.3:
            Store(store.data_dir, "S").write_checkpoint(every=rng.choice([1, 20, 1000]))
        if rng.random() < 0.3:
            shutil.rmtree(cache_dir(store), ignore_errors=True)  # a fresh clone: the checkpoint, then the rest
        if rng.random() < 0.4 or step == 29:
            check(store)  # the state, its history (notes, old iterations, done tasks) and tasks.yaml
    shutil.rmtree(cache_dir(store), ignore_errors=True)
    check(store)


def test_a_cold_read_replays_only_what_follows_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / ".iteratr", "S")
    session = Session(random.Random(3))
    store.append(*[session.event() for _ in range(300)])
    assert store.write_checkpoint(every=1)
    covered = store.events_path.stat().st_size
    store.append(*[session.event() for _ in range(5)])
    shutil.rmtree(cache_dir(store))
    seen = starts(monkeypatch)
    state = Store(store.data_dir, "S").load()
    assert seen == [covered]
    assert state.to_dict() == replay(store.events()).to_dict()
    seen.clear()
    assert Store(store.data_dir, "S").load().to_dict() == state.to_dict()  # the snapshot it saved is read next
    assert seen == [store.events_path.stat().st_size]


def test_the_checkpoint_is_plain_json_lines(tmp_path: Path) -> None:
    store = Store(tmp_path / ".iteratr", "S")
    store.append(make_event("task.added", {"id": "TAS-1", "content": "é", "status": "remaining", "priority": 2}, 0))
    store.write_checkpoint(every=1)
    head, body = store.checkpoint_path.read_text().splitlines()
    assert json.loads(head) == {  # format 2: the cover names its segment (0, at base 0: nothing closed yet)
        "checkpoint": 2,
        "bytes": store.events_path.stat().st_size,
        "lines": 1,
        "crc32": json.loads(head)["crc32"],
        "segment": 0,
        "base": 0,
    }
    assert "é" in body and isinstance(json.loads(body), dict)


@pytest.mark.parametrize(
    "damage",
    ["log rewritten", "log cut", "not json", "bad state", "unknown tag", "other version", "a link", "huge numbers"],
)
def test_a_checkpoint_that_does_not_match_is_ignored_for_a_full_replay(
    tmp_path: Path, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / ".iteratr", "S")
    session = Session(random.Random(5))
    store.append(*[session.event() for _ in range(200)])
    store.write_checkpoint(every=1)
    store.append(*[session.event() for _ in range(10)])
    head, body = store.checkpoint_path.read_bytes().splitlines()
    if damage == "log rewritten":  # same length, one covered byte changed (a merge, a hand edit)
        data = bytearray(store.events_path.read_bytes())
        data[data.index(b"TAS-1")] = ord(b"X")
        store.events_path.write_bytes(bytes(data))
    elif damage == "log cut":
        store.events_path.write_bytes(b"".join(store.events_path.read_bytes().splitlines(keepends=True)[:3]))
    elif damage == "not json":
        store.checkpoint_path.write_bytes(head + b"\n{not json\n")
    elif damage == "bad state":
        store.checkpoint_path.write_bytes(head + b'\n{"t":[1,2,3]}\n')
    elif damage == "unknown tag":
        store.checkpoint_path.write_bytes(head + b'\n{"x":[]}\n')
    elif damage == "other version":
        store.checkpoint_path.write_bytes(head.replace(b'"checkpoint": 2', b'"checkpoint": 99') + b"\n" + body + b"\n")
    elif damage == "a link":
        store.checkpoint_path.unlink()
        (tmp_path / "elsewhere").write_bytes(head + b"\n" + body + b"\n")
        store.checkpoint_path.symlink_to(tmp_path / "elsewhere")
    else:
        store.checkpoint_path.write_bytes(b'{"checkpoint": 1, "bytes": 1e400, "lines": -1, "crc32": 0}\n' + body)
    shutil.rmtree(cache_dir(store))
    seen = starts(monkeypatch)
    state = Store(store.data_dir, "S").load()
    assert seen == [0]  # a full replay
    assert state.to_dict() == replay(store.events()).to_dict()


def test_the_codec_gives_back_exactly_the_same_types() -> None:
    value: Any = ([1, (2, b"\x00\xff"), {"a": (1,), 3: [None, True, 1.5]}], "x", b"", (), {})
    assert checkpoint.decode(json.loads(json.dumps(checkpoint.encode(value)))) == value
    assert type(checkpoint.decode(checkpoint.encode(value))[0][1]) is tuple


def test_an_edited_checkpoint_is_written_afresh_before_a_commit(tmp_path: Path) -> None:
    """In a git repository the store remembers (beside its journal) the checkpoint it wrote: one an agent edited or
    deleted during a turn is replaced before the loop stages it, so the edit is never committed."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    store = Store(tmp_path / ".iteratr", "S")
    store.append(make_event("task.added", {"id": "TAS-1", "content": "t", "status": "remaining", "priority": 2}, 0))
    assert store.write_checkpoint(every=1)
    written = store.checkpoint_path.read_bytes()
    assert not store.write_checkpoint()  # not due, and the file is the one written
    forged = written.replace(b'"remaining"', b'"completed"')
    assert forged != written
    store.checkpoint_path.write_bytes(forged)
    assert store.write_checkpoint()
    assert store.checkpoint_path.read_bytes() == written
    os.unlink(store.checkpoint_path)
    assert store.write_checkpoint()
    assert store.checkpoint_path.read_bytes() == written
    # An edit in place of the same size, its mtime put back (`touch -r`): the ctime, which no process can set back,
    # still tells it from the file the store checked last.
    assert not store.write_checkpoint()
    was = store.checkpoint_path.stat()
    assert len(forged) == len(written)
    store.checkpoint_path.write_bytes(forged)
    os.utime(store.checkpoint_path, ns=(was.st_atime_ns, was.st_mtime_ns))
    assert store.write_checkpoint()
    assert store.checkpoint_path.read_bytes() == written


def test_no_checkpoint_is_written_until_enough_lines_follow_the_last(tmp_path: Path) -> None:
    store = Store(tmp_path / ".iteratr", "S")
    session = Session(random.Random(9))
    store.append(*[session.event() for _ in range(30)])
    assert not store.write_checkpoint(every=50)
    assert not store.checkpoint_path.exists()
    store.append(*[session.event() for _ in range(30)])
    assert store.write_checkpoint(every=50)
    store.append(*[session.event() for _ in range(30)])
    assert not store.write_checkpoint(every=50)
    assert json.loads(store.checkpoint_path.read_text().splitlines()[0])["lines"] == 60


def test_history_after_a_checkpoint_start_is_rebuilt_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first read of history (notes by type, old iterations, done tasks) after a fresh clone replays the log
    once into a whole archive; the snapshot adopts it, so the next process reads history without a replay."""
    store = Store(tmp_path / ".iteratr", "S")
    session = Session(random.Random(11))
    store.append(*[session.event() for _ in range(300)])
    assert store.write_checkpoint(every=1)
    store.append(*[session.event() for _ in range(20)])
    shutil.rmtree(cache_dir(store))
    replays: list[int | None] = []
    real = replay_module.stream

    def counting(f: Any, state: Any, done: Any, path: Any, **kwargs: Any) -> int:
        replays.append(kwargs.get("limit"))
        return real(f, state, done, path, **kwargs)

    monkeypatch.setattr("iteratr.session.recovering.stream", counting)
    want = replay(store.events())
    first = Store(store.data_dir, "S").load()
    assert first.to_dict() == want.to_dict()
    assert len(replays) == 1  # the history, once
    second = Store(store.data_dir, "S").load()
    assert second.to_dict() == want.to_dict()
    assert len(replays) == 1  # the archive is whole now
