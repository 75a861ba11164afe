"""The README against the code, as sqlite-utils' test_docs.py does it: each table in the code is in the
README, row for row, and in ``--help``; and the README has no row the code does not know.

The tables: the exit statuses (``errors.EXIT_STATUSES``), the config keys (``config.KEYS``), the flags of
``iteratr build`` (``config.BUILD_OPTIONS``), the ``iteratr tool`` subcommands (``toolcli.COMMANDS``) and
the commands (``cli.root``). When one of these tests fails, fix the README, unless the code is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import click
import pytest

from iteratr import cli, config, toolcli
from iteratr.commands import config as config_cmd
from iteratr.errors import EXIT_STATUSES, ExitStatus
from iteratr.run import prompt

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The README's text under ``heading`` (e.g. "## Exit statuses"), up to the next heading of its level or above."""
    level = heading.split()[0]
    start = README.index(f"\n{heading}\n") + len(heading) + 2
    end = re.compile(rf"^#{{1,{len(level)}}} ", re.MULTILINE).search(README, start)
    return README[start : end.start() if end else len(README)]


def table(text: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table in ``text`` whose header row starts with ``| header |``, cells stripped."""
    lines = [line.strip() for line in text.splitlines()]
    first = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[first + 2 :]:  # after the header and the |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def unquoted(cell: str) -> str:
    """A cell without its Markdown code quotes: `--iterations` -> --iterations."""
    return cell.replace("`", "")


def words(text: str) -> str:
    """Text with every run of whitespace one space: --help wraps lines where the terminal is narrow."""
    return " ".join(text.split())


def help_text(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert cli.run([*args, "--help"]) == 0
    return words(capsys.readouterr().out)


# --- exit statuses -------------------------------------------------------------------------------------

EXIT_TABLE = {int(row[0]): row[1] for row in table(section("## Exit statuses"), "status")}


@pytest.mark.parametrize("status", EXIT_STATUSES, ids=lambda s: s.name)
def test_exit_status_is_in_the_readme_with_its_meaning(status: ExitStatus) -> None:
    assert unquoted(EXIT_TABLE.get(status.code, "(missing)")) == status.meaning


@pytest.mark.parametrize("status", EXIT_STATUSES, ids=lambda s: s.name)
def test_exit_status_is_in_build_help(status: ExitStatus, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"{status.code} {words(status.meaning)}" in help_text(capsys, "build")


def test_readme_has_no_other_exit_status() -> None:
    assert list(EXIT_TABLE) == [status.code for status in EXIT_STATUSES]


def test_the_cron_table_has_every_exit_status() -> None:
    rows = table(section("## Running from cron"), "status")
    assert [int(row[0]) for row in rows] == [status.code for status in EXIT_STATUSES]


# --- config keys -----------------------------------------------------------------------------------------

CONFIG_TABLE = {unquoted(row[0]): row for row in table(section("## Configuration"), "key")}

# A valid value other than the default for each key, as an environment variable gives it, and what it means.
ENV_SAMPLES: dict[str, tuple[str, object]] = {
    "model": ("prov/model", "prov/model"),
    "agent": ("my-agent --acp", "my-agent --acp"),
    "auto_commit": ("off", False),
    "data_dir": ("state", "state"),
    "log_level": ("warn", "warn"),
    "log_file": ("/tmp/run.log", "/tmp/run.log"),
    "iterations": ("7", 7),
    "headless": ("yes", True),
    "template": ("t.j2", "t.j2"),
    "iteration_timeout": ("1h", 3600),
    "idle_timeout": ("90s", 90),
    "max_failures": ("5", 5),
    "retry_delay": ("0", 0),
    "push": ("upstream", "upstream"),
    "lease_ttl": ("10m", 600.0),
    "max_file_size": ("100MB", 100 << 20),
    "permissions": ("deny", "deny"),
    "stall_limit": ("0", 0),
    "max_cost": ("$5", "5 USD"),
    "max_tokens": ("100000", 100000),
    "max_time": ("90m", 5400),
    "session_max_cost": ("20 EUR", "20 EUR"),
    "session_max_tokens": ("1000000", 1000000),
    "timestamps": ("on", True),
    "keep_prompts": ("5", 5),
}


def test_env_samples_cover_every_key() -> None:
    assert set(ENV_SAMPLES) == set(config.KEYS)


@pytest.mark.parametrize("key", config.KEYS.values(), ids=lambda k: k.name)
def test_config_key_is_in_the_readme_with_its_default(key: config.Key) -> None:
    row = CONFIG_TABLE.get(key.name)
    assert row is not None, f"README ## Configuration has no row for `{key.name}`"
    assert row[1] == f"`{config_cmd.render_value(key.default)}`"


@pytest.mark.parametrize("key", config.KEYS.values(), ids=lambda k: k.name)
def test_config_key_is_set_by_its_environment_variable(key: config.Key, tmp_path: Path) -> None:
    text, value = ENV_SAMPLES[key.name]
    cfg = config.load_config(cwd=tmp_path, env={"HOME": str(tmp_path), key.env: text})
    assert (cfg[key.name], cfg.source(key.name)) == (value, f"env ITERATR_{key.name.upper()}")


def test_readme_has_no_other_config_key() -> None:
    assert list(CONFIG_TABLE) == list(config.KEYS)


# --- the flags of `iteratr build` ------------------------------------------------------------------------

BUILD_TABLE = {unquoted(row[0]): row[1] for row in table(section("### `iteratr build`"), "flag")}


@pytest.mark.parametrize("option", config.BUILD_OPTIONS.values(), ids=lambda o: o.long)
def test_build_flag_is_in_the_readme(option: config.Option) -> None:
    assert option.spelling in BUILD_TABLE, f"README ### `iteratr build` has no row `{option.spelling}`"


@pytest.mark.parametrize("option", config.BUILD_OPTIONS.values(), ids=lambda o: o.long)
def test_build_flag_is_in_build_help(option: config.Option, capsys: pytest.CaptureFixture[str]) -> None:
    assert f" {option.spelling} " in help_text(capsys, "build")


def test_readme_has_no_other_build_flag() -> None:
    assert set(BUILD_TABLE) == {option.spelling for option in config.BUILD_OPTIONS.values()}


# --- `iteratr tool` ----------------------------------------------------------------------------------------

TOOL_TABLE = [unquoted(row[0]) for row in table(section("### `iteratr tool` (what the agent calls)"), "subcommand")]


@pytest.mark.parametrize("name", toolcli.COMMANDS)
def test_tool_subcommand_is_in_the_readme(name: str) -> None:
    assert name in TOOL_TABLE


@pytest.mark.parametrize("name", toolcli.COMMANDS)
def test_tool_subcommand_is_in_tool_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert f" {name} {words(toolcli.COMMANDS[name][0])}" in help_text(capsys, "tool")


def test_readme_has_no_other_tool_subcommand() -> None:
    assert list(toolcli.COMMANDS) == TOOL_TABLE


# --- the commands ------------------------------------------------------------------------------------------

# The command each row of the README's table names: "iteratr say [-n S] TEXT…" -> say.
COMMAND_TABLE = [unquoted(row[0]).split()[1].rstrip(",") for row in table(section("## Commands"), "command")]


@pytest.mark.parametrize("name", sorted(cli.root.commands))
def test_command_is_in_the_readme_and_in_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert name in COMMAND_TABLE
    assert f" {name} " in help_text(capsys)


def test_readme_has_no_other_command() -> None:
    assert sorted(COMMAND_TABLE) == sorted(cli.root.commands)


# --- prompt template variables -----------------------------------------------------------------------------


def test_the_templates_table_has_every_template_variable_and_no_other() -> None:
    rows = table(section("## Prompt templates"), "variable")
    named = [unquoted(name) for row in rows for name in row[0].split(", ")]  # "`tasks`, `notes`" is two
    assert sorted(named) == sorted(prompt.VARIABLES)


def test_say_help_picks_the_session_as_the_readme_says(capsys: pytest.CaptureFixture[str]) -> None:
    fallbacks = "the only session, else the only one a build is running for"
    assert f"`$ITERATR_SESSION`, else {fallbacks}" in words(section("## Talking to a running agent: the inbox"))
    assert f"$ITERATR_SESSION, or {fallbacks.replace('else', 'or')}" in help_text(capsys, "say")


def test_setup_help_says_it_chooses_the_agent(capsys: pytest.CaptureFixture[str]) -> None:
    assert "choose the agent (presets found on PATH), model and auto-commit" in words(section("## Commands"))
    assert "Choose the agent (presets found on PATH), the model and auto-commit" in help_text(capsys, "setup")


# The first cell of each row of ## Commands, by the command it names: "say" -> "iteratr say [-n S] … TEXT…".
COMMAND_ROWS = {
    unquoted(row[0]).split()[1].rstrip(","): unquoted(row[0]) for row in table(section("## Commands"), "command")
}


def names_option(row: str, spellings: Sequence[str]) -> bool:
    """Whether the row shows one of an option's spellings as an optional flag: ``[--data-dir DIR]``, ``[-n S]``."""
    return any(re.search(rf"\[{re.escape(spelling)}[\] ]", row) for spelling in spellings)


@pytest.mark.parametrize("name", sorted(set(cli.root.commands) - {"build"}))  # build's flags: its own table
def test_every_option_of_a_command_is_in_its_commands_row(name: str) -> None:
    options = [p for p in cli.root.commands[name].params if isinstance(p, click.Option) and p.name != "help"]
    missing = [option.opts for option in options if not names_option(COMMAND_ROWS[name], option.opts)]
    assert not missing, f"README ## Commands row `{COMMAND_ROWS[name]}` lacks {missing}"


def test_the_tool_row_names_the_flags_every_subcommand_takes() -> None:
    for flag, *_ in toolcli.COMMON:
        assert names_option(COMMAND_ROWS["tool"], [flag, "-n"] if flag == "--name" else [flag]), flag
    assert names_option("[-n S]", ["-n"]) and not names_option("[--name-x]", ["--name"])
