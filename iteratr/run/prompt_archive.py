"""The prompts a build sent to the agent, kept so a person can read what the agent was told.

Each iteration's rendered prompt is written to ``.iteratr/S/prompts/<n>.md`` (mode 0600, never through a link:
``safe_open``), only the last ``keep_prompts`` of them kept. The directory is runtime state: git-ignored in the
data dir's ``.gitignore`` (``paths.DATA_DIR_GITIGNORE``), so no commit ever holds a prompt (which may carry the
user's messages and hook output). ``iteratr status -n S --prompt [N]`` prints one (``show``).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

from iteratr import paths, safe_open
from iteratr.errors import UsageError

PROMPTS_DIR = "prompts"
_NAME = re.compile(r"^(\d+)\.md$")


def numbers(session_dir: Path) -> list[int]:
    """The iterations whose prompt is kept, oldest first."""
    try:
        names = os.listdir(session_dir / PROMPTS_DIR)
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(_NAME.match, names) if m)


class PromptArchive:
    """Keeps the last ``keep`` prompts of a session (``keep`` 0: none)."""

    def __init__(self, session_dir: Path, keep: int) -> None:
        self.session_dir = session_dir
        self.keep_last = keep

    def keep(self, n: int, text: str) -> None:
        """Write iteration ``n``'s prompt, then drop the oldest past the bound. A failing disk costs the copy,
        not the iteration."""
        if self.keep_last <= 0:
            return
        data_dir, rel = self.session_dir.parent, f"{self.session_dir.name}/{PROMPTS_DIR}/{n}.md"
        try:
            safe_open.atomic_write(data_dir, rel, text.encode("utf-8", errors="replace"), 0o600, durable=False)
        except OSError:
            return
        for old in numbers(self.session_dir)[: -self.keep_last]:
            with contextlib.suppress(OSError):
                (self.session_dir / PROMPTS_DIR / f"{old}.md").unlink()


def show(session_dir: Path, n: int | None = None) -> tuple[int, str]:
    """(iteration, prompt text) of iteration ``n``'s kept prompt, or of the last one; UsageError if none is kept."""
    kept = numbers(session_dir)
    if not kept:
        raise UsageError(
            f"no prompt is kept for session {session_dir.name} in {session_dir / PROMPTS_DIR}",
            hint="a build keeps its last prompts in the session's work tree, as many as config key keep_prompts says",
        )
    wanted = kept[-1] if n is None else n
    if wanted not in kept:
        raise UsageError(
            f"no prompt of iteration #{wanted} is kept; kept: {', '.join(f'#{k}' for k in kept)}",
            hint="a build keeps only its last prompts, as many as config key keep_prompts says",
        )
    data = safe_open.read_bytes(session_dir.parent, f"{session_dir.name}/{PROMPTS_DIR}/{wanted}.md")
    return wanted, data.decode("utf-8", errors="replace")


def session_dir_for(work_trees: list[Path], data_rel: Path, name: str) -> Path:
    """Where session ``name``'s prompts are: the first of ``work_trees`` (its worktree, then this checkout) that has
    them, else the last one."""
    paths.validate_session_name(name)
    candidates = [top / data_rel / name for top in work_trees]
    return next((d for d in candidates if numbers(d)), candidates[-1])


def print_prompt(*, name: str | None, data_dir: str | None, n: int | None, cwd: Path | None = None) -> str:
    """``iteratr status -n S --prompt [N]``: the text of iteration N's kept prompt (the last one without N), found
    in the session's worktree if it runs in one, else in this checkout (runtime files stay across switches)."""
    from iteratr import config, gitrepo

    if name is None:
        raise UsageError("--prompt needs the session: iteratr status -n NAME --prompt [N]")
    cwd = Path.cwd() if cwd is None else cwd
    cfg = config.load_config(cwd=cwd, flags={"data_dir": data_dir} if data_dir else None)
    found = gitrepo.toplevel(cwd)
    top = found[0] if found is not None else paths.work_tree_top(cwd)
    data_rel = paths.data_dir_in_tree(cfg.data_dir, top, cwd)
    trees = [top]
    if found is not None:
        where = gitrepo.worktrees(top).get(paths.branch_name(name))
        trees = [where, top] if where is not None and where != top else [top]
    number, text = show(session_dir_for(trees, data_rel, name), n)
    return f"# prompt of iteration #{number} of session {name}\n{text}"
