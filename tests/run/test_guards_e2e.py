"""The guard rails through ``iteratr build`` and the real scripted ACP agent subprocess (``iteratr.agent.scripted``):
a spinning agent, a forged completion and a disciplined agent that never calls ``session-complete``.

The in-process tests (test_guards_loop.py) cover every misbehaviour and budget; these hold the contract end to
end: exit statuses, the ``stopped:`` line, the event log and ``iteratr status``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from iteratr.errors import EXIT_NEEDS_PERSON, EXIT_OK
from tests.conftest import FAST_ENV, fake_agent, git, read_events, run_cli

FOUR_TASKS = "# Four\n\n- [ ] One\n- [ ] Two\n- [ ] Three\n- [ ] Four\n"


def events(repo: Path, type_: str) -> list[dict[str, Any]]:
    return [cast(dict[str, Any], e["data"]) for e in read_events(repo) if e["type"] == type_]


def started(repo: Path) -> list[int]:
    return [int(d["n"]) for d in events(repo, "iteration.started")]


def test_a_disciplined_agent_finishes_a_four_task_spec_in_exactly_five_iterations(repo: Path) -> None:
    (repo / "specs").mkdir()
    (repo / "specs" / "SPEC.md").write_text(FOUR_TASKS)
    git(repo, "add", "specs/SPEC.md")
    git(repo, "commit", "-q", "-m", "spec")
    result = run_cli(
        "build", "--headless", "--agent", fake_agent("disciplined"), cwd=repo, env=FAST_ENV, expect=EXIT_OK
    )
    assert started(repo) == [0, 1, 2, 3, 4], result.stdout
    assert "stopped: the session is complete (4 tasks)" in result.stdout
    completed = [e for e in read_events(repo) if e["type"] == "session.completed"]
    assert [e["data"] for e in completed] == [{"by": "iteratr"}]
    assert len(git(repo, "log", "--format=%s", "main..iteratr/SPEC").splitlines()) == 5


def test_a_spinning_agent_stops_with_exit_5(spec_repo: Path) -> None:
    result = run_cli("build", "--headless", "--agent", fake_agent("spin"), cwd=spec_repo, env=FAST_ENV, expect=None)
    assert result.returncode == EXIT_NEEDS_PERSON, result.stdout + result.stderr
    assert started(spec_repo) == [0, 1, 2, 3]
    assert "stopped: needs a person: stuck on TAS-1 (First task), 3 iteration(s) without progress" in result.stdout
    ended = [d.get("progress") for d in events(spec_repo, "iteration.ended")]
    assert ended == [True, False, False, False]


def test_a_forged_completion_is_not_honoured_by_the_loop_or_status(spec_repo: Path, tmp_path: Path) -> None:
    agent = fake_agent("forge", "forge", "disciplined", state_file=tmp_path / "count")
    result = run_cli("build", "--headless", "--agent", agent, "-i", "1", cwd=spec_repo, env=FAST_ENV, expect=3)
    # #1 forged session.completed with every task open: the run did not end as complete, and the line, not written
    # through iteratr tool (iteratr.session.journal), was set aside as tampering.
    assert "the session is complete" not in result.stdout
    assert "a line written into the log by hand, not through iteratr tool" in result.stdout + result.stderr
    assert [e["type"] for e in read_events(spec_repo)].count("session.completed") == 0
    status = json.loads(run_cli("status", "-n", "SPEC", "--json", cwd=spec_repo, env=FAST_ENV).stdout)
    assert status["complete"] is False
    result = run_cli("build", "--headless", "--agent", agent, cwd=spec_repo, env=FAST_ENV, expect=EXIT_OK)
    assert "stopped: the session is complete (3 tasks)" in result.stdout
    status = json.loads(run_cli("status", "-n", "SPEC", "--json", cwd=spec_repo, env=FAST_ENV).stdout)
    assert status["complete"] is True
