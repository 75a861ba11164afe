"""Two machines (clones) take turns carrying one session through a bare remote, to completion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from iteratr.agent.events import TurnResult
from iteratr.errors import EXIT_INCOMPLETE, EXIT_OK
from iteratr.remote import sync
from tests.conftest import fake_agent, git
from tests.fakes import FakeAgent, Script
from tests.remote.conftest import lease_of, remote_iterations, remote_log
from tests.remote.harness import remote_loop
from tests.run.helpers import build


def test_two_clones_take_turns_to_completion_numbers_contiguous_no_replanning(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a, b = clone("a"), clone("b")
    first = remote_loop(a, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)  # plans, does TAS-1
    assert first.started() == [0, 1]
    assert remote_iterations(origin) == [0, 1]  # each commit pushed
    assert lease_of(origin) is None  # released at the end of the run

    second = remote_loop(b, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)  # a fresh clone resumes
    assert "resuming from origin/iteratr/SPEC" in second.output
    assert second.started() == [0, 1, 2]  # the log came along; #2 is the next, no planning
    assert remote_iterations(origin) == [0, 1, 2]

    third = remote_loop(a, Script("follow"), expect=EXIT_OK)  # back on the first machine: behind, brought up
    assert "brought up to date" in third.output
    assert remote_iterations(origin) == [0, 1, 2, 3]
    subjects = remote_log(origin)
    assert sum("planning" in s for s in subjects) == 1
    assert git(a, "rev-parse", "iteratr/SPEC") == git(origin, "rev-parse", "iteratr/SPEC")
    assert third.state.complete


def test_a_remote_given_as_a_path_works_as_a_named_one(origin: Path, clone: Callable[[str], Path]) -> None:
    a, b = clone("a"), clone("b")
    remote_loop(a, Script("follow"), iterations=1, remote=str(origin), expect=EXIT_INCOMPLETE)
    assert remote_iterations(origin) == [0, 1]
    run = remote_loop(b, Script("follow"), remote=str(origin), expect=EXIT_OK)  # no tracking ref named by a path
    assert "resuming from url-" in run.output
    assert remote_iterations(origin) == [0, 1, 2, 3] and lease_of(origin) is None


def test_a_reset_with_a_remote_keeps_the_remotes_old_history_under_an_archive_branch_there(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a = clone("a")
    remote_loop(a, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)
    old = git(origin, "rev-parse", "iteratr/SPEC")
    out = build(a, "--push", "--reset", "-i", "1", "--agent", fake_agent("follow"), expect=EXIT_INCOMPLETE)
    assert "started afresh" in out
    assert remote_iterations(origin) == [0, 1]  # the fresh session's
    archived = git(origin, "for-each-ref", "--format=%(objectname)", "refs/heads/iteratr/SPEC.archived-*")
    assert archived == old  # the old history, still reachable on the remote


def test_each_commit_is_on_the_remote_before_the_next_iteration_starts(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    seen: list[list[int]] = []

    async def look_at_the_remote(agent: FakeAgent, prompt: str) -> TurnResult:
        seen.append(remote_iterations(origin))
        return await agent._follow(prompt)

    remote_loop(clone("a"), Script(look_at_the_remote), expect=EXIT_OK)
    assert seen == [[], [0], [0, 1], [0, 1, 2]]
    assert remote_iterations(origin) == [0, 1, 2, 3]


def test_a_build_without_a_remote_of_a_session_known_only_remotely_says_how_to_resume_it(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    remote_loop(clone("a"), Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)
    b = clone("b")
    (said,) = sync.unused_remote_copy(b, "SPEC")  # what `iteratr build` without a remote prints first
    assert said.startswith("note: origin/iteratr/SPEC exists, but this build has no remote") and "--push origin" in said
    assert sync.unused_remote_copy(b, "OTHER") == []
    git(b, "branch", "iteratr/SPEC", "origin/iteratr/SPEC")
    assert sync.unused_remote_copy(b, "SPEC") == []  # a local branch: nothing to say


def test_a_users_own_untracked_file_stays_put_when_the_checkout_follows_the_remote(
    origin: Path, clone: Callable[[str], Path]
) -> None:
    a, b = clone("a"), clone("b")
    remote_loop(a, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)
    remote_loop(b, Script("follow"), iterations=1, expect=EXIT_INCOMPLETE)  # the remote moves on
    assert git(a, "branch", "--show-current") == "iteratr/SPEC"  # a's checkout is the session's, and behind
    (a / "my-notes.txt").write_text("the user's own, not a run's\n")

    back = remote_loop(a, Script("follow"), expect=EXIT_OK)
    assert "brought up to date" in back.output
    assert "left in" not in back.output  # nothing taken for a killed run's leftovers
    assert (a / "my-notes.txt").read_text() == "the user's own, not a run's\n"
    assert git(a, "for-each-ref", "refs/iteratr/SPEC/left-behind/") == ""
