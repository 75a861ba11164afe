"""The lease: who holds a session across machines, as a ref on the remote, ``refs/iteratr/leases/S``.

A lease is a commit object with an empty tree whose message is one JSON object: host, pid, the clone it was
taken from (a random id kept in that clone's git dir), the work tree, when it was taken (``started``) and
when it runs out (``expires``, UTC, ``lease_ttl`` seconds after it was last renewed). It is written only by a
compare-and-swap push, expecting the lease it last saw (or none): of two machines that race for a session,
exactly one push goes through, and the other finds a live lease and exits 4, naming the holder, as a second
build of the session on one machine does.

- **taken** when a build starts: none, or an expired one (its holder died: taken over with a warning), or one
  left by an earlier run of this very clone on this host (it holds the clone's run lock, so that run is gone; a
  copy of the clone's git dir on another host carries the same id, and its lease is another machine's);
- **renewed** with each iteration's push, in the same atomic push as the branch (``sync``), and every ``ttl``/3
  in the background (``keep_alive``), so a turn longer than ``ttl`` keeps it;
- **released** (deleted, again only if it is still ours) when the run ends.

Expiry is judged with the reader's clock against the time the holder wrote: machines whose clocks differ by
more than a small part of ``lease_ttl`` should not share a session.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iteratr import gitrepo
from iteratr.errors import IteratrError, LockedError
from iteratr.remote import refs

CLONE_ID_FILE = Path("iteratr") / "clone-id"
TAKE_TRIES = 3  # pushes of a lease refused while nobody else's is there to read (a ref lock held mid-push)


class LeaseLost(LockedError):
    """Another machine holds (or took over) the session's lease (exit 4)."""


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def clone_id(common_dir: Path) -> str:
    """This clone's random id (made once, kept in its git dir, never cloned): which leases are this clone's own."""
    path = common_dir / CLONE_ID_FILE
    try:
        found = path.read_text(encoding="utf-8").strip()
        if found:
            return found
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    made = uuid.uuid4().hex
    tmp = path.with_name(f"clone-id.{os.getpid()}.tmp")
    tmp.write_text(made + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path.read_text(encoding="utf-8").strip()


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    clone: str
    work_tree: str
    started: str
    expires: float  # epoch seconds

    def describe(self) -> str:
        return (
            f"pid {self.pid} on {self.host} since {self.started}, lease until {_iso(self.expires)} "
            f"(work tree {self.work_tree})"
        )

    def live(self, now: float | None = None) -> bool:
        return self.expires > (time.time() if now is None else now)

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "pid": self.pid,
            "clone": self.clone,
            "work_tree": self.work_tree,
            "started": self.started,
            "expires": _iso(self.expires),
            "expires_epoch": self.expires,
        }


def parse(message: str | None) -> Holder | None:
    """The holder a lease commit names; None if it is not one iteratr wrote."""
    try:
        data = json.loads((message or "").strip() or "null")
        return Holder(
            str(data["host"]),
            int(data["pid"]),
            str(data["clone"]),
            str(data.get("work_tree", "")),
            str(data["started"]),
            float(data["expires_epoch"]),
        )
    except (ValueError, TypeError, KeyError):
        return None


def read(cwd: Path, sha: str | None) -> Holder | None:
    return parse(refs.message_of(cwd, sha)) if sha else None


class Lease:
    """This run's lease on one session at one remote: ``sha`` is the lease object the remote holds for us."""

    def __init__(self, cwd: Path, remote: str, session: str, *, ttl: float, common_dir: Path, work_tree: Path):
        self.cwd = cwd
        self.remote = remote
        self.session = session
        self.ttl = ttl
        self.clone = clone_id(common_dir)
        self.work_tree = str(work_tree)
        self.started = _iso(time.time())
        self.sha: str | None = None  # ours on the remote, once taken
        # Every lease object this run made. A push whose answer was lost (the connection dropped, the client was
        # killed) may still have gone through: a lease on the remote that is one of these is this run's own.
        self.made: set[str] = set()
        # Held around every push of the lease: the run's pushes (sync) and the renewals during a long turn.
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    @property
    def ref(self) -> str:
        return refs.lease_ref(self.session)

    def make(self) -> str:
        """A new lease object, expiring ``ttl`` seconds from now (not pushed)."""
        holder = Holder(
            socket.gethostname(), os.getpid(), self.clone, self.work_tree, self.started, time.time() + self.ttl
        )
        made = refs.commit_object(self.cwd, json.dumps(holder.to_json(), sort_keys=True) + "\n")
        self.made.add(made)
        return made

    def earlier_run_here(self, holder: Holder) -> bool:
        """Whether ``holder`` is an earlier run of this clone, here: the run lock this run holds proves it is gone.
        The host too, not the clone's id alone: a git dir copied to another machine (an image, a synced
        workspace) keeps the id, and a run there is as live as any other machine's."""
        return holder.clone == self.clone and holder.host == socket.gethostname()

    def adopt(self, found: str | None) -> bool:
        """Whether ``found``, the lease the remote holds, is this run's (a push of ours whose answer was lost went
        through): if so it is the one expected from now on."""
        if found is None or (found != self.sha and found not in self.made):
            return False
        self.sha = found
        return True

    def take(self, found: str | None) -> str | None:
        """Take the lease, the remote's being ``found`` (fetched). Returns a warning to print (a lease taken over),
        or None; raises LeaseLost (exit 4) naming the holder when someone else holds it, live."""
        warning = None
        if found:
            holder = read(self.cwd, found)
            if holder is not None and not self.earlier_run_here(holder) and holder.live():
                raise self.held_error(holder)
            if holder is None:  # another version's, or damaged: held until lease_ttl after it was written
                written = refs.commit_time(self.cwd, found)
                if written is None or written + self.ttl > time.time():
                    raise LeaseLost(
                        f"session {self.session} at {self.remote} has a lease iteratr cannot read"
                        + (f", written at {_iso(written)}" if written is not None else ""),
                        hint="it counts as held until lease_ttl after it was written",
                    )
                warning = f"took over a lease on {self.session} at {self.remote} that iteratr cannot read, written at "
                warning += f"{_iso(written)}, over lease_ttl ago"
            elif self.earlier_run_here(holder):
                warning = f"took over the lease of this clone's earlier run ({holder.describe()}): it is gone"
            else:
                warning = f"took over the expired lease of {holder.describe()}: that run is gone"
        tries = 0
        while True:
            new = self.make()
            if refs.push(self.cwd, self.remote, [refs.Update(self.ref, new, found)]):
                self.sha = new
                return warning
            # Someone changed it since we looked: whoever won holds it now. A refusal can also come from the
            # winner's ref lock while its push is still under way, when there is no lease to read yet: look again.
            tips = refs.probe(self.cwd, self.remote, self.session)
            refs.fetch(self.cwd, self.remote, self.session, tips)
            tries += 1
            if tips.lease != found or tries >= TAKE_TRIES:
                raise self.held_error(read(self.cwd, tips.lease))
            time.sleep(0.1 * tries)

    def keep_alive(self, every: float) -> None:
        """Renew the lease every ``every`` seconds in the background, so a turn longer than ``ttl`` does not let it
        lapse. A renewal that fails is left to the next iteration's push, which finds out why (``sync``)."""
        self._renewer = threading.Thread(target=self._renew_until_stopped, args=(every,), daemon=True)
        self._renewer.start()

    def _renew_until_stopped(self, every: float) -> None:
        while not self._stop.wait(every):
            if not self.renew():
                return  # taken over: the next push says so, and the run stops

    def renew(self) -> bool:
        """Push a fresh expiry; False once the lease is no longer this run's. A network failure is left to the next
        renewal and the next push (True); a refused push whose lease turns out to be ours after all (an earlier
        renewal went through unanswered) is tried again on it."""
        with self.lock:
            for _ in range(2):
                if self.sha is None:
                    return False
                try:
                    new = self.make()
                    if refs.push(self.cwd, self.remote, [refs.Update(self.ref, new, self.sha)]):
                        self.sha = new
                        return True
                    if not self.adopt(refs.probe(self.cwd, self.remote, self.session).lease):
                        return False
                except (OSError, IteratrError):
                    return True  # the network: tried again next time, and by the next push
            return True

    def release(self) -> None:
        """Delete the lease, only if it is still ours. Never raises: the run is over; it expires anyway."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(refs.NETWORK_TIMEOUT)
        with self.lock:
            with contextlib.suppress(OSError, IteratrError):
                for _ in range(2):
                    if self.sha is None:
                        break
                    if refs.push(self.cwd, self.remote, [refs.Update(self.ref, "", self.sha)]):
                        # The copy status shows (as of the last fetch) would show this run holding it still.
                        gitrepo.run_git(self.cwd, "update-ref", "-d", refs.fetched_lease_ref(self.remote, self.session))
                        break
                    # Refused: released anyway if the remote's is ours (a renewal whose answer was lost), else not.
                    if not self.adopt(refs.probe(self.cwd, self.remote, self.session).lease):
                        break
            self.sha = None

    def held_error(self, holder: Holder | None) -> LeaseLost:
        who = holder.describe() if holder is not None else "another machine"
        return LeaseLost(
            f"session {self.session} is held through {self.remote} by another machine: {who}",
            hint="it carries the session on; this machine can run it once that run ends or its lease expires",
        )
