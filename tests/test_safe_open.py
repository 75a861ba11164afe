"""Symlink-safe opens under the data dir, against real links: to a file outside, to a directory outside, dangling."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from iteratr import safe_open
from iteratr.errors import EXIT_USAGE
from tests.conftest import REPO_ROOT


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A data dir with one real session file, and a 'secret' outside it."""
    data = tmp_path / "repo" / ".iteratr"
    (data / "S").mkdir(parents=True)
    (data / "S" / "events.jsonl").write_bytes(b"{}\n")
    outside = tmp_path / "home"
    outside.mkdir()
    (outside / "credentials").write_bytes(b"SECRET\n")
    return data, outside


def test_plain_files_read_append_and_write(layout: tuple[Path, Path]) -> None:
    data, _ = layout
    assert safe_open.read_bytes(data, "S/events.jsonl") == b"{}\n"
    with safe_open.open_append(data, "S/events.jsonl") as f:
        f.write(b"[]\n")
    assert safe_open.read_bytes(data, "S/events.jsonl", limit=4) == b"{}\n["
    with safe_open.open_write(data, "T/new/inbox.md") as f:  # missing directories are made
        f.write(b"hi")
    assert (data / "T" / "new" / "inbox.md").read_bytes() == b"hi"
    safe_open.atomic_write(data, ".gitignore", b"*\n")
    assert (data / ".gitignore").read_bytes() == b"*\n"
    assert not [p for p in data.iterdir() if p.name.endswith(".iteratr-tmp")]


def test_new_files_are_private_and_do_not_widen_the_umask(layout: tuple[Path, Path]) -> None:
    data, _ = layout
    with safe_open.open_append(data, "S/run.lock") as f:
        f.write(b"")
    assert stat.S_IMODE((data / "S" / "run.lock").stat().st_mode) == 0o600


def _every_open(data: Path, rel: str) -> list[Callable[[], object]]:
    return [
        lambda: safe_open.read_bytes(data, rel),
        lambda: safe_open.open_append(data, rel).close(),
        lambda: safe_open.open_write(data, rel).close(),
        lambda: safe_open.atomic_write(data, rel, b"x"),
    ]


@pytest.mark.parametrize("kind", ["file outside", "dangling"])
def test_a_symlinked_file_is_refused_naming_it_and_nothing_goes_through(layout: tuple[Path, Path], kind: str) -> None:
    data, outside = layout
    link = data / "S" / "inbox.md"
    link.symlink_to(outside / ("credentials" if kind == "file outside" else "nope"))
    for attempt in _every_open(data, "S/inbox.md"):
        with pytest.raises(safe_open.SymlinkError) as exc:
            attempt()
        assert str(link) in str(exc.value) and "symbolic link" in str(exc.value)
        assert exc.value.exit_code == EXIT_USAGE
    assert link.is_symlink() and (outside / "credentials").read_bytes() == b"SECRET\n"
    assert not (outside / "nope").exists()


def test_a_symlinked_directory_on_the_way_is_refused(layout: tuple[Path, Path]) -> None:
    data, outside = layout
    (data / "S2").symlink_to(outside)  # .iteratr/S2 -> ~ : S2/credentials would be the secret
    for attempt in _every_open(data, "S2/credentials"):
        with pytest.raises(safe_open.SymlinkError, match=rf"{data / 'S2'} is a symbolic link"):
            attempt()
    assert (outside / "credentials").read_bytes() == b"SECRET\n"
    assert sorted(p.name for p in outside.iterdir()) == ["credentials"]


def test_a_symlinked_data_dir_is_refused(layout: tuple[Path, Path], tmp_path: Path) -> None:
    _, outside = layout
    planted = tmp_path / "clone" / ".iteratr"
    planted.parent.mkdir()
    planted.symlink_to(outside)
    with pytest.raises(safe_open.SymlinkError, match=r"\.iteratr is a symbolic link"):
        safe_open.read_bytes(planted, "credentials")


def test_a_link_above_the_data_dir_is_the_users_and_is_followed(layout: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = layout
    (tmp_path / "alias").symlink_to(data.parent)
    assert safe_open.read_bytes(tmp_path / "alias" / ".iteratr", "S/events.jsonl") == b"{}\n"


def test_a_fifo_is_refused_instead_of_blocking(layout: tuple[Path, Path]) -> None:
    data, _ = layout
    os.mkfifo(data / "S" / "inbox.md")
    with pytest.raises(safe_open.SymlinkError, match="not a regular file"):
        safe_open.read_bytes(data, "S/inbox.md")


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "", "S/../../x"])
def test_only_plain_relative_paths_are_accepted(layout: tuple[Path, Path], rel: str) -> None:
    with pytest.raises(ValueError, match="not a plain relative path"):
        safe_open.read_bytes(layout[0], rel)


def test_importing_it_pulls_in_nothing_heavy() -> None:
    code = "import sys, iteratr.safe_open; print(sorted(m for m in ('typing', 'click', 'ruamel') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"
