"""``iteratr setup``: ask for the agent (the presets found on PATH), the model (from the list the agent offers) and
auto-commit, save them.

It writes the global config file, or the project's ``iteratr.yml`` (at the top of the work tree) with
``--project``, in place: comments and key order are kept. ``--force`` starts the file over, and also gets
past a config file too broken to read. Ctrl+C at any question exits 130 and writes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from iteratr import config, paths, trust
from iteratr.agent import presets
from iteratr.commands import questions
from iteratr.commands import trust as trust_cmd
from iteratr.errors import ConfigError, UsageError
from iteratr.output import Printer, is_interactive


def run(*, project: bool, force: bool, out: Printer | None = None, interactive: bool | None = None) -> int:
    """``iteratr setup``. ``interactive`` overrides the terminal check, for tests."""
    out = out or Printer()
    target = config.project_config_path(Path.cwd()) if project else config.global_config_path()
    if not (is_interactive() if interactive is None else interactive):
        raise UsageError(
            "iteratr setup asks questions and needs a terminal; without one, set the model with "
            "ITERATR_MODEL=provider/model or `iteratr build --model provider/model` (auto-commit: "
            f"ITERATR_AUTO_COMMIT=false or --no-auto-commit), or write 'model: provider/model' into {target}"
        )
    try:
        return _setup(target, project, force, out)
    except (questions.Cancelled, KeyboardInterrupt):
        return questions.cancelled("setup")


def _setup(target: Path, project: bool, force: bool, out: Printer) -> int:
    import questionary

    cfg = _config_for_setup(project, force, out)
    existing: dict[str, object] = {}
    if target.exists() and not force:
        try:
            existing = {name: value for name, (value, _line) in config.read_config_file(target).items()}
        except ConfigError as exc:
            raise ConfigError(exc.message, hint=_force_hint(project)) from None
        out.line(f"updating {target} (its other keys and comments stay; --force starts it over)")
    else:
        out.line(f"writing {target}" + (" afresh (--force)" if force and target.exists() else ""))

    default_model = existing.get("model", cfg.model)
    # Listing the models starts the agent: a repository's own `agent:` (iteratr.yml) must be trusted first.
    trust_cmd.gate(
        paths.work_tree_top(Path.cwd()), printer=out, ask=questions.confirm, override=trust.override_from(False)
    )
    agent = _ask_agent(cfg, existing, out)
    argv = presets.command_line(agent) if agent is not None else cfg.agent_argv
    model = questions.ask_model(argv, str(default_model or ""), out.line)
    auto_commit = questions.ask(
        questionary.confirm(
            "Commit the agent's work after every iteration (auto_commit)?",
            default=bool(existing.get("auto_commit", cfg.auto_commit)),
        )
    )
    chosen: dict[str, object] = {"agent": agent} if agent is not None else {}
    config.write_config_file(target, {**chosen, "model": model, "auto_commit": bool(auto_commit)}, force=force)
    shown_model = model or '"" (the agent\'s default)'
    shown_agent = f"agent: {agent}, " if agent is not None else ""
    out.line(f"wrote {target}: {shown_agent}model: {shown_model}, auto_commit: {'true' if auto_commit else 'false'}")
    overridden = [key.env for key in (config.KEYS["model"], config.KEYS["auto_commit"]) if os.environ.get(key.env)]
    if overridden:
        out.line(f"note: {' and '.join(overridden)} set in the environment win over the file (see `iteratr config`)")
    return 0


def _ask_agent(cfg: config.Config, existing: dict[str, object], out: Printer) -> str | None:
    """Offer the presets found on PATH (and the agent set now); None when there is nothing to choose or the
    environment sets the agent (ITERATR_AGENT would win over the file anyway)."""
    import questionary

    found = presets.installed()
    if not found or cfg.source("agent").startswith("env"):
        return None
    current = str(existing.get("agent", cfg.agent))
    # A command line that is exactly a preset's command (the default, "opencode acp") is that preset: one choice,
    # not the preset and a "keep" of the same agent.
    current = next((p.name for p in found if presets.command_line(current) == list(p.command)), current)
    choices = [questionary.Choice(f"{p.name}: {p.title} ({p.command_line})", value=p.name) for p in found]
    if current not in {p.name for p in found}:
        choices.append(questionary.Choice(f"keep: {current}", value=current))
    out.line(f"agents found on PATH: {', '.join(p.name for p in found)}")
    answer = questions.ask(questionary.select("Agent:", choices=choices, default=current))
    return str(answer)


def _force_hint(project: bool) -> str:
    command = "iteratr setup --project" if project else "iteratr setup"
    return f"fix it, or start it over with `{command} --force`"


def _config_for_setup(project: bool, force: bool, out: Printer) -> config.Config:
    """The resolved config (for the agent command and the defaults). With --force a broken file is no obstacle."""
    try:
        return config.load_config(cwd=Path.cwd())
    except ConfigError as exc:
        if not force:
            raise ConfigError(exc.message, hint=_force_hint(project)) from None
        out.warn(f"{exc.message}; the questions start from the defaults")
        return config.config_without_files()
