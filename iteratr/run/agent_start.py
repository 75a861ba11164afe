"""What ``iteratr build`` does before it touches git: start the agent and check it, and read what the branch says.

A broken agent (``--agent cat``, one that exits at once) or a model it refuses must leave no branch, no switch,
no commit and no ``.iteratr`` directory. So the build starts the agent first, completes the ACP handshake
(``initialize``: its name and version), opens one session to learn the model in effect (its default included)
and sets the model asked for (``ModelError``, exit 2, if refused), and only then takes the lock and puts the
session on its branch. The agent's stderr goes meanwhile to a start-up log under the git dir, moved into the
session's ``agent.log`` when the run takes the agent over (``Started.factory``).

The session's state is read first from its freshest copy (this checkout, its worktree, or the branch's last
commit, as ``status`` reads it, through the store's snapshot: never a replay of the whole log), so that a build
with nothing to do neither switches the checkout nor starts the agent: a complete session, or one that needs a
person (every open task blocked, or stuck), which the loop stops at once, as before, without starting the agent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from iteratr import freshest, paths
from iteratr.errors import IteratrError
from iteratr.run import guards, inbox
from iteratr.run.guards import acted_since
from iteratr.session.state import Event, State
from iteratr.session.store import Store

if TYPE_CHECKING:
    from iteratr.agent.events import AgentInfo
    from iteratr.agent.permissions import Policy
    from iteratr.agent.runner import AgentRunner
    from iteratr.agent.seam import Agent, AgentLaunch
    from iteratr.gitrepo import GitRepo

CHECK_TIMEOUT = 60.0  # seconds for session/new and the model, as for initialize (AgentRunner's start_timeout)


# -- the session as its branch has it ------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """The session's state from its freshest copy, and where that copy is checked out (None: nowhere)."""

    state: State
    events: Callable[[], Iterator[Event]]  # the log, streamed when asked (``acted_since``), never held
    checked_out: Path | None


def known_session(repo: GitRepo, name: str, data_rel: Path) -> Known | None:
    """The session's state, read through the store's snapshot (a branch through its mirror, ``iteratr.freshest``),
    never a replay of the whole log; None if it has no branch, or its log cannot be read (the run says why)."""
    branch = paths.branch_name(name)
    where = repo.root if repo.current_branch() == branch else repo.worktrees().get(branch)
    try:
        if where is not None:
            store = Store(where / data_rel, name)
            if not store.exists():
                return None
        elif repo.branch_exists(branch):
            mirror = freshest.mirror_branch(repo.root, repo.common_dir(), f"refs/heads/{branch}", name, data_rel)
            if mirror is None:  # a branch without the session's log: nothing recorded yet
                return Known(State(), lambda: iter(()), None)
            store = Store(mirror, name)
        else:
            return None
        state = store.load()
    except (OSError, IteratrError):
        return None  # unreadable, a link, a bad line: the run's own checks say so, after the agent check
    return Known(state, store.iter_events, where)


def nothing_to_do(known: Known, inbox_dir: Path) -> bool:
    """Complete, not checked out anywhere (so a build would switch to it only to stop), and no message waiting."""
    return known.state.complete and known.checked_out is None and not inbox.has_text(inbox_dir)


def agent_needed(known: Known, stall_limit: int) -> bool:
    """False when the loop will stop before starting the agent: complete, every open task blocked, or stuck with
    nobody having acted since (``BuildLoop._needs_person``); a message in the inbox still reaches it, later."""
    state = known.state
    if state.complete or guards.all_blocked(state):
        return False
    stalled = guards.without_progress(state, stall_limit)
    stuck = bool(stall_limit) and stalled >= stall_limit and not state.pending_messages()
    return not (stuck and not acted_since(state, known.events()))


# -- the agent, started and checked ----------------------------------------------------------------------


def start_log(repo: GitRepo, name: str) -> Path:
    """Where the agent's stderr goes until the session's directory exists: under the git dir, never committed."""
    return repo.common_dir() / "iteratr" / "starting" / f"{name}.log"


@dataclass
class Started:
    """An agent started and checked before git was touched; the run takes it over through ``factory``."""

    runner: AgentRunner
    agent: Agent
    cwd: Path
    info: AgentInfo
    model: str | None = None
    taken: bool = False

    def factory(self, launch: AgentLaunch) -> Agent:
        """The run's ``AgentFactory``: this same agent, its stderr and events now the run's."""
        self.runner.adopt(stderr_log=launch.stderr_log, on_event=launch.on_event)
        self.taken = True
        return self.agent

    async def close(self) -> None:
        """Stop it unless the run took it over (the run closes it then)."""
        if not self.taken:
            await self.agent.close()


async def start(
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stderr_log: Path,
    model: str | None,
    permissions: Policy,
) -> Started:
    """Start the agent and complete ``initialize``; raises ``AgentStartError`` (exit 1) saying why not."""
    from iteratr.agent import usage
    from iteratr.agent.runner import AgentRunner

    runner = AgentRunner(
        argv,
        cwd=cwd,
        env=env,
        stderr_log=stderr_log,
        on_event=lambda _event: None,  # no turn runs before the run takes it over
        model=model,
        permissions=permissions,
        work_tree=cwd,
    )
    agent: Agent = runner
    if usage.has_record(argv):  # as seam.acp_agent: its ACP usage covers a turn's last call only
        agent = usage.AgentRecordUsage(runner, argv, cwd=cwd, env=env)
    info = await agent.start()  # closes the agent itself when it fails
    return Started(runner, agent, cwd, info)


async def check_model(started: Started) -> str | None:
    """The model in effect, set first if one was asked for (``ModelError``, exit 2, if refused); on any failure
    the agent is stopped before the error goes on."""
    try:
        started.model = await started.runner.check_model(CHECK_TIMEOUT)
    except BaseException:
        await started.close()
        raise
    return started.model
