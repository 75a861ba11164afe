"""Misbehaving modes of the scripted agent (``iteratr.agent.scripted``): what real agents do with a shell.

Each row of issue 12's first table, done through real processes: the agent damages the session log, rewinds,
amends or moves the branch, leaves a huge file, starts processes that escape its process group, or floods
iteratr with text. Most first work diligently (the ``follow`` mode) so that the session goes on, then
misbehave at the end of the turn, as an agent whose last shell command went wrong would.

Modes:
  truncate-log   empties events.jsonl, then follows          rm-session   follows, then ``rm -rf .iteratr/S``
  reset-hard     follows, then ``git reset --hard HEAD~2``    amend        follows, then ``git commit --amend``
  elsewhere      follows, then ``git checkout -b elsewhere`` and commits there
  big-file       follows, then leaves a 100 MB sparse file big.bin
  escape         follows, then ``setsid nohup sleep 600 &`` and a double-forked sleep
  detach-hang    follows, then detaches HEAD and waits (to be killed there)
  forge-line     follows, then ``echo '{..."task.status"..."completed"...}' >> events.jsonl`` for every task
  flood          streams FLOOD bytes of text in lines (64 KiB chunks), and some stderr
  flood-line     streams FLOOD bytes of text as one line, in 64 KiB chunks
  flood-message  sends FLOOD bytes of text as one protocol message (over iteratr's limit)

FLOOD is ``$FAKE_AGENT_FLOOD_BYTES``, 50 MB by default. ``$FAKE_AGENT_SLEEP_TAG`` names the escaping sleeps
(``sleep 600.<tag>``) so that a test can look for exactly its own.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

CHUNK = 64 * 1024
Handler = Callable[[Any, str, str], Awaitable[str]]


def flood_bytes() -> int:
    return int(os.environ.get("FAKE_AGENT_FLOOD_BYTES", str(50 * 1000 * 1000)))


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=False, stdin=subprocess.DEVNULL, capture_output=True)


def _session_dir(cwd: Path) -> Path:
    return cwd / os.environ.get("ITERATR_DATA_DIR", ".iteratr") / os.environ.get("ITERATR_SESSION", "SPEC")


def _truncate_log(cwd: Path) -> None:
    log = _session_dir(cwd) / "events.jsonl"
    if log.exists():
        log.write_bytes(b"")


def _forge_line(cwd: Path) -> None:
    """A well-formed completion of every task, written by hand, not through ``iteratr tool``."""
    import json
    import shlex

    log = _session_dir(cwd) / "events.jsonl"
    ids = []
    for raw in log.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(raw)
            if event.get("type") == "task.added":
                ids.append(event["data"]["id"])
    for task in ids:
        line = {"v": 1, "ts": "2026-01-01T00:00:00.000000Z", "type": "task.status", "iteration": 0}
        text = json.dumps({**line, "data": {"id": task, "status": "completed"}})
        subprocess.run(["sh", "-c", f"echo {shlex.quote(text)} >> {shlex.quote(str(log))}"], check=True)


def _rm_session(cwd: Path) -> None:
    subprocess.run(["rm", "-rf", str(_session_dir(cwd))], check=False)


def _reset_hard(cwd: Path) -> None:
    _git(cwd, "reset", "--quiet", "--hard", "HEAD~2")


def _amend(cwd: Path) -> None:
    _git(cwd, "add", "-A", "--", "work")
    _git(cwd, "commit", "--quiet", "--amend", "-m", "the agent rewrote this")


def _elsewhere(cwd: Path) -> None:
    _git(cwd, "checkout", "--quiet", "-b", "elsewhere")
    (cwd / "elsewhere.txt").write_text("x\n")
    _git(cwd, "add", "elsewhere.txt")
    _git(cwd, "commit", "--quiet", "-m", "the agent's commit elsewhere")


def _big_file(cwd: Path) -> None:
    with open(cwd / "big.bin", "wb") as f:
        f.truncate(100 * 1024 * 1024)  # sparse: costs no disk


def _escape(cwd: Path) -> None:
    tag = os.environ.get("FAKE_AGENT_SLEEP_TAG", "1")
    script = f"setsid nohup sleep 600.{tag} >/dev/null 2>&1 & ( ( sleep 601.{tag} >/dev/null 2>&1 & ) & )"
    subprocess.run(["sh", "-c", script], cwd=cwd, check=True, stdin=subprocess.DEVNULL)


AFTER_FOLLOW: dict[str, Callable[[Path], None]] = {
    "rm-session": _rm_session,
    "reset-hard": _reset_hard,
    "amend": _amend,
    "elsewhere": _elsewhere,
    "big-file": _big_file,
    "escape": _escape,
    "forge-line": _forge_line,
}
MODES = [*AFTER_FOLLOW, "truncate-log", "detach-hang", "flood", "flood-line", "flood-message"]


async def run(agent: Any, mode: str, sid: str, text: str) -> str:
    """Answer one prompt in ``mode``; ``agent`` is the ScriptedAgent (its ``_follow``, ``_say``, sessions)."""
    cwd = Path(agent._sessions[sid]["cwd"])
    if mode in AFTER_FOLLOW:
        result: str = await agent._follow(sid, text)
        AFTER_FOLLOW[mode](cwd)
        await agent._say(sid, f"and then: {mode}\n")
        return result
    if mode == "truncate-log":
        _truncate_log(cwd)
        answer: str = await agent._follow(sid, text)
        return answer
    if mode == "detach-hang":
        await agent._follow(sid, text)
        (cwd / "detached.txt").write_text("written on a detached HEAD\n", encoding="utf-8")
        _git(cwd, "switch", "--quiet", "--detach")
        _git(cwd, "add", "detached.txt")
        _git(cwd, "commit", "--quiet", "-m", "the agent's commit on a detached HEAD")
        await agent._say(sid, "wandered off to a detached HEAD\n")
        print("scripted agent: detached", file=sys.stderr, flush=True)
        await agent._cancelled[sid].wait()
        return "cancelled"
    return await _flood(agent, mode, sid)


async def _flood(agent: Any, mode: str, sid: str) -> str:
    total = flood_bytes()
    if mode == "flood-message":
        await agent._say(sid, "y" * total)
        return "end_turn"
    line = "z" * 99 + "\n" if mode == "flood" else ""
    chunk = line * (CHUNK // 100) if line else "w" * CHUNK
    sent = 0
    while sent < total:
        await agent._say(sid, chunk)
        sent += len(chunk)
        if mode == "flood" and sent % (1024 * 1024) < len(chunk):
            sys.stderr.write("e" * 8191 + "\n")  # and a chatty stderr: agent.log stays bounded
    sys.stderr.flush()
    await agent._say(sid, "\nthe end of the flood\n")
    return "end_turn"
