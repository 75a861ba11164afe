"""Lifecycle hooks: load ``.iteratr.hooks.yml``, run its shell commands, render their output for a prompt.

A hooks file maps hook types (``session_start``, ``pre_iteration``, ...) to lists of shell commands. The
build loop decides *when* each type fires; this module validates the file (every problem is a
``ConfigError`` naming file and line, raised before any agent starts) and runs one type's commands in order.

Template values are data, never shell code. A ``{{task_content}}`` placeholder is not pasted into the
command line: it becomes a quoted reference to the environment variable ``ITERATR_TASK_CONTENT``, which the
child gets alongside the other ``ITERATR_*`` variables. The shell only ever *expands* a variable, and an
expansion is never re-parsed for ``$(...)``, backticks or quotes, so no value can run anything, whether the
user wrote the placeholder bare or inside "double quotes". (Pasting ``shlex.quote(value)`` is not enough:
inside the user's own double quotes its single quotes are literal and ``$(...)`` runs.) Inside 'single
quotes' a placeholder is a config error: such quotes usually hold a script for another shell
(``sh -c '...'``), where the value would become code; that script should use ``"$ITERATR_TASK_ID"`` itself.
Beyond that, a placeholder is accepted only where its value stays data (an argument of a simple command whose
program is not a shell, interpreter, wrapper or remote runner, and a few narrower positions); anywhere else it
is refused with the file and line. The exact rule is ``iteratr.run.hooks_shell``'s, and the README states it.

Each command runs under ``/bin/sh -c``, started by ``iteratr.procs`` in its own session and process group,
stdin from /dev/null, stdout and stderr combined into an unlinked temp file, so a background child holding
the output open cannot hang us. On timeout ``procs.stop`` gives the whole group SIGTERM, then SIGKILL after
``KILL_GRACE``. Failures and timeouts are
results, never exceptions: a hook cannot stop a session.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from iteratr import procs
from iteratr.errors import ConfigError
from iteratr.run import hooks_shell

HOOK_TYPES = ("session_start", "pre_iteration", "post_iteration", "session_end", "on_task_complete", "on_error")
VARIABLES = ("session", "iteration", "task_id", "task_content", "error")
HOOKS_FILE = ".iteratr.hooks.yml"
DEFAULT_TIMEOUT = 30.0
# How long the group gets between SIGTERM and SIGKILL after a timeout.
KILL_GRACE = 2.0
# Process groups of the hooks running now (run_hooks runs in a worker thread), for kill_running().
_running: set[int] = set()

_ENTRY_KEYS = ("command", "timeout", "pipe_output")
_TOP_KEYS = ("version", "hooks")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_ACCEPTED_FILE = "a mapping with 'version: 1' and 'hooks:'"
_ACCEPTED_ENTRY = "a mapping with 'command' (required), 'timeout' (seconds) and 'pipe_output' (true/false)"


def env_name(variable: str) -> str:
    """The environment variable a template variable is passed as: ``task_id`` → ``ITERATR_TASK_ID``."""
    return "ITERATR_" + variable.upper()


@dataclass(frozen=True)
class HookSpec:
    type: str
    command: str
    timeout: float
    pipe_output: bool
    line: int  # 1-based line of the entry in the hooks file


@dataclass(frozen=True)
class HooksConfig:
    path: Path
    hooks: dict[str, tuple[HookSpec, ...]]

    def of(self, hook_type: str) -> tuple[HookSpec, ...]:
        _check_type(hook_type)
        return self.hooks.get(hook_type, ())

    def summary(self) -> str:
        active = [f"{t} ({len(self.of(t))})" for t in HOOK_TYPES if self.of(t)]
        return "hooks: " + (", ".join(active) if active else "none")


@dataclass(frozen=True)
class HookResult:
    spec: HookSpec
    exit_status: int | None  # None: timed out or could not start; negative: killed by that signal
    timed_out: bool
    duration: float
    output: str  # stdout+stderr, tail kept when over the cap, with a "[... N bytes cut ...]" marker

    @property
    def failed(self) -> bool:
        return self.timed_out or self.exit_status != 0

    @property
    def status(self) -> str:
        """Short description: ``exit status 2``, ``timed out after 0.5s``, ``killed by signal SIGKILL``."""
        if self.timed_out:
            return f"timed out after {self.spec.timeout:g}s"
        if self.exit_status is None:
            return "could not start"
        if self.exit_status < 0:
            try:
                name = signal.Signals(-self.exit_status).name
            except ValueError:
                name = str(-self.exit_status)
            return f"killed by signal {name}"
        return f"exit status {self.exit_status}"


# --- loading ---------------------------------------------------------------------------------------------


def _check_type(hook_type: str) -> None:
    if hook_type not in HOOK_TYPES:
        raise ValueError(f"unknown hook type {hook_type!r}; accepted: {', '.join(HOOK_TYPES)}")


def _did_you_mean(word: object, choices: Sequence[str], fmt: str = "'{}'") -> str:
    close = difflib.get_close_matches(str(word), choices, n=1)
    return f" (did you mean {fmt.format(close[0])}?)" if close else ""


def _line(node: Any, key: Any, *, value: bool = False) -> int:
    """1-based line of a mapping key (or its value) or a sequence item, from ruamel's round-trip positions."""
    try:
        positions = node.lc
        if isinstance(key, int) and isinstance(node, list):
            return int(positions.item(key)[0]) + 1
        return int((positions.value(key) if value else positions.key(key))[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return int(getattr(getattr(node, "lc", None), "line", 0) or 0) + 1


def _kind(value: object) -> str:
    kinds = ((bool, "a boolean"), (dict, "a mapping"), (list, "a list"), (str, "a string"), (int | float, "a number"))
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def _placeholders(command: str) -> list[tuple[int, int, str, str]]:
    """Each ``{{name}}`` in a command as (start, end, name, quoting); quoting is plain/single/double/comment.

    A small POSIX-sh quote tracker. It only decides how the reference is spelled (and refuses single quotes
    at load time); safety does not depend on it. A backslash outside single quotes escapes the next
    character, so ``\\{{x}}`` is not a placeholder.
    """
    found: list[tuple[int, int, str, str]] = []
    state, i = "plain", 0
    while i < len(command):
        match = _PLACEHOLDER.match(command, i)
        if match:
            found.append((match.start(), match.end(), match.group(1), state))
            i = match.end()
            continue
        char = command[i]
        if state in ("plain", "double") and char == "\\":
            i += 2
            continue
        if state == "plain" and char in "'\"":
            state = "single" if char == "'" else "double"
        elif state == "plain" and char == "#" and (i == 0 or command[i - 1] in " \t\n;&|()<>"):
            state = "comment"  # an apostrophe in a comment must not open a quote
        elif (state, char) in (("single", "'"), ("double", '"'), ("comment", "\n")):
            state = "plain"
        i += 1
    return found


def load_hooks(work_tree: Path, content: bytes | None = None) -> HooksConfig | None:
    """Read and validate ``<work_tree>/.iteratr.hooks.yml``. None when there is no such file.

    ``content``: the file's bytes as already read, so that what runs is exactly what the trust check saw
    (``iteratr.trust``); the file is not read again.
    """
    path = work_tree / HOOKS_FILE
    try:
        text = path.read_text(encoding="utf-8") if content is None else content.decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}:1: the file is not UTF-8 ({exc.reason}); accepted: a UTF-8 YAML file") from exc
    except OSError as exc:
        raise ConfigError(f"{path}:1: cannot read the hooks file ({exc.strerror}); accepted: a readable file") from exc

    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        doc = YAML(typ="rt").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) if isinstance(exc, MarkedYAMLError) else None
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(f"{path}:{line}: invalid YAML: {problem}; expected {_ACCEPTED_FILE}") from exc

    def fail(line: int, problem: str, accepted: str) -> ConfigError:
        return ConfigError(f"{path}:{line}: {problem}; {accepted}")

    if not isinstance(doc, dict):
        found = "the file is empty" if doc is None else f"the file is {_kind(doc)}, not a mapping"
        raise fail(1, found, f"expected {_ACCEPTED_FILE}")
    for key in doc:
        if key not in _TOP_KEYS:
            problem = f"unknown key {key!r}{_did_you_mean(key, _TOP_KEYS)}"
            raise fail(_line(doc, key), problem, "accepted keys: version, hooks")
    version = doc.get("version")
    if "version" not in doc:
        raise fail(1, "missing 'version'", "accepted: version: 1")
    if not isinstance(version, int) or isinstance(version, bool) or version != 1:
        raise fail(_line(doc, "version", value=True), f"unsupported version {version!r}", "accepted: version: 1")

    raw_hooks = doc.get("hooks")
    hooks: dict[str, tuple[HookSpec, ...]] = {t: () for t in HOOK_TYPES}
    if raw_hooks is None:
        return HooksConfig(path=path, hooks=hooks)
    if not isinstance(raw_hooks, dict):
        problem = f"'hooks' is {_kind(raw_hooks)}, not a mapping of hook type to a list of entries"
        raise fail(_line(doc, "hooks", value=True), problem, f"accepted hook types: {', '.join(HOOK_TYPES)}")
    for hook_type, entries in raw_hooks.items():
        if hook_type not in HOOK_TYPES:
            problem = f"unknown hook type {hook_type!r}{_did_you_mean(hook_type, HOOK_TYPES)}"
            raise fail(_line(raw_hooks, hook_type), problem, f"accepted: {', '.join(HOOK_TYPES)}")
        if entries is None:
            continue
        if not isinstance(entries, list):
            problem = f"'{hook_type}' is {_kind(entries)}, not a list of entries"
            raise fail(_line(raw_hooks, hook_type, value=True), problem, f"each entry is {_ACCEPTED_ENTRY}")
        hooks[hook_type] = tuple(
            _entry(fail, hook_type, n + 1, entry, _line(entries, n)) for n, entry in enumerate(entries)
        )
    return HooksConfig(path=path, hooks=hooks)


def _entry(
    fail: Callable[[int, str, str], ConfigError], hook_type: str, number: int, entry: Any, line: int
) -> HookSpec:
    where = f"{hook_type} entry {number}"
    if not isinstance(entry, dict):
        raise fail(line, f"{where} is {_kind(entry)}, not a mapping", f"accepted: {_ACCEPTED_ENTRY}")
    for key in entry:
        if key not in _ENTRY_KEYS:
            problem = f"{where}: unknown key {key!r}{_did_you_mean(key, _ENTRY_KEYS)}"
            raise fail(_line(entry, key), problem, "accepted keys: command, timeout, pipe_output")

    command = entry.get("command")
    if command is None:
        raise fail(line, f"{where} has no 'command'", "accepted: command: <shell command>")
    command_line = _line(entry, "command", value=True)
    if not isinstance(command, str):
        raise fail(command_line, f"{where}: 'command' is {_kind(command)}", "accepted: a string shell command")
    if not command.strip():
        raise fail(command_line, f"{where}: 'command' is empty", "accepted: a non-empty shell command")
    accepted_vars = ", ".join("{{" + v + "}}" for v in VARIABLES)
    for _, _, name, quoting in _placeholders(command):
        if name not in VARIABLES:
            hint = _did_you_mean(name, VARIABLES, "{{{{{}}}}}")
            problem = f"{where}: unknown variable {{{{{name}}}}} in 'command'{hint}"
            raise fail(command_line, problem, f"accepted variables: {accepted_vars}")
        if quoting == "single":
            # Closing the quotes around the value would paste it into whatever the quotes hold, often a
            # script for another shell (sh -c '...'); leaving it would pass the text "{{name}}" on. Ask.
            problem = f"{where}: {{{{{name}}}}} is inside single quotes, where it cannot be expanded"
            accepted = (
                f'write it bare or inside double quotes (the value is quoted for you), e.g. -m "done {{{{{name}}}}}";'
                f' in a script for another shell use "${env_name(name)}"'
            )
            raise fail(command_line, problem, accepted)
    # A block scalar (command: |) starts on the line after its indicator, where ruamel puts the value.
    first_line = command_line + (1 if type(command).__name__ in ("LiteralScalarString", "FoldedScalarString") else 0)
    for nested in hooks_shell.nested_placeholders(command):
        problem = f"{where}: {{{{{nested.name}}}}} is inside {nested.why}, where its value could run as code"
        accepted = (
            f"pass it as an argument (sh -c '... \"$1\"' _ {{{{{nested.name}}}}}) "
            f'or use "${env_name(nested.name)}" in the script'
        )
        raise fail(first_line + nested.line, problem, accepted)

    timeout = entry.get("timeout", DEFAULT_TIMEOUT)
    valid_number = isinstance(timeout, int | float) and not isinstance(timeout, bool) and math.isfinite(timeout)
    if not valid_number or timeout <= 0:
        problem = f"{where}: 'timeout' must be a positive number of seconds, got {timeout!r}"
        raise fail(_line(entry, "timeout", value=True), problem, "accepted: e.g. timeout: 30 or timeout: 0.5")

    pipe_output = entry.get("pipe_output", False)
    if not isinstance(pipe_output, bool):
        problem = f"{where}: 'pipe_output' must be true or false, got {pipe_output!r}"
        raise fail(_line(entry, "pipe_output", value=True), problem, "accepted: pipe_output: true or false")
    return HookSpec(type=hook_type, command=str(command), timeout=float(timeout), pipe_output=pipe_output, line=line)


# --- running ---------------------------------------------------------------------------------------------


def render_command(command: str) -> str:
    """The command with each ``{{name}}`` replaced by a quoted reference to ``$ITERATR_NAME`` (module doc)."""
    spelled = {
        "plain": '"${{{}}}"',  # bare: quote it so it stays one word, unglobbed
        "double": "${{{}}}",  # already inside "...": the reference alone
        "single": "${{{}}}",  # refused by load_hooks; stays literal text, which is safe
        "comment": "${{{}}}",  # inert
    }
    parts, last = [], 0
    for start, end, name, quoting in _placeholders(command):
        parts += [command[last:start], spelled[quoting].format(env_name(name))]
        last = end
    return "".join([*parts, command[last:]])


def run_hooks(
    config: HooksConfig | None,
    hook_type: str,
    variables: Mapping[str, str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    output_cap: int = 64 * 1024,
) -> list[HookResult]:
    """Run every hook of ``hook_type`` in order, synchronously; never raises for a hook that fails.

    ``variables`` holds the template values known for this hook type; the others are empty strings.
    ``env`` is added to (and overrides) ``os.environ`` for the child; the ``ITERATR_*`` values come last.
    """
    _check_type(hook_type)
    unknown = set(variables) - set(VARIABLES)
    if unknown:
        raise ValueError(f"unknown hook variables {sorted(unknown)}; accepted: {', '.join(VARIABLES)}")
    if output_cap <= 0:
        raise ValueError("output_cap must be positive")
    if config is None:
        return []
    child_env = {**os.environ, **env}
    # NUL cannot travel in an environment variable; dropping it beats failing to start the hook.
    child_env.update({env_name(v): str(variables.get(v, "")).replace("\0", "") for v in VARIABLES})
    return [_run_one(spec, cwd=cwd, env=child_env, output_cap=output_cap) for spec in config.of(hook_type)]


def _run_one(spec: HookSpec, *, cwd: Path, env: dict[str, str], output_cap: int) -> HookResult:
    started = time.monotonic()
    with tempfile.TemporaryFile() as capture:
        argv = ["/bin/sh", "-c", render_command(spec.command)]
        try:
            proc = procs.popen(argv, cwd=cwd, env=env, stdout=capture, stderr=subprocess.STDOUT)
        except (OSError, ValueError) as exc:
            return HookResult(spec, None, False, time.monotonic() - started, f"could not start /bin/sh: {exc}")
        timed_out = False
        _running.add(proc.pid)
        try:
            exit_status: int | None = proc.wait(timeout=spec.timeout)
        except subprocess.TimeoutExpired:
            timed_out, exit_status = True, None
            procs.stop(proc, grace=KILL_GRACE)
        finally:
            _running.discard(proc.pid)
        duration = time.monotonic() - started
        output = _tail(capture, output_cap)
    return HookResult(spec, exit_status, timed_out, duration, output)


def _tail(capture: IO[bytes], cap: int) -> str:
    size = capture.seek(0, os.SEEK_END)
    start = max(0, size - cap)
    capture.seek(start)
    data = capture.read(size - start)
    if not start:
        return data.decode("utf-8", errors="replace")
    # Don't open with half a UTF-8 character; skipped continuation bytes count as cut.
    skip = next((i for i, b in enumerate(data[:4]) if b & 0xC0 != 0x80), 0)
    return f"[... {start + skip} bytes cut ...]\n" + data[skip:].decode("utf-8", errors="replace")


def kill_running() -> None:
    """SIGKILL the process group of every hook running now: for a process about to exit at once (a second
    Ctrl+C), since a hook's group is its own session and would outlive it."""
    for pgid in list(_running):
        procs.signal_group(pgid, signal.SIGKILL)


# --- rendering -------------------------------------------------------------------------------------------


def render_piped(results: Sequence[HookResult]) -> str:
    """Prompt text for the results whose hook has ``pipe_output: true``; "" when there are none.

    Each block names the hook type, says whether it failed and how, and shows the command and its output as a
    terminal transcript in a code fence longer than any backtick run inside it.
    """
    blocks = []
    for result in results:
        if not result.spec.pipe_output:
            continue
        verdict = "FAILED" if result.failed else "succeeded"
        status = result.status + ("; output so far below" if result.timed_out else "")
        body = f"$ {result.spec.command}\n{result.output.rstrip(chr(10)) or '(no output)'}"
        longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
        fence = "`" * max(3, longest + 1)
        blocks.append(f"{result.spec.type} hook {verdict} ({status}):\n{fence}\n{body}\n{fence}")
    return "\n\n".join(blocks)
