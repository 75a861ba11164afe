"""The inbox pump: what the user saves into ``inbox.md`` becomes ``user.message`` events while a build runs.

``run.inbox`` knows the files (taking, releasing, moving oversized text aside); this module is the
glue between them, the event log and the screen. It takes at the loop's fixed points (start-up and
before each prompt) and, through a watcher task, whenever the file changes, so a message saved
during a long turn is printed at once and reaches the next prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from iteratr.run import inbox
from iteratr.session.events import make_event
from iteratr.session.state import Event, State
from iteratr.session.store import Store

if TYPE_CHECKING:
    from iteratr.output import Printer

# How much of a message its ``>>>`` line shows: the whole of a short one; a long one is cut with "…" (the
# whole text is in the event log and reaches the agent as written).
SHOWN_LINES = 5
SHOWN_CHARS = 500


def shown_message(text: str) -> list[str]:
    """The lines a message is printed as under its ``>>>`` line: at most ``SHOWN_LINES`` lines and
    ``SHOWN_CHARS`` characters, the last ending in "…" where something was left out."""
    whole = text.strip()
    lines = whole.splitlines()[:SHOWN_LINES]
    kept: list[str] = []
    room = SHOWN_CHARS
    for line in lines:
        kept.append(line[:room])
        room -= len(kept[-1])
        if room <= 0:
            break
    if "\n".join(kept) != whole:
        kept[-1] = kept[-1].rstrip() + " …"
    return kept


class InboxPump:
    def __init__(self, store: Store, printer: Printer) -> None:
        self.store = store
        self.out = printer
        self.session_dir = store.dir
        # What the log has recorded as consumed, as of this pump's last take: a take needs only that, so it
        # reads the store only before it knows it (the loop passes the state it holds; issue 17).
        self._consumed: dict[str, int] | None = None

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Take new text whenever the inbox changes, for as long as the block runs."""
        stop = asyncio.Event()
        watcher = asyncio.create_task(inbox.watch(self.session_dir, self._on_change, stop))
        try:
            yield
        finally:
            stop.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(watcher, 5)

    async def _on_change(self) -> None:
        self.take()

    def take(self, state: State | None = None) -> State | None:
        """Record what the inbox holds; the state after recording it, or None when nothing was recorded.

        ``state``: the state the caller holds (the loop's), so that no read of the store is needed; without it
        (the watcher) the pump goes by what it last recorded, and reads the store only the first time. A
        consumed offset older than the log's only makes the take offer text again, which the recording refuses
        under the lock (``decide``). A file error is a warning, not the end of the run (nor of the watcher):
        nothing is recorded, so the next take tries the same text again."""
        try:
            return self._take(state)
        except OSError as exc:
            self.out.warn(f"inbox: could not take new text, will try again: {exc}")
            return None

    def _consumed_now(self, state: State | None) -> dict[str, int]:
        if state is None and self._consumed is None:
            state = self.store.load()
        consumed = dict(state.inbox_consumed) if state is not None else {}
        for source, end in (self._consumed or {}).items():  # the later of what each side knows
            consumed[source] = max(end, consumed.get(source, 0))
        self._consumed = consumed
        return consumed

    def _take(self, state: State | None) -> State | None:
        consumed = self._consumed_now(state)
        taken = inbox.take(self.session_dir, consumed)
        if not taken:
            # Taking files are deleted only after a grace period, so a later take with nothing new
            # is what cleans up those left by an earlier one.
            inbox.release(self.session_dir, consumed)
            return None
        found: list[tuple[str, dict[str, Any]]] = []
        for item in taken:
            if item.warning:
                self.out.warn(f"inbox: {item.warning}")
            if item.rejected_path is not None:
                self.out.warn(
                    f"inbox: message over {inbox.MAX_MESSAGE_BYTES} bytes moved aside to {item.rejected_path}"
                )
            if item.text:
                data = {"text": item.text, "source": item.source, "start": item.start, "end": item.end}
                found.append(("user.message", data))
            else:
                found.append(("inbox.consumed", {"source": item.source, "end": item.end}))

        def decide(s: State) -> list[Event]:
            # A take recorded concurrently (the watcher and a fixed point) is never recorded twice.
            fresh = [
                (type_, data)
                for type_, data in found
                if type_ != "user.message" or s.inbox_consumed.get(data["source"], 0) < data["end"]
            ]
            ids = iter(s.new_message_ids(sum(1 for type_, _ in fresh if type_ == "user.message")))
            return [
                make_event(type_, {"id": next(ids), **data} if type_ == "user.message" else data, s.current_iteration)
                for type_, data in fresh
            ]

        after, made = self.store.transact(decide)
        for event in made:
            if event["type"] == "user.message":
                first, *rest = shown_message(event["data"]["text"])
                self.out.line(f">>> message from the user ({event['data']['id']}): {first}", "user")
                for line in rest:
                    self.out.line(f"    {line}", "user")
        self._consumed = dict(after.inbox_consumed)
        inbox.release(self.session_dir, after.inbox_consumed)
        return after
