"""The git model of ``iteratr build``, through the real CLI, the scripted ACP agent and real git repos.

Session naming, the session branch (created, resumed, refused when the checkout is dirty),
``--worktree``, the states git must not be in, one iteratr-made commit per iteration with its
subject and trailers, ``--no-auto-commit``, runtime files kept out of git, the agent's own commits
and ``--reset``.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from tests.conftest import FAST_ENV, THREE_TASK_SPEC, fake_agent, git, read_events, run_cli


def build(cwd: Path, *args: str, expect: int | None = 0, env: dict[str, str] | None = None) -> str:
    result = run_cli("build", "--headless", *args, cwd=cwd, env={**FAST_ENV, **(env or {})}, expect=expect)
    return result.stdout + result.stderr


@dataclass
class Commit:
    sha: str
    subject: str
    session: str
    n: str
    files: list[str]


def commits(cwd: Path, ref: str, base: str = "main") -> list[Commit]:
    """iteratr's view of a branch: subject, trailers and changed files of each commit after ``base``, oldest first."""
    fmt = (
        "%H%x1f%s%x1f%(trailers:key=Iteratr-Session,valueonly,separator=)%x1f"
        "%(trailers:key=Iteratr-Iteration,valueonly,separator=)%x1e"
    )
    out = git(cwd, "log", "--reverse", f"--format={fmt}", f"{base}..{ref}")
    result = []
    for record in out.split("\x1e"):
        if not record.strip("\n"):
            continue
        sha, subject, session, n = (part.strip("\n ") for part in record.strip("\n").split("\x1f"))
        files = git(cwd, "show", "--format=", "--name-only", sha).splitlines()
        result.append(Commit(sha, subject, session, n, files))
    return result


def started_numbers(cwd: Path, session: str = "SPEC") -> list[int]:
    events = read_events(cwd, session)
    return [int(cast(dict[str, Any], e["data"])["n"]) for e in events if e["type"] == "iteration.started"]


def status(cwd: Path) -> str:
    return git(cwd, "status", "--porcelain", "--untracked-files=all")


# -- session names ---------------------------------------------------------------------------------------


def test_session_name_comes_from_the_spec_stem(repo: Path) -> None:
    (repo / "specs").mkdir()
    (repo / "specs" / "user-auth.md").write_text(THREE_TASK_SPEC)
    (repo / "specs" / "my spec.v2+x.md").write_text(THREE_TASK_SPEC)
    git(repo, "add", "specs")
    git(repo, "commit", "-q", "-m", "specs")

    out = build(repo, "--spec", "specs/user-auth.md", "--agent", fake_agent("follow"), "-i", "1", expect=3)
    assert "session user-auth" in out
    assert git(repo, "branch", "--show-current") == "iteratr/user-auth"
    assert (repo / ".iteratr" / "user-auth" / "events.jsonl").is_file()

    git(repo, "switch", "-q", "main")
    out = build(repo, "--spec", "specs/my spec.v2+x.md", "--agent", fake_agent("follow"), "-i", "1", expect=3)
    assert git(repo, "branch", "--show-current") == "iteratr/my-spec-v2-x"
    assert (repo / ".iteratr" / "my-spec-v2-x" / "events.jsonl").is_file()


def test_name_flag_overrides_the_spec_stem(spec_repo: Path) -> None:
    build(spec_repo, "-n", "custom", "--agent", fake_agent("follow"), "-i", "1", expect=3)
    assert git(spec_repo, "branch", "--show-current") == "iteratr/custom"
    assert started_numbers(spec_repo, "custom") == [0, 1]  # planning, and -i 1 main iteration
    assert not (spec_repo / ".iteratr" / "SPEC").exists()
    assert commits(spec_repo, "iteratr/custom")[0].subject.startswith("iteratr(custom): #0 ")


def test_invalid_name_is_refused_before_anything_is_written(spec_repo: Path) -> None:
    out = build(spec_repo, "-n", "bad/name", "--agent", fake_agent("follow"), expect=2)
    assert "invalid session name 'bad/name'" in out
    assert not (spec_repo / ".iteratr").exists()
    assert git(spec_repo, "branch", "--list", "iteratr/*") == ""


# -- the session branch ----------------------------------------------------------------------------------


def test_branch_is_created_from_head_of_the_current_branch_and_resumed(spec_repo: Path) -> None:
    git(spec_repo, "switch", "-q", "-c", "feature")
    (spec_repo / "feature.txt").write_text("feature work\n")
    git(spec_repo, "add", "feature.txt")
    git(spec_repo, "commit", "-q", "-m", "feature work")
    feature_head = git(spec_repo, "rev-parse", "HEAD")

    out = build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=3)  # planning + 1
    assert "branch iteratr/SPEC (created from feature)" in out
    assert git(spec_repo, "branch", "--show-current") == "iteratr/SPEC"
    first = commits(spec_repo, "iteratr/SPEC", base="feature")
    assert [c.n for c in first] == ["0", "1"]
    assert git(spec_repo, "rev-parse", f"{first[0].sha}^") == feature_head

    # Back on another branch, the next run resumes the branch rather than starting over.
    git(spec_repo, "switch", "-q", "main")
    out = build(spec_repo, "--agent", fake_agent("follow"), expect=0)
    assert "(resumed)" in out
    assert git(spec_repo, "branch", "--show-current") == "iteratr/SPEC"
    all_commits = commits(spec_repo, "iteratr/SPEC", base="feature")
    assert [c.n for c in all_commits] == ["0", "1", "2", "3"]
    assert all_commits[1].sha == first[1].sha
    assert git(spec_repo, "rev-parse", "main") != git(spec_repo, "rev-parse", "iteratr/SPEC")


def test_running_again_on_the_session_branch_resumes_it(spec_repo: Path) -> None:
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=3)
    out = build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=3)
    assert "(resumed)" in out
    assert started_numbers(spec_repo) == [0, 1, 2]  # planning + 1, then 1 more


def test_uncommitted_changes_to_tracked_files_are_refused_and_left_alone(spec_repo: Path) -> None:
    (spec_repo / "README.md").write_text("my unsaved edit\n")
    (spec_repo / "scratch.txt").write_text("untracked\n")
    head = git(spec_repo, "rev-parse", "HEAD")

    out = build(spec_repo, "--agent", fake_agent("follow"), expect=1)
    assert "uncommitted changes to tracked files (README.md)" in out
    assert "commit or stash them, or use --worktree" in out
    assert git(spec_repo, "branch", "--show-current") == "main"
    assert git(spec_repo, "rev-parse", "HEAD") == head
    assert git(spec_repo, "branch", "--list", "iteratr/*") == ""
    assert (spec_repo / "README.md").read_text() == "my unsaved edit\n"
    assert (spec_repo / "scratch.txt").read_text() == "untracked\n"
    assert not (spec_repo / ".iteratr").exists()


def test_untracked_files_do_not_block_the_switch(spec_repo: Path) -> None:
    (spec_repo / "scratch.txt").write_text("untracked\n")
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", "--no-auto-commit", expect=3)
    assert git(spec_repo, "branch", "--show-current") == "iteratr/SPEC"
    assert (spec_repo / "scratch.txt").read_text() == "untracked\n"


# -- --worktree --------------------------------------------------------------------------------------------


def test_worktree_leaves_the_users_checkout_alone_and_is_reused(spec_repo: Path) -> None:
    (spec_repo / "README.md").write_text("my unsaved edit\n")  # a dirty checkout is fine with --worktree
    head = git(spec_repo, "rev-parse", "HEAD")
    before = status(spec_repo)

    out = build(spec_repo, "--worktree", "--agent", fake_agent("follow"), "-i", "1", expect=3)
    path = spec_repo / ".iteratr" / "worktrees" / "SPEC"
    assert f"work tree {path}" in out
    assert "(worktree, created)" in out
    assert git(spec_repo, "branch", "--show-current") == "main"
    assert git(spec_repo, "rev-parse", "HEAD") == head
    assert (spec_repo / "README.md").read_text() == "my unsaved edit\n"
    assert not (spec_repo / "work").exists()  # the agent worked in the worktree
    assert status(spec_repo) == before  # the worktree and iteratr's files are invisible to the user's git
    assert git(path, "branch", "--show-current") == "iteratr/SPEC"
    assert (path / "work").is_dir()
    assert started_numbers(path) == [0, 1]

    out = build(spec_repo, "--worktree", "--agent", fake_agent("follow"), expect=0)
    assert "(worktree, resumed)" in out
    assert f"work tree {path}" in out
    assert started_numbers(path) == [0, 1, 2, 3]
    assert [c.n for c in commits(spec_repo, "iteratr/SPEC")] == ["0", "1", "2", "3"]
    assert git(spec_repo, "branch", "--show-current") == "main"
    assert status(spec_repo) == before

    # Without the flag, a session that lives in a worktree still runs there.
    out = build(spec_repo, "--agent", fake_agent("follow"), expect=0)
    assert "already complete" in out
    assert git(spec_repo, "branch", "--show-current") == "main"


# -- git states refused before anything starts -------------------------------------------------------------


def _assert_nothing_written(path: Path) -> None:
    assert not (path / ".iteratr").exists()
    if (path / ".git").exists():
        assert git(path, "branch", "--list", "iteratr/*") == ""


def test_not_a_git_repository(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "SPEC.md").write_text(THREE_TASK_SPEC)
    out = build(tmp_path, "--agent", fake_agent("follow"), expect=1)
    assert f"{tmp_path} is not in a git repository" in out
    assert "git init" in out
    _assert_nothing_written(tmp_path)


def test_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "SPEC.md").write_text(THREE_TASK_SPEC)
    out = build(tmp_path, "--agent", fake_agent("follow"), expect=1)
    assert "no commits yet" in out
    _assert_nothing_written(tmp_path)


def test_detached_head(spec_repo: Path) -> None:
    git(spec_repo, "checkout", "-q", "--detach")
    out = build(spec_repo, "--agent", fake_agent("follow"), expect=1)
    assert "HEAD is detached" in out
    assert "git switch" in out
    _assert_nothing_written(spec_repo)


def _conflicting_branches(repo: Path) -> None:
    """``other`` and ``main`` change a.txt differently, so merging or rebasing one onto the other stops."""
    for branch, text in (("other", "one"), ("main", "two")):
        git(repo, "switch", "-q", *(["-c", branch] if branch == "other" else [branch]))
        (repo / "a.txt").write_text(f"{text}\n")
        git(repo, "add", "a.txt")
        git(repo, "commit", "-q", "-m", text)


def test_merge_in_progress(spec_repo: Path) -> None:
    _conflicting_branches(spec_repo)
    merge = subprocess.run(["git", "merge", "other"], cwd=spec_repo, capture_output=True, text=True)
    assert merge.returncode != 0  # a conflict: the merge stays in progress

    out = build(spec_repo, "--agent", fake_agent("follow"), expect=1)
    assert f"a merge is in progress in {spec_repo}" in out
    assert "git merge --abort" in out
    _assert_nothing_written(spec_repo)


def test_rebase_in_progress(spec_repo: Path) -> None:
    _conflicting_branches(spec_repo)
    git(spec_repo, "switch", "-q", "other")
    rebase = subprocess.run(["git", "rebase", "main"], cwd=spec_repo, capture_output=True, text=True)
    assert rebase.returncode != 0

    out = build(spec_repo, "--agent", fake_agent("follow"), expect=1)
    assert "a rebase is in progress" in out
    assert "git rebase --abort" in out
    _assert_nothing_written(spec_repo)


def test_git_missing_from_path(spec_repo: Path, tmp_path: Path) -> None:
    import sys

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    out = build(spec_repo, "--agent", fake_agent("follow"), expect=1, env={"PATH": str(bindir)})
    assert "git is not installed or not on PATH" in out
    _assert_nothing_written(spec_repo)


# -- commits -----------------------------------------------------------------------------------------------


def test_every_iteration_is_one_commit_with_subject_trailers_and_the_work(spec_repo: Path) -> None:
    build(spec_repo, "--agent", fake_agent("follow"), expect=0)
    history = commits(spec_repo, "iteratr/SPEC")
    assert started_numbers(spec_repo) == [0, 1, 2, 3]
    assert [c.n for c in history] == ["0", "1", "2", "3"]
    assert {c.session for c in history} == {"SPEC"}
    for c in history:
        assert re.match(rf"iteratr\(SPEC\): #{c.n} \S", c.subject), c.subject
    assert history[0].subject == "iteratr(SPEC): #0 planning: 3 tasks"
    assert history[1].subject == "iteratr(SPEC): #1 Completed TAS-1: First task"
    assert set(history[0].files) == {".iteratr/.gitignore", ".iteratr/SPEC/events.jsonl", ".iteratr/SPEC/tasks.yaml"}
    assert "work/first-task.txt" in history[1].files
    assert "work/second-task.txt" in history[2].files
    assert "work/third-task.txt" in history[3].files
    body = git(spec_repo, "log", "-1", "--format=%b", history[1].sha)
    assert "TAS-1 remaining -> completed: First task" in body
    assert status(spec_repo) == ""  # nothing left behind uncommitted
    # The committed log is the whole log.
    committed = git(spec_repo, "show", "iteratr/SPEC:.iteratr/SPEC/events.jsonl")
    assert committed.strip() == (spec_repo / ".iteratr" / "SPEC" / "events.jsonl").read_text().strip()


def test_data_dir_gitignore_is_written_and_committed(spec_repo: Path) -> None:
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=3)
    ignore = (spec_repo / ".iteratr" / ".gitignore").read_text()
    for pattern in ("*/inbox.*", "*/*.log", "*/cache/"):
        assert pattern in ignore
    assert git(spec_repo, "show", "iteratr/SPEC:.iteratr/.gitignore") == ignore.strip()


def test_no_auto_commit_commits_only_the_session_files(spec_repo: Path) -> None:
    build(spec_repo, "--agent", fake_agent("follow"), "--no-auto-commit", "-i", "1", expect=3)
    history = commits(spec_repo, "iteratr/SPEC")
    assert [c.n for c in history] == ["0", "1"]
    for c in history:
        assert set(c.files) <= {".iteratr/.gitignore", ".iteratr/SPEC/events.jsonl", ".iteratr/SPEC/tasks.yaml"}
    assert ".iteratr/SPEC/events.jsonl" in history[1].files
    assert (spec_repo / "work" / "first-task.txt").is_file()
    assert "?? work/first-task.txt" in status(spec_repo).splitlines()


def test_runtime_files_are_never_committed(spec_repo: Path) -> None:
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=3)
    run_cli("say", "-n", "SPEC", "please be quick", cwd=spec_repo, env=FAST_ENV, expect=0)
    build(spec_repo, "--agent", fake_agent("crash", "follow", state_file=spec_repo.parent / "state"), expect=0)
    assert any(e["type"] == "user.message" for e in read_events(spec_repo))
    session = spec_repo / ".iteratr" / "SPEC"
    assert (session / "agent.log").is_file()
    assert (session / "inbox.md").exists()
    assert (spec_repo / ".git" / "iteratr" / "cache").is_dir()  # the snapshot: where git never carries it
    everything = git(spec_repo, "log", "--all", "--format=", "--name-only").splitlines()
    assert everything, "no files committed at all"
    for name in everything:
        assert not name.startswith(".iteratr/SPEC/") or name in (
            ".iteratr/SPEC/events.jsonl",
            ".iteratr/SPEC/tasks.yaml",
        ), name
    assert status(spec_repo) == ""


def test_agent_commits_of_its_own_come_below_iteratrs(spec_repo: Path) -> None:
    state = spec_repo.parent / "agent-state"
    build(spec_repo, "--agent", fake_agent("follow", "commit", state_file=state), "-i", "1", expect=3)
    subjects = git(spec_repo, "log", "--format=%s", "main..iteratr/SPEC").splitlines()
    assert subjects == [
        "iteratr(SPEC): #1 no summary recorded",
        "the agent's own commit",
        "iteratr(SPEC): #0 planning: 3 tasks",
    ]
    top = commits(spec_repo, "iteratr/SPEC")[-1]
    assert top.n == "1"
    assert ".iteratr/SPEC/events.jsonl" in top.files
    assert "agent-commit.txt" not in top.files  # it is in the agent's commit
    assert git(spec_repo, "show", "iteratr/SPEC:agent-commit.txt") == "committed by the agent"


# -- --reset -----------------------------------------------------------------------------------------------


def test_reset_archives_the_branch_and_starts_afresh(spec_repo: Path) -> None:
    build(spec_repo, "--agent", fake_agent("follow"), expect=0)
    old_head = git(spec_repo, "rev-parse", "iteratr/SPEC")

    out = build(spec_repo, "--reset", "--agent", fake_agent("follow"), "-i", "1", expect=3)
    archived = git(spec_repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/iteratr/SPEC.archived-*")
    assert re.fullmatch(r"iteratr/SPEC\.archived-\d{8}T\d{6}Z", archived), archived
    assert f"the old one is {archived}" in out
    assert git(spec_repo, "rev-parse", archived) == old_head  # history kept
    assert [c.n for c in commits(spec_repo, archived)] == ["0", "1", "2", "3"]
    fresh = commits(spec_repo, "iteratr/SPEC")
    assert [c.n for c in fresh] == ["0", "1"]  # planned afresh, then -i 1
    assert git(spec_repo, "rev-parse", f"{fresh[0].sha}^") == git(spec_repo, "rev-parse", "main")
    assert started_numbers(spec_repo) == [0, 1]
    assert git(spec_repo, "branch", "--show-current") == "iteratr/SPEC"


def test_reset_with_a_dirty_checkout_is_refused_before_archiving(spec_repo: Path) -> None:
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=3)
    git(spec_repo, "switch", "-q", "main")
    (spec_repo / "README.md").write_text("my unsaved edit\n")
    head = git(spec_repo, "rev-parse", "iteratr/SPEC")

    out = build(spec_repo, "--reset", "--agent", fake_agent("follow"), expect=1)
    assert "uncommitted changes to tracked files (README.md)" in out
    assert git(spec_repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/iteratr/") == "iteratr/SPEC"
    assert git(spec_repo, "rev-parse", "iteratr/SPEC") == head
    assert git(spec_repo, "branch", "--show-current") == "main"
    assert (spec_repo / "README.md").read_text() == "my unsaved edit\n"


def test_runtime_files_stay_ignored_after_switching_away_from_the_session(spec_repo: Path) -> None:
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=3)
    session = spec_repo / ".iteratr" / "SPEC"
    git(spec_repo, "switch", "-q", "main")
    # The session's files went with its branch; its runtime files stayed, and git does not offer them.
    assert not (session / "events.jsonl").exists()
    assert (session / "agent.log").is_file() and (session / "inbox.md").exists()
    assert status(spec_repo) == ""
    git(spec_repo, "add", "--all")
    assert git(spec_repo, "diff", "--cached", "--name-only") == ""
    # Running again adds nothing twice to the exclude file.
    exclude = (spec_repo / ".git" / "info" / "exclude").read_text()
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=3)
    assert (spec_repo / ".git" / "info" / "exclude").read_text() == exclude
    assert exclude.count("/.iteratr/*/cache/") == 1


def test_data_dir_flag(spec_repo: Path) -> None:
    build(spec_repo, "--data-dir", "state/iter", "--agent", fake_agent("follow"), "-i", "1", expect=3)
    assert (spec_repo / "state" / "iter" / "SPEC" / "events.jsonl").is_file()
    assert not (spec_repo / ".iteratr").exists()
    files = commits(spec_repo, "iteratr/SPEC")[0].files
    assert set(files) == {"state/iter/.gitignore", "state/iter/SPEC/events.jsonl", "state/iter/SPEC/tasks.yaml"}
    assert status(spec_repo) == ""  # its runtime files are ignored too

    out = build(spec_repo, "--data-dir", str(spec_repo.parent / "outside"), "--agent", fake_agent("follow"), expect=2)
    assert "outside the repository" in out


def test_build_from_a_subdirectory_resumes_the_session_at_the_top(spec_repo: Path) -> None:
    # It used to take <subdir>/.iteratr as the data dir: a second, empty session on the same branch,
    # planned again from #0, so iteration numbers repeated in `git log iteratr/SPEC`.
    build(spec_repo, "--agent", fake_agent("follow"), "-i", "1", expect=3)
    sub = spec_repo / "src"
    sub.mkdir()
    build(sub, "--spec", "../specs/SPEC.md", "--agent", fake_agent("follow"), "-i", "1", expect=3)
    assert not (sub / ".iteratr").exists()
    assert [c.n for c in commits(spec_repo, "iteratr/SPEC")] == ["0", "1", "2"]
    assert [e["type"] for e in read_events(spec_repo, "SPEC")].count("iteration.started") == 3


def test_commit_goes_on_the_session_branch_even_if_the_agent_leaves_it(spec_repo: Path, tmp_path: Path) -> None:
    main_head = git(spec_repo, "rev-parse", "main")
    agent = fake_agent("follow", "detach", "follow", state_file=tmp_path / "state")
    out = build(spec_repo, "--agent", agent, "-i", "2", expect=3)
    assert "the agent left the checkout on a detached HEAD; switching back to iteratr/SPEC" in out
    assert git(spec_repo, "branch", "--show-current") == "iteratr/SPEC"
    assert git(spec_repo, "rev-parse", "main") == main_head
    history = commits(spec_repo, "iteratr/SPEC")
    assert [c.n for c in history] == ["0", "1", "2"]
    assert "detached.txt" in history[1].files  # the work done off the branch came along
    assert status(spec_repo) == ""
