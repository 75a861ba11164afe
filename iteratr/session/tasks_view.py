"""``tasks.yaml``: the readable view of a session's tasks and notes, written with ruamel.yaml.

The view is derived: it always equals what replaying ``events.jsonl`` gives, and is rewritten after
every change. It shows the counts of every status, the tasks not done (remaining, in progress, blocked) and the
last ``VIEW_NOTES`` notes: the done tasks and all the notes of a long session would make every write (and every
commit of the file) cost the session's history; ``iteratr tool task-list --all`` and ``note-list`` list them all.
Tasks are in numeric id order and notes in log order, so that git diffs stay small.

ruamel needs about half a millisecond per task, which on a 500-task session would be most of the
time budget of one ``iteratr tool`` write. So each task and note is dumped on its own as a one-item
block sequence, cached (in the store's snapshot) with the values it was made from, and the file is
the concatenation of those fragments under the ``tasks:``/``notes:`` keys. That concatenation is
exactly what ruamel writes for the whole document; ``tests/test_tasks_view.py`` proves it.

Importing ruamel alone costs more than the rest of a write on a small session, so an item whose every
text is one ruamel certainly writes plain or in single quotes (short printable ASCII, not a keyword,
see ``_scalar``) is written here without it, byte for byte as ruamel would; anything else goes to
ruamel. The tests compare the two on every kind of awkward text.
"""

from __future__ import annotations

import io
from pathlib import Path

from iteratr.fsutil import atomic_write
from iteratr.session.state import Note, State

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.session.state: typing costs about 2 ms, a twentieth of an `iteratr tool` write
    from collections.abc import Callable
    from typing import Any

    Section = tuple[list[tuple[Any, ...]], list[int], str]  # item keys, offsets of the items in the text, text

HEADER = "# Written by iteratr from events.jsonl after every change; edits here are overwritten.\n"
VIEW_NOTES = 30  # the notes shown: the last ones, as the prompt shows them

_yaml: Any = None


def _dumper() -> Any:
    global _yaml
    if _yaml is None:
        from ruamel.yaml import YAML
        from ruamel.yaml.representer import SafeRepresenter

        class Representer(SafeRepresenter):
            """Double-quote texts holding NEL, LS or PS: ruamel writes those raw in single quotes as line
            breaks, and a load then folds them into spaces (found by tests/test_tasks_view.py)."""

            def represent_str(self, data: str) -> Any:
                if "\x85" in data or "\u2028" in data or "\u2029" in data:
                    return self.represent_scalar("tag:yaml.org,2002:str", data, style='"')
                return super().represent_str(data)

        Representer.add_representer(str, Representer.represent_str)
        _yaml = YAML(typ="safe", pure=True)
        _yaml.Representer = Representer
        _yaml.default_flow_style = False
        _yaml.sort_base_mapping_type_on_output = False
        _yaml.width = 4096  # keep long task texts on one line: friendlier diffs
        _yaml.allow_unicode = True
    return _yaml


def dump(data: Any) -> str:
    buf = io.StringIO()
    _dumper().dump(data, buf)
    return buf.getvalue()


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._/()+=;!',-")
_KEYWORDS = frozenset({"true", "false", "null", "yes", "no", "on", "off", "y", "n"})
_LEADING_INDICATORS = frozenset('#,[]{}&*!|>"%@`')  # forbid plain at the start, whatever follows


def _scalar(text: object) -> str | None:
    """``text`` as ruamel writes it as a block mapping value, if that is certain; else None.

    Plain: starts with an ASCII letter, only characters from ``_PLAIN`` (no ``:``, no ``#``), no
    trailing space, not a word YAML reads as a boolean or null. Single-quoted: printable ASCII without
    ``'`` (ruamel double-quotes those) that cannot be plain because of a ``": "``, ``" #"``, a final
    ``:`` or a leading indicator. Both at most 1,000 characters, far from ruamel's line width.
    """
    if not isinstance(text, str) or not 0 < len(text) <= 1000 or text[-1] == " ":
        return None
    first = text[0]
    if first.isascii() and first.isalpha() and _PLAIN.issuperset(text) and text.lower() not in _KEYWORDS:
        return text
    if (
        first != " "
        and "'" not in text
        and all(" " <= ch <= "~" for ch in text)
        and (": " in text or " #" in text or text.endswith(":") or first in _LEADING_INDICATORS)
    ):
        return f"'{text}'"
    return None


def _whole(value: object) -> str | None:
    return str(value) if type(value) is int else None


def _item_text(item: dict[str, Any]) -> str:
    """One task or note as a one-item block sequence: written here when certain (see ``_scalar``), else by ruamel."""
    keys = tuple(item)
    fields: list[tuple[str, str | None]] | None = None
    if keys == ("id", "content", "status", "priority", "depends_on") and isinstance(item["depends_on"], list):
        deps = [_scalar(d) for d in item["depends_on"]]
        if None not in deps:
            fields = [(k, _scalar(item[k])) for k in keys[:3]] + [("priority", _whole(item["priority"]))]
            tail = "  depends_on:\n" + "".join(f"  - {d}\n" for d in deps) if deps else "  depends_on: []\n"
    elif keys == ("id", "type", "content", "iteration"):
        fields = [(k, _scalar(item[k])) for k in keys[:3]] + [("iteration", _whole(item["iteration"]))]
        tail = ""
    if fields is None or any(value is None for _, value in fields):
        return dump([item])
    lines = [f"  {key}: {value}\n" for key, value in fields]
    return "- " + lines[0][2:] + "".join(lines[1:]) + tail


def _head_text(name: str, complete: bool, counts: dict[str, int]) -> str:
    session = _scalar(name)
    if session is None or session != name or any(_scalar(k) != k or _whole(v) is None for k, v in counts.items()):
        return dump({"session": name, "complete": complete, "counts": counts})
    listed = "".join(f"  {k}: {v}\n" for k, v in counts.items())
    return f"session: {name}\ncomplete: {'true' if complete else 'false'}\n" + (
        f"counts:\n{listed}" if counts else "counts: {}\n"
    )


def document(name: str, state: State) -> dict[str, Any]:
    """The whole view as plain data (what the file parses back to)."""
    counts = {k: v for k, v in state.counts().items() if v}
    return {
        "session": name,
        "complete": state.complete,
        "counts": counts,
        "tasks": [t.to_dict() for t in state.tasks.live()],
        "notes": [n.to_dict() for n in state.recent_notes(VIEW_NOTES)],
    }


def _valid(entry: Any) -> bool:
    return (
        isinstance(entry, tuple)
        and len(entry) == 3
        and isinstance(entry[0], list)
        and isinstance(entry[1], list)
        and isinstance(entry[2], str)
        and len(entry[1]) == len(entry[0]) + 1
        and entry[1][0] == 0
        and entry[1][-1] == len(entry[2])
    )


def _offsets(texts: list[str], start: int = 0) -> list[int]:
    offsets = [start]
    for text in texts:
        offsets.append(offsets[-1] + len(text))
    return offsets


def _section(keys: list[tuple[Any, ...]], item: Callable[[int], dict[str, Any]], old: Any) -> Section:
    """One block-sequence item per key; ruamel dumps ``item(i)`` only for items not in ``old`` as they are.

    The common cases cost one list comparison each: nothing changed, or items were only appended (a
    new note, new tasks). Anything else reuses the old text of every item whose key is unchanged.
    """
    if not _valid(old):
        texts = [_item_text(item(i)) for i in range(len(keys))]
        return keys, _offsets(texts), "".join(texts)
    old_keys, old_offsets, old_text = old
    if keys == old_keys:
        return old  # type: ignore[no-any-return]  # the very same object: the store then keeps its marshalled bytes as they are
    n = len(old_keys)
    if len(keys) > n and keys[:n] == old_keys:
        texts = [_item_text(item(i)) for i in range(n, len(keys))]
        return keys, old_offsets[:-1] + _offsets(texts, len(old_text)), old_text + "".join(texts)
    index = {k[0]: i for i, k in enumerate(old_keys) if isinstance(k, tuple) and k}
    texts = []
    for i, key in enumerate(keys):
        j = index.get(key[0])
        if j is not None and old_keys[j] == key:
            texts.append(old_text[old_offsets[j] : old_offsets[j + 1]])
        else:
            texts.append(_item_text(item(i)))
    return keys, _offsets(texts), "".join(texts)


def render(name: str, state: State, cache: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The file's text, and the cache to keep for next time: the head and one ``Section`` per list.

    Cache keys are the values each piece was made from, so a stale or foreign cache only costs time.
    An entry that is still valid is returned as the very object passed in.
    """
    cache = cache if isinstance(cache, dict) else {}
    new_cache: dict[str, Any] = {}
    counts = {k: v for k, v in state.counts().items() if v}
    head_key = (name, state.complete, tuple(counts.items()))
    hit = cache.get("head")
    if isinstance(hit, tuple) and len(hit) == 2 and hit[0] == head_key:
        new_cache["head"] = hit
    else:
        new_cache["head"] = (head_key, _head_text(name, state.complete, counts))
    parts = [HEADER, new_cache["head"][1]]
    tasks = state.tasks.live()
    task_keys = [(t.id, t.content, t.status, t.priority, tuple(t.depends_on)) for t in tasks]
    note_keys = state.recent_note_rows(VIEW_NOTES)  # (id, content, type, iteration): live, never the archive
    sections: list[tuple[str, list[tuple[Any, ...]], Callable[[int], dict[str, Any]]]] = [
        ("tasks", task_keys, lambda i: tasks[i].to_dict()),
        ("notes", note_keys, lambda i: Note(*note_keys[i]).to_dict()),
    ]
    for label, keys, item in sections:
        section = new_cache[label] = _section(keys, item, cache.get(label))
        parts.append(f"{label}:\n" if keys else f"{label}: []\n")
        parts.append(section[2])
    return "".join(parts), new_cache


def write(path: Path, name: str, state: State, cache: dict[str, Any] | None) -> dict[str, Any]:
    text, new_cache = render(name, state, cache)
    # Derived data, so not durable; the rename means a reader (or `git add`) never sees half a file.
    atomic_write(path, text, durable=False)
    return new_cache
