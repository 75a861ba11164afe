"""The seam between the build loop and an agent: what the loop needs, and how it gets one.

The loop never names ``AgentRunner``: it calls an ``AgentFactory`` with an ``AgentLaunch`` and talks
to the ``Agent`` it returns. The real factory (``acp_agent``) starts an ACP agent process; tests pass
a fake that runs scripted behaviours in-process, so the loop can be driven in milliseconds.
No ``acp`` import here, so importing the seam stays cheap (the policy module is pure).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from iteratr.agent.events import AgentInfo, TurnResult
from iteratr.agent.permissions import DEFAULT, Policy


@dataclass(frozen=True)
class AgentLaunch:
    """Everything needed to start the agent for one run."""

    argv: list[str]
    cwd: Path
    env: Mapping[str, str]
    stderr_log: Path
    on_event: Callable[[object], None]  # AgentText, ToolCallEvent, PermissionEvent ... as they stream
    model: str | None = None  # set on every session; None: the agent's default
    permissions: Policy = DEFAULT  # how the agent's permission requests are answered (config ``permissions``)
    work_tree: Path | None = None  # the policy's "outside the work tree"; None: cwd


@dataclass(frozen=True)
class Checked:
    """What ``iteratr build`` learnt of the agent before it touched git: its answer to ``initialize``, the model
    in effect (None: the agent reported none), and whether that agent is still running, for the run to use."""

    info: AgentInfo
    model: str | None
    running: bool = True


class Agent(Protocol):
    """One agent for a whole run; a fresh session (context) per turn.

    ``run_turn`` raises ``TurnTimeout``, ``AgentDied``, ``TurnFailed`` or ``ModelError`` (all
    ``AgentError``); an agent that died is restarted by the next ``run_turn``.
    """

    async def start(self) -> AgentInfo: ...

    async def run_turn(
        self, prompt: str, *, iteration_timeout: float | None, idle_timeout: float | None
    ) -> TurnResult: ...

    async def cancel(self) -> None:
        """Cancel the running turn (Ctrl+C); ``run_turn`` then returns stop reason ``cancelled``."""

    async def close(self) -> None:
        """Stop the agent; never hangs."""

    def kill_now(self) -> None:
        """Kill the agent at once (a second Ctrl+C, just before iteratr exits)."""


AgentFactory = Callable[[AgentLaunch], Agent]


def acp_agent(launch: AgentLaunch) -> Agent:
    """The real agent: an ACP agent process, driven through the SDK."""
    from iteratr.agent import usage
    from iteratr.agent.runner import AgentRunner

    runner = AgentRunner(
        launch.argv,
        cwd=launch.cwd,
        env=launch.env,
        stderr_log=launch.stderr_log,
        on_event=launch.on_event,
        model=launch.model,
        permissions=launch.permissions,
        work_tree=launch.work_tree,
    )
    if usage.has_record(launch.argv):  # its ACP usage covers only a turn's last model call: read its record
        return usage.AgentRecordUsage(runner, launch.argv, cwd=launch.cwd, env=launch.env)
    return runner
