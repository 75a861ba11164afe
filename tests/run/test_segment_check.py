"""``segment_check.inspect`` reads the segments against iteratr's commit two ways: a diff and a listing of the
commit (any HEAD), or one ``git status`` when HEAD is that commit (the loop's common case, started alongside other
reads). Whatever was done to the segments' directory, both must find the same changed, new and stray files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from iteratr import gitreads
from iteratr.gitrepo import GitRepo
from iteratr.run import segment_check
from iteratr.session import segments
from tests.conftest import git

SESSION = "S"


def committed_segments(repo: Path, count: int) -> tuple[Path, str]:
    session = repo / ".iteratr" / SESSION
    for n in range(count):
        path = session / segments.segment_rel(n)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'{{"n": {n}}}\n')
    git(repo, "add", "--all")
    git(repo, "commit", "-q", "-m", "segments")
    return session, git(repo, "rev-parse", "HEAD")


def edit(session: Path) -> None:
    (session / segments.segment_rel(1)).write_text('{"n": "edited"}\n')


def delete(session: Path) -> None:
    (session / segments.segment_rel(2)).unlink()


def stage_an_edit(session: Path) -> None:
    (session / segments.segment_rel(0)).write_text('{"n": "staged"}\n')
    git(session.parent.parent, "add", "--all")


def plant(session: Path) -> None:
    path = session / segments.segment_rel(3)
    path.write_text('{"n": 3}\n')


def stray(session: Path) -> None:
    (session / segments.SEGMENTS_DIR / "notes.txt").write_text("not a segment\n")


def rename(session: Path) -> None:
    repo = session.parent.parent
    git(repo, "mv", str(session / segments.segment_rel(2)), str(session / segments.segment_rel(5)))


def added_then_deleted(session: Path) -> None:
    path = session / segments.segment_rel(4)
    path.write_text('{"n": 4}\n')
    git(session.parent.parent, "add", "--all")
    path.unlink()


def remove_all(session: Path) -> None:
    for path in sorted((session / segments.SEGMENTS_DIR).rglob("*.jsonl")):
        path.unlink()


def ignored(session: Path) -> None:
    """The user's .gitignore covers the data dir: a new segment is ignored, and must still be found."""
    (session.parent.parent / ".gitignore").write_text(".iteratr/\n")
    plant(session)


def several(session: Path) -> None:
    for damage in (edit, plant, stray, delete):
        damage(session)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "nothing": lambda session: None,
    "edit": edit,
    "delete": delete,
    "stage an edit": stage_an_edit,
    "plant": plant,
    "stray": stray,
    "rename": rename,
    "added then deleted": added_then_deleted,
    "remove all": remove_all,
    "ignored": ignored,
    "several": several,
}


def found(state: segment_check.SegmentState) -> tuple[list[str], list[Path], list[Path]]:
    return sorted(state.changed), state.new, sorted(state.strays)


@pytest.mark.parametrize("damage", DAMAGE)
def test_the_status_of_the_segments_finds_what_the_diff_finds(repo: Path, damage: str) -> None:
    session, last = committed_segments(repo, 3)
    DAMAGE[damage](session)
    git_repo = GitRepo.open(repo)
    by_diff = segment_check.inspect(git_repo, session, last)
    by_status = segment_check.inspect(git_repo, session, last, segment_check.start(git_repo, session))
    assert found(by_status) == found(by_diff)
    whole = segment_check.from_status(git_repo, session, gitreads.status(git_repo))
    if damage == "ignored":  # hidden from the whole tree's status, but the store's count of segments grew
        assert segments.count(session) == 4 and found(whole) == ([], [], [])
    else:
        assert found(whole) == found(by_diff)
    # Staged, then deleted, a file is nowhere in the work tree: the commit's `git add --all` drops it from the index.
    harmless = damage in ("nothing", "added then deleted")
    assert (found(by_diff) == ([], [], [])) == harmless


def test_a_segment_moved_out_of_the_directory_is_changed_and_the_file_outside_is_left_alone(repo: Path) -> None:
    session, last = committed_segments(repo, 3)
    git(repo, "mv", str(session / segments.segment_rel(1)), "elsewhere.jsonl")
    git_repo = GitRepo.open(repo)
    by_status = segment_check.inspect(git_repo, session, last, segment_check.start(git_repo, session))
    assert found(by_status) == found(segment_check.inspect(git_repo, session, last))
    assert by_status.changed == [f".iteratr/{SESSION}/{segments.segment_rel(1)}"] and not by_status.strays
    whole = segment_check.from_status(git_repo, session, gitreads.status(git_repo))
    assert found(whole) == found(by_status)


def test_a_file_a_planted_gitignore_hides_is_still_found(repo: Path) -> None:
    """A self-ignoring .gitignore planted beside a segment hides itself and a second file of segment 0's number
    (``00.jsonl``, which the store's listing would read as segment 0 again), without changing the count."""
    session, last = committed_segments(repo, 3)
    folder = (session / segments.segment_rel(0)).parent
    (folder / ".gitignore").write_text("*\n")
    planted = folder / "00.jsonl"
    planted.write_text('{"forged": true}\n')
    git_repo = GitRepo.open(repo)
    by_status = segment_check.inspect(git_repo, session, last, segment_check.start(git_repo, session))
    assert planted in by_status.strays and folder / ".gitignore" in by_status.strays
    assert found(by_status) == found(segment_check.inspect(git_repo, session, last))
    # The whole tree's status cannot see them, and needs not: no reader takes a name iteratr would not give.
    assert segments.closed(session) == [0, 1, 2] and segments.count(session) == 3


def test_a_symlinked_segment_is_a_stray_either_way(repo: Path) -> None:
    session, last = committed_segments(repo, 2)
    os.symlink("/etc/passwd", session / segments.segment_rel(2))
    git_repo = GitRepo.open(repo)
    by_status = segment_check.inspect(git_repo, session, last, segment_check.start(git_repo, session))
    assert by_status.strays == [session / segments.segment_rel(2)]
    assert found(by_status) == found(segment_check.inspect(git_repo, session, last))


def test_a_nested_repository_planted_where_segments_go_is_removed(repo: Path) -> None:
    """``git init`` where the next segments go: git lists the directory as one untracked path and never looks
    inside, while the store would read the segment planted there. The check's put_back removes the directory."""
    session, last = committed_segments(repo, 10)  # 0..9: the next one starts events/0/0/0/1/
    forged = session / segments.segment_rel(10)
    forged.parent.mkdir(parents=True)
    git(forged.parent, "init", "-q")
    forged.write_text('{"forged": 1}\n')
    assert segments.count(session) == 11  # every reader would take it
    git_repo = GitRepo.open(repo)
    found_now = segment_check.inspect(git_repo, session, last, segment_check.start(git_repo, session))
    assert forged.parent in found_now.strays
    segment_check.put_back(git_repo, found_now, last)
    assert not forged.parent.exists() and segments.count(session) == 10
