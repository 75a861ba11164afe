"""procs: every child in its own session; a timeout or Ctrl+C stops its whole group, escalating to SIGKILL."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from iteratr import procs


def read_pid(path: Path) -> int:
    deadline = time.monotonic() + 10
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.02)
    return int(path.read_text())


def is_dead(pid: int, wait: float = 5.0) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_run_captures_output_and_status() -> None:
    done = procs.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.out, done.err, done.timed_out) == (3, "out\n", "err\n", False)
    assert procs.run(["cat"], input=b"fed in").stdout == b"fed in"


def test_a_child_leads_its_own_process_group() -> None:
    proc = procs.popen(["sleep", "5"])
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
    finally:
        procs.stop(proc, grace=0)
    assert proc.returncode is not None


def test_a_missing_program_is_an_oserror() -> None:
    with pytest.raises(FileNotFoundError):
        procs.run(["no-such-program-iteratr"])


def test_a_timeout_stops_the_whole_group_grandchildren_included(tmp_path: Path) -> None:
    script = f"sleep 1000 & echo $! > {tmp_path}/grandchild; echo started; wait"
    done = procs.run(["sh", "-c", script], timeout=0.5)
    assert done.timed_out and done.returncode is None and done.out == "started\n"
    assert is_dead(read_pid(tmp_path / "grandchild"))


def test_a_group_ignoring_sigterm_gets_sigkill_after_the_grace(tmp_path: Path) -> None:
    script = f"trap '' TERM; sh -c 'trap \"\" TERM; sleep 1000' & echo $! > {tmp_path}/child; wait"
    started = time.monotonic()
    done = procs.run(["sh", "-c", script], timeout=0.3, grace=0.3)
    assert done.timed_out and time.monotonic() - started < 5
    assert is_dead(read_pid(tmp_path / "child"))


@pytest.mark.parametrize("finish", [True, False])
def test_ctrl_c_stops_the_child_or_lets_it_finish(tmp_path: Path, finish: bool) -> None:
    marker = tmp_path / "finished"
    threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        procs.run(["sh", "-c", f"sleep 0.6; touch {marker}"], finish_on_interrupt=finish)
    time.sleep(0.8 if not finish else 0)
    assert marker.exists() is finish  # git's commit is never cut half-way; anything else is stopped at once


def test_an_interactive_program_runs_in_our_process_group_and_returns_its_status(tmp_path: Path) -> None:
    """``$EDITOR`` must stay in the terminal's foreground group, or the terminal stops it at its first read."""
    out = tmp_path / "pgid"
    assert procs.run_in_foreground(["sh", "-c", f"ps -o pgid= -p $$ > {out}; exit 4"]) == 4
    assert int(out.read_text()) == os.getpgrp()
