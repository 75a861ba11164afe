"""``tasks.yaml``: equal to a full replay, equal to ruamel's whole-document output, and parses back.

The property test drives the real store and tools with random valid operation sequences, one fresh
``Store`` per operation (as each ``iteratr tool`` call is a fresh process), so the fragment cache is
carried across calls through the snapshot, as in real use.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from iteratr.errors import StoreError, UsageError
from iteratr.session import ops as tools
from iteratr.session import tasks_view
from iteratr.session.events import make_event
from iteratr.session.reducer import replay
from iteratr.session.state import NOTE_TYPES, TASK_STATUSES, State
from iteratr.session.store import Store

NAME = "S"


def safe_load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def one_shot(state: State) -> str:
    """The whole document dumped by ruamel in one go: what the fragment concatenation must equal."""
    return tasks_view.HEADER + tasks_view.dump(tasks_view.document(NAME, state))


def check_view(data_dir: Path) -> None:
    store = Store(data_dir, NAME)
    text = store.tasks_path.read_text(encoding="utf-8")
    state = replay(store.events())  # from the log alone: no snapshot, no fragment cache
    assert text == tasks_view.render(NAME, state)[0]
    assert text == one_shot(state)
    assert safe_load(text) == tasks_view.document(NAME, state)
    assert Store(data_dir, NAME).load().to_dict() == state.to_dict()  # the snapshot path agrees too


AWKWARD = [
    "key: value",
    "a:b",
    "ends with colon:",
    "'single quoted'",
    '"double quoted"',
    "it's",
    "line one\nline two",
    "trailing newline inside\n\nmore",
    "- leading dash",
    "-",
    "? question",
    "# not a comment",
    "value # with hash",
    "tab\there",
    "unicode: ü ñ 日本語 🚀",
    "yes",
    "no",
    "null",
    "~",
    "true",
    "0",
    "007",
    "1.5",
    "1e3",
    "0x1F",
    "2026-01-02",
    "@at",
    "`backtick`",
    "%percent",
    "&anchor",
    "*alias",
    "!tag",
    "[flow, list]",
    "{flow: map}",
    "|",
    ">",
    "a  double  spaced  text",
    "back\\slash",
    "nel\x85char",
    "ls\u2028ps\u2029",
    "bom\ufeffinside",
    "bell\x07",
    "\u00a0nbsp",
    "x" * 5000,
    "word " * 900,
]
texts = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30),
    st.builds(lambda a, b: a + b, st.sampled_from(AWKWARD), st.text(max_size=10)),
)
priorities = st.integers(0, 4)
entries = st.fixed_dictionaries(
    {"content": texts},
    optional={
        "status": st.sampled_from(TASK_STATUSES),
        "priority": priorities,
        "depends_on": st.lists(st.integers(0, 30), max_size=2),
    },
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), entries),
        st.tuples(st.just("batch"), st.lists(entries, min_size=1, max_size=4)),
        st.tuples(st.just("status"), st.integers(0, 30), st.sampled_from(TASK_STATUSES)),
        st.tuples(st.just("priority"), st.integers(0, 30), priorities),
        st.tuples(st.just("depends"), st.integers(0, 30), st.integers(0, 30)),
        st.tuples(st.just("note"), texts, st.sampled_from(NOTE_TYPES)),
        st.tuples(st.just("summary"), texts),
        st.tuples(st.just("iteration"), st.integers(1, 3)),
        st.tuples(st.just("end"), st.integers(1, 3)),
        st.tuples(st.just("complete")),
        st.tuples(st.just("drop-cache")),
    ),
    min_size=1,
    max_size=12,
)


def task_id(store: Store, pick: int) -> str:
    """A task id chosen among those that exist (or TAS-1 when none does, which tools refuse)."""
    last = Store(store.data_dir, NAME).load().last_task_num if store.exists() else 0
    return f"TAS-{1 + pick % last}" if last else "TAS-1"


def resolve(store: Store, entry: dict[str, Any]) -> dict[str, Any]:
    entry = dict(entry)
    if "depends_on" in entry:
        entry["depends_on"] = [task_id(store, pick) for pick in entry["depends_on"]]
    return entry


def perform(data_dir: Path, op: tuple[Any, ...], store: Store | None = None) -> None:
    store = store or Store(data_dir, NAME)  # a fresh one per call: the cache travels through the snapshot
    kind = op[0]
    if kind == "add":
        tools.task_add(store, [resolve(store, op[1])])
    elif kind == "batch":
        tools.task_add(store, [resolve(store, e) for e in op[1]])
    elif kind == "status":
        tools.task_status(store, task_id(store, op[1]), op[2])
    elif kind == "priority":
        tools.task_priority(store, task_id(store, op[1]), op[2])
    elif kind == "depends":
        tools.task_depends(store, task_id(store, op[1]), task_id(store, op[2]))
    elif kind == "note":
        tools.note_add(store, op[1], op[2])
    elif kind == "summary":
        tools.iteration_summary(store, op[1])
    elif kind == "iteration":
        store.append(make_event("iteration.started", {"n": op[1], "kind": "main"}, op[1]))
    elif kind == "end":
        store.append(make_event("iteration.ended", {"n": op[1], "outcome": "ok", "duration": 1.0}, op[1]))
    elif kind == "complete":
        tools.session_complete(store)
    elif kind == "message":
        store.transact(lambda s: [make_event("user.message", {"id": s.next_message_id, "text": "hi"}, 0)])
    elif kind == "delivered":
        store.append(make_event("user.delivered", {"ids": [f"MSG-{op[1]}"], "iteration": 1}, 1))
    elif kind == "drop-cache":
        (store.dir / "cache" / "state.marshal").unlink(missing_ok=True)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_incremental_tasks_yaml_equals_full_replay_and_ruamel(ops: list[tuple[Any, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / ".iteratr"
        Store(data_dir, NAME).create()
        for op in ops:
            events_before = (data_dir / NAME / "events.jsonl").read_bytes()
            try:
                perform(data_dir, op)
            except UsageError:
                # A refusal (a cycle, a whitespace-only text, session-complete with open tasks) writes nothing.
                assert (data_dir / NAME / "events.jsonl").read_bytes() == events_before
            check_view(data_dir)


# A long-lived writer (the build loop's store) skips rendering for events the view does not show; other writers,
# a hand edit or a deletion of tasks.yaml in between must never leave it stale after the long-lived one appends.
loop_operations = st.lists(
    st.tuples(
        st.sampled_from(["loop", "loop", "other", "edit", "delete"]),
        st.one_of(
            operations.map(lambda ops: ops[0]),
            st.tuples(st.just("message")),
            st.tuples(st.just("delivered"), st.integers(1, 3)),
        ),
    ),
    min_size=1,
    max_size=14,
)


@settings(max_examples=40, deadline=None)
@given(steps=loop_operations)
def test_a_long_lived_writer_keeps_tasks_yaml_true(steps: list[tuple[str, tuple[Any, ...]]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / ".iteratr"
        loop = Store(data_dir, NAME)
        loop.create()
        touched = False  # tasks.yaml edited or deleted by hand, and nothing appended since
        for who, op in steps:
            if who == "edit":
                loop.tasks_path.write_text("edited by hand\n")
            elif who == "delete":
                loop.tasks_path.unlink(missing_ok=True)
            touched = touched or who in ("edit", "delete")
            size = loop.events_path.stat().st_size
            with contextlib.suppress(UsageError):  # refused: nothing appended
                perform(data_dir, op, None if who == "other" else loop)
            touched = touched and loop.events_path.stat().st_size == size  # any append renders the view again
            if not touched:
                check_view(data_dir)


def test_the_loop_bookkeeping_leaves_tasks_yaml_alone(tmp_path: Path) -> None:
    loop = Store(tmp_path / ".iteratr", NAME)
    tools.task_add(loop, [{"content": "a task"}])
    before = loop.tasks_path.stat()
    loop.append(make_event("iteration.started", {"n": 1, "kind": "main"}, 1))
    loop.append(make_event("iteration.ended", {"n": 1, "outcome": "ok", "duration": 1.0}, 1))
    after = loop.tasks_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    check_view(tmp_path / ".iteratr")
    tools.task_status(loop, "TAS-1", "completed")
    assert "complete: true" in loop.tasks_path.read_text()
    loop.append(make_event("user.message", {"id": "MSG-1", "text": "hi"}, 1))  # a waiting message reopens it
    assert "complete: false" in loop.tasks_path.read_text()
    check_view(tmp_path / ".iteratr")
    loop.append(make_event("user.delivered", {"ids": ["MSG-1"], "iteration": 2}, 2))  # delivered: complete again
    assert "complete: true" in loop.tasks_path.read_text()
    check_view(tmp_path / ".iteratr")


# -- the writer that skips ruamel -----------------------------------------------------------------

ascii_texts = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)
edgy_texts = st.one_of(
    ascii_texts,
    st.sampled_from(AWKWARD),
    st.builds(
        lambda a, b, c: a + b + c,
        st.sampled_from(["", "-", "?", ":", "#", "'", "!", "---", "..."]),
        ascii_texts,
        st.sampled_from(["", ":", " #x", ": y", " ", "'", "é"]),
    ),
    st.sampled_from(
        [
            "true",
            "True",
            "TRUE",
            "false",
            "null",
            "Null",
            "NULL",
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "N",
            "tRue",
            "nULL",
            "x" * 1000,
            "x" * 1001,
            "a " * 499 + "b",
            "a: " * 300 + "b",
        ]
    ),
)


@settings(max_examples=400, deadline=None)
@given(text=edgy_texts, other=edgy_texts, n=st.integers(0, 3))
def test_items_written_without_ruamel_are_what_ruamel_writes(text: str, other: str, n: int) -> None:
    task = {
        "id": "TAS-12",
        "content": text,
        "status": "in_progress",
        "priority": n,
        "depends_on": [f"TAS-{i}" for i in range(1, n + 1)],
    }
    note = {"id": "NOT-3", "type": "decision", "content": text, "iteration": n}
    odd_task = {**task, "id": other, "depends_on": [other] * n}  # ids from a hand-edited log
    for item in (task, note, odd_task):
        assert tasks_view._item_text(item) == tasks_view.dump([item])


@settings(max_examples=200, deadline=None)
@given(
    name=st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True),
    complete=st.booleans(),
    counts=st.dictionaries(st.sampled_from(["remaining", "in_progress", "completed"]), st.integers(1, 9)),
)
def test_the_head_written_without_ruamel_is_what_ruamel_writes(
    name: str, complete: bool, counts: dict[str, int]
) -> None:
    expected = tasks_view.dump({"session": name, "complete": complete, "counts": counts})
    assert tasks_view._head_text(name, complete, counts) == expected


def test_common_texts_take_the_path_without_ruamel() -> None:
    assert tasks_view._scalar("Implement the parser (see spec, part 2)") == "Implement the parser (see spec, part 2)"
    assert tasks_view._scalar("Learned: run the tests with -x") == "'Learned: run the tests with -x'"
    assert tasks_view._scalar("it's: quoted") is None  # ruamel double-quotes those
    assert tasks_view._scalar("naïve") is None
    assert tasks_view._scalar("true") is None


def test_a_simple_write_does_not_import_ruamel(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.conftest import ITERATR_CMD

    probe = (
        "import runpy, sys; sys.argv = sys.argv[1:]\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('ruamel' in sys.modules, file=sys.stderr)\n"
    )
    args = ["tool", "note-add", "--name", NAME, "--type", "tip"]
    for content, imports_ruamel in (("Learned: run the tests with -x", False), ("naïve ünïcode", True)):
        proc = subprocess.run(
            [sys.executable, "-c", probe, *ITERATR_CMD[1:], *args, "--content", content],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        assert proc.stderr.strip().splitlines()[-1] == str(imports_ruamel), proc.stderr
    check_view(tmp_path / ".iteratr")


# -- plain examples -------------------------------------------------------------------------------


def test_an_empty_session_view() -> None:
    text, _ = tasks_view.render(NAME, State())
    assert text == one_shot(State())
    assert safe_load(text) == {"session": NAME, "complete": False, "counts": {}, "tasks": [], "notes": []}
    assert "tasks: []\n" in text
    assert "notes: []\n" in text


def test_tasks_are_in_numeric_id_order_and_long_texts_stay_on_one_line(tmp_path: Path) -> None:
    store = Store(tmp_path, NAME)
    long_text = "a long task text " * 100
    tools.task_add(store, [{"content": f"task {n}"} for n in range(1, 12)] + [{"content": long_text}])
    text = store.tasks_path.read_text()
    positions = [text.index(f"id: TAS-{n}\n") for n in range(1, 13)]
    assert positions == sorted(positions)  # TAS-2 before TAS-10
    assert f"  content: {long_text.strip()}\n" in text


def test_line_separators_in_a_text_survive_the_round_trip(tmp_path: Path) -> None:
    """ruamel writes NEL raw inside single quotes, and its loader then folds it into a space."""
    store = Store(tmp_path, NAME)
    texts = ["nel\x85inside", "Ò6\x85µè", "ls\u2028and ps\u2029inside"]
    tools.task_add(store, [{"content": t} for t in texts])
    assert [t["content"] for t in safe_load(store.tasks_path.read_text())["tasks"]] == texts
    check_view(tmp_path)


def test_a_session_name_that_looks_like_another_type_stays_a_string(tmp_path: Path) -> None:
    for name in ("true", "123", "null", "1e3", "-"):
        store = Store(tmp_path, name)
        tools.task_add(store, [{"content": "x"}])
        assert safe_load(store.tasks_path.read_text())["session"] == name


def state_of(*tasks: tuple[str, str], notes: int = 0) -> State:
    events = [
        make_event(
            "task.added", {"id": tid, "content": content, "status": "remaining", "priority": 0, "depends_on": []}, 0
        )
        for tid, content in tasks
    ]
    events += [
        make_event("note.added", {"id": f"NOT-{n}", "content": f"note {n}", "type": "tip"}, 0)
        for n in range(1, notes + 1)
    ]
    return replay(events)


def test_a_stale_or_foreign_cache_is_not_trusted() -> None:
    state = state_of(("TAS-1", "real"), notes=1)
    clean, good_cache = tasks_view.render(NAME, state)
    stale_tasks = ([("TAS-1", "old", "remaining", 0, ())], [0, 30], "- id: TAS-1\n  content: old\n" + "x" * 3)
    for stale in (
        {"head": (("other", True, ()), "session: other\n"), "tasks": stale_tasks, "notes": "not even a tuple"},
        {"tasks": ([("TAS-1",)], [0, 5], "short")},  # offsets that do not fit the text
        {"tasks": ([], [0], ""), "notes": ([1, 2], [0, 1, 2], "ab")},  # keys that are not tuples
        {"head": "x", "tasks": None, "notes": (1, 2, 3)},
        {"unknown": 1},
    ):
        assert tasks_view.render(NAME, state, stale)[0] == clean, stale
    assert tasks_view.render(NAME, state, good_cache)[0] == clean
    assert tasks_view.render(NAME, state, None)[0] == clean


def test_an_unchanged_section_is_the_same_cache_object() -> None:
    state = state_of(("TAS-1", "a"), ("TAS-2", "b"), notes=2)
    _, cache = tasks_view.render(NAME, state)
    _, again = tasks_view.render(NAME, state, cache)
    assert all(again[label] is cache[label] for label in ("head", "tasks", "notes"))


@pytest.mark.parametrize(
    "after",
    [
        [("TAS-1", "a"), ("TAS-2", "b"), ("TAS-3", "c"), ("TAS-4", "appended: d")],  # appended
        [("TAS-1", "a"), ("TAS-2", "changed: b"), ("TAS-3", "c")],  # changed in the middle
        [("TAS-1", "a"), ("TAS-3", "c")],  # one gone (an older log)
        [("TAS-3", "c"), ("TAS-1", "a")],  # reordered
        [],
    ],
)
def test_every_kind_of_change_renders_like_no_cache(after: list[tuple[str, str]]) -> None:
    before = state_of(("TAS-1", "a"), ("TAS-2", "b"), ("TAS-3", "c"), notes=3)
    _, cache = tasks_view.render(NAME, before)
    state = state_of(*after, notes=len(after))
    text, new_cache = tasks_view.render(NAME, state, cache)
    assert text == tasks_view.render(NAME, state)[0] == one_shot(state)
    assert tasks_view.render(NAME, state, new_cache)[0] == text  # the new cache is right too


def test_write_replaces_the_file_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_text("old content\n")
    tasks_view.write(path, NAME, State(), None)
    assert path.read_text() == one_shot(State())
    assert [p.name for p in tmp_path.iterdir()] == ["tasks.yaml"]


def test_a_view_another_writer_left_stale_is_rendered_by_the_loops_next_append(tmp_path: Path) -> None:
    """Another writer's append is durable but its render did not happen (killed between the two, or a full disk:
    "the next write renders it again"): the loop's next append, bookkeeping or not, renders it."""
    data_dir = tmp_path / ".iteratr"
    loop = Store(data_dir, NAME)
    tools.task_add(loop, [{"content": "a task"}])
    loop.append(make_event("iteration.started", {"n": 1, "kind": "main"}, 1))
    agent = Store(data_dir, NAME)  # an `iteratr tool` call

    def no_render(state: State) -> None:
        raise OSError(28, "No space left on device")

    agent.write_view = no_render  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="the next write renders it again"):
        tools.task_status(agent, "TAS-1", "completed")
    loop.append(make_event("iteration.ended", {"n": 1, "outcome": "ok", "duration": 1.0}, 1))
    check_view(data_dir)
