"""A known session for the report's tests, written straight into the store (no agent, milliseconds).

Two runs, six iterations (one of each outcome and a planning one), four tasks, notes of three types, two
messages (one delivered into #3, one pending), and text an attacker would write in a task, a note, an
error and a message. ``EXPECTED`` holds what the page must show of it.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from iteratr.session.events import make_event
from iteratr.session.store import Store
from tests.conftest import git

HOSTILE = "<script>alert(1)</script>"
RUN_A = "2026-01-02T03:00:00.000000Z"
RUN_B = "2026-01-03T09:30:00.000000Z"


class EXPECTED:
    """What the page must show of ``known_events()``."""

    bars = 6
    points = 6
    open_after = (4, 3, 3, 2, 2, 1)  # TAS-4 blocked still counts: it needs someone
    tasks = 4
    note_types = ("learning", "stuck", "tip")
    messages = 2
    runs = 2
    outcomes = ("ok", "ok", "failed", "ok", "interrupted", "timeout")


def _usage(tokens: int, cost: float) -> dict[str, Any]:
    return {"total_tokens": tokens, "cost": cost, "currency": "USD", "source": "agent-record"}


def _iteration(
    n: int, kind: str, run: str, outcome: str, body: list[dict[str, Any]], **end: Any
) -> list[dict[str, Any]]:
    started = make_event("iteration.started", {"n": n, "kind": kind, "run": run}, n)
    ended = make_event("iteration.ended", {"n": n, "outcome": outcome, "run": run, **end}, n)
    return [started, *body, ended]


def _status(task: str, status: str, n: int) -> dict[str, Any]:
    return make_event("task.status", {"id": task, "status": status}, n)


def _note(num: int, kind: str, content: str, n: int) -> dict[str, Any]:
    return make_event("note.added", {"id": f"NOT-{num}", "type": kind, "content": content}, n)


def known_events() -> list[dict[str, Any]]:
    tasks = [
        make_event(
            "task.added", {"id": f"TAS-{i}", "content": text, "status": "remaining", "priority": 2, "depends_on": []}, 0
        )
        for i, text in enumerate(["write the parser", "add the --shout option", HOSTILE, "ask about the API key"], 1)
    ]
    return [
        *_iteration(0, "planning", RUN_A, "ok", tasks, duration=12.5, usage=_usage(1500, 0.002)),
        *_iteration(
            1,
            "main",
            RUN_A,
            "ok",
            [
                _status("TAS-1", "in_progress", 1),
                _note(1, "learning", "the tests live in tests/unit", 1),
                _status("TAS-1", "completed", 1),
                make_event("iteration.summary", {"summary": "Completed TAS-1: the parser"}, 1),
            ],
            duration=41.3,
            usage=_usage(12000, 0.031),
        ),
        *_iteration(
            2,
            "main",
            RUN_A,
            "failed",
            [_status("TAS-2", "in_progress", 2)],
            duration=95.0,
            error="agent crashed: <img src=x onerror=alert(2)>",
            usage=_usage(8000, 0.02),
        ),
        make_event("user.message", {"id": "MSG-1", "text": f"please also {HOSTILE} document it"}, 2),
        make_event("user.delivered", {"ids": ["MSG-1"], "iteration": 3}, 3),
        *_iteration(
            3, "main", RUN_A, "ok", [_status("TAS-2", "completed", 3)], duration=60.0, usage=_usage(9000, 0.025)
        ),
        *_iteration(
            4,
            "main",
            RUN_B,
            "interrupted",
            [_status("TAS-3", "in_progress", 4), _note(2, "stuck", f"stuck on {HOSTILE}", 4)],
            duration=20.0,
        ),
        *_iteration(
            5,
            "main",
            RUN_B,
            "timeout",
            [
                _status("TAS-3", "completed", 5),
                _status("TAS-4", "blocked", 5),
                _note(3, "tip", "run ruff first", 5),
                make_event("user.message", {"id": "MSG-2", "text": "and the docs"}, 5),
            ],
            duration=1800.0,
            error="the turn went past iteration_timeout",
            usage=_usage(30000, 0.09),
        ),
    ]


def commit_known_session(repo: Path, name: str = "SPEC") -> None:
    """The session committed on ``iteratr/NAME`` as a build leaves it; ``main`` checked out again, so the
    session is known only from its branch."""
    git(repo, "switch", "-q", "-c", f"iteratr/{name}")
    store = Store(repo / ".iteratr", name)
    store.create()
    store.append(*known_events())
    git(repo, "add", "-f", ".iteratr/.gitignore", f".iteratr/{name}/events.jsonl", f".iteratr/{name}/tasks.yaml")
    git(repo, "commit", "-q", "-m", f"iteratr({name}): #5")
    git(repo, "switch", "-q", "main")


class Page(HTMLParser):
    """The page as html.parser sees it: every start tag with its attributes, and the text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, css_class: str) -> list[dict[str, str]]:
        return [attrs for t, attrs in self.tags if t == tag and css_class in attrs.get("class", "").split()]

    def count(self, tag: str, css_class: str) -> int:
        return len(self.having(tag, css_class))


EXPECTED_COUNTS = {
    "bars": EXPECTED.bars,
    "points": EXPECTED.points,
    "tasks": EXPECTED.tasks,
    "note_types": len(EXPECTED.note_types),
    "messages": EXPECTED.messages,
    "runs": EXPECTED.runs,
    "run_rows": EXPECTED.runs,
}  # expected_counts of the known session's page, in the parser and in the browser alike


def expected_counts(page: Page) -> dict[str, int]:
    """What the known session's page holds, counted the way EXPECTED states it."""
    return {
        "bars": page.count("rect", "bar"),
        "points": page.count("circle", "point"),
        "tasks": page.count("tr", "task"),
        "note_types": page.count("section", "note-type"),
        "messages": page.count("tr", "message"),
        "runs": page.count("line", "run-boundary"),
        "run_rows": page.count("tr", "run-start"),
    }
