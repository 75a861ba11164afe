"""``iteratr tool ...``: the commands the agent calls, parsed without click.

The agent runs these dozens of times per iteration, each a fresh Python process. ``import click``
alone costs about 30 ms, two thirds of the time budget of a whole call, so this path has its own
small parser. Names and flags are a contract: the prompt templates teach them to agents.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable

from iteratr import paths, text
from iteratr.errors import UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # see iteratr.state: only mypy needs typing
    from typing import Any

# name -> (summary, [(flag, metavar, required, repeatable)])
COMMANDS: dict[str, tuple[str, list[tuple[str, str, bool, bool]]]] = {
    "task-add": (
        "Add a single task",
        [
            ("--content", "TEXT", True, False),
            ("--status", "STATUS", False, False),
            ("--priority", "P", False, False),
            ("--depends-on", "ID", False, True),
        ],
    ),
    "task-batch-add": (
        "Add several tasks at once, all or nothing",
        [("--tasks", "JSON", True, False)],
    ),
    "task-status": ("Set a task's status", [("--id", "ID", True, False), ("--status", "STATUS", True, False)]),
    "task-priority": (
        "Set a task's priority (0 = lowest, 4 = highest)",
        [("--id", "ID", True, False), ("--priority", "P", True, False)],
    ),
    "task-depends": (
        "Make a task depend on another",
        [("--id", "ID", True, False), ("--depends-on", "ID", True, False)],
    ),
    "task-list": ("List the open tasks grouped by status (--all: every task)", [("--all", "", False, False)]),
    "task-next": ("Show the task to work on next", []),
    "note-add": ("Record a note", [("--content", "TEXT", True, False), ("--type", "TYPE", True, False)]),
    "note-list": (
        "List the last notes, optionally of one type (--all: every one)",
        [("--type", "TYPE", False, False), ("--all", "", False, False)],
    ),
    "iteration-summary": ("Record what this iteration did", [("--summary", "TEXT", True, False)]),
    "session-complete": ("Mark the session complete (refused while tasks are open)", []),
}
COMMON = [
    ("--name", "S", "session name (default: $ITERATR_SESSION)"),
    ("--data-dir", "DIR", "data directory (default: $ITERATR_DATA_DIR or .iteratr)"),
    ("--json", "", "print JSON"),
]
STATUS_HELP = "remaining, in_progress, completed, blocked, cancelled"
# The commands that only read: they also find a session that exists only on its branch (iteratr.branch_log).
READS = ("task-list", "task-next", "note-list")
# Flags that take no value, per subcommand (like --json).
SWITCHES = {"task-list": ("--all",), "note-list": ("--all",)}
TYPE_HELP = "learning, stuck, tip, decision"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "Usage: iteratr tool SUBCOMMAND [--name S] [--data-dir DIR] [--json] [FLAGS]",
        "",
        "Session tools the agent calls during a build.",
        "",
        "Subcommands:",
    ]
    lines += [f"  {name:<{width}}  {summary}" for name, (summary, _) in COMMANDS.items()]
    lines += [
        "",
        "Statuses: " + STATUS_HELP,
        "Note types: " + TYPE_HELP,
        "Priorities: 0..4 (0 = lowest, 4 = highest, default 2)",
        "Exit status: 0 ok, 2 bad input (nothing written).",
        "",
        "Run 'iteratr tool SUBCOMMAND --help' for its flags.",
    ]
    return "\n".join(lines)


def command_usage(name: str) -> str:
    summary, flags = COMMANDS[name]
    parts = [
        f"{flag} {meta}" + (" ..." if rep else "") if req else f"[{f'{flag} {meta}'.strip()}{' ...' if rep else ''}]"
        for flag, meta, req, rep in flags
    ]
    lines = [
        f"Usage: iteratr tool {name} {' '.join(parts)} [--name S] [--data-dir DIR] [--json]".replace("  ", " "),
        "",
        summary + ".",
    ]
    lines += ["", "Common flags:"] + [f"  {f} {m}".rstrip() + f"  {h}" for f, m, h in COMMON]
    return "\n".join(lines)


def parse(name: str, argv: list[str]) -> dict[str, Any]:
    _, flags = COMMANDS[name]
    spec = {flag: (req, rep) for flag, _, req, rep in flags}
    spec.update({"--name": (False, False), "-n": (False, False), "--data-dir": (False, False)})
    opts: dict[str, Any] = {"--json": False}
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, inline = arg.partition("=")
        if flag in ("--json", *SWITCHES.get(name, ())) and not eq:  # switches take no value
            opts[flag] = True
            i += 1
            continue
        if flag not in spec:
            accepted = ", ".join([f for f, *_ in flags] + ["--name", "--data-dir", "--json"])
            what = f"unknown option {flag}" if flag.startswith("-") else f"unexpected argument {arg!r}"
            raise UsageError(f"{what} for `iteratr tool {name}`: accepted {accepted}")
        flag = "--name" if flag == "-n" else flag
        repeatable = spec[flag][1]
        values: list[str] = []
        if eq:
            values.append(inline)
            i += 1
        else:
            i += 1
            if i < len(argv):  # the first value is taken as is, so a text may start with "-"
                values.append(argv[i])
                i += 1
            # A repeatable flag takes every value up to the next flag: `--depends-on TAS-1 TAS-2`.
            while repeatable and i < len(argv) and not argv[i].startswith("-"):
                values.append(argv[i])
                i += 1
        if not values:
            raise UsageError(f"{flag} needs a value (`iteratr tool {name} --help` shows the flags)")
        if repeatable:
            opts.setdefault(flag, []).extend(v for value in values for v in value.replace(",", " ").split())
        elif flag in opts:
            raise UsageError(f"{flag} given twice for `iteratr tool {name}`: give it once")
        else:
            opts[flag] = values[0]
    missing = [f"{flag} {meta}" for flag, meta, req, _ in flags if req and flag not in opts]
    if missing:
        raise UsageError(f"`iteratr tool {name}` needs {', '.join(missing)} (see --help)")
    return opts


def task_line(t: dict[str, Any]) -> str:
    return text.task_line(t["id"], t["priority"], t["status"], t["content"], t["depends_on"])


GROUP_ORDER = ("in_progress", "remaining", "blocked", "completed", "cancelled")


def render_task_list(tasks: list[dict[str, Any]], done: dict[str, int] | None = None) -> str:
    """The tasks by status; ``done``: the completed and cancelled ones only counted (``--all`` lists them)."""
    if not tasks and not done:
        return "no tasks yet"
    lines = []
    for status in GROUP_ORDER:
        group = [t for t in tasks if t["status"] == status]
        if group:
            lines.append(f"{status} ({len(group)}):")
            lines += ["  " + task_line(t) for t in group]
        elif done and done.get(status):
            lines.append(f"{status} ({done[status]}): not listed (task-list --all lists them)")
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    # A short-lived process: the collector would only walk the tens of thousands of objects a big
    # session's state is made of, again and again, for garbage the exit frees anyway.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run(argv)
    finally:
        if collecting:
            gc.enable()


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise UsageError(f"unknown tool subcommand {name!r}: use one of {', '.join(COMMANDS)}")
    if "-h" in rest or "--help" in rest:
        print(command_usage(name))
        return 0
    opts = parse(name, rest)
    # An explicit --name, even an empty one, is what was asked for: it is validated, never replaced.
    session = opts["--name"] if "--name" in opts else os.environ.get("ITERATR_SESSION") or None
    if session is None:
        raise UsageError("no session given: pass --name S or set ITERATR_SESSION")
    from iteratr.session.store import Store

    store = Store(paths.data_dir_from(opts.get("--data-dir")), session)
    result, text = execute(name, store, opts)
    if hasattr(result, "write"):  # note-list --all: every note, written as it is read
        result.write(sys.stdout, as_json=opts["--json"])
    elif opts["--json"]:
        import json  # only here: a text answer from an up-to-date snapshot needs no JSON at all

        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(text() + "\n")
    return 0


def execute(name: str, store: Any, opts: dict[str, Any]) -> tuple[Any, Callable[[], str]]:
    """Run one subcommand against ``store``, as ``iteratr tool`` and ``iteratr mcp`` both do (``dispatch``)."""
    if name not in READS and not store.exists():
        _refuse_write_elsewhere(store)
    return dispatch(name, store, opts)


def dispatch(name: str, store: Any, o: dict[str, Any]) -> tuple[Any, Callable[[], str]]:
    """Run one subcommand: its JSON result, and how to say it in text (only made when asked for)."""
    from iteratr.session import ops as tools

    if name == "task-add":
        entry = {
            "content": o["--content"],
            "status": o.get("--status"),
            "priority": o.get("--priority"),
            "depends_on": o.get("--depends-on", []),
        }
        [task] = tools.task_add(store, [entry])
        return task, lambda: "added " + task_line(task)
    if name == "task-batch-add":
        batch = o["--tasks"]  # JSON text from the command line; already a list from an MCP call
        tasks = tools.task_add(store, batch if isinstance(batch, list) else tools.parse_batch(batch))
        return tasks, lambda: f"added {len(tasks)} task(s):\n" + "\n".join("  " + task_line(t) for t in tasks)
    if name in ("task-status", "task-priority", "task-depends"):
        if name == "task-status":
            task = tools.task_status(store, o["--id"], o["--status"])
        elif name == "task-priority":
            task = tools.task_priority(store, o["--id"], o["--priority"])
        else:
            task = tools.task_depends(store, o["--id"], o["--depends-on"])
        return task, lambda: task_line(task)
    if name == "note-add":
        note = tools.note_add(store, o["--content"], o["--type"])
        return note, lambda: f"added {note['id']} ({note['type']}): {note['content']}"
    if name == "iteration-summary":
        rec = tools.iteration_summary(store, o["--summary"])
        return rec, lambda: f"recorded the summary of iteration #{rec['iteration']}"
    if name == "session-complete":
        rec = tools.session_complete(store)
        return (
            rec,
            lambda: _completion_line(store.name, rec),
        )
    if name == "note-list":
        note_type = o.get("--type")
        if note_type is not None and note_type not in ("learning", "stuck", "tip", "decision"):
            raise UsageError(f"invalid note type {note_type!r}: use one of {TYPE_HELP}")
    state = _read_state(store)  # the rest only read
    if name == "task-list":
        # Done tasks are the session's history: listed with --all; otherwise counted, so a long session's list
        # costs (and fills an agent's context with) what is open, not every task ever closed.
        listed = state.tasks.values() if o.get("--all") else state.tasks.live()
        tasks = [t.to_dict() for t in listed]
        if o.get("--all"):
            return tasks, lambda: render_task_list(tasks)
        counts = state.counts()
        done = {s: counts[s] for s in ("completed", "cancelled") if counts.get(s)}
        return tasks, lambda: render_task_list(tasks, done)
    if name == "task-next":
        chosen, why = tools.task_next(state)
        if chosen is None:
            return None, lambda: f"none: {why}"
        task = chosen.to_dict()
        return task, lambda: f"{task_line(task)}\n({why})"
    if name == "note-list":
        # The last few (an agent's context is no place for 300,000 notes), streamed from the archive; --all writes
        # every one as it is read (iteratr.session.note_list).
        from iteratr.session import note_list

        if o.get("--all"):
            every = note_list.AllNotes(state, note_type)
            return every, every.text
        notes, total = note_list.last_notes(state, note_type)
        return notes, lambda: note_list.listed_text(notes, total, note_type)
    raise AssertionError(name)


def _read_state(store: Any) -> Any:
    """The session's state: from its files here, else (a session known only by its branch) as ``status`` reads it."""
    if store.exists():
        return store.load()
    from iteratr import branch_log

    # Through the worktree's store or the branch's mirror and its snapshot, as status reads it: never the log held.
    found = branch_log.store_of(store.data_dir, store.name)
    if found is None:
        store.require()  # the usual error, naming the sessions there are
        raise AssertionError("require() raises for a session that does not exist")
    return found[1].load()


def _refuse_write_elsewhere(store: Any) -> None:
    """A write needs the session's files on disk here. A new session is created by its first write, as ever; but one
    that exists on its branch is refused, not started again beside it (two logs of one session)."""
    from iteratr import branch_log

    found = branch_log.store_of(store.data_dir, store.name)
    if found is None:
        return
    raise UsageError(
        f"session {store.name!r} has no files in {store.data_dir}: it is on its branch ({found[0]}), "
        f"which only the read commands ({', '.join(READS)}) read; to change it, run this where its branch "
        "is checked out (its build's work tree)"
    )


def _completion_line(name: str, rec: dict[str, Any]) -> str:
    """What ``session-complete`` says: completion is derived, so a blocked task or a waiting message is named."""
    if rec["complete"]:
        return f"session {name} is complete ({rec['tasks']} tasks); the loop stops after this iteration"
    if rec["blocked"]:
        return (
            f"every task of session {name} is closed, but {', '.join(rec['blocked'])} blocked: "
            "the loop stops after this iteration for a person to look at them"
        )
    return f"every task of session {name} is closed, but a user message is waiting: the next iteration reads it"
