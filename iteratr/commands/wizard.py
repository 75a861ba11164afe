"""The build wizard: asks what ``iteratr build`` is missing and returns the completed request.

It runs when ``iteratr build`` has no ``--spec``, ``specs/SPEC.md`` does not exist and there is a
terminal (``iteratr.commands.build.wants_wizard`` decides, the CLI asks). It asks, skipping what a flag
already gave: 1. the spec (Markdown files under ``specs/`` and here), 2. the model, 3. the template
(built-in, or a copy edited in ``$EDITOR`` and saved as ``.iteratr.template`` once it passes the template
check), 4. the session name and iterations. It prints the equivalent ``iteratr build`` command and returns
the request; it never runs the build itself.

Ctrl+C (or end of input) at any question returns None and writes nothing: the edited template copy lives
in a temporary directory until every question is answered.

This module and ``iteratr.commands.setup`` are the only ones that import questionary, always inside
functions. Questions go through prompt_toolkit's current app session, so tests drive them with a pipe
input.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import tempfile
from pathlib import Path

from iteratr.commands import questions
from iteratr.commands.build import DEFAULT_SPEC, BuildRequest
from iteratr.commands.questions import Echo, ask
from iteratr.errors import ConfigError, UsageError
from iteratr.output import Printer

TEMPLATE_FILE = ".iteratr.template"
_SPEC_DIR = "specs"


def ask_build(request: BuildRequest, out: Printer | None = None) -> BuildRequest | None:
    """``request`` with what it lacks asked for; None when the person cancelled (nothing was written)."""
    out = out or Printer()
    try:
        chosen, template_text = _ask_build(request, out.line)
    except (questions.Cancelled, KeyboardInterrupt):
        questions.cancelled("the build wizard")
        return None
    if template_text is not None:
        _write_text(Path.cwd() / TEMPLATE_FILE, template_text)
        out.line(f"saved the edited template as {TEMPLATE_FILE}")
    out.line("the same build without the wizard:")
    out.line("  " + shlex.join(chosen.command_line()), "head")
    return chosen


def _ask_build(request: BuildRequest, echo: Echo) -> tuple[BuildRequest, str | None]:
    import questionary

    from iteratr import paths
    from iteratr.commands import build

    cwd = Path.cwd()
    cfg = build.load_config(request, cwd)
    echo(f"no --spec given and {DEFAULT_SPEC} does not exist: a few questions (Ctrl+C cancels)")

    echo("1/4 spec")
    spec = _ask_spec(cwd)
    chosen = dataclasses.replace(request, spec=spec)

    echo("2/4 model")
    if request.model is None:
        model = questions.ask_model(cfg.agent_argv, cfg.model, echo)
        chosen = dataclasses.replace(chosen, model=model if model != cfg.model else None)
    else:
        echo(f"  --model {request.model}")

    echo("3/4 prompt template")
    template_text = None
    if request.template is None:
        template, template_text = _ask_template(cwd, cfg.template, echo)
        chosen = dataclasses.replace(chosen, template=template if template != cfg.template else None)
    else:
        echo(f"  --template {request.template}")

    echo("4/4 session name and iterations")
    default_name = paths.session_name_from_spec(spec)
    if request.name is None:
        name = str(ask(questionary.text("Session name:", default=default_name, validate=_valid_name))).strip()
        chosen = dataclasses.replace(chosen, name=name if name != default_name else None)
    if request.iterations is None:
        question = "Iterations to run now (0 = until done):"
        answer = ask(questionary.text(question, default=str(cfg.iterations), validate=_valid_count))
        count = int(str(answer).strip())
        chosen = dataclasses.replace(chosen, iterations=count if count != cfg.iterations else None)
    return chosen, template_text


def _valid_name(text: str) -> bool | str:
    from iteratr import paths

    return True if paths.NAME_RE.fullmatch(text.strip()) else f"use {paths.NAME_RULE}"


def _valid_count(text: str) -> bool | str:
    return True if text.strip().isdigit() else "a whole number >= 0 (0 = until the spec is done)"


def find_specs(cwd: Path) -> list[str]:
    """Markdown files under specs/ (any depth), then those directly here; relative paths, hidden ones skipped."""
    found: list[str] = []
    spec_dir = cwd / _SPEC_DIR
    if spec_dir.is_dir():
        for path in sorted(spec_dir.rglob("*.md")):
            rel = path.relative_to(cwd)
            if path.is_file() and not any(part.startswith(".") for part in rel.parts):
                found.append(str(rel))
    found += sorted(p.name for p in cwd.glob("*.md") if p.is_file() and not p.name.startswith("."))
    return found


def _valid_spec(text: str) -> bool | str:
    from iteratr.run import prompt

    if not text.strip():
        return "type the path of a Markdown file"
    try:
        prompt.read_spec(Path.cwd() / text.strip())
    except UsageError as exc:
        return exc.message
    return True


def _ask_spec(cwd: Path) -> str:
    import questionary

    specs = [s for s in find_specs(cwd) if _valid_spec(s) is True]
    if not specs:
        return str(
            ask(questionary.path("Spec file (no Markdown file found in specs/ or here):", validate=_valid_spec))
        ).strip()
    other = "\0other"
    choices = [questionary.Choice(s, value=s) for s in specs] + [questionary.Choice("another file ...", value=other)]
    long = len(choices) > questions.LONG_LIST
    answer = ask(
        questionary.select(
            "Spec file" + (" (type to search):" if long else ":"),
            choices=choices,
            use_search_filter=long,
            use_jk_keys=not long,
        )
    )
    if answer == other:
        answer = ask(questionary.path("Spec file:", validate=_valid_spec))
    return str(answer).strip()


def _ask_template(cwd: Path, configured: str, echo: Echo) -> tuple[str, str | None]:
    """The template path for the ``template`` key ("" = built-in), and the edited text to save, if any."""
    import questionary

    builtin, edit = "\0builtin", "\0edit"
    existing = cwd / TEMPLATE_FILE
    choices = [questionary.Choice("the built-in template", value=builtin)]
    if configured:
        choices.insert(0, questionary.Choice(f"keep {configured} (from the config)", value=configured))
    if existing.is_file() and Path(configured or "").resolve() != existing.resolve():
        choices.append(questionary.Choice(f"use {TEMPLATE_FILE} (already here)", value=TEMPLATE_FILE))
    start = "editing a copy of " + (TEMPLATE_FILE if existing.is_file() else "the built-in template")
    choices.append(questionary.Choice(f"edit it in $EDITOR ({start}, saved as {TEMPLATE_FILE})", value=edit))
    answer = str(ask(questionary.select("Prompt template:", choices=choices)))
    if answer == builtin:
        return "", None
    if answer != edit:
        return answer, None
    from iteratr.run import prompt

    source = existing.read_text(encoding="utf-8") if existing.is_file() else prompt.builtin_source("default")
    text = _edit_until_valid(source, echo)
    return ("", None) if text is None else (TEMPLATE_FILE, text)


def _edit_until_valid(source: str, echo: Echo) -> str | None:
    """Edit a temporary copy until it passes the template check. None: the user chose the built-in one."""
    import questionary

    from iteratr.run import prompt

    with tempfile.TemporaryDirectory(prefix="iteratr-template-") as tmp:
        path = Path(tmp) / TEMPLATE_FILE
        path.write_text(source, encoding="utf-8")
        while True:
            problem = _run_editor(path)
            if problem is None:
                text = path.read_text(encoding="utf-8", errors="replace")
                try:
                    prompt.Template(text, TEMPLATE_FILE)  # the check iteratr.prompt.load makes
                    return text
                except ConfigError as exc:
                    problem = exc.message
            echo(f"the template cannot be used: {problem}")
            again = ask(
                questionary.select(
                    "What now?",
                    choices=[
                        questionary.Choice("edit it again", value=True),
                        questionary.Choice("use the built-in template", value=False),
                    ],
                )
            )
            if not again:
                return None


def _run_editor(path: Path) -> str | None:
    """Open ``path`` in $VISUAL / $EDITOR (vi if unset). A problem as one line, or None."""
    command = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return f"cannot parse the editor command {command!r}: {exc}"
    if not argv:
        return "the editor command ($VISUAL / $EDITOR) is empty"
    try:
        from iteratr import procs

        code = procs.run_in_foreground([*argv, str(path)])  # the editor needs the terminal
    except OSError as exc:
        return f"cannot run the editor {argv[0]!r} ($VISUAL / $EDITOR): {exc.strerror or exc}"
    return None if code == 0 else f"the editor {argv[0]!r} exited with status {code}"


def _write_text(path: Path, text: str) -> None:
    from iteratr import fsutil

    fsutil.atomic_write(path, text, mode=0o666)  # a new file like any other: 0o666 minus the umask
