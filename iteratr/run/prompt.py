"""Prompts: jinja2 templates, checked before any agent starts, rendered from session state.

Variables are plain text sections (``{{tasks}}`` inserts the rendered task list), as in the Go
original, so a custom template stays simple. Spec text and user messages are values, never
template source: a ``{{ ... }}`` in a spec reaches the agent literally.

Everything rendered is sorted (tasks and notes by numeric id, iterations by number), so the same
state always gives the same prompt.

The prompt costs what it must, no more: every iteration pays for it again. Open tasks are listed in full;
closed ones (completed, cancelled) as a count and the last few, with ``task-list`` for the rest; single notes,
summaries, errors, messages and hook output are capped (``CAPS``), their full text staying in the log. So a
prompt grows with the open work, never with the history (tests/run/test_prompt.py holds a bound).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from iteratr.errors import ConfigError, UsageError
from iteratr.fsutil import atomic_write
from iteratr.session.state import DONE_STATUSES, RECENT_NOTES, WINDOW, Iteration, Message, State, id_number
from iteratr.text import clock, task_line
from iteratr.text import duration_text as duration_text  # old name: run/loop.py and run/attempt.py use it

VARIABLES = {
    "session": "session name",
    "iteration": "iteration number",
    "spec": "the spec file's text",
    "tasks": "the task list",
    "notes": "notes from earlier iterations",
    "history": "recent iterations with their summaries",
    "messages": "messages from the user not yet delivered (empty if none)",
    "hooks": "piped output of hooks (empty if none)",
    "failure": "why the previous attempt failed, on a retry (empty otherwise)",
    "extra": "--extra-instructions text",
    "binary": "command line that runs this iteratr",
    "next_task_number": "number the next added task will get",
    "port": "always empty: kept for templates written for the Go original, which had a NATS port",
    "progress": "how many iterations in a row made no progress, and what to do then (empty otherwise)",
    "mcp": "how the agent names iteratr's MCP tools (e.g. iteratr_, for iteratr_task_add); empty: no MCP tools",
}
HISTORY_SIZE = 5
NOTES_SIZE = 30
CLOSED_SHOWN = 5  # closed tasks listed by line; the rest are a count
# Characters of one item in the prompt; the full text stays in the event log (and `iteratr tool` shows it).
CAPS = {"note": 300, "summary": 600, "error": 600, "closed_task": 200, "message": 4000, "hooks": 4000, "failure": 4000}


def cap(text: str, kind: str) -> str:
    """``text`` cut to its cap (``CAPS``), saying how much was left out; hook output keeps its tail."""
    limit = CAPS[kind]
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    if kind in ("hooks", "failure"):  # the end of a test run's output is where the failures are
        return f"[... {cut} characters cut; the full text is in the session log]\n" + text[-limit:]
    return text[:limit] + f" [... {cut} more characters in the session log]"


def builtin_source(kind: str) -> str:
    return (resources.files("iteratr") / "templates" / f"{kind}.md.j2").read_text(encoding="utf-8")


def write_default_template(path: Path, *, force: bool) -> Path:
    if path.exists() and not force:
        raise UsageError(f"{path} exists: pass --force to overwrite it, or choose another path with -o")
    atomic_write(path, builtin_source("default"))
    return path


class Template:
    """A checked template: syntax, variable names and a trial render are verified when it is loaded,
    so a broken template stops the run (exit 2) before any agent starts, not in the middle of it."""

    def __init__(self, source: str, origin: str) -> None:
        import jinja2
        from jinja2 import meta

        self.origin = origin
        env = jinja2.Environment(
            undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False, trim_blocks=False
        )
        try:
            parsed = env.parse(source, name=origin)
            unknown = sorted(meta.find_undeclared_variables(parsed) - set(VARIABLES))
            # Compiled with the origin as file name, so a render error's traceback gives the template's line.
            code = env.compile(source, name=origin, filename=origin)
        except jinja2.TemplateSyntaxError as exc:  # also an unknown filter or test (TemplateAssertionError)
            raise ConfigError(f"{origin}:{exc.lineno}: template syntax error: {exc.message}") from None
        if unknown:
            name = unknown[0]
            line = next((ln for ln, kind, value in env.lex(source) if kind == "name" and value == name), 0)
            raise ConfigError(f"{origin}:{line}: unknown template variable {name!r}; variables: {', '.join(VARIABLES)}")
        self._template = env.template_class.from_code(env, code, env.make_globals(None), None)
        self.render(_SAMPLE)

    def render(self, context: dict[str, Any]) -> str:
        try:
            return self._template.render(**{**dict.fromkeys(VARIABLES, ""), **context})
        except Exception as exc:  # an attribute that is not there, a type error, an include: the template's fault
            line = _template_line(exc, self.origin)
            where = f"{self.origin}:{line}" if line else self.origin
            raise ConfigError(f"{where}: template error: {exc}") from None


# Every variable non-empty, so a trial render goes through each `{% if var %}` branch.
_SAMPLE: dict[str, Any] = {
    **{name: f"<{name}>" for name in VARIABLES},
    "iteration": 1,
    "next_task_number": 1,
    "port": "",
}


def _template_line(exc: BaseException, origin: str) -> int | None:
    """The template line of a render error: jinja2 rewrites the traceback to point into the template."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == origin:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def load(path: Path | None, kind: str) -> Template:
    if path is None:
        return Template(builtin_source(kind), f"<built-in {kind} template>")
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"template {path} not found", hint="`iteratr gen-template -o PATH` writes one") from None
    except UnicodeDecodeError:
        raise ConfigError(f"template {path} is not UTF-8 text") from None
    return Template(source, str(path))


def read_spec(path: Path) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"spec {path} not found", hint="pass --spec PATH, or create specs/SPEC.md") from None
    except IsADirectoryError:
        raise UsageError(f"spec {path} is a directory: pass a Markdown file") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"spec {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise UsageError(f"spec {path} is empty: describe the work and list its tasks as `- [ ] ...` lines")
    return text


# -- sections ----------------------------------------------------------------------------------


def render_tasks(state: State, binary: str = "iteratr", mcp: str = "") -> str:
    """Open tasks in full; closed ones (completed, cancelled) in full only while they are few."""
    if not state.tasks:
        return "(no tasks yet)"
    # The counts and the live tasks, never every task: the done ones of a long session are history.
    counted = state.counts()
    closed_count = sum(n for s, n in counted.items() if s in DONE_STATUSES)
    lines = []
    few = closed_count <= CLOSED_SHOWN
    live = state.tasks.live()
    shown = sorted([*live, *state.tasks.last_done(closed_count)], key=lambda t: id_number(t.id)) if few else live
    for task in shown:
        lines.append("- " + task_line(task.id, task.priority, task.status, task.content, task.depends_on))
    if not few:
        kinds = ", ".join(f"{n} {s}" for s, n in counted.items() if n and s in DONE_STATUSES)
        lines.append(f"Closed: {closed_count} tasks ({kinds}). The last {CLOSED_SHOWN}:")
        for task in state.tasks.last_done(CLOSED_SHOWN):
            content = cap(task.content, "closed_task")
            lines.append("- " + task_line(task.id, task.priority, task.status, content, task.depends_on))
        every = f'`{mcp}task_list` with `{{"all": true}}`' if mcp else f"`{binary} tool task-list --all`"
        lines.append(f"{every} shows every task.")
    counts = ", ".join(f"{n} {s}" for s, n in state.counts().items() if n)
    return "\n".join(lines) + f"\n({len(state.tasks)} tasks: {counts})"


def render_notes(state: State) -> str:
    # The last notes in the log, kept live (never every note), in id order as a shuffled log would have them.
    notes = sorted(state.recent_notes(RECENT_NOTES), key=lambda n: id_number(n.id))[-NOTES_SIZE:]
    if not notes:
        return "(no notes yet)"
    return "\n".join(f"- {n.id} [{n.type}, #{n.iteration}] {cap(n.content, 'note')}" for n in notes)


def describe_iteration(it: Iteration) -> str:
    outcome = it.outcome or "unfinished"
    if it.error:
        outcome += f": {cap(it.error, 'error')}"
    head = f"#{it.n} {it.kind}, {clock(it.started_ts)}, {duration_text(it.duration)}, {outcome}"
    return f"- {head}" + (f"\n  {cap(it.summary, 'summary')}" if it.summary else "")


def render_history(state: State, limit: int = HISTORY_SIZE) -> str:
    done = [it for it in state.recent_iterations(WINDOW) if it.outcome is not None]  # live: never every iteration
    if len(done) < limit and state.current_iteration >= WINDOW:  # too few ended lately: look further back
        done = [state.iterations[n] for n in sorted(state.iterations) if state.iterations[n].outcome is not None]
    if not done:
        return "(this is the first iteration)"
    return "\n".join(describe_iteration(it) for it in done[-limit:])


def render_messages(messages: Sequence[Message]) -> str:
    parts = []
    for msg in sorted(messages, key=lambda m: id_number(m.id)):
        body = cap(msg.text.strip(), "message").replace("\n", "\n  ")
        parts.append(f"- {msg.id}, {clock(msg.ts)}:\n  {body}")
    return "\n".join(parts)


def context(
    *,
    session: str,
    iteration: int,
    spec: str,
    state: State,
    binary: str,
    extra: str = "",
    hooks: str = "",
    failure: str = "",
    progress: str = "",
    mcp: str | None = None,
) -> dict[str, Any]:
    """The template's variables. ``mcp``: how the agent names iteratr's MCP tools (``AgentInfo.mcp_prefix``); with
    it the prompt teaches those tools, without it the ``iteratr tool`` shell commands."""
    return {
        "session": session,
        "iteration": iteration,
        "spec": spec,
        "tasks": render_tasks(state, binary, mcp or ""),
        "notes": render_notes(state),
        "history": render_history(state),
        "messages": render_messages(state.pending_messages()),
        "hooks": cap(hooks, "hooks"),
        "failure": cap(failure, "failure"),
        "extra": extra,
        "binary": binary,
        "next_task_number": state.last_task_num + 1,
        "port": "",
        "progress": progress,
        "mcp": mcp or "",
    }


# What the user wrote reaches the agent as written: a message or spec naming a credential is the user's choice.
USERS_OWN = frozenset({"spec", "messages", "extra", "binary", "session"})


def masked(context: dict[str, Any], mask: Callable[[str], str]) -> dict[str, Any]:
    """``context`` with secret-looking environment values masked in every section the agent or a hook wrote
    (hook output, the last failure, tasks, notes, history): the prompt is written to the agent and its log."""
    return {k: mask(v) if isinstance(v, str) and k not in USERS_OWN else v for k, v in context.items()}


def stall_text(spent: int, limit: int, task: str | None) -> str:
    """What the prompt says after ``spent`` iterations in a row without progress (empty before the first)."""
    if not spent:
        return ""
    on = f" on {task}" if task else ""
    stop = f" The run stops for a person after {limit} in a row." if limit else ""
    many = f"{spent} or more" if not limit and spent >= WINDOW else f"{spent}"  # counted over the live window only
    return (
        f"The last {many} iteration(s){on} made no progress: no task was completed, cancelled or added, and "
        f"the work tree did not change.{stop} Do not repeat what did not work. Either split the task into "
        "smaller ones (`task-add`, then cancel this one), or mark it `blocked` with a `stuck` note saying what "
        "a person must do, or change your approach."
    )
