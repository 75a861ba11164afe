"""Compact forms of what grows with a session's history but must stay answerable cheaply.

``IdSet``: the tasks whose ``on_task_complete`` hook ran, one bit per task number rather than a string each
(a long session completes tens of thousands of tasks). ``Messages``: the user's messages, with the delivered
ones (history) in the archive and only those still waiting, or changed since the last save, in memory.
"""

from __future__ import annotations

from iteratr.session.model import Message, id_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from typing import Any

# A hand-written id with a huge number is kept as a string instead: 7 digits at most.


def number_of(some_id: object, prefix: str) -> int | None:
    """``TAS-12`` -> 12 for ``prefix`` ``TAS-``; None for any other spelling (``TAS-012``, ``TAS-0``, a huge one).
    Called for every task event of a replay: plain string tests, no exceptions."""
    if some_id.__class__ is not str or not some_id.startswith(prefix):
        return None
    digits: str = some_id[len(prefix) :]
    if not digits.isascii() or not digits.isdigit() or digits[0] == "0" or len(digits) > 7:
        return None
    return int(digits)


class IdSet:
    """A set of ``TAS-n`` ids: a bit per number, and any other string as it is."""

    __slots__ = ("_bits", "_other")

    def __init__(self, packed: tuple[bytes, list[str]] | None = None, ids: Iterable[str] = ()) -> None:
        self._bits = bytearray(packed[0]) if packed else bytearray()
        self._other: set[str] = set(packed[1]) if packed else set()
        for some_id in ids:
            self.add(some_id)

    def add(self, some_id: str) -> None:
        n = number_of(some_id, "TAS-")
        if n is None:
            self._other.add(some_id)
            return
        byte, bit = divmod(n, 8)
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte + 1 - len(self._bits) + 256))
        self._bits[byte] |= 1 << bit

    def discard(self, some_id: str) -> None:
        n = number_of(some_id, "TAS-")
        if n is None:
            self._other.discard(some_id)
            return
        byte, bit = divmod(n, 8)
        if byte < len(self._bits):
            self._bits[byte] &= ~(1 << bit) & 0xFF

    def __contains__(self, some_id: object) -> bool:
        n = number_of(some_id, "TAS-")
        if n is None:
            return some_id in self._other
        byte, bit = divmod(n, 8)
        return byte < len(self._bits) and bool(self._bits[byte] >> bit & 1)

    def __iter__(self) -> Iterator[str]:
        for byte, value in enumerate(self._bits):
            if value:
                for bit in range(8):
                    if value >> bit & 1:
                        yield f"TAS-{byte * 8 + bit}"
        yield from sorted(self._other)

    def __len__(self) -> int:
        return sum(bin(value).count("1") for value in self._bits if value) + len(self._other)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdSet | set | frozenset):
            return set(self) == set(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like the set it stands for

    def pack(self) -> tuple[bytes, list[str]]:
        return bytes(self._bits.rstrip(b"\0")), sorted(self._other)


class Messages:
    """Every user message by id: those waiting (and any changed since the last save) in memory; delivered ones in
    the archive, counted, and read only when every message is asked for."""

    __slots__ = ("_all", "_archived", "_live", "_load")

    def __init__(self, load: Callable[[], list[tuple[Any, ...]]] | None = None, archived: bytes = b"") -> None:
        self._live: dict[str, Message] = {}
        self._archived = IdSet((archived, [])) if archived else IdSet()  # numbers of archived MSG-n, as TAS- bits
        self._load = load
        self._all: dict[str, Message] | None = self._live if not archived else None

    def _is_archived(self, mid: str) -> bool:
        n = number_of(mid, "MSG-")
        return n is not None and f"TAS-{n}" in self._archived

    def get(self, mid: str, default: Message | None = None) -> Message | None:
        """A message in memory (waiting or recent); an archived one was delivered, and delivery is all that changes."""
        found = self._live.get(mid)
        if found is None and self._all is not None:
            found = self._all.get(mid)
        return found if found is not None else default

    def __getitem__(self, mid: str) -> Message:
        found = self.get(mid)
        if found is None:
            found = self._everything().get(mid)
        if found is None:
            raise KeyError(mid)
        return found

    def __contains__(self, mid: object) -> bool:
        return isinstance(mid, str) and (mid in self._live or self._is_archived(mid))

    def items(self) -> list[tuple[str, Message]]:
        return list(self._everything().items())

    def __setitem__(self, mid: str, msg: Message) -> None:
        self._live[mid] = msg
        if self._all is not None and self._all is not self._live:
            self._all[mid] = msg

    def __len__(self) -> int:
        if self._all is not None:
            return len(self._all)
        return len(self._archived) + sum(1 for mid in self._live if not self._is_archived(mid))

    def __bool__(self) -> bool:
        return len(self) > 0

    def waiting(self) -> list[Message]:
        return [m for m in self._live.values() if m.delivered_to is None]

    def _everything(self) -> dict[str, Message]:
        if self._all is None:
            merged: dict[str, Message] = {}
            for mid, text, ts, delivered_to in self._load() if self._load is not None else []:
                msg = merged[mid] = Message(mid, text, ts)
                msg.delivered_to = delivered_to
            merged.update(self._live)
            self._all = dict(sorted(merged.items(), key=lambda item: _sort_key(item[0])))
        return self._all

    def values(self) -> list[Message]:
        return list(self._everything().values())

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._everything()))

    def history_delta(self) -> list[tuple[Any, ...]]:
        return [
            (m.id, m.text, m.ts, m.delivered_to)
            for m in self._live.values()
            if m.delivered_to is not None and number_of(m.id, "MSG-") is not None
        ]

    def history_saved(self, rows: list[tuple[Any, ...]]) -> None:
        if self._all is self._live and rows:  # it was all there was: with no archive to read back, keep a copy
            self._all = dict(self._live) if self._load is None else None
        for row in rows:
            self._archived.add(f"TAS-{number_of(row[0], 'MSG-')}")
            del self._live[row[0]]

    def live_rows(self) -> list[tuple[Any, ...]]:
        return [(m.id, m.text, m.ts, m.delivered_to) for m in self._live.values()]

    def archived_bits(self) -> bytes:
        return self._archived.pack()[0]


def _sort_key(mid: str) -> tuple[int, str]:
    try:
        return id_number(mid), mid
    except (ValueError, IndexError):
        return 0, mid
