"""``iteratr build``: check everything a run needs, put the session on its branch, then run the loop.

All bad input (config, spec, template, hooks file, git state) is refused here, before the branch is
touched or any agent starts.
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from iteratr import __version__, paths
from iteratr.errors import GitError, UsageError
from iteratr.output import Printer
from iteratr.run import prompt

DEFAULT_SPEC = Path("specs") / "SPEC.md"
CONFIG_FLAGS = ("model", "agent", "auto_commit", "data_dir", "log_file", "iterations", "headless", "template", "push")
LOG_MAX_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


def binary_argv() -> list[str]:
    """A command line that runs this same iteratr, for the agent's shell and for hooks."""
    shim = Path(__file__).resolve().parents[2] / "iteratr.py"
    if shim.is_file():  # running from a checkout
        return [sys.executable, str(shim)]
    return [sys.executable, "-m", "iteratr"]


def setup_logging(log_file: str, level: int) -> None:
    """``--log-file``: a timestamped log with debug detail, rotated so hourly cron runs cannot fill the disk.

    Libraries (the ACP SDK among them) log to the root logger; without a handler Python would print
    their tracebacks on stderr in the middle of the run's output. They go to the log file, or nowhere.
    """
    root = logging.getLogger()
    root.addHandler(logging.NullHandler())
    if not log_file:
        return
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    root.addHandler(handler)
    root.setLevel(min(level, logging.INFO))
    logging.getLogger("iteratr").setLevel(level)


def build(flags: dict[str, Any]) -> int:
    from iteratr import config

    cwd = Path.cwd()
    cfg = config.load_config(cwd=cwd, flags={k: flags[k] for k in CONFIG_FLAGS if flags.get(k) is not None})
    setup_logging(cfg.log_file, cfg.log_level_number)
    out = Printer()

    spec_arg = flags.get("spec")
    if spec_arg is None and not (cwd / DEFAULT_SPEC).exists():
        if not cfg.headless and sys.stdin.isatty() and sys.stdout.isatty():
            from iteratr.commands import wizard

            return wizard.build_wizard(flags)
        raise UsageError(
            f"no spec: {DEFAULT_SPEC} does not exist; pass --spec PATH"
            + (" (the wizard is off with --headless)" if cfg.headless else " (the wizard needs a terminal)")
        )
    spec_path = (cwd / (spec_arg or DEFAULT_SPEC)).resolve()
    prompt.read_spec(spec_path)
    name = paths.validate_session_name(flags["name"]) if flags.get("name") else paths.session_name_from_spec(spec_path)
    template_path = Path(cfg.template).expanduser().resolve() if cfg.template else None
    templates = {"planning": prompt.load(None, "planning"), "main": prompt.load(template_path, "default")}

    from iteratr.gitrepo import GitRepo
    from iteratr.run import hooks as hooks_mod

    _require_agent_binary(cfg.agent_argv)
    repo = GitRepo.open(cwd)
    repo.check_ready()
    hooks_mod.load_hooks(repo.root)  # refuse a bad hooks file before the branch is touched
    data_rel = _data_dir_in_tree(Path(cfg.data_dir), repo.root, cwd)

    from iteratr import session_branch as session_git
    from iteratr.run import inbox
    from iteratr.run.loop import BuildLoop
    from iteratr.run.runlock import RunLock, describe, lock_path
    from iteratr.run.settings import Settings
    from iteratr.session.store import Store

    # The lock comes before the branch is touched: a --reset or a switch must never pull the branch
    # or the session's files from under a run going on in another checkout.
    lock = RunLock(lock_path(repo.common_dir(), name), name, repo.root).acquire()
    try:
        if lock.stale:
            out.warn(f"took over the lock left by a run that is gone ({describe(lock.stale)})")
        work_tree, how = session_git.prepare(
            repo, name, data_rel=data_rel, worktree=bool(flags.get("worktree")), reset=bool(flags.get("reset"))
        )
        wt_repo = repo if work_tree == repo.root else GitRepo.open(work_tree)
        hooks = hooks_mod.load_hooks(work_tree)
        if hooks is None and work_tree != repo.root:
            hooks = hooks_mod.load_hooks(repo.root)
        data_dir = work_tree / data_rel
        store = Store(data_dir, name)
        store.create()
        inbox_path = inbox.ensure_inbox(store.dir)
        branch = paths.branch_name(name)
        settings = Settings(
            session=name,
            work_tree=work_tree,
            data_dir=data_dir,
            spec_path=spec_path,
            agent_argv=cfg.agent_argv,
            model=cfg.model or None,
            iterations=cfg.iterations,
            iteration_timeout=cfg.iteration_timeout,
            idle_timeout=cfg.idle_timeout,
            max_failures=cfg.max_failures,
            retry_delay=cfg.retry_delay,
            auto_commit=cfg.auto_commit,
            push=cfg.push,
            extra=flags.get("extra") or "",
            templates=templates,
            hooks=hooks,
            binary=shlex.join(binary_argv()),
            branch=branch,
        )
        out.line(f"iteratr {__version__} | session {name} | branch {branch} ({how}) | work tree {work_tree}", "head")
        limit = str(cfg.iterations) if cfg.iterations else "no limit"
        out.line(
            f"spec: {paths.shown(spec_path, cwd)} | agent: {cfg.agent} | model: {cfg.model or 'the agent default'}"
            f" | iterations: {limit}"
        )
        out.line(f'inbox: {inbox_path} (save text there, or run: iteratr say -n {name} "...")')
        out.line(hooks.summary() if hooks else "hooks: none")
        started = time.monotonic()
        code = asyncio.run(BuildLoop(settings, store, wt_repo, out).run())
        logging.getLogger("iteratr.run").info("run ended with exit %s after %.1fs", code, time.monotonic() - started)
        return code
    finally:
        lock.release()


def _require_agent_binary(argv: list[str]) -> None:
    """A missing agent is found before the branch is touched, not after."""
    import shutil

    from iteratr.errors import AgentError

    if shutil.which(argv[0]) is None:
        raise AgentError(
            f"agent command not found: {argv[0]}",
            hint="install it, or set --agent / ITERATR_AGENT / config key agent",
        )


def _data_dir_in_tree(data_dir: Path, root: Path, cwd: Path) -> Path:
    """The data dir relative to the work tree: the session's files are committed, so they must be inside it.

    A relative one is taken from ``cwd`` when it exists there, else from the repository root (as ``say``
    and ``tool`` do): a build started in a subdirectory must resume the session kept at the top, not
    start a second one in the subdirectory and commit it on the same branch.
    """
    base = cwd if data_dir.is_absolute() or (cwd / data_dir).is_dir() else root
    absolute = base / data_dir  # an absolute data_dir replaces base
    try:
        rel = absolute.resolve().relative_to(root)
    except ValueError:
        raise UsageError(
            f"data_dir {data_dir} is outside the repository {root}: the session's files are committed, "
            "so use a directory inside it (default .iteratr)"
        ) from None
    if rel == Path("."):
        raise UsageError("data_dir cannot be the repository root: use a subdirectory such as .iteratr")
    return rel


__all__ = ["GitError", "build"]
