"""`iteratr tool`'s read commands find a session that exists only on its branch; its writes say they cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iteratr import toolcli
from iteratr.errors import UsageError
from iteratr.session import ops
from iteratr.session.store import Store
from tests.conftest import git


@pytest.fixture
def on_main(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Session S with a task and a note, committed on iteratr/S only; the checkout back on main, with no files of it."""
    git(repo, "switch", "-q", "-c", "iteratr/S")
    store = Store(repo / ".iteratr", "S")
    ops.task_add(store, [{"content": "write the parser", "priority": 3}])
    ops.note_add(store, "the grammar is LL(1)", "learning")
    git(repo, "add", "-f", ".iteratr/S/events.jsonl")
    git(repo, "commit", "-q", "-m", "session")
    git(repo, "switch", "-q", "main")
    assert not (repo / ".iteratr" / "S" / "events.jsonl").exists()
    monkeypatch.chdir(repo)
    for name in ("ITERATR_SESSION", "ITERATR_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    return repo


def tool(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert toolcli.run(list(argv)) == 0
    return capsys.readouterr().out


def test_reads_come_from_the_branch(on_main: Path, capsys: pytest.CaptureFixture[str]) -> None:
    [task] = json.loads(tool(capsys, "task-list", "--name", "S", "--json"))
    assert (task["id"], task["content"], task["status"]) == ("TAS-1", "write the parser", "remaining")
    assert tool(capsys, "task-next", "--name", "S").startswith("TAS-1")
    assert "the grammar is LL(1)" in tool(capsys, "note-list", "--name", "S")


def test_a_write_says_the_session_is_on_its_branch_and_writes_nothing(on_main: Path) -> None:
    with pytest.raises(UsageError, match=r"session 'S' has no files in .*: it is on its branch \(iteratr/S:"):
        toolcli.run(["task-add", "--name", "S", "--content", "more"])
    assert not (on_main / ".iteratr" / "S" / "events.jsonl").exists()


def test_a_session_on_no_branch_is_still_unknown_to_reads_and_created_by_a_write(
    on_main: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="no session 'T'"):
        toolcli.run(["task-list", "--name", "T"])
    assert tool(capsys, "task-add", "--name", "T", "--content", "first").startswith("added TAS-1")
