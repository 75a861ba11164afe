"""Helpers shared by the loop's in-process tests and its subprocess contract tests: hooks files and the log."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

from tests.conftest import FAST_ENV, ITERATR_CMD, git, read_events, run_cli

HOOKS_FILE = ".iteratr.hooks.yml"
Hook = Mapping[str, Any]


def write_hooks(repo: Path, hooks: Mapping[str, Sequence[Hook]]) -> None:
    """Write and commit a hooks file on main; each command is JSON-quoted, which YAML reads as is."""
    lines = ["version: 1", "hooks:"]
    for hook_type, entries in hooks.items():
        lines.append(f"  {hook_type}:")
        for entry in entries:
            lines.append(f"    - command: {json.dumps(entry['command'])}")
            for key in ("timeout", "pipe_output"):
                if key in entry:
                    lines.append(f"      {key}: {json.dumps(entry[key])}")
    (repo / HOOKS_FILE).write_text("\n".join(lines) + "\n")
    git(repo, "add", HOOKS_FILE)
    git(repo, "commit", "-q", "-m", "hooks")


def marker(markers: Path, text: str) -> str:
    """A command appending ``text`` (template variables allowed) to the markers file."""
    return f'echo "{text}" >> {shlex.quote(str(markers))}'


def read_markers(markers: Path) -> list[str]:
    return markers.read_text().splitlines() if markers.exists() else []


def events(session_dir: Path) -> list[dict[str, Any]]:
    """Whole lines of the event log (a line being written is skipped)."""
    try:
        blob = (session_dir / "events.jsonl").read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in blob[: blob.rfind("\n") + 1].splitlines() if line.strip()]


def of_type(session_dir: Path, type_: str) -> list[dict[str, Any]]:
    return [e for e in events(session_dir) if e["type"] == type_]


def message_texts(session_dir: Path) -> list[str]:
    return [e["data"]["text"] for e in of_type(session_dir, "user.message")]


# -- builds as a user runs them ---------------------------------------------------------------------


def build(cwd: Path, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> str:
    result = run_cli("build", "--headless", *args, cwd=cwd, env={**FAST_ENV, **(env or {})}, expect=expect)
    return result.stdout + result.stderr


def started(cwd: Path, session: str = "SPEC") -> list[int]:
    events = read_events(cwd, session)
    return [int(cast(dict[str, Any], e["data"])["n"]) for e in events if e["type"] == "iteration.started"]


class Background:
    """``iteratr build`` running in the background, its output going to a file we can poll."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.out_path = cwd.parent / f"build-{time.monotonic_ns()}.out"
        self._out: IO[str] = self.out_path.open("w")
        self.proc = subprocess.Popen(
            [*ITERATR_CMD, "build", "--headless", *args],
            cwd=cwd,
            env={**os.environ, **FAST_ENV, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a job in a terminal
        )

    def ctrl_c(self) -> None:
        """What a terminal does on Ctrl+C: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def output(self) -> str:
        return self.out_path.read_text()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
