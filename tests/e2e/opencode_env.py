"""Find or install the pinned opencode, and build the config and environment that run it offline.

opencode is installed by ``.ci/install-opencode.sh`` (npm, cached, idempotent). It is pointed at a
:class:`~tests.e2e.model_server.ScriptedModelServer` through a config file (the recipe in
``acp-and-opencode.md``), and its HOME and XDG directories are kept inside a temporary folder so that a test never
reads or writes the developer's real opencode state.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / ".ci" / "install-opencode.sh"
OPENCODE_VERSION = "1.18.33"
PROVIDER = "mock"
MODEL = f"{PROVIDER}/scripted"
INSTALL_TIMEOUT = 600.0


class OpencodeUnavailable(Exception):
    """opencode could not be found or installed; the message says why."""


@dataclass(frozen=True)
class OpencodeEnv:
    """Everything needed to run ``iteratr build`` (or a bare ACP client) against the real opencode offline."""

    binary: Path
    config_path: Path
    home: Path
    env: dict[str, str]
    """Variables to add to the environment of the process that starts opencode (directly or via iteratr)."""
    model: str = MODEL

    @property
    def agent_command(self) -> str:
        """The ``--agent`` value: the opencode binary in ACP mode, shell-quoted."""
        return f"{shlex.quote(str(self.binary))} acp"

    def full_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with :attr:`env` on top."""
        merged = dict(os.environ if base is None else base)
        merged.update(self.env)
        return merged


def _reports_version(binary: Path) -> bool:
    try:
        out = subprocess.run(
            [str(binary), "--version"], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip().endswith(OPENCODE_VERSION)


def find_or_install_opencode(environ: Mapping[str, str]) -> Path:
    """The path of a working opencode ``OPENCODE_VERSION`` binary.

    ``ITERATR_OPENCODE_BIN`` in ``environ`` names one explicitly; otherwise the install script runs (a no-op
    when its cache, ``ITERATR_OPENCODE_CACHE`` or ``$HOME/.cache/iteratr-test/opencode``, is already filled).
    ``environ`` must be the real environment (with the real HOME), not a test's isolated one.
    """
    explicit = environ.get("ITERATR_OPENCODE_BIN")
    if explicit:
        binary = Path(explicit)
        if not _reports_version(binary):
            raise OpencodeUnavailable(f"ITERATR_OPENCODE_BIN={explicit} does not run as opencode {OPENCODE_VERSION}")
        return binary
    env = {**environ, "CI": environ.get("CI", "") or "true"}
    try:
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=INSTALL_TIMEOUT,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise OpencodeUnavailable(f"could not run {INSTALL_SCRIPT}: {exc}") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise OpencodeUnavailable(
            f"{INSTALL_SCRIPT.name} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    binary = Path(lines[-1])
    if not _reports_version(binary):
        raise OpencodeUnavailable(f"{binary} (from {INSTALL_SCRIPT.name}) does not run as opencode {OPENCODE_VERSION}")
    return binary


def opencode_config(base_url: str) -> dict[str, object]:
    """The opencode config that makes ``mock/scripted`` (served at ``base_url``) the only, default model."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Mock",
                "options": {"baseURL": base_url, "apiKey": "x"},
                "models": {"scripted": {"name": "Scripted", "tool_call": True}},
            }
        },
        "model": MODEL,
        "share": "disabled",
        "autoupdate": False,
    }


def make_opencode_env(binary: Path, base_url: str, root: Path) -> OpencodeEnv:
    """Write the config under ``root`` and return the environment that runs ``binary`` offline against it."""
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / "opencode.json"
    config_path.write_text(json.dumps(opencode_config(base_url), indent=2) + "\n", encoding="utf-8")
    home = root / "home"
    env = {
        "OPENCODE_CONFIG": str(config_path),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        # At start-up opencode npm-installs @opencode-ai/plugin into its config dir in the background (about
        # 20 MB per fresh HOME). It works without it; offline mode makes npm give up at once instead of
        # downloading on every test run.
        "npm_config_offline": "true",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
    }
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        Path(env[var]).mkdir(parents=True, exist_ok=True)
    return OpencodeEnv(binary=binary, config_path=config_path, home=home, env=env)
