"""Fixtures for the end-to-end tests with the real opencode.

- ``opencode_binary`` (session): the pinned opencode, installed into a cache by ``.ci/install-opencode.sh`` if
  needed. Where it cannot be had, the test fails under CI (``CI`` set) and is skipped, with the reason, elsewhere.
- ``model_server``: a running :class:`ScriptedModelServer` (default script: ``diligent_agent``), stopped after
  the test.
- ``opencode_env``: an :class:`OpencodeEnv` pointing opencode at ``model_server``, with HOME and XDG dirs in the
  test's tmp dir; pass ``opencode_env.env`` to ``run_cli`` and ``opencode_env.agent_command`` to ``--agent``.
- ``claude_bin_dir``, ``codex_bin_dir``, ``gemini_bin_dir`` (session): the folder holding that preset's pinned agent
  (``agents.find_or_install``), failing in CI and skipped elsewhere when it cannot be installed, like opencode.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .agents import AgentUnavailable, find_or_install
from .model_server import ScriptedModelServer
from .opencode_env import OpencodeEnv, OpencodeUnavailable, find_or_install_opencode, make_opencode_env

# Captured at import, before any test isolates HOME: the install cache lives under the real HOME.
_REAL_ENVIRON = dict(os.environ)


def _in_ci(environ: dict[str, str]) -> bool:
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def opencode_binary() -> Path:
    try:
        return find_or_install_opencode(_REAL_ENVIRON)
    except OpencodeUnavailable as exc:
        if _in_ci(_REAL_ENVIRON):
            pytest.fail(f"opencode is required in CI and could not be installed: {exc}", pytrace=False)
        pytest.skip(f"opencode not available (set ITERATR_OPENCODE_BIN or install npm): {exc}")


@pytest.fixture(scope="session")
def claude_bin_dir() -> Path:
    """The folder holding the claude preset's pinned ``claude-code-acp`` (installed from npm into the cache)."""
    return _agent_bin_dir("claude")


@pytest.fixture(scope="session")
def gemini_bin_dir() -> Path:
    """The folder holding the gemini preset's pinned ``gemini`` (Gemini CLI, from npm into the cache)."""
    return _agent_bin_dir("gemini")


@pytest.fixture(scope="session")
def codex_bin_dir() -> Path:
    """The folder holding the codex preset's pinned ``codex-acp`` (from npm into the cache)."""
    return _agent_bin_dir("codex")


def _agent_bin_dir(name: str) -> Path:
    try:
        return find_or_install(name, _REAL_ENVIRON)
    except AgentUnavailable as exc:
        if _in_ci(_REAL_ENVIRON):
            pytest.fail(f"the {name} agent is required in CI and could not be installed: {exc}", pytrace=False)
        pytest.skip(f"the {name} agent is not available (npm needed): {exc}")


@pytest.fixture
def model_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer() as server:
        yield server


@pytest.fixture
def opencode_env(opencode_binary: Path, model_server: ScriptedModelServer, tmp_path: Path) -> OpencodeEnv:
    return make_opencode_env(opencode_binary, model_server.base_url, tmp_path / "opencode")
