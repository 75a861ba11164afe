"""Find or install a preset's pinned agent (npm, cached under ~/.cache/iteratr-test/<preset>) for the e2e tests.

The package and version come from the preset table itself (``iteratr.agent.presets``), so the version the README
says was tested is the one these tests install. ``.ci/install-agent.sh`` does the install (idempotent); it prints
the folder holding the program, which a test puts first on PATH so that ``--agent <preset>`` finds it by name.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from iteratr.agent.presets import PRESETS

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / ".ci" / "install-agent.sh"
INSTALL_TIMEOUT = 600.0


class AgentUnavailable(Exception):
    """The agent could not be installed; the message says why."""


def find_or_install(name: str, environ: Mapping[str, str]) -> Path:
    """The folder holding preset ``name``'s program at its tested version (``environ``: the real environment)."""
    preset = PRESETS[name]
    env = {**environ, "CI": environ.get("CI", "") or "true"}
    argv = ["bash", str(INSTALL_SCRIPT), name, preset.package, preset.version_tested, preset.command[0]]
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise AgentUnavailable(f"could not run {INSTALL_SCRIPT}: {exc}") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AgentUnavailable(f"{INSTALL_SCRIPT.name} {name} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    folder = Path(lines[-1])
    if not (folder / preset.command[0]).exists():
        raise AgentUnavailable(f"{folder / preset.command[0]} is missing after {INSTALL_SCRIPT.name}")
    return folder


def main() -> int:
    """Install every preset's pinned agent but opencode's (``.ci/install-opencode.sh`` does that one); for .ci/run."""
    import os
    import sys

    for name in PRESETS:
        if name == "opencode":
            continue
        try:
            print(f"{name}: {find_or_install(name, os.environ)}")
        except AgentUnavailable as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
