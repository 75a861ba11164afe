"""What the logs hold: agent.log only the agent's side, the --log-file each message once and no watcher chatter."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from iteratr.agent import protocol
from iteratr.agent.events import AgentText
from iteratr.agent.protocol import NOT_JSON, SdkLog
from iteratr.output import Printer
from iteratr.run import inbox
from iteratr.run.screen import Screen


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    """Every record the root logger passes on, at debug, as a --log-file at the default level gets them."""
    root = logging.getLogger()
    handler, level = Capture(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_agent_log_takes_the_sdk_records_and_not_iteratrs_own(tmp_path: Path, captured: Capture) -> None:
    path = tmp_path / "agent.log"
    handler = SdkLog(path)
    logging.getLogger().addHandler(handler)
    try:
        logging.getLogger("iteratr.run").warning("warning: iteratr's own warning")
        logging.getLogger("iteratr.agent").debug("agent event: ToolCallEvent(...)")
        logging.getLogger("watchfiles.main").debug("all changes filtered out")
        logging.error("Connection main loop failed")  # the ACP SDK logs to the root logger
        logging.getLogger(protocol.__name__).error(NOT_JSON)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert path.read_text().splitlines() == [
        "iteratr: ERROR: Connection main loop failed",
        f"iteratr: ERROR: {NOT_JSON}: the agent wrote a line on stdout that is not JSON",
    ]
    assert handler.not_json == 1
    assert any("iteratr's own warning" in r.getMessage() for r in captured.records), "the --log-file still has it"


def test_the_agents_text_is_logged_once(captured: Capture) -> None:
    screen = Screen(Printer(io.StringIO()), "iteratr/S")
    screen.agent_event(AgentText("Let me look at the task list.\n"))
    screen.out.flush_agent()
    said = [r.getMessage() for r in captured.records if "Let me look" in r.getMessage()]
    assert said == ["agent: Let me look at the task list."]


def test_the_inbox_watcher_keeps_watchfiles_debug_chatter_out_of_the_log(tmp_path: Path, captured: Capture) -> None:
    logging.getLogger("watchfiles").setLevel(logging.NOTSET)
    stop = asyncio.Event()

    async def go() -> None:
        await inbox.watch(tmp_path, stop.set, stop)

    asyncio.run(go())
    logging.getLogger("watchfiles.main").debug("all changes filtered out, raw_changes=...")
    logging.getLogger("watchfiles.main").warning("a real problem")
    said = [r.getMessage() for r in captured.records if r.name.startswith("watchfiles")]
    assert said == ["a real problem"]
