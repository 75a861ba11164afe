"""The parts of a row of the settings table in ``iteratr.config``: what a value may be, and how a flag is spelled.

The validators accept the typed values YAML gives and the text an env var or flag gives, and return the
canonical value or raise ``InvalidValue`` with a message that reads after the value ("is not a whole
number >= 0"). ``Option`` is how a setting is spelled on ``iteratr build``'s command line.
"""

from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass
from typing import Literal

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_DURATION = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([smh]?)\s*")
LOG_LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40}


class InvalidValue(ValueError):
    """A value a key does not accept. The message reads after the value: "is not a whole number >= 0"."""


# How a flag takes its value: "value" (-i N), "path" (a file path: -t PATH), "switch" (--headless),
# "negatable" (--auto-commit/--no-auto-commit) or "optional" (--push [REMOTE]: alone it means ``bare``).
OptionKind = Literal["value", "path", "switch", "negatable", "optional"]


@dataclass(frozen=True)
class Option:
    """How a setting is spelled on ``iteratr build``'s command line. ``iteratr.cli`` makes the click option."""

    names: tuple[str, ...]  # the short name first, if any: ("-i", "--iterations")
    help: str  # the line `iteratr build --help` shows
    metavar: str = ""  # what the value is, e.g. N, MODEL; "" for switches
    kind: OptionKind = "value"
    bare: str = ""  # kind "optional": the value when the flag comes alone (--push means origin)

    @property
    def long(self) -> str:
        return self.names[-1]

    @property
    def negation(self) -> str:
        return "--no-" + self.long[2:]

    @property
    def spelling(self) -> str:
        """As ``--help`` and the README write it: ``-i, --iterations N``, ``--auto-commit / --no-auto-commit``."""
        if self.kind == "negatable":
            return f"{self.long} / {self.negation}"
        names = ", ".join(self.names)
        if self.kind == "optional":
            return f"{names} [{self.metavar}]"
        return f"{names} {self.metavar}" if self.metavar else names

    def argv(self, value: object) -> list[str]:
        """The words that give ``value`` on a command line; none for None (not given) or a switch that is off."""
        if value is None:
            return []
        if self.kind == "switch":
            return [self.long] if value else []
        if self.kind == "negatable":
            return [self.long if value else self.negation]
        if self.kind == "optional":  # the value is optional, so it must be attached
            return [f"{self.long}={value}"]
        return [self.long, str(value)]


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


_SIZE = re.compile(r"\s*([0-9]+)\s*([kmg]?)i?b?\s*", re.IGNORECASE)


def size(value: object) -> int:
    """Bytes: a whole number, or with a unit (``50MB``, ``512k``, ``1G``; powers of 1024). 0 = no limit."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return int(value)
    if isinstance(value, str) and (match := _SIZE.fullmatch(value)):
        return int(match[1]) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match[2].lower()]
    raise InvalidValue("is not a size in bytes >= 0 (e.g. 52428800, 50MB, 512KB, 1GB)")


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


# Money: an amount, optionally with an ISO 4217 code before or after it, or a symbol before it.
CURRENCIES = frozenset(
    {
        *("USD", "EUR", "GBP", "JPY", "CNY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK"),
        *("PLN", "CZK", "HUF", "INR", "KRW", "BRL", "MXN", "SGD", "HKD", "ZAR", "TRY", "ILS"),
    }
)
_SYMBOLS = {"$": "USD", "US$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
_MONEY = re.compile(r"\s*(?:(?P<pre>[A-Za-z]{3}|US\$|[$€£¥])\s*)?(?P<n>[0-9]*\.?[0-9]+)\s*(?P<post>[A-Za-z]{3})?\s*")
MONEY_HELP = "an amount >= 0 like 5, 2.50, 5 USD, EUR 5 or $5 (0 or '' = no limit)"


def money(value: object) -> str:
    """A money budget, canonical: "" (no limit), "5" (in the agent's currency) or "5 USD"."""
    if value is None or value == "":
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise InvalidValue(f"is not {MONEY_HELP}")
        return "" if value == 0 else _decimal(float(value))
    match = _MONEY.fullmatch(value) if isinstance(value, str) else None
    if match is None or (match["pre"] and match["post"]):
        raise InvalidValue(f"is not {MONEY_HELP}")
    code = match["pre"] or match["post"] or ""
    currency = _SYMBOLS.get(code) or code.upper()
    if currency and currency not in CURRENCIES:
        raise InvalidValue(f"names an unknown currency {code!r}: use one of {', '.join(sorted(CURRENCIES))}")
    amount = float(match["n"])
    if amount == 0:
        return ""
    return f"{_decimal(amount)} {currency}".rstrip()


def _decimal(amount: float) -> str:
    """12.5 -> "12.5", 1e6 -> "1000000": never an exponent, which ``parse_money`` (and a person) reads back."""
    return f"{amount:.6f}".rstrip("0").rstrip(".")


def parse_money(text: str) -> tuple[float, str | None] | None:
    """A canonical money value (see ``money``) as (amount, currency or None); None for no limit."""
    if not text:
        return None
    amount, _, currency = text.partition(" ")
    return float(amount), currency or None


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


def permissions(value: object) -> object:
    """The agent's permission policy (``iteratr.agent.permissions``): kept as written, once it parses."""
    from iteratr.agent.permissions import parse_policy
    from iteratr.errors import ConfigError

    try:
        parse_policy(value)
    except ConfigError as exc:
        raise InvalidValue(f"is not a permission policy ({exc.message.removeprefix('permissions: ')})") from None
    return value
