"""Benchmark of the build loop on a long session (issue 17): its own cost per iteration, and how much ``.git`` grows.

Usage::

    python bench/bench_history.py [--events 100000] [--files 1000] [--iterations 20] [--git-runs 20] [--keep]

Builds a repository of ``--files`` files (as ``bench_loop.py`` does) whose session branch ``iteratr/bench`` already
holds a realistic session of ``--events`` events (``gen_session.py``: 300 open tasks), committed. Then runs
``iteratr build --headless -i N`` with the instant scripted agent and measures:

* **iteratr's cost per iteration** (as ``bench_loop.py``: from one ``iteration.started`` to the next, minus the
  turn), over this run's iterations, against one bare ``git add --all`` + ``git commit``. Budget (issue 17): at
  100,000 events <= 3x.
* **``.git`` growth**: the bytes ``.git/objects`` grew by over the run, against the bytes of events the run added to
  the log. Budget (issue 17): <= 2x. Measured twice: *loose*, right after the run, each new object a zlib file of
  its own; and *packed*, after ``git gc``, as git keeps a repository at rest (every ``git commit`` runs ``git
  maintenance run --auto``, which packs once 6,700 loose objects pile up: loose objects never outgrow that, while
  what is packed grows for as long as the session runs). The budget is judged on the packed growth. The instant
  agent logs ~400 bytes an iteration, less than a commit object and its trees (~1.2 kB loose whatever the layout),
  so the loose growth is also given per commit against a realistic iteration's events (``gen_session``'s).

Before the measured run, one iteration is run and packed away: the first run on a session from before the segmented
log closes its whole log as segment 0 and renders ``tasks.yaml`` and the checkpoint afresh, once.

The bare commit is measured 20 times before the run and 20 after, on a scratch branch of the same repository whose
files are an hour old (as a real project's are: files written in the second the index was make git read them all
again at each commit, which doubled it); the median of the 40 is the figure.

Exit status: 0 if both budgets are met, 1 if one is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gen_session
from bench.bench_loop import (
    SESSION,
    bare_commit_times,
    environment,
    git,
    make_repo,
    run_build,
    scratch,
)

COST_BUDGET = 3.0
GROWTH_BUDGET = 2.0


def objects_bytes(repo: Path) -> int:
    return sum(p.stat().st_size for p in (repo / ".git" / "objects").rglob("*") if p.is_file())


def overhead_per_iteration(log: Path, offset: int) -> list[float]:
    """As ``bench_loop.py``'s, over the iterations this run started (the log after ``offset``)."""
    import itertools
    import json
    from datetime import datetime

    from iteratr.session import segments

    starts: dict[int, float] = {}
    turns: dict[int, float] = {}
    with segments.LogView(log.parent) as view:  # the closed segments, then events.jsonl
        view.seek(offset)
        added = view.read()
    for line in added.splitlines():
        if line.strip():
            event = json.loads(line)
            data = event["data"]
            if event["type"] == "iteration.started":
                starts[data["n"]] = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
            elif event["type"] == "iteration.ended" and data.get("duration") is not None:
                turns[data["n"]] = float(data["duration"])
    numbers = sorted(starts)
    return [starts[b] - starts[a] - turns[a] for a, b in itertools.pairwise(numbers) if a in turns]


def log_size(log: Path) -> int:
    """The whole log's bytes: its closed segments and events.jsonl (``iteratr.session.segments``)."""
    from iteratr.session import segments

    with segments.LogView(log.parent) as view:
        return sum(view.sizes)


def realistic_iteration_bytes(iterations: int = 300) -> float:
    """The mean bytes of events one iteration of a generated realistic session logs (after its planning)."""
    gen = gen_session.Generator(300, 17)
    for _ in gen.plan():
        pass
    total = 0
    for _ in range(iterations):
        total += sum(len(line.encode()) + (0 if line.endswith("\n") else 1) for line in gen.one_iteration())
    return total / iterations


def warm_up(base: Path, repo: Path, env: dict[str, str]) -> None:
    """One iteration, not measured: a session from before the segmented log is migrated by its first run."""
    code, _, _ = run_build(repo, env, 1)
    if code != 3:
        raise SystemExit(f"the warm-up iteration exited {code}:\n{(base / 'build-1.out').read_text()[-3000:]}")


def commits_since(repo: Path, env: dict[str, str], rev: str) -> int:
    import subprocess

    done = subprocess.run(
        ["git", "rev-list", "--count", f"{rev}..HEAD"], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--git-runs", type=int, default=20)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    with scratch("iteratr-bench-history-", keep=args.keep) as base:
        home = base / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = bench\n\temail = bench@example.com\n")
        env = environment(home)
        repo = base / "repo"
        make_repo(repo, args.files, env)
        bare_times = bare_commit_times(repo, env, args.git_runs, "bench-bare-before")
        git(repo, env, "switch", "-q", "-c", f"iteratr/{SESSION}")
        log = repo / ".iteratr" / SESSION / "events.jsonl"
        gen_session.write(log, args.events)
        git(repo, env, "add", "--all")
        git(repo, env, "commit", "-q", "-m", "a long session so far")
        warm_up(base, repo, env)
        git(repo, env, "gc", "-q")  # the history as a clone would have it: packed
        git(repo, env, "tag", "iteratr-bench-start")
        before_objects, before_log = objects_bytes(repo), log_size(log)
        code, wall, peak = run_build(repo, env, args.iterations)
        if code != 3:
            out = (base / f"build-{args.iterations}.out").read_text()
            raise SystemExit(f"iteratr build -i {args.iterations} exited {code}, expected 3:\n{out[-3000:]}")
        added = log_size(log) - before_log
        commits = commits_since(repo, env, "iteratr-bench-start")
        grown = objects_bytes(repo) - before_objects
        git(repo, env, "gc", "-q")
        packed = objects_bytes(repo) - before_objects
        overheads = overhead_per_iteration(log, before_log)
        bare_times += bare_commit_times(repo, env, args.git_runs, "bench-bare-after")
        bare = statistics.median(bare_times)
        per_iteration = statistics.median(overheads)
        ratio, growth, loose_growth = per_iteration / bare, packed / max(added, 1), grown / max(added, 1)
        print(
            f"session: {args.events} events before the run ({before_log / 1e6:.1f} MB); repository: {args.files} files"
        )
        print(f"bare git add --all + git commit (median of {len(bare_times)}): {bare * 1000:7.1f} ms")
        print(
            f"iteratr cost per iteration (median of {len(overheads)}):  {per_iteration * 1000:7.1f} ms"
            f" = {ratio:.2f}x (budget {COST_BUDGET:g}x); p10 {statistics.quantiles(overheads, n=10)[0] * 1000:.1f} ms,"
            f" p90 {statistics.quantiles(overheads, n=10)[-1] * 1000:.1f} ms"
        )
        print(
            f".git/objects grew {packed / 1e3:.1f} kB packed (after git gc) for {added / 1e3:.1f} kB of events added"
            f" = {growth:.2f}x (budget {GROWTH_BUDGET:g}x); loose, before git packs: {grown / 1e3:.1f} kB ="
            f" {loose_growth:.1f}x; peak RSS {peak / 1024:.0f} MiB; run {wall:.1f} s"
        )
        ok = ratio <= COST_BUDGET and growth <= GROWTH_BUDGET
        real = realistic_iteration_bytes()
        per_commit = grown / max(commits, 1)
        print(
            f"loose: {per_commit / 1e3:.2f} kB per commit ({commits} commits); a realistic iteration logs "
            f"{real / 1e3:.2f} kB of events (gen_session): {per_commit / real:.1f}x per realistic iteration"
        )
        print("budgets: met" if ok else "budgets: MISSED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
