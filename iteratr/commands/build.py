"""``iteratr build``: check everything a run needs, put the session on its branch, then run the loop.

All bad input (config, spec, template, hooks file, git state) is refused here, before the branch is
touched or any agent starts.

What to build comes in as a ``BuildRequest``: the flags as given, one typed field per option of
``iteratr build`` (``iteratr.config.BUILD_OPTIONS``). Without a spec on a terminal the CLI first asks the
wizard (``iteratr.commands.wizard``) to fill the request in; this module never asks anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iteratr import __version__, config, paths, safe_open
from iteratr.errors import EXIT_OK, UsageError
from iteratr.output import Printer, is_interactive
from iteratr.run import prompt

if TYPE_CHECKING:
    from iteratr.gitrepo import GitRepo
    from iteratr.remote.sync import Link
    from iteratr.run import agent_start
    from iteratr.run.agent_start import Known

DEFAULT_SPEC = Path("specs") / "SPEC.md"


def default_spec(cwd: Path) -> Path | None:
    """``specs/SPEC.md`` where the command runs, else at the top of the work tree (a build from ``src/`` finds
    the project's spec as every other command finds its session), else None."""
    for base in (cwd, paths.work_tree_top(cwd)):
        if (base / DEFAULT_SPEC).exists():
            return base / DEFAULT_SPEC
    return None


LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


def binary_argv() -> list[str]:
    """A command line that runs this same iteratr, for the agent's shell and for hooks."""
    shim = Path(__file__).resolve().parents[2] / "iteratr.py"
    if shim.is_file():  # running from a checkout
        return [sys.executable, str(shim)]
    return [sys.executable, "-m", "iteratr"]


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """The run log, and each file rotation starts, mode 0600: it holds prompts, agent output and paths."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)  # a file that was there before, made readable by others: private from now on
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def setup_logging(log_file: str, level: int, work_tree: Path | None = None) -> None:
    """``--log-file``: a timestamped log with debug detail, rotated so hourly cron runs cannot fill the disk.

    Libraries (the ACP SDK among them) log to the root logger; without a handler Python would print
    their tracebacks on stderr in the middle of the run's output. They go to the log file, or nowhere.
    A log file inside ``work_tree`` is added to git's info/exclude first, so no iteration commits it.
    """
    root = logging.getLogger()
    root.addHandler(logging.NullHandler())
    if not log_file:
        return
    path = Path(log_file).absolute()
    if work_tree is not None:
        from iteratr.session_branch import exclude_log_file

        exclude_log_file(work_tree, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = PrivateRotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    from iteratr.output import MaskingFilter

    handler.addFilter(MaskingFilter())  # secret-looking environment values never reach the log file
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    logging.getLogger("iteratr").setLevel(level)


@dataclass(frozen=True)
class BuildRequest:
    """What ``iteratr build`` was asked to do: one field per flag, None where the flag was not given.

    The fields are ``config.BUILD_OPTIONS``, in its order (a test holds them to it): first the flags that
    say what to build, then those that set a config key, which override the lower config layers.
    """

    spec: str | None = None
    name: str | None = None
    extra: str | None = None
    worktree: bool = False
    reset: bool = False
    trust: bool = False
    remote: str | None = None
    model: str | None = None
    agent: str | None = None
    auto_commit: bool | None = None
    data_dir: str | None = None
    log_file: str | None = None
    iterations: int | None = None
    headless: bool | None = None
    template: str | None = None
    push: str | None = None
    stall_limit: int | None = None
    max_cost: str | None = None
    max_tokens: int | None = None
    max_time: float | None = None
    session_max_cost: str | None = None
    session_max_tokens: int | None = None
    timestamps: bool | None = None

    def config_flags(self) -> dict[str, object]:
        """The flags that set config keys, for ``config.load_config``."""
        return {name: getattr(self, name) for name in config.KEYS if name in _FIELDS}

    def command_line(self) -> list[str]:
        """The ``iteratr build`` command line that makes this request."""
        argv = ["iteratr", "build"]
        for name, option in config.BUILD_OPTIONS.items():
            argv += option.argv(getattr(self, name))
        return argv


_FIELDS = frozenset(f.name for f in fields(BuildRequest))


def load_config(request: BuildRequest, cwd: Path) -> config.Config:
    return config.load_config(cwd=cwd, flags=request.config_flags())


def wants_wizard(request: BuildRequest, cwd: Path) -> bool:
    """No spec given, no default spec, and a person at a terminal who may be asked (not --headless)."""
    if request.spec is not None or default_spec(cwd) is not None:
        return False
    return is_interactive() and not load_config(request, cwd).headless


def run(request: BuildRequest, *, ask: Callable[[str], bool] | None = None) -> int:
    """``iteratr build``: the exit status of the run (see ``iteratr.errors.EXIT_STATUSES``).

    ``ask`` answers a yes/no question; it is used only on a terminal without --headless, to offer trusting
    a repository's files that need it (``iteratr.trust``). Without it they stop the build (exit 2).
    """
    from iteratr import trust
    from iteratr.commands import trust as trust_cmd

    cwd = Path.cwd()
    cfg = load_config(request, cwd)  # read only: nothing it names runs or is written before the trust check
    out = Printer(timestamps=cfg.timestamps)  # the --log-file has a time on every line whatever this says
    top = paths.work_tree_top(cwd)
    override = trust.override_from(request.trust)
    hooks_checked = trust.read_hooks(top)  # these bytes are checked, and these bytes are loaded
    can_ask = ask if ask is not None and is_interactive() and not cfg.headless else None
    trust_cmd.gate(top, printer=out, ask=can_ask, override=override)
    trust.require_same_hooks(top, hooks_checked, trust.read_hooks(top), override=override)
    setup_logging(cfg.log_file, cfg.log_level_number, top if (top / ".git").exists() else None)

    found = default_spec(cwd)
    if request.spec is None and found is None:
        raise UsageError(
            f"no spec: {DEFAULT_SPEC} does not exist; pass --spec PATH"
            + (" (the wizard is off with --headless)" if cfg.headless else " (the wizard needs a terminal)")
        )
    spec_path = (cwd / request.spec).resolve() if request.spec is not None else Path(str(found)).resolve()
    prompt.read_spec(spec_path)
    name = paths.validate_session_name(request.name) if request.name else paths.session_name_from_spec(spec_path)
    template_path = Path(cfg.template).expanduser().resolve() if cfg.template else None
    templates = {"planning": prompt.load(None, "planning"), "main": prompt.load(template_path, "default")}

    from iteratr.gitrepo import GitRepo
    from iteratr.run import hooks as hooks_mod

    _require_agent_binary(cfg.agent)
    repo = GitRepo.open(cwd)
    repo.check_ready(detached_ok=True)  # a detached HEAD is settled under the session's lock, below
    hooks_mod.load_hooks(repo.root, hooks_checked)  # refuse a bad hooks file before the branch is touched
    data_rel = paths.data_dir_in_tree(cfg.data_dir, repo.root, cwd)

    from iteratr.remote import sync
    from iteratr.run.runlock import RunLock, describe, lock_path

    # The lock comes first: a second build of the session exits 4 at once, having started nothing, and a
    # --reset or a switch must never pull the branch or the session's files from under a run in another checkout.
    lock = RunLock(lock_path(repo.common_dir(), name), name, repo.root).acquire()
    link = None
    try:
        if lock.stale:
            out.warn(f"took over the lock left by a run that is gone ({describe(lock.stale)})")
        # With a remote: its lease, then the session brought up to the remote's, before any agent starts.
        link = sync.link_for(cfg, request.remote, repo.root, repo.common_dir(), name)
        for said in link.start() if link is not None else sync.unused_remote_copy(repo.root, name):
            out.line(said, "warn" if said.startswith(("took over", "note")) else "dim")
        prepared = _Prepared(request, cfg, out, repo, name, data_rel, spec_path, templates, hooks_checked, override)
        prepared.link = link
        done = prepared.nothing_to_do()
        return done if done is not None else asyncio.run(prepared.run())
    finally:
        if link is not None:
            link.release()
        lock.release()


@dataclass
class _Prepared:
    """A build whose checks passed, under the session's lock: start and check the agent, then (only then) put the
    session on its branch and run the loop (``iteratr.run.agent_start`` says why in that order)."""

    request: BuildRequest
    cfg: config.Config
    out: Printer
    repo: GitRepo
    name: str
    data_rel: Path
    spec_path: Path
    templates: dict[str, prompt.Template]
    hooks_checked: bytes | None
    override: bool
    known: Known | None = None
    link: Link | None = None  # the run's remote, if any (iteratr.remote.sync)

    def nothing_to_do(self) -> int | None:
        """Exit 0, touching nothing, when the session is complete and not checked out: no switch just to stop."""
        from iteratr.run import agent_start
        from iteratr.run.screen import Screen

        self.known = None if self.request.reset else agent_start.known_session(self.repo, self.name, self.data_rel)
        inbox_dir = self.repo.root / self.data_rel / self.name
        if self.known is None or not agent_start.nothing_to_do(self.known, inbox_dir):
            return None
        if self.link is not None and self._messages_waiting(self.known.state.inbox_consumed):
            return None  # a message sent through the remote reopens it
        self.out.line(f"session {self.name} is already complete; nothing to do", "ok")
        Screen(self.out, paths.branch_name(self.name)).final("the session is complete")
        return EXIT_OK

    def _messages_waiting(self, consumed: dict[str, int]) -> bool:
        from iteratr.remote import messages

        tip = self.repo.rev(f"refs/heads/{paths.branch_name(self.name)}")
        return tip is not None and bool(messages.pending(self.repo.root, self.name, tip, consumed))

    async def run(self) -> int:
        from iteratr.run import agent_start

        started = None
        if self.known is None or agent_start.agent_needed(self.known, self.cfg.stall_limit):
            started = await self._start_agent()
        try:
            return await self._run_loop(started)
        finally:
            if started is not None:
                await started.close()  # unless the loop took it over (and closed it)

    async def _start_agent(self) -> agent_start.Started:
        """Start the agent, complete initialize and check the model, in this checkout, with nothing written to it."""
        from iteratr.agent.permissions import parse_policy
        from iteratr.run import agent_start
        from iteratr.run.hook_runs import child_env
        from iteratr.run.screen import model_words
        from iteratr.run.settings import Settings

        cfg, out = self.cfg, self.out
        out.line("starting the agent…", "dim")
        here = self.repo.root
        planned = Settings.resolve(  # the session's settings as they will be if it runs in this checkout
            cfg,
            session=self.name,
            work_tree=here,
            data_dir=here / self.data_rel,
            spec_path=self.spec_path,
            extra="",
            templates=self.templates,
            hooks=None,
            binary=binary_argv(),
        )
        iteration = self.known.state.next_iteration if self.known is not None else 0
        started = await agent_start.start(
            cfg.agent_argv,
            cwd=here,
            env=child_env(planned, iteration),
            stderr_log=agent_start.start_log(self.repo, self.name),
            model=cfg.model or None,
            permissions=parse_policy(cfg.permissions),
        )
        out.line(f"agent: {started.info.name} {started.info.version}")
        await agent_start.check_model(started)  # a refused model: exit 2, with nothing touched
        out.line(f"model: {model_words(started.model, chosen=bool(cfg.model))}")
        return started

    async def _run_loop(self, started: agent_start.Started | None) -> int:
        from iteratr import session_branch as session_git
        from iteratr import trust
        from iteratr.agent.seam import Checked
        from iteratr.gitrepo import GitRepo
        from iteratr.run import hooks as hooks_mod
        from iteratr.run import inbox
        from iteratr.run.loop import BuildLoop
        from iteratr.run.screen import model_words
        from iteratr.run.settings import Settings
        from iteratr.session.store import Store

        repo, name, out, cfg, override = self.repo, self.name, self.out, self.cfg, self.override
        if repo.current_branch() is None:  # e.g. the agent detached HEAD, and the run was killed before it ended
            out.warn(session_git.reattach(repo, name))
        work_tree, how = session_git.prepare(
            repo, name, data_rel=self.data_rel, worktree=self.request.worktree, reset=self.request.reset
        )
        wt_repo = repo if work_tree == repo.root else GitRepo.open(work_tree)
        # The session's branch may carry another hooks file than the one checked: it must be trusted too.
        # (A "resumed" branch may have just been switched to: read it again, and load the bytes compared.)
        hooks_here = trust.read_hooks(work_tree)
        trust.require_same_hooks(work_tree, hooks_here, self.hooks_checked, override=override)
        hooks = hooks_mod.load_hooks(work_tree, hooks_here) if hooks_here is not None else None
        if hooks is None and work_tree != repo.root and self.hooks_checked is not None:
            hooks = hooks_mod.load_hooks(repo.root, self.hooks_checked)
        data_dir = work_tree / self.data_rel
        store = Store(data_dir, name)
        store.create()
        inbox_path = inbox.ensure_inbox(store.dir)
        # The agent's stderr log: private, and never through a link (the agent process appends to it).
        os.close(safe_open.open_fd(data_dir, f"{name}/{paths.AGENT_LOG}", os.O_WRONLY | os.O_CREAT, 0o600))
        settings = Settings.resolve(
            cfg,
            session=name,
            work_tree=work_tree,
            data_dir=data_dir,
            spec_path=self.spec_path,
            extra=self.request.extra or "",
            templates=self.templates,
            hooks=hooks,
            binary=binary_argv(),
        )
        checked, factory = None, None
        if started is not None:
            # The agent runs in this checkout: the run takes it over. A session in a worktree gets its own agent.
            reuse = started.cwd == work_tree
            if not reuse:
                await started.close()
            checked = Checked(started.info, started.model, running=reuse)
            factory = started.factory if reuse else None
        branch = settings.branch
        out.line(f"iteratr {__version__} | session {name} | branch {branch} ({how}) | work tree {work_tree}", "head")
        limit = str(cfg.iterations) if cfg.iterations else "no limit"
        model = model_words(checked.model, chosen=bool(cfg.model)) if checked else cfg.model or "the agent default"
        out.line(
            f"spec: {paths.shown(self.spec_path, Path.cwd())} | agent: {cfg.agent} | model: {model}"
            f" | iterations: {limit}"
        )
        out.line(f'inbox: {inbox_path} (save text there, or run: iteratr say -n {name} "...")')
        out.line(hooks.summary() if hooks else "hooks: none")
        clock = time.monotonic()
        loop = BuildLoop(settings, store, wt_repo, out, agent_factory=factory, checked=checked, link=self.link)
        loop.record.take_messages()  # sent through the remote (`iteratr say`): each taken once
        code = await loop.run()
        logging.getLogger("iteratr.run").info("run ended with exit %s after %.1fs", code, time.monotonic() - clock)
        return code


def _require_agent_binary(agent: str) -> None:
    """A missing agent (exit 1, a preset's with its install command) or an unknown preset (exit 2) is found before
    the branch is touched, not after."""
    from iteratr.agent import presets

    presets.require_installed(agent)
