"""Issue 12 through real processes: the scripted agent's misbehaving modes (``iteratr.agent.misbehave``) against
the real CLI, and the faults only a whole process shows (floods, a closed stdout, kill -9 on a detached HEAD).

Each run checks the invariants of ``assert_whole``: no committed event lost, iteration numbers contiguous,
every iteratr commit reachable from ``iteratr/S``, and the user's untracked file untouched and never committed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from tests.conftest import FAST_ENV, ITERATR_CMD, fake_agent, git, read_events, wait_for
from tests.run.helpers import Background, build, started

USER_FILE = "my-notes.txt"
USER_TEXT = "the user's own notes, never committed\n"


@pytest.fixture
def user_repo(spec_repo: Path) -> Path:
    (spec_repo / USER_FILE).write_text(USER_TEXT)
    return spec_repo


def iteratr_commits(repo: Path, output: str) -> list[str]:
    return re.findall(r"^    commit ([0-9a-f]{7,}): ", output, re.MULTILINE)


def assert_whole(repo: Path, output: str, session: str = "SPEC") -> None:
    log = (repo / ".iteratr" / session / "events.jsonl").read_bytes()
    commits = iteratr_commits(repo, output)
    assert commits, output
    for sha in commits:
        assert (
            subprocess.run(["git", "merge-base", "--is-ancestor", sha, f"iteratr/{session}"], cwd=repo).returncode == 0
        )
        committed = subprocess.run(
            ["git", "show", f"{sha}:.iteratr/{session}/events.jsonl"], cwd=repo, capture_output=True
        ).stdout
        assert log.startswith(committed), f"commit {sha} holds events the log lost\n{output}"
    numbers = started(repo, session)
    assert numbers == list(range(len(numbers))), f"iteration numbers not contiguous: {numbers}"
    assert (repo / USER_FILE).read_text() == USER_TEXT
    assert not git(repo, "log", "--all", "--format=%H", "--", USER_FILE)


def peak_rss_of_build(cwd: Path, *args: str, out: Path) -> tuple[int, int]:
    """Run ``iteratr build`` and watch its own VmHWM (the agent is another process): (exit status, peak kB)."""
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [*ITERATR_CMD, "build", "--headless", *args],
            cwd=cwd,
            env={**os.environ, **FAST_ENV},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        peak = 0
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                found = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), re.MULTILINE)
            except OSError:
                found = None
            if found:
                peak = max(peak, int(found.group(1)))
            time.sleep(0.01)
    return proc.wait(), peak


# -- flood -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["flood", "flood-line", "flood-message"])
def test_a_50_mb_flood_keeps_iteratr_small_and_the_output_short(user_repo: Path, tmp_path: Path, mode: str) -> None:
    agent = fake_agent("follow", mode, "follow", state_file=tmp_path / "state")
    code, peak_kb = peak_rss_of_build(user_repo, "-i", "1", "--agent", agent, out=tmp_path / "out")
    output = (tmp_path / "out").read_text()
    assert code == 3, output
    assert 0 < peak_kb < 300 * 1024, f"iteratr's peak RSS was {peak_kb} kB"
    assert len(output) < 40_000, f"{len(output)} characters printed"
    sdir = user_repo / ".iteratr" / "SPEC"
    logs = sorted(sdir.glob("agent.log*"))
    assert sum(p.stat().st_size for p in logs) < 4 * 5 * 1024 * 1024 + 1024 * 1024  # rotated: 5 MiB × (3 + 1)
    if mode == "flood":
        assert re.search(r"… \d{6} lines omitted; full text in agent\.log", output), output[-3000:]
        assert [p.name for p in logs] == ["agent.log", "agent.log.1", "agent.log.2", "agent.log.3"]
        assert "the end of the flood" in logs[0].read_text()
    elif mode == "flood-line":
        assert re.search(r"w … \(\d+ more characters\)", output)
    else:
        assert "over the limit of 16777216 bytes; it was dropped unread" in output
        assert 1 in {
            cast(dict[str, Any], e["data"])["n"] for e in read_events(user_repo) if e["type"] == "iteration.ended"
        }
    assert not git(user_repo, "ls-files", "--", ".iteratr/SPEC/agent.log*")
    assert_whole(user_repo, output)


# -- a closed stdout ---------------------------------------------------------------------------------------


def test_a_closed_stdout_lets_the_run_go_on_and_says_so_on_stderr(user_repo: Path, tmp_path: Path) -> None:
    """``iteratr build | head -3``: the reader goes away early; the iterations still end and are committed."""
    log_file = tmp_path / "run.log"
    proc = subprocess.Popen(
        [*ITERATR_CMD, "build", "--headless", "-i", "2", "--log-file", str(log_file), "--agent", fake_agent("follow")],
        cwd=user_repo,
        env={**os.environ, **FAST_ENV},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    head = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()  # as `head -3` exits
    stderr = proc.stderr.read().decode()
    assert proc.wait(60) == 3, stderr
    assert head[0] == "starting the agent…\n".encode()  # the first line: before the agent answers
    assert "standard output was closed (its reader went away); the run goes on, without printing" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert "standard output was closed" in log_file.read_text()
    subjects = git(user_repo, "log", "--format=%s", "main..iteratr/SPEC").splitlines()
    assert subjects == [
        "iteratr(SPEC): #2 Completed TAS-2: Second task",
        "iteratr(SPEC): #1 Completed TAS-1: First task",
        "iteratr(SPEC): #0 planning: 3 tasks",
    ]
    assert git(user_repo, "status", "--porcelain", "--untracked-files=no") == ""
    ends = [e for e in read_events(user_repo) if e["type"] == "iteration.ended"]
    assert len(ends) == 3


# -- a detached HEAD, then kill -9 -------------------------------------------------------------------------


def kill_agents_of(marker: str) -> None:
    """SIGKILL the scripted agents whose command line holds ``marker`` (their own --state-file): only ours."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and "iteratr.agent.scripted" in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


def test_a_run_killed_on_the_agents_detached_head_is_recovered_onto_the_branch_by_the_next_build(
    user_repo: Path, tmp_path: Path, group_build: Callable[..., Background]
) -> None:
    state = tmp_path / "state"
    run = group_build(user_repo, "--agent", fake_agent("follow", "detach-hang", "follow", state_file=state))
    log = user_repo / ".iteratr" / "SPEC" / "agent.log"
    wait_for(lambda: log.exists() and "scripted agent: detached" in log.read_text(), "the agent to detach HEAD")
    run.proc.kill()
    assert run.wait() == -signal.SIGKILL
    kill_agents_of(str(state))
    assert git(user_repo, "branch", "--show-current") == ""  # still detached

    out = build(user_repo, "--agent", fake_agent("follow", state_file=tmp_path / "state2"), expect=0)
    assert "HEAD was left detached at" in out and "back on iteratr/SPEC" in out, out
    assert "#1 was left unfinished by an earlier run: recording it as interrupted" in out
    assert git(user_repo, "branch", "--show-current") == "iteratr/SPEC"
    assert "the agent's commit on a detached HEAD" in git(user_repo, "log", "--format=%s", "iteratr/SPEC")
    assert started(user_repo) == [0, 1, 2, 3]  # #1 had done TAS-1 before it detached: its events are kept
    assert_whole(user_repo, out)


# -- the first table of issue 12, through the real scripted agent ------------------------------------------

ROWS = {
    "truncate-log": "the session log was tampered with",
    "rm-session": "the session log was tampered with",
    "reset-hard": "iteratr/SPEC was rewound",
    "amend": "iteratr/SPEC was rewritten",
    "elsewhere": "the agent left the checkout on elsewhere; switching back to iteratr/SPEC",
    "big-file": "big.bin (100.0 MB) is over max_file_size (50.0 MB): not committed",
    "escape": "stopped 2 process(es) the agent left running past its turn",
    "forge-line": "a line written into the log by hand, not through iteratr tool",
}


def sleeps_tagged(tag: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"sleep\0") and f".{tag}".encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("mode", list(ROWS))
def test_each_misbehaviour_is_caught_and_the_history_stays_whole(user_repo: Path, tmp_path: Path, mode: str) -> None:
    tag = f"{os.getpid()}{abs(hash(str(tmp_path))) % 100000}"
    agent = fake_agent("follow", "follow", mode, "follow", state_file=tmp_path / "state")
    out = build(user_repo, "-i", "3", "--agent", agent, expect=None, env={"FAKE_AGENT_SLEEP_TAG": tag})
    assert ROWS[mode] in out, out
    assert git(user_repo, "branch", "--show-current") == "iteratr/SPEC"
    if mode == "escape":
        assert not sleeps_tagged(tag)
    if mode == "big-file":
        assert not git(user_repo, "log", "--all", "--format=%H", "--", "big.bin")
    if mode == "forge-line":  # the forged completions are set aside; #3 completes only what it works on
        aside = (user_repo / ".iteratr" / "SPEC" / "events.set-aside.log").read_text().splitlines()
        # only the echoed lines: every line the agent's `iteratr tool` calls wrote is journaled and kept
        assert aside and all('"task.status"' in ln and '"completed"' in ln and '"iteration": 0' in ln for ln in aside)
        assert any(e["type"] == "tamper" and e["iteration"] == 2 for e in read_events(user_repo, "SPEC"))
    if mode == "amend":  # a rewind keeps nothing aside: the rewound commits are the branch again
        assert git(user_repo, "for-each-ref", "--format=%(refname)", "refs/iteratr/SPEC/rewritten/")
    assert_whole(user_repo, out)


# -- secrets -----------------------------------------------------------------------------------------------


def test_a_secret_the_agent_prints_is_masked_on_screen_and_in_the_log_file(user_repo: Path, tmp_path: Path) -> None:
    secret = "sk-test-0123456789abcdef"
    log_file = tmp_path / "run.log"
    agent = fake_agent("follow", "env", state_file=tmp_path / "state")
    out = build(
        user_repo, "-i", "1", "--extra-instructions", "MY_API_KEY", "--log-file", str(log_file), "--agent", agent,
        expect=None, env={"MY_API_KEY": secret},
    )  # fmt: skip
    assert log_file.exists(), out
    logged = log_file.read_text()
    assert "MY_API_KEY=***" in logged, logged[-2000:]
    assert secret not in logged and secret not in out
