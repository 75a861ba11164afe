"""``iteratr say``: append a message to a session's inbox, whether or not a build is running.

The inbox to write is the one the session's build reads (or will read): when the branch
``iteratr/S`` is checked out in a linked worktree, that worktree's data dir; otherwise the data
dir this checkout resolves (``paths.resolve_data_dir``, as every command does, so ``say`` from a
subdirectory reaches the session at the top). Sessions are found in both places, so ``say`` run
from the main checkout reaches a session that runs with ``--worktree``. The message itself is
appended by ``inbox.append`` in one write, which is safe against a build taking the inbox at the
same moment. Git is asked through ``iteratr.gitrepo``'s plain functions (no GitPython: ``say`` is
run from hooks and scripts, and should answer quickly).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from iteratr import gitrepo, paths, safe_open
from iteratr.errors import UsageError
from iteratr.output import Printer
from iteratr.run import inbox

SESSION_FILES = (paths.EVENTS_FILE, paths.INBOX_FILE)


def run(
    *, name: str | None, data_dir: str | None, text: str, cwd: Path | None = None, out: Printer | None = None
) -> int:
    """Append ``text`` to the inbox of session ``name`` (or the one implied), and say where it went."""
    from iteratr import config

    cwd = Path.cwd() if cwd is None else cwd
    repo = gitrepo.toplevel(cwd)  # (work-tree top, common git dir), or None: say works on a plain directory
    cfg = config.load_config(cwd=cwd, flags={"data_dir": data_dir} if data_dir else None)
    top = repo[0] if repo else paths.work_tree_top(cwd)
    raw_data = paths.resolve_data_dir(cfg.data_dir, cwd, top=top)
    paths.check_data_dir(raw_data, top, cfg.data_dir)  # outside the work tree, its top, .git: exit 2
    local_data = raw_data.resolve()
    sessions = find_sessions(local_data, repo[0] if repo else None)
    remote_only = _remote_only(repo[0], sessions) if repo else {}
    session = _choose(name, sessions | {s: local_data / s for s in remote_only}, local_data, repo[1] if repo else None)
    if session in remote_only:  # its only copy is remote: the message is committed onto its branch there
        from iteratr.remote import refs

        line = _say_remote(repo[0] if repo else cwd, refs.preferred(remote_only[session], cfg.push), session, text)
        (Printer() if out is None else out).text(line)
        return 0
    make_session_dir(sessions[session])  # a session known only by its branch
    path = inbox.append(sessions[session], text)
    shown = paths.shown(path, cwd)
    if repo is not None and _build_running(repo[1], session):
        line = f"message for session {session} saved to {shown}; the running build puts it into the next prompt"
    else:
        line = (
            f"message for session {session} saved to {shown}; no build is running, "
            "so it will be picked up when the next build starts"
        )
    (Printer() if out is None else out).text(line)
    return 0


def _remote_only(root: Path, local: dict[str, Path]) -> dict[str, list[str]]:
    """Sessions found only on remote-tracking branches (no local branch, no files here): name -> remotes."""
    from iteratr.remote import refs

    return {name: remotes for name, remotes in refs.remote_sessions(root).items() if name not in local}


def _say_remote(root: Path, remote: str, session: str, text: str) -> str:
    """Commit the message onto ``iteratr/S`` at ``remote`` and push it (``iteratr.remote.messages``)."""
    from iteratr.remote import messages

    body = text.replace(inbox.SAY_MARK, "").strip("\r\n").rstrip()
    cleaned = inbox.clean(body)  # as a build takes inbox text: comments are never sent
    if not cleaned:
        raise UsageError("empty message: give the text as arguments or on stdin (comments alone are not sent)")
    size = len(body.encode("utf-8", "replace"))
    if size > inbox.MAX_MESSAGE_BYTES:
        raise UsageError(f"message is {size} bytes; the limit is {inbox.MAX_MESSAGE_BYTES} bytes (64 KiB)")
    sha = messages.say(root, remote, session, cleaned)
    return (
        f"message for session {session} committed onto {remote}/iteratr/{session} ({sha[:7]}) and pushed; the "
        "machine that runs the session next takes it (one running now: at its next fetch, after its iteration)"
    )


def make_session_dir(session_dir: Path) -> None:
    """The session's directory, made if missing; a link on the way (``.iteratr/S -> /etc``) is refused (exit 2)."""
    session_dir.parent.parent.mkdir(parents=True, exist_ok=True)
    os.close(safe_open.open_parent(session_dir.parent, f"{session_dir.name}/{paths.INBOX_FILE}", create=True))


def read_stdin(stream: BinaryIO) -> str:
    """The message on standard input, reading at most the limit plus one byte: a 300 MB stream is refused
    after 64 KiB, never held in memory."""
    data = stream.read(inbox.MAX_MESSAGE_BYTES + 1)
    if len(data) > inbox.MAX_MESSAGE_BYTES:
        raise UsageError(
            f"message is over {inbox.MAX_MESSAGE_BYTES} bytes on standard input; the limit is "
            f"{inbox.MAX_MESSAGE_BYTES} bytes (64 KiB)"
        )
    return data.decode("utf-8", errors="replace")


def find_sessions(local_data: Path, root: Path | None) -> dict[str, Path]:
    """Every session ``say`` can reach from the work tree ``root`` (None: no repository): name -> its directory.

    A session whose branch is checked out in some worktree lives there (the build runs there);
    sessions in the local data dir and sessions known only by an ``iteratr/S`` branch use the
    local data dir.
    """
    found: dict[str, Path] = {}
    if local_data.is_dir():
        for entry in sorted(local_data.iterdir()):
            if entry.is_dir() and paths.NAME_RE.fullmatch(entry.name) and _is_session_dir(entry):
                found[entry.name] = entry
    if root is None:
        return found
    rel = _relative(local_data, root)
    prefix = paths.branch_name("")
    for branch in gitrepo.branches(root, prefix + "*"):
        session = branch[len(prefix) :]
        if paths.NAME_RE.fullmatch(session) and session not in found:
            found[session] = local_data / session
    if rel is None:
        return found  # an absolute data dir outside the repository: no worktree has its own copy
    for branch, tree in gitrepo.worktrees(root).items():
        session = branch[len(prefix) :] if branch.startswith(prefix) else ""
        if not paths.NAME_RE.fullmatch(session):
            continue
        found[session] = tree / rel / session
    return found


def _choose(name: str | None, sessions: dict[str, Path], local_data: Path, common_dir: Path | None) -> str:
    """The session meant: ``--name``, else ``$ITERATR_SESSION``, else the only session, else the only one a
    build is running for (it holds its run lock), else a usage error listing them."""
    listed = ", ".join(sorted(sessions)) or "none"
    if name:
        paths.validate_session_name(name)
        if name not in sessions:
            raise UsageError(f"no session {name!r} in {local_data} or on an iteratr/* branch; sessions there: {listed}")
        return name
    env_name = os.environ.get("ITERATR_SESSION")
    if env_name:
        return _choose(env_name, sessions, local_data, common_dir)
    if len(sessions) == 1:
        return next(iter(sessions))
    if not sessions:
        raise UsageError(f"no session found in {local_data} or on an iteratr/* branch: start one with `iteratr build`")
    running = [s for s in sorted(sessions) if common_dir is not None and _build_running(common_dir, s)]
    if len(running) == 1:
        return running[0]
    raise UsageError(f"several sessions ({listed}): choose one with --name")


def _is_session_dir(path: Path) -> bool:
    return any((path / file).is_file() for file in SESSION_FILES)


def _relative(path: Path, root: Path) -> Path | None:
    try:
        rel = path.relative_to(root)
    except ValueError:
        return None
    return rel if rel != Path(".") else None


def _build_running(common_dir: Path, session: str) -> bool:
    from iteratr.run.runlock import is_held, lock_path

    path = lock_path(common_dir, session)
    return path.exists() and is_held(path)  # asking must not leave a lock file for every session
