"""``iteratr status`` for sessions on remote-tracking branches: marked remote, with their lease holder.

A session another machine carries is seen here as ``refs/remotes/<remote>/iteratr/S`` (after a ``git fetch``, or
a build with that remote). Its state is read from that ref's last commit, and its lease from the copy the last
fetch by iteratr left in ``refs/iteratr/remote-leases/<remote>/S`` (``iteratr.remote.refs``): status never asks
the network, so the holder shown is as of that fetch. A plain ``git fetch`` keeps those copies fresh too with
``git config --add remote.origin.fetch '+refs/iteratr/leases/*:refs/iteratr/remote-leases/origin/*'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iteratr import gitrepo, paths
from iteratr.remote import lease, refs


def _state_of(root: Path, ref: str, name: str, data_rel: Path) -> tuple[Any, str | None, int]:
    """(state, last activity, iterations ended) through the store's snapshot of the ref's mirror
    (``iteratr.freshest``) and status's cached fold of it (``status_spans``), never a replay of the log."""
    from iteratr import freshest
    from iteratr.commands import status_spans
    from iteratr.session.state import State
    from iteratr.session.store import Store

    found = gitrepo.toplevel(root)
    mirror = freshest.mirror_branch(root, found[1], ref, name, data_rel) if found is not None else None
    if found is None or mirror is None:
        return State(), None, 0
    log = mirror / name / paths.EVENTS_FILE
    folded = status_spans.folded(log, status_spans.cache_path(found[1], log))
    return Store(mirror, name).load(), folded.last_ts, folded.its.summary()["ended"]


def collect(root: Path, name: str, remote: str, data_rel: Path) -> dict[str, Any]:
    """What status shows of session ``name`` as ``remote`` has it (as last fetched), JSON-ready."""
    ref = refs.tracking_ref(remote, name)
    state, last, ended = _state_of(root, ref, name, data_rel)
    holder = lease.read(root, refs.rev(root, refs.fetched_lease_ref(remote, name)))
    return {
        "session": name,
        "remote": remote,
        "branch": f"{remote}/iteratr/{name}",
        "complete": state.complete,
        "iterations": ended,
        "tasks": state.counts(),
        "task_total": len(state.tasks),
        "last_activity": last,
        "lease": holder.to_json() if holder is not None else None,
        "lease_live": holder.live() if holder is not None else False,
        "spec": _spec_of(root, ref, name),
    }


def _spec_of(root: Path, ref: str, name: str) -> str | None:
    """The spec the session is named after, if the branch has it where a build names sessions from (``specs/S.md``):
    a build needs its spec, and without ``-s`` it reads ``specs/SPEC.md``. None when it is elsewhere."""
    rel = f"specs/{name}.md"
    done = gitrepo.run_git(root, "cat-file", "-e", f"{ref}:{rel}", check=False)
    return rel if done.returncode == 0 else None


def sessions(root: Path, data_rel: Path) -> list[dict[str, Any]]:
    """Every session on a remote-tracking branch, one entry per remote holding it."""
    return [
        collect(root, name, remote, data_rel)
        for name, remotes in refs.remote_sessions(root).items()
        for remote in remotes
    ]


def lease_words(data: dict[str, Any]) -> str:
    held = data["lease"]
    if held is None:
        return "lease: none (as of the last fetch)"
    state = "held" if data["lease_live"] else "expired"
    return (
        f"lease: {state} by pid {held['pid']} on {held['host']} since {held['started']}, until {held['expires']} "
        "(as of the last fetch)"
    )


def _progress(data: dict[str, Any]) -> str:
    if data["complete"]:
        return "complete"
    done = data["tasks"].get("completed", 0)
    return f"{done}/{data['task_total']} tasks done" if data["task_total"] else "not planned yet"


def render_line(data: dict[str, Any]) -> str:
    """One line of the session list, marked remote."""
    parts = [data["session"], f"remote {data['branch']}", _progress(data), f"{data['iterations']} iteration(s)"]
    return " | ".join([*parts, lease_words(data)])


def render(data: dict[str, Any]) -> list[str]:
    """The text view of one session known only from a remote-tracking branch."""
    lines = [f"session {data['session']} | remote branch {data['branch']} (no local branch) | {_progress(data)}"]
    lines.append(lease_words(data))
    lines.append(f"read from: {data['branch']} (its last commit, as last fetched)")
    activity = f", last activity {data['last_activity']}" if data["last_activity"] else ""
    lines.append(f"iterations: {data['iterations']} done{activity}")
    counts = data["tasks"]
    shown = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items() if n)
    lines.append(f"tasks: {shown} ({data['task_total']} in all)" if data["task_total"] else "tasks: none yet")
    spec = f"-s {data['spec']}" if data["spec"] else f"-s <its spec> -n {data['session']}"
    lines.append(f"run it here: iteratr build {spec} --push {data['remote']}")
    return lines


def remote_only(root: Path, name: str, local: list[str]) -> str | None:
    """The remote to show session ``name`` from when it has no local branch; None if it is local or unknown."""
    if name in local:
        return None
    remotes = refs.remote_sessions(root).get(name)
    return refs.preferred(remotes) if remotes else None
