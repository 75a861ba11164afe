"""Benchmark of the build loop: iteratr's own cost per iteration, and its memory over a long run.

Usage::

    python bench/bench_loop.py [--files 1000] [--iterations 40] [--long 200] [--git-runs 30] [--keep]

Builds a git repository of ``--files`` files in a temporary directory with a session whose tasks
are already loaded, then runs ``iteratr build --headless -i N`` with the instant scripted agent
(mode ``ok``: every turn answers "ok"; it never completes the session, hence ``-i``). Measures:

* **iteratr's cost per iteration**: from the event log, the time from one ``iteration.started``
  to the next, minus the agent's turn (the ``duration`` of ``iteration.ended``). That is
  everything iteratr does around a turn: take the inbox, load state, render the prompt, record
  the start and end, commit (``git add --all`` + ``git commit``). Median over the iterations.
* **one bare commit**: ``git add --all`` + ``git commit`` of a one-line change in the same
  repository, as two git processes, median of ``--git-runs``.
* **peak memory**: the peak RSS (``VmHWM``) of the iteratr process (not the agent, not git) in a
  run of ``--iterations`` and in one of ``--long`` iterations, each in a fresh repository.

and prints them against the budgets of issue 3: cost per iteration <= 5x one bare commit; peak
memory after ``--long`` iterations <= 1.25x the peak after ``--iterations``.

Exit status: 0 if both budgets are met, 1 if one is missed (machine noise can do that on a loaded
machine: rerun before believing it).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SESSION = "bench"
COST_BUDGET = 5.0
MEMORY_BUDGET = 1.25
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@contextlib.contextmanager
def scratch(prefix: str, *, keep: bool) -> Iterator[Path]:
    """A temporary directory for one benchmark's run: removed after, or kept and its path printed (``--keep``)."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield base
    finally:
        if keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


def iteratr_command() -> list[str]:
    """This checkout's ``iteratr.py`` shim under the current interpreter (what ``ITERATR_BIN`` will be)."""
    return [sys.executable, str(REPO_ROOT / "iteratr.py")]


def environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ITERATR_", "GIT_"))}
    env.update(GIT_ENV)
    env.update(
        {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_GLOBAL": str(home / ".gitconfig"),
            "PYTHONPATH": str(REPO_ROOT),
            "ITERATR_RETRY_DELAY": "0",
            # The instant agent makes no progress on purpose: the loop's own cost is what is measured.
            "ITERATR_STALL_LIMIT": "0",
        }
    )
    return env


def git(cwd: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, stdin=subprocess.DEVNULL, capture_output=True)


def make_repo(path: Path, n_files: int, env: dict[str, str]) -> None:
    """A repository on main with ``n_files`` small files in 20 directories, and a spec."""
    path.mkdir(parents=True)
    git(path, env, "init", "-q", "-b", "main")
    for i in range(n_files):
        f = path / f"src/pkg{i % 20:02d}/module_{i:05d}.py"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f'"""Module {i}."""\n\nVALUE = {i}\n\n\ndef f_{i}(x: int) -> int:\n    return x + VALUE\n')
    (path / "specs").mkdir()
    (path / "specs" / f"{SESSION}.md").write_text("# Bench\n\n- [ ] A task the instant agent never does\n")
    # Files as old as a real project's: written in the second the index is, git cannot trust their stat ("racy git")
    # and reads every one again at each add and commit for a while, which doubled the bare commit measured below.
    old = time.time() - 3600
    for f in path.rglob("*"):
        if f.is_file() and ".git" not in f.parts:
            os.utime(f, (old, old))
    git(path, env, "add", "--all")
    git(path, env, "commit", "-q", "-m", "initial")


def seed_tasks(path: Path, env: dict[str, str]) -> None:
    """Load tasks before the build, so every iteration is a main one (the ``ok`` agent plans nothing)."""
    tasks = json.dumps([{"content": f"task {i}", "priority": 2} for i in range(1, 6)])
    subprocess.run(
        [*iteratr_command(), "tool", "task-batch-add", "-n", SESSION, "--tasks", tasks],
        cwd=path,
        env=env,
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


def bare_commit_seconds(path: Path, env: dict[str, str], runs: int) -> float:
    """Median of ``git add --all`` + ``git commit`` of a one-line change, on a scratch branch."""
    return statistics.median(bare_commit_times(path, env, runs))


def bare_commit_times(path: Path, env: dict[str, str], runs: int, branch: str = "bench-bare") -> list[float]:
    """``git add --all`` + ``git commit`` of a one-line change, ``runs`` times, on a scratch branch ``branch`` made
    from main; the checkout is back on the branch it was on after."""
    back = subprocess.run(
        ["git", "symbolic-ref", "--short", "HEAD"], cwd=path, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    git(path, env, "switch", "-q", "-c", branch, "main")
    target = path / "src/pkg00/module_00000.py"
    times = []
    for i in range(runs):
        target.write_text(target.read_text() + f"# change {i}\n")
        start = time.perf_counter()
        git(path, env, "add", "--all")
        git(path, env, "commit", "-q", "-m", f"change {i}")
        times.append(time.perf_counter() - start)
    git(path, env, "switch", "-q", back)
    return times


class PeakRss:
    """Samples ``VmHWM`` (the kernel's own peak RSS) of one process until it exits."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while True:
            try:
                text = status.read_text()
            except (FileNotFoundError, ProcessLookupError):
                return
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            time.sleep(0.01)

    def join(self) -> None:
        self._thread.join(5)


def run_build(path: Path, env: dict[str, str], iterations: int) -> tuple[int, float, int]:
    """Run the build; return (exit status, wall seconds, peak RSS of the iteratr process in KiB)."""
    agent = [sys.executable, "-m", "iteratr.agent.scripted", "--mode", "ok"]
    cmd = [*iteratr_command(), "build", "--headless", "--spec", f"specs/{SESSION}.md", "--agent", shlex.join(agent)]
    cmd += ["-i", str(iterations)]
    start = time.perf_counter()
    with open(path.parent / f"build-{iterations}.out", "w") as out:
        proc = subprocess.Popen(cmd, cwd=path, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        rss = PeakRss(proc.pid)
        code = proc.wait()
    wall = time.perf_counter() - start
    rss.join()
    return code, wall, rss.peak_kib


def overhead_per_iteration(path: Path) -> list[float]:
    """For each iteration but the last: time to the next start, minus this one's turn."""
    starts: dict[int, float] = {}
    turns: dict[int, float] = {}
    for line in (path / ".iteratr" / SESSION / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        data = event["data"]
        if event["type"] == "iteration.started":
            starts[data["n"]] = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
        elif event["type"] == "iteration.ended":
            turns[data["n"]] = float(data["duration"])
    numbers = sorted(starts)
    return [starts[b] - starts[a] - turns[a] for a, b in itertools.pairwise(numbers) if a in turns]


def one_run(base: Path, name: str, files: int, iterations: int) -> tuple[Path, dict[str, str], int, float, int]:
    home = base / f"home-{name}"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@example.com\n")
    env = environment(home)
    repo = base / name
    make_repo(repo, files, env)
    seed_tasks(repo, env)
    code, wall, peak = run_build(repo, env, iterations)
    if code != 3:
        out = (base / f"build-{iterations}.out").read_text()
        raise SystemExit(f"iteratr build -i {iterations} exited {code}, expected 3:\n{out[-3000:]}")
    return repo, env, code, wall, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--long", type=int, default=200)
    parser.add_argument("--git-runs", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = parser.parse_args()

    with scratch("iteratr-bench-loop-", keep=args.keep) as base:
        repo, env, _, wall, peak_short = one_run(base, "short", args.files, args.iterations)
        overheads = overhead_per_iteration(repo)
        per_iteration = statistics.median(overheads)
        bare = bare_commit_seconds(repo, env, args.git_runs)
        _, _, _, wall_long, peak_long = one_run(base, "long", args.files, args.long)

        ratio = per_iteration / bare
        memory_ratio = peak_long / peak_short
        print(f"repository: {args.files} files; agent: scripted, mode ok (instant)")
        print(f"bare git add --all + git commit (median of {args.git_runs}):  {bare * 1000:7.1f} ms")
        print(
            f"iteratr cost per iteration (median of {len(overheads)}):      {per_iteration * 1000:7.1f} ms"
            f"  = {ratio:.2f}x the bare commit (budget {COST_BUDGET:g}x)"
            f"  [p90 {statistics.quantiles(overheads, n=10)[-1] * 1000:.1f} ms]"
        )
        print(f"whole run of {args.iterations} iterations, agent start included: {wall:.2f} s")
        print(
            f"peak RSS of iteratr: {peak_short / 1024:.1f} MiB after {args.iterations} iterations, "
            f"{peak_long / 1024:.1f} MiB after {args.long} ({wall_long:.1f} s)"
            f"  = {memory_ratio:.3f}x (budget {MEMORY_BUDGET:g}x)"
        )
        ok = ratio <= COST_BUDGET and memory_ratio <= MEMORY_BUDGET
        print("budgets: met" if ok else "budgets: MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
