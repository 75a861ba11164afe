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
