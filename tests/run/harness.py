"""The build loop in-process: a real temp git repo and store, real hooks, and the fake agent of tests/fakes.py.

``run_loop`` does what ``iteratr build`` does once its checks pass (put the session on its branch,
create the store and inbox, fill ``Settings``) and runs ``BuildLoop`` in this process, with the
output going to a string. ``BackgroundLoop`` runs it in a thread, for tests that act while it runs
(the inbox watcher and the hooks keep running, since the loop's event loop is the thread's own).
"""

from __future__ import annotations

import asyncio
import io
import shlex
import signal
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from iteratr import paths
from iteratr import session_branch as session_git
from iteratr.errors import IteratrError
from iteratr.gitrepo import GitRepo
from iteratr.output import Printer
from iteratr.run import hooks as hooks_mod
from iteratr.run import inbox, prompt
from iteratr.run.loop import BuildLoop
from iteratr.run.runlock import RunLock, lock_path
from iteratr.run.settings import Settings
from iteratr.session.state import State
from iteratr.session.store import Store
from tests.conftest import ITERATR_CMD
from tests.fakes import Script


@dataclass
class LoopRun:
    """One run of the loop: its exit status, what it printed, and where its session lives."""

    settings: Settings
    store: Store
    script: Script
    stream: io.StringIO = field(default_factory=io.StringIO)
    code: int | None = None
    lock: RunLock | None = None  # held while the loop runs, as `iteratr build` holds it (`say` looks)

    @property
    def output(self) -> str:
        return self.stream.getvalue()

    @property
    def session_dir(self) -> Path:
        return self.store.dir

    @property
    def state(self) -> State:
        return self.store.load()

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.store.events() if type_ is None or e["type"] == type_]

    def ended(self) -> dict[int, dict[str, Any]]:
        """``iteration.ended`` data by number (the last one wins, as in the reducer)."""
        return {int(e["data"]["n"]): e["data"] for e in self.events("iteration.ended")}

    def started(self) -> list[int]:
        return [int(e["data"]["n"]) for e in self.events("iteration.started")]


def prepare(
    repo: Path,
    script: Script,
    *,
    name: str = "SPEC",
    spec: str = "specs/SPEC.md",
    worktree: bool = False,
    **overrides: Any,
) -> tuple[BuildLoop, LoopRun]:
    """A loop on the session ``name`` of ``repo``, ready to run; ``overrides`` are ``Settings`` fields."""
    git_repo = GitRepo.open(repo)
    lock = RunLock(lock_path(git_repo.common_dir(), name), name, git_repo.root).acquire()
    data_rel = Path(".iteratr")
    work_tree, _how = session_git.prepare(git_repo, name, data_rel=data_rel, worktree=worktree, reset=False)
    wt_repo = git_repo if work_tree == git_repo.root else GitRepo.open(work_tree)
    store = Store(work_tree / data_rel, name)
    store.create()
    inbox.ensure_inbox(store.dir)
    template = overrides.pop("template", None)
    settings = Settings(
        session=name,
        work_tree=work_tree,
        data_dir=work_tree / data_rel,
        spec_path=(repo / spec).resolve(),
        agent_argv=["fake-agent"],
        model=None,
        iterations=0,
        iteration_timeout=30.0,
        idle_timeout=30.0,
        max_failures=3,
        retry_delay=0.0,
        auto_commit=True,
        push="",
        extra="",
        templates={"planning": prompt.load(None, "planning"), "main": prompt.load(template, "default")},
        hooks=hooks_mod.load_hooks(work_tree),
        binary=shlex.join(ITERATR_CMD),
        branch=paths.branch_name(name),
        # Off unless a test asks: most tests script agents that make no progress on purpose ("ok", "hang"), and
        # the guard rails' own tests (tests/run/test_guards_loop.py) set it.
        stall_limit=0,
    )
    settings = replace(settings, **overrides)
    run = LoopRun(settings, store, script, lock=lock)
    return BuildLoop(settings, store, wt_repo, Printer(run.stream), agent_factory=script), run


async def _run(loop: BuildLoop, run: LoopRun) -> None:
    try:
        run.code = await loop.run()
    except IteratrError as exc:  # what the boundary prints, and its exit status
        loop.out.line(f"iteratr: error: {exc}")
        run.code = exc.exit_code
    finally:
        if run.lock is not None:
            run.lock.release()


def run_loop(repo: Path, script: Script, *, expect: int | None = 0, **kwargs: Any) -> LoopRun:
    """Run the loop to its end in this thread; check its exit status (``expect``)."""
    loop, run = prepare(repo, script, **kwargs)
    asyncio.run(_run(loop, run))
    if expect is not None:
        assert run.code == expect, f"exit {run.code}, expected {expect}\n{run.output}"
    return run


class BackgroundLoop:
    """The loop running in a thread; ``interrupt`` is a Ctrl+C (or SIGTERM) delivered to it."""

    def __init__(self, repo: Path, script: Script, **kwargs: Any) -> None:
        self.loop, self.run = prepare(repo, script, **kwargs)
        self._ready = threading.Event()
        self._aio: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        self._ready.wait(10)

    def _main(self) -> None:
        async def go() -> None:
            self._aio = asyncio.get_running_loop()
            self._ready.set()
            await _run(self.loop, self.run)

        asyncio.run(go())

    @property
    def session_dir(self) -> Path:
        return self.run.session_dir

    def output(self) -> str:
        return self.run.output

    def done(self) -> bool:
        return not self.thread.is_alive()

    def interrupt(self, sig: signal.Signals = signal.SIGINT) -> None:
        assert self._aio is not None
        self._aio.call_soon_threadsafe(self.loop.interrupts.interrupt, sig)

    def wait(self, expect: int, timeout: float = 60) -> str:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the loop did not end in {timeout}s\n{self.output()}"
        assert self.run.code == expect, f"exit {self.run.code}, expected {expect}\n{self.output()}"
        return self.output()
