"""`iteratr tool`'s reads of a session known only from its branch go through the branch's mirror under the git dir
and the store's snapshot of it, as `status` reads it: the log is never read into memory whole, and a later commit
on the branch is seen by the next read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iteratr import toolcli
from iteratr.session import ops
from iteratr.session.store import Store, snapshot_path
from tests.conftest import git


def _commit_notes(repo: Path, *texts: str) -> None:
    git(repo, "switch", "-q", "iteratr/S")
    store = Store(repo / ".iteratr", "S")
    for text in texts:
        ops.note_add(store, text, "stuck")
    git(repo, "add", "-f", ".iteratr/S/events.jsonl")
    git(repo, "commit", "-q", "-m", "notes")
    git(repo, "switch", "-q", "main")


def test_reads_from_main_go_through_the_mirror_and_its_snapshot(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "branch", "iteratr/S")
    _commit_notes(repo, *(f"stuck on {i}" for i in range(40)))
    monkeypatch.chdir(repo)
    monkeypatch.delenv("ITERATR_SESSION", raising=False)
    monkeypatch.delenv("ITERATR_DATA_DIR", raising=False)

    def notes() -> list[dict[str, object]]:
        assert toolcli.run(["note-list", "--name", "S", "--type", "stuck", "--json"]) == 0
        found: list[dict[str, object]] = json.loads(capsys.readouterr().out)
        return found

    assert [n["content"] for n in notes()] == [f"stuck on {i}" for i in range(10, 40)]
    mirrors = list((repo / ".git" / "iteratr" / "mirror").glob("*/data"))
    assert len(mirrors) == 1 and (mirrors[0] / "S" / "events.jsonl").is_file()
    snapshot = snapshot_path(mirrors[0], "S")
    assert snapshot is not None and snapshot.is_file()  # the next read starts from it
    _commit_notes(repo, "stuck again")
    assert notes()[-1]["content"] == "stuck again"
    assert not (repo / ".iteratr" / "S" / "events.jsonl").exists()  # never a second log of the session here
