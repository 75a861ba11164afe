"""``iteratr say`` to a session whose only copy is remote, and ``iteratr status`` of such sessions."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iteratr.agent.events import TurnResult
from iteratr.errors import EXIT_INCOMPLETE, EXIT_OK
from tests.conftest import fake_agent, git, run_cli
from tests.fakes import FakeAgent, Script
from tests.remote.conftest import remote_iterations, remote_log
from tests.remote.harness import remote_loop
from tests.run.helpers import build


def _delivered(events: list[dict[str, Any]]) -> list[str]:
    return [i for e in events for i in e["data"]["ids"]]


def test_say_to_a_remote_only_session_is_committed_there_and_delivered_exactly_once(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")
    remote_loop(a, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)
    c = clone("c")  # knows the session only as origin/iteratr/SPEC
    listed = run_cli("status", cwd=c).stdout
    assert "SPEC | remote origin/iteratr/SPEC | 1/3 tasks done | 2 iteration(s) | lease: none" in listed
    assert "remote branch origin/iteratr/SPEC (no local branch)" in run_cli("status", "-n", "SPEC", cwd=c).stdout

    said = run_cli("say", "-n", "SPEC", "Add a task: Write the changelog", cwd=c).stdout
    assert "committed onto origin/iteratr/SPEC" in said
    assert not (c / ".iteratr").exists()  # nothing written here: the message is on the remote's branch
    assert remote_log(origin)[-1] == "iteratr(SPEC): a message for the agent"

    b = clone("b")
    run = remote_loop(b, Script("follow"), expect=EXIT_OK)
    messages = run.events("user.message")
    assert [m["data"]["text"] for m in messages] == ["Add a task: Write the changelog"]
    assert _delivered(run.events("user.delivered")) == [messages[0]["data"]["id"]]
    assert "Write the changelog" in {t.content for t in run.state.tasks.values()}
    assert run.script.prompts[1].count("Write the changelog") == 1

    again = remote_loop(a, Script("follow"), expect=EXIT_OK)  # the first machine, brought up to date: not again
    assert len(again.events("user.message")) == 1
    assert len(_delivered(again.events("user.delivered"))) == 1
    assert remote_iterations(origin) == sorted(set(remote_iterations(origin)))


def test_say_while_another_machine_holds_the_lease_is_delivered_at_its_next_fetch(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")
    seen: dict[str, str] = {}

    async def say_from_another_machine(agent: FakeAgent, prompt: str) -> TurnResult:
        c = clone("c")  # during a's iteration #1, while a holds the lease
        seen["say"] = run_cli("say", "-n", "SPEC", "Add a task: Reply to the mail", cwd=c).stdout
        seen["status"] = run_cli("status", cwd=c).stdout
        seen["json"] = run_cli("status", "--json", cwd=c).stdout
        return await agent._follow(prompt)

    run = remote_loop(a, Script("follow", say_from_another_machine, "follow"), expect=EXIT_OK)
    assert "committed onto origin/iteratr/SPEC" in seen["say"]
    assert "lease: held by pid" in seen["status"]  # the say's fetch brought the lease: status shows its holder
    holder = json.loads(seen["json"])["remote_sessions"][0]["lease"]
    assert holder["pid"] > 0 and holder["host"]
    # #1 was running when the message came: it is taken at #1's push (the fetch), and goes into #2's prompt.
    assert "Reply to the mail" not in run.script.prompts[1]
    assert "Reply to the mail" in run.script.prompts[2]
    messages = run.events("user.message")
    assert len(messages) == 1 and messages[0]["iteration"] == 1
    assert _delivered(run.events("user.delivered")) == [messages[0]["data"]["id"]]
    assert "(MSG-1, through the remote): Add a task: Reply to the mail" in run.output
    assert any(s.startswith("iteratr(SPEC): messages from origin/iteratr/SPEC") for s in remote_log(origin))
    assert git(a, "rev-parse", "iteratr/SPEC") == git(origin, "rev-parse", "iteratr/SPEC")
    assert "Reply to the mail" in {t.content for t in run.state.tasks.values()}
    # a's fetch of the message also copied a's own lease here; released, a's status must not show it held.
    assert git(a, "for-each-ref", "refs/iteratr/remote-leases/") == ""
    assert "lease: held" not in run_cli("status", cwd=a).stdout


def test_a_message_through_the_remote_reopens_a_complete_session_on_the_next_machine(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    remote_loop(clone("a"), Script("follow"), expect=EXIT_OK)  # complete: 3 tasks done
    run_cli("say", "-n", "SPEC", "Add a task: One more thing", cwd=clone("c"))
    out = build(clone("b"), "--push", "--agent", fake_agent("follow"), expect=EXIT_OK)
    assert "nothing to do" not in out
    assert "(MSG-1, through the remote): Add a task: One more thing" in out
    assert remote_iterations(origin) == [0, 1, 2, 3, 4]  # one more iteration, for the new task
    again = build(clone("e"), "--push", "--agent", fake_agent("follow"), expect=EXIT_OK)
    assert "already complete; nothing to do" in again  # taken once: it does not reopen it again


def test_status_of_a_remote_only_session_says_a_build_command_that_resumes_it(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")  # the project's spec is specs/wt.md: a build without -s would look for specs/SPEC.md
    git(a, "mv", "specs/SPEC.md", "specs/wt.md")
    git(a, "commit", "-q", "-m", "the spec is wt")
    git(a, "push", "-q", "origin", "main")
    build(a, "-s", "specs/wt.md", "--push", "-i", "1", "--agent", fake_agent("follow"), expect=EXIT_INCOMPLETE)
    c = clone("c")
    shown = run_cli("status", "-n", "wt", cwd=c).stdout
    (hint,) = [line for line in shown.splitlines() if line.startswith("run it here: ")]
    words = shlex.split(hint.removeprefix("run it here: "))
    assert words[:2] == ["iteratr", "build"]
    out = build(c, *words[2:], "-i", "1", "--agent", fake_agent("follow"), expect=EXIT_INCOMPLETE)
    assert "resuming from origin/iteratr/wt" in out and "=== #0" not in out
    assert remote_iterations(origin, "wt") == [0, 1, 2]
    assert json.loads(run_cli("status", "-n", "wt", "--json", cwd=clone("d")).stdout)["spec"] == "specs/wt.md"
