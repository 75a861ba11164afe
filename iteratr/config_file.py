"""One YAML config file: read it with line numbers, update it in place, write it atomically.

This module knows YAML and files, not the keys: ``iteratr.config`` validates what is read and what is
written. ruamel.yaml is imported inside the functions: importing ``iteratr.config`` must stay cheap.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from iteratr.errors import ConfigError

NEW_FILE_HEADER = "# iteratr configuration. `iteratr config` shows every value and where it comes from.\n"


def show(value: object) -> str:
    """A value as a person wrote it, for error messages: 'text', true, null, 12."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value) if isinstance(value, str) else repr(plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


def plain(value: object) -> object:
    """ruamel's scalar subclasses (HexInt, ScalarFloat, CommentedMap ...) as plain Python values."""
    if isinstance(value, bool) or type(value).__name__ == "ScalarBoolean":  # an anchored YAML bool
        return bool(value)
    for kind in (int, float, str):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: keeps comments and order, and records line numbers
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long command line
    return yaml


def _load_yaml(path: Path, shown: str) -> tuple[Any, str]:
    """The parsed document (None when empty) and the file's text. One-line ConfigError on any problem."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not UTF-8 text (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read: {exc.strerror or exc}") from None
    try:
        return _yaml().load(text), text
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        problem = " ".join(str(exc.problem or exc.context or "cannot parse").split())
        context = ""
        if exc.context and exc.problem:
            other = exc.context_mark
            on = f" on line {other.line + 1}" if other is not None and mark and other.line != mark.line else ""
            context = f" ({' '.join(str(exc.context).split())}{on})"
        raise ConfigError(f"{where}: invalid YAML: {problem}{context}") from None
    except YAMLError as exc:
        position = getattr(exc, "position", None)
        where = f"{shown}:{text.count(chr(10), 0, position) + 1}" if isinstance(position, int) else shown
        reason = getattr(exc, "reason", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {reason}") from None


def _mapping_or_error(data: Any, shown: str) -> Any:
    from ruamel.yaml.comments import CommentedMap

    if data is not None and not isinstance(data, CommentedMap):
        kind = "a list" if isinstance(data, list) else f"the value {show(data)}"
        lc = getattr(data, "lc", None)  # a list knows its line; a plain scalar does not
        line = lc.line + 1 if lc is not None else 1
        raise ConfigError(
            f"{shown}:{line}: the file must be a mapping of keys to values (like 'iterations: 5'), not {kind}"
        )
    return data


def entries(path: Path, shown: str) -> Iterator[tuple[str, object, int]]:
    """``(key, value, line)`` for each key of the file, as written (values are plain, not yet validated)."""
    data = _mapping_or_error(_load_yaml(Path(path), shown)[0], shown)
    for raw_key, raw_value in (data or {}).items():
        yield str(raw_key), plain(raw_value), data.lc.key(raw_key)[0] + 1


def update(path: Path, values: Mapping[str, object], *, force: bool = False) -> None:
    """Set ``values`` (already validated) in the file, keeping its comments, order and other keys.

    A value of None removes the key. ``force`` starts the file over. The file is replaced atomically (``fsutil``), so
    a failure leaves the old file whole. A symlink is followed, so a file kept in a dotfiles repository
    stays a link.
    """
    path = Path(path)
    target = path.resolve() if path.is_symlink() else path
    prefix, data = NEW_FILE_HEADER, None
    if target.exists() and not force:
        shown = str(path)
        try:
            loaded, text = _load_yaml(target, shown)
            data = _mapping_or_error(loaded, shown)
        except ConfigError as exc:
            raise ConfigError(f"{exc.message}; fix it, or start the file over with --force") from None
        # ruamel drops a document that holds only comments; keep them by writing them back first.
        prefix = "" if data is not None else (text if text.endswith("\n") or not text else text + "\n")
    if data is None:
        from ruamel.yaml.comments import CommentedMap

        data = CommentedMap()
    for name, value in values.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    out = io.StringIO()
    if data:
        _yaml().dump(data, out)
    _atomic_write(target, prefix + out.getvalue())


def _atomic_write(path: Path, text: str) -> None:
    from iteratr import fsutil

    path.parent.mkdir(parents=True, exist_ok=True)
    old_mode = path.stat().st_mode & 0o7777 if path.exists() else None
    with fsutil.atomic_writer(path, mode=0o666) as fd:  # a new file: 0o666 minus the umask
        if old_mode is not None:
            os.fchmod(fd, old_mode)  # beyond the umask: a 0o600 file with a token in it stays 0o600
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(fd, data) :]
