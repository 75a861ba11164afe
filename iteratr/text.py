"""Wording shared by several outputs: times, durations and the one-line form of a task.

The prompt, ``iteratr tool`` and ``iteratr status`` say these things the same way, so an agent that
reads a task line in its prompt recognises it in ``task-list``. Standard library only: the tool path
imports this.
"""

from __future__ import annotations

from collections.abc import Sequence


def clock(ts: str | None) -> str:
    """``2026-11-24T04:40:00.123456Z`` -> ``2026-11-24 04:40 UTC``."""
    return f"{ts[:10]} {ts[11:16]} UTC" if ts else "?"


def counted(count: int, noun: str) -> str:
    """``1 task``, ``4 tasks``: a count with its noun, singular for one (nouns that take an ``s``)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def duration_text(seconds: float | None) -> str:
    """``12.3s``, ``4m05s``, ``2h07m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def task_line(task_id: str, priority: int, status: str, content: str, depends_on: Sequence[str]) -> str:
    """``TAS-3 [P4] remaining: write tests (after TAS-1, TAS-2)``."""
    deps = f" (after {', '.join(depends_on)})" if depends_on else ""
    return f"{task_id} [P{priority}] {status}: {content}{deps}"
