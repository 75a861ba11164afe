"""Fixtures for one session on many machines: a bare remote holding a spec, and clones of it (the machines)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import THREE_TASK_SPEC, git


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A bare repository whose main holds ``specs/SPEC.md`` (three tasks): the shared remote."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    (seed / "specs").mkdir()
    (seed / "specs" / "SPEC.md").write_text(THREE_TASK_SPEC)
    git(seed, "add", "specs/SPEC.md")
    git(seed, "commit", "-q", "-m", "spec")
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(bare)], check=True)
    return bare


@pytest.fixture
def clone(origin: Path, tmp_path: Path) -> Callable[[str], Path]:
    """``clone("a")``: a fresh clone of the remote, as on another machine (its own git dir and clone id)."""

    def make(name: str) -> Path:
        path = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(origin), str(path)], check=True)
        return path

    return make


def remote_log(origin: Path, session: str = "SPEC") -> list[str]:
    """The subjects of the remote's session branch, oldest first."""
    out = git(origin, "log", "--reverse", "--format=%s", f"refs/heads/iteratr/{session}")
    return out.splitlines()


def remote_iterations(origin: Path, session: str = "SPEC") -> list[int]:
    """The ``Iteratr-Iteration`` trailers on the remote's branch, oldest first."""
    trailer = "--format=%(trailers:key=Iteratr-Iteration,valueonly)"
    args = ["git", "log", "--reverse", trailer, f"refs/heads/iteratr/{session}", "--"]
    out = subprocess.run(args, cwd=origin, capture_output=True, text=True).stdout  # no branch yet: none
    return [int(line) for line in out.split() if line.strip().isdigit()]


def lease_of(origin: Path, session: str = "SPEC") -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"refs/iteratr/leases/{session}"],
        cwd=origin,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or None
