"""`iteratr demo`: one of the README's two commands; a whole session with the scripted agent."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import FAST_ENV, run_cli


@pytest.fixture(autouse=True)
def _as_a_new_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README runs the demo with nothing set: no ITERATR_TRUST (which conftest sets for other tests)."""
    monkeypatch.delenv("ITERATR_TRUST", raising=False)


def test_demo_runs_a_whole_session_and_shows_its_history(tmp_path: Path) -> None:
    result = run_cli("demo", cwd=tmp_path, env=FAST_ENV, expect=0, timeout=120)
    out = result.stdout
    # Planning, then the three spec tasks and the one the user's message added, one commit each.
    commits = re.findall(r"^  [0-9a-f]{7,} iteratr\(greeter\): #(\d+) ", out, re.MULTILINE)
    assert commits == ["4", "3", "2", "1", "0"], out
    assert ">>> message from the user (MSG-1): Add a task: Write a CHANGELOG entry" in out
    assert "TAS-4: Write a CHANGELOG entry" in out
    assert "stopped: the session is complete (4 tasks)" in out
    assert "Iteratr-Iteration: 4" in out  # the last commit's message is shown
    # The temporary repository is removed unless --keep is given.
    kept = re.search(r"demo: a temporary repository at (\S+)", out)
    assert kept and not Path(kept.group(1)).exists()


def test_demo_keep_leaves_the_repository_for_a_look(tmp_path: Path) -> None:
    result = run_cli("demo", "--keep", cwd=tmp_path, env=FAST_ENV, expect=0, timeout=120)
    kept = re.search(r"^kept: (\S+)", result.stdout, re.MULTILINE)
    assert kept, result.stdout
    repo = Path(kept.group(1))
    request_cleanup = repo.parent  # the demo made it with mkdtemp; --keep leaves it to us
    assert (repo / ".iteratr" / "greeter" / "events.jsonl").is_file()
    assert sorted(p.name for p in (repo / "work").iterdir()) == [
        "add-a-shout-option-that-upper-cases-the-greeting.txt",
        "document-both-in-the-readme.txt",
        "write-a-changelog-entry.txt",
        "write-greet-name-returning-hello-name.txt",
    ]
    shutil.rmtree(request_cleanup)
