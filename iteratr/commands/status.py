"""``iteratr status``: what a session is doing, read without disturbing the run.

A session lives on the branch ``iteratr/S``. Status reads its event log from the freshest place it
can find, in this order:

1. the files of the worktree that has ``iteratr/S`` checked out (a ``--worktree`` run, or this very
   checkout when it is on that branch): a running build writes there first and commits after;
2. the branch itself (``git cat-file blob iteratr/S:<data_dir>/S/events.jsonl``): the last commit.

So it works from any checkout of the repository while a run goes on elsewhere. Whether a run is
going on comes from the session lock (``iteratr.runlock``), which every worktree shares.

Nothing here takes a lock or writes a file: status is safe to run (and ``--watch``) at any time. It
asks git through ``iteratr.gitrepo``'s plain functions (the git binary, no GitPython) and imports no
agent or template code, so it answers quickly. The data dir is found by ``paths.data_dir_in_tree``,
as every command finds it, so status works from any subdirectory.

``--watch`` redraws the text view every ``WATCH_INTERVAL`` seconds until Ctrl+C, which ends it with
exit status 0: stopping a dashboard is its normal end, not an interruption of work.
"""

from __future__ import annotations

import calendar
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from iteratr import gitrepo, paths
from iteratr.commands import status_detail
from iteratr.errors import GitError, IteratrError, UsageError
from iteratr.output import Printer
from iteratr.run import guards
from iteratr.session.reducer import replay
from iteratr.session.state import TASK_STATUSES, Iteration, State
from iteratr.text import clock, duration_text

WATCH_INTERVAL = 2.0
RECENT_ITERATIONS = 5
NOTES_SHOWN = 5
MESSAGES_SHOWN = 5


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


def _parse(blob: bytes, label: str) -> list[dict[str, Any]]:
    from iteratr.session.events import parse_lines

    # A line still being written by a live run is not torn: leave it for the next refresh, silently.
    whole = blob[: blob.rfind(b"\n") + 1]
    return parse_lines(whole, 1, Path(label))[0]


def _lock_state(repo: Repo, name: str) -> tuple[bool, dict[str, Any] | None]:
    from iteratr.run import runlock

    path = runlock.lock_path(repo.common_dir, name)
    if not path.exists():  # never create lock files from status
        return False, None
    held = runlock.is_held(path)
    return held, runlock.read_holder(path) if held else None


def _read_log(repo: Repo, name: str, data_rel: Path) -> tuple[str, Path | None, bytes | None, str]:
    """The freshest copy of the session's log: (source, session dir on disk, bytes or None, label)."""
    branch = paths.branch_name(name)
    where = repo.worktrees.get(branch)
    if where is not None:
        log = where / data_rel / name / paths.EVENTS_FILE
        if log.is_file():
            return ("checkout" if where == repo.root else "worktree"), log.parent, log.read_bytes(), str(log)
    rel = (data_rel / name / paths.EVENTS_FILE).as_posix()
    return "branch", None, repo.blob(f"refs/heads/{branch}", rel), f"{branch}:{rel}"


def read_events(repo: Repo, name: str, data_rel: Path) -> tuple[str, Path | None, list[dict[str, Any]]]:
    """The session's events from the freshest copy (see the module docstring): (source, session dir or None, events).

    Shared with ``iteratr report``, so both read a session the same way, from a checkout or from its branch.
    """
    source, session_dir, blob, label = _read_log(repo, name, data_rel)
    return source, session_dir, _parse(blob or b"", label)


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
    """What identifies the bytes ``_read_log`` would read: the file's stat, or the blob's id on the branch."""
    branch = paths.branch_name(name)
    where = repo.worktrees.get(branch)
    if where is not None:
        log = where / data_rel / name / paths.EVENTS_FILE
        try:
            st = log.stat()
        except OSError:
            st = None
        if st is not None:
            return ("file", str(where), str(log), st.st_ino, st.st_size, st.st_mtime_ns)
    rel = (data_rel / name / paths.EVENTS_FILE).as_posix()
    done = gitrepo.run_git(repo.root, "rev-parse", "-q", "--verify", f"refs/heads/{branch}:{rel}", check=False)
    return ("blob", done.stdout.strip() if done.returncode == 0 else None)


def collect(repo: Repo, name: str, data_rel: Path) -> dict[str, Any]:
    """Everything status shows about session ``name``, as JSON-ready data; reused while its log is unchanged (only
    whether a run holds the session, and the inbox, are looked at again)."""
    version = _log_version(repo, name, data_rel)
    last = _LAST.get((name, str(data_rel)))
    if last is not None and last[0] == version:
        data = dict(last[1])
        data["running"], data["holder"] = _lock_state(repo, name)
        session_dir = Path(version[2]).parent if version[0] == "file" else None  # as _read_log finds it
        data["inbox_has_text"] = False
        if session_dir is not None and (session_dir / paths.INBOX_FILE).is_file():
            from iteratr.run import inbox

            data["inbox_has_text"] = inbox.has_text(session_dir)
        return data
    data = _collect(repo, name, data_rel)
    _LAST[(name, str(data_rel))] = (version, data)
    return data


def _collect(repo: Repo, name: str, data_rel: Path) -> dict[str, Any]:
    branch = paths.branch_name(name)
    where = repo.worktrees.get(branch)
    source, session_dir, blob, label = _read_log(repo, name, data_rel)
    events = _parse(blob or b"", label)
    state = replay(events)
    running, holder = _lock_state(repo, name)
    pending = state.pending_messages()
    inbox_text = False
    if session_dir is not None and (session_dir / paths.INBOX_FILE).is_file():
        from iteratr.run import inbox

        inbox_text = inbox.has_text(session_dir)
    iterations = sorted(state.iterations.values(), key=lambda it: it.n)
    ended = [it for it in iterations if it.outcome is not None and it.kind != "manual"]
    failures = [it for it in ended if it.outcome in ("failed", "timeout")]
    in_progress = state.in_progress()
    return {
        "session": name,
        "branch": branch,
        "source": source,
        "work_tree": str(where) if where is not None else None,
        "log": label if blob is not None else None,
        "log_missing": label if blob is None else None,
        "complete": state.complete,
        "running": running,
        "holder": holder,
        "iterations": len(ended),
        "last_iteration": state.current_iteration if state.iterations else None,
        "tasks": state.counts(),
        "task_total": len(state.tasks),
        "in_progress": in_progress.to_dict() if in_progress else None,
        "task_list": status_detail.task_list(state, events),
        "spent": status_detail.totals(state),
        "recent": [_iteration_json(it) for it in iterations[-RECENT_ITERATIONS:]],
        "notes": [n.to_dict() for n in state.notes],
        "pending_messages": [m.to_dict() for m in pending],
        "inbox_has_text": inbox_text,
        "tokens": state.tokens or None,
        "cost": state.cost if state.currency or state.cost else None,
        "currency": state.currency,
        "totals": _totals_json(guards.session_totals(state)),
        "runs": _runs_json(state),
        "last_failure": _iteration_json(failures[-1]) if failures else None,
        "last_activity": events[-1].get("ts") if events else None,
    }


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


def _runs_json(state: State) -> list[dict[str, Any]]:
    """Per-run totals, oldest first; iterations recorded before runs were (older logs) are left out."""
    runs: list[str] = []
    for n in sorted(state.iterations):
        run = state.iterations[n].run
        if run and run not in runs:
            runs.append(run)
    return [{"run": run, **_totals_json(guards.run_totals(state, run))} for run in runs]


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


# -- rendering ---------------------------------------------------------------------------------------


def _epoch(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _ago(ts: str | None, now: float) -> str:
    when = _epoch(ts)
    if when is None:
        return "?"
    return f"{clock(ts)}, {duration_text(max(0.0, now - when))} ago"


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _progress(data: dict[str, Any]) -> str:
    if data["complete"]:
        return "complete"
    done = data["tasks"].get("completed", 0)
    return f"{done}/{data['task_total']} tasks done" if data["task_total"] else "not planned yet"


def _iteration_line(it: dict[str, Any], running: bool, now: float, currency: str | None = None) -> str:
    head = f"#{it['n']}" + (f" {it['kind']}" if it["kind"] != "main" else "")
    outcome = it["outcome"]
    if outcome is None:
        if running:
            return f"{head} running, started {_ago(it['started'], now)}"
        return f"{head} unfinished, started {_ago(it['started'], now)}: its run is gone (the next build records it)"
    label = {"timeout": "TIMED OUT", "failed": "FAILED", "interrupted": "interrupted"}.get(outcome, outcome)
    line = f"{head} {label}, started {_ago(it['started'], now)}, took {duration_text(it['duration'])}"
    line += status_detail.usage_words(it, currency)
    detail = _first_line(it["summary"]) if outcome == "ok" else _first_line(it["error"])
    if outcome != "ok" and it["summary"]:
        detail += f" (summary: {_first_line(it['summary'])})"
    return f"{line}: {detail}" if detail else line


def render(data: dict[str, Any], now: float | None = None) -> list[str]:
    """The text view of one session, one line per fact, no colour: it reads the same in a mail."""
    from iteratr.run.runlock import describe

    now = time.time() if now is None else now
    lines = [f"session {data['session']} | branch {data['branch']} | {_progress(data)}"]
    if data["running"]:
        lines.append(f"running: yes, {describe(data['holder'])}")
    else:
        lines.append("running: no")
    where = {"worktree": "worktree", "checkout": "this checkout"}.get(data["source"])
    if where:
        lines.append(f"read from: {where} {data['work_tree']} (live files)")
    else:
        lines.append(f"read from: branch {data['branch']} (its last commit)")
    if data["log_missing"]:
        lines.append(f"no event log at {data['log_missing']} (another --data-dir?)")
    activity = f", last activity {_ago(data['last_activity'], now)}" if data["last_activity"] else ""
    lines.append(f"iterations: {data['iterations']} done{activity}")
    counts = data["tasks"]
    shown = ", ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in TASK_STATUSES if counts.get(s))
    lines.append(f"tasks: {shown} ({data['task_total']} in all)" if data["task_total"] else "tasks: none yet")
    lines += status_detail.task_lines(data["task_list"], data["session"])
    task = data["in_progress"]
    if task:
        lines.append(f"in progress: {task['id']}: {_first_line(task['content'])}")
    if data["recent"]:
        lines.append("recent iterations:")
        lines += [f"  {_iteration_line(it, data['running'], now, data['currency'])}" for it in data["recent"]]
    lines += _notes_lines(data["notes"])
    lines += _message_lines(data["pending_messages"], data["inbox_has_text"], now, data["running"])
    if data["tokens"] or data["cost"] is not None:
        usage = [f"{data['tokens']:,} tokens"] if data["tokens"] else []
        if data["cost"] is not None:
            usage.append(f"cost {data['cost']:.4f} {data['currency'] or ''}".rstrip())
        if data["totals"]["partial"]:
            usage.append("some turns: last call only, as the agent reports")
        lines.append("usage: " + ", ".join(usage))
    lines += status_detail.totals_lines(data)
    failure = data["last_failure"]
    if failure:
        lines.append(f"last failure: {_iteration_line(failure, False, now)}")
    return lines


def _notes_lines(notes: list[dict[str, Any]]) -> list[str]:
    if not notes:
        return []
    which = f", the last {NOTES_SHOWN}" if len(notes) > NOTES_SHOWN else ""
    lines = [f"notes ({len(notes)}{which}):"]
    for n in notes[-NOTES_SHOWN:]:
        lines.append(f"  {n['id']} [{n['type']}] #{n['iteration']}: {_first_line(n['content'])}")
    return lines


def _message_lines(messages: list[dict[str, Any]], inbox_text: bool, now: float, running: bool) -> list[str]:
    """Messages taken but not yet in a prompt, and text still sitting in inbox.md."""
    if not messages and not inbox_text:
        return []
    lines = [f"pending messages: {len(messages)}" + (" + text in inbox.md" if inbox_text else "")]
    for m in messages[-MESSAGES_SHOWN:]:
        lines.append(f"  {m['id']} ({_ago(m['ts'], now)}): {_first_line(m['text'])}")
    if inbox_text:
        lines.append(f"  inbox.md holds text not taken yet ({status_detail.inbox_taker(running)})")
    return lines


def render_line(data: dict[str, Any], now: float | None = None) -> str:
    """One line of the session list."""
    now = time.time() if now is None else now
    parts = [
        data["session"],
        "running" if data["running"] else "idle",
        _progress(data),
        f"{data['iterations']} iteration(s)",
    ]
    if data["last_activity"]:
        parts.append(f"last activity {_ago(data['last_activity'], now)}")
    if data["source"] == "worktree":
        parts.append(f"worktree {data['work_tree']}")
    return " | ".join(parts)


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
