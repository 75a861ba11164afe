"""A generator of realistic sessions: an ``events.jsonl`` as a long-lived session run from cron accumulates it.

Usage::

    python bench/gen_session.py --events 1000000 --live 300 --out .iteratr/S/events.jsonl

The session starts with ``--live`` tasks planned. Then each iteration, like a real one: starts; the agent takes the
best ready task (in progress), writes a note or two (learning, tip, decision, now and then stuck), completes the task
(the ``on_task_complete`` hook runs), plans as many new tasks as it closed (so ``--live`` tasks stay open, some
depending on others), sometimes blocks or reprioritises one, summarises, and the iteration ends with its usage. Now
and then a user message arrives from the inbox and is delivered to the next prompt. About ten events an iteration,
so 100,000 events is about 10,000 iterations. The last event starts an iteration that is still running, as when an
agent calls its tools. Deterministic for a ``--seed``.

Beside the log, the ``checkpoint.jsonl`` the loop would have committed (``--no-checkpoint``: none).

Texts are of realistic length (task texts 60-160 characters, notes 80-300): about 190 bytes an event.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

WORDS = (
    "parser", "config", "cache", "index", "retry", "timeout", "schema", "migration", "handler", "request",
    "response", "token", "session", "branch", "commit", "build", "test", "fixture", "module", "error",
    "status", "report", "prompt", "budget", "limit", "queue", "worker", "lock", "snapshot",
)  # fmt: skip
NOTE_TYPES = ("learning", "tip", "decision", "learning", "tip", "stuck")


def _text(rng: random.Random, low: int, high: int) -> str:
    words: list[str] = []
    length = rng.randint(low, high)
    while sum(len(w) + 1 for w in words) < length:
        words.append(rng.choice(WORDS))
    return " ".join(words).capitalize()


class Generator:
    def __init__(self, live: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.live = live
        self.i = 0  # events so far, for timestamps
        self.tasks = 0
        self.notes = 0
        self.messages = 0
        self.iteration = -1
        self.open: list[str] = []  # remaining tasks, in the order an agent would take them
        self.blocked: list[str] = []

    def _event(self, type_: str, data: dict[str, object]) -> str:
        self.i += 1
        t = 1_700_000_000 + self.i * 6
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{self.i % 1_000_000:06d}Z"
        line = {"v": 1, "ts": ts, "type": type_, "iteration": max(self.iteration, 0), "data": data}
        return json.dumps(line, ensure_ascii=False) + "\n"

    def _add_task(self) -> str:
        self.tasks += 1
        tid = f"TAS-{self.tasks}"
        deps = [self.rng.choice(self.open)] if self.open and self.rng.random() < 0.15 else []
        data = {
            "id": tid,
            "content": _text(self.rng, 60, 160),
            "status": "remaining",
            "priority": 2,
            "depends_on": deps,
        }
        data["priority"] = self.rng.randint(0, 4)
        self.open.append(tid)
        return self._event("task.added", data)

    def _note(self) -> str:
        self.notes += 1
        kind = self.rng.choice(NOTE_TYPES)
        return self._event("note.added", {"id": f"NOT-{self.notes}", "content": _text(self.rng, 80, 300), "type": kind})

    def plan(self) -> Iterator[str]:
        for _ in range(self.live):
            yield self._add_task()

    def one_iteration(self) -> Iterator[str]:
        rng = self.rng
        self.iteration += 1
        n = self.iteration
        yield self._event("iteration.started", {"n": n, "kind": "main", "run": "2026-01-01T00:00:00Z"})
        if self.messages and rng.random() < 0.05:
            yield self._event("user.delivered", {"ids": [f"MSG-{self.messages}"], "iteration": n})
        task = self.open.pop(0) if self.open else None
        if task:
            yield self._event("task.status", {"id": task, "status": "in_progress"})
        for _ in range(rng.choice((1, 1, 2))):
            yield self._note()
        if task and rng.random() < 0.03:
            self.blocked.append(task)
            yield self._event("task.status", {"id": task, "status": "blocked"})
        elif task:
            yield self._event("task.status", {"id": task, "status": "completed"})
            data = {"hook": "on_task_complete", "command": "make notify", "exit_status": 0, "timed_out": False}
            yield self._event("hook.ran", {**data, "duration": 0.1, "task_id": task})
        if self.blocked and rng.random() < 0.1:
            back = self.blocked.pop(0)
            self.open.append(back)
            yield self._event("task.status", {"id": back, "status": "remaining"})
        while len(self.open) + len(self.blocked) < self.live:
            yield self._add_task()
        if self.open and rng.random() < 0.2:
            yield self._event("task.priority", {"id": rng.choice(self.open), "priority": rng.randint(0, 4)})
        if rng.random() < 0.03:
            self.messages += 1
            text = _text(rng, 40, 200)
            yield self._event("user.message", {"id": f"MSG-{self.messages}", "text": text, "source": "inbox.md"})
        yield self._event("iteration.summary", {"summary": _text(rng, 80, 240)})
        usage = {"input_tokens": 12000, "output_tokens": 900, "total_tokens": 12900, "cost": 0.05, "currency": "USD"}
        data = {
            "n": n,
            "outcome": "ok",
            "duration": round(rng.uniform(20, 300), 1),
            "usage": {**usage, "source": "turn"},
        }
        yield self._event("iteration.ended", {**data, "progress": True})


def lines(n_events: int, live: int = 300, seed: int = 17) -> Iterator[str]:
    """``n_events`` lines of a session with ``live`` open tasks at the end; the last starts a running iteration."""
    gen = Generator(live, seed)
    count = 0
    for line in gen.plan():
        if count >= n_events - 1:
            break
        count += 1
        yield line
    while count < n_events - 1:
        for line in gen.one_iteration():
            if count >= n_events - 1:
                break
            count += 1
            yield line
    gen.iteration += 1
    yield gen._event("iteration.started", {"n": gen.iteration, "kind": "main"})


def write(path: Path, n_events: int, live: int = 300, seed: int = 17, *, checkpoint: bool = True) -> int:
    """Write the session's log to ``path``; returns its size in bytes. With ``checkpoint``, also the committed
    ``checkpoint.jsonl`` beside it, as the loop leaves it: covering the log up to the last multiple of its interval
    (``iteratr.session.checkpoint.EVERY``), so a cold read replays what followed it."""
    from itertools import islice

    path.parent.mkdir(parents=True, exist_ok=True)
    every = _checkpoint_every() if checkpoint else 0
    first = (n_events - 1) // every * every if every else 0
    source = lines(n_events, live, seed)
    _append(path, islice(source, first), "w")
    if first:
        _checkpoint(path)
    _append(path, source, "a")
    return path.stat().st_size


def _append(path: Path, source: Iterator[str], mode: str) -> None:
    with open(path, mode, encoding="utf-8") as f:
        buf: list[str] = []
        for line in source:
            buf.append(line)
            if len(buf) >= 10_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


def _checkpoint_every() -> int:
    from iteratr.session.checkpoint import EVERY

    return EVERY


def _checkpoint(log: Path) -> None:
    """The checkpoint of the log as it is now, written by iteratr's store (a full replay: seconds at 1M events)."""
    from iteratr.session.store import Store

    Store(log.parent.parent, log.parent.name).write_checkpoint(every=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--live", type=int, default=300, help="open tasks at the end (default 300)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--out", type=Path, required=True, help="the events.jsonl to write")
    parser.add_argument("--no-checkpoint", action="store_true", help="no checkpoint.jsonl beside the log")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    size = write(args.out, args.events, args.live, args.seed, checkpoint=not args.no_checkpoint)
    print(f"{args.out}: {args.events} events, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
