"""The settings table, where each value comes from, and the typed result.

``KEYS`` is the one table of settings: for each key its type, default, validator and meaning, and, when
``iteratr build`` takes it as a flag, how the flag is spelled (``Option``). The click options of
``iteratr build``, the wizard's equivalent command line, ``Config``'s typed fields and the loop's
``Settings`` all come from it (``BUILD_ONLY_OPTIONS`` adds the build flags that are no setting: the spec,
the session name, ...). A new setting is one row here and one line where it is used.

Precedence, highest first: CLI flags > ``ITERATR_<KEY>`` environment variables > ``iteratr.yml`` at the
top of the work tree > ``$XDG_CONFIG_HOME/iteratr/iteratr.yml`` (``~/.config/iteratr/iteratr.yml``) >
built-in defaults. Every value, from any layer, goes through its key's validator, so a bad value stops the
command with one line naming where it came from (file and line, env var or flag), the key and what is
accepted.

Rules worth knowing:

- The project file is read from the top of the work tree, wherever in it the command runs: from
  ``src/`` the project's model still applies.
- A key set to YAML null (``model:`` with nothing after it) counts as not set: the layer below applies.
- An empty environment variable sets a text key to ``""`` (so ``ITERATR_PUSH=`` turns pushing off) and
  counts as not set for any other key.
- Booleans accept true/false/yes/no/on/off/1/0 in any case, in files as well as env vars (YAML 1.2 reads
  ``yes`` as text, and people write it anyway). Durations accept a number of seconds or 90s/30m/1h.
- ``~`` is expanded in path keys (``data_dir``, ``log_file``, ``template``).

Reading and writing the YAML files is ``iteratr.config_file``'s job; ruamel.yaml is imported only there,
inside functions: ``iteratr --help`` must stay fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from iteratr import config_file, paths
from iteratr import config_values as v
from iteratr.config_file import plain as _plain
from iteratr.config_file import show as _show
from iteratr.config_values import InvalidValue
from iteratr.config_values import Option as Option  # re-exported: a row of the table is built of these
from iteratr.errors import ConfigError, UsageError

CONFIG_NAME = "iteratr.yml"
ENV_PREFIX = "ITERATR_"


@dataclass(frozen=True)
class Key:
    name: str
    type: type  # the Python type of a valid value (float for durations); Config's field has this type
    default: object
    help: str
    validate: Callable[[object], object]  # returns the canonical value or raises InvalidValue
    option: Option | None = None  # the flag of `iteratr build` that sets it, if there is one

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        """The flag named in sources and messages ("flag --iterations"), also for keys with no build flag."""
        return self.option.long if self.option else "--" + self.name.replace("_", "-")


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key(
            "model",
            str,
            "",
            "model id, e.g. anthropic/claude-sonnet-4; empty = the agent's default",
            v.stripped,
            Option(("-m", "--model"), "Model, as the agent names it (e.g. anthropic/claude-sonnet-4-5).", "MODEL"),
        ),
        Key(
            "agent",
            str,
            "opencode acp",
            "a preset (opencode, claude, codex, gemini) or an ACP agent command line, split like a shell",
            v.agent,
            Option(("--agent",), "Agent preset (opencode, claude, codex, gemini) or ACP command line.", "CMD"),
        ),
        Key(
            "auto_commit",
            bool,
            True,
            "commit the agent's work each iteration (off: only .iteratr state)",
            v.boolean,
            Option(
                ("--auto-commit",),
                "Commit the whole work tree each iteration (default), or only the session files.",
                kind="negatable",
            ),
        ),
        Key(
            "data_dir",
            str,
            ".iteratr",
            "directory for session state",
            v.nonempty_path,
            Option(("--data-dir",), "Data directory (default: .iteratr).", "DIR"),
        ),
        Key("log_level", str, "debug", "level of the log_file: debug, info, warn or error", v.log_level),
        Key(
            "log_file",
            str,
            "",
            "log file path; empty = no log file",
            v.path,
            Option(("--log-file",), "Also write a timestamped debug log of the run here.", "PATH"),
        ),
        Key(
            "iterations",
            int,
            0,
            "iterations per run; 0 = no limit",
            lambda x: v.whole(x, 0),
            Option(("-i", "--iterations"), "Iterations to run now; 0 = no limit.", "N"),
        ),
        Key(
            "headless",
            bool,
            False,
            "never ask questions or open the wizard",
            v.boolean,
            Option(("--headless",), "Never ask questions or open a wizard.", kind="switch"),
        ),
        Key(
            "template",
            str,
            "",
            "prompt template path; empty = built-in",
            v.path,
            Option(("-t", "--template"), "Prompt template (jinja2) of main iterations.", "PATH", "path"),
        ),
        Key("iteration_timeout", float, 1800, "seconds one iteration may take", lambda x: v.seconds(x, zero_ok=False)),
        Key("idle_timeout", float, 600, "seconds the agent may stay silent", lambda x: v.seconds(x, zero_ok=False)),
        Key("max_failures", int, 3, "consecutive failed iterations before build stops", lambda x: v.whole(x, 1)),
        Key(
            "retry_delay",
            float,
            5,
            "seconds before the first retry; doubles each time",
            lambda x: v.seconds(x, zero_ok=True),
        ),
        Key(
            "push",
            str,
            "",
            "git remote carrying the session (fetch, lease, push each commit); empty = none",
            v.remote,
            Option(
                ("--push",),
                "Carry the session through REMOTE (default origin): resume from it, hold its lease, push each commit.",
                "REMOTE",
                "optional",
                bare="origin",
            ),
        ),
        Key(
            "lease_ttl",
            float,
            3600,
            "seconds a remote session's lease lasts unless renewed (each iteration's push renews it)",
            lambda x: v.seconds(x, zero_ok=False),
        ),
        Key(
            "max_file_size",
            int,
            50 << 20,
            "files bigger than this (bytes, or 50MB) are never committed; 0 = no limit",
            v.size,
        ),
        Key("permissions", object, "allow", "the agent's permission policy: allow, deny, or rules", v.permissions),
        Key(
            "stall_limit",
            int,
            3,
            "iterations in a row without progress before the run stops (exit 5); 0 = off",
            lambda x: v.whole(x, 0),
            Option(("--stall-limit",), "Stop (exit 5) after N iterations in a row without progress; 0 = off.", "N"),
        ),
        Key(
            "max_cost",
            str,
            "",
            "money this run may spend, in the agent's currency (5, 2.50, 5 USD, $5); empty = no limit",
            v.money,
            Option(("--max-cost",), "Stop (exit 3) before an iteration once this run spent AMOUNT.", "AMOUNT"),
        ),
        Key(
            "max_tokens",
            int,
            0,
            "tokens this run may use; 0 = no limit",
            lambda x: v.whole(x, 0),
            Option(("--max-tokens",), "Stop (exit 3) before an iteration once this run used N tokens.", "N"),
        ),
        Key(
            "max_time",
            float,
            0,
            "wall-clock time of this run (90m, 2h); 0 = no limit",
            lambda x: v.seconds(x, zero_ok=True),
            Option(("--max-time",), "Stop (exit 3) after this wall-clock time (90m, 2h); the turn is cut.", "DURATION"),
        ),
        Key(
            "session_max_cost",
            str,
            "",
            "money the session may spend over all its runs; empty = no limit",
            v.money,
            Option(("--session-max-cost",), "Stop (exit 3) once the session, over all runs, spent AMOUNT.", "AMOUNT"),
        ),
        Key(
            "session_max_tokens",
            int,
            0,
            "tokens the session may use over all its runs; 0 = no limit",
            lambda x: v.whole(x, 0),
            Option(("--session-max-tokens",), "Stop (exit 3) once the session, over all runs, used N tokens.", "N"),
        ),
        Key(
            "timestamps",
            bool,
            False,
            "prefix every printed line of a build with the time (the log file always has it)",
            v.boolean,
            Option(("--timestamps",), "Prefix every printed line with the time (HH:MM:SS).", kind="switch"),
        ),
        Key(
            "keep_prompts",
            int,
            20,
            "prompts kept in the session's runtime dir (prompts/<n>.md, never committed); 0 = none",
            lambda x: v.whole(x, 0),
        ),
    )
}

# The flags of `iteratr build` that are no setting: they say what to build, not how.
BUILD_ONLY_OPTIONS: dict[str, Option] = {
    "spec": Option(("-s", "--spec"), "Spec file (default: specs/SPEC.md).", "PATH", "path"),
    "name": Option(("-n", "--name"), "Session name (default: the spec file's stem).", "NAME"),
    "extra": Option(("-e", "--extra-instructions"), "Extra instructions added to every prompt.", "TEXT"),
    "worktree": Option(("--worktree",), "Run in a linked git worktree; your checkout is untouched.", kind="switch"),
    "reset": Option(("--reset",), "Archive the session's branch and start it afresh.", kind="switch"),
    "trust": Option(("--trust",), "Trust this repository's hooks and iteratr.yml for this run.", kind="switch"),
    "remote": Option(("--remote",), "Fetch and resume the session from REMOTE first; push nothing there.", "REMOTE"),
}

# Every flag of `iteratr build` by its destination (a BuildRequest field), in the order --help lists them.
BUILD_OPTIONS: dict[str, Option] = BUILD_ONLY_OPTIONS | {n: k.option for n, k in KEYS.items() if k.option}


def check_flag(name: str, value: object) -> object:
    """A config key's flag value, validated as every layer is; None (not given) stays None."""
    if value is None:
        return None
    key = KEYS[name]
    try:
        return _plain(key.validate(value))
    except InvalidValue as exc:
        raise UsageError(f"{key.flag}: {_show(value)} {exc}") from None


# --- resolved configuration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    value: object
    # "default", "global file <path>:<line>", "project file <path>:<line>", "env ITERATR_X" or "flag --x"
    source: str


@dataclass(frozen=True)
class Config:
    """Every key's value and where it came from (``values``), and each value as a typed field.

    The typed fields are filled from ``values`` by the table; a test holds them to it, key for key.
    """

    values: dict[str, Resolved]
    model: str = field(init=False)
    agent: str = field(init=False)
    auto_commit: bool = field(init=False)
    data_dir: str = field(init=False)
    log_level: str = field(init=False)
    log_file: str = field(init=False)
    iterations: int = field(init=False)
    headless: bool = field(init=False)
    template: str = field(init=False)
    iteration_timeout: float = field(init=False)
    idle_timeout: float = field(init=False)
    max_failures: int = field(init=False)
    retry_delay: float = field(init=False)
    push: str = field(init=False)
    lease_ttl: float = field(init=False)
    max_file_size: int = field(init=False)
    permissions: object = field(init=False)  # as written; iteratr.agent.permissions.parse_policy reads it
    stall_limit: int = field(init=False)
    max_cost: str = field(init=False)  # canonical money text (config_values.money); "" = no limit
    max_tokens: int = field(init=False)
    max_time: float = field(init=False)
    session_max_cost: str = field(init=False)
    session_max_tokens: int = field(init=False)
    timestamps: bool = field(init=False)
    keep_prompts: int = field(init=False)

    def __post_init__(self) -> None:
        for name, key in KEYS.items():
            value = self.values[name].value
            if key.type is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, key.type):
                raise TypeError(f"config {name}: {value!r} is not a {key.type.__name__}")
            object.__setattr__(self, name, value)

    def __getitem__(self, key: str) -> object:
        return self.values[key].value

    def source(self, key: str) -> str:
        return self.values[key].source

    def to_json(self) -> dict[str, dict[str, object]]:
        return {k: {"value": r.value, "source": r.source} for k, r in self.values.items()}

    @property
    def agent_argv(self) -> list[str]:
        """A preset's command (``agent: claude``, ``iteratr.agent.presets``), else the value split like a shell."""
        from iteratr.agent.presets import command_line

        return command_line(self.agent)

    @property
    def log_level_number(self) -> int:
        """The ``logging`` module's number for ``log_level``."""
        return v.LOG_LEVELS[self.log_level]


if {f.name for f in fields(Config)} != {"values", *KEYS}:  # a key added without its typed field
    raise RuntimeError("iteratr.config: Config's typed fields do not match KEYS")


def defaults() -> Config:
    return Config({name: Resolved(key.default, "default") for name, key in KEYS.items()})


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
    """The project's file: at the top of the work tree around ``cwd`` (``cwd`` itself outside git)."""
    return paths.project_config_path(cwd)  # the one resolver


def load_config(*, cwd: Path, env: Mapping[str, str] = os.environ, flags: Mapping[str, object] | None = None) -> Config:
    """Resolve every key. Raises ConfigError for a bad file or env var, UsageError for a bad flag value."""
    global_path, project_path = global_config_path(env), project_config_path(cwd)
    files = [("global file", global_path), ("project file", project_path)]
    if _same_file(global_path, project_path):
        files = files[1:]
    return _resolve(files, Path(cwd), env, flags)


def config_without_files(env: Mapping[str, str] = os.environ) -> Config:
    """The environment's settings over the defaults, no file read; the defaults alone if the env is bad too.

    For the commands that must go on past a broken config file: ``setup --force`` and ``doctor``.
    """
    try:
        return _resolve([], Path.cwd(), env, None)
    except ConfigError:
        return defaults()


def _resolve(
    files: list[tuple[str, Path]], cwd: Path, env: Mapping[str, str], flags: Mapping[str, object] | None
) -> Config:
    values = {name: Resolved(key.default, "default") for name, key in KEYS.items()}
    for label, path in files:
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
        values[name] = Resolved(check_flag(name, value), f"flag {KEYS[name].flag}")
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


def read_config_file(path: Path, *, display: str | None = None) -> dict[str, tuple[object, int]]:
    """Validated ``{key: (value, line)}`` from one file. A key set to null is left out: it is not set."""
    shown = display or str(path)
    result: dict[str, tuple[object, int]] = {}
    for name, value, line in config_file.entries(Path(path), shown):
        if name not in KEYS:
            raise ConfigError(f"{shown}:{line}: {_unknown_key(name)}")
        if value is None:
            continue
        try:
            result[name] = (_plain(KEYS[name].validate(value)), line)
        except InvalidValue as exc:
            raise ConfigError(f"{shown}:{line}: {name}: {_show(value)} {exc}") from None
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
    replaced atomically, so a failure leaves the old file whole. A symlink is followed.
    """
    checked: dict[str, object] = {}
    for name, value in updates.items():
        if name not in KEYS:
            raise ConfigError(f"cannot write {path}: {_unknown_key(name)}")
        try:
            checked[name] = None if value is None else _plain(KEYS[name].validate(value))
        except InvalidValue as exc:
            raise ConfigError(f"cannot write {path}: {name}: {_show(value)} {exc}") from None
    config_file.update(Path(path), checked, force=force)
