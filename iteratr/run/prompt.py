"""Prompts: jinja2 templates, checked before any agent starts, rendered from session state.

Variables are plain text sections (``{{tasks}}`` inserts the rendered task list), as in the Go
original, so a custom template stays simple. Spec text and user messages are values, never
template source: a ``{{ ... }}`` in a spec reaches the agent literally.

Everything rendered is sorted (tasks and notes by numeric id, iterations by number), so the same
state always gives the same prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from iteratr.errors import ConfigError, UsageError
from iteratr.fsutil import atomic_write
from iteratr.session.state import Iteration, Message, State, id_number
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
}
HISTORY_SIZE = 5
NOTES_SIZE = 30


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


def render_tasks(state: State) -> str:
    if not state.tasks:
        return "(no tasks yet)"
    lines = []
    for task in sorted(state.tasks.values(), key=lambda t: id_number(t.id)):
        lines.append("- " + task_line(task.id, task.priority, task.status, task.content, task.depends_on))
    counts = ", ".join(f"{n} {s}" for s, n in state.counts().items() if n)
    return "\n".join(lines) + f"\n({len(state.tasks)} tasks: {counts})"


def render_notes(state: State) -> str:
    notes = sorted(state.notes, key=lambda n: id_number(n.id))[-NOTES_SIZE:]
    if not notes:
        return "(no notes yet)"
    return "\n".join(f"- {n.id} [{n.type}, #{n.iteration}] {n.content}" for n in notes)


def describe_iteration(it: Iteration) -> str:
    outcome = it.outcome or "unfinished"
    if it.error:
        outcome += f": {it.error}"
    head = f"#{it.n} {it.kind}, {clock(it.started_ts)}, {duration_text(it.duration)}, {outcome}"
    return f"- {head}" + (f"\n  {it.summary}" if it.summary else "")


def render_history(state: State, limit: int = HISTORY_SIZE) -> str:
    done = [state.iterations[n] for n in sorted(state.iterations) if state.iterations[n].outcome is not None]
    if not done:
        return "(this is the first iteration)"
    return "\n".join(describe_iteration(it) for it in done[-limit:])


def render_messages(messages: Sequence[Message]) -> str:
    parts = []
    for msg in sorted(messages, key=lambda m: id_number(m.id)):
        body = msg.text.strip().replace("\n", "\n  ")
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
) -> dict[str, Any]:
    return {
        "session": session,
        "iteration": iteration,
        "spec": spec,
        "tasks": render_tasks(state),
        "notes": render_notes(state),
        "history": render_history(state),
        "messages": render_messages(state.pending_messages()),
        "hooks": hooks,
        "failure": failure,
        "extra": extra,
        "binary": binary,
        "next_task_number": state.last_task_num + 1,
        "port": "",
    }
