"""The iterations part of the session's state: a window of the last ones live, every one on demand.

``State`` (``iteratr.session.state``) holds the slots; this is its iterations' half, kept apart so that neither
module grows past a screenful of concerns. Iterations are numbered upwards, so the last ``WINDOW`` numbers hold
every iteration still being written; older ones are in the archive, read only when all of them are asked for.
"""

from __future__ import annotations

from iteratr.session.model import Iteration
from iteratr.session.sums import ALL, Sums

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

WINDOW = 16  # iterations kept live: the prompt shows 5, the guards look back a few


class IterationsOfState:
    """The base of ``State``: its iterations' slots and what reads and changes them."""

    __slots__ = ("_all_its", "_archived_max", "_dirty", "_has_its", "_its", "_live_ns", "_max_n", "_sums")
    _archive: Any  # State's: where the archived iterations are read from
    _its: dict[int, Iteration]  # in memory: the window, those changed since the last save; all once read
    _all_its: bool
    _archived_max: int  # numbers up to this may be in the archive only (-1: none is; numbers start at 0)
    _dirty: set[int]  # changed since the last save
    _has_its: bool
    _live_ns: set[int]  # in the saved window: archived when they leave it
    _max_n: int
    _sums: Sums  # totals of the archived iterations (the guard rails' budgets)

    # -- iterations ------------------------------------------------------------------------------------

    @property
    def iterations(self) -> dict[int, Iteration]:
        """Every iteration by number, in number order (reads the archive the first time). Read-only: the
        reducer changes iterations through ``iteration_for_update`` and ``put_iteration``."""
        if not self._all_its:
            merged: dict[int, Iteration] = {}
            if self._archive is not None:
                for row in self._archive.iteration_rows():  # a later row of a number replaces an earlier one
                    merged[row[0]] = Iteration.from_row(row)
            merged.update(self._its)
            self._its, self._all_its = dict(sorted(merged.items())), True
        return self._its

    @iterations.setter
    def iterations(self, value: dict[int, Iteration]) -> None:
        self._its, self._all_its, self._dirty = dict(value), True, set(value)
        self._has_its = bool(value)
        self._max_n = max(value) if value else 0

    def archived_rows(self, kind: str) -> Iterator[Any]:
        """The archive's rows of ``kind``, streamed a saved batch at a time where the archive can (no list of all)."""
        if self._archive is None:
            return iter(())
        streamed = getattr(self._archive, "iter_rows", None)
        return streamed(kind) if streamed is not None else iter(getattr(self._archive, f"{kind[:-1]}_rows")())

    def iter_iteration_rows(self) -> Iterator[tuple[Any, ...]]:
        """Every iteration's row, streamed: archived ones first, then those in memory; a number may come more than
        once, and its later row replaces the earlier (as ``iterations`` merges them). Holds no list of all."""
        if not self._all_its:
            yield from self.archived_rows("iterations")
        for n in sorted(self._its):
            yield self._its[n].row()

    def iteration(self, n: int) -> Iteration | None:
        found = self._its.get(n)
        if found is None and not self._all_its and n <= self._archived_max:
            found = self.iterations.get(n)
        return found

    def iteration_for_update(self, n: int) -> Iteration | None:
        found = self.iteration(n)
        if found is not None:
            self._dirty.add(n)
        return found

    def put_iteration(self, it: Iteration) -> None:
        if it.n.__class__ is not int:  # numbers are compared and counted: a hand-edited "3" is skipped (reducer)
            raise ValueError(f"bad iteration number {it.n!r}")
        if not self._all_its and it.n <= self._archived_max:  # replaces an archived one: the sums must see it
            self.iterations  # noqa: B018 - reads them all
        self._its[it.n] = it
        self._dirty.add(it.n)
        if not self._has_its or it.n > self._max_n:
            self._max_n, self._has_its = it.n, True

    def iteration_totals(self, run: str | None = ALL) -> list[Any]:
        """[iterations, tokens, tokens known, cost, cost known, partial] of the session (``ALL``) or of one run,
        without reading the archive (``iteratr.session.sums``)."""
        if self._all_its:
            return Sums().total(run, (self._its[n] for n in sorted(self._its)))
        return self._sums.total(run, (self._its[n] for n in sorted(self._its)))

    def recent_iterations(self, count: int) -> list[Iteration]:
        """The last ``count`` (at most ``WINDOW``) iterations by number, without reading the archive."""
        low = self._max_n - min(count, WINDOW)
        return [self._its[n] for n in sorted(n for n in self._its if n > low)]
