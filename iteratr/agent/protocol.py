"""The ACP side of the agent: the SDK's client connection over the agent process's pipes.

This is the only module that imports ``acp`` (the ``agent-client-protocol`` SDK), and only when a
connection is made, so importing it for its types stays cheap. It offers what the runner needs:
``initialize``, a new session with its model choice, setting the model, ``prompt`` and ``cancel``.

The SDK's connection runs on a transport of ours (``LineTransport``, newline-delimited JSON on the
pipes), which the SDK accepts in place of its own stdio streams. Owning the transport gives two things
the SDK has no public method for, without touching its private attributes: sending a request it does
not know (``session/set_model``, which agents from before session config options take) and reading a
field its response models drop (the ``models`` of ``session/new`` from those same agents).

We spawn the agent ourselves (``agent.process``) instead of using ``acp.spawn_agent_process``, which
trims the environment to an allow-list (provider API keys vanish), leaves stderr as a pipe nobody reads
(a chatty agent blocks), and cannot kill a process group (agents spawn shells and servers).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from iteratr.agent.events import AgentInfo, ModelError

if TYPE_CHECKING:
    from acp.client.connection import ClientSideConnection
    from acp.schema import (
        InitializeResponse,
        PermissionOption,
        PromptResponse,
        RequestPermissionResponse,
        SessionConfigOptionBoolean,
        SessionConfigOptionSelect,
        ToolCallUpdate,
    )

NOT_JSON = "Error parsing JSON-RPC message"
log = logging.getLogger("iteratr.agent.protocol")


# ---------------------------------------------------------------------------------------------------------
# Models and permissions


def model_option(
    options: list[SessionConfigOptionSelect | SessionConfigOptionBoolean] | None,
) -> SessionConfigOptionSelect | None:
    """The session's model selector: a select option with id "model" or category "model"."""
    from acp.schema import SessionConfigOptionSelect

    selects = [o for o in options or [] if isinstance(o, SessionConfigOptionSelect)]
    for option in selects:
        if option.id == "model":
            return option
    return next((o for o in selects if o.category == "model"), None)


def option_values(option: SessionConfigOptionSelect) -> list[str]:
    from acp.schema import SessionConfigSelectGroup

    values: list[str] = []
    for item in option.options:
        if isinstance(item, SessionConfigSelectGroup):
            values.extend(o.value for o in item.options)
        else:
            values.append(item.value)
    return values


@dataclass(frozen=True)
class SessionSetup:
    """A new ACP session and its model choice: a config option, or (older agents) a ``models`` field."""

    session_id: str
    option: SessionConfigOptionSelect | None
    legacy_models: Mapping[str, Any] | None  # the ``models`` field of agents that take session/set_model

    @property
    def offered(self) -> list[str]:
        if self.option is not None:
            return option_values(self.option)
        available = (self.legacy_models or {}).get("availableModels") or []
        return [str(m["modelId"]) for m in available if isinstance(m, dict) and "modelId" in m]

    @property
    def current(self) -> str | None:
        if self.option is not None:
            return self.option.current_value
        current = (self.legacy_models or {}).get("currentModelId")
        return str(current) if current else None


# ---------------------------------------------------------------------------------------------------------
# The transport


MAX_MESSAGE = 16 * 1024 * 1024  # bytes of one JSON-RPC message; a longer one fails the turn, unbuffered


class LineTransport:
    """Newline-delimited JSON-RPC on the agent's pipes, in the shape the SDK takes (send, receive, close).

    It also carries iteratr's own requests (``request``), under ids of its own that the SDK never
    sees, and keeps the ``models`` field of ``session/new`` answers by session id.
    """

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, on_incoming: Callable[[], None]
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._on_incoming = on_incoming
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self._own: dict[str, asyncio.Future[Any]] = {}
        self.legacy_models: dict[str, dict[str, Any]] = {}
        self.oversized = ""  # set when the agent sent a message over MAX_MESSAGE: why the connection ended

    async def send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8")
        async with self._lock:
            self._writer.write(data)
            await self._writer.drain()

    async def receive(self) -> dict[str, Any] | None:
        while True:
            line = (await self._read_line()).strip()
            if not line:
                if self._reader.at_eof() or self.oversized:
                    self._fail_own(ConnectionError("the agent closed its output"))
                    return None
                continue
            try:
                message = json.loads(line)
            except ValueError:
                log.error(NOT_JSON)  # one line in the agent log, counted there (SdkLog)
                continue
            if not isinstance(message, dict):
                log.error(NOT_JSON)
                continue
            self._on_incoming()
            if self._answer_own(message):
                continue
            result = message.get("result")
            if isinstance(result, dict) and isinstance(result.get("models"), dict) and "sessionId" in result:
                self.legacy_models[str(result["sessionId"])] = result["models"]
            return message

    async def close(self) -> None:
        self._fail_own(ConnectionError("connection closed"))
        if not self._writer.is_closing():
            self._writer.close()

    async def request(self, method: str, params: dict[str, Any]) -> Any:
        """Send a JSON-RPC request the SDK has no method for; raises ``acp.RequestError`` on an error answer."""
        request_id = f"iteratr-{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._own[request_id] = future
        try:
            await self.send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            return await future
        finally:
            self._own.pop(request_id, None)

    def _answer_own(self, message: dict[str, Any]) -> bool:
        future = self._own.get(str(message.get("id"))) if "method" not in message else None
        if future is None:
            return False
        if not future.done():
            error = message.get("error")
            if isinstance(error, dict):
                from acp import RequestError

                future.set_exception(
                    RequestError(error.get("code", -32603), str(error.get("message")), error.get("data"))
                )
            else:
                future.set_result(message.get("result"))
        return True

    def _fail_own(self, exc: Exception) -> None:
        for future in self._own.values():
            if not future.done():
                future.set_exception(exc)

    async def _read_line(self) -> bytes:
        # A line longer than the reader's limit arrives in pieces rather than failing (a 1 MiB message).
        # Past MAX_MESSAGE the pieces are dropped, never joined: one endless line cannot take iteratr's memory.
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                try:
                    piece = await self._reader.readuntil(b"\n")
                except asyncio.LimitOverrunError as exc:
                    piece = await self._reader.readexactly(exc.consumed)
                    size += len(piece)
                    if size > MAX_MESSAGE:
                        chunks.clear()
                    else:
                        chunks.append(piece)
                    continue
                size += len(piece)
                if size > MAX_MESSAGE:
                    return self._oversized(size)
                chunks.append(piece)
                return b"".join(chunks)
        except asyncio.IncompleteReadError as exc:
            size += len(exc.partial)
            if size > MAX_MESSAGE:
                return self._oversized(size)
            chunks.append(exc.partial)
            return b"".join(chunks)

    def _oversized(self, size: int) -> bytes:
        """A message over the limit ends the connection with a clear error: the turn fails, nothing is buffered."""
        self.oversized = (
            f"the agent sent a protocol message of {size} bytes, over the limit of {MAX_MESSAGE} bytes; "
            "it was dropped unread"
        )
        log.error(self.oversized)
        self._fail_own(ConnectionError(self.oversized))
        self._writer.close()
        return b""


# ---------------------------------------------------------------------------------------------------------
# The agent log


# The loggers whose records are about the agent's side of the pipe, the only ones agent.log takes: the ACP SDK's
# (it logs to the root logger) and this module's own (a line on stdout that is not JSON, an oversized message).
AGENT_SIDE_LOGGERS = frozenset({"root", __name__})


class SdkLog(logging.Handler):
    """Sends the SDK's log records (it logs to the root logger) to the agent log, not the terminal.

    A command that is not an ACP agent prints text on stdout; each such line is logged. Those become
    one short line each here, and are counted for the error message. They go through ``AgentLog``, so
    they land in the current file whatever rotated it.

    Only records about the agent's side (``AGENT_SIDE_LOGGERS``) are taken: the handler sits on the root
    logger, so without the filter every iteratr line (its warnings, the screen's copy of the agent's text,
    the inbox watcher's chatter) would be written here a second time, next to the --log-file that has them.
    """

    def __init__(self, path: Path) -> None:
        from iteratr.agent.agent_log import AgentLog

        super().__init__()
        self.log = AgentLog(path)
        self.setFormatter(logging.Formatter("iteratr: %(levelname)s: %(message)s"))
        self.addFilter(lambda record: record.name in AGENT_SIDE_LOGGERS)
        self.not_json = 0

    def emit(self, record: logging.LogRecord) -> None:
        # Every record becomes one line: a traceback would push the agent's own stderr (its real
        # complaint, e.g. missing credentials) out of the tail quoted in error messages.
        exc = record.exc_info[1] if record.exc_info else None
        record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        if record.msg == NOT_JSON:
            self.not_json += 1
            record.msg = f"{NOT_JSON}: the agent wrote a line on stdout that is not JSON"
        elif exc is not None:
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {exc}"
            record.args = None
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.log.write((text + "\n").encode("utf-8", errors="replace"))


# ---------------------------------------------------------------------------------------------------------
# The connection

SessionUpdate = Callable[[str, Any], None]
Permission = Callable[[str, "ToolCallUpdate", "list[PermissionOption]"], "RequestPermissionResponse"]


class _Client:
    """The ACP client callbacks; advertises (and implements) neither fs nor terminal."""

    def __init__(self, on_update: SessionUpdate, on_permission: Permission) -> None:
        self._on_update = on_update
        self._on_permission = on_permission

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self._on_update(session_id, update)

    async def request_permission(
        self, session_id: str, tool_call: ToolCallUpdate, options: list[PermissionOption], **kwargs: Any
    ) -> RequestPermissionResponse:
        return self._on_permission(session_id, tool_call, options)


class AcpConnection:
    """ACP over one agent process's pipes: the requests the runner makes, each a plain coroutine."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        stderr_log: Path,
        on_update: SessionUpdate,
        on_permission: Permission,
        on_incoming: Callable[[], None],
        auth_env: Mapping[str, str] | None = None,
    ) -> None:
        import acp

        self.auth_env: Mapping[str, str] = auth_env or {}  # the agent's environment, for ``agent.auth``
        self.auth_methods: list[Any] = []
        self.sdk_log = SdkLog(stderr_log)
        logging.getLogger().addHandler(self.sdk_log)
        self.transport = LineTransport(reader, writer, on_incoming)
        client = cast("acp.Client", _Client(on_update, on_permission))  # fs/terminal absent on purpose
        self._sdk: ClientSideConnection = acp.connect_to_agent(client, self.transport)

    async def initialize(self) -> InitializeResponse:
        import acp
        from acp.schema import ClientCapabilities, FileSystemCapabilities, Implementation

        from iteratr import __version__

        capabilities = ClientCapabilities(
            fs=FileSystemCapabilities(read_text_file=False, write_text_file=False), terminal=False
        )
        response = await self._sdk.initialize(
            protocol_version=acp.PROTOCOL_VERSION,
            client_capabilities=capabilities,
            client_info=Implementation(name="iteratr", version=__version__),
        )
        self.auth_methods = list(response.auth_methods or [])
        return response

    @staticmethod
    def check_version(response: InitializeResponse, default_name: str) -> AgentInfo:
        """The agent's name and version; raises ValueError naming both versions if they differ."""
        import acp

        if response.protocol_version != acp.PROTOCOL_VERSION:
            raise ValueError(
                f"agent speaks ACP protocol version {response.protocol_version}; "
                f"iteratr speaks version {acp.PROTOCOL_VERSION}"
            )
        info = response.agent_info
        return AgentInfo(info.name, info.version) if info else AgentInfo(default_name, "unknown")

    async def new_session(self, cwd: Path, mcp_servers: Sequence[Any] = ()) -> SessionSetup:
        """A new session; "authentication required" is answered once by ``agent.auth`` where it can."""
        from acp import RequestError

        from iteratr.agent.auth import env_auth_method

        try:
            session = await self._sdk.new_session(cwd=str(cwd), mcp_servers=list(mcp_servers))
        except RequestError as exc:
            method = env_auth_method(exc.code, self.auth_methods, self.auth_env)
            if method is None:
                raise
            await self._sdk.authenticate(method_id=method)
            session = await self._sdk.new_session(cwd=str(cwd), mcp_servers=list(mcp_servers))
        legacy = self.transport.legacy_models.pop(session.session_id, None)
        return SessionSetup(session.session_id, model_option(session.config_options), legacy)

    async def set_model(self, session: SessionSetup, wanted: str) -> str | None:
        """Set ``wanted`` on the session; return the model in effect. Raises ModelError if refused."""
        from acp import RequestError

        offered = session.offered
        listing = f"models offered: {', '.join(offered)}" if offered else "the agent lists no models"
        try:
            if session.option is not None:
                answer = await self._sdk.set_config_option(
                    config_id=session.option.id, session_id=session.session_id, value=wanted
                )
                new_option = model_option(answer.config_options)
                current = new_option.current_value if new_option is not None else wanted
            elif session.legacy_models is not None:
                await self.transport.request("session/set_model", {"sessionId": session.session_id, "modelId": wanted})
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
        return current

    def prompt(self, session_id: str, text: str) -> Awaitable[PromptResponse]:
        from acp import text_block

        return self._sdk.prompt(session_id=session_id, prompt=[text_block(text)])

    async def cancel(self, session_id: str) -> None:
        await self._sdk.cancel(session_id=session_id)

    async def close(self) -> None:
        """Close the connection and take the log handler off the root logger."""
        try:
            await self._sdk.close()
        finally:
            logging.getLogger().removeHandler(self.sdk_log)
            self.sdk_log.close()
