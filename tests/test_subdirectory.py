"""Every command works from any subdirectory of the repository: it reaches the session and the project
config at the top of the work tree (``paths``' one resolver), never a stray ``sub/.iteratr`` or
``sub/iteratr.yml``. Each command runs as a user runs it, in a subprocess started in ``src/deep``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from iteratr.session import ops
from iteratr.session.store import Store
from tests.conftest import FAST_ENV, CliResult, fake_agent, git, run_cli

MODEL = "top/model"


@pytest.fixture
def top(spec_repo: Path) -> Path:
    """The repository's top: a project config naming agent and model, and session SPEC on its branch, checked out."""
    agent = fake_agent("follow", models=MODEL)
    (spec_repo / "iteratr.yml").write_text(f"model: {MODEL}\nagent: {json.dumps(agent)}\n")
    git(spec_repo, "switch", "-q", "-c", "iteratr/SPEC")
    store = Store(spec_repo / ".iteratr", "SPEC")
    ops.task_add(store, [{"content": "First task"}])
    git(spec_repo, "add", "--force", str(store.events_path), str(store.tasks_path))
    git(spec_repo, "commit", "-q", "-m", "session SPEC")
    (spec_repo / "src" / "deep").mkdir(parents=True)
    return spec_repo


def check_doctor(top: Path, result: CliResult) -> None:
    assert f"ok    config: valid: {top / 'iteratr.yml'}" in result.stdout
    assert "ok    session state: SPEC: readable (0/1 tasks done" in result.stdout
    assert f"ok    model: {MODEL} (project file" in result.stdout


def check_config(top: Path, result: CliResult) -> None:
    assert json.loads(result.stdout)["model"]["value"] == MODEL


def check_status(top: Path, result: CliResult) -> None:
    assert f"read from: this checkout {top}" in result.stdout
    assert "tasks: 1 remaining (1 in all)" in result.stdout


def check_say(top: Path, result: CliResult) -> None:
    assert (top / ".iteratr" / "SPEC" / "inbox.md").read_text().endswith("\nfrom deep down\n")


def check_tool(top: Path, result: CliResult) -> None:
    assert "TAS-1 [P2] remaining: First task" in result.stdout


def check_report(top: Path, result: CliResult) -> None:
    page = top / ".iteratr" / "SPEC" / "report.html"
    assert Path(result.stdout.strip()) == page
    assert "First task" in page.read_text()


def check_trust(top: Path, result: CliResult) -> None:
    assert "iteratr.yml" in result.stdout and "agent" in result.stdout  # the top's file, which sets agent


def check_build(top: Path, result: CliResult) -> None:
    assert "session SPEC | branch iteratr/SPEC (resumed)" in result.stdout
    assert "stopped: the session is complete (1 task)" in result.stdout
    events = Store(top / ".iteratr", "SPEC").events()  # the session at the top is the one that ran
    assert [e["data"]["n"] for e in events if e["type"] == "iteration.started"] == [0]


COMMANDS: dict[str, tuple[list[str], int, Callable[[Path, CliResult], None]]] = {
    "doctor": (["doctor"], 0, check_doctor),
    "config": (["config", "--json"], 0, check_config),
    "status": (["status", "-n", "SPEC"], 0, check_status),
    "say": (["say", "-n", "SPEC", "from deep down"], 0, check_say),
    "tool": (["tool", "task-list", "-n", "SPEC"], 0, check_tool),
    "report": (["report", "-n", "SPEC"], 0, check_report),
    "build": (["build", "--headless", "-i", "1"], 0, check_build),  # specs/SPEC.md is found at the top
    "trust": (["trust", "--list"], 0, check_trust),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_from_a_subdirectory_reaches_the_top(top: Path, command: str) -> None:
    args, status, check = COMMANDS[command]
    result = run_cli(*args, cwd=top / "src" / "deep", env=FAST_ENV, expect=status)
    check(top, result)
    assert not (top / "src" / "deep" / ".iteratr").exists(), "a stray session in the subdirectory"


def test_the_resolver_prefers_an_existing_data_dir_here_else_the_top_and_refuses_one_outside(
    repo: Path, tmp_path: Path
) -> None:
    from iteratr import paths
    from iteratr.errors import UsageError

    deep = repo / "src" / "deep"
    deep.mkdir(parents=True)
    assert paths.work_tree_top(deep) == repo
    assert paths.project_config_path(deep) == repo / "iteratr.yml"
    assert paths.resolve_data_dir(".iteratr", deep) == repo / ".iteratr"
    assert paths.data_dir_in_tree(".iteratr", repo, deep) == Path(".iteratr")
    (deep / "state").mkdir()  # a data dir that exists where the command runs is that one
    assert paths.data_dir_in_tree("state", repo, deep) == Path("src/deep/state")
    assert paths.resolve_data_dir(tmp_path / "abs", deep) == tmp_path / "abs"
    with pytest.raises(UsageError, match="outside the repository"):
        paths.data_dir_in_tree(str(tmp_path / "abs"), repo, deep)
    with pytest.raises(UsageError, match="cannot be the repository root"):
        paths.data_dir_in_tree("..", repo, repo / "src")
    outside = tmp_path / "plain"
    outside.mkdir()
    assert paths.work_tree_top(outside) == outside  # no git around: the directory itself
