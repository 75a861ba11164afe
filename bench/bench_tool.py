"""Benchmark of the ``iteratr tool`` path: each call is a fresh Python process, as when an agent runs it.

Usage::

    python bench/bench_tool.py [--events 10000] [--live 300] [--runs 30] [--cold 3] [--keep]

Writes a realistic session of N events (``bench/gen_session.py``: iterations that take a task, write notes,
complete it and plan another, with ``--live`` tasks open at the end) into ``events.jsonl`` in a temporary
directory; the last event starts an iteration that is still running, as when an agent calls its tools.

1. **Cold read** (``--cold`` times): the first ``task-next`` with no snapshot, as after a fresh clone or a lost
   cache: the committed ``checkpoint.jsonl`` (written as the loop leaves it, ``gen_session.py``) is loaded and the
   lines after it replayed. Budget (issue 17): <= 2 s, and its peak RSS <= 100 MB.
2. One read builds the snapshot, one write the ``tasks.yaml`` cache; after a warm-up it measures ``python -c
   pass``, ``iteratr tool task-list --json``, ``task-next`` and ``note-add`` (each a fresh process, same
   interpreter, round-robin) and prints the median wall and CPU times, their ratios to ``python -c pass``, and
   each command's peak RSS. Budgets: up to 10,000 events task-list and task-next <= 4x, note-add <= 8x (issue 2);
   above, every command <= 5x (issue 17, set at 1,000,000 events with 300 live tasks); peak RSS <= 100 MB.

iteratr runs as the console script next to this interpreter if there is one, else as this
checkout's ``iteratr.py``. Byte-code is written to a temporary cache (as an installed package has
it compiled) even if ``PYTHONDONTWRITEBYTECODE`` is set.

Exit status: 0 if every budget is met, 1 if one is missed (a busy machine can do that: look at
the CPU ratios and the load average, and rerun with more ``--runs`` before believing it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SESSION = "bench"
RSS_BUDGET_MB = 100
COLD_BUDGET_S = 2.0


def iteratr_command() -> list[str]:
    """The console script installed next to this interpreter, else this checkout's ``iteratr.py`` shim."""
    script = Path(sys.executable).parent / "iteratr"
    if script.exists():
        return [str(script)]
    return [sys.executable, str(REPO_ROOT / "iteratr.py")]


def run_once(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Wall time, CPU time (user + system) and peak RSS in MB of one run of ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()  # type: ignore[union-attr]
    proc.stderr.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace')} {out[:200]!r}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def medians(
    commands: dict[str, list[str]], runs: int, cwd: Path, env: dict[str, str]
) -> dict[str, tuple[float, float, float]]:
    """Median wall and CPU milliseconds and the largest peak RSS (MB) per command, round-robin so that a busy
    moment weighs on all alike."""
    times: dict[str, list[tuple[float, float, float]]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, cmd in commands.items():
            times[label].append(run_once(cmd, cwd, env))
    return {
        label: (
            statistics.median(t[0] for t in ts) * 1000,
            statistics.median(t[1] for t in ts) * 1000,
            max(t[2] for t in ts),
        )
        for label, ts in times.items()
    }


def budgets(n_events: int) -> dict[str, float]:
    if n_events <= 10_000:
        return {"task-list --json": 4, "task-next": 4, "note-add": 8}
    return {"task-list --json": 5, "task-next": 5, "note-add": 5}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="events in the session's log (default 10000)")
    parser.add_argument("--live", type=int, default=300, help="open tasks at the end (default 300)")
    parser.add_argument("--runs", type=int, default=30, help="processes per command; the median counts (default 30)")
    parser.add_argument("--cold", type=int, default=3, help="cold reads (no snapshot) to time (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO_ROOT))
    from bench import gen_session

    tmp = Path(tempfile.mkdtemp(prefix="iteratr-bench-"))
    try:
        session_dir = tmp / ".iteratr" / SESSION
        log_size = gen_session.write(session_dir / "events.jsonl", args.events, args.live)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ITERATR_")}
        # An installed iteratr runs from compiled .pyc files; so must this one, and `python -c pass` alike.
        # The prefix keeps them out of the checkout.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        env["ITERATR_SESSION"] = SESSION
        iteratr = iteratr_command()
        commands = {
            "task-list --json": [*iteratr, "tool", "task-list", "--json"],
            "task-next": [*iteratr, "tool", "task-next"],
            "note-add": [*iteratr, "tool", "note-add", "--type", "tip", "--content", "Learned: run the tests with -x"],
        }
        run_once([sys.executable, "-c", "pass"], tmp, env)  # byte-code compiled before anything is timed
        cold: list[tuple[float, float, float]] = []
        for _ in range(args.cold):
            shutil.rmtree(session_dir / "cache", ignore_errors=True)  # a fresh clone: no snapshot, no archive
            cold.append(run_once(commands["task-next"], tmp, env))
        # One read builds the snapshot cache, one write the tasks.yaml fragment cache; then a warm-up of each.
        medians(commands, 2, tmp, env)

        results = medians({"python -c pass": [sys.executable, "-c", "pass"], **commands}, args.runs, tmp, env)
        base_wall, base_cpu, _ = results.pop("python -c pass")
        print(f"python: {sys.executable} ({sys.version.split()[0]})")
        print(f"iteratr: {' '.join(iteratr)}")
        print(f"session: {args.events} events, {args.live} live tasks, {log_size / 1e6:.1f} MB log")
        print(f"runs per command: {args.runs} (medians); load average {os.getloadavg()[0]:.2f}\n")
        if any(name.startswith("__editable__") for name in sys.modules):
            print(
                "note: this interpreter loads an editable install's import hook at every start, which makes\n"
                "`python -c pass` slower and the ratios look better than a regular install's; see bench/README.md\n"
            )
        ok = True
        if cold:
            wall = statistics.median(c[0] for c in cold)
            rss = max(c[2] for c in cold)
            verdict = "ok" if wall <= COLD_BUDGET_S and rss <= RSS_BUDGET_MB else "MISSED"
            ok = ok and verdict == "ok"
            print(
                f"cold read (task-next, no snapshot), median of {len(cold)}: {wall:.2f} s (budget {COLD_BUDGET_S} s), "
                f"cpu {statistics.median(c[1] for c in cold):.2f} s, peak RSS {rss:.0f} MB (budget {RSS_BUDGET_MB})  "
                f"{verdict}\n"
            )
        print(f"{'command':<22}{'wall':>9}{'ratio':>8}{'budget':>8}{'':8}{'cpu':>9}{'ratio':>8}{'peak RSS':>10}")
        print(f"{'python -c pass':<22}{base_wall:>7.1f}ms{1:>7.2f}x{'':16}{base_cpu:>7.1f}ms{1:>7.2f}x")
        for label, (wall, cpu, rss) in results.items():
            ratio = wall / base_wall
            budget = budgets(args.events)[label]
            verdict = "ok" if ratio <= budget and rss <= RSS_BUDGET_MB else "MISSED"
            ok = ok and verdict == "ok"
            print(
                f"{'tool ' + label:<22}{wall:>7.1f}ms{ratio:>7.2f}x{budget:>7.0f}x  {verdict:<6}"
                f"{cpu:>7.1f}ms{cpu / base_cpu:>7.2f}x{rss:>8.0f}MB"
            )
        if args.keep:
            print(f"\nkept {tmp}")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
