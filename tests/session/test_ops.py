"""CLI tests of every ``iteratr tool`` subcommand and every refusal, through real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from iteratr.session import ops, tasks_view
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from iteratr.session.store import SNAPSHOT_FILE as SNAPSHOT
from iteratr.session.store import Store, snapshot_path
from tests.conftest import ITERATR_CMD, CliResult, git, run_cli

S = "S"


def tool(cwd: Path, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> CliResult:
    return run_cli("tool", *args, cwd=cwd, expect=expect, env=env)


def tj(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run a tool subcommand on session S with --json and return the parsed output."""
    return json.loads(tool(cwd, args[0], "--name", S, "--json", *args[1:], env=env).stdout)


def add(cwd: Path, content: str, *flags: str) -> dict[str, Any]:
    task: dict[str, Any] = tj(cwd, "task-add", "--content", content, *flags)
    return task


def snapshot_key(repo: Path) -> str:
    import zlib

    return f"{zlib.crc32(os.fsencode(repo / '.iteratr')):08x}"


def session_dir(cwd: Path, name: str = S) -> Path:
    return cwd / ".iteratr" / name


def store_bytes(cwd: Path) -> dict[str, bytes]:
    """Every file under the data dir except the cache, by path: what a refusal must leave alone."""
    root = cwd / ".iteratr"
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "cache" not in p.relative_to(root).parts
    }


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def refused(cwd: Path, *args: str, match: str, env: dict[str, str] | None = None) -> str:
    """Assert: exit 2, one line on stderr containing ``match``, nothing on stdout, the store unchanged."""
    before = store_bytes(cwd)
    result = tool(cwd, *args, expect=2, env=env)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    assert lines[0].startswith("iteratr: error: "), result
    assert match in lines[0], result
    assert result.stdout == ""
    assert store_bytes(cwd) == before
    return lines[0]


def events(cwd: Path, name: str = S) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (session_dir(cwd, name) / "events.jsonl").read_bytes().splitlines()]


def yaml_view(cwd: Path, name: str = S) -> Any:
    return YAML(typ="safe", pure=True).load((session_dir(cwd, name) / "tasks.yaml").read_text())


def assert_view_matches_replay(cwd: Path, name: str = S) -> None:
    state = replay(events(cwd, name))
    text = (session_dir(cwd, name) / "tasks.yaml").read_text(encoding="utf-8")
    assert text == tasks_view.render(name, state)[0]


# -- task-add, task-batch-add, ids -----------------------------------------------------------------


def test_task_add_text_and_json_output(tmp_path: Path) -> None:
    out = tool(tmp_path, "task-add", "--name", S, "--content", "write tests", "--priority", "4").stdout
    assert out == "added TAS-1 [P4] remaining: write tests\n"
    task = add(tmp_path, "second", "--status", "in_progress", "--depends-on", "TAS-1")
    assert task == {"id": "TAS-2", "content": "second", "status": "in_progress", "priority": 2, "depends_on": ["TAS-1"]}
    out = tool(tmp_path, "task-add", "--name", S, "--content", "third", "--depends-on", "TAS-1", "TAS-2").stdout
    assert out == "added TAS-3 [P2] remaining: third (after TAS-1, TAS-2)\n"
    assert_view_matches_replay(tmp_path)


def test_priority_zero_round_trips_through_task_add_and_batch(tmp_path: Path) -> None:
    assert add(tmp_path, "lowest", "--priority", "0")["priority"] == 0
    batch = tj(tmp_path, "task-batch-add", "--tasks", '[{"content": "also lowest", "priority": 0}]')
    assert batch[0]["priority"] == 0
    assert [t["priority"] for t in tj(tmp_path, "task-list")] == [0, 0]
    assert [e["data"]["priority"] for e in events(tmp_path)] == [0, 0]
    assert [t["priority"] for t in yaml_view(tmp_path)["tasks"]] == [0, 0]
    assert "[P0]" in tool(tmp_path, "task-list", "--name", S).stdout


def test_batch_add_returns_every_created_task(tmp_path: Path) -> None:
    add(tmp_path, "existing")
    batch = tj(
        tmp_path,
        "task-batch-add",
        "--tasks",
        json.dumps(
            [
                {"content": "a", "priority": 4},
                {"content": "b", "status": "blocked", "depends_on": ["TAS-1", "TAS-2"]},
                {"content": "c", "depends_on": "TAS-3"},
            ]
        ),
    )
    assert batch == [
        {"id": "TAS-2", "content": "a", "status": "remaining", "priority": 4, "depends_on": []},
        {"id": "TAS-3", "content": "b", "status": "blocked", "priority": 2, "depends_on": ["TAS-1", "TAS-2"]},
        {"id": "TAS-4", "content": "c", "status": "remaining", "priority": 2, "depends_on": ["TAS-3"]},
    ]
    out = tool(tmp_path, "task-batch-add", "--name", S, "--tasks", '[{"content": "d"}, {"content": "e"}]').stdout
    assert out == "added 2 task(s):\n  TAS-5 [P2] remaining: d\n  TAS-6 [P2] remaining: e\n"


def test_ids_are_never_reused(tmp_path: Path) -> None:
    add(tmp_path, "one")
    add(tmp_path, "two")
    tj(tmp_path, "task-status", "--id", "TAS-2", "--status", "cancelled")
    refused(tmp_path, "task-batch-add", "--name", S, "--tasks", '[{"content": "x"}, {"content": ""}]', match="entry 1")
    assert add(tmp_path, "three")["id"] == "TAS-3"
    assert [t["id"] for t in tj(tmp_path, "task-batch-add", "--tasks", '[{"content": "4"}, {"content": "5"}]')] == [
        "TAS-4",
        "TAS-5",
    ]
    assert tj(tmp_path, "note-add", "--content", "n1", "--type", "tip")["id"] == "NOT-1"
    assert tj(tmp_path, "note-add", "--content", "n2", "--type", "tip")["id"] == "NOT-2"
    ids = [t["id"] for t in tj(tmp_path, "task-list", "--all")]
    assert ids == ["TAS-1", "TAS-2", "TAS-3", "TAS-4", "TAS-5"]
    assert [t["id"] for t in tj(tmp_path, "task-list")] == ["TAS-1", "TAS-3", "TAS-4", "TAS-5"]  # open ones


def test_batch_is_all_or_nothing_and_names_the_entry(tmp_path: Path) -> None:
    add(tmp_path, "existing")
    before = (session_dir(tmp_path) / "events.jsonl").read_bytes()
    bad_entries = [
        ({"content": "ok"}, {"content": "ok too"}, {"content": "bad", "priority": 7}),
        ({"content": "ok"}, {"content": "bad", "status": "done"}, {"content": "ok"}),
        ({"content": "ok"}, {"content": "   "}),
        ({"content": "ok"}, {"content": "x", "depends_on": ["TAS-99"]}),
        ({"content": "ok"}, "not an object"),
        ({"content": "ok"}, {"content": "x", "colour": "red"}),
    ]
    expected = ["entry 2", "entry 1", "entry 1", "entry 1", "entry 1", "entry 1"]
    for entries, where in zip(bad_entries, expected, strict=True):
        line = refused(tmp_path, "task-batch-add", "--name", S, "--tasks", json.dumps(entries), match=where)
        assert "nothing was added" in line
    assert (session_dir(tmp_path) / "events.jsonl").read_bytes() == before
    assert [t["id"] for t in tj(tmp_path, "task-list")] == ["TAS-1"]


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("not json", "not valid JSON"),
        ('{"content": "x"}', "must be a JSON array"),
        ("[]", "no tasks given"),
        ('[{"content": "x"', "not valid JSON"),
    ],
)
def test_batch_refuses_bad_json(tmp_path: Path, raw: str, match: str) -> None:
    add(tmp_path, "existing")
    refused(tmp_path, "task-batch-add", "--name", S, "--tasks", raw, match=match)


# -- task-next -------------------------------------------------------------------------------------


def test_task_next_breaks_ties_by_numeric_id(tmp_path: Path) -> None:
    tj(tmp_path, "task-batch-add", "--tasks", json.dumps([{"content": f"t{n}"} for n in range(1, 11)]))
    for n in [1, *range(3, 10)]:
        tj(tmp_path, "task-status", "--id", f"TAS-{n}", "--status", "completed")
    assert tj(tmp_path, "task-next")["id"] == "TAS-2"  # not TAS-10, as a string comparison would say
    tj(tmp_path, "task-status", "--id", "TAS-2", "--status", "completed")
    assert tj(tmp_path, "task-next")["id"] == "TAS-10"


def test_task_next_prefers_in_progress_then_highest_ready_priority(tmp_path: Path) -> None:
    add(tmp_path, "dependency", "--priority", "0")
    add(tmp_path, "urgent but waiting", "--priority", "4", "--depends-on", "TAS-1")
    add(tmp_path, "medium", "--priority", "3")
    add(tmp_path, "low", "--priority", "1")
    assert tj(tmp_path, "task-next")["id"] == "TAS-3"  # TAS-2 waits on TAS-1
    tj(tmp_path, "task-status", "--id", "TAS-4", "--status", "in_progress")
    assert tj(tmp_path, "task-next")["id"] == "TAS-4"  # work in progress comes first
    out = tool(tmp_path, "task-next", "--name", S).stdout
    assert out.startswith("TAS-4 [P1] in_progress: low\n")
    tj(tmp_path, "task-status", "--id", "TAS-4", "--status", "completed")
    tj(tmp_path, "task-status", "--id", "TAS-1", "--status", "completed")
    assert tj(tmp_path, "task-next")["id"] == "TAS-2"  # its dependency is done now


def test_task_next_says_why_there_is_nothing(tmp_path: Path) -> None:
    tool(tmp_path, "task-add", "--name", "other", "--content", "so that the data dir exists")
    Store(tmp_path / ".iteratr", S).create()
    assert tj(tmp_path, "task-next") is None
    assert "no tasks" in tool(tmp_path, "task-next", "--name", S).stdout

    add(tmp_path, "a")
    add(tmp_path, "b", "--depends-on", "TAS-1")
    tj(tmp_path, "task-status", "--id", "TAS-1", "--status", "blocked")
    assert tj(tmp_path, "task-next") is None
    blocked = tool(tmp_path, "task-next", "--name", S).stdout
    assert "no task is ready" in blocked
    assert "TAS-2" in blocked

    assert "TAS-2 waits on unfinished dependencies; blocked: TAS-1" in blocked

    tj(tmp_path, "task-status", "--id", "TAS-2", "--status", "cancelled")
    assert tj(tmp_path, "task-next") is None
    only_blocked = tool(tmp_path, "task-next", "--name", S).stdout
    assert "nothing left to do but blocked task(s) TAS-1" in only_blocked  # not "all done"
    assert "all tasks are done" not in only_blocked

    tj(tmp_path, "task-status", "--id", "TAS-1", "--status", "completed")
    done = tool(tmp_path, "task-next", "--name", S).stdout
    assert "all tasks are done" in done
    assert len({blocked, only_blocked, done}) == 3


# -- task-status, task-priority, task-depends ------------------------------------------------------


def test_task_status_and_priority_print_the_changed_task(tmp_path: Path) -> None:
    add(tmp_path, "a")
    assert tj(tmp_path, "task-status", "--id", "TAS-1", "--status", "in_progress")["status"] == "in_progress"
    assert tj(tmp_path, "task-priority", "--id", "tas-1", "--priority", "0")["priority"] == 0
    out = tool(tmp_path, "task-status", "--name", S, "--id", "1", "--status", "completed").stdout
    assert out == "TAS-1 [P0] completed: a\n"
    out = tool(tmp_path, "task-priority", "--name", S, "--id", "TAS-1", "--priority", "3").stdout
    assert out == "TAS-1 [P3] completed: a\n"
    assert_view_matches_replay(tmp_path)


def test_setting_the_same_status_or_priority_is_a_no_op(tmp_path: Path) -> None:
    add(tmp_path, "a", "--priority", "1")
    tj(tmp_path, "task-status", "--id", "TAS-1", "--status", "in_progress")
    before = store_bytes(tmp_path)
    task = tj(tmp_path, "task-status", "--id", "TAS-1", "--status", "in_progress")
    assert task["status"] == "in_progress"
    assert tool(tmp_path, "task-status", "--name", S, "--id", "TAS-1", "--status", "in_progress").stdout == (
        "TAS-1 [P1] in_progress: a\n"
    )
    tj(tmp_path, "task-priority", "--id", "TAS-1", "--priority", "1")
    assert store_bytes(tmp_path) == before  # no new event, no rewritten view
    tj(tmp_path, "task-add", "--content", "b")
    tj(tmp_path, "task-depends", "--id", "TAS-2", "--depends-on", "TAS-1")
    mid = store_bytes(tmp_path)
    tj(tmp_path, "task-depends", "--id", "TAS-2", "--depends-on", "TAS-1")
    assert store_bytes(tmp_path) == mid
    assert len(events(tmp_path)) == 4
    assert before != mid


def test_task_depends(tmp_path: Path) -> None:
    for name in "abc":
        add(tmp_path, name)
    task = tj(tmp_path, "task-depends", "--id", "TAS-3", "--depends-on", "TAS-1")
    assert task["depends_on"] == ["TAS-1"]
    out = tool(tmp_path, "task-depends", "--name", S, "--id", "TAS-3", "--depends-on", "TAS-2").stdout
    assert out == "TAS-3 [P2] remaining: c (after TAS-1, TAS-2)\n"


@pytest.mark.parametrize(
    ("edges", "new", "match"),
    [
        ([], ("TAS-1", "TAS-1"), "cannot depend on itself"),
        ([], ("TAS-1", "TAS-9"), "unknown task TAS-9"),
        ([], ("TAS-9", "TAS-1"), "unknown task TAS-9"),
        ([], ("TAS-1", "bogus"), "invalid id 'bogus'"),
        ([("TAS-2", "TAS-1")], ("TAS-1", "TAS-2"), "cycle"),
        ([("TAS-1", "TAS-2"), ("TAS-2", "TAS-3")], ("TAS-3", "TAS-1"), "cycle"),  # a -> b -> c -> a
    ],
)
def test_bad_dependencies_are_refused(
    tmp_path: Path, edges: list[tuple[str, str]], new: tuple[str, str], match: str
) -> None:
    tj(tmp_path, "task-batch-add", "--tasks", '[{"content": "a"}, {"content": "b"}, {"content": "c"}]')
    for a, b in edges:
        tj(tmp_path, "task-depends", "--id", a, "--depends-on", b)
    refused(tmp_path, "task-depends", "--name", S, "--id", new[0], "--depends-on", new[1], match=match)


def test_task_add_refuses_unknown_and_self_dependencies(tmp_path: Path) -> None:
    add(tmp_path, "a")
    refused(tmp_path, "task-add", "--name", S, "--content", "b", "--depends-on", "TAS-7", match="unknown task TAS-7")
    refused(tmp_path, "task-add", "--name", S, "--content", "b", "--depends-on", "TAS-2", match="itself")
    refused(
        tmp_path,
        "task-batch-add",
        "--name",
        S,
        "--tasks",
        '[{"content": "x", "depends_on": ["TAS-3"]}]',
        match="unknown task TAS-3",
    )


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("task-add", "--content", "x", "--status", "done"), "invalid status 'done'"),
        (("task-status", "--id", "TAS-1", "--status", "finished"), "invalid status 'finished'"),
        (("note-add", "--content", "x", "--type", "idea"), "invalid note type 'idea'"),
        (("note-list", "--type", "idea"), "invalid note type 'idea'"),
        (("task-add", "--content", "x", "--priority", "-1"), "invalid priority '-1'"),
        (("task-add", "--content", "x", "--priority", "5"), "invalid priority '5'"),
        (("task-add", "--content", "x", "--priority", "x"), "invalid priority 'x'"),
        (("task-priority", "--id", "TAS-1", "--priority", "5"), "invalid priority '5'"),
        (("task-priority", "--id", "TAS-1", "--priority", "-1"), "invalid priority '-1'"),
        (("task-priority", "--id", "TAS-1", "--priority", "high"), "invalid priority 'high'"),
        (("task-add", "--content", ""), "empty content"),
        (("task-add", "--content", "   "), "empty content"),
        (("note-add", "--content", "", "--type", "tip"), "empty content"),
        (("iteration-summary", "--summary", " "), "empty summary"),
        (("task-status", "--id", "TAS-99", "--status", "completed"), "unknown task TAS-99"),
        (("task-priority", "--id", "TAS-99", "--priority", "1"), "unknown task TAS-99"),
        (("task-status", "--id", "NOT-1", "--status", "completed"), "invalid id 'NOT-1'"),
        (("task-add", "--content"), "--content needs a value"),
        (("task-add",), "needs --content"),
        (("task-add", "--content", "x", "--colour", "red"), "unknown option --colour"),
        (("task-list", "extra"), "unexpected argument 'extra'"),
        (("task-status", "--id", "TAS-1", "--id", "TAS-1", "--status", "completed"), "--id given twice"),
    ],
)
def test_bad_input_is_refused_with_one_line_and_nothing_written(
    tmp_path: Path, args: tuple[str, ...], match: str
) -> None:
    add(tmp_path, "the only task")
    line = refused(tmp_path, args[0], "--name", S, *args[1:], match=match)
    assert "Traceback" not in line


def test_unknown_subcommand_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, "task-remove", "--name", S, match="unknown tool subcommand 'task-remove'")


@pytest.mark.parametrize("command", [("task-list",), ("task-next",), ("note-list",)])
def test_reading_an_unknown_session_is_refused_and_creates_nothing(tmp_path: Path, command: tuple[str, ...]) -> None:
    refused(tmp_path, *command, "--name", "nope", match="no session 'nope'")
    assert tree(tmp_path) == []
    tool(tmp_path, "task-add", "--name", "real", "--content", "x")
    line = refused(tmp_path, *command, "--name", "nope", match="no session 'nope'")
    assert "sessions there: real" in line
    assert not session_dir(tmp_path, "nope").exists()


def test_a_refused_write_to_an_unknown_session_creates_nothing(tmp_path: Path) -> None:
    refused(tmp_path, "task-status", "--name", "nope", "--id", "TAS-1", "--status", "completed", match="unknown task")
    refused(tmp_path, "task-depends", "--name", "nope", "--id", "TAS-1", "--depends-on", "TAS-2", match="unknown task")
    refused(tmp_path, "session-complete", "--name", "nope", match="refused")
    assert tree(tmp_path) == []


@pytest.mark.parametrize("name", ["../x", "a/b", "", "/abs", "a b", "x" * 65])
@pytest.mark.parametrize(
    "command", [("task-list",), ("task-add", "--content", "x"), ("note-add", "--content", "n", "--type", "tip")]
)
def test_invalid_session_names_write_nothing_anywhere(tmp_path: Path, name: str, command: tuple[str, ...]) -> None:
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    before = tree(tmp_path)
    refused(work, command[0], "--name", name, *command[1:], match="invalid session name")
    refused(
        work,
        *command,
        env={"ITERATR_SESSION": name} if name else {"ITERATR_SESSION": "../y"},
        match="invalid session name",
    )
    assert tree(tmp_path) == before


def test_no_session_at_all_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, "task-list", match="no session given")
    refused(tmp_path, "task-list", env={"ITERATR_SESSION": ""}, match="no session given")  # empty is unset
    refused(tmp_path, "task-list", "--name", "", env={"ITERATR_SESSION": "S"}, match="invalid session name ''")
    assert tree(tmp_path) == []


def test_invalid_utf8_in_an_argument_is_refused_cleanly(tmp_path: Path) -> None:
    add(tmp_path, "a")
    before = store_bytes(tmp_path)
    proc = subprocess.run(
        [*ITERATR_CMD, "tool", "task-add", "--name", S, "--content", os.fsdecode(b"bad \xff byte")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "UTF-8" in proc.stderr
    assert store_bytes(tmp_path) == before


# -- notes, summaries, completion -------------------------------------------------------------------


def test_note_add_and_note_list(tmp_path: Path) -> None:
    note = tj(tmp_path, "note-add", "--content", "use pytest -x", "--type", "tip")
    assert note == {"id": "NOT-1", "content": "use pytest -x", "type": "tip", "iteration": 0}
    out = tool(tmp_path, "note-add", "--name", S, "--content", "stuck on X", "--type", "stuck").stdout
    assert out == "added NOT-2 (stuck): stuck on X\n"
    assert [n["id"] for n in tj(tmp_path, "note-list")] == ["NOT-1", "NOT-2"]
    stuck = tj(tmp_path, "note-list", "--type", "stuck")
    assert stuck == [{"id": "NOT-2", "type": "stuck", "content": "stuck on X", "iteration": 0}]
    assert tool(tmp_path, "note-list", "--name", S, "--type", "learning").stdout == "no notes\n"
    assert tool(tmp_path, "note-list", "--name", S, "--type", "tip").stdout == "NOT-1 #0 tip: use pytest -x\n"
    assert [n["id"] for n in yaml_view(tmp_path)["notes"]] == ["NOT-1", "NOT-2"]


def test_iteration_summary_uses_iteratr_iteration_else_the_current_one(tmp_path: Path) -> None:
    add(tmp_path, "a")
    rec = tj(tmp_path, "iteration-summary", "--summary", "before any iteration")
    assert rec == {"iteration": 0, "summary": "before any iteration"}
    store = Store(tmp_path / ".iteratr", S)
    store.append(make_event("iteration.started", {"n": 3, "kind": "main"}, 3))
    store.append(make_event("iteration.ended", {"n": 3, "outcome": "ok", "duration": 1.0}, 3))
    rec = tj(tmp_path, "iteration-summary", "--summary", "did a")
    assert rec == {"iteration": 3, "summary": "did a"}  # no ITERATR_ITERATION: the store's current one
    rec = tj(tmp_path, "iteration-summary", "--summary", "did b", env={"ITERATR_ITERATION": "7"})
    assert rec == {"iteration": 7, "summary": "did b"}
    note = tj(tmp_path, "note-add", "--content", "n", "--type", "learning", env={"ITERATR_ITERATION": "7"})
    assert note["iteration"] == 7
    summaries = [(e["iteration"], e["data"]["summary"]) for e in events(tmp_path) if e["type"] == "iteration.summary"]
    assert summaries == [(0, "before any iteration"), (3, "did a"), (7, "did b")]
    out = tool(tmp_path, "iteration-summary", "--name", S, "--summary", "c", env={"ITERATR_ITERATION": "8"}).stdout
    assert out == "recorded the summary of iteration #8\n"


def test_a_running_iteration_wins_over_a_stale_iteratr_iteration(tmp_path: Path) -> None:
    """One agent process serves a whole run, so the ITERATR_ITERATION its shell inherited goes stale."""
    add(tmp_path, "a")
    Store(tmp_path / ".iteratr", S).append(make_event("iteration.started", {"n": 4, "kind": "main"}, 4))
    rec = tj(tmp_path, "iteration-summary", "--summary", "s", env={"ITERATR_ITERATION": "1"})
    assert rec == {"iteration": 4, "summary": "s"}


def test_session_complete_is_refused_while_tasks_are_open(tmp_path: Path) -> None:
    refused_empty = tool(tmp_path, "task-add", "--name", S, "--content", "a")
    assert refused_empty.returncode == 0
    add(tmp_path, "b", "--status", "in_progress")
    add(tmp_path, "c")
    tj(tmp_path, "task-status", "--id", "TAS-1", "--status", "completed")
    line = refused(tmp_path, "session-complete", "--name", S, match="2 task(s) still open")
    assert "TAS-2 in_progress: b" in line
    assert "TAS-3 remaining: c" in line
    assert "TAS-1" not in line
    tj(tmp_path, "task-status", "--id", "TAS-2", "--status", "blocked")
    tj(tmp_path, "task-status", "--id", "TAS-3", "--status", "cancelled")
    # Accepted as before, but completion is derived: a blocked task still needs a person.
    assert tj(tmp_path, "session-complete") == {"complete": False, "tasks": 3, "blocked": ["TAS-2"]}
    assert events(tmp_path)[-1]["type"] == "session.completed"
    assert yaml_view(tmp_path)["complete"] is False
    out = tool(tmp_path, "session-complete", "--name", S).stdout  # again: harmless, nothing new
    assert "TAS-2 blocked" in out
    assert [e["type"] for e in events(tmp_path)].count("session.completed") == 1
    tj(tmp_path, "task-status", "--id", "TAS-2", "--status", "completed")
    assert tj(tmp_path, "session-complete") == {"complete": True, "tasks": 3, "blocked": []}
    assert yaml_view(tmp_path)["complete"] is True
    out = tool(tmp_path, "session-complete", "--name", S).stdout
    assert "is complete (3 tasks)" in out


def test_session_complete_is_refused_without_tasks(tmp_path: Path) -> None:
    tj(tmp_path, "note-add", "--content", "n", "--type", "tip")
    refused(tmp_path, "session-complete", "--name", S, match="no tasks yet")


# -- output shapes ----------------------------------------------------------------------------------


def test_task_list_json_and_text(tmp_path: Path) -> None:
    assert tool(tmp_path, "task-add", "--name", S, "--content", "x").returncode == 0
    add(tmp_path, "write tests", "--priority", "4")
    add(tmp_path, "ship", "--depends-on", "TAS-2")
    tj(tmp_path, "task-status", "--id", "TAS-1", "--status", "completed")
    tj(tmp_path, "task-status", "--id", "TAS-3", "--status", "in_progress")
    assert [t["id"] for t in tj(tmp_path, "task-list")] == ["TAS-2", "TAS-3"]  # the open ones
    listing = tj(tmp_path, "task-list", "--all")
    assert isinstance(listing, list)
    for task in listing:
        assert set(task) >= {"id", "content", "status", "priority", "depends_on"}
    assert listing[1] == {
        "id": "TAS-2",
        "content": "write tests",
        "status": "remaining",
        "priority": 4,
        "depends_on": [],
    }
    text = tool(tmp_path, "task-list", "--name", S, "--all").stdout
    assert text == (
        "in_progress (1):\n  TAS-3 [P2] in_progress: ship (after TAS-2)\n"
        "remaining (1):\n  TAS-2 [P4] remaining: write tests\n"
        "completed (1):\n  TAS-1 [P2] completed: x\n"
    )
    assert tool(tmp_path, "task-list", "--name", S).stdout == (
        "in_progress (1):\n  TAS-3 [P2] in_progress: ship (after TAS-2)\n"
        "remaining (1):\n  TAS-2 [P4] remaining: write tests\n"
        "completed (1): not listed (task-list --all lists them)\n"
    )


def test_empty_task_list(tmp_path: Path) -> None:
    Store(tmp_path / ".iteratr", S).create()
    assert tj(tmp_path, "task-list") == []
    assert tool(tmp_path, "task-list", "--name", S).stdout == "no tasks yet\n"
    assert tj(tmp_path, "note-list") == []


def test_unicode_and_newlines_survive_json_output(tmp_path: Path) -> None:
    text = "naïve ünïcode 日本 — with: colon\nand a second line"
    assert add(tmp_path, text)["content"] == text
    assert tj(tmp_path, "task-list")[0]["content"] == text
    assert yaml_view(tmp_path)["tasks"][0]["content"] == text


def test_help(tmp_path: Path) -> None:
    out = tool(tmp_path, "--help").stdout
    for name in (
        "task-add",
        "task-batch-add",
        "task-status",
        "task-priority",
        "task-depends",
        "task-list",
        "task-next",
        "note-add",
        "note-list",
        "iteration-summary",
        "session-complete",
    ):
        assert name in out
    sub = tool(tmp_path, "task-add", "--help").stdout
    assert "--content TEXT" in sub and "--depends-on ID" in sub


# -- where the session lives ----------------------------------------------------------------------


def test_iteratr_session_is_the_default_name(tmp_path: Path) -> None:
    env = {"ITERATR_SESSION": "fromenv"}
    tool(tmp_path, "task-add", "--content", "x", env=env)
    assert (session_dir(tmp_path, "fromenv") / "events.jsonl").exists()
    listing = json.loads(tool(tmp_path, "task-list", "--json", env=env).stdout)
    assert [t["content"] for t in listing] == ["x"]
    # --name wins over the environment
    tool(tmp_path, "task-add", "--name", "explicit", "--content", "y", env=env)
    assert (session_dir(tmp_path, "explicit") / "events.jsonl").exists()
    assert len(events(tmp_path, "fromenv")) == 1


def test_data_dir_flag_and_environment(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    tool(work, "task-add", "--name", S, "--data-dir", "state", "--content", "relative")
    assert (work / "state" / S / "events.jsonl").exists()
    absolute = work / "abs-data"  # absolute, inside the work tree (one outside is refused: test_paths_guard.py)
    env = {"ITERATR_DATA_DIR": str(absolute)}
    tool(work, "task-add", "--name", S, "--content", "from env", env=env)
    assert (absolute / S / "events.jsonl").exists()
    flag_wins = tool(work, "task-list", "--name", S, "--data-dir", "state", "--json", env=env).stdout
    assert [t["content"] for t in json.loads(flag_wins)] == ["relative"]
    assert not (work / ".iteratr").exists()


def test_from_a_subdirectory_the_session_at_the_top_of_the_work_tree_is_used(repo: Path) -> None:
    # build keeps .iteratr at the top of the work tree; a call from a subdirectory used to look for
    # (and on a write, start) a second session in <subdir>/.iteratr.
    tool(repo, "task-add", "--name", S, "--content", "at the top")
    sub = repo / "src" / "deep"
    sub.mkdir(parents=True)
    assert [t["content"] for t in tj(sub, "task-list")] == ["at the top"]
    tool(sub, "task-add", "--name", S, "--content", "from below")
    assert [t["content"] for t in tj(repo, "task-list")] == ["at the top", "from below"]
    assert not (sub / ".iteratr").exists() and not (repo / "src" / ".iteratr").exists()


def test_works_in_a_fresh_clone_of_the_session_branch(repo: Path, tmp_path: Path) -> None:
    tool(repo, "task-batch-add", "--name", S, "--tasks", '[{"content": "a", "priority": 0}, {"content": "b"}]')
    tool(repo, "task-status", "--name", S, "--id", "TAS-1", "--status", "completed")
    tool(repo, "note-add", "--name", S, "--content", "remember", "--type", "learning")
    # The snapshot lives where git never carries it: under the git dir, not in the data dir.
    assert not (session_dir(repo) / "cache").exists()
    cached = repo / ".git" / "iteratr" / "cache" / snapshot_key(repo) / S / SNAPSHOT
    assert snapshot_path(repo / ".iteratr", S) == cached and cached.is_file()
    git(repo, "checkout", "-q", "-b", f"iteratr/{S}")
    git(repo, "add", ".iteratr")
    git(repo, "commit", "-q", "-m", "session files")
    committed = git(repo, "ls-files", ".iteratr").splitlines()
    assert sorted(committed) == [f".iteratr/{S}/events.jsonl", f".iteratr/{S}/tasks.yaml"]  # no cache

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "-b", f"iteratr/{S}", str(repo), str(clone)], check=True, capture_output=True)
    assert not (session_dir(clone) / "cache").exists()
    assert tj(clone, "task-list") == tj(repo, "task-list")
    assert tj(clone, "task-next")["id"] == "TAS-2"
    assert tj(clone, "task-add", "--content", "c")["id"] == "TAS-3"
    assert tj(clone, "note-add", "--content", "n2", "--type", "tip")["id"] == "NOT-2"
    assert_view_matches_replay(clone)
    diff = git(clone, "diff", "--", f".iteratr/{S}/tasks.yaml")
    assert "+- id: TAS-3" in diff and "-- id: TAS-1" not in diff  # a small diff: only what changed
    assert git(clone, "status", "--porcelain", "--", ".iteratr") == (
        f"M .iteratr/{S}/events.jsonl\n M .iteratr/{S}/tasks.yaml"
    )


# -- concurrency, torn and invalid lines ---------------------------------------------------------


def test_twenty_processes_adding_at_once_get_distinct_ids(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()}
    procs = [
        subprocess.Popen(
            [*ITERATR_CMD, "tool", "task-add", "--name", S, "--content", f"task from process {n}", "--json"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(20)
    ]
    results = [(p.communicate(timeout=120), p.returncode) for p in procs]
    assert all(code == 0 for _, code in results), results
    created = [json.loads(out) for (out, _), _ in results]
    ids = sorted((t["id"] for t in created), key=lambda i: int(i.split("-")[1]))
    assert ids == [f"TAS-{n}" for n in range(1, 21)]
    logged = events(tmp_path)
    assert len(logged) == 20
    assert sorted(e["data"]["content"] for e in logged) == sorted(f"task from process {n}" for n in range(20))
    assert_view_matches_replay(tmp_path)
    assert len(tj(tmp_path, "task-list")) == 20


def test_a_torn_last_line_is_skipped_then_repaired(tmp_path: Path) -> None:
    add(tmp_path, "before the crash")
    log = session_dir(tmp_path) / "events.jsonl"
    with open(log, "ab") as f:
        f.write(b'{"v": 1, "ts": "2026-01-01T00:00:00Z", "type": "task.added", "iteration": 0, "data": {"id": "TA')
    result = tool(tmp_path, "task-list", "--name", S, "--json")
    assert [t["content"] for t in json.loads(result.stdout)] == ["before the crash"]
    assert "torn last line" in result.stderr
    assert "Traceback" not in result.stderr

    result = tool(tmp_path, "task-add", "--name", S, "--content", "after the crash", "--json")
    assert json.loads(result.stdout)["id"] == "TAS-2"
    raw = log.read_bytes()
    assert raw.endswith(b"\n")
    assert [json.loads(line)["data"]["content"] for line in raw.splitlines()] == ["before the crash", "after the crash"]
    assert_view_matches_replay(tmp_path)
    clean = tool(tmp_path, "task-list", "--name", S)
    assert clean.stderr == ""


def test_an_invalid_line_in_the_middle_is_reported_with_its_line_number(tmp_path: Path) -> None:
    for name in "abc":
        add(tmp_path, name)
    log = session_dir(tmp_path) / "events.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = b'{"v": 1, "type": "task.added", oops\n'
    log.write_bytes(b"".join(lines))
    for args in (("task-list",), ("task-add", "--content", "d")):
        result = tool(tmp_path, args[0], "--name", S, *args[1:], expect=None)
        assert result.returncode not in (0, 2)
        assert result.stdout == ""
        err = result.stderr.strip().splitlines()
        assert len(err) == 1, result
        assert f"{log}:2: invalid event line" in err[0]
        assert "fix or remove that line" in err[0]
        assert "Traceback" not in result.stderr
    assert log.read_bytes() == b"".join(lines)


def test_a_hand_edited_log_is_reflected_at_once(tmp_path: Path) -> None:
    """The snapshot cache never hides a change to the log, even one of the same length."""
    batch = [{"content": f"task {n:02d} " + "x" * 200} for n in range(30)]
    tj(tmp_path, "task-batch-add", "--tasks", json.dumps(batch))
    tj(tmp_path, "task-status", "--id", "TAS-30", "--status", "in_progress")  # the cache covers the whole log
    log = session_dir(tmp_path) / "events.jsonl"
    raw = log.read_bytes()
    edited = raw.replace(b'"content": "task 00 ', b'"content": "TASK 00 ', 1)
    assert len(edited) == len(raw)
    log.write_bytes(edited)
    assert tj(tmp_path, "task-list")[0]["content"].startswith("TASK 00 ")


def test_secret_environment_values_never_reach_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_API_KEY", "sk-test-0123456789")
    store = Store(tmp_path / ".iteratr", "S")
    store.create()
    ops.task_add(store, [{"content": "call the API with sk-test-0123456789"}])
    ops.note_add(store, "the key is sk-test-0123456789", "tip")
    log = store.events_path.read_text()
    assert "sk-test-0123456789" not in log
    assert log.count("***") == 2
