"""`iteratr status`, run for real: from the main checkout while the session runs in a worktree, from
the branch when no checkout holds it, the session list, unknown sessions, and --watch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from iteratr.commands import status_render
from tests.conftest import FAST_ENV, ITERATR_CMD, fake_agent, git, run_cli, wait_for


def status_json(cwd: Path, *args: str) -> dict[str, Any]:
    result = run_cli("status", "--json", *args, cwd=cwd)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def committed_session(repo: Path, name: str = "SPEC") -> None:
    """A session as a build leaves it, made by hand: its log committed on iteratr/NAME, main checked out."""
    from iteratr.session.events import make_event

    events = [
        make_event("iteration.started", {"n": 0, "kind": "planning"}, 0),
        make_event("task.added", {"id": "TAS-1", "content": "one", "status": "remaining", "priority": 2}, 0),
        make_event("iteration.ended", {"n": 0, "outcome": "ok", "duration": 1.5}, 0),
    ]
    log = repo / ".iteratr" / name / "events.jsonl"
    log.parent.mkdir(parents=True)
    log.write_text("".join(json.dumps(e) + "\n" for e in events))
    git(repo, "switch", "-q", "-c", f"iteratr/{name}")
    git(repo, "add", str(log))
    git(repo, "commit", "-q", "-m", f"iteratr({name}): #0")
    git(repo, "switch", "-q", "main")


def test_status_from_the_main_checkout_while_the_session_runs_in_a_worktree(
    spec_repo: Path, background: Any, tmp_path: Path
) -> None:
    agent = fake_agent("follow", "hang", state_file=tmp_path / "agent.state")
    build = background("build", "--headless", "--worktree", "--agent", agent, cwd=spec_repo)
    worktree = spec_repo / ".iteratr" / "worktrees" / "SPEC"
    events = worktree / ".iteratr" / "SPEC" / "events.jsonl"
    wait_for(lambda: events.exists() and b'"n": 1, "kind": "main"' in events.read_bytes(), "iteration #1 to start")
    run_cli("say", "-n", "SPEC", "please also write docs", cwd=spec_repo)
    wait_for(lambda: b"user.message" in events.read_bytes(), "the build to take the message")

    data = status_json(spec_repo, "--name", "SPEC")

    assert git(spec_repo, "branch", "--show-current") == "main"  # the main checkout was never touched
    assert data["session"] == "SPEC"
    assert data["branch"] == "iteratr/SPEC"
    assert data["running"] is True
    assert data["holder"]["pid"] == build.proc.pid
    assert data["complete"] is False
    assert data["source"] == "worktree" and Path(data["work_tree"]) == worktree
    assert data["iterations"] == 1  # #0 ended; #1 is under way
    assert data["tasks"] == {"remaining": 3, "in_progress": 0, "completed": 0, "blocked": 0, "cancelled": 0}
    assert [(it["n"], it["outcome"]) for it in data["recent"]] == [(0, "ok"), (1, None)]
    assert [m["text"] for m in data["pending_messages"]] == ["please also write docs"]
    # #0's commit is on the branch; the live files are fresher and say #1 started.
    assert b'"n": 1' not in git(spec_repo, "show", "iteratr/SPEC:.iteratr/SPEC/events.jsonl").encode()

    text = run_cli("status", "--name", "SPEC", cwd=spec_repo).stdout
    assert "session SPEC | branch iteratr/SPEC | 0/3 tasks done" in text
    assert f"running: yes, pid {build.proc.pid}" in text
    assert f"read from: worktree {worktree} (live files)" in text
    assert "tasks: 3 remaining (3 in all)" in text
    assert "#0 planning ok, started" in text
    assert "#1 running, started" in text
    assert "pending messages: 1" in text and "MSG-1" in text and "please also write docs" in text
    assert "\x1b" not in text

    listing = run_cli("status", cwd=spec_repo).stdout.splitlines()
    assert len(listing) == 1
    assert listing[0].startswith("SPEC | running | 0/3 tasks done | 1 iteration(s) | last activity ")
    assert listing[0].endswith(f"| worktree {worktree}")

    assert build.interrupt() == 130
    after = status_json(spec_repo, "--name", "SPEC")
    assert after["running"] is False and after["holder"] is None
    assert after["recent"][-1]["outcome"] == "interrupted"
    text = run_cli("status", "--name", "SPEC", cwd=spec_repo).stdout
    assert "running: no" in text
    assert "#1 interrupted, started" in text


def test_status_reads_the_branch_when_no_checkout_has_it(spec_repo: Path, tmp_path: Path) -> None:
    # Planning, one turn that reports usage, one failed turn, then the work: the session completes.
    agent = fake_agent("follow", "usage", "empty", "follow", state_file=tmp_path / "agent.state")
    run_cli("build", "--headless", "--agent", agent, "-i", "10", cwd=spec_repo, env=FAST_ENV, expect=0)
    run_cli("tool", "note-add", "--name", "SPEC", "--type", "learning", "--content", "tests run fast", cwd=spec_repo)
    git(spec_repo, "commit", "-q", "-am", "a note by hand")
    git(spec_repo, "switch", "-q", "main")
    assert not (spec_repo / ".iteratr" / "SPEC" / "events.jsonl").exists()
    (spec_repo / "elsewhere").mkdir()

    data = status_json(spec_repo / "elsewhere", "-n", "SPEC")  # from a subdirectory, too

    assert data["source"] == "branch" and data["work_tree"] is None
    assert data["complete"] is True and data["running"] is False
    assert data["tasks"]["completed"] == 3
    assert data["tokens"] == 1200 and data["cost"] == 0.0123 and data["currency"] == "USD"
    assert data["last_failure"]["n"] == 2 and data["last_failure"]["outcome"] == "failed"
    assert "without any output" in data["last_failure"]["error"]
    assert [n["content"] for n in data["notes"]] == ["tests run fast"]
    assert data["iterations"] == data["last_iteration"] + 1 == 6  # #0 to #5, all ended

    text = run_cli("status", "-n", "SPEC", cwd=spec_repo).stdout
    assert "session SPEC | branch iteratr/SPEC | complete" in text
    assert "read from: branch iteratr/SPEC (its last commit)" in text
    assert "tasks: 3 completed (3 in all)" in text
    assert "notes (1):" in text and "NOT-1 [learning]" in text and "tests run fast" in text
    assert "usage: 1,200 tokens, cost 0.0123 USD" in text
    assert "last failure: #2 FAILED, started" in text and "without any output" in text
    assert "#1 ok, started" in text
    assert "pending messages" not in text and "in progress:" not in text

    line = run_cli("status", cwd=spec_repo).stdout.strip()
    assert line.startswith("SPEC | idle | complete | ")


def test_inbox_text_not_yet_taken_is_pending(spec_repo: Path) -> None:
    run_cli("build", "--headless", "--agent", fake_agent("follow"), "-i", "1", cwd=spec_repo, env=FAST_ENV, expect=3)
    inbox = spec_repo / ".iteratr" / "SPEC" / "inbox.md"
    assert json.loads(run_cli("status", "--json", "-n", "SPEC", cwd=spec_repo).stdout)["inbox_has_text"] is False
    inbox.write_text(inbox.read_text() + "a message nobody has taken yet\n")

    data = status_json(spec_repo, "-n", "SPEC")

    assert data["source"] == "checkout" and data["inbox_has_text"] is True and data["pending_messages"] == []
    text = run_cli("status", "-n", "SPEC", cwd=spec_repo).stdout
    assert "pending messages: 0 + text in inbox.md" in text


def test_a_say_to_a_session_checked_out_nowhere_shows_as_inbox_text(spec_repo: Path) -> None:
    run_cli("build", "--headless", "--agent", fake_agent("follow"), cwd=spec_repo, env=FAST_ENV, expect=0)
    git(spec_repo, "switch", "-q", "main")  # the session's branch is checked out nowhere now
    run_cli("say", "-n", "SPEC", "one more thing", cwd=spec_repo)

    data = status_json(spec_repo, "-n", "SPEC")

    assert data["source"] == "branch" and data["complete"] is True
    assert data["inbox_has_text"] is True  # where say put it, and the next build takes it
    assert "pending messages: 0 + text in inbox.md" in run_cli("status", "-n", "SPEC", cwd=spec_repo).stdout


def test_unknown_session_exits_2_listing_the_sessions(spec_repo: Path) -> None:
    assert run_cli("status", cwd=spec_repo).stdout.startswith("no sessions in this repository")
    assert status_json(spec_repo) == {"sessions": []}
    committed_session(spec_repo)
    git(spec_repo, "branch", "iteratr/SPEC.archived-20260101T000000Z", "iteratr/SPEC")

    result = run_cli("status", "-n", "nope", cwd=spec_repo, expect=2)

    assert (
        result.stderr
        == "iteratr: error: no session 'nope' in this repository (no branch iteratr/nope); sessions: SPEC\n"
    )
    assert [s["session"] for s in status_json(spec_repo)["sessions"]] == ["SPEC"]  # archived ones are not sessions
    assert run_cli("status", "-n", "bad name", cwd=spec_repo, expect=2).stderr.startswith("iteratr: error: invalid")
    text = run_cli("status", "-n", "SPEC", "--data-dir", "other", cwd=spec_repo).stdout
    assert "no event log at iteratr/SPEC:other/SPEC/events.jsonl (another --data-dir?)" in text
    outside = spec_repo.parent / "not-a-repo"
    outside.mkdir()
    assert "not in a git work tree" in run_cli("status", cwd=outside, expect=1).stderr


def test_watch_redraws_until_ctrl_c_and_exits_0(spec_repo: Path, tmp_path: Path) -> None:
    committed_session(spec_repo)
    out = tmp_path / "watch.out"
    with open(out, "w") as f:
        proc = subprocess.Popen(
            [*ITERATR_CMD, "status", "-n", "SPEC", "--watch"],
            cwd=spec_repo,
            env={**os.environ, "TERM": "xterm"},
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: out.read_text().count("iteratr status at ") >= 2, "two frames")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert text.count("session SPEC | branch iteratr/SPEC") >= 2
    assert "\x1b" not in text  # not a terminal: frames follow one another, nothing is cleared
    assert run_cli("status", "--watch", "--json", cwd=spec_repo, expect=2).stderr.startswith("iteratr: error: --watch")


def test_render_shows_honest_times() -> None:
    now = status_render._epoch("2026-01-01T12:10:00.000000Z")
    assert now is not None
    failed = {
        "n": 4,
        "kind": "main",
        "outcome": "timeout",
        "started": "2026-01-01T12:00:00.5Z",
        "ended": "2026-01-01T12:05:00Z",
        "duration": 300.0,
        "summary": None,
        "error": "no output for 300s (idle_timeout)",
    }
    line = status_render._iteration_line(failed, running=False, now=now)
    assert line == (
        "#4 TIMED OUT, started 2026-01-01 12:00 UTC, 10m00s ago, took 5m00s: no output for 300s (idle_timeout)"
    )
    unfinished = {**failed, "outcome": None, "duration": None, "error": None}
    assert "its run is gone" in status_render._iteration_line(unfinished, running=False, now=now)
    assert "running, started" in status_render._iteration_line(unfinished, running=True, now=now)
