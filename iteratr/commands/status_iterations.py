"""The iterations' side of ``iteratr status``'s fold (``status_spans``): counts and totals over every iteration,
kept as running sums, with only the last ``WINDOW`` iterations held whole.

``status`` shows how many iterations ended, by outcome and time for the session and its last run, the runs, and the
last failure. Reading every iteration for that costs what the history costs (about 150 MB at a million events), so
the fold keeps the recent iterations as records (they may still change: an iteration ends after it starts) and adds
the older ones to sums as they leave the window. The rules are the reducer's (``iteratr.session.reducer``): a
start makes an iteration (again), an end sets its outcome, a summary for an unknown number makes a ``manual`` one.
An event that changes an iteration already summed (a line written by hand for an old number) marks the fold
``stale``; it is then folded again from the start with every iteration kept whole, so the figures stay exact.
"""

from __future__ import annotations

from typing import Any

WINDOW = 16
FAILED = ("failed", "timeout")


def _record(n: int, kind: str, ts: Any, run: Any) -> dict[str, Any]:
    return {
        "n": n,
        "kind": kind,
        "outcome": None,
        "started": ts,
        "ended": None,
        "duration": None,
        "tokens": None,
        "cost": None,
        "summary": None,
        "error": None,
        "run": run,
    }


class IterationFold:
    __slots__ = ("archived_max", "by_run", "ended", "last_failure", "live", "runs", "stale", "window")

    def __init__(self, window: int | None = WINDOW) -> None:
        self.window = window  # None: keep every iteration whole (after a stale fold)
        self.live: dict[int, dict[str, Any]] = {}
        self.archived_max = -1
        self.ended = 0  # ended iterations summed, not manual ones
        self.by_run: dict[str, list[Any]] = {}  # "" (the session) or a run -> [outcomes, seconds]
        self.runs: list[str] = []  # in the order they began
        self.last_failure: dict[str, Any] | None = None
        self.stale = False

    def add(self, ev: dict[str, Any]) -> None:
        kind, data = ev.get("type"), ev.get("data")
        if not isinstance(data, dict) or kind not in ("iteration.started", "iteration.ended", "iteration.summary"):
            return
        n = data.get("n") if kind != "iteration.summary" else ev.get("iteration", 0)
        if n.__class__ is not int:
            return
        if n <= self.archived_max:  # it changes one already summed
            self.stale = True
            return
        it = self.live.get(n)
        if kind == "iteration.started":
            self.live[n] = _record(n, str(data.get("kind", "main")), ev.get("ts"), data.get("run"))
            self._archive()
        elif kind == "iteration.ended" and it is not None:
            usage = data.get("usage") or {}
            usage = usage if isinstance(usage, dict) else {}
            tokens, cost = usage.get("total_tokens"), usage.get("cost")
            it.update(outcome=data.get("outcome"), ended=ev.get("ts"), duration=data.get("duration"))
            it.update(error=data.get("error"), run=data.get("run") or it["run"])
            it["tokens"] = tokens if tokens.__class__ is int else it["tokens"]
            it["cost"] = float(cost) if cost.__class__ in (int, float) else it["cost"]
        elif kind == "iteration.summary":
            if it is None:
                it = self.live[n] = _record(n, "manual", ev.get("ts"), None)
                it["outcome"] = "ok"
                self._archive()
            it["summary"] = data.get("summary")

    def _archive(self) -> None:
        if self.window is None or not self.live:
            return
        low = max(self.live) - self.window
        for n in sorted(k for k in self.live if k <= low):
            self._sum(self.live.pop(n))
            self.archived_max = n

    def _sum(self, it: dict[str, Any]) -> None:
        if it["run"] and it["run"] not in self.runs:
            self.runs.append(it["run"])
        if it["kind"] == "manual" or it["outcome"] is None:
            return
        self.ended += 1
        for key in ("", it["run"]) if it["run"] else ("",):
            part = self.by_run.setdefault(key, [{}, 0.0])
            part[0][it["outcome"]] = part[0].get(it["outcome"], 0) + 1
            part[1] += it["duration"] or 0.0
        if it["outcome"] in FAILED:
            self.last_failure = it

    def summary(self) -> dict[str, Any]:
        """What status shows of every iteration, as if none were summed: a copy of the sums plus the live ones."""
        copy = IterationFold(None)
        copy.ended, copy.runs, copy.last_failure = self.ended, list(self.runs), self.last_failure
        copy.by_run = {k: [dict(v[0]), v[1]] for k, v in self.by_run.items()}
        for n in sorted(self.live):
            copy._sum(self.live[n])
        last = copy.runs[-1] if copy.runs else None
        session = copy.by_run.get("", [{}, 0.0])
        run = copy.by_run.get(last, [{}, 0.0]) if last else None
        return {
            "ended": copy.ended,
            "runs": copy.runs,
            "last_failure": copy.last_failure,
            "session": {"outcomes": session[0], "duration": session[1]},
            "last_run": {"run": last, "outcomes": run[0], "duration": run[1]} if run is not None else None,
        }

    def pack(self) -> tuple[Any, ...]:
        return (self.window, self.live, self.archived_max, self.ended, self.by_run, self.runs, self.last_failure)

    @classmethod
    def unpack(cls, packed: tuple[Any, ...]) -> IterationFold:
        fold = cls(packed[0])
        fold.live, fold.archived_max, fold.ended, fold.by_run, fold.runs, fold.last_failure = packed[1:]
        return fold
