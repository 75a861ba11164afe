"""Usage totals from the agent's own record: opencode export, as recorded from opencode 1.18.33."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from pathlib import Path

import pytest

from iteratr.agent import seam, usage
from iteratr.agent.events import AgentInfo, TurnResult, Usage
from iteratr.agent.seam import Agent, AgentLaunch

RECORDED = Path(__file__).parent / "data" / "opencode-1.18.33-export.json"


def test_export_totals_sum_every_model_call_of_the_turn() -> None:
    # Recorded: two model calls of 100 in + 10 out each; the ACP response's usage said 110 (the last call).
    got = usage.from_opencode_export(RECORDED.read_text())
    assert got is not None
    assert (got.input_tokens, got.output_tokens, got.total_tokens) == (200, 20, 220)
    assert got.cost == 0.0009 and got.currency == "USD"
    assert got.source == "agent-record"


def test_export_text_with_a_leading_line_and_garbage_is_handled() -> None:
    assert usage.from_opencode_export("Exporting session: x\n" + RECORDED.read_text()) is not None
    assert usage.from_opencode_export("not json") is None
    assert usage.from_opencode_export(json.dumps({"info": {"tokens": "many"}})) is None
    assert usage.from_opencode_export("[]") is None


def test_opencode_turn_usage_runs_the_agents_export_command(tmp_path: Path) -> None:
    fake = tmp_path / "opencode"
    fake.write_text(f'#!/bin/sh\n[ "$1" = export ] && [ "$2" = ses_1 ] && cat {RECORDED}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    got = usage.opencode_turn_usage([str(fake), "acp"], "ses_1", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert got is not None and got.total_tokens == 220
    failing = usage.opencode_turn_usage([str(fake), "acp"], "other", cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert failing is None


def test_is_opencode() -> None:
    assert usage.is_opencode(["/x/opencode", "acp"])
    assert not usage.is_opencode(["python", "-m", "agent"])


# -- the seam's opencode wrapper: a fake inner agent, a fake ``opencode`` found on the agent's PATH ----------

LAST_CALL = Usage(input_tokens=100, output_tokens=10, total_tokens=110, cost=None, currency=None)


class FakeInner:
    """An ``Agent`` whose one turn reports what opencode 1.18.33's PromptResponse says: the last call only."""

    def __init__(self, session_id: str | None) -> None:
        self.session_id = session_id
        self.calls: list[str] = []

    async def start(self) -> AgentInfo:
        self.calls.append("start")
        return AgentInfo(name="opencode", version="1.18.33")

    async def run_turn(self, prompt: str, *, iteration_timeout: float | None, idle_timeout: float | None) -> TurnResult:
        self.calls.append(f"turn {prompt}")
        return TurnResult("end_turn", "done", 2, LAST_CALL, "mock/scripted", session_id=self.session_id)

    async def cancel(self) -> None:
        self.calls.append("cancel")

    async def close(self) -> None:
        self.calls.append("close")

    def kill_now(self) -> None:
        self.calls.append("kill_now")


def fake_opencode(bin_dir: Path, *, answers: str) -> None:
    """An ``opencode`` that answers ``export <answers>`` with the recorded export (and its stderr line)."""
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "opencode"
    fake.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = export ] && [ "$2" = {answers} ] || {{ echo "no such session $2" >&2; exit 1; }}\n'
        'echo "Exporting session: $2" >&2\n'
        f"cat {RECORDED}\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)


def wrapped(tmp_path: Path, session_id: str | None) -> tuple[Agent, FakeInner]:
    fake_opencode(tmp_path / "bin", answers="ses_1")
    inner = FakeInner(session_id)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}  # ``opencode acp`` as --agent gives it: found on PATH
    return usage.AgentRecordUsage(inner, ["opencode", "acp"], cwd=tmp_path, env=env), inner


def one_turn(agent: Agent) -> TurnResult:
    async def go() -> TurnResult:
        await agent.start()
        try:
            return await agent.run_turn("do it", iteration_timeout=None, idle_timeout=None)
        finally:
            await agent.close()

    return asyncio.run(go())


def test_the_seam_wraps_opencode_and_only_opencode(tmp_path: Path) -> None:
    def launch(argv: list[str]) -> AgentLaunch:
        return AgentLaunch(argv, tmp_path, {}, tmp_path / "agent.log", lambda event: None)

    assert isinstance(seam.acp_agent(launch(["/x/opencode", "acp"])), usage.AgentRecordUsage)
    assert not isinstance(seam.acp_agent(launch(["python", "-m", "agent"])), usage.AgentRecordUsage)


def test_a_turn_reports_the_exports_totals_as_agent_record(tmp_path: Path) -> None:
    agent, inner = wrapped(tmp_path, "ses_1")
    result = one_turn(agent)
    assert result.usage == Usage(200, 20, 220, 0.0009, "USD", source="agent-record")
    assert (result.stop_reason, result.text, result.tool_calls, result.session_id) == ("end_turn", "done", 2, "ses_1")
    assert inner.calls == ["start", "turn do it", "close"]


def test_a_failing_export_keeps_the_protocols_figure_marked_last_call(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    agent, _ = wrapped(tmp_path, "ses_unknown")
    with caplog.at_level(logging.WARNING, logger="iteratr.agent"):
        result = one_turn(agent)
    assert result.usage == Usage(100, 10, 110, None, None, source="last-call")
    assert "opencode export ses_unknown: exit 1" in caplog.text and "no such session" in caplog.text


def test_an_export_that_cannot_start_keeps_the_protocols_figure_marked_last_call(tmp_path: Path) -> None:
    inner = FakeInner("ses_1")
    agent = usage.AgentRecordUsage(inner, ["opencode", "acp"], cwd=tmp_path, env={"PATH": str(tmp_path / "none")})
    assert one_turn(agent).usage == Usage(100, 10, 110, None, None, source="last-call")


def test_an_export_without_totals_keeps_the_protocols_figure_marked_last_call(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "opencode").write_text('#!/bin/sh\necho \'{"info": {"title": "no tokens"}}\'\n')
    (bin_dir / "opencode").chmod(0o755)
    agent = usage.AgentRecordUsage(FakeInner("ses_1"), ["opencode", "acp"], cwd=tmp_path, env={"PATH": str(bin_dir)})
    assert one_turn(agent).usage == Usage(100, 10, 110, None, None, source="last-call")


def test_cancel_and_kill_reach_the_inner_agent(tmp_path: Path) -> None:
    agent, inner = wrapped(tmp_path, "ses_1")
    asyncio.run(agent.cancel())
    agent.kill_now()
    assert inner.calls == ["cancel", "kill_now"]


WIRE = Path(__file__).parent / "data" / "opencode-1.18.33-acp-wire.log"


def test_the_recorded_wire_shows_what_opencode_reports() -> None:
    """The recording behind the README's "Honest usage" (opencode 1.18.33, ACP over stdio, a turn of two model
    calls of 110 tokens each, prices configured): no usage_update, and a response usage of the last call only."""
    received = [json.loads(line[3:]) for line in WIRE.read_text().splitlines() if line.startswith("<< ")]
    kinds = {m["params"]["update"]["sessionUpdate"] for m in received if m.get("method") == "session/update"}
    assert "usage_update" not in kinds and "tool_call" in kinds
    (answer,) = [m["result"] for m in received if "stopReason" in m.get("result", {})]
    assert answer["usage"] == {"inputTokens": 100, "outputTokens": 10, "totalTokens": 110}
    assert "cost" not in json.dumps(answer)
    recorded = usage.from_opencode_export(RECORDED.read_text())  # the same session, exported
    assert recorded is not None and recorded.total_tokens == 220
