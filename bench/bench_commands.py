"""Every command's wall time and peak RSS on a long session (issue 17: peak RSS of any command <= 100 MB at 1M events).

Usage::

    python bench/bench_commands.py --events 1000000          # one run of each command, then a second (warm)
    python bench/bench_commands.py --events 100000 --keep     # keep the repository and print where it is

It writes a session with ``bench/gen_session.py`` (with the checkpoint the loop would have committed), commits it
on the branch ``iteratr/S`` of a fresh repository, and runs each command twice as a fresh process, from the
checkout that has the branch (``checkout``) and from ``main`` (``branch``: the session read from its last commit):
``status -n S`` (text and ``--json``), ``status`` (the list), ``say``, ``doctor``, ``config``,
``tool task-list --json``, ``task-next``, ``note-add``, ``note-list --type stuck`` and ``note-list --all`` (from
``main`` too, but not ``note-add``), and ``report`` (the one command that shows all of the
history). The peak RSS is the process's own (``wait4``), git children not counted. The first of the two runs
pays for the caches (the store's snapshot, status's fold, a branch's mirror); the second is the one every later
call costs. Run it with a regular install, on a quiet machine (``bench/README.md``); it exits 1 if a command's peak
RSS is over the budget.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUDGET_MB = 100
COMMANDS: list[tuple[str, list[str]]] = [
    ("status -n S", ["status", "-n", "S"]),
    ("status --json -n S", ["status", "--json", "-n", "S"]),
    ("status", ["status"]),
    ("say", ["say", "-n", "S", "please also look at the docs"]),
    ("doctor", ["doctor"]),
    ("config", ["config"]),
    ("tool task-list --json", ["tool", "task-list", "--json", "--name", "S"]),
    ("tool task-next", ["tool", "task-next", "--name", "S"]),
    ("tool note-add", ["tool", "note-add", "--name", "S", "--type", "tip", "--content", "run the tests with -x"]),
    ("tool note-list --type stuck", ["tool", "note-list", "--name", "S", "--type", "stuck"]),
    ("tool note-list --all", ["tool", "note-list", "--name", "S", "--all", "--json"]),
    ("report", ["report", "-n", "S", "-o", "report.html"]),
]


def iteratr() -> list[str]:
    installed = Path(sys.executable).with_name("iteratr")
    return [str(installed)] if installed.exists() else [sys.executable, str(HERE.parent / "iteratr.py")]


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit status) of one run of ``argv``."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.monotonic() - start, usage.ru_maxrss / 1024, proc.returncode


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def session_repo(top: Path, events: int) -> Path:
    repo = top / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "init")
    git(repo, "switch", "-q", "-c", "iteratr/S")
    log = repo / ".iteratr" / "S" / "events.jsonl"
    subprocess.run(
        [sys.executable, str(HERE / "gen_session.py"), "--events", str(events), "--out", str(log)], check=True
    )
    git(repo, "add", "--force", ".iteratr")
    git(repo, "commit", "-q", "-m", "iteratr(S): a long session")
    return repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the repository and print where it is")
    parser.add_argument("--skip", action="append", default=[], help="a command to leave out (e.g. report)")
    args = parser.parse_args()
    top = Path(tempfile.mkdtemp(prefix="iteratr-bench-commands-"))
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com"}
    env |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com", "XDG_CONFIG_HOME": str(top)}
    missed = False
    try:
        repo = session_repo(top, args.events)
        print(f"{args.events:,} events; load average {os.getloadavg()[0]:.1f}; budget {BUDGET_MB} MB")
        print(f"{'command':<28} {'from':<9} {'first':>16} {'then':>16}")
        for where in ("checkout", "branch"):
            git(repo, "switch", "-q", "iteratr/S" if where == "checkout" else "main")
            for label, command in COMMANDS:
                if label.split()[0] in args.skip or label in args.skip:
                    continue
                if where == "branch" and (command[0] in ("say", "doctor") or command[1:2] == ["note-add"]):
                    continue  # these act on the checkout's session files (tool's reads find the branch)
                runs = [measure([*iteratr(), *command], repo, env) for _ in range(2)]
                shown = [f"{wall:6.2f} s {rss:5.0f} MB" for wall, rss, _code in runs]
                missed |= any(rss > BUDGET_MB for _wall, rss, _code in runs)
                print(f"{label:<28} {where:<9} {shown[0]:>16} {shown[1]:>16}", flush=True)
            if where == "checkout":  # say and note-add wrote to the session: back to the commit, to switch
                git(repo, "checkout", "-q", "--", ".")
    finally:
        if args.keep:
            print(f"kept: {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
