"""The CI recipe, examples/github-actions/iteratr.yml: a valid workflow whose `iteratr build` line parses with
iteratr's own flags, and whose run step, run as a runner would run it (bash, the job's environment) against a
shared bare remote, carries a session and tells the scheduler what happened by its exit status."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

from iteratr import cli
from tests.conftest import FAST_ENV, REPO_ROOT, fake_agent, git
from tests.remote.conftest import lease_of, remote_iterations

WORKFLOW = REPO_ROOT / "examples" / "github-actions" / "iteratr.yml"


def _workflow() -> Any:
    return YAML(typ="safe").load(WORKFLOW.read_text())


def _run_step() -> dict[str, Any]:
    steps = _workflow()["jobs"]["build"]["steps"]
    return next(s for s in steps if "iteratr build" in s.get("run", ""))


def _build_line() -> list[str]:
    line = next(ln for ln in _run_step()["run"].splitlines() if ln.strip().startswith("iteratr build"))
    return shlex.split(line)


def test_the_workflow_is_scheduled_may_push_and_fetches_the_whole_history() -> None:
    flow = _workflow()
    assert flow["on"]["schedule"][0]["cron"]
    assert flow["permissions"]["contents"] == "write"
    checkout = flow["jobs"]["build"]["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@") and checkout["with"]["fetch-depth"] == 0


def test_its_build_line_parses_with_iteratrs_flags() -> None:
    words = _build_line()
    assert words[:2] == ["iteratr", "build"]
    command = cli.root.commands["build"]
    assert isinstance(command, click.Command)
    ctx = command.make_context("build", words[2:])
    assert (ctx.params["push"], ctx.params["headless"], ctx.params["iterations"]) == ("origin", True, 3)
    assert ctx.params["spec"] == "specs/SPEC.md"
    for name in _run_step()["env"]:
        assert re.fullmatch(r"ITERATR_[A-Z_]+|[A-Z_]+_API_KEY", name)


def _run_the_step(cwd: Path, bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    step = _run_step()
    job_env = {k: v for k, v in step["env"].items() if not v.startswith("${{")}
    full = {**os.environ, **FAST_ENV, **job_env, **env, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"]  # as GitHub Actions runs a `run` step
    return subprocess.run([*shell, step["run"]], cwd=cwd, env=full, capture_output=True, text=True)


@pytest.fixture
def iteratr_on_path(tmp_path: Path) -> Path:
    """An `iteratr` on PATH that runs this checkout's iteratr, as `pip install iteratr` would provide."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "iteratr"
    command = shlex.join([sys.executable, str(REPO_ROOT / "iteratr.py")])
    shim.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    shim.chmod(0o755)
    return bin_dir


def test_the_step_carries_the_session_across_runners_and_reads_the_exit_status(
    origin: Path, clone: Callable[[str], Path], iteratr_on_path: Path
) -> None:
    # The scripted agent reports no cost, so the job's session budget is lifted here (it would be exit 2).
    env = {"ITERATR_AGENT": fake_agent("follow"), "ITERATR_SESSION_MAX_COST": ""}
    author = clone("author")  # five tasks: more than one job's three iterations
    (author / "specs" / "SPEC.md").write_text("# Five\n\n" + "".join(f"- [ ] Task {i}\n" for i in range(1, 6)))
    git(author, "commit", "-q", "-am", "five tasks")
    git(author, "push", "-q", "origin", "main")
    first = _run_the_step(clone("runner-1"), iteratr_on_path, **env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "three iterations done; the next run carries on" in first.stdout
    assert remote_iterations(origin) == [0, 1, 2, 3]
    second = _run_the_step(clone("runner-2"), iteratr_on_path, **env)  # another runner, a fresh checkout
    assert second.returncode == 0, second.stdout + second.stderr
    assert "the session is complete" in second.stdout
    assert "resuming from origin/iteratr/SPEC" in second.stdout
    assert remote_iterations(origin) == [0, 1, 2, 3, 4, 5]  # never re-planned, nothing run twice
    assert lease_of(origin) is None


@pytest.mark.parametrize(("status", "fails"), [(0, False), (3, False), (4, False), (1, True), (2, True), (5, True)])
def test_the_step_passes_on_0_3_4_and_fails_on_every_other_status(tmp_path: Path, status: int, fails: bool) -> None:
    bin_dir = tmp_path / "stub"
    bin_dir.mkdir()
    (bin_dir / "iteratr").write_text(f"#!/bin/sh\nexit {status}\n")
    (bin_dir / "iteratr").chmod(0o755)
    done = _run_the_step(tmp_path, bin_dir)
    assert (done.returncode != 0) == fails
    if fails:
        assert done.returncode == status and f"exited with status {status}" in done.stdout


def test_a_run_stopped_with_commits_the_remote_lacks_keeps_them_on_the_remote(
    origin: Path, clone: Callable[[str], Path], tmp_path: Path
) -> None:
    runner = clone("runner")
    git(runner, "switch", "-q", "-c", "iteratr/SPEC")
    git(runner, "commit", "-q", "--allow-empty", "-m", "an iteration the run could not push")
    kept = git(runner, "rev-parse", "iteratr/SPEC")
    bin_dir = tmp_path / "stub"
    bin_dir.mkdir()
    (bin_dir / "iteratr").write_text("#!/bin/sh\nexit 4\n")  # e.g. it lost its lease after that commit
    (bin_dir / "iteratr").chmod(0o755)
    done = _run_the_step(runner, bin_dir, GITHUB_RUN_ID="77")
    assert done.returncode == 0, done.stdout + done.stderr
    assert git(origin, "rev-parse", "refs/heads/iteratr/SPEC.unpushed-77") == kept
    nothing = _run_the_step(clone("idle"), bin_dir, GITHUB_RUN_ID="78")  # no session branch: nothing pushed
    assert nothing.returncode == 0
    assert git(origin, "for-each-ref", "refs/heads/iteratr/SPEC.unpushed-78") == ""
