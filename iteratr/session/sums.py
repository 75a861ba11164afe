"""Running totals of the iterations a long session has archived: the session's and each run's.

The guard rails check budgets before every iteration from the whole session's and the run's totals (iterations,
tokens, cost); summing every iteration each time would read the history. The state keeps these sums over the
iterations in its archive (``iteratr.session.state``), and adds the few live ones when asked, in number order,
so a session whose iterations are all live sums exactly as before.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from iteratr.session.model import Iteration

ALL = "*"  # the session's key: runs are named by their start time, never this
_RUN, _TOKENS, _COST, _SOURCE = 9, 11, 12, 13  # in ROW_FIELDS


def empty() -> list[Any]:
    """[iterations, tokens, tokens known, cost, cost known, some turn counted its last call only]"""
    return [0, 0, False, 0.0, False, False]


def add(total: list[Any], tokens: Any, cost: Any, source: Any) -> None:
    total[0] += 1
    if isinstance(tokens, int):
        total[1] += tokens
        total[2] = True
    if isinstance(cost, int | float):
        total[3] += float(cost)
        total[4] = True
    if source == "last-call":
        total[5] = True


class Sums:
    __slots__ = ("by",)

    def __init__(self, packed: dict[Any, list[Any]] | None = None) -> None:
        self.by: dict[Any, list[Any]] = packed if packed is not None else {}

    def add_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        for row in rows:
            for key in (ALL, row[_RUN]):
                add(self.by.setdefault(key, empty()), row[_TOKENS], row[_COST], row[_SOURCE])

    def total(self, key: Any, live: Iterable[Iteration]) -> list[Any]:
        """The sums for ``key`` (``ALL`` or a run), the archived part and then ``live`` (in number order)."""
        total = list(self.by.get(key, empty()))
        for it in live:
            if key == ALL or it.run == key:
                add(total, it.tokens, it.cost, it.usage_source)
        return total
