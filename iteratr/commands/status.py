"""``iteratr status``: what a session is doing, read without disturbing the run.

A session lives on the branch ``iteratr/S``. Status reads it from the freshest place it can find, in this order
(``iteratr.freshest``):

1. the files of the worktree that has ``iteratr/S`` checked out (a ``--worktree`` run, or this very
   checkout when it is on that branch): a running build writes there first and commits after;
2. the branch itself, its last commit: its session files mirrored under the git dir, only those that changed.

So it works from any checkout of the repository while a run goes on elsewhere. Whether a run is
going on comes from the session lock (``iteratr.runlock``), which every worktree shares.

What is live (tasks, counts, the last notes and iterations, tokens and cost) comes through the store's snapshot,
as an ``iteratr tool`` call reads it; what only the history has (the iterations each shown task took, the
iterations by outcome and time, the runs, the last failure) from a fold kept beside it that takes only the lines
added since (``status_spans``). So a status costs what is live and what was added, never a replay of the log, and
it lists only what it shows (the open tasks and the last closed ones, the last notes; JSON counts the rest).

Nothing here takes the session's lock or writes under the data dir (the caches it keeps are under the git dir):
status is safe to run (and ``--watch``) at any time. It asks git through the git binary, never GitPython, and
imports no agent or template code, so it answers quickly. The data dir is found by ``paths.data_dir_in_tree``,
as every command finds it, so status works from any subdirectory.

``--watch`` redraws the text view every ``WATCH_INTERVAL`` seconds until Ctrl+C, which ends it with
exit status 0: stopping a dashboard is its normal end, not an interruption of work.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from iteratr import freshest, gitrepo, paths
from iteratr.commands import status_detail, status_spans
from iteratr.commands.status_render import NOTES_SHOWN, render, render_line
from iteratr.errors import GitError, IteratrError, UsageError
from iteratr.output import Printer
from iteratr.run import guards
from iteratr.session.state import Iteration

WATCH_INTERVAL = 2.0
RECENT_ITERATIONS = 5


class Repo:
    """What status needs to know about the repository it runs in."""

    def __init__(self, cwd: Path) -> None:
        found = gitrepo.toplevel(cwd)
        if found is None:
            raise GitError(
                f"{cwd} is not in a git work tree", hint="cd into the repository whose sessions you want to see"
            )
        self.root, self.common_dir = found
        self.worktrees = gitrepo.worktrees(self.root)  # branch -> work tree that has it checked out

    def sessions(self) -> list[str]:
        """Names of the sessions with a branch; archived branches (``iteratr/S.archived-...``) are not sessions."""
        names = [
            b.removeprefix("iteratr/") for b in gitrepo.branches(self.root, "iteratr/") if b.startswith("iteratr/")
        ]
        return sorted(n for n in names if paths.NAME_RE.fullmatch(n))

    def blob(self, ref: str, rel: str) -> bytes | None:
        return gitrepo.blob(self.root, ref, rel)


# -- reading one session ---------------------------------------------------------------------------


def _lock_state(repo: Repo, name: str) -> tuple[bool, dict[str, Any] | None]:
    from iteratr.run import runlock

    path = runlock.lock_path(repo.common_dir, name)
    if not path.exists():  # never create lock files from status
        return False, None
    held = runlock.is_held(path)
    return held, runlock.read_holder(path) if held else None


def find(repo: Repo, name: str, data_rel: Path) -> freshest.Found:
    """The freshest copy of the session (see the module docstring), read through the store's snapshot.

    Shared with ``iteratr report``, so both read a session the same way, from a checkout or from its branch.
    """
    return freshest.find(repo.root, repo.common_dir, repo.worktrees, name, data_rel)


def require_session(repo: Repo, name: str) -> None:
    """UsageError (exit 2, one line) unless ``name`` is valid and has its branch ``iteratr/NAME``."""
    paths.validate_session_name(name)
    known = repo.sessions()
    if name not in known:
        raise UsageError(
            f"no session {name!r} in this repository (no branch {paths.branch_name(name)}); "
            + (f"sessions: {', '.join(known)}" if known else "none exists yet (`iteratr build` starts one)")
        )


# What ``collect`` found last, per session, with the version of the log it read (``_log_version``): ``--watch``
# redraws from it while the log is unchanged, so a redraw costs a stat (or one git process), not a replay.
_LAST: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}


def _log_version(repo: Repo, name: str, data_rel: Path) -> Any:
    """What identifies the bytes ``find`` would read: the file's stat, or the blob's id on the branch."""
    branch = paths.branch_name(name)
    where = repo.worktrees.get(branch)
    if where is not None:
        log = where / data_rel / name / paths.EVENTS_FILE
        try:
            st = log.stat()
        except OSError:
            st = None
        if st is not None:  # a close (iteratr.session.segments) replaces events.jsonl: a new inode
            return ("file", str(where), str(log), st.st_ino, st.st_size, st.st_mtime_ns)
    rel = (data_rel / name).as_posix()  # the session's tree: events.jsonl and its closed segments
    done = gitrepo.run_git(repo.root, "rev-parse", "-q", "--verify", f"refs/heads/{branch}:{rel}", check=False)
    return ("tree", done.stdout.strip() if done.returncode == 0 else None)


def collect(repo: Repo, name: str, data_rel: Path) -> dict[str, Any]:
    """Everything status shows about session ``name``, as JSON-ready data; reused while its log is unchanged (only
    whether a run holds the session, and the inbox, are looked at again)."""
    version = _log_version(repo, name, data_rel)
    last = _LAST.get((name, str(data_rel)))
    if last is not None and last[0] == version:
        data = dict(last[1])
        data["running"], data["holder"] = _lock_state(repo, name)
        session_dir = Path(version[2]).parent if version[0] == "file" else None  # as find finds it
        data["inbox_has_text"] = _inbox_has_text(repo, session_dir, name, data_rel)
        return data
    data = _collect(repo, name, data_rel)
    _LAST[(name, str(data_rel))] = (version, data)
    return data


def _inbox_has_text(repo: Repo, session_dir: Path | None, name: str, data_rel: Path) -> bool:
    """Whether the inbox the session's next build takes holds text: in the work tree that has the branch, else (the
    branch checked out nowhere) in this checkout's data dir, where ``say`` writes it."""
    where = session_dir if session_dir is not None else repo.root / data_rel / name
    if not (where / paths.INBOX_FILE).is_file():
        return False
    from iteratr.run import inbox

    return inbox.has_text(where)


def _collect(repo: Repo, name: str, data_rel: Path) -> dict[str, Any]:
    """What status shows, from the live state (the store's snapshot) and the fold of the history it needs (the
    iterations each shown task took, the iterations' totals: ``status_spans``), never a replay of the log."""
    branch = paths.branch_name(name)
    where = repo.worktrees.get(branch)
    found = find(repo, name, data_rel)
    state = found.state()
    history = status_spans.folded(found.log, status_spans.cache_path(repo.common_dir, found.log)) if found.log else None
    history = history if history is not None else status_spans.Folded()
    running, holder = _lock_state(repo, name)
    pending = state.pending_messages()
    inbox_text = _inbox_has_text(repo, found.session_dir, name, data_rel)
    its = history.its.summary()
    in_progress = state.in_progress()
    notes = state.recent_notes(NOTES_SHOWN)
    tasks, closed = status_detail.task_list(state, history.fold)
    return {
        "session": name,
        "branch": branch,
        "source": found.source,
        "work_tree": str(where) if where is not None else None,
        "log": found.label if found.log is not None else None,
        "log_missing": found.label if found.log is None else None,
        "complete": state.complete,
        "running": running,
        "holder": holder,
        "iterations": its["ended"],
        "last_iteration": state.current_iteration if state.next_iteration else None,
        "tasks": state.counts(),
        "task_total": len(state.tasks),
        "in_progress": in_progress.to_dict() if in_progress else None,
        "task_list": tasks,  # the tasks shown: the open ones, then the last closed ones
        "closed_total": closed,
        "spent": status_detail.totals(state, its),
        "recent": [_iteration_json(it) for it in state.recent_iterations(RECENT_ITERATIONS)],
        "notes": [n.to_dict() for n in notes],  # the last ones, as shown; note_total counts them all
        "note_total": state.note_count,
        "pending_messages": [m.to_dict() for m in pending],
        "inbox_has_text": inbox_text,
        "tokens": state.tokens or None,
        "cost": state.cost if state.currency or state.cost else None,
        "currency": state.currency,
        "totals": _totals_json(guards.session_totals(state)),
        "runs": [{"run": run, **_totals_json(guards.run_totals(state, run))} for run in its["runs"]],
        "last_failure": _failure_json(its["last_failure"]),
        "last_activity": history.last_ts,
    }


def _failure_json(found: dict[str, Any] | None) -> dict[str, Any] | None:
    return {k: v for k, v in found.items() if k != "run"} if found is not None else None


def _totals_json(totals: guards.Totals) -> dict[str, Any]:
    """Tokens and cost summed from the log, and whether some turn's count is only its last model call."""
    return {
        "iterations": totals.iterations,
        "tokens": totals.tokens if totals.tokens_known else None,
        "cost": totals.cost if totals.cost_known else None,
        "currency": totals.currency,
        "partial": totals.partial,
        "words": totals.words(),
    }


def _iteration_json(it: Iteration) -> dict[str, Any]:
    return {
        "n": it.n,
        "kind": it.kind,
        "outcome": it.outcome,
        "started": it.started_ts,
        "ended": it.ended_ts,
        "duration": it.duration,
        "tokens": it.tokens,
        "cost": it.cost,
        "summary": it.summary,
        "error": it.error,
    }


# -- the command -------------------------------------------------------------------------------------


def _view(repo: Repo, name: str | None, data_rel: Path, as_json: bool) -> str:
    from iteratr.commands import status_remote  # sessions on remote-tracking branches, marked remote

    if name is None:
        found = [collect(repo, s, data_rel) for s in repo.sessions()]
        remote = status_remote.sessions(repo.root, data_rel)
        if as_json:
            listed: dict[str, Any] = {"sessions": found} | ({"remote_sessions": remote} if remote else {})
            return json.dumps(listed, indent=2, ensure_ascii=False)
        if not found and not remote:
            return "no sessions in this repository (`iteratr build` starts one)"
        return "\n".join([*(render_line(d) for d in found), *(status_remote.render_line(d) for d in remote)])
    where = status_remote.remote_only(repo.root, name, repo.sessions())
    if where is not None:
        data = status_remote.collect(repo.root, name, where, data_rel)
        return json.dumps(data, indent=2, ensure_ascii=False) if as_json else "\n".join(status_remote.render(data))
    data = collect(repo, name, data_rel)
    return json.dumps(data, indent=2, ensure_ascii=False) if as_json else "\n".join(render(data))


def run(
    *,
    name: str | None,
    data_dir: str | None,
    as_json: bool,
    watch: bool,
    cwd: Path | None = None,
    out: Printer | None = None,
) -> int:
    """Print one session (``name``) or the list of all sessions; with ``watch``, redraw until Ctrl+C."""
    from iteratr import config
    from iteratr.commands import status_remote

    if watch and as_json:
        raise UsageError("--watch redraws the text view; use --json without --watch (e.g. from a script's loop)")
    cwd = Path.cwd() if cwd is None else cwd
    out = Printer() if out is None else out
    cfg = config.load_config(cwd=cwd, flags={"data_dir": data_dir} if data_dir else None)
    repo = Repo(cwd)
    data_rel = paths.data_dir_in_tree(cfg.data_dir, repo.root, cwd)
    if name is not None and status_remote.remote_only(repo.root, name, repo.sessions()) is None:
        require_session(repo, name)
    if not watch:
        out.text(_view(repo, name, data_rel, as_json))
        return 0
    clear = _can_clear()
    try:
        while True:
            try:
                body = _view(Repo(cwd), name, data_rel, False)
            except IteratrError as exc:  # e.g. the branch was archived meanwhile: say so, keep watching
                body = f"error: {exc}"
            stamp = time.strftime("%H:%M:%S")
            head = f"iteratr status at {stamp} (every {WATCH_INTERVAL:g}s; Ctrl+C to stop)"
            out.text(("\x1b[H\x1b[2J" if clear else "") + head + "\n" + body + ("" if clear else "\n"))
            time.sleep(WATCH_INTERVAL)
    except KeyboardInterrupt:
        return 0


def _can_clear() -> bool:
    """Redraw in place only on a real terminal; elsewhere frames follow one another as plain lines."""
    if os.environ.get("TERM", "dumb") == "dumb":
        return False
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False
