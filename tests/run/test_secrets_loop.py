"""Issue 12, secrets: values of secret-looking environment variables are masked in everything iteratr writes.

In-process (the fake agent of tests/fakes.py): a hook prints the secret with ``pipe_output``, the agent says it
in its text and in a failure, an ``on_error`` hook prints it again; the secret then reaches no commit, no event,
no prompt, no output, and ``***`` stands where it was. The user's own message is theirs: it reaches the agent as
written. ``agent.log`` (real processes): the agent's stderr and text are masked even when a secret arrives split
across two pieces.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from iteratr.agent.agent_log import AgentLog, StreamMasker
from iteratr.agent.events import TurnFailed, TurnResult
from iteratr.agent.process import AgentProcess
from iteratr.errors import EXIT_INCOMPLETE
from iteratr.run import inbox
from tests.conftest import git
from tests.fakes import FakeAgent, Script
from tests.run.harness import run_loop
from tests.run.helpers import write_hooks

SECRET = "sk-test-0123456789"


async def _fail_saying_the_secret(agent: FakeAgent, prompt: str) -> TurnResult:
    agent.say(f"calling the API with {SECRET}\n")
    raise TurnFailed(f"agent answered with an error: 401 for key {SECRET}", partial=agent.result())


async def _follow_saying_the_secret(agent: FakeAgent, prompt: str) -> TurnResult:
    agent.say(f"the key is {SECRET}\n")
    follow = getattr(agent, "_follow")  # noqa: B009 - the fake's own mode, reused
    result: TurnResult = await follow(prompt)
    return result


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_KEY", SECRET)


def test_a_secret_from_hooks_and_the_agent_reaches_no_commit_event_prompt_or_output(
    secret_env: None, spec_repo: Path
) -> None:
    write_hooks(
        spec_repo,
        {
            "pre_iteration": [{"command": 'echo "pre sees $MY_API_KEY"', "pipe_output": True}],
            "on_error": [{"command": 'echo "on_error sees $MY_API_KEY"; exit 1', "pipe_output": True}],
        },
    )
    script = Script("follow", _fail_saying_the_secret, _follow_saying_the_secret)
    run = run_loop(spec_repo, script, iterations=2, expect=EXIT_INCOMPLETE)

    history = git(spec_repo, "log", "-p", "--all")
    log = run.store.events_path.read_text()
    agent_log = run.session_dir / "agent.log"
    written = {
        "a commit": history,
        "an event": log,
        "a prompt": "\n".join(script.prompts),
        "the output": run.output,
        "agent.log": agent_log.read_text() if agent_log.exists() else "",
    }
    for where, text in written.items():
        assert SECRET not in text, f"the secret is in {where}"
    assert "pre sees ***" in script.prompts[1]  # the hook's piped output, masked in the prompt
    retry = script.prompts[2]
    assert "401 for key ***" in retry and "on_error sees ***" in retry  # the failure and on_error's output
    assert "401 for key ***" in log and "401 for key ***" in history  # iteration.ended, committed
    assert "the key is ***" in run.output and "calling the API with ***" in run.output
    assert run.ended()[1]["outcome"] == "failed" and run.ended()[2]["outcome"] == "ok"
    assert any(e["data"]["hook"] == "on_error" for e in run.events("hook.ran"))


def test_the_users_own_message_reaches_the_agent_as_written(secret_env: None, spec_repo: Path) -> None:
    """The user's words are theirs: a message naming a credential is delivered (and recorded) unmasked."""
    script = Script("follow")
    run_loop(spec_repo, script, iterations=1, expect=EXIT_INCOMPLETE)
    session_dir = spec_repo / ".iteratr" / "SPEC"
    inbox.append(session_dir, f"use the staging key {SECRET}")
    run = run_loop(spec_repo, script, iterations=1, expect=EXIT_INCOMPLETE)
    assert f"use the staging key {SECRET}" in script.prompts[-1]
    assert [e["data"]["text"] for e in run.events("user.message")] == [f"use the staging key {SECRET}"]


# -- agent.log --------------------------------------------------------------------------------------------


def test_a_stream_masks_a_secret_split_across_pieces_and_holds_back_only_what_could_begin_one() -> None:
    masker = StreamMasker([SECRET])
    out = b"".join(masker.feed(piece.encode()) for piece in ("key=sk-te", "st-0123", "456789 and s")) + masker.flush()
    assert out == b"key=*** and s"
    assert masker.feed(b"no secret here\n") == b"no secret here\n"
    assert StreamMasker([]).feed(b"sk-te") == b"sk-te"  # nothing to mask: nothing held


def test_agent_log_masks_whole_writes_and_streams(tmp_path: Path) -> None:
    log = AgentLog(tmp_path / "agent.log", environ={"MY_API_KEY": SECRET, "HOME": "/home/sk-test-0123456789"})
    log.write(f"whole {SECRET}\n".encode())
    log.write(b"text sk-test-01", stream="text")
    log.write(b"23456789 end", stream="text")
    log.line("iteratr's own line")  # flushes what the stream held
    text = (tmp_path / "agent.log").read_text()
    assert SECRET not in text
    assert text == "whole ***\ntext *** enditeratr: iteratr's own line\n"


def test_the_agents_stderr_is_masked_in_agent_log_even_split_across_reads(tmp_path: Path) -> None:
    code = (
        "import os, sys, time\n"
        "s = os.environ['MY_API_KEY']\n"
        "sys.stderr.write('token: ' + s[:7]); sys.stderr.flush(); time.sleep(0.2)\n"
        "sys.stderr.write(s[7:] + ' rejected\\n'); sys.stderr.flush()\n"
    )
    path = tmp_path / "agent.log"

    async def go() -> None:
        process = AgentProcess(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            env={"MY_API_KEY": SECRET, "PATH": "/usr/bin:/bin"},
            stderr_log=path,
            line_limit=1 << 20,
            close_timeout=5.0,
        )
        process.log = AgentLog(path, environ={"MY_API_KEY": SECRET})  # the child's environment is iteratr's
        await process.start()
        await process.wait_exited(10.0)
        await process.stop()

    asyncio.run(go())
    text = path.read_text()
    assert SECRET not in text and "token: *** rejected\n" in text, text
