"""Messages to a session whose only copy is remote: ``iteratr say`` commits them onto its branch.

A message is an empty commit on ``iteratr/S`` (the tree of its parent), its text the commit message's body,
marked by the trailer ``Iteratr-Say: S``. ``say`` makes it on the remote branch's tip and pushes it with a
compare-and-swap, trying again on a fresh tip if the branch moved meanwhile.

A build takes such messages into the session's log as ``user.message`` events, each with ``source``
``say:<commit sha>``, so a message is recorded exactly once however often it is seen (the reducer keeps the
sources already taken): from the branch it resumed, and, while it runs, from each fetch after an iteration
(``sync``), where a message pushed meanwhile is brought in with a merge commit that keeps the tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iteratr import gitrepo
from iteratr.remote import refs
from iteratr.session.events import make_event
from iteratr.session.state import Event, State
from iteratr.session.store import Store

TRAILER = "Iteratr-Say"
SOURCE_PREFIX = "say:"
TRIES = 5


@dataclass(frozen=True)
class Said:
    sha: str
    text: str


def message_text(session: str, text: str) -> str:
    body = text.replace("\0", "").strip("\n")
    return f"iteratr({session}): a message for the agent\n\n{body}\n\n{TRAILER}: {session}\n"


def parse(session: str, message: str) -> str | None:
    """The text of a message commit of ``session``; None if the commit is no such message."""
    mark = f"\n\n{TRAILER}: {session}\n"
    if not message.endswith(mark) or "\n\n" not in message[: -len(mark)]:
        return None
    return message[: -len(mark)].split("\n\n", 1)[1]


def say(cwd: Path, remote: str, session: str, text: str) -> str:
    """Commit ``text`` onto the remote's ``iteratr/S`` and push it; return the message commit's sha.
    RemoteError if the remote cannot be reached, has no such branch, or keeps moving."""
    for _ in range(TRIES):
        tips = refs.probe(cwd, remote, session)
        if tips.branch is None:
            raise refs.RemoteError(
                f"{remote!r} has no branch iteratr/{session}", hint="`git fetch --prune` to forget it"
            )
        refs.fetch(cwd, remote, session, tips)
        tree = gitrepo.run_git(cwd, "rev-parse", f"{tips.branch}^{{tree}}").out.strip()
        sha = refs.commit_object(cwd, message_text(session, text), tree=tree, parents=(tips.branch,))
        if refs.push(cwd, remote, [refs.Update(refs.branch_ref(session), sha, tips.branch)]):
            gitrepo.run_git(cwd, "update-ref", refs.tracking_ref(remote, session), sha, check=False)
            return sha
    raise refs.RemoteError(f"iteratr/{session} on {remote!r} kept moving; the message was not sent, try again")


def found(cwd: Path, session: str, tip: str, base: str | None = None) -> list[Said]:
    """Message commits of ``session`` reachable from ``tip`` (and not from ``base``), oldest first."""
    args = ["log", "--reverse", "--format=%H", "--fixed-strings", f"--grep={TRAILER}: {session}", tip]
    shas = [line for line in gitrepo.run_git(cwd, *args, *([f"^{base}"] if base else [])).out.splitlines() if line]
    result = []
    for sha in shas:
        text = parse(session, refs.message_of(cwd, sha) or "")
        if text is not None and text.strip():
            result.append(Said(sha, text))
    return result


def pending(cwd: Path, session: str, tip: str, consumed: dict[str, int]) -> list[Said]:
    """Message commits reachable from ``tip`` that the log (``consumed``: its taken sources) has not taken."""
    return [s for s in found(cwd, session, tip) if consumed.get(SOURCE_PREFIX + s.sha, 0) < 1]


def take(store: Store, said: list[Said]) -> list[Event]:
    """Record the messages not recorded yet as ``user.message`` events; return those recorded now."""
    if not said:
        return []

    def decide(state: State) -> list[Event]:
        fresh = [s for s in said if state.inbox_consumed.get(SOURCE_PREFIX + s.sha, 0) < 1]
        ids = iter(state.new_message_ids(len(fresh)))
        data = [{"text": s.text, "source": SOURCE_PREFIX + s.sha, "start": 0, "end": 1} for s in fresh]
        return [make_event("user.message", {"id": next(ids), **d}, state.current_iteration) for d in data]

    return store.transact(decide)[1]


def only_messages(cwd: Path, session: str, commits: list[str]) -> bool:
    """Whether every one of ``commits`` is a message commit of ``session`` (so nobody else ran an iteration)."""
    return all(parse(session, refs.message_of(cwd, sha) or "") is not None for sha in commits)
