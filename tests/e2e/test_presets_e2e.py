"""End to end per agent preset: ``iteratr build --agent <preset>`` drives the real, pinned agent through a whole
session against a scripted model server on 127.0.0.1 speaking that agent's provider API. No network beyond npm (for
the install, cached), no API key of anyone's.

- ``claude``: ``claude-code-acp`` (npm ``@zed-industries/claude-code-acp``, the version in the preset table), which
  runs Claude Code, pointed at an Anthropic Messages server with ``ANTHROPIC_BASE_URL``.
- ``codex``: ``codex-acp`` (npm ``@zed-industries/codex-acp``), pointed at an OpenAI Responses server by a provider in
  ``$CODEX_HOME/config.toml`` (Codex no longer speaks chat completions).
- ``gemini``: ``gemini --experimental-acp`` (npm ``@google/gemini-cli``), pointed at a Gemini API server with
  ``GOOGLE_GEMINI_BASE_URL``.
- ``opencode``: ``tests/e2e/test_opencode_e2e.py`` runs it as ``--agent opencode``.

Each run checks (``session_run``) planning, two tasks done with one commit each, a user message delivered, the
session completing, and here the token counts, against what the server served.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.conftest import run_cli

from .anthropic_server import AnthropicServer
from .gemini_server import GeminiServer
from .preset_env import claude_env, codex_env, gemini_env
from .responses_server import ResponsesServer
from .session_run import BUILD_TIMEOUT, Ran, run_two_task_session

FOOTER_RE = re.compile(r"^=== #(\d+) (ok|failed|timeout|interrupted) \| ")


def footers(stdout: str) -> dict[int, str]:
    return {int(m.group(1)): line for line in stdout.splitlines() if (m := FOOTER_RE.match(line))}


def check_usage(ran: Ran, side: list[str], source: str, exact_output: bool = True) -> None:
    """Each iteration's recorded usage (from ``source``) against the calls served for it: the input exactly; the
    output exactly, or (``exact_output`` False) at least one per call and at most what was served; the total, and
    the total in the iteration's footer. The calls' usage must differ, so a count of one call cannot pass."""
    found = footers(ran.result.stdout)
    detail = f"\nended: {ran.ended}\nserved: {ran.served}\nside requests: {side[:10]}{ran.info}"
    assert any(len({c.total_tokens for c in calls}) > 1 for calls in ran.served.values()), detail
    for n, calls in ran.served.items():
        usage = ran.ended[n].get("usage") or {}
        assert usage.get("source") == source, f"#{n}: {usage}{detail}"
        assert usage.get("input_tokens") == sum(c.prompt_tokens for c in calls), f"#{n}: {usage}{detail}"
        if exact_output:
            assert usage.get("output_tokens") == sum(c.completion_tokens for c in calls), f"#{n}: {usage}{detail}"
            assert usage.get("total_tokens") == sum(c.total_tokens for c in calls), f"#{n}: {usage}{detail}"
        else:
            output = usage.get("output_tokens")
            assert isinstance(output, int) and len(calls) <= output <= sum(c.completion_tokens for c in calls), detail
            assert usage.get("total_tokens") == usage["input_tokens"] + output, f"#{n}: {usage}{detail}"
        assert f"tokens: {usage['total_tokens']:,}" in found[n], f"#{n}: {found.get(n)}{detail}"


@pytest.mark.timeout(BUILD_TIMEOUT + 90)
def test_claude_preset_runs_a_whole_session_against_a_scripted_anthropic_server(
    repo: Path, claude_bin_dir: Path, tmp_path: Path
) -> None:
    with AnthropicServer() as server:
        env = claude_env(claude_bin_dir, tmp_path / "claude-home", server)
        ran = run_two_task_session(repo, "claude", env, server, model="haiku")  # session/set_model
        side = server.side_requests
        models = set(server.models)
    assert models and all("haiku" in m for m in models), f"the model on the wire: {models}"

    # Usage: Claude Code's transcript (agent-record). Every agent-turn call's input is there, exactly; Claude Code
    # records output as the count at each answer's start (1 per call here), not the final one, so output is bounded.
    check_usage(ran, side, "agent-record", exact_output=False)


@pytest.mark.timeout(BUILD_TIMEOUT + 90)
def test_gemini_preset_runs_a_whole_session_against_a_scripted_gemini_api_server(
    repo: Path, gemini_bin_dir: Path, tmp_path: Path
) -> None:
    with GeminiServer() as server:
        env = gemini_env(gemini_bin_dir, tmp_path / "gemini-home", server)
        ran = run_two_task_session(repo, "gemini", env, server, model="gemini-2.5-pro")  # session/set_model
        side = server.side_requests
        models = set(server.models)
        turns = server.turns
    assert models == {"gemini-2.5-pro"}, f"the model on the wire: {models}"
    # In a folder it does not trust (any new one), Gemini CLI connects no stdio MCP server: iteratr's tools are not
    # offered, and the prompt teaches the shell commands (test_presets_mcp.py: the typed tools, trusted).
    assert not any("iteratr" in tool for turn in turns for tool in turn.tools), ran.info
    assert all(" tool task-" in turn.prompt and "`mcp_iteratr_" not in turn.prompt for turn in turns), ran.info

    # Usage: Gemini CLI's own per-prompt totals (_meta.quota.token_count), source "turn": every agent-turn call,
    # none of the side calls (model routing, the next-speaker check), which it counts apart.
    check_usage(ran, side, "turn")


@pytest.mark.timeout(BUILD_TIMEOUT + 90)
def test_codex_preset_runs_a_whole_session_against_a_scripted_responses_server(
    repo: Path, codex_bin_dir: Path, tmp_path: Path
) -> None:
    with ResponsesServer() as server:
        env = codex_env(codex_bin_dir, tmp_path / "codex-home", server)
        ran = run_two_task_session(repo, "codex", env, server, model="gpt-5.4")  # the config option
        side = server.side_requests
        models = set(server.models)
    assert models == {"gpt-5.4"}, f"the model on the wire: {models}"

    # Usage: Codex's rollout (agent-record), the thread's totals: every call of the turn, exactly.
    check_usage(ran, side, "agent-record")


def test_codex_authenticates_with_the_api_key_in_its_environment(
    repo: Path, codex_bin_dir: Path, tmp_path: Path
) -> None:
    """codex-acp opens no session on OPENAI_API_KEY alone ("Authentication required") until the client calls ACP's
    ``authenticate`` with the env_var method naming it: doctor's probe (initialize, session/new) shows iteratr
    does, and that without the key the doctor says which variable to set."""
    home = tmp_path / "codex-home"
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    env = {
        "PATH": f"{codex_bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "ITERATR_AGENT": "codex",
        "OPENAI_API_KEY": "",
        "CODEX_API_KEY": "",
    }
    out = run_cli("doctor", cwd=repo, env=env, expect=1).stdout
    assert "fail  agent speaks ACP: agent codex-acp did not open a session: it failed: Authentication required" in out
    assert "fix: set OPENAI_API_KEY or CODEX_API_KEY" in out
    out = run_cli("doctor", cwd=repo, env={**env, "OPENAI_API_KEY": "sk-scripted-test-key"}).stdout
    assert "ok    agent speaks ACP: codex-acp 0.16.0" in out, out
    assert (codex_home / "auth.json").exists()  # codex keeps the login it was given
