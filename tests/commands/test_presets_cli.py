"""Agent presets through the real CLI: ``--agent <preset>`` in build, doctor and setup, as a person runs them.

A preset's program is faked by a script of that name on PATH that runs the scripted agent, so these tests are fast
and offline; ``tests/e2e/test_presets_e2e.py`` drives the real, pinned agents.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import FAST_ENV, ITERATR_CMD, fake_agent, git, run_cli

NO_KEYS = {"ANTHROPIC_API_KEY": "", "ANTHROPIC_AUTH_TOKEN": "", "CLAUDE_CODE_OAUTH_TOKEN": ""}


def fake_program(folder: Path, name: str, *modes: str) -> Path:
    """``folder/name``: a script that runs the scripted agent (``modes``), standing in for a preset's program."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    # It answers --version as a real program does (doctor asks), else it would wait on stdin as an agent.
    path.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo "{name} 0.0.1" && exit 0\nexec {fake_agent(*modes)}\n')
    path.chmod(0o755)
    return path


def only_on_path(*folders: Path) -> dict[str, str]:
    """A PATH of ``folders`` and the system's own (git, sh): no preset installed by the developer is found."""
    return {"PATH": os.pathsep.join([*(str(f) for f in folders), "/usr/bin", "/bin"])}


def untouched(repo: Path, head: str) -> None:
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "branch", "--list", "iteratr/*") == ""
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert not (repo / ".iteratr").exists()


def test_an_unknown_preset_is_exit_2_listing_the_presets_before_git_is_touched(spec_repo: Path) -> None:
    head = git(spec_repo, "rev-parse", "HEAD")
    result = run_cli("build", "--headless", "--agent", "claud", cwd=spec_repo, env=only_on_path(), expect=2)
    assert "unknown agent preset 'claud'; the presets are opencode, claude, codex, gemini" in result.stderr
    untouched(spec_repo, head)


def test_a_preset_whose_agent_is_missing_is_exit_1_with_the_install_command(spec_repo: Path) -> None:
    head = git(spec_repo, "rev-parse", "HEAD")
    result = run_cli("build", "--headless", "--agent", "codex", cwd=spec_repo, env=only_on_path(), expect=1)
    assert "the codex agent is not installed: codex-acp is not on PATH" in result.stderr
    assert "npm install -g @zed-industries/codex-acp@0.16.0" in result.stderr
    untouched(spec_repo, head)


def test_a_preset_runs_its_program_from_path(spec_repo: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "claude-code-acp", "follow")
    env = {**FAST_ENV, **only_on_path(bin_dir)}
    result = run_cli("build", "--headless", "--agent", "claude", "-i", "5", cwd=spec_repo, env=env)
    assert "| agent: claude |" in result.stdout
    assert "stopped: the session is complete" in result.stdout


def test_a_one_word_command_of_your_own_still_runs(spec_repo: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "my-agent", "follow")
    env = {**FAST_ENV, **only_on_path(bin_dir)}
    result = run_cli("build", "--headless", "--agent", "my-agent", "-i", "5", cwd=spec_repo, env=env)
    assert "stopped: the session is complete" in result.stdout


def test_doctor_names_a_missing_presets_install_command(repo: Path) -> None:
    result = run_cli("doctor", cwd=repo, env={**only_on_path(), "ITERATR_AGENT": "gemini"}, expect=1)
    out = result.stdout
    assert "fail  agent command: the gemini preset's gemini is not installed" in out
    assert "fix: install it: `npm install -g @google/gemini-cli@0.61.0`" in out
    assert "skip  agent speaks ACP: not tried" in out


def test_doctor_checks_a_presets_program_acp_and_key(repo: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "claude-code-acp", "ok")
    env = {**FAST_ENV, **only_on_path(bin_dir), **NO_KEYS, "ITERATR_AGENT": "claude"}
    out = run_cli("doctor", cwd=repo, env=env).stdout
    assert f"ok    agent command: the claude preset: {bin_dir / 'claude-code-acp'} (`claude-code-acp --version`" in out
    keys = "ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN or CLAUDE_CODE_OAUTH_TOKEN"
    assert f"warn  claude credentials: none of {keys} is set" in out
    assert "ANTHROPIC_BASE_URL" in out  # the fix says how to point it elsewhere too
    assert "ok    agent speaks ACP: iteratr-scripted-agent" in out
    assert (
        "warn  agent version: iteratr-scripted-agent 0.1.0; the claude preset was tested with "
        "@zed-industries/claude-code-acp 0.16.2" in out
    )
    keyed = run_cli("doctor", cwd=repo, env={**env, "ANTHROPIC_API_KEY": "sk-secret-value"}).stdout
    assert "ok    claude credentials: ANTHROPIC_API_KEY is set" in keyed
    assert "sk-secret-value" not in keyed


# An ACP agent that refuses every session until the client calls authenticate with the env_var method it lists
# (which it accepts only with OPENAI_API_KEY set), as codex-acp 0.16.0 does.
NEEDS_A_KEY = """import json, os, sys
METHOD = {"type": "env_var", "id": "openai-api-key", "name": "Use OPENAI_API_KEY", "vars": [{"name": "OPENAI_API_KEY"}]}
authenticated = False
for line in sys.stdin:
    message = json.loads(line)
    method, answer = message.get("method"), None
    if method == "initialize":
        info = {"name": "needs-a-key", "version": "1"}
        answer = {"result": {"protocolVersion": 1, "agentInfo": info, "authMethods": [METHOD]}}
    elif method == "authenticate" and os.environ.get("OPENAI_API_KEY"):
        authenticated, answer = True, {"result": {}}
    elif method == "session/new" and authenticated:
        answer = {"result": {"sessionId": "s-1"}}
    elif "id" in message:
        answer = {"error": {"code": -32000, "message": "Authentication required"}}
    if answer is not None:
        print(json.dumps({"jsonrpc": "2.0", "id": message["id"], **answer}), flush=True)
"""


def needs_a_key(folder: Path, name: str, first: str = "") -> None:
    """``folder/name``: a program that runs :data:`NEEDS_A_KEY` (after the shell line ``first``, if any)."""
    folder.mkdir()
    (folder / "agent.py").write_text(NEEDS_A_KEY)
    program = folder / name
    program.write_text(f"#!/bin/sh\n{first}exec {sys.executable} {folder / 'agent.py'}\n")
    program.chmod(0o755)


def test_doctor_says_which_key_to_set_when_a_presets_agent_opens_no_session_without_one(
    repo: Path, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    needs_a_key(bin_dir, "codex-acp", '[ "$1" = --version ] && exit 2\n')
    env = {**only_on_path(bin_dir), "ITERATR_AGENT": "codex", "OPENAI_API_KEY": "", "CODEX_API_KEY": ""}
    out = run_cli("doctor", cwd=repo, env=env, expect=1).stdout
    assert "fail  agent speaks ACP: agent codex-acp did not open a session: it failed: Authentication required" in out
    assert "fix: set OPENAI_API_KEY or CODEX_API_KEY (or log in with ChatGPT" in out
    # With the variable set, iteratr authenticates with the method that names it (ACP's env_var), as it must for
    # codex-acp, which opens no session on a key in the environment alone.
    keyed = run_cli("doctor", cwd=repo, env={**env, "OPENAI_API_KEY": "sk-test-123456"}).stdout
    assert "ok    agent speaks ACP: needs-a-key 1" in keyed


@pytest.mark.parametrize("is_sandbox", ["", "yes"])  # Claude Code takes only IS_SANDBOX=1 (`!== "1"`)
def test_doctor_says_claude_code_needs_is_sandbox_as_root(repo: Path, tmp_path: Path, is_sandbox: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root is refused by Claude Code")
    bin_dir = tmp_path / "bin"
    needs_a_key(bin_dir, "claude-code-acp")
    env = {
        **only_on_path(bin_dir),
        "ITERATR_AGENT": "claude",
        "ANTHROPIC_API_KEY": "sk-x-123456",
        "IS_SANDBOX": is_sandbox,
    }
    out = run_cli("doctor", cwd=repo, env=env, expect=1).stdout
    assert "fix: set IS_SANDBOX=1: run as root, Claude Code" in out


def test_doctor_fails_an_unknown_preset_listing_the_presets(repo: Path) -> None:
    out = run_cli("doctor", cwd=repo, env={**only_on_path(), "ITERATR_AGENT": "cluade"}, expect=1).stdout
    assert "fail  agent command: unknown agent preset 'cluade'; the presets are opencode, claude, codex, gemini" in out


def spawn_setup(repo: Path, bin_dir: Path) -> pexpect.spawn:
    """``iteratr setup --project`` in a terminal, with only ``bin_dir``'s programs on PATH and no agent set."""
    env = {
        **os.environ,
        **FAST_ENV,
        **only_on_path(bin_dir),
        "TERM": "xterm-256color",
        "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect does not answer cursor-position requests
    }
    env.pop("ITERATR_AGENT", None)
    child = pexpect.spawn(
        ITERATR_CMD[0],
        [*ITERATR_CMD[1:], "setup", "--project"],
        cwd=str(repo),
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 200),
    )
    child.logfile_read = io.StringIO()
    return child


def finish(child: pexpect.spawn) -> str:
    """What the terminal showed, once ``child`` has ended with exit 0."""
    child.expect(pexpect.EOF)
    child.close()
    transcript = str(child.logfile_read.getvalue())
    assert child.exitstatus == 0, transcript
    return transcript


def test_setup_offers_the_presets_found_on_path_and_saves_the_choice(repo: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "codex-acp", "ok")
    fake_program(bin_dir, "gemini", "ok")
    child = spawn_setup(repo, bin_dir)
    child.expect("agents found on PATH: codex, gemini")
    child.expect("Agent:")
    child.send("\x1b[A\r")  # from the default (keep: opencode acp, last) up to gemini
    child.expect("Model:")
    child.send("\r")  # the agent's default
    child.expect(r"auto_commit\)\?")
    child.send("y")
    child.expect("wrote .*: agent: gemini, model: ")
    transcript = finish(child)
    text = (repo / "iteratr.yml").read_text()
    assert "agent: gemini\n" in text and "auto_commit: true\n" in text, transcript


def test_setup_offers_the_default_agent_as_its_preset_not_twice(repo: Path, tmp_path: Path) -> None:
    """The default agent, ``opencode acp``, is the opencode preset: offered once, and chosen by default."""
    bin_dir = tmp_path / "bin"
    opencode = fake_program(bin_dir, "opencode", "ok")
    # The scripted agent offers no models over ACP, so setup asks `opencode models`: answer it as opencode does.
    opencode.write_text(opencode.read_text().replace("\n", '\n[ "$1" = models ] && echo "p/m1" && exit 0\n', 1))
    child = spawn_setup(repo, bin_dir)
    child.expect("agents found on PATH: opencode")
    child.expect("Agent:")
    child.send("\r")  # the default
    child.expect("Model:")
    child.send("\r")
    child.expect(r"auto_commit\)\?")
    child.send("y")
    transcript = finish(child)
    assert "keep: opencode acp" not in transcript
    assert "agent: opencode\n" in (repo / "iteratr.yml").read_text(), transcript
