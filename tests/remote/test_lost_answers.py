"""A push that went through on the remote but whose answer never came back (the connection dropped, the client was
killed) leaves the remote holding a lease this run wrote: it is still this run's, never taken for a takeover."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from iteratr.errors import EXIT_OK
from iteratr.gitrepo import GitRepo
from iteratr.remote.lease import Lease
from tests.conftest import git
from tests.fakes import Script
from tests.remote.conftest import lease_of, remote_iterations
from tests.remote.harness import remote_loop

# The remote's reference-transaction hook runs once its refs have moved ("committed"). Once (while `mark` is
# absent), for a push touching `ref`, it kills the pushing client, as a dropped connection would leave it: the
# remote applied the push, the client never heard.
HOOK = """#!/bin/sh
[ "$1" = committed ] || exit 0
grep -q " {ref}$" || exit 0
[ -e "{mark}" ] && exit 0
: > "{mark}"
p=$PPID
while [ "$p" -gt 1 ]; do
  case "$(tr '\\0' ' ' < /proc/$p/cmdline)" in "git push"*) kill -9 "$p"; exit 0 ;; esac
  p=$(awk '{{print $4}}' /proc/$p/stat)
done
"""


def _answer_lost_once(origin: Path, ref: str, mark: Path) -> None:
    hook = origin / "hooks" / "reference-transaction"
    hook.write_text(HOOK.format(ref=ref, mark=mark))
    hook.chmod(0o755)


def test_an_iterations_push_that_went_through_unanswered_does_not_stop_the_run(
    origin: Path, clone: Callable[[str], Path], tmp_path: Path
) -> None:
    a = clone("a")
    mark = tmp_path / "answer-lost"
    _answer_lost_once(origin, "refs/heads/iteratr/SPEC", mark)  # #0's push: applied there, unanswered here
    run = remote_loop(a, Script("follow"), expect=EXIT_OK)
    assert mark.exists()  # the fault did happen
    assert "taken over" not in run.output
    assert remote_iterations(origin) == [0, 1, 2, 3]
    assert git(a, "rev-parse", "iteratr/SPEC") == git(origin, "rev-parse", "iteratr/SPEC")
    assert lease_of(origin) is None  # released at the end, not left to block other machines for lease_ttl


def test_a_renewal_that_went_through_unanswered_is_renewed_on_and_released(
    origin: Path, clone: Callable[[str], Path], tmp_path: Path
) -> None:
    a = clone("a")
    lease = Lease(a, "origin", "SPEC", ttl=600, common_dir=GitRepo.open(a).common_dir(), work_tree=a)
    assert lease.take(None) is None
    _answer_lost_once(origin, "refs/iteratr/leases/SPEC", tmp_path / "first")
    assert lease.renew()  # no answer: left to the next renewal
    assert (tmp_path / "first").exists() and lease_of(origin) != lease.sha  # the remote has that renewal
    assert lease.renew()  # refused against the lease it knew, but the remote's is its own: renewed on that
    assert lease_of(origin) == lease.sha

    _answer_lost_once(origin, "refs/iteratr/leases/SPEC", tmp_path / "second")
    assert lease.renew()
    assert (tmp_path / "second").exists() and lease_of(origin) != lease.sha
    lease.release()
    assert lease_of(origin) is None  # released, not left to block other machines for lease_ttl
