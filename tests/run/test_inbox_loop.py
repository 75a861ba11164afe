"""The inbox in the loop, in-process: the real watcher, real writer processes and `iteratr say`, the fake agent.

The loop runs in a background thread (tests/run/harness.py). It is held at a chosen point by a real
hook that waits for a gate file, so a test can save into the inbox "while the build runs" at a known
moment and know which prompt the text must reach; the fake agent keeps the prompts it receives. The
inbox line `build` prints, and `say` into a build in a worktree, are in test_build_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iteratr.agent.events import TurnResult
from iteratr.run.inbox import INBOX_HEADER, MAX_MESSAGE_BYTES
from iteratr.session import ops
from iteratr.session.store import Store
from tests.conftest import git, run_cli
from tests.fakes import FakeAgent, Script
from tests.run.harness import BackgroundLoop
from tests.run.helpers import message_texts, of_type

ONE_TASK_SPEC = "# One task\n\n## Tasks\n- [ ] The only task\n"
# Holds the build at pre_iteration / post_iteration of iteration N while $GATES/hold-<type>-N exists,
# until $GATES/go-<type>-N exists; $GATES/at-<type>-N says it is holding.
GATE = (
    'if [ -e "$GATES/hold-{t}-$ITERATR_ITERATION" ]; then touch "$GATES/at-{t}-$ITERATR_ITERATION"; '
    'while [ ! -e "$GATES/go-{t}-$ITERATR_ITERATION" ]; do sleep 0.02; done; fi'
)
HOOKS = (
    "version: 1\nhooks:\n"
    f"  pre_iteration:\n    - command: {json.dumps(GATE.format(t='pre'))}\n      timeout: 120\n"
    f"  post_iteration:\n    - command: {json.dumps(GATE.format(t='post'))}\n      timeout: 120\n"
)
DEADLINE = 30.0
NOT_RUNNING = "no build is running, so it will be picked up when the next build starts"
TIME_RE = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"


def poll(condition: Callable[[], Any], what: str, build: Build | None = None, timeout: float = DEADLINE) -> Any:
    """Poll until ``condition()`` is truthy; fail (with the build's output) at the deadline or if the build ended."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if build is not None and build.done():
            value = condition()
            if value:
                return value
            pytest.fail(f"the build ended (exit {build.bg.run.code}) before: {what}\n{build.output()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for: {what}\n{build.output() if build else ''}")
        time.sleep(0.02)


def prompts(script: Script) -> dict[int, list[str]]:
    """Iteration number -> the prompts sent for it (a retry sends another)."""
    found: dict[int, list[str]] = {}
    for text in script.prompts:
        match = re.search(r"Iteration: #(\d+)", text)
        assert match, text[:200]
        found.setdefault(int(match[1]), []).append(text)
    return found


def messages_section(prompt: str) -> str:
    """The prompt's user-messages section ("" if it has none)."""
    match = re.search(r"## Messages from the user\n(.*?)(?=\n## )", prompt, re.S)
    return match[1] if match else ""


class Build:
    """The loop in a background thread, on the repository's session SPEC; gates in ``gates``."""

    def __init__(self, repo: Path, script: Script, **settings: Any) -> None:
        self.repo = repo
        self.script = script
        self.gates = repo.parent / "gates"
        self.gates.mkdir(exist_ok=True)
        self.bg = BackgroundLoop(repo, script, **settings)
        self.session_dir = self.bg.session_dir

    def hold(self, hook: str, n: int) -> None:
        (self.gates / f"hold-{hook}-{n}").touch()

    def wait_at(self, hook: str, n: int) -> None:
        poll(lambda: (self.gates / f"at-{hook}-{n}").exists(), f"the build holding at {hook} #{n}", self)

    def go(self, hook: str, n: int) -> None:
        (self.gates / f"go-{hook}-{n}").touch()

    def done(self) -> bool:
        return self.bg.done()

    def output(self) -> str:
        return self.bg.output()

    def wait(self, expect: int, timeout: float = 90) -> str:
        return self.bg.wait(expect, timeout)

    def stop(self) -> None:
        """Let a build a failed test left behind end: open every gate, interrupt it once, and wait."""
        if self.done():
            return
        for hold in self.gates.glob("hold-*"):
            (self.gates / hold.name.replace("hold-", "go-", 1)).touch()
        self.bg.interrupt()
        self.bg.thread.join(30)


@pytest.fixture
def gated(spec_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The three-task spec repository with the gate hooks committed, and $GATES for them."""
    (spec_repo / ".iteratr.hooks.yml").write_text(HOOKS)
    git(spec_repo, "add", ".iteratr.hooks.yml")
    git(spec_repo, "commit", "-q", "-m", "gate hooks")
    monkeypatch.setenv("GATES", str(spec_repo.parent / "gates"))
    return spec_repo


@pytest.fixture
def builds() -> Iterator[Callable[..., Build]]:
    """Builds a test starts are stopped if the test fails half-way."""
    started: list[Build] = []

    def start(*args: Any, **kwargs: Any) -> Build:
        build = Build(*args, **kwargs)
        started.append(build)
        return build

    yield start
    for build in started:
        build.stop()


def one_task(repo: Path) -> None:
    (repo / "specs" / "SPEC.md").write_text(ONE_TASK_SPEC)
    git(repo, "commit", "-q", "-am", "one task")


def inbox_text(build: Build) -> str:
    return (build.session_dir / "inbox.md").read_text()


# --- saving into the inbox during a build ---------------------------------------------------------------


def save(path: Path, style: str, text: str) -> None:
    if style == "truncate":
        with path.open("w") as f:  # keeps the header, as an editor saving in place does
            f.write(INBOX_HEADER + text + "\n")
    elif style == "rename":
        tmp = path.with_name(".inbox.md.swp")
        tmp.write_text(INBOX_HEADER + text + "\n")
        os.replace(tmp, path)
    else:
        with path.open("a") as f:
            f.write(text + "\n")


def test_each_save_style_is_recorded_printed_delivered_once_and_never_committed(gated: Path, builds: Any) -> None:
    styles = {1: "truncate", 2: "rename", 3: "append"}
    build = builds(gated, Script("follow"), iterations=6)  # a regression ends, not loops
    for n in styles:
        build.hold("pre", n)
    for k, (n, style) in enumerate(styles.items(), start=1):
        build.wait_at("pre", n)
        save(build.session_dir / "inbox.md", style, f"note {k} saved by {style}")
        poll(lambda: len(message_texts(build.session_dir)) == k, f"message {k} recorded", build)  # noqa: B023
        assert message_texts(build.session_dir)[-1] == f"note {k} saved by {style}"
        assert inbox_text(build) == INBOX_HEADER, "the inbox goes back to its header"
        build.go("pre", n)
    out = build.wait(0)

    # The run prints each message as a line (the inbox line `build` prints first: test_build_e2e.py).
    for k, style in enumerate(styles.values(), start=1):
        assert f">>> message from the user (MSG-{k}): note {k} saved by {style}" in out

    # Each message goes into the prompt of the iteration that was waiting, in its own section, with its time.
    sent = prompts(build.script)
    assert sorted(sent) == [0, 1, 2, 3] and all(len(p) == 1 for p in sent.values())
    assert messages_section(sent[0][0]) == ""
    for k, (n, style) in enumerate(styles.items(), start=1):
        section = messages_section(sent[n][0])
        assert re.search(rf"^- MSG-{k}, {TIME_RE}:\n  note {k} saved by {style}$", section, re.M), section
        assert section.count("MSG-") == 1, "a message is never delivered twice"
    delivered = [(e["data"]["ids"], e["data"]["iteration"]) for e in of_type(build.session_dir, "user.delivered")]
    assert delivered == [(["MSG-1"], 1), (["MSG-2"], 2), (["MSG-3"], 3)]

    # The messages are in the committed event log; the inbox files never are.
    committed = git(gated, "ls-tree", "-r", "--name-only", "iteratr/SPEC").splitlines()
    assert ".iteratr/SPEC/events.jsonl" in committed
    assert not [p for p in committed if "inbox" in p]
    log = git(gated, "show", "iteratr/SPEC:.iteratr/SPEC/events.jsonl")
    assert log.count('"type": "user.message"') == 3


WRITER = """
import sys
path = sys.argv[1]
for i in range(100):
    with open(path, "a") as f:
        f.write(f"line {i:03d}\\n")
"""


def test_a_hundred_rapid_appends_from_another_process_are_recorded_once_in_order(gated: Path, builds: Any) -> None:
    build = builds(gated, Script("follow"), iterations=2)
    # First a message while the post_iteration hook of #0 runs: it waits for prompt #1.
    build.hold("post", 0)
    build.hold("pre", 1)
    build.wait_at("post", 0)
    save(build.session_dir / "inbox.md", "append", "said while a hook ran")
    poll(lambda: message_texts(build.session_dir), "the message recorded", build)
    build.go("post", 0)
    build.wait_at("pre", 1)
    subprocess.run([sys.executable, "-c", WRITER, str(build.session_dir / "inbox.md")], check=True, timeout=60)
    expected = ["said while a hook ran", *(f"line {i:03d}" for i in range(100))]

    def lines() -> list[str]:
        return [line for text in message_texts(build.session_dir) for line in text.splitlines() if line.strip()]

    poll(lambda: len(lines()) >= len(expected), "all 100 lines recorded", build)
    build.go("pre", 1)
    build.wait(3)
    assert lines() == expected, "every line exactly once, in order"
    ids = [e["data"]["id"] for e in of_type(build.session_dir, "user.message")]
    assert ids == [f"MSG-{i}" for i in range(1, len(ids) + 1)]
    delivered = of_type(build.session_dir, "user.delivered")
    assert len(delivered) == 1 and delivered[0]["data"] == {"ids": ids, "iteration": 1}
    sent = prompts(build.script)
    assert messages_section(sent[0][0]) == ""
    section = messages_section(sent[1][0])
    assert re.findall(r"said while a hook ran|line \d{3}", section) == expected


# --- when messages are delivered ---------------------------------------------------------------------


def test_messages_during_a_hung_turn_and_a_retry_wait_reach_the_following_prompt(gated: Path, builds: Any) -> None:
    said = threading.Event()

    async def hung(agent: FakeAgent, prompt: str) -> TurnResult:
        # Silent until the test has said its message, then silent past the idle timeout.
        await asyncio.to_thread(said.wait, DEADLINE)
        return await agent.wait_for_cancel()

    # -i 1: planning (here a hung one and its retry) does not count; one main iteration ("ok") follows.
    build = builds(gated, Script(hung, "follow", "ok"), iterations=1, idle_timeout=0.2, retry_delay=2.0)
    build.hold("pre", 1)
    poll(lambda: of_type(build.session_dir, "iteration.started"), "the planning turn started", build)
    saying = run_cli("say", "during the hung planning turn", cwd=gated)
    assert "the running build puts it into the next prompt" in saying.stdout, saying
    assert ".iteratr/SPEC/inbox.md" in saying.stdout
    poll(lambda: message_texts(build.session_dir), "the message recorded during the hung turn", build)
    said.set()
    poll(lambda: "retrying in" in build.output(), "the retry wait", build)
    save(build.session_dir / "inbox.md", "append", "during the retry wait")
    poll(lambda: len(message_texts(build.session_dir)) == 2, "both messages recorded", build)
    build.wait_at("pre", 1)
    build.go("pre", 1)
    out = build.wait(3)

    ended = of_type(build.session_dir, "iteration.ended")
    assert [(e["data"]["n"], e["data"]["outcome"]) for e in ended] == [(0, "timeout"), (1, "ok"), (2, "ok")], out
    sent = prompts(build.script)
    assert messages_section(sent[0][0]) == "", "the hung prompt was sent before the messages"
    section = messages_section(sent[1][0])
    assert "during the hung planning turn" in section and "during the retry wait" in section
    delivered = of_type(build.session_dir, "user.delivered")
    assert [e["data"] for e in delivered] == [{"ids": ["MSG-1", "MSG-2"], "iteration": 1}]


# --- a complete session -----------------------------------------------------------------------------------


def complete_again(repo: Path) -> None:
    """Mark the session complete as the agent does (all its tasks are done), leaving a message pending."""
    ops.session_complete(Store(repo / ".iteratr", "SPEC"))


def test_a_message_to_a_completed_session_gets_one_more_iteration_now_or_at_the_next_build(
    gated: Path, builds: Any
) -> None:
    one_task(gated)
    log = Script("follow")  # one script for every build, so its prompts are all of theirs
    first = builds(gated, log, iterations=4)
    first.wait(0)
    sdir = first.session_dir
    assert of_type(sdir, "session.completed") and len(prompts(log)) == 2

    # No build running: `say` says the next build picks it up; that build runs instead of exiting at once.
    said = run_cli("say", "one more thing", cwd=gated)
    assert f"saved to .iteratr/SPEC/inbox.md; {NOT_RUNNING}" in said.stdout, said
    second = builds(gated, log, iterations=4)
    second.hold("post", 2)
    second.hold("post", 3)
    second.wait_at("post", 2)
    assert ">>> message from the user (MSG-1): one more thing" in second.output()
    assert "one more thing" in messages_section(prompts(log)[2][0])
    assert of_type(sdir, "user.delivered")[-1]["data"] == {"ids": ["MSG-1"], "iteration": 2}

    # A message that came during the last iteration, before the agent marked the session complete: the
    # running build goes on with one more iteration for it.
    save(sdir / "inbox.md", "rename", "also add a changelog")
    poll(lambda: len(message_texts(sdir)) == 2, "the message recorded", second)
    complete_again(gated)
    second.go("post", 2)
    second.wait_at("post", 3)
    assert "also add a changelog" in messages_section(prompts(log)[3][0])
    assert of_type(sdir, "user.delivered")[-1]["data"] == {"ids": ["MSG-2"], "iteration": 3}

    # The same, but the build is stopped before it can act: the next build runs for the pending message.
    save(sdir / "inbox.md", "append", "and bump the version")
    poll(lambda: len(message_texts(sdir)) == 3, "the message recorded", second)
    complete_again(gated)
    second.bg.interrupt(signal.SIGTERM)
    poll(lambda: "interrupting" in second.output(), "the build interrupted", second)
    second.go("post", 3)
    out = second.wait(130)
    assert "=== #4" not in out
    third = builds(gated, log, iterations=4)
    out = third.wait(0)
    assert "=== #4" in out and "already complete" not in out, out
    assert "and bump the version" in messages_section(prompts(log)[4][0])
    assert of_type(sdir, "user.delivered")[-1]["data"] == {"ids": ["MSG-3"], "iteration": 4}

    # Nothing pending: a build on the complete session exits at once.
    idle = builds(gated, log, iterations=4).wait(0)
    assert "already complete" in idle and "=== #" not in idle
    assert sorted(prompts(log)) == [0, 1, 2, 3, 4] and all(len(p) == 1 for p in prompts(log).values())


# --- bad input ----------------------------------------------------------------------------------------


def test_an_oversized_message_is_moved_aside_and_non_utf8_is_replaced_with_warnings(gated: Path, builds: Any) -> None:
    build = builds(gated, Script("follow"), iterations=1)
    build.hold("pre", 0)
    build.wait_at("pre", 0)
    big = "x" * (MAX_MESSAGE_BYTES + 1000)
    save(build.session_dir / "inbox.md", "rename", big)
    rejected_dir = build.session_dir / "rejected"
    poll(lambda: of_type(build.session_dir, "inbox.consumed"), "the big message consumed", build)
    with (build.session_dir / "inbox.md").open("ab") as f:
        f.write(b"caf\xe9 au lait\n")
    poll(lambda: message_texts(build.session_dir), "the non-UTF-8 message recorded", build)
    build.go("pre", 0)
    out = build.wait(3)

    rejected = list(rejected_dir.iterdir())
    assert len(rejected) == 1 and big in rejected[0].read_text(), "moved aside whole, not truncated"
    assert f"bytes moved aside to {rejected[0]}" in out
    assert "not UTF-8" in out
    assert message_texts(build.session_dir) == ["caf\ufffd au lait"]
    assert "caf\ufffd au lait" in messages_section(prompts(build.script)[0][0])
    committed = git(gated, "ls-tree", "-r", "--name-only", "iteratr/SPEC")
    assert "rejected" not in committed and "inbox" not in committed


def test_a_take_that_fails_is_a_warning_and_the_watcher_keeps_going(gated: Path, builds: Any) -> None:
    build = builds(gated, Script("follow"), iterations=1)
    build.hold("pre", 0)
    build.wait_at("pre", 0)
    sdir = build.session_dir
    (sdir / "rejected").write_text("a file where the rejected/ directory goes: moving aside fails\n")
    big = "y" * (MAX_MESSAGE_BYTES + 1)
    save(sdir / "inbox.md", "rename", big)
    poll(lambda: "inbox: could not take new text, will try again" in build.output(), "the warning", build)
    (sdir / "rejected").unlink()
    save(sdir / "inbox.md", "append", "after the failure")
    poll(lambda: message_texts(sdir), "the next message recorded while the build still waits", build)
    build.go("pre", 0)
    build.wait(3)
    assert message_texts(sdir) == ["after the failure"]
    assert [big in p.read_text() for p in (sdir / "rejected").iterdir()] == [True], "the big one, once"
