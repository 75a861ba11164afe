"""The loop commits the session's checkpoint, and only one iteratr wrote: an edited checkpoint is written afresh
before the commit, and a fresh clone's cold read from the committed one equals a full replay."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from iteratr.session.reducer import replay
from iteratr.session.store import Store
from tests.conftest import fake_agent
from tests.run.helpers import build


def show(repo: Path, name: str) -> bytes:
    """The session file as iteratr's last commit holds it, byte for byte."""
    where = f"iteratr/SPEC:.iteratr/SPEC/{name}"
    return subprocess.run(["git", "-C", str(repo), "show", where], check=True, capture_output=True).stdout


def test_an_edited_checkpoint_is_written_afresh_and_a_clone_reads_from_it(spec_repo: Path, tmp_path: Path) -> None:
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=None)
    store = Store(spec_repo / ".iteratr", "SPEC")
    assert store.write_checkpoint(every=1)  # as the loop does once 20,000 lines followed the last one
    forged = store.checkpoint_path.read_bytes().replace(b'"remaining"', b'"completed"')
    assert b'"completed"' in forged
    store.checkpoint_path.write_bytes(forged)  # an edit between runs or during a turn
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=None)
    committed = show(spec_repo, "checkpoint.jsonl")
    assert committed and committed != forged
    header = json.loads(committed.splitlines()[0])
    log = show(spec_repo, "events.jsonl")
    assert 0 < header["bytes"] <= len(log)

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", "iteratr/SPEC", str(spec_repo), str(clone)], check=True)
    shutil.rmtree(clone / ".git" / "iteratr", ignore_errors=True)  # nothing cached: git never clones its own dir
    cold = Store(clone / ".iteratr", "SPEC")
    assert cold.load().to_dict() == replay(cold.events()).to_dict()
