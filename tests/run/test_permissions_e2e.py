"""The permission policy through real processes: ``iteratr build`` and the scripted ACP agent's ``ask-all`` mode
(``iteratr.agent.asking``), which asks for an edit inside and one outside the work tree, ``git push origin main``,
``ls`` and a fetch, and does each only when allowed. One build per policy; each checks the answer the agent got,
the effect (a file written, a branch pushed) or its absence, the ``[permission]`` line and the log line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import fake_agent, git
from tests.run.helpers import build

ONE_TASK_SPEC = "# One task\n\n## Tasks\n- [ ] Write the thing\n"
ACTIONS = ("edit-inside", "edit-outside", "push", "ls", "fetch")
TITLES = {  # action: (tool kind, title)
    "edit-inside": ("edit", "write inside.txt"),
    "edit-outside": ("edit", "write outside.txt"),
    "push": ("execute", "git push origin main"),
    "ls": ("execute", "ls"),
    "fetch": ("fetch", "fetch https://example.com/"),
}


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A repository on main with a one-task spec and a bare ``origin``; a directory outside it."""
    repo, origin, outside = tmp_path / "repo", tmp_path / "origin.git", tmp_path / "elsewhere"
    repo.mkdir()
    outside.mkdir()
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo, "init", "-q", "-b", "main")
    (repo / "specs").mkdir()
    (repo / "specs" / "SPEC.md").write_text(ONE_TASK_SPEC)
    git(repo, "add", "specs/SPEC.md")
    git(repo, "commit", "-q", "-m", "spec")
    git(repo, "remote", "add", "origin", str(origin))
    return {"repo": repo, "origin": origin, "outside": outside, "log": tmp_path / "iteratr.log", "tmp": tmp_path}


def run_asking(world: dict[str, Path], env: dict[str, str] | None = None) -> tuple[str, str]:
    """One build whose planning prompt asks for every action (then the task is done): (output, log file)."""
    agent = fake_agent("ask-all", "follow", state_file=world["tmp"] / "prompts")
    env = {"FAKE_AGENT_OUTSIDE": str(world["outside"]), "ITERATR_LOG_FILE": str(world["log"]), **(env or {})}
    out = build(world["repo"], "--agent", agent, "-i", "1", env=env)
    return out, world["log"].read_text()


def effects(world: dict[str, Path]) -> dict[str, bool]:
    """Which actions happened, seen from their effects (the task's own commit is on iteratr/SPEC, not main)."""
    repo = world["repo"]
    return {
        "edit-inside": (repo / "inside.txt").exists(),
        "edit-outside": (world["outside"] / "outside.txt").exists(),
        "push": bool(git(world["origin"], "for-each-ref", "refs/heads/main")),
        "ls": (repo / "ls.txt").exists(),
        "fetch": (repo / "fetched.txt").exists(),
    }


def check(world: dict[str, Path], out: str, log: str, allowed: dict[str, str]) -> None:
    """``allowed``: action -> the screen's words for its decision ("allowed once: default policy", ...)."""
    lines = out.splitlines()
    for action, words in allowed.items():
        kind, title = TITLES[action]
        got = "allow-once" if words.startswith("allowed once") else "reject-once"
        done = got == "allow-once"
        assert f"  [permission] {title}: {words}" in lines, out
        assert f"  asked {action}: {got}, {'done' if done else 'not done'}" in lines, out
        said = (
            f" INFO iteratr.agent: permission {kind} {title!r}: {'allowed' if done else 'denied'} {kind} {title!r} by "
        )
        assert sum(said in line for line in log.splitlines()) == 1, log  # the decision's own line, at info
    assert effects(world) == {action: words.startswith("allowed") for action, words in allowed.items()}, out
    assert out.count("[permission]") == len(ACTIONS), "only the planning prompt asks; each request shown once"


def test_default_allows_each_request_once_and_shows_it(world: dict[str, Path]) -> None:
    out, log = run_asking(world)
    check(world, out, log, dict.fromkeys(ACTIONS, "allowed once: default policy"))


def test_deny_rejects_everything_and_nothing_happens(world: dict[str, Path]) -> None:
    out, log = run_asking(world, {"ITERATR_PERMISSIONS": "deny"})
    check(world, out, log, dict.fromkeys(ACTIONS, "denied: mode deny"))
    assert "stopped: the session is complete (1 task)." in out  # the work itself went on: tools need no permission


def test_rules_deny_the_push_the_outside_edit_and_the_fetch_only(world: dict[str, Path]) -> None:
    (world["repo"] / "iteratr.yml").write_text(
        "permissions:\n  - 'deny execute \"git push*\"'\n  - deny edit outside-work-tree\n  - deny fetch\n"
    )
    git(world["repo"], "add", "iteratr.yml")
    git(world["repo"], "commit", "-q", "-m", "policy")
    out, log = run_asking(world)
    outside = world["outside"] / "outside.txt"
    check(
        world,
        out,
        log,
        {
            "edit-inside": "allowed once: mode allow",
            "edit-outside": f"denied: rule 2 'deny edit outside-work-tree' ({outside} is outside the work tree)",
            "push": "denied: rule 1 'deny execute \"git push*\"' ('git push origin main')",
            "ls": "allowed once: mode allow",
            "fetch": "denied: rule 3 'deny fetch' (kind fetch)",
        },
    )
