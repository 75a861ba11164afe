"""Randomized kill -9 trials: a session killed at random moments and resumed keeps its whole history.

Each trial builds a fresh repository's session with the real CLI and the scripted ACP agent
(``python -m iteratr.agent.scripted --mode follow``). Each round resumes the build (``iteratr build``), may
send a message with ``iteratr say`` (before the build, or while it runs), and SIGKILLs iteratr at a random
moment, as ``kill -9`` would: the agent it leaves behind finishes or dies on its own, and is killed if it lingers.
After every round the invariants of issue 12 are checked:

- no committed event lost: every iteratr commit's log (its closed segments, then ``events.jsonl``) is a prefix
  of the log at the branch tip,
  and of the log on disk;
- iteration numbers contiguous: ``iteration.started`` numbers are 0..n with no gap or repeat, and so are the
  ``Iteratr-Iteration`` trailers of ``git log iteratr/S``;
- every iteratr commit ever seen stays reachable from ``iteratr/S``;
- no user message lost: each ``say`` is recorded once and delivered at most once, and one not yet delivered
  has had no successful iteration started after it was recorded;
- at the end, when the session completed: every message delivered, and the work tree clean.

Kills stop a few seconds before the time bound, so a trial can finish uninterrupted. Randomness comes from one
seed, printed with every violation, so a failure can be run again (``--seed``).

Run from the repository root: ``python bench/kill_trials.py --minutes 10`` (or ``--trials 20``). The test suite
runs a short bounded version (tests/run/test_kill_trials.py). Exit status 1 if any invariant was violated.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ITERATR = [sys.executable, str(REPO_ROOT / "iteratr.py")]
AGENT = shlex.join([sys.executable, "-m", "iteratr.agent.scripted", "--mode", "follow"])
SESSION = "SPEC"
TASKS = 10
SPEC = "# Kill trials\n\n## Tasks\n" + "".join(f"- [ ] Task number {k}\n" for k in range(1, TASKS + 1))
KILL_WINDOW = (0.05, 2.0)  # seconds after a build starts
FINISH_TIME = 12.0  # the last seconds of a trial run without kills, so the session can complete
ROUND_LIMIT = 60.0  # an uninterrupted build that takes longer than this is a violation (a hang)


@dataclass
class Summary:
    trials: int = 0
    completed: int = 0
    rounds: int = 0
    kills: int = 0
    messages: int = 0
    violations: list[str] = field(default_factory=list)

    def text(self) -> str:
        return (
            f"{self.trials} trial(s), {self.completed} completed, {self.rounds} rounds, {self.kills} kills, "
            f"{self.messages} messages, {len(self.violations)} violation(s)"
        )


def environment(home: Path) -> dict[str, str]:
    """The user's environment without iteratr or git settings, with a private HOME and a fixed git identity."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ITERATR_", "GIT_"))}
    (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n[user]\n\tname = Kill Trial\n\temail = k@t\n")
    env.update(
        HOME=str(home),
        XDG_STATE_HOME=str(home / "state"),
        XDG_CONFIG_HOME=str(home / "config"),
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        ITERATR_TRUST="1",
        ITERATR_RETRY_DELAY="0",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


class Trial:
    def __init__(self, root: Path, rng: random.Random, label: str, summary: Summary) -> None:
        self.repo = root / "repo"
        self.rng = rng
        self.label = label
        self.summary = summary
        self.env = environment(root)
        self.said: list[str] = []
        self.seen_commits: dict[str, bytes] = {}  # every iteratr commit seen -> its events.jsonl
        self.violations: list[str] = []
        self.repo.mkdir()
        self.git("init", "-q", "-b", "main")
        (self.repo / "specs").mkdir()
        (self.repo / "specs" / "SPEC.md").write_text(SPEC)
        self.git("add", "specs/SPEC.md")
        self.git("commit", "-q", "-m", "spec")

    # -- helpers ------------------------------------------------------------------------------------

    def git(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["git", *args], cwd=self.repo, env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def git_bytes(self, *args: str) -> bytes:
        return subprocess.run(["git", *args], cwd=self.repo, env=self.env, capture_output=True).stdout

    def violation(self, text: str) -> None:
        self.violations.append(f"{self.label}: {text}")

    def inbox_waiting(self) -> bool:
        """Text saved into the inbox that no build has taken yet (it reopens the session when taken)."""
        from iteratr.run import inbox

        return inbox.has_text(self.log_path.parent)

    @property
    def log_path(self) -> Path:
        return self.repo / ".iteratr" / SESSION / "events.jsonl"

    def disk_log(self) -> bytes:
        """The whole log on disk: its closed segments, then events.jsonl (``iteratr.session.segments``)."""
        from iteratr.session import segments

        if not self.log_path.exists():
            return b""
        with segments.LogView(self.log_path.parent) as view:
            return view.read()

    def committed_log(self, rev: str) -> bytes:
        """The whole log as commit ``rev`` holds it (its segments, then its events.jsonl)."""
        from iteratr.session import tree_log

        return tree_log.read(self.repo, rev, f".iteratr/{SESSION}") or b""

    def events(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        out = []
        for line in self.disk_log().splitlines():
            with contextlib.suppress(ValueError):  # a torn last line after a kill: the next run repairs it
                out.append(json.loads(line))
        return out

    def open_tasks(self) -> int:
        status: dict[str, str] = {}
        for e in self.events():
            data = e.get("data") or {}
            if e["type"] == "task.added":
                status[str(data.get("id"))] = str(data.get("status", "pending"))
            elif e["type"] == "task.status":
                status[str(data.get("id"))] = str(data.get("status"))
        return TASKS if not status else sum(s not in ("completed", "cancelled") for s in status.values())

    def say(self) -> None:
        text = f"kill-trial message {len(self.said) + 1} of {self.label}"
        proc = subprocess.run(
            [*ITERATR, "say", "-n", SESSION, text], cwd=self.repo, env=self.env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            self.violation(f"iteratr say exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
            return
        self.said.append(text)
        self.summary.messages += 1

    # -- a round --------------------------------------------------------------------------------------

    def round(self, *, kill: bool) -> int | None:
        """One resume; killed after a random delay if ``kill``. The build's exit status, or None if killed."""
        self.summary.rounds += 1
        # Only to a session that exists, and not near its end: a message sent as the last task completes would
        # meet a completed session, which rightly runs no more prompts.
        messages = self.log_path.exists() and self.open_tasks() >= 2
        if messages and self.rng.random() < 0.4:
            self.say()
        out = self.repo.parent / "build.out"
        with out.open("ab") as sink:
            proc = subprocess.Popen(
                [*ITERATR, "build", "--headless", "--agent", AGENT],
                cwd=self.repo,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            delay = self.rng.uniform(*KILL_WINDOW) if kill else ROUND_LIMIT
            say_at = self.rng.uniform(0, delay) if messages and kill and self.rng.random() < 0.4 else None
            if say_at is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(say_at)
                if proc.poll() is None:
                    self.say()
                    delay = max(delay - say_at, 0.0)
            with contextlib.suppress(subprocess.TimeoutExpired):
                return proc.wait(delay)
            if not kill:
                self.violation(f"an uninterrupted build ran past {ROUND_LIMIT:.0f}s")
            descendants = _descendants(proc.pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            self.summary.kills += 1
            _wait_gone(descendants, 5.0)
            return None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # -- the invariants ---------------------------------------------------------------------------------

    def check(self) -> None:
        branch = f"iteratr/{SESSION}"
        if not self.git("rev-parse", "--verify", "--quiet", branch, check=False).strip():
            return  # killed before the session's branch existed
        tip_log = self.committed_log(branch)
        disk_log = self.disk_log()
        if not disk_log.startswith(tip_log):
            self.violation("the log on disk does not extend the log at the branch tip")
        shas = self.git("log", "--format=%H %(trailers:key=Iteratr-Session,valueonly,separator=)", branch)
        for line in shas.splitlines():
            sha, _, session = line.partition(" ")
            if session.strip() == SESSION and sha not in self.seen_commits:
                self.seen_commits[sha] = self.committed_log(sha)
        for sha, committed in self.seen_commits.items():
            if subprocess.run(["git", "merge-base", "--is-ancestor", sha, branch], cwd=self.repo).returncode != 0:
                self.violation(f"iteratr's commit {sha[:9]} is no longer reachable from {branch}")
            if not tip_log.startswith(committed):
                self.violation(f"events committed in {sha[:9]} are missing from the log at {branch}")
        events = self.events()
        started = [int(e["data"]["n"]) for e in events if e["type"] == "iteration.started"]
        if started != list(range(len(started))):
            self.violation(f"iteration.started numbers not contiguous: {started}")
        raw = "%(trailers:key=Iteratr-Iteration,valueonly,separator=)"
        trailers = [int(t) for t in self.git("log", "--reverse", f"--format={raw}", branch).split() if t.strip()]
        if trailers != list(range(len(trailers))):
            self.violation(f"Iteratr-Iteration trailers not contiguous: {trailers}")
        self.check_messages(events, final=False)

    def check_messages(self, events: list[dict[str, Any]], *, final: bool) -> None:
        recorded: dict[str, tuple[str, int]] = {}  # id -> (text, index in the log)
        for i, e in enumerate(events):
            if e["type"] == "user.message":
                recorded[str(e["data"]["id"])] = (str(e["data"]["text"]), i)
        # Messages sent between two takes of the inbox are one message, their texts joined by a blank line.
        for said in self.said:
            holding = [msg_id for msg_id, (text, _) in recorded.items() if said in text.split("\n\n")]
            if len(holding) > 1:
                self.violation(f"message recorded {len(holding)} times ({', '.join(holding)}): {said!r}")
            elif not holding and final:
                self.violation(f"message never recorded: {said!r}")
        delivered: dict[str, int] = {}
        for e in events:
            if e["type"] == "user.delivered":
                for msg_id in e["data"]["ids"]:
                    delivered[msg_id] = delivered.get(msg_id, 0) + 1
        ok_started = _ok_iteration_starts(events)
        for msg_id, (text, at) in recorded.items():
            count = delivered.get(msg_id, 0)
            if count > 1:
                self.violation(f"message {msg_id} delivered {count} times")
            elif count == 0 and any(i > at for i in ok_started):
                self.violation(f"message {msg_id} ({text!r}) skipped by a successful iteration started after it")
            elif count == 0 and final:
                self.violation(f"message {msg_id} ({text!r}) never delivered")

    def finish(self, completed: bool) -> None:
        self.check()
        if not completed:
            return
        self.check_messages(self.events(), final=True)
        dirty = self.git("status", "--porcelain").strip()
        if dirty:
            self.violation(f"the work tree is not clean at the end:\n{dirty}")


def _ok_iteration_starts(events: list[dict[str, Any]]) -> list[int]:
    """Log indexes of the ``iteration.started`` events whose iteration ended ok (its prompt was sent)."""
    ok = {int(e["data"]["n"]) for e in events if e["type"] == "iteration.ended" and e["data"].get("outcome") == "ok"}
    return [i for i, e in enumerate(events) if e["type"] == "iteration.started" and int(e["data"]["n"]) in ok]


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (Linux /proc): the agent and its tool calls, left behind by a kill -9."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Let the orphaned agent end as it would after a kill -9 of iteratr (its stdin closed); then kill it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def run_trial(root: Path, rng: random.Random, label: str, deadline: float, summary: Summary) -> list[str]:
    """One session from its start until it completes or ``deadline`` (time.monotonic) passes; its violations."""
    trial = Trial(root, rng, label, summary)
    completed = False
    while time.monotonic() < deadline and not trial.violations:
        kill = time.monotonic() < deadline - FINISH_TIME
        code = trial.round(kill=kill)
        if code is not None and code != 0:
            tail = (root / "build.out").read_text(errors="replace")[-1500:]
            trial.violation(f"iteratr build exited {code}:\n{tail}")
        trial.check()
        if code == 0 and trial.inbox_waiting():
            continue  # a message came as the run completed: the next build takes it, as a cron run would
        if code == 0:
            completed = True
            break
    trial.finish(completed)
    summary.completed += completed
    return trial.violations


def run_trials(
    *, seed: int, trials: int | None = None, seconds: float | None = None, keep: Path | None = None
) -> Summary:
    """Trials until ``trials`` ran or ``seconds`` passed (a trial in progress then stops at the bound)."""
    rng = random.Random(seed)
    summary = Summary()
    end = time.monotonic() + seconds if seconds is not None else float("inf")
    # A trial is started only with time for some kills and its uninterrupted finish (the first always is).
    while (trials is None or summary.trials < trials) and (
        not summary.trials or time.monotonic() < end - FINISH_TIME - 5.0
    ):
        trial_seed = rng.randrange(2**32)
        label = f"seed {seed}, trial {summary.trials + 1} (trial seed {trial_seed})"
        # A trial gets at least FINISH_TIME and a few kills, even if the overall bound is nearer.
        deadline = max(min(end, time.monotonic() + 120.0), time.monotonic() + FINISH_TIME + 5.0)
        if keep is not None:  # kept for a look afterwards
            keep.mkdir(parents=True, exist_ok=True)
            root = Path(tempfile.mkdtemp(prefix="iteratr-kill-", dir=keep))
            violations = run_trial(root, random.Random(trial_seed), label, deadline, summary)
        else:
            with tempfile.TemporaryDirectory(prefix="iteratr-kill-") as tmp:
                violations = run_trial(Path(tmp), random.Random(trial_seed), label, deadline, summary)
        summary.trials += 1
        summary.violations += violations
        if violations:
            break  # the seed reproduces it
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, help="run trials for this long (default: 1 minute)")
    parser.add_argument("--trials", type=int, help="run this many trials")
    parser.add_argument("--seed", type=int, help="the seed (default: random, printed)")
    parser.add_argument("--keep", type=Path, help="make the trials' repositories under this directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    seconds = args.minutes * 60 if args.minutes is not None else (None if args.trials else 60.0)
    print(f"kill trials: seed {seed}", flush=True)
    started = time.monotonic()
    summary = run_trials(seed=seed, trials=args.trials, seconds=seconds, keep=args.keep)
    for text in summary.violations:
        print(f"VIOLATION {text}")
    print(f"{summary.text()} in {time.monotonic() - started:.0f}s (seed {seed})")
    return 1 if summary.violations else 0


if __name__ == "__main__":
    sys.exit(main())
