"""What goes wrong between machines is never ignored, and loses nothing: a diverged branch, an unreachable remote,
a push rejected mid-run, a lease taken over, a remote lost while renewing."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from iteratr.agent.events import TurnResult
from iteratr.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_LOCKED, EXIT_OK, IteratrError
from iteratr.gitrepo import GitRepo
from iteratr.remote import refs
from iteratr.remote.lease import Lease
from tests.conftest import fake_agent, git
from tests.fakes import FakeAgent, Script
from tests.remote.conftest import lease_of, remote_iterations
from tests.remote.harness import remote_loop, start_error
from tests.run import harness
from tests.run.helpers import build


def _rev(cwd: Path, ref: str) -> str:
    return git(cwd, "rev-parse", ref)


def _iterations_on(cwd: Path, ref: str) -> list[int]:
    out = git(cwd, "log", "--reverse", "--format=%(trailers:key=Iteratr-Iteration,valueonly)", ref)
    return [int(x) for x in out.split() if x.isdigit()]


def test_a_diverged_local_branch_is_refused_before_any_agent_starts_and_neither_changes(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a, b = clone("a"), clone("b")
    remote_loop(a, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)
    remote_loop(b, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)  # #2 on the remote, from b
    harness.run_loop(a, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)  # a's own #2, never pushed
    ours, theirs = _rev(a, "iteratr/SPEC"), _rev(origin, "iteratr/SPEC")

    out = build(a, "--push", "--agent", fake_agent("follow"), expect=EXIT_FAILED)
    assert "iteratr/SPEC has diverged from origin/iteratr/SPEC (1 commit(s) here, 1 there" in out
    assert "git log --oneline" in out and "..origin/iteratr/SPEC" in out
    assert "git branch -m iteratr/SPEC iteratr/SPEC.diverged" in out
    assert "starting the agent" not in out
    assert (_rev(a, "iteratr/SPEC"), _rev(origin, "iteratr/SPEC")) == (ours, theirs)
    assert lease_of(origin) is None  # released on the way out
    error = start_error(a, push=False)  # fetch-only refuses it the same way
    assert "diverged" in str(error) and error.exit_code == EXIT_FAILED

    git(a, "branch", "-m", "iteratr/SPEC", "iteratr/SPEC.diverged")  # the way out the hint gives
    again = build(a, "--push", "-i", "1", "--agent", fake_agent("follow"), expect=EXIT_OK)
    assert "resuming from origin/iteratr/SPEC" in again
    assert remote_iterations(origin) == [0, 1, 2, 3]
    assert _rev(a, "iteratr/SPEC.diverged") == ours  # this machine's #2 still reachable


@pytest.mark.parametrize("remote", ["/nonexistent/remote.git", "nosuchremote"])
def test_an_unreachable_or_missing_remote_is_refused_before_any_agent_starts(
    origin: Path, clone: Callable[[str], Path], remote: str
) -> None:
    a = clone("a")
    if remote.startswith("/"):
        git(a, "remote", "set-url", "origin", remote)
        args = ["--push"]
    else:
        args = ["--push", remote]
    # A path that is not there cannot be reached; a bare name git does not know is a typo, and says so.
    said = "cannot be reached" if remote.startswith("/") else "no remote named 'nosuchremote' (remotes here: origin)"
    out = build(a, *args, "--agent", fake_agent("follow"), expect=EXIT_FAILED)
    errors = [line for line in out.splitlines() if line.startswith("iteratr: error:")]
    assert len(errors) == 1 and said in errors[0], out
    assert "starting the agent" not in out
    assert git(a, "branch", "--list", "iteratr/*") == ""  # nothing touched
    where = remote if not remote.startswith("/") else "origin"
    fetch_only = build(a, "--remote", where, "--agent", fake_agent("follow"), expect=EXIT_FAILED)
    assert said in fetch_only


def test_a_name_git_does_not_know_says_which_remotes_there_are_and_a_path_without_a_slash_still_works(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")
    git(a, "remote", "remove", "origin")
    with pytest.raises(refs.RemoteError, match=r"^no remote named 'nosuch' \(no remote is configured here\)$"):
        refs.probe(a, "nosuch", "SPEC")
    git(a, "remote", "add", "up", str(origin))
    git(a, "remote", "add", "down", str(origin))
    with pytest.raises(refs.RemoteError, match=r"^no remote named 'nosuch' \(remotes here: down, up\)$"):
        refs.probe(a, "nosuch", "SPEC")
    shutil.copytree(origin, a / "nosuch.git")  # a repository named without a slash is a path, not a typo
    assert refs.probe(a, "nosuch.git", "SPEC") == refs.Tips(None, None)


def test_a_push_rejected_mid_run_stops_it_exit_1_with_the_commit_kept_here(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")

    async def another_machine_pushes(agent: FakeAgent, prompt: str) -> TurnResult:
        d = clone("d")  # pushes a commit of its own onto the session's branch, ignoring the lease
        git(d, "switch", "-q", "iteratr/SPEC")
        git(d, "commit", "-q", "--allow-empty", "-m", "pushed by hand from another machine")
        git(d, "push", "-q", "origin", "iteratr/SPEC")
        return await agent._follow(prompt)

    run = remote_loop(a, Script("follow", another_machine_pushes, "follow"), expect=EXIT_FAILED)
    assert "push to origin rejected: origin/iteratr/SPEC has 1 commit(s) this run does not have" in run.output
    assert "stopped: push to origin rejected" in run.output
    assert run.started() == [0, 1]  # stopped after the iteration that could not be pushed
    assert _iterations_on(a, "iteratr/SPEC") == [0, 1]  # #1 committed here, reachable
    assert remote_iterations(origin) == [0]
    assert git(origin, "log", "-1", "--format=%s", "iteratr/SPEC") == "pushed by hand from another machine"


def test_a_lease_taken_over_mid_run_stops_it_exit_4_committed_here_not_pushed(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")

    async def lease_taken_over(agent: FakeAgent, prompt: str) -> TurnResult:
        d = clone("d")
        repo = GitRepo.open(d)
        theirs = Lease(d, "origin", "SPEC", ttl=600, common_dir=repo.common_dir(), work_tree=d)
        current = refs.probe(d, "origin", "SPEC").lease
        assert refs.push(d, "origin", [refs.Update(theirs.ref, theirs.make(), current)])
        return await agent._follow(prompt)

    run = remote_loop(a, Script("follow", lease_taken_over, "follow"), expect=EXIT_LOCKED)
    assert "the lease on SPEC at origin was taken over; it is held by pid" in run.output
    assert "stopped: the lease on SPEC" in run.output
    assert _iterations_on(a, "iteratr/SPEC") == [0, 1]  # committed here
    assert remote_iterations(origin) == [0]  # not pushed
    assert lease_of(origin) is not None  # the new holder's, left alone


def test_a_remote_lost_while_renewing_is_retried_then_the_run_stops_as_if_the_lease_were_lost(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")
    away = origin.with_name("origin-away.git")

    async def network_goes_down(agent: FakeAgent, prompt: str) -> TurnResult:
        origin.rename(away)
        return await agent._follow(prompt)

    try:
        run = remote_loop(a, Script("follow", network_goes_down, "follow"), expect=EXIT_LOCKED)
    finally:
        if away.exists():
            if origin.exists():
                shutil.rmtree(origin)
            away.rename(origin)
    assert "lost contact with origin (3 tries; last: push to 'origin' failed" in run.output
    assert "stopped: lost contact with origin" in run.output
    assert _iterations_on(a, "iteratr/SPEC") == [0, 1]
    assert remote_iterations(origin) == [0]


def test_the_lease_is_renewed_during_a_turn_longer_than_its_ttl(origin: Path, clone: Callable[[str], Path]) -> None:
    a, b = clone("a"), clone("b")
    seen: dict[str, object] = {}

    async def a_long_turn(agent: FakeAgent, prompt: str) -> TurnResult:
        first = lease_of(origin)
        taken = json.loads(git(origin, "log", "-1", "--format=%B", "refs/iteratr/leases/SPEC"))["expires_epoch"]
        while time.time() <= taken + 0.5:  # past the expiry the lease had: only a renewal keeps it live
            await asyncio.sleep(0.1)
        seen["renewed"] = lease_of(origin) != first
        seen["refused"] = start_error(b)
        return await agent._follow(prompt)

    remote_loop(a, Script(a_long_turn, "follow"), ttl=1.5, expect=EXIT_OK)
    assert seen["renewed"] is True
    refused = seen["refused"]
    assert isinstance(refused, IteratrError) and refused.exit_code == EXIT_LOCKED
    assert "is held through origin by another machine" in str(refused)


def test_fetch_only_resumes_from_the_remote_writes_nothing_there_and_respects_a_live_lease(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a, b = clone("a"), clone("b")
    remote_loop(a, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)
    tip = _rev(origin, "iteratr/SPEC")
    out = build(b, "--remote", "origin", "-i", "1", "--agent", fake_agent("follow"), expect=EXIT_INCOMPLETE)
    assert "resuming from origin/iteratr/SPEC" in out and "=== #0" not in out
    assert _iterations_on(b, "iteratr/SPEC") == [0, 1, 2]  # resumed, and ran on here
    assert (_rev(origin, "iteratr/SPEC"), lease_of(origin)) == (tip, None)  # nothing pushed, no lease taken

    d = clone("d")  # another machine holds the session now
    holder = Lease(d, "origin", "SPEC", ttl=600, common_dir=GitRepo.open(d).common_dir(), work_tree=d)
    assert holder.take(None) is None
    refused = build(clone("c"), "--remote", "origin", "--agent", fake_agent("follow"), expect=EXIT_LOCKED)
    assert "is held through origin by another machine: pid" in refused and "starting the agent" not in refused


def test_a_lease_iteratr_cannot_read_counts_as_held_until_lease_ttl_after_it_was_written(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    d = clone("d")  # another version of iteratr, say, wrote it
    foreign = refs.commit_object(d, "written by something else\n")
    assert refs.push(d, "origin", [refs.Update("refs/iteratr/leases/SPEC", foreign, None)])
    refused = start_error(clone("a"))
    assert refused.exit_code == EXIT_LOCKED and "has a lease iteratr cannot read, written at" in str(refused)
    run = remote_loop(clone("b"), Script("follow"), ttl=0.001, iterations=1, expect=EXIT_INCOMPLETE)
    assert "took over a lease on SPEC at origin that iteratr cannot read" in run.output
