"""The environment each preset's real agent runs in for the end-to-end tests: its own home (and config) under a
temporary folder, its program first on PATH, and a fake key for the scripted server it is pointed at. Shared by
``test_presets_e2e`` (the shell commands) and ``test_presets_mcp`` (the typed MCP tools)."""

from __future__ import annotations

import os
from pathlib import Path

from .anthropic_server import AnthropicServer
from .gemini_server import GeminiServer
from .responses_server import ResponsesServer

CODEX_CONFIG = """model = "gpt-5.4-mini"
model_provider = "scripted"
# Codex's Linux sandbox cannot start in this container (it panics); iteratr's work tree is the boundary here.
sandbox_mode = "danger-full-access"

[model_providers.scripted]
name = "Scripted"
base_url = "{base_url}"
env_key = "SCRIPTED_API_KEY"
wire_api = "responses"
"""


def first_on_path(bin_dir: Path) -> str:
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"


def claude_env(bin_dir: Path, home: Path, server: AnthropicServer) -> dict[str, str]:
    """Claude Code with ``home`` (made here) as its home and config, pointed at ``server``."""
    home.mkdir()
    env = {
        "PATH": first_on_path(bin_dir),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": server.root_url,
        "ANTHROPIC_API_KEY": "sk-ant-scripted-test-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    if os.geteuid() == 0:  # Claude Code refuses to run as root outside a sandbox it is told of
        env["IS_SANDBOX"] = "1"
    return env


def gemini_env(bin_dir: Path, home: Path, server: GeminiServer) -> dict[str, str]:
    """Gemini CLI with ``home`` (made here) as its home, pointed at ``server``."""
    (home / ".gemini").mkdir(parents=True)
    # No usage statistics: nothing to send anywhere but the scripted server.
    (home / ".gemini" / "settings.json").write_text('{"privacy": {"usageStatisticsEnabled": false}}\n')
    return {
        "PATH": first_on_path(bin_dir),
        "HOME": str(home),
        "GOOGLE_GEMINI_BASE_URL": server.root_url,
        "GEMINI_API_KEY": "gemini-scripted-test-key",
    }


def codex_env(bin_dir: Path, home: Path, server: ResponsesServer) -> dict[str, str]:
    """Codex with ``home`` as its home and ``home/.codex`` (made here) as CODEX_HOME, whose config.toml names
    ``server`` as its provider."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True)
    (codex_home / "config.toml").write_text(CODEX_CONFIG.format(base_url=server.base_url))
    return {
        "PATH": first_on_path(bin_dir),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "SCRIPTED_API_KEY": "codex-scripted-test-key",
    }
