"""A live lease is taken over at once only when it is an earlier run of this very clone on this host (the clone's run
lock, held now, proves that run is gone); the same clone id written on another host is a copy's, and held."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from iteratr.errors import EXIT_INCOMPLETE, EXIT_LOCKED
from iteratr.gitrepo import GitRepo
from iteratr.remote import refs
from iteratr.remote.lease import Holder, Lease, LeaseLost, clone_id
from tests.fakes import Script
from tests.remote.conftest import lease_of
from tests.remote.harness import remote_loop, start_error


def _live_lease_of(cwd: Path, *, host: str) -> str:
    """Push a live lease (an hour left) naming ``cwd``'s clone, as written on ``host``; return its object."""
    now = time.time()
    holder = Holder(host, 4242, clone_id(GitRepo.open(cwd).common_dir()), str(cwd), "2026-01-01T00:00:00Z", now + 3600)
    sha = refs.commit_object(cwd, json.dumps(holder.to_json(), sort_keys=True) + "\n")
    assert refs.push(cwd, "origin", [refs.Update("refs/iteratr/leases/SPEC", sha, None)])
    return sha


def test_a_live_lease_of_this_clones_earlier_run_here_is_taken_over_at_once(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")
    _live_lease_of(a, host=socket.gethostname())  # a run here killed with kill -9 left it
    run = remote_loop(a, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)
    assert "took over the lease of this clone's earlier run (pid 4242" in run.output
    assert lease_of(origin) is None  # this run's, released at its end


def test_the_same_clone_id_written_on_another_host_is_a_copys_live_lease_and_held(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")
    left = _live_lease_of(a, host=socket.gethostname() + "-copy")  # the git dir copied to another machine
    refused = start_error(a)
    assert refused.exit_code == EXIT_LOCKED
    assert "is held through origin by another machine: pid 4242 on " in str(refused)
    assert lease_of(origin) == left  # left alone
    fetch_only = start_error(a, push=False)  # --remote respects it too
    assert fetch_only.exit_code == EXIT_LOCKED


def test_of_two_machines_that_both_saw_no_lease_the_one_whose_push_comes_second_is_refused_naming_the_holder(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a, b = clone("a"), clone("b")
    first = Lease(a, "origin", "SPEC", ttl=600, common_dir=GitRepo.open(a).common_dir(), work_tree=a)
    second = Lease(b, "origin", "SPEC", ttl=600, common_dir=GitRepo.open(b).common_dir(), work_tree=b)
    assert refs.probe(b, "origin", "SPEC").lease is None  # b looks: nobody holds it
    assert first.take(None) is None  # a takes it in the meantime
    with pytest.raises(LeaseLost) as lost:
        second.take(None)  # b's compare-and-swap, on what it saw, fails
    assert lost.value.exit_code == EXIT_LOCKED
    assert f"by another machine: pid {os.getpid()} on {socket.gethostname()}" in str(lost.value)
    assert lease_of(origin) == first.sha  # a's, untouched


def test_a_lease_push_refused_while_no_lease_is_there_is_tried_again(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    # Another machine's push holding the ref lock refuses ours before its lease is there to read; the hook stands
    # for it, refusing the first push only.
    hook = origin / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\n[ -e {origin}/refused-once ] && exit 0\ntouch {origin}/refused-once\nexit 1\n")
    hook.chmod(0o755)
    a = clone("a")
    lease = Lease(a, "origin", "SPEC", ttl=600, common_dir=GitRepo.open(a).common_dir(), work_tree=a)
    assert lease.take(None) is None
    assert (origin / "refused-once").exists()  # the first push was refused
    assert lease_of(origin) == lease.sha  # the second one took it
