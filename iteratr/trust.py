"""The trust boundary: a repository's own files may not run code or touch paths outside it until the user says so.

A cloned repository can carry ``.iteratr.hooks.yml`` (every hook is a shell command) and an ``iteratr.yml``
that sets ``agent`` (a command line iteratr starts), ``log_file`` (a file written anywhere) or a ``template``
outside the work tree (a file read into the prompt sent to a model). git never clones hook settings, and
direnv needs ``direnv allow``; iteratr is as careful. The global config and the user's own flags and env
vars need no trust: the user wrote them.

Trust is recorded per absolute file path as the sha256 of the exact bytes the user was shown, in
``<state dir>/trust.json`` (``$XDG_STATE_HOME/iteratr``), outside every repository, so a repository can
never ship its own approval. Any change to a file's bytes makes it untrusted again: a content hash, not a
path, is what was approved. ``ITERATR_TRUST=1`` or ``--trust`` trusts for one run without recording
(unattended runs); :func:`override_from` turns those into the one boolean :func:`require_trusted` takes.

Which ``iteratr.yml`` keys need trust is one table, :data:`TRUST_KEYS`: a later key that runs code or
touches paths outside the work tree is one more entry. The YAML is parsed (ruamel, imported lazily) only to
see which keys are set; validating values stays the config loader's job.

Core code: no click, never exits; problems are ``UsageError``/``ConfigError`` subclasses (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iteratr.boundary import crash_log_path
from iteratr.config import CONFIG_NAME, global_config_path
from iteratr.errors import ConfigError, IteratrError, UsageError
from iteratr.fsutil import atomic_write

HOOKS_NAME = ".iteratr.hooks.yml"
TRUST_FILE = "trust.json"
ENV_SWITCH = "ITERATR_TRUST"
TRUST_COMMAND = "iteratr trust"
_TRUE = {"1", "true", "yes", "on"}


class UntrustedError(UsageError):
    """A repository file that runs code (or reaches outside the work tree) has not been trusted. Exit 2."""


# --- which iteratr.yml keys need trust ----------------------------------------------------------------


def _is_set(value: object, work_tree: Path) -> bool:
    return value is not None and value != ""


def _outside_work_tree(value: object, work_tree: Path) -> bool:
    if not isinstance(value, str) or not value:
        return False  # not a path: the config loader refuses it anyway
    path = Path(os.path.expanduser(value))
    target = (path if path.is_absolute() else work_tree / path).resolve()  # follows symlinks: where it reads
    return not target.is_relative_to(work_tree.resolve())


def _allows_anything(value: object, work_tree: Path) -> bool:
    """A repository's ``permissions`` that allow anything could undo the user's own ``deny`` (the project file
    outranks the global one). Only a policy that allows nothing (mode deny, no allow rules) is harmless."""
    from iteratr.agent.permissions import parse_policy
    from iteratr.errors import ConfigError as BadPolicy

    if value is None or value == "":
        return False
    try:
        policy = parse_policy(value)
    except BadPolicy:
        return False  # the config loader refuses it with file and line
    return policy.mode != "deny" or any(rule.allow for rule in policy.rules)


def _not_a_remote_of_yours(value: object, work_tree: Path) -> bool:
    """``push`` to a URL or path sends the session (and the user's credentials) wherever the repository says;
    a remote the user configured in this clone (``.git/config`` is never cloned) is the user's own choice."""
    if not isinstance(value, str) or not value:
        return False
    from iteratr import gitrepo

    try:
        remotes = gitrepo.run_git(work_tree, "remote").out.split()
    except IteratrError:
        return True
    return value not in remotes


@dataclass(frozen=True)
class TrustKey:
    name: str
    why: str  # reads after "sets <name>, which ..."
    needs_trust: Callable[[object, Path], bool]  # (value, work tree) -> does this value need trust


TRUST_KEYS: dict[str, TrustKey] = {
    k.name: k
    for k in (
        TrustKey("agent", "runs a command", _is_set),
        TrustKey("log_file", "writes a file anywhere on disk", _is_set),
        TrustKey("template", "reads a file outside the work tree into the prompt", _outside_work_tree),
        TrustKey("permissions", "lets the agent's requests through, overriding your own policy", _allows_anything),
        TrustKey("push", "pushes the session to a place that is not one of your remotes", _not_a_remote_of_yours),
    )
}


# --- what a file would do -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Untrusted:
    """A file that needs trust and does not have it (or has changed since it was trusted)."""

    path: Path  # absolute
    name: str  # as shown to the user: relative to the work tree
    content: bytes  # the exact bytes checked: trusting records their hash, never a re-read
    keys: tuple[tuple[str, object], ...] = ()  # iteratr.yml: (key, value) pairs that need trust
    changed: bool = False  # trusted before with other content
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", sha256(self.content))

    @property
    def is_hooks(self) -> bool:
        return self.path.name == HOOKS_NAME

    def message(self) -> str:
        """The clause naming the file and what it does, without the advice (see :func:`untrusted_message`)."""
        if self.is_hooks:
            what = f"{self.name} runs shell commands (hooks)"
        else:
            what = f"{self.name} sets " + ", ".join(f"{k}, which {TRUST_KEYS[k].why}" for k, _ in self.keys)
        return f"{what} and changed since you trusted it" if self.changed else what


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def untrusted_message(files: Iterable[Untrusted]) -> str:
    """ONE line for the error boundary: each file, what it does, and the command that trusts it."""
    found = list(files)
    it = "it" if len(found) == 1 else "them"
    return "; ".join(f.message() for f in found) + f": trust {it} with `{TRUST_COMMAND}` (or pass --trust)"


def _load_yaml(path: Path, text: str) -> Any:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None


def _decode(path: Path, content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {exc.start})") from None


def config_keys_needing_trust(path: Path, content: bytes, work_tree: Path) -> tuple[tuple[str, object], ...]:
    """The (key, value) pairs of a project ``iteratr.yml`` that need trust, in file order."""
    data = _load_yaml(path, _decode(path, content))
    if not isinstance(data, Mapping):
        return ()  # not a mapping: the config loader refuses the file before anything runs
    return tuple(
        (str(k), v) for k, v in data.items() if str(k) in TRUST_KEYS and TRUST_KEYS[str(k)].needs_trust(v, work_tree)
    )


def describe(file: Untrusted) -> str:
    """Exactly what the file would run or touch, for a person deciding whether to trust it (several lines)."""
    head = f"{file.name} ({'changed since trusted, ' if file.changed else ''}sha256 {file.digest[:12]}):"
    if not file.is_hooks:
        return "\n".join([head, *(f"  {k}: {v}" for k, v in file.keys)])
    text = _decode(file.path, file.content)
    try:
        data = _load_yaml(file.path, text)
    except ConfigError:
        data = None
    hooks = data.get("hooks") if isinstance(data, Mapping) else None
    lines: list[str] = []
    if isinstance(hooks, Mapping):
        for hook_type, entries in hooks.items():
            for entry in entries if isinstance(entries, list) else []:
                command = entry.get("command") if isinstance(entry, Mapping) else entry
                lines.append(f"  {hook_type}: {command}")
    if not lines or not isinstance(hooks, Mapping):
        lines = ["  (not a hooks file iteratr can read; its full text:)", *(f"  | {t}" for t in text.splitlines())]
    return "\n".join([head, *lines])


# --- the trust store ------------------------------------------------------------------------------------


def default_store_path() -> Path:
    """``<state dir>/trust.json``: the state dir is the one iteratr's crash log uses."""
    return crash_log_path().parent / TRUST_FILE


@dataclass(frozen=True)
class Record:
    path: str
    sha256: str
    trusted_at: str  # UTC, ISO 8601


class TrustStore:
    """``{"version": 1, "files": {"/abs/path": {"sha256": ..., "trusted_at": ...}}}``, mode 0600 in a 0700 dir."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_store_path()

    def records(self) -> dict[str, Record]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the trust store ({exc.strerror})") from None
        try:
            files = json.loads(raw)["files"]
            return {p: Record(p, str(r["sha256"]), str(r["trusted_at"])) for p, r in files.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"{self.path}: not a trust store iteratr wrote; delete it and trust again") from None

    def _save(self, records: Mapping[str, Record]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)  # iteratr's own state dir; other users have no business in it
        files = {p: {"sha256": r.sha256, "trusted_at": r.trusted_at} for p, r in sorted(records.items())}
        atomic_write(self.path, json.dumps({"version": 1, "files": files}, indent=2) + "\n", mode=0o600)

    def is_trusted(self, path: Path, digest: str) -> bool:
        record = self.records().get(str(path))
        return record is not None and record.sha256 == digest

    def add(self, files: Iterable[Untrusted]) -> None:
        records = self.records()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for f in files:
            records[str(f.path)] = Record(str(f.path), f.digest, now)
        self._save(records)

    def remove(self, paths: Iterable[Path]) -> list[Path]:
        """Forget these paths; returns the ones that had a record."""
        records = self.records()
        gone = [p for p in paths if records.pop(str(p), None) is not None]
        if gone:
            self._save(records)
        return gone


# --- checking -------------------------------------------------------------------------------------------


def candidate_paths(work_tree: Path) -> list[Path]:
    """The files of a work tree that can need trust, absolute, whether or not they exist."""
    top = Path(os.path.abspath(work_tree))
    return [top / HOOKS_NAME, top / CONFIG_NAME]


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def needing_trust(work_tree: Path, env: Mapping[str, str] = os.environ) -> list[Untrusted]:
    """Every file of the work tree that needs trust, trusted or not (``changed`` is left False)."""
    top = Path(os.path.abspath(work_tree))
    found: list[Untrusted] = []
    for path in candidate_paths(top):
        content = _read(path)
        if content is None:
            continue
        if path.name == CONFIG_NAME:
            global_path = global_config_path(env)
            if global_path.exists() and path.samefile(global_path):
                continue  # the user's own global config, used as the project file: no trust needed
            keys = config_keys_needing_trust(path, content, top)
            if not keys:
                continue
        else:
            keys = ()
        found.append(Untrusted(path, str(path.relative_to(top)), content, keys))
    return found


def check(work_tree: Path, *, store: TrustStore | None = None, env: Mapping[str, str] = os.environ) -> list[Untrusted]:
    """Each file that needs trust and is untrusted, or changed since it was trusted. [] means go ahead."""
    records = (store or TrustStore()).records()
    result = []
    for f in needing_trust(work_tree, env):
        record = records.get(str(f.path))
        if record is None or record.sha256 != f.digest:
            result.append(Untrusted(f.path, f.name, f.content, f.keys, changed=record is not None))
    return result


def trust(files: Iterable[Untrusted], *, store: TrustStore | None = None) -> None:
    """Record the files as trusted: the hash of the bytes that were checked and shown, never a re-read."""
    (store or TrustStore()).add(files)


def read_hooks(work_tree: Path) -> bytes | None:
    """The hooks file's bytes (None: no file), read once: the caller checks and then loads these very bytes."""
    return _read(Path(os.path.abspath(work_tree)) / HOOKS_NAME)


def require_same_hooks(
    work_tree: Path, content: bytes | None, checked: bytes | None, *, override: bool, store: TrustStore | None = None
) -> None:
    """The hooks a run is about to use (``content``, from ``work_tree``) are the ones checked before it
    started (``checked``), or are trusted at their own path, or ``override``; else UntrustedError.

    A build checks the checkout it starts in, then switches to the session's branch (or its worktree),
    whose hooks file a repository can make different: a cloned ``iteratr/S`` branch must not slip one in.
    """
    if override or content is None or content == checked:
        return
    path = Path(os.path.abspath(work_tree)) / HOOKS_NAME
    if (store or TrustStore()).is_trusted(path, sha256(content)):
        return
    raise UntrustedError(
        f"{path} runs shell commands (hooks) and is not the file checked before the run: trust it with "
        f"`cd {path.parent} && {TRUST_COMMAND}` (or pass --trust)"
    )


def override_from(flag: bool, env: Mapping[str, str] = os.environ) -> bool:
    """``--trust`` or ``ITERATR_TRUST=1`` (also true/yes/on): trust for this run, without recording."""
    return flag or env.get(ENV_SWITCH, "").strip().lower() in _TRUE


def require_trusted(
    work_tree: Path, *, override: bool, store: TrustStore | None = None, env: Mapping[str, str] = os.environ
) -> None:
    """Raise :class:`UntrustedError` (exit 2, one line) unless every file needing trust has it or ``override``."""
    if override:
        return
    untrusted = check(work_tree, store=store, env=env)
    if untrusted:
        raise UntrustedError(untrusted_message(untrusted))
