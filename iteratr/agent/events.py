"""What an ACP agent run reports: results, streamed events and errors.

Plain dataclasses and exceptions with no ``acp`` import, so the loop, doctor and tests can use them
without loading the SDK. ``iteratr.agent`` produces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from iteratr.errors import EXIT_USAGE, AgentError

TimeoutKind = Literal["idle", "total"]


# ---------------------------------------------------------------------------------------------------------
# Results and events


@dataclass(frozen=True)
class AgentInfo:
    name: str
    version: str
    # How the agent names the tools of iteratr's MCP server (opencode: "iteratr_"), for the prompt to teach them;
    # None: it was not given the server, or its naming is not known (iteratr.agent.mcp_servers).
    mcp_prefix: str | None = None


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost: float | None
    currency: str | None
    # Where the figures come from (iteratr.agent.usage): "turn" (the turn's total, as ACP defines it),
    # "agent-record" (the agent's own session record), "last-call" (only the last model call); None: unsaid.
    source: str | None = None


@dataclass
class TurnResult:
    stop_reason: str  # end_turn, max_tokens, max_turn_requests, refusal, cancelled
    text: str
    tool_calls: int
    usage: Usage | None
    model: str | None
    session_id: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    info: AgentInfo
    current_model: str | None
    models: list[str]


@dataclass(frozen=True)
class AgentText:
    text: str


@dataclass(frozen=True)
class AgentThought:
    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    tool_call_id: str
    title: str
    kind: str | None
    status: str | None
    final: bool
    exit_status: int | None = None  # the command's exit status, where the agent reports one (rawOutput)
    output: str = ""  # the end of what the call printed, as the agent reported it (kept short: OUTPUT_KEPT)

    @property
    def succeeded(self) -> bool:
        """Ended well: status completed and, when the agent reports an exit status, 0. An agent may say
        "completed" of a command that exited 1 (opencode does): the exit status decides then."""
        return self.status == "completed" and not self.exit_status


@dataclass(frozen=True)
class PermissionEvent:
    title: str
    option: str  # the option kind we chose (allow_once, allow_always, reject_once, reject_always) or "cancelled"
    reason: str = ""  # what decided, for the screen: "default policy", "rule 1 'deny execute \"git push*\"' (…)"


@dataclass(frozen=True)
class UsageEvent:
    usage: Usage


@dataclass(frozen=True)
class PlanEvent:
    entries: list[str]


def timeout_message(kind: TimeoutKind, total: float | None, idle: float | None) -> str:
    """How a turn stopped by a timeout is described (in the event log, the commit and the output)."""
    if kind == "idle":
        return f"agent was silent for {idle:g} s (idle_timeout); turn cancelled"
    return f"turn ran past {total:g} s (iteration_timeout); turn cancelled"


# ---------------------------------------------------------------------------------------------------------
# Errors


class AgentStartError(AgentError):
    """The agent binary is missing, or it did not complete ``initialize`` in time."""


class AgentDied(AgentError):
    """The agent process exited during a turn. The next ``run_turn`` restarts it."""

    def __init__(self, message: str, *, returncode: int | None, partial: TurnResult) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.partial = partial


class TurnTimeout(AgentError):
    """A turn ran past ``iteration_timeout`` (kind "total") or was silent past ``idle_timeout`` ("idle")."""

    def __init__(self, message: str, *, kind: TimeoutKind, partial: TurnResult) -> None:
        super().__init__(message)
        self.kind = kind
        self.partial = partial


class TurnFailed(AgentError):
    """The agent answered a session request with a JSON-RPC error (e.g. missing credentials)."""

    def __init__(self, message: str, *, partial: TurnResult) -> None:
        super().__init__(message)
        self.partial = partial


class ModelError(AgentError):
    """The requested model cannot be set on the agent. Not retryable: the user must pick another."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, models: list[str]) -> None:
        super().__init__(message)
        self.models = models
