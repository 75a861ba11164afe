"""Through the CLI: a build starts and checks the agent before it touches git, and a no-op build touches nothing.

A broken agent or a refused model leaves no branch, no switch, no commit and no ``.iteratr``; a complete session
built again from another branch is not switched to. Plus one real run of the scripted agent for what the output
shows (a failing tool call with its exit status, the model, footers with their time) and the log file keeps.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST_ENV, fake_agent, git, run_cli


def untouched(repo: Path, head: str) -> None:
    assert git(repo, "branch", "--show-current") == "main"
    assert git(repo, "branch", "--list", "iteratr/*") == ""
    assert git(repo, "rev-parse", "HEAD") == head
    assert not (repo / ".iteratr").exists()
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("agent", "more", "status", "said"),
    [
        ("cat", [], 1, "did not complete initialize"),  # not an ACP agent: it echoes the request
        (shlex.join([sys.executable, "-c", "raise SystemExit(3)"]), [], 1, "exited with status 3"),
        (fake_agent("follow", models="a,b"), ["-m", "nosuch"], 2, "agent refused model 'nosuch'"),
    ],
    ids=["cat", "exits-at-once", "refused-model"],
)
def test_a_broken_agent_or_a_refused_model_touches_nothing(
    spec_repo: Path, agent: str, more: list[str], status: int, said: str
) -> None:
    head = git(spec_repo, "rev-parse", "HEAD")
    result = run_cli("build", "--headless", "--agent", agent, *more, cwd=spec_repo, env=FAST_ENV, expect=status)
    assert said in result.stderr + result.stdout
    assert result.stdout.startswith("starting the agent…")
    untouched(spec_repo, head)


def test_a_run_shows_tool_exits_the_model_and_times_and_a_no_op_build_does_not_switch(
    spec_repo: Path, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    agent = fake_agent("follow", "failing-tool", "follow", state_file=tmp_path / "state", models="m1,m2")
    out = run_cli("build", "--headless", "--agent", agent, "--log-file", str(log), cwd=spec_repo, env=FAST_ENV).stdout
    lines = out.splitlines()
    assert lines[0] == "starting the agent…" and lines[1].startswith("agent: iteratr-scripted-agent ")
    assert lines[2] == "model: m1 (the agent's default)"  # asked of the agent: its default
    assert "model: m1 (the agent's default) |" in lines[4]  # the header names it too
    at = lines.index("  [tool] sh run-tests.sh -> failed (exit 3)")  # "completed" by the agent, exit 3 in rawOutput
    assert lines[at + 1 : at + 6] == [f"      | test {i} failed" for i in range(4, 9)]
    assert re.search(r"^=== #1 ok \| \d\d:\d\d:\d\d \| ", out, re.MULTILINE), out
    assert re.search(r"^stopped: the session is complete .*by outcome: \d+ ok; wall time", out, re.MULTILINE), out
    logged = log.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ DEBUG iteratr.run: prompt of iteration #1 ", logged, re.M)
    assert all(re.match(r"\d{4}-\d\d-\d\d ", line) for line in logged.splitlines() if "INFO iteratr.run: ===" in line)
    prompt = run_cli("status", "-n", "SPEC", "--prompt", "1", cwd=spec_repo).stdout
    assert prompt.startswith("# prompt of iteration #1 of session SPEC\n") and "First task" in prompt

    git(spec_repo, "switch", "-q", "main")
    head = git(spec_repo, "rev-parse", "HEAD")
    again = run_cli("build", "--headless", "--agent", "false", "--timestamps", cwd=spec_repo, env=FAST_ENV).stdout
    said = r"\d\d:\d\d:\d\d session SPEC is already complete; nothing to do\n\d\d:\d\d:\d\d stopped: .*\n"
    assert re.fullmatch(said, again), again  # --timestamps: every line begins with the time
    assert git(spec_repo, "branch", "--show-current") == "main"  # not switched: nothing was to be done
    assert git(spec_repo, "rev-parse", "HEAD") == head
