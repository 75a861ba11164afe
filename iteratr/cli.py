"""The click command line. Each command parses, calls ``iteratr.commands.<name>.run(...)``, returns its status.

The options of ``iteratr build`` are made from the settings table (``iteratr.config.BUILD_OPTIONS``), and
its ``--help`` epilog from the exit-status table (``iteratr.errors.EXIT_STATUSES``): neither is written
here. Command modules are imported inside the commands so that ``iteratr --help`` and ``iteratr say`` stay
quick. ``iteratr tool`` does not come through here at all (see ``iteratr.main``).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from iteratr import __version__, config
from iteratr.boundary import guarded
from iteratr.commands.version import version_line
from iteratr.errors import EXIT_INTERRUPTED, EXIT_STATUSES, UsageError


def exit_status_help() -> str:
    """The exit-status table as the epilog of ``iteratr build --help`` (``\\b``: click keeps its lines)."""
    lines = ["\b", "Exit status:"]
    for status in EXIT_STATUSES:
        meaning = textwrap.wrap(status.meaning, width=70)  # fits an 80-column terminal
        lines.append(f"  {status.code:<4} {meaning[0]}")
        lines += [f"  {'':<4} {more}" for more in meaning[1:]]
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", message=version_line())
def root() -> None:
    """Run an ACP coding agent in a loop until a spec is done, one git commit per iteration."""
    from iteratr import config_env

    for warning in config_env.unknown():  # a typo in a variable would otherwise be ignored without a word
        click.echo(f"iteratr: warning: {warning}", err=True)


@root.command()
def version() -> int:
    """Show the version of iteratr and of Python."""
    from iteratr.commands import version as version_cmd

    return version_cmd.run()


@root.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def tool(args: tuple[str, ...]) -> int:
    """Session tools the agent calls (task-add, task-next, note-add, ...). See `iteratr tool --help`."""
    from iteratr import toolcli

    return toolcli.run(list(args))


@root.command(context_settings={"help_option_names": []}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def mcp(args: tuple[str, ...]) -> int:
    """Serve the session tools over MCP on stdio (the agent starts it). See `iteratr mcp --help`."""
    from iteratr.mcp import command

    return command.run(list(args))


def _click_option(dest: str, option: config.Option) -> Callable[[Any], Any]:
    """The click option for one row of the settings table. A config key's value is checked as it is parsed,
    by the key's own validator, so a bad flag reads like a bad file: ``--iterations: 'lots' is not ...``."""
    is_key = dest in config.KEYS

    def check(_ctx: click.Context, _param: click.Parameter, value: object) -> object:
        return config.check_flag(dest, value) if is_key else value

    common: dict[str, Any] = {"help": option.help, "callback": check}
    if option.kind == "switch":  # a config key's switch left out is None: the config decides
        return click.option(*option.names, dest, is_flag=True, default=None if is_key else False, **common)
    if option.kind == "negatable":
        return click.option(f"{option.long}/{option.negation}", dest, default=None, **common)
    if option.kind == "optional":
        metavar = f"[{option.metavar}]"
        return click.option(
            *option.names, dest, is_flag=False, flag_value=option.bare, default=None, metavar=metavar, **common
        )
    kind = click.Path(dir_okay=False) if option.kind == "path" else None
    return click.option(*option.names, dest, type=kind, metavar=option.metavar, **common)


def _build_options(fn: Any) -> Any:
    for dest, option in reversed(config.BUILD_OPTIONS.items()):
        fn = _click_option(dest, option)(fn)
    return fn


@root.command(epilog=exit_status_help())
@_build_options
def build(**params: Any) -> int:
    """Run the agent iteration by iteration until the spec's tasks are done.

    Every iteration ends in one commit on the branch iteratr/NAME. Talk to the running agent by
    editing .iteratr/NAME/inbox.md or with `iteratr say`.
    """
    from iteratr.commands import build as build_cmd
    from iteratr.commands.questions import confirm
    from iteratr.output import Printer

    request = build_cmd.BuildRequest(**params)
    if build_cmd.wants_wizard(request, Path.cwd()):
        from iteratr import paths, trust
        from iteratr.commands import trust as trust_cmd
        from iteratr.commands import wizard

        # The wizard asks the agent for its models: a repository's own `agent:` must be trusted first.
        top = paths.work_tree_top(Path.cwd())
        trust_cmd.gate(top, printer=Printer(), ask=confirm, override=trust.override_from(request.trust))

        asked = wizard.ask_build(request)
        if asked is None:  # cancelled: the wizard said so, and nothing was written
            return EXIT_INTERRUPTED
        request = asked
    return build_cmd.run(request, ask=confirm)


@root.command()
@click.option("--keep", is_flag=True, help="Keep the temporary repository and print its path.")
def demo(keep: bool) -> int:
    """Run a complete session on a built-in example with a scripted agent (no network, no keys)."""
    from iteratr.commands import demo as demo_mod

    return demo_mod.run(keep=keep)


@root.command()
@click.option(
    "-n",
    "--name",
    help="Session name (default: $ITERATR_SESSION, or the only session, or the only one a build is running for).",
)
@click.option("--data-dir", help="Data directory (default: .iteratr).")
@click.argument("text", nargs=-1)
def say(name: str | None, data_dir: str | None, text: tuple[str, ...]) -> int:
    """Send a message to the agent: TEXT, or standard input when no TEXT is given."""
    from iteratr.commands import say as saycmd

    message = " ".join(text)
    if not text:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no message: give TEXT, or pipe the message on standard input")
        message = saycmd.read_stdin(sys.stdin.buffer)
    return saycmd.run(name=name, data_dir=data_dir, text=message)


@root.command()
@click.option("-n", "--name", help="Session name; without it, list every session.")
@click.option("--data-dir", help="Data directory (default: .iteratr).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--watch", is_flag=True, help="Redraw every 2 seconds until Ctrl+C, which ends it with exit status 0.")
@click.option(
    "--prompt",
    "prompt_n",
    type=int,
    is_flag=False,
    flag_value=-1,
    default=None,
    metavar="[N]",
    help="Print the prompt sent in iteration N (default: the last one kept).",
)
def status(name: str | None, data_dir: str | None, as_json: bool, watch: bool, prompt_n: int | None) -> int:
    """Show a session: branch, lock, iterations, tasks, summaries, notes, messages, cost."""
    from iteratr.commands import status as statuscmd

    if prompt_n is not None:  # what the agent was told (iteratr.run.prompt_archive)
        from iteratr.output import Printer
        from iteratr.run import prompt_archive

        n = None if prompt_n < 0 else prompt_n
        Printer().text(prompt_archive.print_prompt(name=name, data_dir=data_dir, n=n))
        return 0
    return statuscmd.run(name=name, data_dir=data_dir, as_json=as_json, watch=watch)


@root.command()
@click.option("-n", "--name", help="Session name (default: $ITERATR_SESSION, or the only session).")
@click.option("--data-dir", help="Data directory (default: .iteratr).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write here (default: .iteratr/NAME/report.html)."
)
def report(name: str | None, data_dir: str | None, output: str | None) -> int:
    """Write a session's report: one self-contained HTML page with its timeline, burn-down, tasks and notes."""
    from iteratr.commands import report as report_cmd

    return report_cmd.run(name=name, data_dir=data_dir, output=output)


@root.command("gen-template")
@click.option("-o", "--output", default=".iteratr.template", show_default=True, type=click.Path(dir_okay=False))
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing file.")
def gen_template(output: str, force: bool) -> int:
    """Write the default prompt template to a file, to customise it."""
    from iteratr.commands import gen_template as gen_template_cmd

    return gen_template_cmd.run(output=Path(output), force=force)


@root.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config_command(as_json: bool) -> int:
    """Show every resolved setting and where it came from."""
    from iteratr.commands import config as config_cmd

    return config_cmd.run(as_json=as_json)


@root.command()
@click.option("-p", "--project", is_flag=True, help="Write the project's iteratr.yml instead of the global config.")
@click.option("-f", "--force", is_flag=True, help="Start the file over instead of updating it.")
def setup(project: bool, force: bool) -> int:
    """Choose the agent (presets found on PATH), the model and auto-commit once, interactively, and save them."""
    from iteratr.commands import setup as setup_cmd

    return setup_cmd.run(project=project, force=force)


@root.command()
@click.option("--trust", is_flag=True, help="Trust this repository's hooks and iteratr.yml for this run.")
def doctor(trust: bool) -> int:
    """Check Python, git, the agent (does it speak ACP?), the model, config, hooks and session state."""
    from iteratr.commands import doctor as doctor_mod

    return doctor_mod.run(trust=trust)


@root.command()
@click.option("-y", "--yes", is_flag=True, help="Trust without asking (after showing what would run).")
@click.option("--list", "list_only", is_flag=True, help="Show this repository's files and the trust store.")
@click.option("--revoke", is_flag=True, help="Forget the trust of this repository's files.")
def trust(yes: bool, list_only: bool, revoke: bool) -> int:
    """Show what this repository's hooks and iteratr.yml would run, and trust them (recorded by content)."""
    from iteratr import paths
    from iteratr.commands import trust as trust_cmd
    from iteratr.commands.questions import confirm
    from iteratr.output import Printer, is_interactive

    top = paths.work_tree_top(Path.cwd())
    ask = confirm if is_interactive() else None
    return trust_cmd.run(top, printer=Printer(), ask=ask, yes=yes, list_only=list_only, revoke=revoke)


def run(args: list[str]) -> int:
    """Run the click CLI inside the error boundary; click's own usage errors become one line and exit 2."""

    def invoke() -> int:
        try:
            result = root.main(args, prog_name="iteratr", standalone_mode=False)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "", err=True)
            return 2
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            raise UsageError(exc.format_message().replace("\n", " ") + hint) from None
        except click.ClickException as exc:
            raise UsageError(exc.format_message().replace("\n", " ")) from None
        except click.exceptions.Abort:
            click.echo("iteratr: interrupted", err=True)
            return EXIT_INTERRUPTED
        return result if isinstance(result, int) else 0

    return guarded(invoke)
