"""The interactive questions: ``iteratr setup`` and the build wizard. The only module that imports questionary.

``setup`` asks for the model (from the list the agent offers, see ``iteratr.models``) and auto-commit,
then writes the global config file or ``./iteratr.yml`` in place (comments and key order kept).

The build wizard runs when ``iteratr build`` has no ``--spec``, ``specs/SPEC.md`` does not exist and
there is a terminal (``iteratr.buildcmd`` decides). It asks, skipping what a flag already gave:
1. the spec (Markdown files under ``specs/`` and here), 2. the model, 3. the template (built-in, or a
copy edited in ``$EDITOR`` and saved as ``.iteratr.template`` once it passes the template check),
4. the session name and iterations. It prints the equivalent ``iteratr build`` command, then runs it.

Ctrl+C (or end of input) at any question exits 130 and writes nothing: the edited template copy
lives in a temporary directory until every question is answered.

Questions go through prompt_toolkit's current app session, so tests drive them with a pipe input.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iteratr.errors import EXIT_INTERRUPTED, ConfigError, UsageError

Echo = Callable[[str], None]
LONG_LIST = 15  # longer lists of choices get type-to-search
TEMPLATE_FILE = ".iteratr.template"
_SPEC_DIR = "specs"


class _Cancelled(Exception):
    """Ctrl+C or end of input at a question."""


def is_interactive() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _ask(question: Any) -> Any:
    try:
        answer = question.unsafe_ask()
    except (KeyboardInterrupt, EOFError):
        raise _Cancelled() from None
    if answer is None:
        raise _Cancelled()
    return answer


def _cancelled(what: str) -> int:
    print(f"iteratr: {what} cancelled; nothing was written", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED


# -- setup ------------------------------------------------------------------------------------------------


def setup(project: bool, force: bool, echo: Echo, *, interactive: bool | None = None) -> int:
    """``iteratr setup``: ask for model and auto-commit, write the config file. ``interactive`` is for tests."""
    from iteratr import config

    target = config.project_config_path(Path.cwd()) if project else config.global_config_path()
    if not (is_interactive() if interactive is None else interactive):
        raise UsageError(
            "iteratr setup asks questions and needs a terminal; without one, set the model with "
            "ITERATR_MODEL=provider/model or `iteratr build --model provider/model` (auto-commit: "
            f"ITERATR_AUTO_COMMIT=false or --no-auto-commit), or write 'model: provider/model' into {target}"
        )
    try:
        return _setup(target, project, force, echo)
    except (_Cancelled, KeyboardInterrupt):
        return _cancelled("setup")


def _setup(target: Path, project: bool, force: bool, echo: Echo) -> int:
    import questionary

    from iteratr import config

    cfg = _config_for_setup(project, force, echo)
    existing: dict[str, object] = {}
    if target.exists() and not force:
        try:
            existing = {name: value for name, (value, _line) in config.read_config_file(target).items()}
        except ConfigError as exc:
            raise ConfigError(exc.message, hint=_force_hint(project)) from None
        echo(f"updating {target} (its other keys and comments stay; --force starts it over)")
    else:
        echo(f"writing {target}" + (" afresh (--force)" if force and target.exists() else ""))

    default_model = existing.get("model", cfg.model)
    model = ask_model(cfg.agent_argv, str(default_model or ""), echo)
    auto_commit = _ask(
        questionary.confirm(
            "Commit the agent's work after every iteration (auto_commit)?",
            default=bool(existing.get("auto_commit", cfg.auto_commit)),
        )
    )
    config.write_config_file(target, {"model": model, "auto_commit": bool(auto_commit)}, force=force)
    shown_model = model or '"" (the agent\'s default)'
    echo(f"wrote {target}: model: {shown_model}, auto_commit: {'true' if auto_commit else 'false'}")
    overridden = [key.env for key in (config.KEYS["model"], config.KEYS["auto_commit"]) if os.environ.get(key.env)]
    if overridden:
        echo(f"note: {' and '.join(overridden)} set in the environment win over the file (see `iteratr config`)")
    return 0


def _force_hint(project: bool) -> str:
    command = "iteratr setup --project" if project else "iteratr setup"
    return f"fix it, or start it over with `{command} --force`"


def _config_for_setup(project: bool, force: bool, echo: Echo) -> Any:
    """The resolved config (for the agent command and the defaults). With --force a broken file is no obstacle."""
    from iteratr import config

    try:
        return config.load_config(cwd=Path.cwd())
    except ConfigError as exc:
        if not force:
            raise ConfigError(exc.message, hint=_force_hint(project)) from None
        echo(f"warning: {exc.message}; the questions start from the defaults")
        # No config file at all: the environment's settings (if valid) over the defaults.
        nowhere = "/nonexistent-iteratr-dir"
        env = {k: v for k, v in os.environ.items() if k.startswith(config.ENV_PREFIX)} | {"XDG_CONFIG_HOME": nowhere}
        try:
            return config.load_config(cwd=Path(nowhere), env=env)
        except ConfigError:
            return config.Config({n: config.Resolved(k.default, "default") for n, k in config.KEYS.items()})


# -- the model question (setup and the wizard) ------------------------------------------------------------


def ask_model(agent_argv: list[str], default: str, echo: Echo) -> str:
    """Ask for a model among those the agent offers; free text when no list can be had. "" = agent's default."""
    import questionary

    from iteratr.agent import models

    timeout = models.probe_timeout()
    echo(f"asking the agent which models it offers: {shlex.join(agent_argv)} (up to {timeout:g} s) ...")
    found = models.find_models(agent_argv, cwd=Path.cwd(), env=os.environ, timeout=timeout)
    for problem in found.problems:
        echo(f"  {problem}")
    if not found.models:
        echo(
            "no list of models to choose from: type a model id as the agent names it "
            "(e.g. anthropic/claude-sonnet-4-5), or leave it empty for the agent's default"
        )
        return str(_ask(questionary.text("Model:", default=default))).strip()

    echo(f"{len(found.models)} models offered by {found.source}")
    if default and default not in found.models:
        echo(f"  note: the configured model {default!r} is not among them")
        default = ""
    agent_default = "(the agent's default" + (f": {found.current})" if found.current else ")")
    if len(found.models) <= LONG_LIST:
        choices = [questionary.Choice(agent_default, value=""), *(questionary.Choice(m, value=m) for m in found.models)]
        return str(_ask(questionary.select("Model:", choices=choices, default=default)))

    from prompt_toolkit.completion import FuzzyWordCompleter

    offered = found.models

    def valid(text: str) -> bool | str:
        matches = match_models(text, offered)
        if not text.strip() or len(matches) == 1:
            return True
        if not matches:
            return "no offered model matches; Tab lists them (empty = the agent's default)"
        return f"{len(matches)} models match ({', '.join(matches[:3])}, ...): type more, or Tab to pick one"

    answer = _ask(
        questionary.autocomplete(
            f"Model (type to search {len(offered)} models, Tab to pick; empty = {agent_default.strip('()')}):",
            choices=offered,
            default=default,
            completer=FuzzyWordCompleter(offered, WORD=True),
            validate=valid,
        )
    )
    text = str(answer).strip()
    return match_models(text, offered)[0] if text else ""


def match_models(text: str, offered: list[str]) -> list[str]:
    """Models matching typed text: the exact id, else those containing it, else a fuzzy (in-order) match."""
    text = text.strip()
    if not text:
        return []
    if text in offered:
        return [text]
    lower = text.lower()
    containing = [m for m in offered if lower in m.lower()]
    if containing:
        return containing
    fuzzy = re.compile(".*?".join(re.escape(ch) for ch in lower))
    return [m for m in offered if fuzzy.search(m.lower())]


# -- the build wizard -------------------------------------------------------------------------------------


def build_wizard(flags: dict[str, Any]) -> int:
    """Ask for what ``iteratr build`` is missing, print the equivalent command line, run it."""
    from iteratr.output import Printer

    out = Printer()
    try:
        chosen, template_text = _ask_build(flags, out.line)
    except (_Cancelled, KeyboardInterrupt):
        return _cancelled("the build wizard")
    if template_text is not None:
        _write_text(Path.cwd() / TEMPLATE_FILE, template_text)
        out.line(f"saved the edited template as {TEMPLATE_FILE}")
    out.line("the same build without the wizard:")
    out.line("  " + shlex.join(command_line(chosen)), "head")
    from iteratr.commands import build as buildcmd

    return buildcmd.build(chosen)


def _ask_build(flags: dict[str, Any], echo: Echo) -> tuple[dict[str, Any], str | None]:
    import questionary

    from iteratr import config, paths
    from iteratr.commands import build as buildcmd

    cwd = Path.cwd()
    cfg = config.load_config(cwd=cwd, flags={k: flags[k] for k in buildcmd.CONFIG_FLAGS if flags.get(k) is not None})
    chosen = dict(flags)
    echo(f"no --spec given and {buildcmd.DEFAULT_SPEC} does not exist: a few questions (Ctrl+C cancels)")

    echo("1/4 spec")
    spec = _ask_spec(cwd)
    chosen["spec"] = spec

    echo("2/4 model")
    if flags.get("model") is None:
        model = ask_model(cfg.agent_argv, cfg.model, echo)
        chosen["model"] = model if model != cfg.model else None
    else:
        echo(f"  --model {flags['model']}")

    echo("3/4 prompt template")
    template_text = None
    if flags.get("template") is None:
        template, template_text = _ask_template(cwd, cfg.template)
        chosen["template"] = template if template != cfg.template else None
    else:
        echo(f"  --template {flags['template']}")

    echo("4/4 session name and iterations")
    default_name = paths.session_name_from_spec(spec)
    if flags.get("name") is None:
        name = str(_ask(questionary.text("Session name:", default=default_name, validate=_valid_name))).strip()
        chosen["name"] = name if name != default_name else None
    if flags.get("iterations") is None:
        question = "Iterations to run now (0 = until done):"
        answer = _ask(questionary.text(question, default=str(cfg.iterations), validate=_valid_count))
        count = int(str(answer).strip())
        chosen["iterations"] = count if count != cfg.iterations else None
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
            _ask(questionary.path("Spec file (no Markdown file found in specs/ or here):", validate=_valid_spec))
        ).strip()
    other = "\0other"
    choices = [questionary.Choice(s, value=s) for s in specs] + [questionary.Choice("another file ...", value=other)]
    long = len(choices) > LONG_LIST
    answer = _ask(
        questionary.select(
            "Spec file" + (" (type to search):" if long else ":"),
            choices=choices,
            use_search_filter=long,
            use_jk_keys=not long,
        )
    )
    if answer == other:
        answer = _ask(questionary.path("Spec file:", validate=_valid_spec))
    return str(answer).strip()


def _ask_template(cwd: Path, configured: str) -> tuple[str, str | None]:
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
    answer = str(_ask(questionary.select("Prompt template:", choices=choices)))
    if answer == builtin:
        return "", None
    if answer != edit:
        return answer, None
    from iteratr.run import prompt

    source = existing.read_text(encoding="utf-8") if existing.is_file() else prompt.builtin_source("default")
    text = _edit_until_valid(source)
    return ("", None) if text is None else (TEMPLATE_FILE, text)


def _edit_until_valid(source: str) -> str | None:
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
            print(f"the template cannot be used: {problem}", flush=True)
            again = _ask(
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
        # The editor needs the terminal, so it inherits our stdin and stdout.
        code = subprocess.call([*argv, str(path)])
    except OSError as exc:
        return f"cannot run the editor {argv[0]!r} ($VISUAL / $EDITOR): {exc.strerror or exc}"
    return None if code == 0 else f"the editor {argv[0]!r} exited with status {code}"


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# The build options in the order `iteratr build --help` lists them: (key, option, kind).
_OPTIONS = [
    ("spec", "--spec", "value"),
    ("name", "--name", "value"),
    ("template", "--template", "value"),
    ("extra", "--extra-instructions", "value"),
    ("iterations", "--iterations", "value"),
    ("model", "--model", "value"),
    ("agent", "--agent", "value"),
    ("headless", "--headless", "flag"),
    ("auto_commit", "--auto-commit", "bool"),
    ("reset", "--reset", "flag"),
    ("worktree", "--worktree", "flag"),
    ("data_dir", "--data-dir", "value"),
    ("push", "--push", "joined"),
    ("log_file", "--log-file", "value"),
]


def command_line(flags: dict[str, Any]) -> list[str]:
    """The ``iteratr build`` command line that gives ``flags`` (None and False flags are left out)."""
    argv = ["iteratr", "build"]
    for key, option, kind in _OPTIONS:
        value = flags.get(key)
        if value is None:
            continue
        if kind == "flag":
            if value:
                argv.append(option)
        elif kind == "bool":
            argv.append(option if value else "--no-" + option[2:])
        elif kind == "joined":  # --push takes an optional value, so it must be attached
            argv.append(f"{option}={value}")
        else:
            argv += [option, str(value)]
    return argv
