"""fsutil.atomic_write: all or nothing, even when the disk fills up half-way, and its temp files never reach git."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from iteratr import fsutil, session_branch
from iteratr.gitrepo import GitRepo
from iteratr.session.store import Store


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(fsutil.TEMP_SUFFIX))


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old")
    fsutil.atomic_write(target, "new ü", durable=durable)
    assert target.read_text(encoding="utf-8") == "new ü"
    fsutil.atomic_write(target, b"\x00bytes")
    assert target.read_bytes() == b"\x00bytes"
    assert _leftovers(tmp_path) == []


def test_a_full_disk_half_way_keeps_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old content")
    real_write = os.write
    calls = 0

    def half_then_full(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])  # a short write, as a filling disk gives
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError) as info:
        fsutil.atomic_write(target, "x" * 10_000)
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old content"
    assert _leftovers(tmp_path) == []


def test_a_crash_before_the_rename_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.txt"
    target.write_text("old content")

    def crash(fd: int) -> None:
        raise KeyboardInterrupt  # anything at all between the write and the rename

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        fsutil.atomic_write(target, "new content")
    assert target.read_text() == "old content"
    assert _leftovers(tmp_path) == []


def test_atomic_writer_writes_in_pieces_and_removes_the_temp_on_error(tmp_path: Path) -> None:
    target = tmp_path / "big.md"
    with fsutil.atomic_writer(target) as fd:
        os.write(fd, b"one ")
        os.write(fd, b"two")
    assert target.read_bytes() == b"one two"
    with pytest.raises(RuntimeError), fsutil.atomic_writer(target) as fd:
        os.write(fd, b"half")
        raise RuntimeError("stop")
    assert target.read_bytes() == b"one two"
    assert _leftovers(tmp_path) == []


def _ignored(repo: Path, path: Path) -> bool:
    rel = path.relative_to(repo).as_posix()
    return subprocess.run(["git", "check-ignore", "-q", "--no-index", rel], cwd=repo).returncode == 0


def test_temp_names_are_ignored_by_the_data_dirs_gitignore_and_the_exclude_block(repo: Path) -> None:
    data = repo / ".iteratr"
    Store(data, "S").create()  # writes <data>/.gitignore
    temps = [
        fsutil.temp_path(data / "S" / "tasks.yaml"),
        fsutil.temp_path(data / "S" / "cache" / "state.marshal"),
        fsutil.temp_path(data / "S" / "rejected" / "x.md"),
    ]
    for temp in temps:
        temp.parent.mkdir(parents=True, exist_ok=True)
        temp.write_text("left by a crash")
        assert _ignored(repo, temp), temp
    # On another branch the data dir's .gitignore may be absent: the info/exclude block covers them too.
    (data / ".gitignore").unlink()
    assert not _ignored(repo, temps[0])
    session_branch.exclude_runtime_files(GitRepo.open(repo), Path(".iteratr"))
    assert all(_ignored(repo, temp) for temp in temps)
    assert not _ignored(repo, data / "S" / "tasks.yaml")  # the real files are still committed
