"""The files ``Store`` derives from the log and rewrites: ``tasks.yaml`` (the view) and ``checkpoint.jsonl``.

Both are rendered from the state under the log's lock, and both are skipped when nothing they show changed, which
is most of the time in a loop: the view for events it does not show (the loop's bookkeeping), the checkpoint until
``checkpoint.EVERY`` lines have gone by. A skip first compares the file's bytes with what this process wrote or
found sealed (a read and a compare, no lock, no render): an edit or a deletion by anyone else is never taken for
iteratr's own file, whatever its timestamps say.
"""

from __future__ import annotations

import contextlib

from iteratr import safe_open
from iteratr.errors import UsageError
from iteratr.session import checkpoint, journal
from iteratr.session.store_files import digest_of

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.state: only mypy needs typing
    from pathlib import Path
    from typing import Any

    from iteratr.session.replay import Progress
    from iteratr.session.snapshot import Snapshot
    from iteratr.session.state import State

CHECKPOINT_DIGEST = "checkpoint.digest"  # beside the journal: the digest of the checkpoint this clone last wrote

# Events that change nothing ``tasks.yaml`` shows (its counts, completion, open tasks and last notes): the loop's
# bookkeeping appends them several times an iteration, and rendering 300 open tasks each time cost milliseconds.
# Any other type (a new one included) renders the view.
VIEW_NEUTRAL = frozenset(
    {"iteration.started", "iteration.ended", "iteration.summary", "inbox.consumed", "hook.ran", "tamper"}
)


class DerivedFiles:
    """The writers of the derived files, as part of ``Store`` (whose attributes these are)."""

    name: str
    data_dir: Path
    tasks_path: Path
    checkpoint_path: Path
    journal_path: Path | None
    _tasks_rel: str
    _checkpoint_rel: str
    _snapshot: Snapshot
    _done: Progress
    _view_bytes: bytes | None
    _view_at: tuple[int, int] | None
    _checkpoint_lines: int | None

    def exists(self) -> bool:
        raise NotImplementedError

    def _locked(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def _load_from(self, f: Any, *, save_snapshot: bool) -> State:
        raise NotImplementedError

    def _view_intact(self) -> bool:
        """Whether ``tasks.yaml`` is still the file this store last rendered: then events that change nothing it
        shows need no render."""
        if self._view_bytes is None:
            return False
        try:
            return safe_open.read_bytes(self.data_dir, self._tasks_rel, len(self._view_bytes) + 1) == self._view_bytes
        except (OSError, UsageError):
            return False

    def write_view(self, state: State) -> None:
        import marshal

        from iteratr.session import tasks_view

        old: dict[str, Any] = {}
        for label, blob in self._snapshot.view.items():
            with contextlib.suppress(ValueError, EOFError, TypeError):
                old[label] = marshal.loads(blob)
        text, new = tasks_view.render(self.name, state, old)
        # Derived data, so not durable; the rename means a reader (or `git add`) never sees half a file.
        data = text.encode("utf-8")
        self._view_bytes, self._view_at = None, None  # not known to be there until the write is done
        safe_open.atomic_write(self.data_dir, self._tasks_rel, data, 0o644, durable=False)
        self._view_bytes = data
        view = self._snapshot.view
        self._snapshot.view = {
            label: view[label] if label in old and entry is old[label] else marshal.dumps(entry)
            for label, entry in new.items()
        }

    def write_checkpoint(self, every: int = checkpoint.EVERY) -> bool:
        """Before the loop stages the log for a commit: write ``checkpoint.jsonl`` afresh when ``every`` lines were
        added since the one there, or when the file there is not the one this clone last wrote (an agent's edit, a
        deletion: never committed). Returns whether it wrote one."""
        if not self.exists():
            return False
        seal = self.journal_path.with_name(CHECKPOINT_DIGEST) if self.journal_path is not None else None
        # Not due by the lines this process has seen (others' appends since count at its next read), and the file the
        # one sealed: the common case, answered without the lock, a read of the state or of the checkpoint's header.
        seen = self._checkpoint_lines
        fresh = seen is not None and self._done.lines - seen < every
        if fresh and seal is not None and digest_of(seal, None) == digest_of(self.data_dir, self._checkpoint_rel):
            return False
        with self._locked() as f:
            state = self._load_from(f, save_snapshot=False)
            found = checkpoint.header(self.data_dir, self._checkpoint_rel)
            lines = found["lines"] if found else 0
            due = self._done.lines - lines >= every
            if not due and seal is not None:
                due = digest_of(seal, None) != digest_of(self.data_dir, self._checkpoint_rel)
            if not due:
                self._checkpoint_lines = lines if isinstance(lines, int) else None
                return False
            blob = checkpoint.render(state, self._done)
            safe_open.atomic_write(self.data_dir, self._checkpoint_rel, blob, 0o644, durable=False)
            if seal is not None:
                seal.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                seal.write_bytes(journal.digest(blob))
            self._checkpoint_lines = self._done.lines
            return True
