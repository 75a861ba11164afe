"""The ACP side's own parts without an agent process: the line transport and a session's model choice."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any, cast

import pytest
from acp import RequestError

from iteratr.agent.protocol import NOT_JSON, LineTransport, SdkLog, SessionSetup


class Writer:
    """Stands in for the agent's stdin: keeps what was written, one JSON message per line."""

    def __init__(self) -> None:
        self.data = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def sent(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.data.splitlines()]


def transport(heard: list[int] | None = None) -> tuple[LineTransport, asyncio.StreamReader, Writer]:
    reader, writer = asyncio.StreamReader(), Writer()
    noted = heard if heard is not None else []
    return LineTransport(reader, cast(asyncio.StreamWriter, writer), lambda: noted.append(1)), reader, writer


def feed(reader: asyncio.StreamReader, *messages: dict[str, Any] | bytes) -> None:
    for message in messages:
        reader.feed_data(message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n")


def test_an_own_request_is_answered_outside_the_sdk_and_legacy_models_are_kept() -> None:
    async def go() -> None:
        line, reader, writer = transport()
        asked = asyncio.ensure_future(line.request("session/set_model", {"sessionId": "s1", "modelId": "m/b"}))
        await asyncio.sleep(0)  # let the request go out
        [request] = writer.sent()
        assert request == {
            "jsonrpc": "2.0",
            "id": "iteratr-1",
            "method": "session/set_model",
            "params": {"sessionId": "s1", "modelId": "m/b"},
        }
        models = {"currentModelId": "m/a", "availableModels": [{"modelId": "m/a"}, {"modelId": "m/b"}]}
        feed(
            reader,
            {"jsonrpc": "2.0", "id": "iteratr-1", "result": {}},  # ours: never reaches the SDK
            {"jsonrpc": "2.0", "id": 0, "result": {"sessionId": "s1", "models": models}},
        )
        message = await line.receive()
        assert message is not None and message["id"] == 0
        assert await asked == {}
        assert line.legacy_models == {"s1": models}
        setup = SessionSetup("s1", None, line.legacy_models.pop("s1"))
        assert (setup.current, setup.offered) == ("m/a", ["m/a", "m/b"])

    asyncio.run(go())


def test_an_error_answer_raises_and_eof_fails_what_is_pending() -> None:
    async def go() -> None:
        line, reader, _writer = transport()
        refused = asyncio.ensure_future(line.request("session/set_model", {}))
        pending = asyncio.ensure_future(line.request("session/set_model", {}))
        await asyncio.sleep(0)
        feed(reader, {"jsonrpc": "2.0", "id": "iteratr-1", "error": {"code": -32602, "message": "no such model"}})
        reader.feed_eof()
        assert await line.receive() is None
        with pytest.raises(RequestError, match="no such model"):
            await refused
        with pytest.raises(ConnectionError):
            await pending

    asyncio.run(go())


def test_lines_that_are_not_json_are_logged_once_each_and_skipped(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    handler = SdkLog(log)
    logging.getLogger().addHandler(handler)

    async def go() -> None:
        heard: list[int] = []
        line, reader, _writer = transport(heard)
        feed(reader, b"Usage: some-tool\n", b"\n", b"[1, 2]\n", {"jsonrpc": "2.0", "method": "x"})
        assert await line.receive() == {"jsonrpc": "2.0", "method": "x"}
        assert heard == [1], "only a message counts as the agent being active"

    try:
        asyncio.run(go())
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert handler.not_json == 2
    assert log.read_text().count(f"{NOT_JSON}: the agent wrote a line on stdout that is not JSON") == 2


def test_a_line_longer_than_the_reader_limit_arrives_whole() -> None:
    async def go() -> None:
        reader, writer = asyncio.StreamReader(limit=1024), Writer()
        line = LineTransport(reader, cast(asyncio.StreamWriter, writer), lambda: None)
        big = {"jsonrpc": "2.0", "method": "x", "params": {"text": "y" * 10_000}}
        feed(reader, big)
        assert await line.receive() == big

    asyncio.run(go())
