"""The click command line. Each command parses, calls core code, and renders; nothing more.

Core modules are imported inside the commands so that ``iteratr --help`` and ``iteratr say`` stay
quick. ``iteratr tool`` does not come through here at all (see ``iteratr.main``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from iteratr import __version__
from iteratr.boundary import guarded
from iteratr.errors import EXIT_INTERRUPTED, UsageError

EXIT_STATUS_HELP = """\b
Exit status:
  0    the session is complete
  1    the run failed (failure limit, agent cannot start, git error)
  2    bad usage, config, spec or template
  3    stopped by --iterations with work left
  4    the session is locked by another run
  130  interrupted (Ctrl+C or SIGTERM)"""


def version_line() -> str:
    return f"iteratr {__version__} (Python {sys.version.split()[0]})"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", message=version_line())
def root() -> None:
    """Run an ACP coding agent in a loop until a spec is done, one git commit per iteration."""


@root.command()
def version() -> None:
    """Show the version of iteratr and of Python."""
    click.echo(version_line())


@root.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def tool(args: tuple[str, ...]) -> int:
    """Session tools the agent calls (task-add, task-next, note-add, ...). See `iteratr tool --help`."""
    from iteratr import toolcli

    return toolcli.run(list(args))


def _build_options(fn: Any) -> Any:
    options = [
        click.option("-n", "--name", metavar="NAME", help="Session name (default: the spec file's stem)."),
        click.option("-s", "--spec", type=click.Path(dir_okay=False), help="Spec file (default: specs/SPEC.md)."),
        click.option(
            "-t", "--template", type=click.Path(dir_okay=False), help="Prompt template (jinja2) of main iterations."
        ),
        click.option(
            "-e", "--extra-instructions", "extra", metavar="TEXT", help="Extra instructions added to every prompt."
        ),
        click.option("-i", "--iterations", metavar="N", help="Iterations to run now; 0 = no limit."),
        click.option(
            "-m", "--model", metavar="MODEL", help="Model, as the agent names it (e.g. anthropic/claude-sonnet-4-5)."
        ),
        click.option("--agent", metavar="CMD", help='ACP agent command line (default: "opencode acp").'),
        click.option("--headless", is_flag=True, default=None, help="Never ask questions or open a wizard."),
        click.option(
            "--auto-commit/--no-auto-commit",
            default=None,
            help="Commit the whole work tree each iteration (default), or only the session files.",
        ),
        click.option("--reset", is_flag=True, help="Archive the session's branch and start it afresh."),
        click.option("--worktree", is_flag=True, help="Run in a linked git worktree; your checkout is untouched."),
        click.option("--data-dir", metavar="DIR", help="Data directory (default: .iteratr)."),
        click.option(
            "--push",
            "push",
            is_flag=False,
            flag_value="origin",
            default=None,
            metavar="[REMOTE]",
            help="Push the session branch after each commit (to REMOTE, default origin).",
        ),
        click.option("--log-file", metavar="PATH", help="Also write a timestamped debug log of the run here."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@root.command(epilog=EXIT_STATUS_HELP)
@_build_options
def build(**flags: Any) -> int:
    """Run the agent iteration by iteration until the spec's tasks are done.

    Every iteration ends in one commit on the branch iteratr/NAME. Talk to the running agent by
    editing .iteratr/NAME/inbox.md or with `iteratr say`.
    """
    from iteratr.commands import build as buildcmd

    return buildcmd.build(flags)


@root.command()
@click.option("--keep", is_flag=True, help="Keep the temporary repository and print its path.")
def demo(keep: bool) -> int:
    """Run a complete session on a built-in example with a scripted agent (no network, no keys)."""
    from iteratr.commands import demo as demo_mod

    return demo_mod.run_demo(keep=keep)


@root.command()
@click.option("-n", "--name", help="Session name (default: $ITERATR_SESSION, or the only session).")
@click.option("--data-dir", help="Data directory (default: .iteratr).")
@click.argument("text", nargs=-1)
def say(name: str | None, data_dir: str | None, text: tuple[str, ...]) -> int:
    """Send a message to the agent: TEXT, or standard input when no TEXT is given."""
    from iteratr.commands import say as saycmd

    message = " ".join(text)
    if not text:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no message: give TEXT, or pipe the message on standard input")
        message = sys.stdin.buffer.read().decode("utf-8", errors="replace")
    click.echo(saycmd.say(name=name, data_dir=data_dir, text=message))
    return 0


@root.command()
@click.option("-n", "--name", help="Session name; without it, list every session.")
@click.option("--data-dir", help="Data directory (default: .iteratr).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--watch", is_flag=True, help="Redraw every 2 seconds until Ctrl+C, which ends it with exit status 0.")
def status(name: str | None, data_dir: str | None, as_json: bool, watch: bool) -> int:
    """Show a session: branch, lock, iterations, tasks, summaries, notes, messages, cost."""
    from iteratr.commands import status as statuscmd

    return statuscmd.status(name=name, data_dir=data_dir, as_json=as_json, watch=watch, echo=click.echo)


@root.command("gen-template")
@click.option("-o", "--output", default=".iteratr.template", show_default=True, type=click.Path(dir_okay=False))
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing file.")
def gen_template(output: str, force: bool) -> int:
    """Write the default prompt template to a file, to customise it."""
    from iteratr.run import prompt

    path = prompt.write_default_template(Path(output), force=force)
    click.echo(f"wrote the default template to {path}; use it with: iteratr build --template {path}")
    return 0


@root.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config_cmd(as_json: bool) -> int:
    """Show every resolved setting and where it came from."""
    import json

    from iteratr import config

    cfg = config.load_config(cwd=Path.cwd())
    click.echo(json.dumps(cfg.to_json(), indent=2) if as_json else config.render_text(cfg))
    return 0


@root.command()
@click.option("-p", "--project", is_flag=True, help="Write ./iteratr.yml instead of the global config.")
@click.option("-f", "--force", is_flag=True, help="Start the file over instead of updating it.")
def setup(project: bool, force: bool) -> int:
    """Choose the model and auto-commit once, interactively, and save them."""
    from iteratr.commands import wizard

    return wizard.setup(project=project, force=force, echo=click.echo)


@root.command()
def doctor() -> int:
    """Check Python, git, the agent (does it speak ACP?), the model, config, hooks and session state."""
    from iteratr.commands import doctor as doctor_mod

    return doctor_mod.run_doctor(echo=click.echo)


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
