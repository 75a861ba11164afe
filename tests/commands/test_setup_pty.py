"""``iteratr setup`` and the build wizard on a real pseudo-terminal (pexpect), as a person runs them."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pexpect
import pytest

from iteratr import config
from tests.conftest import FAST_ENV, ITERATR_CMD, THREE_TASK_SPEC, fake_agent, git, read_events

DOWN = "\x1b[B"
ENTER = "\r"


def spawn(*args: str, cwd: Path, env: dict[str, str] | None = None) -> pexpect.spawn:
    full_env = {
        **os.environ,
        **FAST_ENV,
        "TERM": "xterm-256color",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor-position requests
        **(env or {}),
    }
    child = pexpect.spawn(
        ITERATR_CMD[0],
        [*ITERATR_CMD[1:], *args],
        cwd=str(cwd),
        env=full_env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    child.logfile_read = io.StringIO()  # the whole transcript, for assertions and failure messages
    return child


def transcript(child: pexpect.spawn) -> str:
    return str(child.logfile_read.getvalue())


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return int(child.exitstatus)


def test_setup_project_on_a_terminal_writes_iteratr_yml(repo: Path) -> None:
    (repo / "iteratr.yml").write_text("# project settings\niterations: 4\n")
    child = spawn("setup", "--project", cwd=repo, env={"ITERATR_AGENT": fake_agent("ok", models="a/x,b/y")})
    child.expect("2 models offered by the agent")
    child.expect("Model:")
    child.send(DOWN + DOWN + ENTER)  # past "(the agent's default)" and a/x
    child.expect(r"auto_commit\)\?")
    child.send("n")
    child.expect("wrote ")
    assert finish(child) == 0, transcript(child)
    assert (repo / "iteratr.yml").read_text() == "# project settings\niterations: 4\nmodel: b/y\nauto_commit: false\n"
    assert not config.global_config_path().exists()


def test_ctrl_c_in_setup_on_a_terminal_exits_130(repo: Path) -> None:
    child = spawn("setup", "--project", cwd=repo, env={"ITERATR_AGENT": fake_agent("ok", models="a/x,b/y")})
    child.expect("Model:")
    child.sendintr()
    child.expect("nothing was written")
    assert finish(child) == 130
    assert not (repo / "iteratr.yml").exists()


@pytest.fixture
def wizard_repo(repo: Path) -> Path:
    (repo / "specs").mkdir()
    (repo / "specs" / "feature.md").write_text(THREE_TASK_SPEC)
    git(repo, "add", "specs")
    git(repo, "commit", "-q", "-m", "specs")
    return repo


def test_build_on_a_terminal_without_a_spec_opens_the_wizard_and_builds(wizard_repo: Path) -> None:
    child = spawn("build", "--agent", fake_agent("follow"), cwd=wizard_repo)
    child.expect("Spec file:")
    child.send(ENTER)  # specs/feature.md
    child.expect("Model:")
    child.send(ENTER)  # the scripted agent lists no models: free text, empty = the agent's default
    child.expect("Prompt template:")
    child.send(ENTER)  # built-in
    child.expect("Session name:")
    child.send(ENTER)
    child.expect("Iterations")
    child.send(ENTER)
    child.expect("the same build without the wizard:")
    child.expect("iteratr build --spec specs/feature.md --agent")
    assert finish(child) == 0, transcript(child)
    assert any(e["type"] == "session.completed" for e in read_events(wizard_repo, "feature"))


def test_build_headless_on_a_terminal_never_asks(wizard_repo: Path) -> None:
    (wizard_repo / "specs" / "feature.md").rename(wizard_repo / "specs" / "elsewhere.md")
    child = spawn("build", "--headless", "--agent", fake_agent("follow"), cwd=wizard_repo)
    child.expect("the wizard is off with --headless")
    assert finish(child) == 2
    assert "Spec file" not in transcript(child)
