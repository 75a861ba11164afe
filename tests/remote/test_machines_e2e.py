"""Real builds, as machines run them: two at once (one runs, one exits 4), and a holder killed with ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from iteratr.errors import EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_OK
from tests.conftest import fake_agent, git, wait_for
from tests.remote.conftest import lease_of, remote_iterations, remote_log
from tests.run.helpers import Background, build, started


def _lease_expiry(origin: Path) -> float:
    message = git(origin, "log", "-1", "--format=%B", "refs/iteratr/leases/SPEC")
    return float(json.loads(message)["expires_epoch"])


def test_two_builds_started_at_once_in_two_clones_one_runs_the_other_exits_4(
    origin: Path, clone: Callable[[str], Path], tmp_path: Path
) -> None:
    a, b = clone("a"), clone("b")
    agent = fake_agent("hang")  # the winner holds the session until it is stopped
    runs = {c.name: Background(c, "--push", "--agent", agent) for c in (a, b)}
    try:
        loser = wait_for(lambda: next((n for n, r in runs.items() if r.proc.poll() is not None), None), "one to end")
        winner = "a" if loser == "b" else "b"
        assert runs[loser].wait() == EXIT_LOCKED, runs[loser].output()
        said = runs[loser].output()
        assert "session SPEC is held through origin by another machine: pid" in said
        assert "starting the agent" not in said
        assert runs[winner].proc.poll() is None  # still running: it holds the lease
        wait_for(lambda: "=== #0 planning" in runs[winner].output(), "the winner's first turn")
        os.killpg(runs[winner].proc.pid, signal.SIGINT)
        assert runs[winner].wait() == EXIT_INTERRUPTED, runs[winner].output()
    finally:
        for run in runs.values():
            run.stop()
    assert lease_of(origin) is None  # released at the end of the run
    assert remote_iterations(origin) == [0]  # the interrupted #0, committed and pushed
    assert git(tmp_path / loser, "branch", "--list", "iteratr/*") == ""  # the other touched nothing


def test_a_holder_killed_with_kill_9_its_lease_expires_and_the_next_machine_resumes(
    origin: Path, clone: Callable[[str], Path], tmp_path: Path
) -> None:
    a, b = clone("a"), clone("b")
    ttl = {"ITERATR_LEASE_TTL": "6"}
    agent = fake_agent("follow", "hang", state_file=tmp_path / "a-agent.state")
    holder = Background(a, "--push", "--agent", agent, env=ttl)
    try:
        wait_for(lambda: remote_iterations(origin) == [0], "#0 pushed by the holder", timeout=60)
        wait_for(lambda: 1 in started(a), "#1 started on the holder")
        os.killpg(holder.proc.pid, signal.SIGKILL)  # the machine dies mid-iteration
        holder.wait()
    finally:
        holder.stop()
    expiry = _lease_expiry(origin)

    refused = build(b, "--push", "--agent", fake_agent("follow"), env=ttl, expect=EXIT_LOCKED)
    assert "is held through origin by another machine: pid" in refused
    assert time.time() < expiry  # refused because the lease was live

    while time.time() <= expiry:  # the lease's own clock: nothing to wait on but time
        time.sleep(min(0.2, max(0.0, expiry - time.time()) + 0.05))
    out = build(b, "--push", "--agent", fake_agent("follow"), env=ttl, expect=EXIT_OK)
    assert "took over the expired lease of pid" in out
    assert "resuming from origin/iteratr/SPEC" in out
    assert "=== #0" not in out  # never re-planned
    assert remote_iterations(origin) == [0, 1, 2, 3]  # the killed #1 lost, run again by b; nothing skipped
    assert sum("planning" in s for s in remote_log(origin)) == 1
    assert lease_of(origin) is None

    # The killed machine again: its unfinished #1 is put aside on a ref of its own, and it follows the remote.
    back = build(a, "--push", "--agent", fake_agent("follow"), env=ttl, expect=EXIT_OK)
    assert "are kept under refs/iteratr/SPEC/left-behind/" in back
    kept = git(a, "for-each-ref", "--format=%(refname)", "refs/iteratr/SPEC/left-behind/")
    assert kept and git(a, "diff", "--stat", f"{kept}^", kept)  # the killed iteration's changes, reachable
    assert git(a, "rev-parse", "iteratr/SPEC") == git(origin, "rev-parse", "iteratr/SPEC")
