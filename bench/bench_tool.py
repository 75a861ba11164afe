"""Benchmark of the ``iteratr tool`` path: each call is a fresh Python process, as when an agent runs it.

Usage::

    python bench/bench_tool.py [--events 10000] [--runs 30] [--keep]

Builds a session with N events in a temporary directory (about N/20 tasks, the rest status,
priority, note and iteration events), lets one read build the snapshot cache and one write build
the ``tasks.yaml`` fragment cache, then measures the median wall time of ``python -c pass``,
``iteratr tool task-list --json``, ``task-next`` and ``note-add`` with the same interpreter, and
prints each as a ratio to ``python -c pass`` against the budgets of issue 2:

* up to 10,000 events: task-list and task-next <= 4x, note-add <= 8x;
* above (the issue sets 100,000): every command <= 10x.

Exit status: 0 if every budget is met, 1 if one is missed (machine noise can do that: rerun with
more ``--runs`` before believing it).
"""

from __future__ import annotations

import argparse
import json
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
STATUSES = ("in_progress", "completed", "remaining", "blocked", "completed", "cancelled")
NOTE_TYPES = ("learning", "stuck", "tip", "decision")


def iteratr_command() -> list[str]:
    """The console script installed next to this interpreter, else this checkout's ``iteratr.py`` shim."""
    script = Path(sys.executable).parent / "iteratr"
    if script.exists():
        return [str(script)]
    return [sys.executable, str(REPO_ROOT / "iteratr.py")]


def event(i: int, type_: str, iteration: int, data: dict[str, object]) -> str:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + i)) + f".{i % 1_000_000:06d}Z"
    line = {"v": 1, "ts": ts, "type": type_, "iteration": iteration, "data": data}
    return json.dumps(line, ensure_ascii=False) + "\n"


def build_log(n_events: int) -> str:
    """Valid ``events.jsonl`` text with ``n_events`` lines: tasks first, then a realistic mix of changes."""
    n_tasks = max(1, n_events // 20)
    lines = []
    for t in range(1, n_tasks + 1):
        deps = [f"TAS-{t - 1}"] if t > 1 and t % 7 == 0 else []
        data = {
            "id": f"TAS-{t}",
            "content": f"Implement part {t} of the spec: parse the input, validate it, and write the tests",
            "status": "remaining",
            "priority": t % 5,
            "depends_on": deps,
        }
        lines.append(event(len(lines), "task.added", 0, data))
    notes = 0
    iteration = 0
    while len(lines) < n_events:
        i = len(lines)
        kind = i % 10
        task = f"TAS-{1 + (i * 7919) % n_tasks}"
        if kind == 0:
            iteration += 1
            lines.append(event(i, "iteration.started", iteration, {"n": iteration, "kind": "main"}))
        elif kind == 1:
            usage = {"input_tokens": 1000, "output_tokens": 200, "total_tokens": 1200, "cost": 0.01, "currency": "USD"}
            data = {"n": iteration, "outcome": "ok", "duration": 42.0, "usage": usage}
            lines.append(event(i, "iteration.ended", iteration, data))
        elif kind in (2, 3, 4, 5, 9):
            status = STATUSES[(i // 10) % len(STATUSES)]
            lines.append(event(i, "task.status", iteration, {"id": task, "status": status}))
        elif kind == 6:
            lines.append(event(i, "task.priority", iteration, {"id": task, "priority": (i // 10) % 5}))
        elif kind == 7:
            lines.append(event(i, "iteration.summary", iteration, {"summary": f"Did a few things in #{iteration}"}))
        else:  # one note in ten events: about one per iteration
            notes += 1
            text = f"Learned thing {notes}: run the tests with -x"
            data = {"id": f"NOT-{notes}", "content": text, "type": NOTE_TYPES[notes % 4]}
            lines.append(event(i, "note.added", iteration, data))
    return "".join(lines)


def run_once(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return elapsed


def medians_ms(commands: dict[str, list[str]], runs: int, cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Round-robin over the commands, so that a busy moment of the machine weighs on all of them alike."""
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, cmd in commands.items():
            times[label].append(run_once(cmd, cwd, env))
    return {label: statistics.median(ts) * 1000 for label, ts in times.items()}


def budgets(n_events: int) -> dict[str, float]:
    if n_events <= 10_000:
        return {"task-list --json": 4, "task-next": 4, "note-add": 8}
    return {"task-list --json": 10, "task-next": 10, "note-add": 10}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000, help="events in the session's log (default 10000)")
    parser.add_argument("--runs", type=int, default=30, help="processes per command; the median counts (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="iteratr-bench-"))
    try:
        session_dir = tmp / ".iteratr" / SESSION
        session_dir.mkdir(parents=True)
        (session_dir / "events.jsonl").write_text(build_log(args.events), encoding="utf-8")
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
            "note-add": [*iteratr, "tool", "note-add", "--type", "tip", "--content", "benchmark note"],
        }
        # One read builds the snapshot cache, one write the tasks.yaml fragment cache; then a warm-up of each.
        medians_ms(commands, 2, tmp, env)

        results = medians_ms({"python -c pass": [sys.executable, "-c", "pass"], **commands}, args.runs, tmp, env)
        baseline = results.pop("python -c pass")
        log_size = (session_dir / "events.jsonl").stat().st_size
        print(f"python: {sys.executable} ({sys.version.split()[0]})")
        print(f"iteratr: {' '.join(iteratr)}")
        print(f"session: {args.events} events, {max(1, args.events // 20)} tasks, {log_size / 1e6:.1f} MB log")
        print(f"runs per command: {args.runs} (median)\n")
        print(f"{'command':<22}{'median':>10}{'ratio':>9}{'budget':>9}")
        print(f"{'python -c pass':<22}{baseline:>8.1f}ms{1:>8.2f}x")
        ok = True
        for label, ms in results.items():
            ratio = ms / baseline
            budget = budgets(args.events)[label]
            verdict = "ok" if ratio <= budget else "MISSED"
            ok = ok and ratio <= budget
            print(f"{'tool ' + label:<22}{ms:>8.1f}ms{ratio:>8.2f}x{budget:>8.0f}x  {verdict}")
        if args.keep:
            print(f"\nkept {tmp}")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
