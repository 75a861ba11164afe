"""Permission-asking modes of the scripted agent (``iteratr.agent.scripted``): ask, and act only when allowed.

Each action is asked for as a real agent asks (``session/request_permission`` with the tool call's kind, title,
raw input and locations, offering allow always, allow once, reject once and reject always, "always" first), done
only when an allow option comes back, and reported in the reply as ``asked <action>: <option id>, done`` or
``…, not done``. Then the mode works diligently (``follow``), so the session goes on. A test can so check the
effect (a file written or not, a branch pushed or not), not only the answer.

Modes:
  ask-edit     edit-inside: write inside.txt in the work tree; edit-outside: write outside.txt in
               ``$FAKE_AGENT_OUTSIDE`` (default: the work tree's parent)
  ask-execute  push: run ``git push origin main``; ls: run ``ls`` and keep its listing in ls.txt
  ask-fetch    fetch: "fetch" https://example.com/ (no network: writes fetched.txt)
  ask-all      all five, in that order
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from acp.schema import ToolKind

URL = "https://example.com/"


@dataclass(frozen=True)
class Action:
    name: str
    kind: ToolKind
    title: str
    raw_input: dict[str, Any]
    paths: list[str]
    act: Callable[[], None]


def _write(path: Path, text: str) -> Callable[[], None]:
    def act() -> None:
        path.write_text(text, encoding="utf-8")

    return act


def _run(cwd: Path, argv: list[str], keep: Path | None = None) -> Callable[[], None]:
    def act() -> None:
        done = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
        if keep is not None:
            keep.write_text(done.stdout, encoding="utf-8")

    return act


def actions(cwd: Path) -> dict[str, Action]:
    inside = cwd / "inside.txt"
    outside = Path(os.environ.get("FAKE_AGENT_OUTSIDE") or cwd.parent) / "outside.txt"
    push, i, o = ["git", "push", "--quiet", "origin", "main"], str(inside), str(outside)
    found = [
        Action("edit-inside", "edit", "write inside.txt", {"path": i}, [i], _write(inside, "in\n")),
        Action("edit-outside", "edit", "write outside.txt", {"path": o}, [o], _write(outside, "x\n")),
        Action("push", "execute", "git push origin main", {"command": "git push origin main"}, [], _run(cwd, push)),
        Action("ls", "execute", "ls", {"command": "ls"}, [], _run(cwd, ["ls"], cwd / "ls.txt")),
        Action("fetch", "fetch", f"fetch {URL}", {"url": URL}, [], _write(cwd / "fetched.txt", f"pretend {URL}\n")),
    ]  # fmt: skip
    return {action.name: action for action in found}


MODES = {
    "ask-edit": ("edit-inside", "edit-outside"),
    "ask-execute": ("push", "ls"),
    "ask-fetch": ("fetch",),
    "ask-all": ("edit-inside", "edit-outside", "push", "ls", "fetch"),
}


async def run(agent: Any, mode: str, sid: str, text: str) -> str:
    """Answer one prompt in ``mode``; ``agent`` is the ScriptedAgent (its client, ``_say``, ``_follow``)."""
    from acp import schema as s

    cwd = Path(agent._sessions[sid]["cwd"])
    every = actions(cwd)
    options = [
        s.PermissionOption(option_id=kind.replace("_", "-"), name=kind, kind=kind)
        for kind in ("allow_always", "allow_once", "reject_once", "reject_always")
    ]
    for name in MODES[mode]:
        action = every[name]
        agent._tool_ids += 1
        tool_id = f"call-{agent._tool_ids}"
        locations = [s.ToolCallLocation(path=p) for p in action.paths] or None
        start = s.ToolCallStart(
            session_update="tool_call",
            tool_call_id=tool_id,
            title=action.title,
            kind=action.kind,
            status="pending",
            raw_input=action.raw_input,
            locations=locations,
        )
        await agent._client.session_update(sid, start)
        call = s.ToolCallUpdate(
            tool_call_id=tool_id,
            title=action.title,
            kind=action.kind,
            raw_input=action.raw_input,
            locations=locations,
        )
        answer = await agent._client.request_permission(session_id=sid, tool_call=call, options=options)
        outcome = answer.outcome
        got = outcome.option_id if isinstance(outcome, s.AllowedOutcome) else "cancelled"
        allowed = got.startswith("allow-")
        if allowed:
            action.act()
        await agent._finish_tool(sid, tool_id, "completed" if allowed else "failed", "")
        await agent._say(sid, f"asked {name}: {got}, {'done' if allowed else 'not done'}\n")
    result: str = await agent._follow(sid, text)
    return result
