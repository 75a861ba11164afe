"""An agent that writes without end: the screen's caps, the rotated agent.log, and one message over the limit."""

from __future__ import annotations

import asyncio
import io
import tracemalloc
from pathlib import Path
from typing import cast

from iteratr.agent.agent_log import AgentLog
from iteratr.agent.protocol import MAX_MESSAGE, LineTransport
from iteratr.output import HEAD_LINES, LINE_MAX, TAIL_LINES, Printer
from tests.agent.test_protocol import Writer


def test_a_turns_text_shows_its_first_and_last_lines_and_says_how_many_were_left_out() -> None:
    stream = io.StringIO()
    printer = Printer(stream)
    printer.agent_text("".join(f"line {i}\n" for i in range(1000)))
    printer.flush_agent()  # the turn ends
    lines = stream.getvalue().splitlines()
    assert lines[:HEAD_LINES] == [f"  line {i}" for i in range(HEAD_LINES)]
    omitted = 1000 - HEAD_LINES - TAIL_LINES
    assert lines[HEAD_LINES] == f"  … {omitted} lines omitted; full text in agent.log"
    assert lines[HEAD_LINES + 1 :] == [f"  line {i}" for i in range(1000 - TAIL_LINES, 1000)]
    printer.agent_text("the next turn\n")  # the cap is per turn
    assert stream.getvalue().endswith("  the next turn\n")


def test_a_short_turn_reads_in_order_around_tool_lines() -> None:
    stream = io.StringIO()
    printer = Printer(stream)
    printer.agent_text("".join(f"a{i}\n" for i in range(HEAD_LINES + 3)))
    printer.line("  [tool] ls -> completed")
    printer.agent_text("b\n")
    printer.flush_agent()
    lines = stream.getvalue().splitlines()
    assert lines[HEAD_LINES : HEAD_LINES + 3] == ["  a40", "  a41", "  a42"]
    assert lines[-2:] == ["  [tool] ls -> completed", "  b"]
    assert "omitted" not in stream.getvalue()


def test_one_line_is_cut_to_a_length_even_when_it_streams_without_end() -> None:
    stream = io.StringIO()
    printer = Printer(stream)
    for _ in range(2000):  # 20 MB of one line, in chunks: held as at most LINE_MAX characters
        printer.agent_text("x" * 10_000)
        assert len(printer._partial) <= LINE_MAX
    printer.flush_agent()
    (line,) = stream.getvalue().splitlines()
    assert line == "  " + "x" * LINE_MAX + f" … ({20_000_000 - LINE_MAX} more characters)"


def test_agent_log_rotates_within_its_bound(tmp_path: Path) -> None:
    log = AgentLog(tmp_path / "agent.log", max_bytes=1000, backups=2)
    for i in range(100):
        log.write(f"{i:04d}".encode() * 50)  # 200 bytes a write
    assert [p.name for p in log.files()] == ["agent.log", "agent.log.1", "agent.log.2"]
    assert sum(p.stat().st_size for p in log.files()) <= 3 * 1200
    assert log.path.read_bytes().endswith(b"0099" * 50)
    assert (tmp_path / "agent.log").stat().st_mode & 0o777 == 0o600


def test_one_message_over_the_limit_ends_the_connection_and_is_never_held_whole() -> None:
    async def go() -> tuple[object, str, bool, int]:
        reader = asyncio.StreamReader(limit=1024 * 1024)  # as the runner's pipe reader
        writer = Writer()
        line = LineTransport(reader, cast(asyncio.StreamWriter, writer), lambda: None)
        piece = b'{"jsonrpc":"2.0","method":"session/update","params":{"text":"' + b"y" * (256 * 1024)

        async def produce() -> None:
            sent = 0
            while sent < MAX_MESSAGE + 4 * 1024 * 1024:  # 20 MiB on one line
                while len(reader._buffer) > 2 * 1024 * 1024:  # type: ignore[attr-defined]  # a pipe's back-pressure
                    await asyncio.sleep(0)
                reader.feed_data(piece)
                sent += len(piece)
                await asyncio.sleep(0)
            reader.feed_data(b'"}}\n')
            reader.feed_eof()

        tracemalloc.start()
        producer = asyncio.ensure_future(produce())
        message = await line.receive()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await producer
        return message, line.oversized, writer.closed, peak

    message, why, closed, peak = asyncio.run(go())
    assert message is None  # the connection is over: the turn fails
    assert "over the limit of 16777216 bytes; it was dropped unread" in why
    assert closed
    assert peak < MAX_MESSAGE + 4 * 1024 * 1024  # it never held the 20 MiB line
