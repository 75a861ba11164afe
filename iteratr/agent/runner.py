"""Drive one ACP agent process: start it, run one prompt turn per fresh session, stop it cleanly.

This is the only module that talks ACP (through the ``agent-client-protocol`` SDK, imported
as ``acp``). ``acp`` is imported lazily inside functions, so importing this module for its
result types and exceptions stays cheap.

We spawn the agent ourselves instead of using ``acp.spawn_agent_process`` because the SDK's
helper gets three things wrong for us: it trims the environment to an
allow-list (provider API keys vanish), leaves stderr as a pipe nobody reads (a chatty agent
blocks), and cannot kill a process group (agents spawn shells and servers). The protocol
itself is still spoken by the SDK's ``ClientSideConnection`` over our pipes.

Every turn opens a new ACP session (fresh context is the point of the technique), sets the
model if one was asked for, sends ``session/prompt`` and watches three clocks: the total
turn time, the time since the agent last said anything (idle), and the process itself.
On a timeout or Ctrl+C we send ``session/cancel``, give the agent a grace period, then kill
its process group. A killed or dead agent is restarted by the next ``run_turn``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

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
)

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
    from acp.client.connection import ClientSideConnection
    from acp.connection import StreamEvent
    from acp.schema import (
        NewSessionResponse,
        PermissionOption,
        PromptResponse,
        RequestPermissionResponse,
        SessionConfigOptionBoolean,
        SessionConfigOptionSelect,
        ToolCallUpdate,
    )

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _model_option(
    options: list[SessionConfigOptionSelect | SessionConfigOptionBoolean] | None,
) -> SessionConfigOptionSelect | None:
    """The session's model selector: a select option with id "model" or category "model"."""
    from acp.schema import SessionConfigOptionSelect

    selects = [o for o in options or [] if isinstance(o, SessionConfigOptionSelect)]
    for option in selects:
        if option.id == "model":
            return option
    return next((o for o in selects if o.category == "model"), None)


def _option_values(option: SessionConfigOptionSelect) -> list[str]:
    from acp.schema import SessionConfigSelectGroup

    values: list[str] = []
    for item in option.options:
        if isinstance(item, SessionConfigSelectGroup):
            values.extend(o.value for o in item.options)
        else:
            values.append(item.value)
    return values


def _raw_model_ids(raw: Mapping[str, Any] | None) -> list[str]:
    """Model ids from the pre-config-option ``models`` field (``session/set_model`` agents)."""
    available = (raw or {}).get("availableModels") or []
    return [str(m["modelId"]) for m in available if isinstance(m, dict) and "modelId" in m]


def _pick_permission(options: list[PermissionOption]) -> PermissionOption | None:
    for kind in ("allow_always", "allow_once", "reject_once", "reject_always"):
        for option in options:
            if option.kind == kind:
                return option
    return None


def _text_of(content: Any) -> str:
    return content.text if getattr(content, "type", None) == "text" else ""


@dataclass
class _Turn:
    body: asyncio.Future[PromptResponse | None] | None = None
    session_id: str | None = None
    prompting: bool = False
    cancel_requested: bool = False
    text: list[str] = field(default_factory=list)
    tools: dict[str, tuple[str, str | None, str | None]] = field(default_factory=dict)  # id: title, kind, status
    cost: float | None = None
    currency: str | None = None
    model: str | None = None

    def result(self, stop_reason: str, response: PromptResponse | None = None) -> TurnResult:
        tokens = response.usage if response is not None else None
        usage = None
        if tokens is not None or self.cost is not None:
            usage = Usage(
                input_tokens=tokens.input_tokens if tokens else None,
                output_tokens=tokens.output_tokens if tokens else None,
                total_tokens=tokens.total_tokens if tokens else None,
                cost=self.cost,
                currency=self.currency,
            )
        return TurnResult(stop_reason, "".join(self.text), len(self.tools), usage, self.model, self.session_id)


class _Client:
    """The ACP client callbacks; advertises (and implements) neither fs nor terminal."""

    def __init__(self, runner: AgentRunner) -> None:
        self._runner = runner

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self._runner._on_update(session_id, update)

    async def request_permission(
        self, session_id: str, tool_call: ToolCallUpdate, options: list[PermissionOption], **kwargs: Any
    ) -> RequestPermissionResponse:
        return self._runner._on_permission(session_id, tool_call, options)


class _SdkLog(logging.FileHandler):
    """Sends the SDK's log records (it logs to the root logger) to the agent log, not the terminal.

    A command that is not an ACP agent prints text on stdout; the SDK logs a traceback per such
    line. Those become one short line each here, and are counted for the error message.
    """

    NOT_JSON = "Error parsing JSON-RPC message"

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.setFormatter(logging.Formatter("iteratr: %(levelname)s: %(message)s"))
        self.not_json = 0

    def emit(self, record: logging.LogRecord) -> None:
        # Every SDK record becomes one line: a traceback would push the agent's own stderr (its real
        # complaint, e.g. missing credentials) out of the tail quoted in error messages.
        exc = record.exc_info[1] if record.exc_info else None
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        if record.msg == self.NOT_JSON:
            self.not_json += 1
            record.msg = f"{self.NOT_JSON}: the agent wrote a line on stdout that is not JSON"
        elif exc is not None:
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
        super().emit(record)


class _Died(Exception):
    """Internal: the process went away while we were waiting for an answer."""


# ---------------------------------------------------------------------------------------------------------
# The runner


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
        line_limit: int = 64 * 1024 * 1024,
        start_timeout: float = 60.0,
        cancel_grace: float = 5.0,
        close_timeout: float = 2.0,
    ) -> None:
        self._command = list(command)
        self._cwd = Path(cwd)
        self._env = dict(env)
        self._stderr_log = Path(stderr_log)
        self._on_event = on_event
        self._model = model
        self._line_limit = line_limit
        self._start_timeout = start_timeout
        self._cancel_grace = cancel_grace
        self._close_timeout = close_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._conn: ClientSideConnection | None = None
        self._exit: asyncio.Future[int] | None = None
        self._broken = False
        self._info: AgentInfo | None = None
        self._log_offset = 0
        self._turn: _Turn | None = None
        self._current_model: str | None = None
        self._last_activity = 0.0
        self._raw_models: dict[str, dict[str, Any]] = {}
        self._sdk_log: _SdkLog | None = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and not self._broken

    @property
    def info(self) -> AgentInfo | None:
        return self._info

    @property
    def current_model(self) -> str | None:
        return self._current_model

    @property
    def pid(self) -> int | None:
        """The agent's pid, which is also its process group id."""
        return self._proc.pid if self._proc is not None else None

    # -- lifecycle ----------------------------------------------------------------------------------------

    async def start(self) -> AgentInfo:
        """Spawn the agent and complete ``initialize``; a no-op while it is alive."""
        if self.alive and self._info is not None:
            return self._info
        await self.close()
        if not self._command:
            raise AgentStartError("no agent command given", hint="set --agent, ITERATR_AGENT or config key agent")
        from iteratr import __version__

        self._stderr_log.parent.mkdir(parents=True, exist_ok=True)
        with self._stderr_log.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"--- iteratr {stamp}: starting {shlex.join(self._command)}\n".encode())
            log.flush()
            self._log_offset = log.tell()
            try:
                # Own session => own process group, so a kill takes the agent's shells and servers
                # too, and the terminal's Ctrl+C reaches only iteratr, which cancels politely.
                proc = await asyncio.create_subprocess_exec(
                    *self._command,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                    cwd=str(self._cwd),
                    env=self._env,
                    limit=self._line_limit,
                    start_new_session=True,
                )
            except FileNotFoundError:
                raise AgentStartError(
                    f"agent command not found: {self._command[0]}",
                    hint="install it, or set --agent / ITERATR_AGENT / config key agent",
                ) from None
            except OSError as exc:
                raise AgentStartError(f"cannot run agent command {self._command[0]}: {exc.strerror}") from None
        # Imported only now, so that loading the SDK (pydantic: most of a second) overlaps the agent's own start-up.
        import acp
        from acp.schema import ClientCapabilities, FileSystemCapabilities, Implementation

        assert proc.stdin is not None and proc.stdout is not None
        self._proc, self._broken, self._raw_models = proc, False, {}
        self._exit = asyncio.ensure_future(proc.wait())
        self._sdk_log = _SdkLog(self._stderr_log)
        logging.getLogger().addHandler(self._sdk_log)
        client = cast("acp.Client", _Client(self))  # the fs/terminal methods are absent on purpose
        self._conn = acp.connect_to_agent(client, proc.stdin, proc.stdout, observers=[self._observe])
        capabilities = ClientCapabilities(
            fs=FileSystemCapabilities(read_text_file=False, write_text_file=False), terminal=False
        )
        try:
            response = await self._call(
                self._conn.initialize(
                    protocol_version=acp.PROTOCOL_VERSION,
                    client_capabilities=capabilities,
                    client_info=Implementation(name="iteratr", version=__version__),
                ),
                self._start_timeout,
            )
        except Exception as exc:
            message = await self._fail_message("did not complete initialize", exc, self._start_timeout)
            await self.close()
            raise AgentStartError(message) from None
        if response.protocol_version != acp.PROTOCOL_VERSION:
            await self.close()
            raise AgentStartError(
                f"agent speaks ACP protocol version {response.protocol_version}; "
                f"iteratr speaks version {acp.PROTOCOL_VERSION}"
            )
        name = Path(self._command[0]).name
        agent_info = response.agent_info
        self._info = AgentInfo(agent_info.name, agent_info.version) if agent_info else AgentInfo(name, "unknown")
        return self._info

    async def close(self) -> None:
        """Stop the agent: EOF on stdin, wait, SIGTERM the group, SIGKILL the group. Never hangs."""
        proc, conn, exited = self._proc, self._conn, self._exit
        self._proc, self._conn, self._exit, self._broken = None, None, None, False
        if proc is None:
            return
        assert exited is not None
        try:
            if proc.returncode is None and proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None:
                    _signal_group(proc.pid, sig)
                done, _ = await asyncio.wait({exited}, timeout=self._close_timeout)
                if done:
                    break
            # Whatever the agent left behind in its group (a dev server, a stuck shell) goes too.
            _signal_group(proc.pid, signal.SIGKILL)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), self._close_timeout)
        finally:
            if not exited.done():
                exited.cancel()
            if self._sdk_log is not None:
                logging.getLogger().removeHandler(self._sdk_log)
                self._sdk_log.close()
                self._sdk_log = None

    def kill_now(self) -> None:
        """SIGKILL the agent's process group at once (a second Ctrl+C, just before iteratr exits)."""
        if self._proc is not None:
            self._broken = True
            _signal_group(self._proc.pid, signal.SIGKILL)

    async def _kill(self) -> None:
        self._broken = True
        if self._proc is not None and self._exit is not None:
            _signal_group(self._proc.pid, signal.SIGKILL)
            await asyncio.wait({self._exit}, timeout=self._close_timeout)

    # -- turns --------------------------------------------------------------------------------------------

    async def run_turn(self, prompt: str, *, iteration_timeout: float | None, idle_timeout: float | None) -> TurnResult:
        """Run ``prompt`` in a new session. A timeout of None or <= 0 means no limit."""
        if not self.alive:
            await self.start()
        loop = asyncio.get_running_loop()
        turn = _Turn()
        self._turn = turn
        self._last_activity = start = loop.time()
        total_at = start + iteration_timeout if iteration_timeout and iteration_timeout > 0 else None
        idle = idle_timeout if idle_timeout and idle_timeout > 0 else None
        body = turn.body = asyncio.ensure_future(self._turn_body(turn, prompt))
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
                        self._timeout_message(kind, iteration_timeout, idle),
                        kind=kind,
                        partial=turn.result("cancelled"),
                    )
                assert self._exit is not None
                if self._exit.done():
                    # The process is gone: its last words may still be in the pipe, then EOF.
                    await asyncio.wait({body}, timeout=1.0)
                    if not body.done():
                        raise await self._died(turn, None)
                    break
                watch: set[asyncio.Future[Any]] = {body, self._exit}
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

    async def _turn_body(self, turn: _Turn, prompt: str) -> PromptResponse | None:
        from acp import text_block

        conn = self._conn
        assert conn is not None
        session = await conn.new_session(cwd=str(self._cwd), mcp_servers=[])
        turn.session_id = session.session_id
        turn.model = await self._apply_model(conn, session)
        if turn.cancel_requested:
            return None
        turn.prompting = True
        return await conn.prompt(session_id=session.session_id, prompt=[text_block(prompt)])

    async def _stop_turn(self, turn: _Turn) -> None:
        body = turn.body
        assert body is not None
        if turn.prompting and turn.session_id is not None and self.alive and self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.cancel(session_id=turn.session_id), 1.0)
            await asyncio.wait({body}, timeout=self._cancel_grace)
        if not body.done():
            await self._kill()
            await asyncio.wait({body}, timeout=1.0)  # EOF fails the pending request

    async def _apply_model(self, conn: ClientSideConnection, session: NewSessionResponse) -> str | None:
        """Set the requested model on a fresh session; return the model in effect (if the agent says)."""
        from acp import RequestError

        option = _model_option(session.config_options)
        raw = self._raw_models.pop(session.session_id, None)
        offered = _option_values(option) if option is not None else _raw_model_ids(raw)
        current = option.current_value if option is not None else (raw or {}).get("currentModelId")
        wanted = self._model
        if wanted is not None and wanted != current:
            listing = f"models offered: {', '.join(offered)}" if offered else "the agent lists no models"
            try:
                if option is not None:
                    answer = await conn.set_config_option(
                        config_id=option.id, session_id=session.session_id, value=wanted
                    )
                    new_option = _model_option(answer.config_options)
                    current = new_option.current_value if new_option is not None else wanted
                elif raw is not None:
                    # Older agents (pre config options) take session/set_model, which SDK 0.12 has no
                    # method for; send the raw request over the SDK's connection.
                    await conn._conn.send_request(
                        "session/set_model", {"sessionId": session.session_id, "modelId": wanted}
                    )
                    current = wanted
                else:
                    raise ModelError(
                        f"agent offers no model choice, so model {wanted!r} cannot be set; "
                        "run without a model or configure it in the agent",
                        models=[],
                    )
            except RequestError as exc:
                raise ModelError(f"agent refused model {wanted!r} ({exc}); {listing}", models=offered) from None
            if current != wanted:
                raise ModelError(f"agent kept model {current!r} instead of {wanted!r}; {listing}", models=offered)
        self._current_model = current
        return current

    # -- ACP callbacks (run on the event loop, one task per message, in arrival order) --------------------

    def _observe(self, event: StreamEvent) -> None:
        if event.direction.value != "incoming":
            return
        self._last_activity = asyncio.get_running_loop().time()
        result = event.message.get("result")
        if isinstance(result, dict) and isinstance(result.get("models"), dict) and "sessionId" in result:
            self._raw_models[str(result["sessionId"])] = result["models"]

    def _emit(self, event: object) -> None:
        self._on_event(event)

    def _on_update(self, session_id: str, update: Any) -> None:
        from acp import schema as s

        turn = self._turn
        if turn is None or session_id != turn.session_id:
            return  # late news from an earlier session
        if isinstance(update, s.AgentMessageChunk):
            text = _text_of(update.content)
            if text:
                turn.text.append(text)
                self._emit(AgentText(text))
        elif isinstance(update, s.AgentThoughtChunk):
            text = _text_of(update.content)
            if text:
                self._emit(AgentThought(text))
        elif isinstance(update, (s.ToolCallStart, s.ToolCallProgress)):
            old = turn.tools.get(update.tool_call_id, (None, None, None))
            title = update.title or old[0] or update.tool_call_id
            new = (title, update.kind or old[1], update.status or old[2])
            turn.tools[update.tool_call_id] = new
            if (new[0], new[2]) != (old[0], old[2]):  # content-only progress is not news
                final = new[2] in ("completed", "failed")
                self._emit(ToolCallEvent(update.tool_call_id, title, new[1], new[2], final))
        elif isinstance(update, s.AgentPlanUpdate):
            self._emit(PlanEvent([entry.content for entry in update.entries]))
        elif isinstance(update, s.UsageUpdate):
            if update.cost is not None:
                turn.cost, turn.currency = update.cost.amount, update.cost.currency
                self._emit(UsageEvent(Usage(None, None, None, turn.cost, turn.currency)))
        elif isinstance(update, s.ConfigOptionUpdate):
            option = _model_option(update.config_options)
            if option is not None:
                turn.model = self._current_model = option.current_value

    def _on_permission(
        self, session_id: str, tool_call: ToolCallUpdate, options: list[PermissionOption]
    ) -> RequestPermissionResponse:
        from acp.schema import AllowedOutcome, DeniedOutcome, RequestPermissionResponse

        turn = self._turn
        known = turn.tools.get(tool_call.tool_call_id, (None, None, None))[0] if turn else None
        title = tool_call.title or known or tool_call.tool_call_id
        choice = _pick_permission(options)
        if turn is None or turn.cancel_requested or choice is None:
            # The protocol wants "cancelled" for requests that arrive after session/cancel.
            self._emit(PermissionEvent(title, "cancelled"))
            return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))
        self._emit(PermissionEvent(title, choice.kind))
        return RequestPermissionResponse(outcome=AllowedOutcome(outcome="selected", option_id=choice.option_id))

    # -- plumbing -----------------------------------------------------------------------------------------

    async def _call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Await one request, failing fast if the process exits or ``timeout`` passes."""
        task = asyncio.ensure_future(coro)
        assert self._exit is not None
        try:
            watch: set[asyncio.Future[Any]] = {task, self._exit}
            done, _ = await asyncio.wait(watch, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if task not in done and self._exit in done:
                await asyncio.wait({task}, timeout=1.0)
            if not task.done():
                raise _Died() if self._exit.done() else TimeoutError()
            return task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _died(self, turn: _Turn, exc: BaseException | None) -> AgentDied:
        """Reap the dead (or broken) agent and describe its death."""
        self._broken = True
        proc = self._proc
        if proc is not None and self._exit is not None:
            await asyncio.wait({self._exit}, timeout=1.0)
        returncode = proc.returncode if proc is not None else None
        how = _exit_words(returncode) if returncode is not None else f"broke the connection ({exc})"
        message = f"agent {how} during the turn; {self._stderr_tail()}"
        await self.close()
        return AgentDied(message, returncode=returncode, partial=turn.result("failed"))

    async def _fail_message(self, what: str, exc: BaseException, timeout: float) -> str:
        if self._exit is not None and not self._exit.done() and isinstance(exc, _Died | ConnectionError):
            await asyncio.wait({self._exit}, timeout=1.0)
        returncode = self._proc.returncode if self._proc is not None else None
        if returncode is not None:
            reason = _exit_words(returncode)
        elif isinstance(exc, TimeoutError):
            reason = f"did not answer within {timeout:g} s"
        else:
            reason = f"failed: {exc}"
        if self._sdk_log is not None and self._sdk_log.not_json:
            reason += (
                f", after writing {self._sdk_log.not_json} line(s) on stdout that are not ACP JSON-RPC"
                " (is it an ACP agent command, like `opencode acp`?)"
            )
        return f"agent {shlex.join(self._command)} {what}: it {reason}; {self._stderr_tail()}"

    def _stderr_tail(self, lines: int = 5, limit: int = 500) -> str:
        """The last stderr lines of the current process, on one line, for error messages."""
        try:
            with self._stderr_log.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, size - 16384))
                data = log.read().decode("utf-8", errors="replace")
        except OSError:
            data = ""
        # The SDK's own lines ("iteratr: ...") are context, not the agent's words: quote the agent first.
        own = [line.strip() for line in data.splitlines() if line.strip() and not line.startswith("iteratr: ")]
        tail = (own or [line.strip() for line in data.splitlines() if line.strip()])[-lines:]
        if not tail:
            return f"no stderr output (log: {self._stderr_log})"
        return f"stderr: {' | '.join(tail)[-limit:]} (full log: {self._stderr_log})"

    def _timeout_message(self, kind: TimeoutKind, total: float | None, idle: float | None) -> str:
        if kind == "idle":
            return f"agent was silent for {idle:g} s (idle_timeout); turn cancelled"
        return f"turn ran past {total:g} s (iteration_timeout); turn cancelled"


def _exit_words(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
        return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


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
        assert runner._conn is not None
        try:
            session = await runner._call(
                runner._conn.new_session(cwd=str(cwd), mcp_servers=[]), max(0.1, deadline - loop.time())
            )
        except Exception as exc:
            raise AgentStartError(await runner._fail_message("did not open a session", exc, timeout)) from None
        option = _model_option(session.config_options)
        raw = runner._raw_models.pop(session.session_id, None)
        if option is not None:
            return ProbeResult(info, option.current_value, _option_values(option))
        current = (raw or {}).get("currentModelId")
        return ProbeResult(info, str(current) if current else None, _raw_model_ids(raw))
    finally:
        await runner.close()
