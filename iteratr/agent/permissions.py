"""The agent's permission policy: which ACP ``session/request_permission`` requests iteratr approves.

Config (key ``permissions``), one of::

    permissions: allow            # default: approve, choosing "allow once" so every request stays visible
    permissions: deny             # reject everything the agent asks
    permissions:                  # a mode and rules; the first rule that matches decides
      mode: allow
      rules:
        - deny execute "git push*"
        - deny edit,delete,move outside-work-tree
        - deny edit "/etc/*"
        - deny fetch
    permissions:                  # a bare list of rules: mode allow
      - deny execute "rm -rf *"

A rule is ``<allow|deny> <kinds> [<pattern> | outside-work-tree]``, split like a shell line:

- ``kinds``: ACP tool kinds joined by commas (read, edit, delete, move, search, execute, think, fetch,
  switch_mode, other) or ``*`` for all. A request without a kind counts as ``other``.
- ``pattern``: a shell glob (``fnmatch``, case-sensitive; quote it when it has spaces) on what the request
  is about: the command for ``execute`` (the whole line, and each part between ``;``, ``&&``, ``||``,
  ``|``, so ``cd x && git push`` meets ``git push*``), else the paths (``locations`` and path-like
  ``raw_input`` fields) and ``url``, and always the title. No pattern: every request of those kinds.
- ``outside-work-tree``: any path of the request is outside the work tree once made absolute and
  resolved (symlinks followed), or the request names no path at all: a rule meant to fence edits in
  must not let an edit it cannot place through. Only for read, edit, delete and move.

Matching leans toward denying: a ``deny`` pattern matches when ANY of the request's subjects matches; an
``allow`` pattern (an exception under ``mode: deny``) only when EVERY subject does. Patterns are a guard
rail against a confused agent, not a sandbox: a command can always be spelled another way.

The option chosen: allowing picks ``allow_once`` (``allow_always`` only when no once is offered, as
"always" would hide later requests from us); denying picks ``reject_once`` then ``reject_always``, and
when the agent offers no reject option the request is answered "cancelled" (``option_id=None``).

Pure: plain values in, a :class:`Decision` out, no ``acp`` import, so it is cheap to test and to load.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Protocol

from iteratr.errors import ConfigError

TOOL_KINDS = ("read", "edit", "delete", "move", "search", "execute", "think", "fetch", "switch_mode", "other")
MODES = ("allow", "deny")
OUTSIDE = "outside-work-tree"
PATH_KINDS = ("read", "edit", "delete", "move")
_PATH_KEYS: tuple[str, ...] = ("path", "file_path", "filePath", "filepath", "abs_path", "target", "source")
_PATH_KEYS += ("destination", "old_path", "new_path", "oldPath", "newPath", "directory", "cwd")
_SEPARATORS = re.compile(r"\s*(?:;|&&|\|\||\||\n)\s*")
ACCEPTED_RULE = (
    "accepted: '<allow|deny> <kinds> [\"<glob>\" | outside-work-tree]', kinds from "
    + ", ".join(TOOL_KINDS)
    + " or *, joined by commas"
)
ACCEPTED = "accepted: allow, deny, a list of rules, or a mapping with 'mode' and 'rules'"


class OptionLike(Protocol):
    """What :func:`decide` needs of an ACP ``PermissionOption`` (which fits as it is)."""

    @property
    def option_id(self) -> str: ...
    @property
    def kind(self) -> str: ...


@dataclass(frozen=True)
class Rule:
    text: str  # as written, for the reason line
    allow: bool
    kinds: frozenset[str]
    pattern: str | None = None
    outside: bool = False


@dataclass(frozen=True)
class Policy:
    mode: str = "allow"
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Decision:
    option_id: str | None  # None: answer "cancelled"
    allowed: bool
    reason: str  # one line for the output and the log
    # The part of the reason that says what decided ("mode allow", "rule 2 '…' (…)"), for a shorter line;
    # derived from the reason, so not compared.
    why: str = field(default="", compare=False)


DEFAULT = Policy()


def parse_rule(text: object, where: str = "permissions") -> Rule:
    """One rule string; a ``ConfigError`` naming ``where``, the rule and what is accepted."""

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{where}: {problem}; {ACCEPTED_RULE}")

    if not isinstance(text, str):
        raise fail(f"rule {text!r} is not text")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise fail(f"rule {text!r}: {exc}") from None
    if len(words) not in (2, 3) or words[0] not in ("allow", "deny"):
        raise fail(f"rule {text!r} is not <allow|deny> <kinds> [pattern]")
    kinds = frozenset(TOOL_KINDS) if words[1] == "*" else frozenset(words[1].split(","))
    unknown = sorted(kinds - set(TOOL_KINDS))
    if unknown:
        raise fail(f"rule {text!r}: unknown tool kind {unknown[0]!r}")
    outside = len(words) == 3 and words[2] == OUTSIDE
    if outside and not kinds <= set(PATH_KINDS):
        raise fail(f"rule {text!r}: {OUTSIDE} applies to {', '.join(PATH_KINDS)} only")
    pattern = words[2] if len(words) == 3 and not outside else None
    return Rule(text=text, allow=words[0] == "allow", kinds=kinds, pattern=pattern, outside=outside)


def parse_policy(value: object, where: str = "permissions") -> Policy:
    """The config value (a mode, a list of rules, or ``{mode, rules}``) as a Policy; None is the default."""
    if value is None:
        return DEFAULT
    if isinstance(value, str):
        if value not in MODES:
            raise ConfigError(f"{where}: unknown mode {value!r}; {ACCEPTED}")
        return Policy(mode=value)
    if isinstance(value, list):
        return Policy(rules=tuple(parse_rule(r, f"{where} rule {n}") for n, r in enumerate(value, 1)))
    if isinstance(value, Mapping):
        extra = sorted(str(k) for k in value if k not in ("mode", "rules"))
        if extra:
            raise ConfigError(f"{where}: unknown key {extra[0]!r}; {ACCEPTED}")
        mode = value.get("mode", "allow")
        if mode not in MODES:
            raise ConfigError(f"{where}: mode {mode!r} is not allow or deny; {ACCEPTED}")
        rules = value.get("rules") or []
        if not isinstance(rules, list):
            raise ConfigError(f"{where}: rules is not a list; {ACCEPTED_RULE}")
        return Policy(mode=str(mode), rules=tuple(parse_rule(r, f"{where} rule {n}") for n, r in enumerate(rules, 1)))
    raise ConfigError(f"{where}: {value!r} is not a permission policy; {ACCEPTED}")


# --- what a request is about ----------------------------------------------------------------------------


def request_paths(raw_input: object, locations: Sequence[str]) -> list[str]:
    """Every path the request names: its ``locations`` and the path-like fields of ``raw_input``."""
    found = [p for p in locations if p]
    if isinstance(raw_input, Mapping):
        found += [v for k in _PATH_KEYS if isinstance(v := raw_input.get(k), str) and v]
    return found


def command_of(title: str, raw_input: object) -> str | None:
    if isinstance(raw_input, Mapping):
        command = raw_input.get("command") or raw_input.get("cmd")
        if isinstance(command, list):
            return shlex.join(str(c) for c in command)
        if isinstance(command, str):
            return command
    return None


def _subjects(kind: str, title: str, raw_input: object, locations: Sequence[str]) -> list[str]:
    subjects = [title] if title else []
    command = command_of(title, raw_input)
    if command is not None:
        subjects += [command, *(part for part in _SEPARATORS.split(command) if part)]
    subjects += request_paths(raw_input, locations)
    if isinstance(raw_input, Mapping) and isinstance(url := raw_input.get("url"), str):
        subjects.append(url)
    return subjects


def _outside(path: str, work_tree: Path) -> bool:
    top = Path(os.path.realpath(work_tree))
    target = Path(os.path.realpath(os.path.join(top, os.path.expanduser(path))))
    return not target.is_relative_to(top)


def _matches(rule: Rule, kind: str, title: str, raw_input: object, locations: Sequence[str], work_tree: Path) -> str:
    """What made the rule match (for the reason), or "" when it does not."""
    if kind not in rule.kinds:
        return ""
    if rule.outside:
        paths = request_paths(raw_input, locations)
        if not paths:
            return "no path given" if not rule.allow else ""
        outside = [p for p in paths if _outside(p, work_tree)]
        hit = outside if not rule.allow else (outside if len(outside) == len(paths) else [])
        return f"{hit[0]} is outside the work tree" if hit else ""
    if rule.pattern is None:
        return f"kind {kind}"
    subjects = _subjects(kind, title, raw_input, locations)
    matched = [s for s in subjects if fnmatchcase(s, rule.pattern)]
    if rule.allow and len(matched) != len(subjects):
        return ""
    return f"{matched[0]!r}" if matched else ""


def _pick(options: Sequence[OptionLike], kinds: Sequence[str]) -> str | None:
    for wanted in kinds:
        for option in options:
            if option.kind == wanted:
                return option.option_id
    return None


def decide(
    policy: Policy,
    *,
    kind: str | None,
    title: str,
    raw_input: object,
    locations: Sequence[str],
    options: Sequence[OptionLike],
    work_tree: Path,
) -> Decision:
    """Answer one permission request under ``policy``. Never raises for odd input: it decides."""
    kind = kind if kind in TOOL_KINDS else "other"
    allowed, why = policy.mode == "allow", f"mode {policy.mode}"
    for number, rule in enumerate(policy.rules, 1):
        hit = _matches(rule, kind, title, raw_input, locations, work_tree)
        if hit:
            allowed, why = rule.allow, f"rule {number} {rule.text!r} ({hit})"
            break
    if allowed:
        option_id = _pick(options, ("allow_once", "allow_always"))
        if option_id is None:
            reason = f"cancelled {kind} {title!r}: allowed by {why}, but no allow option offered"
            return Decision(None, False, reason, why)
        return Decision(option_id, True, f"allowed {kind} {title!r} by {why}", why)
    option_id = _pick(options, ("reject_once", "reject_always"))
    verb = "denied" if option_id is not None else "cancelled (no reject option offered)"
    return Decision(option_id, False, f"{verb} {kind} {title!r} by {why}", why)
