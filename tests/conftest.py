"""Shared fixtures: real temp git repos with a fixed identity, and a guard that keeps tests out of the real HOME."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# A command line that runs this checkout's iteratr, whether or not it is pip-installed.
ITERATR_CMD = [sys.executable, str(REPO_ROOT / "iteratr.py")]

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
}


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every test gets its own HOME and XDG dirs, and no iteratr/git settings leak in from the developer's shell."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    for var in list(os.environ):
        if var.startswith("ITERATR_") or var.startswith("GIT_") or var == "NO_COLOR":
            monkeypatch.delenv(var, raising=False)
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    # The tests write their repositories' hooks and iteratr.yml themselves, so those are trusted, as a user's
    # own are after `iteratr trust`. The trust boundary's tests take this away (the `untrusted` fixture).
    monkeypatch.setenv("ITERATR_TRUST", "1")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    (home / ".gitconfig").write_text(
        "[init]\n\tdefaultBranch = main\n[user]\n\tname = Test User\n\temail = user@example.com\n"
    )
    yield home


@pytest.fixture
def untrusted(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ITERATR_TRUST: a repository's files that need trust are refused until trusted, as for a user."""
    monkeypatch.delenv("ITERATR_TRUST", raising=False)


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository on branch main with one commit."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# test repo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.args = proc.args

    def __repr__(self) -> str:
        return (
            f"<iteratr {self.args[2:]!r} exit={self.returncode}>\n--- stdout ---\n{self.stdout}"
            f"\n--- stderr ---\n{self.stderr}"
        )


def run_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    input: str | None = None,
    expect: int | None = 0,
    timeout: float = 60,
) -> CliResult:
    """Run the real iteratr CLI in a subprocess; on an unexpected exit status, fail showing its output."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [*ITERATR_CMD, *args],
        cwd=cwd,
        env=full_env,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result = CliResult(proc)
    if expect is not None and result.returncode != expect:
        pytest.fail(f"expected exit {expect}, got {result.returncode}\n{result!r}", pytrace=False)
    return result


# -- building with the scripted (fake) ACP agent ------------------------------------------------------

THREE_TASK_SPEC = """\
# Three tasks

## Tasks
- [ ] First task
- [ ] Second task
- [ ] Third task
"""


def fake_agent(*modes: str, state_file: Path | None = None, models: str | None = None) -> str:
    """The ``--agent`` command line of ``iteratr.agent.scripted``: one mode, or a per-prompt script."""
    import shlex

    args = [sys.executable, "-m", "iteratr.agent.scripted"]
    if len(modes) == 1 and state_file is None:
        args += ["--mode", modes[0]]
    else:
        if state_file is None:
            raise ValueError("a script of several modes needs a state_file")
        args += ["--script", ",".join(modes), "--state-file", str(state_file)]
    if models:
        args += ["--models", models, "--default-model", models.split(",")[0]]
    return shlex.join(args)


# Settings that keep loop tests quick: no backoff between retries.
FAST_ENV = {"ITERATR_RETRY_DELAY": "0", "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture
def spec_repo(repo: Path) -> Path:
    """A repository on main whose committed specs/SPEC.md lists three tasks."""
    (repo / "specs").mkdir()
    (repo / "specs" / "SPEC.md").write_text(THREE_TASK_SPEC)
    git(repo, "add", "specs/SPEC.md")
    git(repo, "commit", "-q", "-m", "spec")
    return repo


def read_events(repo: Path, session: str = "SPEC") -> list[dict[str, object]]:
    import json

    path = repo / ".iteratr" / session / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- builds in the background ---------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Background:
    """A real `iteratr build` running in the background, its output going to a file (never an unread pipe)."""

    def __init__(self, args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [*ITERATR_CMD, *args],
                cwd=cwd,
                env={**os.environ, **FAST_ENV, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text()

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl+C, as a user would press it; returns the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def background(tmp_path: Path) -> Iterator[Callable[..., Background]]:
    started: list[Background] = []

    def start(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Background:
        bg = Background(list(args), cwd, tmp_path / f"build-{len(started)}.out", env)
        started.append(bg)
        return bg

    yield start
    for bg in started:
        bg.kill()
