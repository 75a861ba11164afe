"""Processes that escape with setsid or a double fork are found and stopped (run in a child interpreter, since
becoming a subreaper changes the process for good)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCRIPT = """
import os, subprocess, sys, time
sys.path.insert(0, {root!r})
from iteratr import reaper
assert reaper.become_subreaper()
agent = subprocess.Popen(["sleep", "30"])  # stands for the agent: kept
# An escape: a shell that starts a new session in the background and exits at once (double fork + setsid).
subprocess.run(["sh", "-c", "setsid sh -c 'sleep 600 & sleep 600' >/dev/null 2>&1 &"], check=True)
deadline = time.monotonic() + 10
while len(reaper.orphans([agent.pid])) < 3 and time.monotonic() < deadline:
    time.sleep(0.02)
escaped = reaper.orphans([agent.pid])
print("escaped", len(escaped))
print("stopped", reaper.stop_processes(escaped))
print("left", len(reaper.orphans([agent.pid])))
print("agent alive", agent.poll() is None)
agent.kill(); agent.wait()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreapers are Linux-only")
def test_escaped_processes_are_found_and_stopped(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(root=str(REPO_ROOT))], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.rsplit(" ", 1) for line in proc.stdout.splitlines())
    assert int(lines["escaped"]) >= 3  # the setsid shell and its two sleeps
    assert lines["left"] == "0"
    assert lines["agent alive"] == "True"


OWN_CHILD_SCRIPT = """
import subprocess, sys, threading
sys.path.insert(0, {root!r})
from iteratr import procs, reaper
turn = reaper.TurnReaper(warn=print)
assert turn.active
turn.turn_starts()
# During the turn, a background thread of iteratr runs a command through procs (as a lease renewal's push
# does), and a stranger child appears too (stands for an orphan re-parented to iteratr).
started = threading.Event()
done = []
def renew():
    done.append(procs.run(["sh", "-c", "echo started; sleep 1; echo finished"], timeout=30).out)
thread = threading.Thread(target=renew)
thread.start()
stranger = subprocess.Popen(["sleep", "30"])
while not any(ppid == __import__("os").getpid() and pid not in (stranger.pid,)
              for pid, (ppid, _g, _s) in (procs.live_processes() or {{}}).items()):
    pass
print("stopped", turn.turn_ended(object()))
thread.join()
print("own finished", "finished" in done[0])
print("stranger alive", stranger.poll() is None)
turn.close()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreapers are Linux-only")
def test_a_turn_end_never_stops_a_process_iteratr_started_itself() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", OWN_CHILD_SCRIPT.format(root=str(REPO_ROOT))], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    lines = dict(
        line.rsplit(" ", 1)
        for line in proc.stdout.splitlines()
        if line.rsplit(" ", 1)[0] in {"stopped", "own finished", "stranger alive"}
    )
    assert lines["stopped"] == "1"  # the stranger only
    assert lines["own finished"] == "True"  # iteratr's own command ran to its end
    assert lines["stranger alive"] == "False"
