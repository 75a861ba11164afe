"""``iteratr doctor``: check what a build needs, one line per check, each failure with how to fix it.

Checks, in order: Python, git, the current directory being a repository, the config files, the agent
command on PATH (a preset's, with its install command when missing; its ``--version``, best effort), a preset's
API key variable (a warning when unset: it may be logged in instead), whether the agent really speaks ACP (started,
``initialize`` and one ``session/new``, bounded by ``ITERATR_PROBE_TIMEOUT``, default 20 s), the model,
the hooks file and the state of the current session(s).

Each line starts with ``ok``, ``warn`` (worth knowing, not a failure), ``fail`` or ``skip`` (a check
that needs an earlier one that failed). The exit status is 1 when any check fails, else 0.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from iteratr import paths, procs
from iteratr.errors import EXIT_FAILED, ConfigError, GitError, IteratrError
from iteratr.output import Printer

if TYPE_CHECKING:
    from iteratr.agent.presets import Preset
    from iteratr.agent.runner import ProbeResult
    from iteratr.config import Config

MIN_PYTHON = (3, 11)
VERSION_TIMEOUT = 10.0
_WIDTH = 6  # "ok", "warn", "fail", "skip" padded


@dataclass
class _Report:
    out: Printer
    failed: int = 0
    warned: int = 0

    def ok(self, what: str, detail: str) -> None:
        self._line("ok", what, detail, None)

    def warn(self, what: str, detail: str, fix: str | None = None) -> None:
        self.warned += 1
        self._line("warn", what, detail, fix)

    def fail(self, what: str, detail: str, fix: str | None) -> None:
        self.failed += 1
        self._line("fail", what, detail, fix)

    def skip(self, what: str, detail: str) -> None:
        self._line("skip", what, detail, None)

    def _line(self, status: str, what: str, detail: str, fix: str | None) -> None:
        self.out.text(f"{status:<{_WIDTH}}{what}: {detail}")
        if fix:
            self.out.text(f"{'':<{_WIDTH}}fix: {fix}")


def run(
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    out: Printer | None = None,
    trust: bool = False,
) -> int:
    """Run every check, print one line each (plus a fix hint), and return the exit status.

    A repository's files that need trust and lack it stop the doctor first (exit 2, one line): it would
    start the project's agent command and load its hooks. ``trust`` (``--trust``) trusts them for this run.
    """
    from iteratr import trust as trust_mod
    from iteratr.agent import models

    cwd = Path.cwd() if cwd is None else cwd
    env = os.environ if env is None else env
    try:
        trust_mod.require_trusted(paths.work_tree_top(cwd), override=trust_mod.override_from(trust, env), env=env)
    except trust_mod.UntrustedError:
        raise
    except ConfigError:
        pass  # an iteratr.yml that does not parse is not used at all; the config check below reports it
    timeout = models.probe_timeout(env) if timeout is None else timeout
    out = Printer() if out is None else out
    report = _Report(out)

    _check_python(report)
    root = _check_git(report, cwd, env)
    cfg = _check_config(report, cwd, env)
    # A data dir outside the work tree, its top or inside .git is refused by every command (exit 2).
    top = root or paths.work_tree_top(cwd)
    paths.check_data_dir(paths.resolve_data_dir(cfg.data_dir, cwd, top=top), top, cfg.data_dir)
    argv = cfg.agent_argv
    probed = None
    if _check_agent_command(report, cfg.agent, argv, cwd, env):
        probed = _check_acp(report, argv, cwd, env, timeout)
    else:
        report.skip("agent speaks ACP", "not tried: the agent command is missing")
    _check_model(report, cfg, probed)
    _check_hooks(report, root or cwd)
    _check_sessions(report, cfg, cwd, root, env)

    if report.failed:
        warned = f", {report.warned} warning(s)" if report.warned else ""
        out.text(f"doctor: {report.failed} check(s) failed{warned}")
        return EXIT_FAILED
    out.text("doctor: every required check passed" + (f" ({report.warned} warning(s))" if report.warned else ""))
    return 0


def _check_python(report: _Report) -> None:
    version = ".".join(str(n) for n in sys.version_info[:3])
    wanted = ".".join(str(n) for n in MIN_PYTHON)
    if sys.version_info[:2] >= MIN_PYTHON:
        report.ok("python", f"{version} ({sys.executable})")
    else:
        report.fail("python", f"{version} is too old; iteratr needs >= {wanted}", f"install Python >= {wanted}")


def _check_git(report: _Report, cwd: Path, env: Mapping[str, str]) -> Path | None:
    """git present, and the top of the work tree this directory is in (None if none)."""
    from iteratr import gitrepo

    git = shutil.which("git", path=env.get("PATH"))
    if git is None:
        report.fail("git", "not found on PATH", "install git (https://git-scm.com/downloads)")
        report.skip("git repository", "not checked without git")
        return None
    try:
        version = gitrepo.version(env)
        found = gitrepo.toplevel(cwd, env)
    except GitError as exc:
        report.fail("git", f"{git} cannot run: {exc.message}", "reinstall git")
        return None
    report.ok("git", version or git)
    if found is not None:
        report.ok("git repository", str(found[0]))
        return found[0]
    report.warn(
        "git repository",
        f"{cwd} is not inside a git repository",
        "iteratr build needs one: `git init && git commit --allow-empty -m init`, or cd into your project",
    )
    return None


def _check_config(report: _Report, cwd: Path, env: Mapping[str, str]) -> Config:
    """The resolved config; on a bad file, a failure and the environment over the defaults for the checks after."""
    from iteratr import config

    files = [p for p in (config.global_config_path(env), paths.project_config_path(cwd)) if p.exists()]
    try:
        cfg = config.load_config(cwd=cwd, env=env)
    except IteratrError as exc:
        report.fail("config", exc.message, "fix what the message names; `iteratr config` shows every value")
        return config.config_without_files(env)  # the checks after this one still run
    shown = ", ".join(str(p) for p in dict.fromkeys(files)) if files else "no config file (defaults)"
    report.ok("config", f"valid: {shown}")
    return cfg


def _check_agent_command(report: _Report, agent: str, argv: list[str], cwd: Path, env: Mapping[str, str]) -> bool:
    """The agent's program on PATH (a preset's, or the command line's), with its version; then its key variable."""
    from iteratr.agent import presets

    what = "agent command"
    path = shutil.which(argv[0], path=env.get("PATH")) if argv else None
    preset = presets.find(agent) or presets.preset_of(argv)
    if path is None:
        if preset is not None:
            report.fail(
                what,
                f"the {preset.name} preset's {argv[0]} is not installed (agent: {shlex.join(argv)})",
                f"install it: `{preset.install}`",
            )
        elif presets.is_unknown(agent, env.get("PATH")):
            report.fail(what, presets.unknown_message(agent), "name a preset, or your ACP agent's command line")
        else:
            report.fail(
                what,
                f"{argv[0] if argv else '(empty)'} not found (agent: {shlex.join(argv)})",
                f"install opencode (`{presets.PRESETS['opencode'].install}`), or name another preset "
                f"({presets.names()}) or your ACP agent with 'agent:' in iteratr.yml, ITERATR_AGENT or --agent",
            )
        return False
    try:
        done = procs.run([path, "--version"], cwd=cwd, env=env, timeout=VERSION_TIMEOUT, grace=0)
    except OSError as exc:
        report.fail(what, f"{path} cannot run: {exc.strerror or exc}", "check that it is an executable program")
        return False
    code = done.returncode
    lines = [line.strip() for line in (done.out or done.err).splitlines() if line.strip()]
    if code == 0 and lines:
        version = f"`{Path(argv[0]).name} --version`: {lines[0][:80]}"
    else:
        version = "version unknown" + (" (--version timed out)" if code is None else "")
    named = f"the {preset.name} preset: " if preset is not None and presets.find(agent) else ""
    report.ok(what, f"{named}{path} ({version})")
    if preset is not None:
        _check_agent_key(report, preset, env)
    return True


def _check_agent_key(report: _Report, preset: Preset, env: Mapping[str, str]) -> None:
    from iteratr.agent import presets

    what = f"{preset.name} credentials"
    if not preset.key_env:
        report.ok(what, preset.key_note)
    elif presets.key_missing(preset, env):
        names = " or ".join(preset.key_env)
        report.warn(what, f"none of {names} is set", f"set one ({preset.key_note}); base URL: {preset.base_url}")
    else:
        found = next(name for name in preset.key_env if env.get(name, "").strip())
        report.ok(what, f"{found} is set")


def _check_acp(
    report: _Report, argv: list[str], cwd: Path, env: Mapping[str, str], timeout: float
) -> ProbeResult | None:
    from iteratr.agent import models, presets

    what = "agent speaks ACP"
    try:
        result = models.probe_agent(argv, cwd=cwd, env=env, timeout=timeout)
    except IteratrError as exc:
        preset = presets.preset_of(argv)
        if preset is not None and presets.root_refused(preset, env):
            fix = f"set {preset.root_env}=1: run as root, {preset.title} refuses to start without it"
        elif preset is not None and presets.key_missing(preset, env) and "did not open a session" in str(exc):
            # A preset's agent that speaks ACP but cannot open a session without credentials (codex, gemini say so).
            fix = f"set {' or '.join(preset.key_env)} ({preset.key_note}), then run the doctor again"
        else:
            fix = (
                f"run `{shlex.join(argv)}` by hand: it must be an ACP agent on stdio (for opencode: `opencode acp`); "
                f"slow to start? raise ITERATR_PROBE_TIMEOUT (now {timeout:g} s)"
            )
        report.fail(what, str(exc), fix)
        return None
    except Exception as exc:  # an agent that answers nonsense must not crash the doctor
        report.fail(what, f"unexpected {type(exc).__name__}: {exc}", f"is `{shlex.join(argv)}` an ACP agent?")
        return None
    offered = f"{len(result.models)} model(s) offered" if result.models else "no model choice offered"
    current = f", default {result.current_model}" if result.current_model else ""
    report.ok(what, f"{result.info.name} {result.info.version} ({offered}{current})")
    preset = presets.preset_of(argv)
    if preset is not None and result.info.version != preset.version_tested:
        report.warn(
            "agent version",
            f"{result.info.name} {result.info.version}; the {preset.name} preset was tested with "
            f"{preset.package} {preset.version_tested}",
            f"it may work as well; the tested one: `{preset.install}`",
        )
    return result


def _check_model(report: _Report, cfg: Config, probed: ProbeResult | None) -> None:
    what = "model"
    model = cfg.model
    if not model:
        default = f" ({probed.current_model})" if probed is not None and probed.current_model else ""
        report.warn(what, f"none configured: the agent's default{default} is used", "`iteratr setup` chooses one")
        return
    where = cfg.source("model")
    if probed is None:
        report.skip(what, f"{model} ({where}) not checked: the agent did not answer")
    elif model in probed.models:
        report.ok(what, f"{model} ({where}) is offered by the agent")
    elif not probed.models:
        report.fail(
            what,
            f"{model} ({where}) cannot be set: the agent offers no model choice over ACP",
            "remove the model setting and configure the model in the agent itself",
        )
    else:
        import difflib

        close = difflib.get_close_matches(model, probed.models, n=3, cutoff=0.5)
        if close:
            listing = f"{len(probed.models)} models; did you mean {' or '.join(close)}?"
        else:
            listing = ", ".join(probed.models[:8]) + (", ..." if len(probed.models) > 8 else "")
        report.fail(
            what,
            f"{model} ({where}) is not offered by the agent; it offers {listing}",
            "`iteratr setup` picks one of them, or fix the model setting",
        )


def _check_hooks(report: _Report, root: Path) -> None:
    from iteratr.run import hooks

    try:
        loaded = hooks.load_hooks(root)
    except IteratrError as exc:
        report.fail("hooks", exc.message, "fix the line named; the README's Hooks section shows the format")
        return
    if loaded is None:
        report.ok("hooks", f"no {hooks.HOOKS_FILE} in {root}")
    else:
        report.ok("hooks", f"{loaded.path} is valid ({loaded.summary()})")


def _check_sessions(report: _Report, cfg: Config, cwd: Path, root: Path | None, env: Mapping[str, str]) -> None:
    """The current session: the one whose branch is checked out, else $ITERATR_SESSION, else every one here."""
    from iteratr import gitrepo
    from iteratr.session.store import Store

    what = "session state"
    data_dir = paths.resolve_data_dir(cfg.data_dir, cwd, top=root)
    branch = (gitrepo.current_branch(cwd, env) or "") if root is not None else ""
    prefix = paths.branch_name("")
    if branch.startswith(prefix) and paths.NAME_RE.fullmatch(branch[len(prefix) :]):
        names = [branch[len(prefix) :]]
    elif env.get("ITERATR_SESSION"):
        names = [env["ITERATR_SESSION"]]
    else:
        names = sorted(p.parent.name for p in data_dir.glob(f"*/{paths.EVENTS_FILE}"))
    if not names:
        report.ok(what, f"no session in {data_dir}")
        return
    for name in names:
        store = Store(data_dir, name)
        if not store.exists():
            report.warn(what, f"{name}: no {paths.EVENTS_FILE} in {store.dir}", "is the data_dir setting right?")
            continue
        try:
            state = store.load()
        except IteratrError as exc:
            report.fail(
                what,
                f"{name}: {exc}",
                f"earlier good copies of {paths.EVENTS_FILE} are in `git log {paths.branch_name(name)}`",
            )
            continue
        # Counts from the live state: every task and iteration of a long session would cost 200 MB (issue 17).
        done = state.counts().get("completed", 0)
        status = "complete" if state.complete else f"{done}/{len(state.tasks)} tasks done"
        report.ok(what, f"{name}: readable ({status}, {state.next_iteration} iteration(s))")
