"""``iteratr status --watch`` redraws from what it read while the session's log is unchanged (issue 17).

A redraw costs a stat of the log (or one git process for a session read from its branch), not a read and replay of
the whole log; whether a run holds the session and whether the inbox has text are looked at every time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from iteratr import freshest
from iteratr.commands import status
from iteratr.session.events import make_event
from iteratr.session.store import Store
from tests.conftest import git


def test_a_redraw_reads_the_log_again_only_when_it_changed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    git(repo, "switch", "-q", "-c", "iteratr/S")
    store = Store(repo / ".iteratr", "S")
    store.append(make_event("task.added", {"id": "TAS-1", "content": "a", "status": "remaining", "priority": 2}, 0))
    parsed: list[str] = []
    real = status.find

    def counting(repo: status.Repo, name: str, data_rel: Path) -> freshest.Found:
        parsed.append(name)
        return real(repo, name, data_rel)

    monkeypatch.setattr(status, "find", counting)
    first = status.collect(status.Repo(repo), "S", Path(".iteratr"))
    again = status.collect(status.Repo(repo), "S", Path(".iteratr"))
    assert len(parsed) == 1 and again == first  # the second redraw read nothing
    (store.dir / "inbox.md").write_text("please also do b\n")
    assert status.collect(status.Repo(repo), "S", Path(".iteratr"))["inbox_has_text"] is True
    assert len(parsed) == 1  # the inbox is looked at every time; the log was not read again
    store.append(make_event("task.added", {"id": "TAS-2", "content": "b", "status": "remaining", "priority": 2}, 0))
    after = status.collect(status.Repo(repo), "S", Path(".iteratr"))
    assert len(parsed) == 2 and after["task_total"] == 2
