"""Layered configuration: the keys iteratr knows, where their values come from, and the config files.

Precedence, highest first: CLI flags > ``ITERATR_<KEY>`` environment variables > ``./iteratr.yml`` >
``$XDG_CONFIG_HOME/iteratr/iteratr.yml`` (``~/.config/iteratr/iteratr.yml``) > built-in defaults.
Every value, from any layer, goes through its key's validator, so a bad value stops the command with one
line naming where it came from (file and line, env var or flag), the key and what is accepted.

Rules worth knowing:

- A key set to YAML null (``model:`` with nothing after it) counts as not set: the layer below applies.
- An empty environment variable sets a text key to ``""`` (so ``ITERATR_PUSH=`` turns pushing off) and
  counts as not set for any other key.
- Booleans accept true/false/yes/no/on/off/1/0 in any case, in files as well as env vars (YAML 1.2 reads
  ``yes`` as text, and people write it anyway). Durations accept a number of seconds or 90s/30m/1h.
- ``~`` is expanded in path keys (``data_dir``, ``log_file``, ``template``).

ruamel.yaml is imported inside the functions that need it: ``iteratr tool`` must stay fast.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from iteratr.errors import ConfigError, UsageError

CONFIG_NAME = "iteratr.yml"
ENV_PREFIX = "ITERATR_"
_T = TypeVar("_T")
_NEW_FILE_HEADER = "# iteratr configuration. `iteratr config` shows every value and where it comes from.\n"


class InvalidValue(ValueError):
    """A value a key does not accept. The message reads after the value: "is not a whole number >= 0"."""


@dataclass(frozen=True)
class Key:
    name: str
    type: type  # the Python type of a valid value (float for durations), e.g. for building a CLI option
    default: object
    help: str
    validate: Callable[[object], object]  # returns the canonical value or raises InvalidValue

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


# --- validators: each accepts the typed values YAML gives and the text an env var or flag gives ---------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smh]?)\s*")
_LOG_LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue("is not text (put it in quotes)")
    return str(value)


def _path(value: object) -> str:
    text = _text(value)
    return os.path.expanduser(text) if text else text


def _nonempty_path(value: object) -> str:
    if not _text(value).strip():
        raise InvalidValue("is not a directory path (it must not be empty)")
    return _path(value)


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidValue("is not true or false (also accepted: yes/no, on/off, 1/0)")


def _whole(value: object, minimum: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        number = int(value.strip())
    else:
        number = -1
    if number < minimum:
        raise InvalidValue(f"is not a whole number >= {minimum}")
    return number


def _seconds(value: object, *, zero_ok: bool) -> float | int:
    number: float | None = None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
            number = float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]
    except OverflowError:  # an int too big for a float
        number = None
    if number is None or not math.isfinite(number) or number < 0 or (number == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise InvalidValue(f"is not a number of seconds {bound} (e.g. 90, 90s, 30m, 1h)")
    return int(number) if number.is_integer() else number


def _agent(value: object) -> str:
    text = _text(value)
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise InvalidValue(f"is not a command line ({exc}), e.g. 'opencode acp'") from None
    if not argv:
        raise InvalidValue("is not a command line: it is empty (e.g. 'opencode acp')")
    return text


def _log_level(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in _LOG_LEVELS:
        return value.strip().lower()
    raise InvalidValue(f"is not one of {', '.join(_LOG_LEVELS)}")


def _remote(value: object) -> str:
    text = _text(value).strip()
    # A leading '-' would reach `git push` as an option, not a remote.
    if text.startswith("-") or any(ch.isspace() for ch in text):
        raise InvalidValue("is not a git remote name (or '' for no push)")
    return text


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key(
            "model",
            str,
            "",
            "model id, e.g. anthropic/claude-sonnet-4; empty = the agent's default",
            lambda v: _text(v).strip(),
        ),
        Key("agent", str, "opencode acp", "ACP agent command line, split like a shell", _agent),
        Key("auto_commit", bool, True, "commit the agent's work each iteration (off: only .iteratr state)", _bool),
        Key("data_dir", str, ".iteratr", "directory for session state", _nonempty_path),
        Key("log_level", str, "debug", "level of the log_file: debug, info, warn or error", _log_level),
        Key("log_file", str, "", "log file path; empty = no log file", _path),
        Key("iterations", int, 0, "iterations per run; 0 = no limit", lambda v: _whole(v, 0)),
        Key("headless", bool, False, "never ask questions or open the wizard", _bool),
        Key("template", str, "", "prompt template path; empty = built-in", _path),
        Key("iteration_timeout", float, 1800, "seconds one iteration may take", lambda v: _seconds(v, zero_ok=False)),
        Key("idle_timeout", float, 600, "seconds the agent may stay silent", lambda v: _seconds(v, zero_ok=False)),
        Key("max_failures", int, 3, "consecutive failed iterations before build stops", lambda v: _whole(v, 1)),
        Key(
            "retry_delay",
            float,
            5,
            "seconds before the first retry; doubles each time",
            lambda v: _seconds(v, zero_ok=True),
        ),
        Key("push", str, "", "git remote to push the session branch to; empty = no push", _remote),
    )
}


def _show(value: object) -> str:
    """A value as a person wrote it, for error messages: 'text', true, null, 12."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = repr(value) if isinstance(value, str) else repr(_plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: object) -> object:
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


# --- resolved configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    value: object
    # "default", "global file <path>:<line>", "project file <path>:<line>", "env ITERATR_X" or "flag --x"
    source: str


@dataclass(frozen=True)
class Config:
    values: dict[str, Resolved]

    def __getitem__(self, key: str) -> object:
        return self.values[key].value

    def source(self, key: str) -> str:
        return self.values[key].source

    def to_json(self) -> dict[str, dict[str, object]]:
        return {k: {"value": r.value, "source": r.source} for k, r in self.values.items()}

    def _typed(self, key: str, kind: type[_T]) -> _T:
        value = self.values[key].value
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise TypeError(f"config {key}: {value!r} is not a {kind.__name__}")
        return value

    @property
    def model(self) -> str:
        return self._typed("model", str)

    @property
    def agent(self) -> str:
        return self._typed("agent", str)

    @property
    def auto_commit(self) -> bool:
        return self._typed("auto_commit", bool)

    @property
    def data_dir(self) -> str:
        return self._typed("data_dir", str)

    @property
    def log_level(self) -> str:
        return self._typed("log_level", str)

    @property
    def log_file(self) -> str:
        return self._typed("log_file", str)

    @property
    def iterations(self) -> int:
        return self._typed("iterations", int)

    @property
    def headless(self) -> bool:
        return self._typed("headless", bool)

    @property
    def template(self) -> str:
        return self._typed("template", str)

    @property
    def iteration_timeout(self) -> float:
        return self._typed("iteration_timeout", float)

    @property
    def idle_timeout(self) -> float:
        return self._typed("idle_timeout", float)

    @property
    def max_failures(self) -> int:
        return self._typed("max_failures", int)

    @property
    def retry_delay(self) -> float:
        return self._typed("retry_delay", float)

    @property
    def push(self) -> str:
        return self._typed("push", str)

    @property
    def agent_argv(self) -> list[str]:
        return shlex.split(self.agent)

    @property
    def log_level_number(self) -> int:
        """The ``logging`` module's number for ``log_level``."""
        return _LOG_LEVELS[self.log_level]


def global_config_path(env: Mapping[str, str] = os.environ) -> Path:
    xdg = env.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative XDG_CONFIG_HOME is invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        base = Path(xdg)
    else:
        home = env.get("HOME")
        base = (Path(home) if home else Path.home()) / ".config"
    return base / "iteratr" / CONFIG_NAME


def project_config_path(cwd: Path) -> Path:
    return Path(cwd) / CONFIG_NAME


def load_config(*, cwd: Path, env: Mapping[str, str] = os.environ, flags: Mapping[str, object] | None = None) -> Config:
    """Resolve every key. Raises ConfigError for a bad file or env var, UsageError for a bad flag value."""
    values = {name: Resolved(key.default, "default") for name, key in KEYS.items()}
    global_path, project_path = global_config_path(env), project_config_path(cwd)
    layers = [("global file", global_path), ("project file", project_path)]
    if _same_file(global_path, project_path):
        layers = layers[1:]
    for label, path in layers:
        if not path.exists():
            continue
        shown = _display(path, cwd)
        for name, (value, line) in read_config_file(path, display=shown).items():
            values[name] = Resolved(value, f"{label} {shown}:{line}")
    for name, key in KEYS.items():
        raw = env.get(key.env)
        if raw is None or (raw == "" and key.type is not str):
            continue
        try:
            values[name] = Resolved(_plain(key.validate(raw)), f"env {key.env}")
        except InvalidValue as exc:
            raise ConfigError(f"environment variable {key.env}: {_show(raw)} {exc}") from None
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if name not in KEYS:
            raise ValueError(f"load_config: no config key {name!r} for a flag")
        key = KEYS[name]
        try:
            values[name] = Resolved(_plain(key.validate(value)), f"flag {key.flag}")
        except InvalidValue as exc:
            raise UsageError(f"{key.flag}: {_show(value)} {exc}") from None
    return Config(values)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _display(path: Path, cwd: Path) -> str:
    """Paths under the working directory are shown relative to it, as a person would type them."""
    try:
        return str(Path(path).relative_to(cwd))
    except ValueError:
        return str(path)


# --- config files --------------------------------------------------------------------------------------


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
        kind = "a list" if isinstance(data, list) else f"the value {_show(data)}"
        lc = getattr(data, "lc", None)  # a list knows its line; a plain scalar does not
        line = lc.line + 1 if lc is not None else 1
        raise ConfigError(
            f"{shown}:{line}: the file must be a mapping of keys to values (like 'iterations: 5'), not {kind}"
        )
    return data


def read_config_file(path: Path, *, display: str | None = None) -> dict[str, tuple[object, int]]:
    """Validated ``{key: (value, line)}`` from one file. A key set to null is left out: it is not set."""
    shown = display or str(path)
    data = _mapping_or_error(_load_yaml(Path(path), shown)[0], shown)
    result: dict[str, tuple[object, int]] = {}
    for raw_key, raw_value in (data or {}).items():
        line = data.lc.key(raw_key)[0] + 1
        name = str(raw_key)
        if name not in KEYS:
            raise ConfigError(f"{shown}:{line}: {_unknown_key(name)}")
        if raw_value is None:
            continue
        try:
            result[name] = (_plain(KEYS[name].validate(_plain(raw_value))), line)
        except InvalidValue as exc:
            raise ConfigError(f"{shown}:{line}: {name}: {_show(raw_value)} {exc}") from None
    return result


def _unknown_key(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name.lower().replace("-", "_"), list(KEYS), n=1, cutoff=0.6)
    if close:
        return f"unknown key {name!r}: did you mean {close[0]!r}?"
    return f"unknown key {name!r}: known keys are {', '.join(KEYS)}"


def write_config_file(path: Path, updates: Mapping[str, object], *, force: bool = False) -> None:
    """Set keys in a config file, keeping the rest of it (comments, order, other keys) as it was.

    A value of None removes the key. ``force`` starts the file over with only ``updates``. The file is
    replaced atomically (a temp file renamed over it), so a failure leaves the old file whole. A symlink
    is followed, so a config file kept in a dotfiles repository stays a link.
    """
    path = Path(path)
    checked: dict[str, object] = {}
    for name, value in updates.items():
        if name not in KEYS:
            raise ConfigError(f"cannot write {path}: {_unknown_key(name)}")
        try:
            checked[name] = None if value is None else _plain(KEYS[name].validate(value))
        except InvalidValue as exc:
            raise ConfigError(f"cannot write {path}: {name}: {_show(value)} {exc}") from None
    target = path.resolve() if path.is_symlink() else path
    prefix, data = _NEW_FILE_HEADER, None
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
    for name, value in checked.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    import io

    out = io.StringIO()
    if data:
        _yaml().dump(data, out)
    _atomic_write(target, prefix + out.getvalue())


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    old_mode = path.stat().st_mode & 0o7777 if path.exists() else None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # a new file: 0o666 minus the umask
    try:
        if old_mode is not None:
            os.fchmod(fd, old_mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# --- `iteratr config` ----------------------------------------------------------------------------------


def _render_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return '""'
    return str(value)


def render_text(cfg: Config) -> str:
    """One aligned line per key: name, value, source. No trailing newline (``click.echo`` adds one)."""
    rows = [(name, _render_value(r.value), r.source) for name, r in cfg.values.items()]
    width_key = max(len(row[0]) for row in rows)
    width_value = max(len(row[1]) for row in rows)
    return "\n".join(f"{k:<{width_key}}  {v:<{width_value}}  {s}" for k, v, s in rows)
