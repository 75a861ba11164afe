"""A session written by the release before issue 17 (commit 12cc2ba) still works, as it is.

``old_release/.iteratr`` was written by that release's own code: ``iteratr tool`` calls and the loop's store
appends, with its snapshot (format 4, under ``S/cache/`` as outside git) and its ``tasks.yaml``. The log's format
did not change (one ``events.jsonl``, event schema v1), so nothing is migrated: the old snapshot is not trusted
(another version), the log is replayed once, and writes append to the same file.
"""

from __future__ import annotations

import marshal
import shutil
import subprocess
import sys
from pathlib import Path

from iteratr.session.reducer import replay
from iteratr.session.snapshot import VERSION
from iteratr.session.store import Store

FIXTURE = Path(__file__).parent / "old_release" / ".iteratr"
REPO_ROOT = Path(__file__).resolve().parents[2]


def copy(tmp_path: Path) -> Store:
    shutil.copytree(FIXTURE, tmp_path / ".iteratr")
    return Store(tmp_path / ".iteratr", "S")


def test_the_old_snapshot_is_set_aside_and_the_log_read_as_it_is(tmp_path: Path) -> None:
    store = copy(tmp_path)
    snapshot = store.dir / "cache" / "state.marshal"
    assert marshal.loads(snapshot.read_bytes())["version"] == 4  # as the old release left it
    state = store.load()
    assert state.to_dict() == replay(store.events()).to_dict()
    assert {t.id: t.status for t in state.tasks.values()} == {
        "TAS-1": "completed",
        "TAS-2": "in_progress",
        "TAS-3": "remaining",
        "TAS-4": "cancelled",
    }
    assert [n.content for n in state.notes] == [
        "The parser needs a lookahead of 2",
        "naïve quoting: ‘smart’ quotes break",
    ]
    assert (state.current_iteration, state.unfinished_number(), state.iterations[1].tokens) == (2, 2, 1200)
    assert state.messages["MSG-1"].delivered_to == 2 and "TAS-1" in state.completed_hooked
    assert marshal.loads(snapshot.read_bytes())["version"] == VERSION  # replaced by the current format


def test_the_tools_write_to_the_old_log_in_place(tmp_path: Path) -> None:
    store = copy(tmp_path)
    before = store.events_path.read_bytes()
    env = {"ITERATR_SESSION": "S", "PATH": "/usr/bin:/bin"}
    run = [sys.executable, str(REPO_ROOT / "iteratr.py"), "tool"]
    added = subprocess.run(
        [*run, "note-add", "--type", "tip", "--content", "still works"], cwd=tmp_path, env=env, capture_output=True
    )
    assert added.returncode == 0, added.stderr
    assert b"NOT-3" in added.stdout
    after = store.events_path.read_bytes()
    assert after.startswith(before) and after.count(b"\n") == before.count(b"\n") + 1
    listed = subprocess.run([*run, "task-next"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and "TAS-2" in listed.stdout
    view = store.tasks_path.read_text()
    assert "Test the parser" in view and "still works" in view
