"""The preset table and how the ``agent`` setting is read: a preset's name, a command line, an unknown preset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from iteratr.agent import presets, usage
from iteratr.config import config_without_files
from iteratr.errors import AgentError, UsageError


def program(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_every_preset_is_complete_and_installs_its_tested_version() -> None:
    assert list(presets.PRESETS) == ["opencode", "claude", "codex", "gemini"]
    for name, preset in presets.PRESETS.items():
        assert preset.name == name and preset.command and preset.package and preset.version_tested
        assert preset.provider_api and preset.model_selection and preset.base_url and preset.usage and preset.verified
        assert preset.install == f"npm install -g {preset.package}@{preset.version_tested}"
        assert not presets.is_unknown(name, "/nonexistent")


def test_the_readme_agent_table_is_the_preset_table() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### The agent presets", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(presets.PRESETS)
    for row, preset in zip(rows, presets.PRESETS.values(), strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        package = f"`{preset.package}` {preset.version_tested}"
        assert cells[:3] == [f"`{preset.name}`", f"`{preset.command_line}`", package]


def test_opencodes_tested_version_is_the_one_its_e2e_test_installs() -> None:
    """opencode has its own install script and e2e helper (the other presets install from this table): the version
    the table and README say was tested is the one they pin."""
    from tests.e2e.opencode_env import INSTALL_SCRIPT, OPENCODE_VERSION

    tested = presets.PRESETS["opencode"].version_tested
    assert tested == OPENCODE_VERSION
    assert f'VERSION="${{ITERATR_OPENCODE_VERSION:-{tested}}}"' in INSTALL_SCRIPT.read_text(encoding="utf-8")


def test_a_preset_name_is_its_command_and_anything_else_a_command_line() -> None:
    assert presets.command_line("claude") == ["claude-code-acp"]
    assert presets.command_line(" gemini ") == ["gemini", "--experimental-acp"]
    assert presets.command_line("opencode") == ["opencode", "acp"]
    assert presets.command_line("codex") == ["codex-acp"]
    assert presets.command_line("python '/tmp/my agent.py' --acp") == ["python", "/tmp/my agent.py", "--acp"]
    assert presets.command_line("./claude") == ["./claude"]  # a path is a program, not the preset


def test_the_config_agent_argv_reads_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITERATR_AGENT", "claude")
    assert config_without_files(dict(os.environ)).agent_argv == ["claude-code-acp"]


def test_preset_of_knows_a_preset_run_through_a_path() -> None:
    assert presets.preset_of(["/opt/x/opencode", "acp"]) is presets.PRESETS["opencode"]
    assert presets.preset_of(["/opt/x/opencode", "serve"]) is None
    assert presets.preset_of(["gemini", "--experimental-acp", "-m", "x"]) is presets.PRESETS["gemini"]
    assert presets.preset_of(["python", "agent.py"]) is None


def test_an_unknown_one_word_preset_is_a_usage_error_listing_the_presets(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        presets.require_installed("claud", {"PATH": str(tmp_path)})
    assert err.value.exit_code == 2
    assert "unknown agent preset 'claud'" in err.value.message
    assert "opencode, claude, codex, gemini" in err.value.message


def test_a_one_word_program_on_path_is_a_command(tmp_path: Path) -> None:
    program(tmp_path, "my-agent")
    assert presets.require_installed("my-agent", {"PATH": str(tmp_path)}) == ["my-agent"]
    assert not presets.is_unknown("my-agent", str(tmp_path))


def test_a_missing_preset_program_is_exit_1_with_its_install_command(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as err:
        presets.require_installed("claude", {"PATH": str(tmp_path)})
    assert err.value.exit_code == 1
    assert "the claude agent is not installed: claude-code-acp is not on PATH" in err.value.message
    assert err.value.hint == "install it: npm install -g @zed-industries/claude-code-acp@0.16.2"
    program(tmp_path, "claude-code-acp")
    assert presets.require_installed("claude", {"PATH": str(tmp_path)}) == ["claude-code-acp"]


def test_the_default_agent_missing_names_the_opencode_install_command(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as err:  # 'opencode acp', the default, is the opencode preset's command line
        presets.require_installed("opencode acp", {"PATH": str(tmp_path)})
    assert err.value.hint == f"install it: {presets.PRESETS['opencode'].install}"


def test_a_missing_command_line_is_exit_1_as_before(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="agent command not found: no-such-agent"):
        presets.require_installed("no-such-agent --acp", {"PATH": str(tmp_path)})


def test_key_missing_and_installed(tmp_path: Path) -> None:
    claude = presets.PRESETS["claude"]
    assert presets.key_missing(claude, {})
    assert not presets.key_missing(claude, {"ANTHROPIC_API_KEY": "k"})
    assert not presets.key_missing(presets.PRESETS["opencode"], {})  # keeps its own credentials
    program(tmp_path, "codex-acp")
    assert [p.name for p in presets.installed({"PATH": str(tmp_path)})] == ["codex"]


# -- the usage each preset's agent records (iteratr.agent.usage) ----------------------------------------------


def test_claude_transcript_counts_each_message_once() -> None:
    def line(kind: str, message_id: str, inp: int, out: int, cache: int = 0) -> str:
        usage_ = {"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": cache}
        return json.dumps({"type": kind, "message": {"id": message_id, "usage": usage_, "content": []}})

    lines = [
        json.dumps({"type": "user", "message": {"content": "hi"}}),
        line("assistant", "m1", 100, 1, cache=20),
        line("assistant", "m1", 100, 1, cache=20),  # a second content block of the same message
        line("assistant", "m2", 200, 3),
        "not json",
    ]
    got = usage.from_claude_transcript(lines)
    assert got is not None and (got.input_tokens, got.output_tokens, got.total_tokens) == (320, 4, 324)
    assert got.source == "agent-record" and got.cost is None
    assert usage.from_claude_transcript([]) is None


def test_claude_usage_waits_for_the_turns_last_call(tmp_path: Path) -> None:
    folder = tmp_path / ".claude" / "projects" / "-repo"
    folder.mkdir(parents=True)
    answer = {"type": "assistant", "message": {"id": "m1", "usage": {"input_tokens": 5, "output_tokens": 2}}}
    answer["message"]["content"] = [{"type": "text", "text": "done"}]  # type: ignore[index]
    (folder / "abc-123.jsonl").write_text(json.dumps(answer) + "\n")
    got = usage.claude_turn_usage("abc-123", env={"HOME": str(tmp_path)}, settle=0.1)
    assert got is not None and got.total_tokens == 7
    assert usage.claude_turn_usage("nope", env={"HOME": str(tmp_path)}, settle=0.0) is None


def test_codex_rollout_gives_the_last_totals(tmp_path: Path) -> None:
    def count(inp: int, out: int) -> str:
        totals = {"input_tokens": inp, "cached_input_tokens": 0, "output_tokens": out, "total_tokens": inp + out}
        payload = {"type": "token_count", "info": {"total_token_usage": totals}}
        return json.dumps({"type": "event_msg", "payload": payload})

    lines = [count(10, 1), count(25, 4), json.dumps({"type": "event_msg", "payload": {"type": "task_complete"}})]
    got = usage.from_codex_rollout(lines)
    assert got is not None and (got.input_tokens, got.output_tokens, got.total_tokens) == (25, 4, 29)
    day = tmp_path / "sessions" / "2026" / "11" / "30"
    day.mkdir(parents=True)
    (day / "rollout-2026-11-30T05-00-00-0aa-bb.jsonl").write_text("\n".join(lines) + "\n")
    read = usage.record_usage(["codex-acp"], "0aa-bb", cwd=tmp_path, env={"CODEX_HOME": str(tmp_path)})
    assert read == got


def test_gemini_meta_usage_is_the_turns_own_total() -> None:
    meta = {"quota": {"token_count": {"input_tokens": 30, "output_tokens": 5}, "model_usage": []}}
    got = usage.usage_from_meta(meta)
    assert got is not None and (got.input_tokens, got.output_tokens, got.total_tokens) == (30, 5, 35)
    assert got.source == "turn"
    assert usage.usage_from_meta({}) is None and usage.usage_from_meta(None) is None
    assert usage.usage_from_meta({"quota": {"token_count": {"input_tokens": "x"}}}) is None


def test_a_session_id_that_is_not_a_plain_name_reads_no_record(tmp_path: Path) -> None:
    assert usage.record_usage(["codex-acp"], "../x", cwd=tmp_path, env={"CODEX_HOME": str(tmp_path)}) is None
    assert usage.record_usage(["claude-code-acp"], "*", cwd=tmp_path, env={"HOME": str(tmp_path)}) is None
    assert usage.has_record(["/x/claude-code-acp"]) and usage.has_record(["codex-acp"])
    assert not usage.has_record(["gemini", "--experimental-acp"])
