"""Agent presets: the ACP agents iteratr knows by name (``--agent claude``), and what each one takes to run.

A preset is one row of :data:`PRESETS`: the command that starts the agent in ACP mode, the npm package and the
version the end-to-end tests drove (``tests/e2e/test_presets_e2e.py``), the provider API it speaks, how a model is
chosen, the environment it needs (API key variables), how it is pointed at another server (base URL and key
settings), and how it reports usage. Only agents proven end to end, offline, against a scripted model server are
presets; the README's agent table (held to this one by ``tests/agent/test_presets.py``) says what was verified.

How the ``agent`` setting is read (``command_line``):
- a value that is exactly a preset's name is that preset (its name wins over a program of the same name:
  ``claude`` and ``gemini`` alone are not ACP agents);
- anything else is a command line, split like a shell, as before.
``require_installed`` (before a build touches git) tells an unknown preset from a one-word command of your own:
one word (no ``/``, no space) that is not a preset and not a program on PATH is an unknown preset (exit 2, listing
the presets); a preset whose program is missing is exit 1 with its install command.

The standard library and ``iteratr.errors`` only: ``config.Config.agent_argv`` imports it (lazily).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass

from iteratr.errors import AgentError, UsageError

# One word that could be a preset's name: a program named with no path and no arguments.
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    command: tuple[str, ...]  # argv; command[0] is looked up on PATH
    package: str  # the npm package that installs command[0]
    version_tested: str  # the version tests/e2e drove end to end
    provider_api: str  # what it speaks to the model provider (what the e2e server speaks)
    model_selection: str  # how iteratr's --model reaches it
    key_env: tuple[str, ...]  # API key variables, any one is enough; () = it keeps its own credentials
    key_note: str  # the other ways it can be logged in, for doctor
    base_url: str  # the settings that point it at another server (a proxy, a gateway, the tests' server)
    usage: str  # how it reports tokens and cost, and what iteratr reads
    verified: str  # what the end-to-end test checks with it
    root_env: str = ""  # a variable the agent insists on being exactly "1" before it runs as root ("": none)

    @property
    def install(self) -> str:
        return f"npm install -g {self.package}@{self.version_tested}"

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)

    def runs(self, argv: list[str]) -> bool:
        """Whether ``argv`` runs this preset's agent (its program, by file name, with its arguments)."""
        head, *args = self.command
        return bool(argv) and os.path.basename(argv[0]) == head and argv[1 : 1 + len(args)] == args


_E2E = "planning, 2 tasks with a commit each, a user message delivered, the session completing, token counts"

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="opencode",
            title="opencode",
            command=("opencode", "acp"),
            package="opencode-ai",
            version_tested="1.18.33",
            provider_api="OpenAI chat completions (and every provider opencode supports)",
            model_selection="ACP session config option `model` (provider/model)",
            key_env=(),
            key_note="opencode keeps its own credentials (`opencode auth login`) or reads its providers' variables",
            base_url="a provider in opencode.json (`provider.<id>.options.baseURL`, `apiKey`); OPENCODE_CONFIG names "
            "the file",
            usage="ACP reports the turn's last model call only; iteratr reads `opencode export <session>` (all calls, "
            "cost in USD)",
            verified=_E2E + " (from opencode's record), a pre_iteration hook's output in the prompt",
        ),
        Preset(
            name="claude",
            title="Claude Code (the claude-code-acp adapter)",
            command=("claude-code-acp",),
            package="@zed-industries/claude-code-acp",
            version_tested="0.16.2",
            provider_api="Anthropic Messages",
            model_selection="`session/set_model` (default, opus, haiku, …; or ANTHROPIC_MODEL)",
            key_env=("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
            key_note="or log in once with `claude /login`; as root Claude Code also needs IS_SANDBOX=1",
            base_url="ANTHROPIC_BASE_URL (no /v1) with ANTHROPIC_API_KEY; CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 "
            "keeps it off other hosts",
            usage="ACP reports none; iteratr reads Claude Code's transcript (~/.claude/projects/…/<session>.jsonl): "
            "input tokens of every call; output tokens as it records them (the count at each answer's start); "
            "no cost",
            verified=_E2E + " (input exact; output as Claude Code records it); the typed MCP tools "
            "(mcp__iteratr__task_add, …)",
            root_env="IS_SANDBOX",  # else: "--dangerously-skip-permissions cannot be used with root/sudo privileges"
        ),
        Preset(
            name="codex",
            title="Codex (the codex-acp adapter)",
            command=("codex-acp",),
            package="@zed-industries/codex-acp",
            version_tested="0.16.0",
            provider_api="OpenAI Responses (Codex no longer speaks chat completions)",
            model_selection="ACP session config option `model` (gpt-5.5, gpt-5.4-mini, …)",
            key_env=("OPENAI_API_KEY", "CODEX_API_KEY"),
            key_note="or log in with ChatGPT once in `codex`, or a provider's own env_key variable",
            base_url='a provider in $CODEX_HOME/config.toml: `model_provider = "p"` and `[model_providers.p]` '
            '`base_url` (ending in /v1), `env_key`, `wire_api = "responses"`; where Codex\'s Linux sandbox cannot '
            'run (a container), `sandbox_mode = "danger-full-access"`',
            usage="ACP reports no token counts; iteratr reads Codex's rollout ($CODEX_HOME/sessions/…/rollout-…-"
            "<session>.jsonl): the thread's token totals; no cost",
            verified=_E2E + " (from Codex's rollout, exact); the typed MCP tools (mcp__iteratr__task_add, …)",
        ),
        Preset(
            name="gemini",
            title="Gemini CLI",
            command=("gemini", "--experimental-acp"),
            package="@google/gemini-cli",
            version_tested="0.61.0",
            provider_api="Gemini API (generateContent, streamed)",
            model_selection="`session/set_model` (auto, gemini-2.5-pro, …; or `gemini --model`)",
            key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            key_note="or log in with Google once in `gemini`, or use Vertex AI (GOOGLE_GENAI_USE_VERTEXAI=true)",
            base_url="GOOGLE_GEMINI_BASE_URL (Gemini CLI then authenticates as a gateway, sending GEMINI_API_KEY)",
            usage="the prompt's totals over every model call in the ACP answer's `_meta.quota.token_count`; no cost",
            verified=_E2E + " (the agent's own per-turn totals); the typed MCP tools (mcp_iteratr_task_add, …) in a "
            "folder it trusts (GEMINI_CLI_TRUST_WORKSPACE=true)",
        ),
    )
}


def find(value: str) -> Preset | None:
    """The preset ``value`` names, if it is exactly a preset's name."""
    return PRESETS.get(value.strip())


def command_line(value: str) -> list[str]:
    """The argv the ``agent`` setting stands for: a preset's command, or the value split like a shell."""
    preset = find(value)
    return list(preset.command) if preset is not None else shlex.split(value)


def preset_of(argv: list[str]) -> Preset | None:
    """The preset whose agent ``argv`` runs (also through a path: ``/opt/bin/opencode acp``), if any."""
    return next((preset for preset in PRESETS.values() if preset.runs(argv)), None)


def names() -> str:
    return ", ".join(PRESETS)


def unknown_message(value: str) -> str:
    word = value.strip()
    return (
        f"unknown agent preset {word!r}; the presets are {names()}. A program of your own: give its path "
        f"(./{word}) or its arguments, e.g. '{word} --acp'"
    )


def is_unknown(value: str, path: str | None = None) -> bool:
    """One word, not a preset, and no program of that name on PATH: meant as a preset that does not exist."""
    word = value.strip()
    return bool(_WORD.fullmatch(word)) and word not in PRESETS and shutil.which(word, path=path) is None


def require_installed(value: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The agent's argv, once its program is found on PATH.

    Raises ``UsageError`` (exit 2) for an unknown preset, ``AgentError`` (exit 1) for a missing program, with the
    preset's install command when it is one.
    """
    path = (os.environ if env is None else env).get("PATH")
    argv = command_line(value)
    if argv and shutil.which(argv[0], path=path) is not None:
        return argv
    preset = find(value) or preset_of(argv)  # the default, 'opencode acp', is the opencode preset's command too
    if preset is not None:
        raise AgentError(
            f"the {preset.name} agent is not installed: {argv[0]} is not on PATH", hint=f"install it: {preset.install}"
        )
    if is_unknown(value, path):
        raise UsageError(unknown_message(value))
    raise AgentError(
        f"agent command not found: {argv[0] if argv else value}",
        hint="install it, or set --agent / ITERATR_AGENT / config key agent",
    )


def key_missing(preset: Preset, env: Mapping[str, str]) -> bool:
    """True when the preset needs an API key variable and none of them is set (it may still be logged in)."""
    return bool(preset.key_env) and not any(env.get(name, "").strip() for name in preset.key_env)


def root_refused(preset: Preset, env: Mapping[str, str]) -> bool:
    """True when this process runs as root and the preset's agent will refuse to, lacking its ``root_env``.

    Only ``1`` will do: Claude Code tests ``IS_SANDBOX !== "1"``, so ``IS_SANDBOX=yes`` (or ``true``) is refused too.
    """
    return bool(preset.root_env) and os.geteuid() == 0 and env.get(preset.root_env) != "1"


def installed(env: Mapping[str, str] | None = None) -> list[Preset]:
    """The presets whose program is on PATH, in table order (for ``iteratr setup``)."""
    path = (os.environ if env is None else env).get("PATH")
    return [preset for preset in PRESETS.values() if shutil.which(preset.command[0], path=path) is not None]
