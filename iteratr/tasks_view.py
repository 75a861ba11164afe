"""``tasks.yaml``: the readable view of a session's tasks and notes, written with ruamel.yaml.

The view is derived: it always equals what replaying ``events.jsonl`` gives, and is rewritten after
every change. Tasks and notes are in numeric id order so that git diffs stay small.

ruamel needs about half a millisecond per task, which on a 500-task session would be most of the
time budget of one ``iteratr tool`` write. So each task and note is dumped on its own as a one-item
block sequence, cached (in the store's snapshot) with the values it was made from, and the file is
the concatenation of those fragments under the ``tasks:``/``notes:`` keys. That concatenation is
exactly what ruamel writes for the whole document; ``tests/test_tasks_view.py`` proves it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iteratr.state import Note, State, Task

HEADER = "# Written by iteratr from events.jsonl after every change; edits here are overwritten.\n"

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


def document(name: str, state: State) -> dict[str, Any]:
    """The whole view as plain data (what the file parses back to)."""
    counts = {k: v for k, v in state.counts().items() if v}
    return {
        "session": name,
        "complete": state.complete,
        "counts": counts,
        "tasks": [t.to_dict() for t in state.tasks.values()],
        "notes": [n.to_dict() for n in state.notes],
    }


def _fragments(
    keys: list[tuple[Any, ...]], objs: Sequence[Task | Note], cache: dict[str, Any], new_cache: dict[str, Any]
) -> list[str]:
    """One block-sequence item per object: from the cache when its values are unchanged, else from ruamel."""
    texts = []
    for key, obj in zip(keys, objs, strict=True):
        hit = cache.get(key[0])
        text = hit[1] if hit is not None and hit[0] == key else dump([obj.to_dict()])
        new_cache[key[0]] = (key, text)
        texts.append(text)
    return texts


def render(name: str, state: State, cache: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The file's text and the fragment cache to keep for next time.

    Cache keys are the values each piece was made from, so a stale or foreign cache only costs time.
    """
    cache = cache or {}
    new_cache: dict[str, Any] = {}
    counts = {k: v for k, v in state.counts().items() if v}
    head_key = ("", name, state.complete, tuple(counts.items()))
    hit = cache.get("")
    head = hit[1] if hit is not None and hit[0] == head_key else dump(
        {"session": name, "complete": state.complete, "counts": counts}
    )
    new_cache[""] = (head_key, head)
    parts = [HEADER, head]
    tasks = list(state.tasks.values())
    task_keys = [(t.id, t.content, t.status, t.priority, tuple(t.depends_on)) for t in tasks]
    note_keys = [(n.id, n.content, n.type, n.iteration) for n in state.notes]
    sections: list[tuple[str, list[tuple[Any, ...]], Sequence[Task | Note]]] = [
        ("tasks", task_keys, tasks),
        ("notes", note_keys, state.notes),
    ]
    for label, keys, objs in sections:
        parts.append(f"{label}:\n" if keys else f"{label}: []\n")
        parts += _fragments(keys, objs, cache, new_cache)
    return "".join(parts), new_cache


def write(path: Path, name: str, state: State, cache: dict[str, Any] | None) -> dict[str, Any]:
    text, new_cache = render(name, state, cache)
    # Derived data, so no fsync; the rename means a reader (or `git add`) never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return new_cache
