"""A full disk in ``iteratr tool``: the event is durable but tasks.yaml cannot be rewritten (issue 12)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from iteratr import paths
from tests.conftest import ITERATR_CMD, git, run_cli
from tests.session.test_store import _full_disk_at


def test_a_view_write_that_fails_after_the_event_is_durable_says_so_and_no_temp_file_is_committed(
    tmp_path: Path,
) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    sdir = tmp_path / ".iteratr" / "S"
    sdir.mkdir(parents=True)
    (tmp_path / ".iteratr" / ".gitignore").write_text(paths.DATA_DIR_GITIGNORE)  # as a session's creation left it
    # A fresh session's first event (about 190 bytes) fits; its tasks.yaml (about 230) does not.
    proc = subprocess.run(
        [*ITERATR_CMD, "tool", "task-add", "--content", "first", "--name", "S"],
        cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        preexec_fn=_full_disk_at(200), env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "unexpected" not in proc.stderr
    assert proc.stderr.startswith(f"iteratr: error: recorded in {sdir / 'events.jsonl'}, but {sdir / 'tasks.yaml'}")
    assert "the next write renders it again" in proc.stderr
    assert '"content": "first"' in (sdir / "events.jsonl").read_text()  # the event is there
    assert not list(sdir.glob(".tasks.yaml.*"))  # no half-written temp file left
    # A temp file a crash did leave (the fsutil name) is ignored: a commit of everything never takes it.
    (sdir / f".tasks.yaml.{os.getpid()}.0badcafe.iteratr-tmp").write_text("")
    run_cli("tool", "task-add", "--content", "second", "--name", "S", cwd=tmp_path)
    assert "content: first" in (sdir / "tasks.yaml").read_text()  # rendered again, whole
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "everything")
    committed = git(tmp_path, "ls-files").splitlines()
    assert ".iteratr/S/events.jsonl" in committed and ".iteratr/S/tasks.yaml" in committed
    assert not [f for f in committed if "iteratr-tmp" in f or ".tasks.yaml." in f]
