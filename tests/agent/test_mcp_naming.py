"""How each agent names iteratr's MCP tools (``mcp_servers.TOOL_PREFIXES``), for the prompt to teach them; the
namings themselves are seen in the agents' model requests by tests/e2e/test_opencode_mcp.py and test_presets_mcp.py.
"""

from __future__ import annotations

from iteratr.agent import mcp_servers
from iteratr.agent.events import AgentInfo

SESSION_ENV = {"ITERATR_SESSION": "S", "ITERATR_DATA_DIR": "/d/.iteratr", "ITERATR_BIN": "/py -m iteratr"}


def prefix(name: str, env: dict[str, str]) -> str | None:
    server = mcp_servers.iteratr_server({**SESSION_ENV, **env})
    return mcp_servers.describe(AgentInfo(name, "1"), server, {**SESSION_ENV, **env}).mcp_prefix


def test_each_preset_agent_is_taught_its_own_naming() -> None:
    assert prefix("opencode", {}) == "iteratr_"
    assert prefix("@zed-industries/claude-code-acp", {}) == "mcp__iteratr__"
    assert prefix("codex-acp", {}) == "mcp__iteratr__"
    assert prefix("gemini-cli", {"GEMINI_CLI_TRUST_WORKSPACE": "true"}) == "mcp_iteratr_"


def test_gemini_is_taught_the_shell_unless_its_environment_trusts_the_folder() -> None:
    """Gemini CLI connects no stdio MCP server in an untrusted folder (the default): naming tools it does not offer
    would leave the model calling tools that are not there."""
    assert prefix("gemini-cli", {}) is None
    assert prefix("gemini-cli", {"GEMINI_CLI_TRUST_WORKSPACE": "1"}) is None  # Gemini CLI reads "true" only
    assert prefix("gemini-cli", {"GEMINI_CLI_TRUST_WORKSPACE": "true", "GEMINI_RESTRICTED_MODE": "true"}) is None
    assert mcp_servers.describe(AgentInfo("gemini-cli", "0.61.0"), None, {}).mcp_prefix is None


def test_no_server_given_no_tools_taught() -> None:
    off = {"ITERATR_MCP": "0"}
    assert prefix("@zed-industries/claude-code-acp", off) is None
    assert prefix("codex-acp", off) is None
