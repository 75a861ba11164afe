"""``iteratr demo``: a whole session, start to finish, in a temporary repository.

The agent is ``iteratr.agent.scripted``, a small ACP agent that follows the prompt by calling
``iteratr tool`` like a real coding agent would, so no network, API key or model is needed. What
runs is the real thing otherwise: the ACP client, the event log, hooks, the inbox and one git
commit per iteration.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from iteratr import gitrepo
from iteratr.output import Printer

DEMO_SPEC = """\
# Greeter

A tiny greeting library, built one task per iteration.

## Tasks
- [ ] Write greet(name) returning "Hello, <name>!"
- [ ] Add a --shout option that upper-cases the greeting
- [ ] Document both in the README
"""

# The second hook stands in for you: after iteration #1 it sends the agent a message with
# `iteratr say`, as you would from another terminal, and the agent acts on it in the next prompt.
DEMO_HOOKS = """\
version: 1
hooks:
  post_iteration:
    - command: "ls work 2>/dev/null | wc -l | xargs echo files in work/:"
      pipe_output: true
    - command: >-
        [ "$ITERATR_ITERATION" != 1 ] ||
        $ITERATR_BIN say -n greeter "Add a task: Write a CHANGELOG entry"
"""


def _git(cwd: Path, *args: str) -> str:
    return gitrepo.run_git(cwd, *args).out


def make_demo_repo(root: Path) -> Path:
    repo = root / "greeter"
    (repo / "specs").mkdir(parents=True)
    (repo / "specs" / "greeter.md").write_text(DEMO_SPEC)
    (repo / ".iteratr.hooks.yml").write_text(DEMO_HOOKS)
    (repo / "README.md").write_text("# greeter\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "iteratr demo")
    _git(repo, "config", "user.email", "demo@iteratr.invalid")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Greeter: spec and hooks")
    return repo


def run(*, keep: bool, out: Printer | None = None) -> int:
    """Build the demo session in a temporary repository, show its history; remove it unless ``keep``."""
    from iteratr.commands import build as buildcmd

    out = Printer() if out is None else out
    root = Path(tempfile.mkdtemp(prefix="iteratr-demo-"))
    old_cwd = Path.cwd()
    try:
        repo = make_demo_repo(root)
        out.text(f"demo: a temporary repository at {repo} with the spec specs/greeter.md:\n")
        out.text("  " + DEMO_SPEC.replace("\n", "\n  ").rstrip() + "\n")
        out.text(
            "The agent is a scripted one (no network, no keys). After iteration #1 a hook stands in for you\n"
            "and sends it a message with `iteratr say` (look for >>>); the agent adds the task it asks for.\n"
        )
        agent = shlex.join([sys.executable, "-m", "iteratr.agent.scripted", "--mode", "follow"])
        os.chdir(repo)
        os.environ.setdefault("ITERATR_RETRY_DELAY", "0")
        # The scripted agent is `python -m iteratr.agent.scripted`: make this iteratr importable for it
        # even when running from a checkout rather than an install. Only the demo's agent sees this.
        package_parent = str(Path(__file__).resolve().parents[2])
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        # trust: the demo's repository and its hooks file were written just now by iteratr itself.
        request = buildcmd.BuildRequest(
            spec="specs/greeter.md", agent=agent, headless=True, iterations=10, name="greeter", trust=True
        )
        code = buildcmd.run(request)
        out.text("\ngit log --oneline iteratr/greeter:")
        out.text("  " + _git(repo, "log", "--oneline", "iteratr/greeter").rstrip().replace("\n", "\n  "))
        out.text("\nthe last commit:")
        out.text("  " + _git(repo, "show", "--stat", "--format=%B", "iteratr/greeter").rstrip().replace("\n", "\n  "))
        if keep:
            out.text(f"\nkept: {repo}  (try: cd {repo} && iteratr status -n greeter)")
        return code
    finally:
        os.chdir(old_cwd)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
