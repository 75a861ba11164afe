"""What each setting accepts: the validators of the settings table in ``iteratr.config``.

Each accepts the typed values YAML gives and the text an env var or flag gives, and returns the canonical
value or raises ``InvalidValue`` with a message that reads after the value ("is not a whole number >= 0").
"""

from __future__ import annotations

import math
import os
import re
import shlex

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smh]?)\s*")
LOG_LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}


class InvalidValue(ValueError):
    """A value a key does not accept. The message reads after the value: "is not a whole number >= 0"."""


def text(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidValue("is not text (put it in quotes)")
    return str(value)


def stripped(value: object) -> str:
    return text(value).strip()


def path(value: object) -> str:
    given = text(value)
    return os.path.expanduser(given) if given else given


def nonempty_path(value: object) -> str:
    if not text(value).strip():
        raise InvalidValue("is not a directory path (it must not be empty)")
    return path(value)


def boolean(value: object) -> bool:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidValue("is not true or false (also accepted: yes/no, on/off, 1/0)")


def whole(value: object, minimum: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        number = int(value.strip())
    else:
        number = -1
    if number < minimum:
        raise InvalidValue(f"is not a whole number >= {minimum}")
    return number


def seconds(value: object, *, zero_ok: bool) -> float | int:
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


def agent(value: object) -> str:
    given = text(value)
    try:
        argv = shlex.split(given)
    except ValueError as exc:
        raise InvalidValue(f"is not a command line ({exc}), e.g. 'opencode acp'") from None
    if not argv:
        raise InvalidValue("is not a command line: it is empty (e.g. 'opencode acp')")
    return given


def log_level(value: object) -> str:
    if isinstance(value, str) and value.strip().lower() in LOG_LEVELS:
        return value.strip().lower()
    raise InvalidValue(f"is not one of {', '.join(LOG_LEVELS)}")


def remote(value: object) -> str:
    given = text(value).strip()
    # A leading '-' would reach `git push` as an option, not a remote.
    if given.startswith("-") or any(ch.isspace() for ch in given):
        raise InvalidValue("is not a git remote name (or '' for no push)")
    return given
