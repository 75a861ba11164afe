"""AgentRunner against the scripted ACP agent (``python -m iteratr.agent.scripted``) in real subprocesses."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from iteratr.agent.runner import (
    AgentDied,
    AgentInfo,
    AgentRunner,
    AgentStartError,
    AgentText,
    AgentThought,
    ModelError,
    PermissionEvent,
    PlanEvent,
    ToolCallEvent,
    TurnTimeout,
    UsageEvent,
    probe,
)
from iteratr.errors import EXIT_USAGE, AgentError

REPO_ROOT = Path(__file__).resolve().parent.parent
AGENT = [sys.executable, "-m", "iteratr.agent.scripted"]
T = TypeVar("T")


def agent_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    env.update(extra)
    return env


class Harness:
    """A runner on the scripted agent, the events it emitted, and its stderr log."""

    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None, **kwargs: Any) -> None:
        self.events: list[object] = []
        self.log = tmp_path / "logs" / "agent.log"
        kwargs.setdefault("cancel_grace", 2.0)
        kwargs.setdefault("close_timeout", 1.0)
        self.runner = AgentRunner(
            [*AGENT, *args],
            cwd=tmp_path,
            env=env or agent_env(),
            stderr_log=self.log,
            on_event=self.events.append,
            **kwargs,
        )

    async def turn(self, prompt: str = "hello", *, total: float = 20.0, idle: float = 20.0) -> Any:
        return await self.runner.run_turn(prompt, iteration_timeout=total, idle_timeout=idle)

    def of(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]


def run(make: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(make())  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def process_gone(pid: int) -> bool:
    """True when ``pid`` is not running: absent, or a zombie nobody of ours has to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_ok_turn_reports_agent_text_and_info(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "ok")

    async def go() -> None:
        info = await h.runner.start()
        assert info == AgentInfo("iteratr-scripted-agent", "0.1.0")
        first = await h.turn()
        second = await h.turn()
        assert (first.stop_reason, first.text, first.tool_calls, first.usage) == ("end_turn", "ok", 0, None)
        assert first.session_id != second.session_id, "every turn must get a fresh ACP session"
        assert h.of(AgentText) == [AgentText("ok"), AgentText("ok")]
        await h.runner.close()
        assert not h.runner.alive

    run(go)


def test_empty_turn_has_no_text_and_no_tool_calls(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "empty")

    async def go() -> None:
        result = await h.turn()  # run_turn starts the agent itself
        await h.runner.close()
        assert (result.stop_reason, result.text, result.tool_calls) == ("end_turn", "", 0)
        assert h.events == []

    run(go)


def test_crash_raises_agent_died_and_the_next_turn_restarts(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--script", "crash,ok", "--state-file", str(tmp_path / "count"))

    async def go() -> None:
        await h.runner.start()
        first_pid = h.runner.pid
        with pytest.raises(AgentDied) as died:
            await h.turn()
        assert died.value.returncode == 3
        assert "exited with status 3" in str(died.value)
        assert "crashing on purpose" not in str(died.value), "raw stderr stays in agent.log, out of events"
        assert "agent.log" in str(died.value)
        assert died.value.partial.text == "about to crash\n"
        assert not h.runner.alive
        result = await h.turn()
        assert result.text == "ok"
        assert h.runner.pid != first_pid
        await h.runner.close()

    run(go)
    log = h.log.read_text()
    assert "crashing on purpose" in log
    assert log.count("--- iteratr") == 2, "each start is marked in the log"


def test_idle_timeout_cancels_politely_and_keeps_the_agent(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--script", "hang,ok", "--state-file", str(tmp_path / "count"))

    async def go() -> None:
        await h.runner.start()
        pid = h.runner.pid
        with pytest.raises(TurnTimeout) as timeout:
            await h.turn(idle=0.3)
        assert timeout.value.kind == "idle"
        assert "idle_timeout" in str(timeout.value)
        assert h.runner.alive and h.runner.pid == pid, "an agent that honours cancel is not killed"
        assert (await h.turn()).text == "ok"
        await h.runner.close()

    run(go)


def test_total_timeout_fires_even_when_the_agent_is_chatty_enough(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "hang")

    async def go() -> None:
        with pytest.raises(TurnTimeout) as timeout:
            await h.turn(total=0.3, idle=30)
        await h.runner.close()
        assert timeout.value.kind == "total"
        assert isinstance(timeout.value, AgentError) and timeout.value.exit_code == 1

    run(go)


def test_agent_ignoring_cancel_is_killed_with_its_process_group(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--script", "hang-hard,ok", "--state-file", str(tmp_path / "count"), cancel_grace=0.2)

    async def go() -> None:
        await h.runner.start()
        pid = h.runner.pid
        assert pid is not None
        with pytest.raises(TurnTimeout):
            await h.turn(idle=0.5)
        assert not h.runner.alive
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # gone and reaped: no zombie left behind
        child = int(h.log.read_text().split("child pid ")[1].split()[0])
        await until(lambda: process_gone(child))
        # The next turn brings up a fresh agent.
        assert (await h.turn()).text == "ok"
        assert h.runner.pid != pid
        await h.runner.close()

    run(go)


@pytest.mark.parametrize(("mode", "forced"), [("hang", False), ("hang-hard", True)])
def test_user_cancel_ends_the_turn_as_cancelled(tmp_path: Path, mode: str, forced: bool) -> None:
    prompts = tmp_path / "prompts.log"
    h = Harness(tmp_path, "--mode", mode, env=agent_env(FAKE_AGENT_PROMPT_LOG=str(prompts)), cancel_grace=0.3)

    async def go() -> None:
        turn = asyncio.ensure_future(h.turn())
        await until(lambda: prompts.exists() and "=====" in prompts.read_text())
        await h.runner.cancel()
        result = await asyncio.wait_for(turn, 5)
        assert result.stop_reason == "cancelled"
        assert h.runner.alive is not forced
        await h.runner.close()

    run(go)


def test_a_one_megabyte_line_arrives_intact(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "bigline")

    async def go() -> None:
        result = await h.turn()
        await h.runner.close()
        assert len(result.text) == 1024 * 1024
        assert result.text == "<" + "x" * (1024 * 1024 - 2) + ">"

    run(go)


def test_stop_reasons_other_than_end_turn_are_reported(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--script", "max_tokens,refusal")

    async def go() -> None:
        first, second = await h.turn(), await h.turn()
        await h.runner.close()
        assert (first.stop_reason, first.text) == ("max_tokens", "I ran out of tokens")
        assert (second.stop_reason, second.text) == ("refusal", "I will not do that")

    run(go)


def test_permission_requests_are_approved_once_by_default(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "permission")

    async def go() -> None:
        result = await h.turn()
        await h.runner.close()
        assert h.of(PermissionEvent) == [PermissionEvent("touch permission.txt", "allow_once", "default policy")]
        assert result.text == "permission: allow-once", "the agent received the allow_once option id"
        assert result.tool_calls == 1
        assert h.of(ToolCallEvent)[-1].final

    run(go)


def test_usage_tokens_and_cost(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "usage")

    async def go() -> None:
        result = await h.turn()
        await h.runner.close()
        usage = result.usage
        assert usage is not None
        assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (1000, 200, 1200)
        assert (usage.cost, usage.currency) == (0.0123, "USD")
        assert [e.usage.cost for e in h.of(UsageEvent)] == [0.0123]

    run(go)


def test_thoughts_plans_and_tool_calls_become_events(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "chatty")

    async def go() -> None:
        result = await h.turn()
        await h.runner.close()
        assert h.of(AgentThought) == [AgentThought("thinking it over")]
        assert h.of(PlanEvent) == [PlanEvent(["first", "second"])]
        tools = h.of(ToolCallEvent)
        assert [(t.title, t.status, t.final) for t in tools] == [
            ("ls -la", "in_progress", False),
            ("ls -la", "completed", True),
            ("false", "in_progress", False),
            ("false", "failed", True),
        ]
        assert all(t.kind == "execute" for t in tools)
        assert result.tool_calls == 2

    run(go)


def test_model_is_set_through_the_config_option(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "ok", "--models", "mock/a,mock/b", "--default-model", "mock/a", model="mock/b")

    async def go() -> None:
        result = await h.turn()
        await h.runner.close()
        assert result.model == "mock/b"
        assert h.runner.current_model == "mock/b"

    run(go)


def test_without_a_model_the_agent_default_is_reported(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "ok", "--models", "mock/a,mock/b", "--default-model", "mock/a")

    async def go() -> None:
        result = await h.turn()
        await h.runner.close()
        assert result.model == h.runner.current_model == "mock/a"

    run(go)


def test_refused_model_is_a_usage_error_listing_the_offered_models(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "ok", "--models", "mock/a,mock/b", model="nope/zzz")

    async def go() -> None:
        with pytest.raises(ModelError) as refused:
            await h.turn()
        await h.runner.close()
        assert refused.value.exit_code == EXIT_USAGE
        assert refused.value.models == ["mock/a", "mock/b"]
        message = str(refused.value)
        assert "'nope/zzz'" in message and "models offered: mock/a, mock/b" in message
        assert "\n" not in message

    run(go)


def test_model_on_an_agent_without_model_choice_is_refused(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "ok", model="mock/a")

    async def go() -> None:
        with pytest.raises(ModelError, match="offers no model choice"):
            await h.turn()
        await h.runner.close()

    run(go)


def test_the_whole_environment_reaches_the_agent(tmp_path: Path) -> None:
    # Not in the SDK's default allow-list (HOME, PATH, ...), like a provider API key.
    h = Harness(tmp_path, "--mode", "env", env=agent_env(SOME_PROVIDER_API_KEY="sk-test-123"))

    async def go() -> None:
        result = await h.turn("SOME_PROVIDER_API_KEY HOME")
        await h.runner.close()
        assert result.text == f"SOME_PROVIDER_API_KEY=sk-test-123\nHOME={os.environ['HOME']}"

    run(go)


def test_the_prompt_reaches_the_agent_verbatim(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.log"
    h = Harness(tmp_path, "--mode", "echo-prompt", env=agent_env(FAKE_AGENT_PROMPT_LOG=str(prompts)))
    prompt = "Session: s | Iteration: #1\n{{ not a template }}\nünïcödé ✓\n"

    async def go() -> None:
        assert (await h.turn(prompt)).text == "ok"
        await h.runner.close()

    run(go)
    assert prompts.read_text(encoding="utf-8") == prompt + "\n=====\n"


def test_missing_binary_is_a_start_error(tmp_path: Path) -> None:
    runner = AgentRunner(
        ["no-such-agent-binary-xyz", "acp"],
        cwd=tmp_path,
        env=agent_env(),
        stderr_log=tmp_path / "agent.log",
        on_event=lambda _e: None,
    )
    with pytest.raises(AgentStartError, match="agent command not found: no-such-agent-binary-xyz") as err:
        run(runner.start)
    assert err.value.exit_code == 1


def test_agent_that_exits_before_initialize_is_a_start_error_with_its_stderr(tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('no credentials found\\n'); sys.exit(5)"
    runner = AgentRunner(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=agent_env(),
        stderr_log=tmp_path / "agent.log",
        on_event=lambda _e: None,
    )
    with pytest.raises(AgentStartError) as err:
        run(runner.start)
    assert "exited with status 5" in str(err.value)
    assert "no credentials found" in str(err.value)


def test_agent_that_never_answers_initialize_times_out_and_is_killed(tmp_path: Path) -> None:
    # Ignores stdin EOF and SIGTERM, so stopping it needs the SIGKILL escalation.
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )
    pidfile = tmp_path / "pid"
    runner = AgentRunner(
        [sys.executable, "-c", f"import os; open({str(pidfile)!r}, 'w').write(str(os.getpid())); {script}"],
        cwd=tmp_path,
        env=agent_env(),
        stderr_log=tmp_path / "agent.log",
        on_event=lambda _e: None,
        start_timeout=0.5,
        close_timeout=0.2,
    )
    with pytest.raises(AgentStartError, match=r"did not answer within 0\.5 s"):
        run(runner.start)
    assert process_gone(int(pidfile.read_text()))
    assert not runner.alive


def test_probe_reports_the_model_choice(tmp_path: Path) -> None:
    async def go() -> tuple[Any, Any]:
        with_models = await probe(
            [*AGENT, "--models", "x/one,x/two", "--default-model", "x/two"],
            cwd=tmp_path,
            env=agent_env(),
            stderr_log=tmp_path / "agent.log",
            timeout=20,
        )
        without = await probe(AGENT, cwd=tmp_path, env=agent_env(), stderr_log=tmp_path / "agent.log", timeout=20)
        return with_models, without

    with_models, without = run(go)
    assert with_models.info.name == "iteratr-scripted-agent"
    assert (with_models.current_model, with_models.models) == ("x/two", ["x/one", "x/two"])
    assert (without.current_model, without.models) == (None, [])


def test_kill_now_then_the_next_turn_restarts_the_agent(tmp_path: Path) -> None:
    h = Harness(tmp_path, "--mode", "ok")

    async def go() -> None:
        await h.runner.start()
        pid = h.runner.pid
        assert pid is not None
        h.runner.kill_now()
        assert not h.runner.alive
        await until(lambda: process_gone(pid))
        assert (await h.turn()).text == "ok"
        assert h.runner.pid != pid
        await h.runner.close()

    run(go)


def test_a_command_that_is_not_an_acp_agent_is_named_as_such(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    runner = AgentRunner(
        [sys.executable, "-c", "print('Usage: some-tool [options]'); print('a TUI would go here')"],
        cwd=tmp_path,
        env=agent_env(),
        stderr_log=log,
        on_event=lambda _e: None,
    )
    with pytest.raises(AgentStartError, match=r"2 line\(s\) on stdout that are not ACP JSON-RPC"):
        run(runner.start)
    # The SDK's complaints land in the agent log, one short line each, not as tracebacks on the terminal.
    assert log.read_text().count("not JSON") == 2
    assert "Traceback" not in log.read_text()
