"""Drive one ACP agent: start it, run one prompt turn per fresh session, stop it cleanly.

``AgentRunner`` is the real ``agent.seam.Agent``. It joins the agent's process (``agent.process``:
start in a new session, stop with escalation, the stderr log) and the ACP connection over its pipes
(``agent.protocol``), and owns what a turn is; ``agent.turn`` translates what the turn reports.
Every turn opens a new ACP session (fresh context is the point of the technique), sets the model if
one was asked for, sends ``session/prompt`` and watches three clocks: the total turn time, the time
since the agent last said anything (idle), and the process itself. On a timeout or Ctrl+C we send
``session/cancel``, give the agent a grace period, then kill its process group. A killed or dead
agent is restarted by the next ``run_turn``.

``acp`` is imported lazily (by ``agent.protocol``), so importing this module for its result types
and exceptions stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from iteratr.agent import mcp_servers
from iteratr.agent.events import (
    AgentDied,
    AgentInfo,
    AgentStartError,
    AgentText,
    AgentThought,
    ModelError,
    PermissionEvent,
    PlanEvent,
    ProbeResult,
    TimeoutKind,
    ToolCallEvent,
    TurnFailed,
    TurnResult,
    TurnTimeout,
    Usage,
    UsageEvent,
    timeout_message,
)
from iteratr.agent.permissions import DEFAULT, Policy
from iteratr.agent.process import AgentProcess
from iteratr.agent.turn import Turn, answer_permission

__all__ = [
    "AgentDied",
    "AgentInfo",
    "AgentRunner",
    "AgentStartError",
    "AgentText",
    "AgentThought",
    "ModelError",
    "PermissionEvent",
    "PlanEvent",
    "ProbeResult",
    "ToolCallEvent",
    "TurnFailed",
    "TurnResult",
    "TurnTimeout",
    "Usage",
    "UsageEvent",
    "probe",
]

if TYPE_CHECKING:
    from acp.schema import PermissionOption, PromptResponse, RequestPermissionResponse, ToolCallUpdate

    from iteratr.agent.protocol import AcpConnection, SessionSetup

T = TypeVar("T")


class Gone(Exception):
    """The agent process went away while we were waiting for an answer."""


class AgentRunner:
    """One agent process, restarted on demand; one ACP session per ``run_turn``."""

    def __init__(
        self,
        command: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stderr_log: Path,
        on_event: Callable[[object], None],
        model: str | None = None,
        permissions: Policy = DEFAULT,  # how the agent's permission requests are answered
        work_tree: Path | None = None,  # what "outside the work tree" means to the policy; None: cwd
        line_limit: int = 1024 * 1024,  # the pipe reader's buffer: a longer message is read in pieces
        start_timeout: float = 60.0,
        cancel_grace: float = 5.0,
        close_timeout: float = 2.0,
    ) -> None:
        self._cwd = Path(cwd)
        self._on_event = on_event
        self._model = model
        self._permissions = permissions
        self._work_tree = Path(work_tree) if work_tree is not None else self._cwd
        self._start_timeout = start_timeout
        self._cancel_grace = cancel_grace
        self._close_timeout = close_timeout
        self._process = AgentProcess(
            command, cwd=self._cwd, env=env, stderr_log=stderr_log, line_limit=line_limit, close_timeout=close_timeout
        )
        self._mcp = mcp_servers.McpHost(env)  # `iteratr mcp`, in every turn's session/new
        self._acp: AcpConnection | None = None
        self._broken = False
        self._info: AgentInfo | None = None
        self._turn: Turn | None = None
        self._current_model: str | None = None
        self._last_activity = 0.0

    @property
    def alive(self) -> bool:
        return self._process.running and self._acp is not None and not self._broken

    @property
    def info(self) -> AgentInfo | None:
        return self._info

    @property
    def current_model(self) -> str | None:
        return self._current_model

    @property
    def pid(self) -> int | None:
        """The agent's pid, which is also its process group id."""
        return self._process.pid

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> AgentInfo:
        """Spawn the agent and complete ``initialize``; a no-op while it is alive."""
        if self.alive and self._info is not None:
            return self._info
        await self._close_agent()  # not the MCP listener: it serves the run, restarts included
        await self._process.start()
        fresh = await self._mcp.start(self._cwd)  # a failed start stops a listener it started, keeps an older one
        # Imported only now, so that loading the SDK (pydantic: most of a second) overlaps the agent's own start-up.
        from iteratr.agent.protocol import AcpConnection

        reader, writer = self._process.pipes
        self._broken = False
        self._acp = AcpConnection(
            reader,
            writer,
            stderr_log=self._process.stderr_log,
            on_update=self._on_update,
            on_permission=self._on_permission,
            on_incoming=self._heard,
            auth_env=self._process.env,
        )
        try:
            response = await self.call(self._acp.initialize(), self._start_timeout)
        except Exception as exc:
            message = await self.failure_message("did not complete initialize", exc, self._start_timeout)
            await (self.close() if fresh else self._close_agent())
            raise AgentStartError(message) from None
        try:
            info = self._acp.check_version(response, Path(self._process.argv[0]).name)
            self._info = self._mcp.describe(info)
        except ValueError as exc:
            await (self.close() if fresh else self._close_agent())
            raise AgentStartError(str(exc)) from None
        return self._info

    async def close(self) -> None:
        """Stop the agent: EOF on stdin, wait, SIGTERM the group, SIGKILL the group; and its MCP listener."""
        await self._close_agent()
        await self._mcp.stop()

    async def _close_agent(self) -> None:
        connection, self._acp, self._broken = self._acp, None, False
        await self._process.stop()
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), self._close_timeout)

    def kill_now(self) -> None:
        """SIGKILL the agent's process group at once (a second Ctrl+C, just before iteratr exits)."""
        self._broken = True
        self._process.kill_now()
        self._mcp.kill_now()

    async def open_session(self, timeout: float) -> SessionSetup:
        """A new ACP session and its model choice (for probes); raises AgentStartError saying why not."""
        assert self._acp is not None, "start the agent first"
        try:
            return await self.call(self._acp.new_session(self._cwd), timeout)
        except Exception as exc:
            raise AgentStartError(await self.failure_message("did not open a session", exc, timeout)) from None

    async def check_model(self, timeout: float) -> str | None:
        """Before a run: open a session, set the model asked for (ModelError if the agent refuses it), and
        return the model in effect as the agent reports it (its default when none was asked), or None."""
        setup = await self.open_session(timeout)
        current = setup.current
        if self._model is not None and self._model != current:
            assert self._acp is not None
            try:
                current = await self.call(self._acp.set_model(setup, self._model), timeout)
            except ModelError:
                raise
            except Exception as exc:
                raise AgentStartError(await self.failure_message("did not set the model", exc, timeout)) from None
        self._current_model = current
        return current

    def adopt(self, *, stderr_log: Path, on_event: Callable[[object], None]) -> None:
        """Hand a started agent to the run: its stderr now goes to the session's agent.log (what it wrote so far
        is moved there), and its events to the run's listener."""
        self._on_event = on_event
        self._process.move_log(stderr_log)
        if self._acp is not None:
            self._acp.sdk_log.log = self._process.log

    # -- turns --------------------------------------------------------------------------------------------

    async def run_turn(self, prompt: str, *, iteration_timeout: float | None, idle_timeout: float | None) -> TurnResult:
        """Run ``prompt`` in a new session. A timeout of None or <= 0 means no limit."""
        if not self.alive:
            await self.start()
        loop = asyncio.get_running_loop()
        turn = Turn()
        self._turn = turn
        self._last_activity = start = loop.time()
        total_at = start + iteration_timeout if iteration_timeout and iteration_timeout > 0 else None
        idle = idle_timeout if idle_timeout and idle_timeout > 0 else None
        body = turn.body = asyncio.ensure_future(self._turn_body(turn, prompt))
        exited = self._process.exited
        try:
            while not body.done():
                limits: list[tuple[float, TimeoutKind]] = []
                if not turn.cancel_requested:  # cancel() finishes the turn itself, by kill if need be
                    if total_at is not None:
                        limits.append((total_at, "total"))
                    if idle is not None:
                        limits.append((self._last_activity + idle, "idle"))
                at, kind = min(limits) if limits else (None, None)
                if at is not None and kind is not None and at <= loop.time():
                    await self._stop_turn(turn)
                    raise TurnTimeout(
                        timeout_message(kind, iteration_timeout, idle), kind=kind, partial=turn.result("cancelled")
                    )
                if exited.done():
                    # The process is gone: its last words may still be in the pipe, then EOF.
                    await asyncio.wait({body}, timeout=1.0)
                    if not body.done():
                        raise await self._died(turn, None)
                    break
                watch: set[asyncio.Future[Any]] = {body, exited}
                timeout = None if at is None else at - loop.time()
                await asyncio.wait(watch, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            try:
                response = body.result()
            except (ModelError, AgentDied):
                raise
            except Exception as exc:
                if turn.cancel_requested:
                    return turn.result("cancelled")
                from acp import RequestError

                if isinstance(exc, RequestError) and self.alive:
                    raise TurnFailed(f"agent answered with an error: {exc}", partial=turn.result("failed")) from None
                raise await self._died(turn, exc) from None
            if turn.cancel_requested or response is None:
                return turn.result("cancelled", response)
            return turn.result(str(response.stop_reason), response)
        finally:
            self._turn = None
            self._process.log.flush()  # the text's tail held back in case it began a secret (agent_log)
            if not body.done():
                body.cancel()
            with contextlib.suppress(BaseException):
                await body  # also marks an already-seen exception as retrieved

    async def cancel(self) -> None:
        """Cancel the running turn (Ctrl+C): ``session/cancel``, then kill after the grace period."""
        turn = self._turn
        if turn is None or turn.cancel_requested:
            return
        turn.cancel_requested = True
        await self._stop_turn(turn)

    async def _turn_body(self, turn: Turn, prompt: str) -> PromptResponse | None:
        connection = self._acp
        assert connection is not None
        session = await connection.new_session(self._cwd, self._mcp.servers())
        turn.session_id = session.session_id
        self._process.log.line(f"session {session.session_id}: the agent's text of this turn follows")
        current = session.current
        if self._model is not None and self._model != current:
            current = await connection.set_model(session, self._model)
        turn.model = self._current_model = current
        if turn.cancel_requested:
            return None
        turn.prompting = True
        return await connection.prompt(session.session_id, prompt)

    async def _stop_turn(self, turn: Turn) -> None:
        body = turn.body
        assert body is not None
        if turn.prompting and turn.session_id is not None and self.alive and self._acp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._acp.cancel(turn.session_id), 1.0)
            await asyncio.wait({body}, timeout=self._cancel_grace)
        if not body.done():
            self._broken = True
            await self._process.kill()
            await asyncio.wait({body}, timeout=1.0)  # EOF fails the pending request

    # -- ACP callbacks (run on the event loop, one task per message, in arrival order) --------------------

    def _heard(self) -> None:
        self._last_activity = asyncio.get_running_loop().time()

    def _on_update(self, session_id: str, update: Any) -> None:
        turn = self._turn
        if turn is None or session_id != turn.session_id:
            return  # late news from an earlier session
        model = turn.on_update(update, self._emit)
        if model is not None:
            self._current_model = model

    def _on_permission(
        self, session_id: str, tool_call: ToolCallUpdate, options: list[PermissionOption]
    ) -> RequestPermissionResponse:
        return answer_permission(
            self._turn, tool_call, options, self._emit, policy=self._permissions, work_tree=self._work_tree
        )

    def _emit(self, event: object) -> None:
        """The listener gets every event; the agent's text also goes, whole, to the rotated agent.log, which is
        what the screen's cap points to."""
        if isinstance(event, AgentText):
            self._process.log.write(event.text.encode("utf-8", errors="replace"), stream="text")
        self._on_event(event)

    # -- waiting and failing ------------------------------------------------------------------------------

    async def call(self, request: Awaitable[T], timeout: float) -> T:
        """Await one request, failing fast if the process exits (``Gone``) or ``timeout`` passes."""
        task = asyncio.ensure_future(request)
        exited = self._process.exited
        try:
            watch: set[asyncio.Future[Any]] = {task, exited}
            done, _ = await asyncio.wait(watch, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if task not in done and exited in done:
                await asyncio.wait({task}, timeout=1.0)
            if not task.done():
                raise Gone() if exited.done() else TimeoutError()
            return task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def failure_message(self, what: str, exc: BaseException, timeout: float) -> str:
        """Why a request failed: the process's exit, a timeout or the error, then the agent's stderr."""
        if isinstance(exc, Gone | ConnectionError):
            await self._process.wait_exited(1.0)
        if self._process.returncode is not None:
            reason = self._process.exit_words()
        elif isinstance(exc, TimeoutError):
            reason = f"did not answer within {timeout:g} s"
        else:
            reason = f"failed: {exc}"
        not_json = self._acp.sdk_log.not_json if self._acp is not None else 0
        if not_json:
            reason += (
                f", after writing {not_json} line(s) on stdout that are not ACP JSON-RPC"
                " (is it an ACP agent command, like `opencode acp`?)"
            )
        return f"agent {shlex.join(self._process.argv)} {what}: it {reason}; {self._process.stderr_tail()}"

    async def _died(self, turn: Turn, exc: BaseException | None) -> AgentDied:
        """Reap the dead (or broken) agent and describe its death."""
        self._broken = True
        await self._process.wait_exited(1.0)
        returncode = self._process.returncode
        how = self._process.exit_words() if returncode is not None else f"broke the connection ({exc})"
        oversized = self._acp.transport.oversized if self._acp is not None else ""
        said = f"{oversized}" if oversized else f"agent {how} during the turn"
        message = f"{said}; {self._process.stderr_tail()}"
        await self._close_agent()  # the MCP listener stays for the restart (a new child mid-turn would look escaped)
        return AgentDied(message, returncode=returncode, partial=turn.result("failed"))


async def probe(
    command: list[str], *, cwd: Path, env: Mapping[str, str], stderr_log: Path, timeout: float
) -> ProbeResult:
    """Start the agent, open one session, report its model choice, stop it (for doctor and setup)."""
    runner = AgentRunner(
        command, cwd=cwd, env=env, stderr_log=stderr_log, on_event=lambda _e: None, start_timeout=timeout
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        info = await runner.start()
        session = await runner.open_session(max(0.1, deadline - loop.time()))
        return ProbeResult(info, session.current, session.offered)
    finally:
        await runner.close()
