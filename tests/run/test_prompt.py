"""Prompts: the built-in templates, the variables, checks on custom templates, sorted sections, gen-template.

Unit tests on ``iteratr.prompt`` with states built by the real reducer, plus CLI checks: a broken
template stops ``iteratr build`` before anything starts, and spec text reaches the agent literally.
"""

from __future__ import annotations

import random
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from iteratr.errors import ConfigError, UsageError
from iteratr.run import prompt
from iteratr.session.reducer import replay
from iteratr.session.state import State
from tests.conftest import FAST_ENV, fake_agent, git, run_cli

BINARY = "/usr/bin/python3 /opt/iteratr/iteratr.py"


def event(type_: str, data: dict[str, Any], iteration: int = 0, ts: str = "2026-11-24T04:40:00.000000Z") -> Any:
    return {"v": 1, "ts": ts, "type": type_, "iteration": iteration, "data": data}


def render(kind: str = "default", state: State | None = None, **overrides: Any) -> str:
    args: dict[str, Any] = {
        "session": "user-auth",
        "iteration": 7,
        "spec": "# The spec\n- [ ] a task\n",
        "state": state or State(),
        "binary": BINARY,
    }
    args.update(overrides)
    return prompt.load(None, kind).render(prompt.context(**args))


# -- the built-in templates ------------------------------------------------------------------------------


def test_default_template_first_line_and_tool_command_lines() -> None:
    text = render()
    assert text.splitlines()[0] == "Session: user-auth | Iteration: #7"
    for command in (
        f"`{BINARY} tool task-next`",
        f"`{BINARY} tool task-status --id TAS-N --status in_progress`",
        f"`{BINARY} tool task-status --id TAS-N --status completed`",
        f"`{BINARY} tool task-add --content",
        f"`{BINARY} tool note-add --type",
        f"`{BINARY} tool iteration-summary --summary",
        f"`{BINARY} tool session-complete`",
        f"`{BINARY} tool task-list`",
    ):
        assert command in text, command
    assert "in_progress`, continue it" in text  # continue an in-progress task first
    assert "Do one task only" in text
    assert "Run the tests" in text
    assert "# The spec\n- [ ] a task\n" in text


def test_planning_template_asks_for_tasks_not_implementation() -> None:
    text = render("planning", iteration=0)
    assert text.splitlines()[0] == "Session: user-auth | Iteration: #0"
    assert "PLANNING ITERATION" in text
    assert "Do not implement anything" in text
    assert f"`{BINARY} tool task-batch-add --tasks" in text
    assert "# The spec\n- [ ] a task\n" in text
    assert "TAS-1" in text  # the number the first planned task will get


def test_optional_sections_appear_only_when_set() -> None:
    bare = render()
    assert "## Extra instructions" not in bare
    assert "## The previous attempt failed" not in bare
    assert "## Messages from the user" not in bare
    full = render(extra="Use tabs.", failure="Iteration #6 failed: boom", hooks="hook said hi")
    assert "## Extra instructions\nUse tabs.\n" in full
    assert "## The previous attempt failed\nIteration #6 failed: boom\n" in full
    assert "hook said hi" in full


def test_spec_text_is_data_never_template_source() -> None:
    spec = "Render {{ session }} and {% if x %}literally{% endif %} and {# not a comment #}\n"
    text = render(spec=spec, extra="{{ iteration }}")
    assert spec in text
    assert "{{ iteration }}" in text


def test_port_renders_empty(tmp_path: Path) -> None:
    path = tmp_path / "t.j2"
    path.write_text("[{{ port }}] {{session}}")
    assert (
        prompt.load(path, "default").render(
            prompt.context(session="S", iteration=1, spec="x", state=State(), binary="b")
        )
        == "[] S"
    )


# -- custom templates: checked when loaded ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Line one\n\nHello {{ sesion }}\n", ":3: unknown template variable 'sesion'"),
        ("Line one\n{% if tasks %}\nno end\n", ":2: template syntax error: Unexpected end of template"),
        ("{{ session }\n", ":1: template syntax error: unexpected '}'"),
        ("one\ntwo {{ tasks | nosuchfilter }}\n", ":2: template syntax error: No filter named 'nosuchfilter'"),
        ("one\n\n{{ session.nme }}\n", ":3: template error: 'str object' has no attribute 'nme'"),
        ("one\n{% if messages %}\n{{ messages.x }}\n{% endif %}", ":3: template error: 'str object' has no attribute"),
        ("{{ iteration + 'x' }}", ":1: template error: unsupported operand"),
        ("a\n{% include 'other.j2' %}", ":2: template error: no loader"),
    ],
)
def test_bad_template_is_a_config_error_with_path_line_and_name(tmp_path: Path, source: str, expected: str) -> None:
    path = tmp_path / "my.template"
    path.write_text(source)
    with pytest.raises(ConfigError) as info:
        prompt.load(path, "default")
    assert info.value.exit_code == 2
    assert str(info.value).startswith(f"{path}{expected}"), str(info.value)


def test_missing_and_non_utf8_templates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        prompt.load(tmp_path / "nope.j2", "default")
    bad = tmp_path / "bad.j2"
    bad.write_bytes(b"caf\xe9 {{session}}")
    with pytest.raises(ConfigError, match="not UTF-8"):
        prompt.load(bad, "default")


def test_every_documented_variable_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "all.j2"
    path.write_text(" ".join(f"{name}=[{{{{ {name} }}}}]" for name in prompt.VARIABLES))
    state = replay([event("task.added", {"id": "TAS-1", "content": "x", "status": "remaining", "priority": 2})])
    text = prompt.load(path, "default").render(
        prompt.context(session="S", iteration=3, spec="SPEC", state=state, binary="B", extra="E")
    )
    assert "session=[S] iteration=[3] spec=[SPEC]" in text
    assert "extra=[E] binary=[B] next_task_number=[2] port=[]" in text


# -- sections: sorted, honest ----------------------------------------------------------------------------


def test_tasks_and_notes_render_in_numeric_id_order() -> None:
    events = [
        event("task.added", {"id": f"TAS-{n}", "content": f"task {n}", "status": "remaining", "priority": n % 5})
        for n in range(1, 13)
    ] + [
        event("note.added", {"id": f"NOT-{n}", "content": f"note {n}", "type": "tip"}, iteration=n)
        for n in (1, 2, 10, 11)
    ]
    random.Random(3).shuffle(events)
    state = replay(events)
    tasks = prompt.render_tasks(state).splitlines()
    assert [line.split()[1] for line in tasks[:-1]] == [f"TAS-{n}" for n in range(1, 13)]
    assert tasks[-1] == "(12 tasks: 12 remaining)"
    notes = prompt.render_notes(state).splitlines()
    assert notes == [f"- NOT-{n} [tip, #{n}] note {n}" for n in (1, 2, 10, 11)]
    # The same state always gives the same prompt.
    random.Random(4).shuffle(events)
    assert render(state=replay(events)) == render(state=state)


def test_task_lines_show_priority_status_and_dependencies() -> None:
    state = replay(
        [
            event("task.added", {"id": "TAS-1", "content": "schema", "status": "remaining", "priority": 4}),
            event("task.added", {"id": "TAS-2", "content": "api", "status": "remaining", "priority": 2}),
            event("task.depends", {"id": "TAS-2", "depends_on": "TAS-1"}),
            event("task.status", {"id": "TAS-1", "status": "completed"}),
        ]
    )
    assert prompt.render_tasks(state).splitlines() == [
        "- TAS-1 [P4] completed: schema",
        "- TAS-2 [P2] remaining: api (after TAS-1)",
        "(2 tasks: 1 remaining, 1 completed)",
    ]


def test_history_shows_recent_iterations_with_times_and_failures() -> None:
    def run(n: int, minute: int, outcome: str, duration: float, error: str | None = None) -> list[Any]:
        started = f"2026-11-24T04:{minute:02d}:10.000000Z"
        data: dict[str, Any] = {"n": n, "outcome": outcome, "duration": duration}
        if error:
            data["error"] = error
        return [
            event("iteration.started", {"n": n, "kind": "planning" if n == 0 else "main"}, n, started),
            event("iteration.summary", {"summary": f"did {n}"}, n),
            event("iteration.ended", data, n),
        ]

    events = run(0, 1, "ok", 12.5) + run(1, 3, "failed", 95, "the agent exited with status 3")
    events += [*run(2, 9, "timeout", 3600, "idle for 10m"), event("iteration.started", {"n": 3, "kind": "main"}, 3)]
    text = prompt.render_history(replay(events))
    assert text.splitlines() == [
        "- #0 planning, 2026-11-24 04:01 UTC, 12.5s, ok",
        "  did 0",
        "- #1 main, 2026-11-24 04:03 UTC, 1m35s, failed: the agent exited with status 3",
        "  did 1",
        "- #2 main, 2026-11-24 04:09 UTC, 1h00m, timeout: idle for 10m",
        "  did 2",
    ]  # the running iteration (#3) is not history yet
    assert prompt.render_history(State()) == "(this is the first iteration)"


def test_history_keeps_the_last_few_in_order() -> None:
    events = []
    for n in range(12):
        events += [
            event("iteration.started", {"n": n, "kind": "main"}, n),
            event("iteration.ended", {"n": n, "outcome": "ok", "duration": 1.0}, n),
        ]
    lines = prompt.render_history(replay(events)).splitlines()
    assert [line.split(",")[0] for line in lines] == [f"- #{n} main" for n in range(12 - prompt.HISTORY_SIZE, 12)]


def test_read_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        prompt.read_spec(tmp_path / "nope.md")
    with pytest.raises(UsageError, match="is a directory"):
        prompt.read_spec(tmp_path)
    empty = tmp_path / "empty.md"
    empty.write_text(" \n")
    with pytest.raises(UsageError, match="is empty"):
        prompt.read_spec(empty)


# -- through the CLI --------------------------------------------------------------------------------------


def test_broken_template_stops_build_before_anything_starts(spec_repo: Path) -> None:
    template = spec_repo / "my.template"
    template.write_text("Session {{session}}\nTasks:\n{{ taks }}\n")
    result = run_cli(
        "build",
        "--headless",
        "-t",
        str(template),
        "--agent",
        fake_agent("follow"),
        cwd=spec_repo,
        env=FAST_ENV,
        expect=2,
    )
    assert f"{template}:3: unknown template variable 'taks'" in result.stderr
    assert not (spec_repo / ".iteratr").exists()  # no agent.log, no events, no commit
    assert git(spec_repo, "branch", "--show-current") == "main"
    assert git(spec_repo, "branch", "--list", "iteratr/*") == ""


def test_spec_with_template_syntax_reaches_the_agent_literally(spec_repo: Path, tmp_path: Path) -> None:
    spec = spec_repo / "specs" / "SPEC.md"
    spec.write_text(spec.read_text() + "\nWrite {{ session }} and {% raw %} as they are.\n")
    git(spec_repo, "commit", "-q", "-am", "spec with braces")
    log = tmp_path / "prompts.log"
    run_cli(
        "build",
        "--headless",
        "--agent",
        fake_agent("follow"),
        "-i",
        "1",
        cwd=spec_repo,
        env={**FAST_ENV, "FAKE_AGENT_PROMPT_LOG": str(log)},
        expect=3,
    )
    planning, main = [p for p in log.read_text().split("\n=====\n") if p.strip()]
    for text in (planning, main):
        assert "Write {{ session }} and {% raw %} as they are." in text
    assert main.splitlines()[0] == "Session: SPEC | Iteration: #1"
    # The tool command lines name a binary that really runs this iteratr.
    binary = re.findall(r"`(.+) tool task-next`", main)[0]
    tool = subprocess.run(
        [*shlex.split(binary), "tool", "task-list", "--all", "-n", "SPEC"],
        cwd=spec_repo,
        capture_output=True,
        text=True,
    )
    assert tool.returncode == 0 and "First task" in tool.stdout, tool


def test_gen_template_writes_the_default_and_refuses_to_overwrite(tmp_path: Path) -> None:
    result = run_cli("gen-template", cwd=tmp_path, expect=0)
    path = tmp_path / ".iteratr.template"
    assert path.read_text() == prompt.builtin_source("default")
    assert str(path.name) in result.stdout

    path.write_text("mine\n")
    result = run_cli("gen-template", cwd=tmp_path, expect=2)
    assert "exists" in result.stderr and "--force" in result.stderr
    assert path.read_text() == "mine\n"

    run_cli("gen-template", "--force", cwd=tmp_path, expect=0)
    assert path.read_text() == prompt.builtin_source("default")

    other = tmp_path / "sub.j2"
    run_cli("gen-template", "-o", str(other), cwd=tmp_path, expect=0)
    prompt.load(other, "default")  # what it writes is a valid template


PROMPT_BOUND = 32 * 1024  # the README states it: 1,000 tasks (900 closed) and 30 notes at their cap: under 32 KiB


def test_the_prompt_lists_open_tasks_in_full_and_summarises_closed_ones_under_a_bound() -> None:
    events: list[Any] = []
    for n in range(1, 1001):
        content = f"Task number {n}: implement the {n}th part of the feature, with its tests and docs updated"
        events.append(event("task.added", {"id": f"TAS-{n}", "content": content, "status": "remaining", "priority": 2}))
        if n <= 900:
            events.append(event("task.status", {"id": f"TAS-{n}", "status": "completed" if n % 10 else "cancelled"}))
    events += [event("note.added", {"id": f"NOT-{n}", "content": "n" * 5000, "type": "tip"}) for n in range(1, 40)]
    state = replay(events)
    text = render(state=state)
    assert len(text.encode()) < PROMPT_BOUND, len(text.encode())
    tasks = prompt.render_tasks(state, "B")
    assert all(f"TAS-{n} [P2] remaining" in tasks for n in range(901, 1001))  # open: every one, in full
    assert "Closed: 900 tasks (810 completed, 90 cancelled). The last 5:" in tasks
    assert "TAS-900 [P2] cancelled" in tasks and "TAS-895 " not in tasks
    assert "`B tool task-list --all` shows every task." in tasks
    assert "[... 4700 more characters in the session log]" in text  # a long note is capped


def test_caps_keep_the_tail_of_hook_output() -> None:
    text = prompt.cap("x" * 10_000 + "FAILED test_one", "hooks")
    assert text.endswith("FAILED test_one") and len(text) < 4_200
    assert text.startswith("[... 6015 characters cut")
