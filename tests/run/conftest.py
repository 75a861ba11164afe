"""Fixtures shared by tests/run: a recorder on a temp repo, and builds in their own process group."""

from __future__ import annotations

import io
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from iteratr import paths
from iteratr.gitrepo import GitRepo
from iteratr.output import Printer
from iteratr.run import prompt
from iteratr.run.record import Recorder
from iteratr.run.settings import Settings
from iteratr.session.store import Store
from tests.conftest import ITERATR_CMD, git
from tests.run.helpers import Background


@pytest.fixture
def recorder(repo: Path) -> Recorder:
    """A recorder on session S of ``repo``, checked out on its branch iteratr/S."""
    git(repo, "switch", "-q", "-c", "iteratr/S")
    store = Store(repo / ".iteratr", "S")
    store.create()
    settings = Settings(
        session="S",
        work_tree=repo,
        data_dir=repo / ".iteratr",
        spec_path=repo / "SPEC.md",
        agent_argv=["agent"],
        model=None,
        iterations=0,
        iteration_timeout=1.0,
        idle_timeout=1.0,
        max_failures=3,
        retry_delay=0.0,
        auto_commit=True,
        push="",
        extra="",
        templates={"main": prompt.load(None, "default")},
        hooks=None,
        binary=shlex.join(ITERATR_CMD),
        branch=paths.branch_name("S"),
    )
    return Recorder(settings, store, GitRepo.open(repo), Printer(io.StringIO()))


@pytest.fixture
def group_build() -> Iterator[Callable[..., Background]]:
    """``iteratr build`` in the background in its own process group (Ctrl+C goes to the group, as from a
    terminal); stopped at teardown. conftest's ``background`` is the plain one."""
    runs: list[Background] = []

    def start(cwd: Path, *args: str, env: dict[str, str] | None = None) -> Background:
        run = Background(cwd, *args, env=env)
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.stop()
