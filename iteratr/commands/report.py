"""``iteratr report``: one self-contained HTML page of a session, to read offline or attach to a PR.

The session is read exactly as ``iteratr status`` reads it (``status.find``): from the checkout or
worktree that has ``iteratr/S`` checked out, else from the branch's last commit. So it works from any
checkout, from any subdirectory (the data dir comes from the one resolver in ``iteratr.paths``), and for a
session known only from its branch. Nothing here takes the session's lock: the page shows the log as it is.

Without ``-o`` the page goes to ``<data_dir>/S/report.html`` beside the session's other runtime files. It is
never committed: ``report.html`` is in the data dir's ``.gitignore`` and, for checkouts on other branches, in
git's ``info/exclude``, which this command brings up to date before writing. Both writes are atomic: a failed
one leaves no half-written page.
"""

from __future__ import annotations

import os
from pathlib import Path

from iteratr import fsutil, paths, safe_open
from iteratr.commands import report_html
from iteratr.commands.status import Repo, find, require_session
from iteratr.errors import UsageError
from iteratr.output import Printer
from iteratr.session.events import utc_now


def run(
    *,
    name: str | None,
    output: str | None,
    data_dir: str | None,
    cwd: Path | None = None,
    out: Printer | None = None,
) -> int:
    """Write the report of session ``name`` (default: ``$ITERATR_SESSION``, or the only session) and print its path."""
    from iteratr import config

    cwd = Path.cwd() if cwd is None else cwd
    out = Printer() if out is None else out
    cfg = config.load_config(cwd=cwd, flags={"data_dir": data_dir} if data_dir else None)
    repo = Repo(cwd)
    data_rel = paths.data_dir_in_tree(cfg.data_dir, repo.root, cwd)
    name = _choose(repo, name)
    require_session(repo, name)
    found = find(repo, name, data_rel)
    # The state through the store's snapshot; the events streamed once for what only their order says (the
    # iterations each task took, the burn-down), never held as a list. The page counts all of the history and shows
    # the last of it (report_scan), so its memory and size stay bounded (README, "Report").
    events = found.store.iter_events() if found.store is not None else iter(())
    page = report_html.render(
        found.state(), events, session=name, branch=paths.branch_name(name), source=found.source, generated=utc_now()
    ).encode("utf-8")
    session_dir = found.session_dir
    if output is not None:
        target = cwd / Path(output).expanduser()
        _write_file(target, page)
    else:
        # The worktree that runs the session, when there is one: its runtime files live there.
        folder = session_dir if session_dir is not None else repo.root / data_rel / name
        target = folder / paths.REPORT_FILE
        _exclude_report(repo.root, data_rel)
        folder.parent.parent.mkdir(parents=True, exist_ok=True)  # the data dir's parent; safe_open makes the rest
        safe_open.atomic_write(folder.parent, f"{name}/{paths.REPORT_FILE}", page, 0o644)
    out.text(paths.shown(target, cwd))
    return 0


def _choose(repo: Repo, name: str | None) -> str:
    if name is not None:
        return name
    env_name = os.environ.get("ITERATR_SESSION")
    if env_name:
        return env_name
    known = repo.sessions()
    if len(known) == 1:
        return known[0]
    if not known:
        raise UsageError("no session in this repository (`iteratr build` starts one)")
    raise UsageError(f"several sessions ({', '.join(known)}): choose one with --name")


def _write_file(target: Path, page: bytes) -> None:
    try:
        fsutil.atomic_write(target, page)
    except OSError as exc:
        raise UsageError(f"cannot write the report to {target}: {exc.strerror or exc}") from None


def _exclude_report(root: Path, data_rel: Path) -> None:
    """The page must never be committed, on whichever branch this checkout is: git's info/exclude lists the
    runtime files (report.html among them) for every branch and worktree."""
    from iteratr.gitrepo import GitRepo
    from iteratr.session_branch import exclude_runtime_files

    exclude_runtime_files(GitRepo.open(root), data_rel)
