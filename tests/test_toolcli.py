"""The click-free parser of ``iteratr tool`` and what the tool path imports."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pytest

from iteratr import toolcli
from iteratr.errors import UsageError
from tests.conftest import ITERATR_CMD, run_cli

HEAVY = ("acp", "git", "jinja2", "watchfiles", "questionary", "click")

# Runs the real entry point (the shim, as `python iteratr.py` does), then prints the top-level names of
# the modules it imported: not those the interpreter had already, e.g. from an editable install's hook.
PROBE = """
import json, sys
before = set(sys.modules)
sys.argv = [{shim!r}, *{args!r}]
code = None
try:
    with open({shim!r}) as f:
        exec(compile(f.read(), {shim!r}, "exec"), {{"__name__": "__main__", "__file__": {shim!r}}})
except SystemExit as exc:
    code = exc.code
new = {{m.split(".")[0] for m in set(sys.modules) - before}}
print(json.dumps({{"code": code, "modules": sorted(new)}}), file=sys.stderr)
"""


def imported_by(cwd: Path, *args: str) -> tuple[int, set[str]]:
    shim = ITERATR_CMD[-1]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(shim=shim, args=list(args))],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


@pytest.mark.parametrize(
    "args",
    [
        ("task-list", "--name", "S"),
        ("task-list", "--name", "S", "--json"),
        ("task-next", "--name", "S"),
        ("note-add", "--name", "S", "--content", "n", "--type", "tip"),
        ("task-add", "--name", "S", "--content", "t"),
        ("task-status", "--name", "S", "--id", "TAS-1", "--status", "bogus"),
    ],
)
def test_the_tool_path_imports_no_heavy_module(tmp_path: Path, args: tuple[str, ...]) -> None:
    run_cli("tool", "task-add", "--name", "S", "--content", "seed", cwd=tmp_path)
    code, modules = imported_by(tmp_path, "tool", *args)
    assert code in (0, 2, None)
    assert "iteratr.toolcli" not in modules  # top-level names only
    assert "iteratr" in modules
    assert not set(HEAVY) & modules, sorted(set(HEAVY) & modules)


@pytest.mark.parametrize(
    "args", [("task-list", "--name", "S", "--json"), ("task-next", "--name", "S"), ("note-list", "--name", "S")]
)
def test_reads_import_neither_ruamel_nor_typing(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Reads run from the snapshot: no YAML to write, and annotations need no typing at run time."""
    run_cli("tool", "task-add", "--name", "S", "--content", "seed", cwd=tmp_path)
    _, modules = imported_by(tmp_path, "tool", *args)
    assert "ruamel" not in modules
    assert "typing" not in modules


def test_the_probe_does_see_heavy_imports(tmp_path: Path) -> None:
    """The check above can fail: the click CLI path does import click."""
    _, modules = imported_by(tmp_path, "version")
    assert "click" in modules


def test_importtime_of_task_list_shows_no_heavy_module(tmp_path: Path) -> None:
    run_cli("tool", "task-add", "--name", "S", "--content", "seed", cwd=tmp_path)
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *ITERATR_CMD[1:], "tool", "task-list", "--name", "S"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "iteratr" in names
    assert not set(HEAVY) & names


# -- the parser -----------------------------------------------------------------------------------


def test_parse_flags_and_values() -> None:
    opts = toolcli.parse("task-add", ["--content", "-starts with a dash", "--priority=0", "--json", "-n", "S"])
    assert opts == {"--json": True, "--content": "-starts with a dash", "--priority": "0", "--name": "S"}


def test_repeatable_depends_on_takes_lists_and_commas() -> None:
    opts = toolcli.parse("task-add", ["--content", "x", "--depends-on", "TAS-1", "TAS-2", "--depends-on=TAS-3,TAS-4"])
    assert opts["--depends-on"] == ["TAS-1", "TAS-2", "TAS-3", "TAS-4"]


@pytest.mark.parametrize(
    ("name", "argv", "match"),
    [
        ("task-add", [], "needs --content TEXT"),
        ("task-add", ["--content"], "--content needs a value"),
        ("task-add", ["--content", "a", "--content", "b"], "given twice"),
        ("task-add", ["--content", "a", "--bogus", "1"], "unknown option --bogus"),
        ("task-list", ["stray"], "unexpected argument 'stray'"),
        ("task-status", ["--id", "TAS-1"], "needs --status STATUS"),
    ],
)
def test_parse_refusals(name: str, argv: list[str], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        toolcli.parse(name, argv)


def test_task_line_format() -> None:
    task = {"id": "TAS-3", "content": "write tests", "status": "remaining", "priority": 4, "depends_on": []}
    assert toolcli.task_line(task) == "TAS-3 [P4] remaining: write tests"
    assert toolcli.task_line({**task, "depends_on": ["TAS-1"]}) == "TAS-3 [P4] remaining: write tests (after TAS-1)"


def test_every_command_has_a_usage_line() -> None:
    for name in toolcli.COMMANDS:
        assert toolcli.command_usage(name).startswith(f"Usage: iteratr tool {name}")
    assert "Exit status" in toolcli.usage()


def test_run_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gc.isenabled()
    assert toolcli.run(["--help"]) == 0
    assert gc.isenabled()
    with pytest.raises(UsageError):
        toolcli.run(["task-list"])  # no session: ITERATR_SESSION is cleared by the fixtures
    assert gc.isenabled()
    assert "Usage: iteratr tool" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ("note-add", "--name", "S", "--content", "ran the tests", "--type", "tip"),
        ("task-status", "--name", "S", "--id", "1", "--status", "completed"),
    ],
)
def test_writes_to_a_session_with_a_view_import_no_typing(tmp_path: Path, args: tuple[str, ...]) -> None:
    """A write re-renders only what changed in tasks.yaml (the first note of a session still needs ruamel): no
    typing at run time there either."""
    run_cli("tool", "task-add", "--name", "S", "--content", "seed", cwd=tmp_path)
    run_cli("tool", "note-add", "--name", "S", "--content", "first", "--type", "tip", cwd=tmp_path)
    _, modules = imported_by(tmp_path, "tool", *args)
    assert "typing" not in modules
    assert "ruamel" not in modules
