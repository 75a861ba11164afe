"""``iteratr.gitrepo`` against real git repositories: committing, identity fallback, trailers, dirty files."""

from __future__ import annotations

from pathlib import Path

import pytest

from iteratr import gitreads
from iteratr.errors import GitError
from iteratr.gitrepo import GitRepo
from tests.conftest import git


def session_files(repo: Path) -> list[Path]:
    data = repo / ".iteratr"
    (data / "S").mkdir(parents=True)
    (data / ".gitignore").write_text("*/*.log\n")
    (data / "S" / "events.jsonl").write_text("{}\n")
    (data / "S" / "agent.log").write_text("noise\n")
    return [data / "S" / "events.jsonl", data / "S" / "tasks.yaml", data / ".gitignore"]


def commit_all(g: GitRepo, message: str, *, everything: bool, force_paths: list[Path]) -> str:
    """Stage as the recorder does (the session files forced, and all the work tree admits if ``everything``),
    commit through GitRepo, and return the short sha."""
    if everything:
        g.run("add", "--all")
    rel = [str(p.relative_to(g.root)) for p in force_paths if p.exists()]
    if rel:
        g.run("add", "--force", "--", *rel)
    g.commit_staged(message)
    return g.run("rev-parse", "--short", "HEAD")


def committed_files(repo: Path, ref: str = "HEAD") -> set[str]:
    return set(git(repo, "show", "--format=", "--name-only", ref).splitlines())


def test_commit_everything_or_only_the_session_files(repo: Path) -> None:
    files = session_files(repo)
    (repo / "work.txt").write_text("the agent's work\n")
    (repo / "README.md").write_text("changed\n")
    (repo / ".gitignore").write_text("ignored.txt\n")
    (repo / "ignored.txt").write_text("never\n")
    g = GitRepo.open(repo)

    commit_all(g, "only session files\n", everything=False, force_paths=files)
    assert committed_files(repo) == {".iteratr/.gitignore", ".iteratr/S/events.jsonl"}  # tasks.yaml absent: skipped

    sha = commit_all(g, "everything\n", everything=True, force_paths=files)
    assert git(repo, "rev-parse", "--short", "HEAD") == sha
    assert committed_files(repo) == {"work.txt", "README.md", ".gitignore"}
    assert "ignored.txt" not in git(repo, "ls-files")
    assert ".iteratr/S/agent.log" not in git(repo, "ls-files")


def test_session_files_are_committed_even_when_gitignored(repo: Path) -> None:
    files = session_files(repo)
    (repo / ".gitignore").write_text(".iteratr/\n")  # a user ignoring the data dir wholesale
    commit_all(GitRepo.open(repo), "session\n", everything=True, force_paths=files)
    assert ".iteratr/S/events.jsonl" in committed_files(repo)


def test_message_is_kept_verbatim_and_hooks_are_skipped(repo: Path) -> None:
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    git(repo, "config", "commit.cleanup", "strip")  # a user setting that would drop "#" lines
    message = "iteratr(S): #3 done\n\nSummary:\n# Heading the agent wrote\n- ünïcode\n\nIteratr-Iteration: 3\n"
    commit_all(GitRepo.open(repo), message, everything=True, force_paths=[])
    assert git(repo, "log", "-1", "--format=%B") == message.strip()


def test_commit_without_any_identity_falls_back(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("[user]\n\tuseConfigOnly = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    (repo / "x.txt").write_text("x\n")
    commit_all(GitRepo.open(repo), "cron commit\n", everything=True, force_paths=[])
    assert git(repo, "log", "-1", "--format=%an <%ae>") == "iteratr <iteratr@localhost>"


def test_commit_uses_the_users_identity(repo: Path) -> None:
    commit_all(GitRepo.open(repo), "mine\n", everything=True, force_paths=[])
    assert git(repo, "log", "-1", "--format=%ae") == "author@example.com"


def test_last_committed_iteration(repo: Path) -> None:
    g = GitRepo.open(repo)
    assert g.last_committed_iteration("S") is None
    commit_all(g, "iteratr(S): #0 x\n\nIteratr-Session: S\nIteratr-Iteration: 0\n", everything=True, force_paths=[])
    assert g.last_committed_iteration("S") == 0
    commit_all(g, "iteratr(S): #1 x\n\nIteratr-Session: S\nIteratr-Iteration: 1\n", everything=True, force_paths=[])
    commit_all(g, "iteratr(S): end of run\n\nIteratr-Session: S\n", everything=True, force_paths=[])
    commit_all(g, "the agent's own\n", everything=True, force_paths=[])
    commit_all(g, "iteratr(T): #7 x\n\nIteratr-Session: T\nIteratr-Iteration: 7\n", everything=True, force_paths=[])
    assert g.last_committed_iteration("S") == 1
    assert g.last_committed_iteration("T") == 7
    assert g.last_committed_iteration("S2") is None


def test_dirty_tracked_lists_changed_tracked_files_only(repo: Path) -> None:
    g = GitRepo.open(repo)
    assert g.dirty_tracked() == []
    (repo / "new.txt").write_text("untracked\n")
    assert g.dirty_tracked() == []
    (repo / "README.md").write_text("edited\n")
    assert g.dirty_tracked() == ["README.md"]


def test_open_outside_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="is not in a git repository"):
        GitRepo.open(tmp_path)


def test_open_from_a_subdirectory_finds_the_root(repo: Path) -> None:
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    assert GitRepo.open(sub).root == repo.resolve()


def test_failed_git_command_is_a_one_line_git_error(repo: Path) -> None:
    with pytest.raises(GitError) as info:
        GitRepo.open(repo).run("switch", "no-such-branch")
    assert "git switch no-such-branch failed:" in str(info.value)
    assert "\n" not in str(info.value)


def test_git_runs_in_its_own_process_group(repo: Path) -> None:
    """A terminal's Ctrl+C (SIGINT to the foreground group) must reach iteratr only, never a git commit."""
    import os

    out = GitRepo.open(repo).run("-c", "alias.pgid=!ps -o pgid= -p $$", "pgid")
    assert int(out.strip()) != os.getpgrp()


def test_importing_gitrepo_and_its_plain_functions_never_import_gitpython(repo: Path) -> None:
    """``iteratr status`` and ``say`` ask git through the plain functions, which must stay quick."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from iteratr import gitrepo; "
        f"r = Path({str(repo)!r}); gitrepo.toplevel(r); gitrepo.worktrees(r); gitrepo.branches(r, '*'); "
        "gitrepo.blob(r, 'HEAD', 'README.md'); gitrepo.current_branch(r); "
        "print('git' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_plain_functions_answer_from_a_subdirectory_and_a_linked_worktree(repo: Path, tmp_path: Path) -> None:
    from iteratr import gitrepo

    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    top, common = gitrepo.toplevel(sub) or (None, None)
    assert (top, common) == (repo.resolve(), (repo / ".git").resolve())
    assert gitrepo.toplevel(tmp_path) is None
    assert gitrepo.current_branch(sub) == "main"
    GitRepo.open(repo).add_worktree(tmp_path / "wt", "iteratr/S")
    assert gitrepo.worktrees(sub) == {"main": repo.resolve(), "iteratr/S": (tmp_path / "wt").resolve()}
    assert gitrepo.toplevel(tmp_path / "wt") == ((tmp_path / "wt").resolve(), (repo / ".git").resolve())
    assert gitrepo.branches(repo, "iteratr/*") == ["iteratr/S"]
    assert gitrepo.blob(repo, "HEAD", "README.md") == b"# test repo\n"
    assert gitrepo.blob(repo, "HEAD", "missing") is None
    with pytest.raises(GitError, match="git no-such-command failed"):
        gitrepo.run_git(repo, "no-such-command")


def test_branch_methods_session_branch_uses(repo: Path, tmp_path: Path) -> None:
    g = GitRepo.open(repo)
    first = git(repo, "rev-parse", "HEAD")
    assert g.parent(first) is None  # the root commit
    (repo / "x.txt").write_text("x\n")
    assert g.changed(["x.txt"]) and not g.changed(["README.md"])
    commit_all(g, "one\n\nIteratr-Session: S\n", everything=True, force_paths=[])
    commit_all(g, "two\n\nIteratr-Session: S\n", everything=True, force_paths=[])
    found = g.first_commit("HEAD", "Iteratr-Session: S")
    assert found is not None and g.parent(found) == first
    assert g.first_commit("HEAD", "Iteratr-Session: other") is None
    g.switch_new("iteratr/T", first)
    assert g.current_branch() == "iteratr/T" and git(repo, "rev-parse", "HEAD") == first
    assert g.add_worktree(tmp_path / "wt", "iteratr/U", base="main") is True
    assert git(tmp_path / "wt", "log", "-1", "--format=%s") == "two"


def test_objects_reads_the_ids_of_refs_and_files_of_a_commit_in_one_git(repo: Path) -> None:
    git_repo = GitRepo.open(repo)
    (repo / "a b.txt").write_bytes(b"two\nlines\n")
    git(repo, "add", "--all")
    git(repo, "commit", "-q", "-m", "a file")
    tip = git_repo.rev("HEAD")
    assert tip is not None
    branch = git_repo.current_branch()
    git_repo.update_ref("refs/iteratr/S/last", tip)
    found = gitreads.objects(
        gitreads.start_objects(git_repo, f"refs/heads/{branch}", "refs/iteratr/none", "refs/iteratr/S/last:a b.txt")
    )
    assert found[0] is not None and found[0][0] == tip
    assert found[1] is None  # missing: nothing follows its line
    blob = git(repo, "rev-parse", "HEAD:a b.txt")
    assert found[2] == (blob, len(b"two\nlines\n"))
    assert gitreads.blob_id(b"two\nlines\n", blob) == blob


def test_head_ref_reads_where_head_is_attached(repo: Path) -> None:
    git_repo = GitRepo.open(repo)
    assert gitreads.head_ref(git_repo) == f"refs/heads/{git_repo.current_branch()}"
    git(repo, "checkout", "-q", "--detach")
    assert gitreads.head_ref(git_repo) is None
    worktree = repo.parent / "linked"
    git(repo, "worktree", "add", "-q", "-b", "other", str(worktree))
    assert gitreads.head_ref(GitRepo.open(worktree)) == "refs/heads/other"  # the linked work tree's own HEAD


def test_status_names_head_changed_and_untracked_paths(repo: Path) -> None:
    git_repo = GitRepo.open(repo)
    (repo / "a file.txt").write_text("one\n")
    (repo / "old name.txt").write_text("moved\n" * 20)
    git(repo, "add", "--all")
    git(repo, "commit", "-q", "-m", "two files")
    (repo / "a file.txt").write_text("two\n")  # changed, not staged
    git(repo, "mv", "old name.txt", "new name.txt")  # a rename: its old path must not be taken for a path
    (repo / "dir with space").mkdir()
    (repo / "dir with space" / "new.txt").write_text("x\n")
    found = gitreads.status(git_repo)
    assert found.head == git_repo.rev("HEAD")
    assert sorted(found.changed) == ["a file.txt", "new name.txt"]
    assert found.untracked == ["dir with space/new.txt"]  # -uall: files, not their directory


def test_add_all_forces_the_named_files_a_gitignore_covers(repo: Path) -> None:
    git_repo = GitRepo.open(repo)
    (repo / ".gitignore").write_text("data/\nsecret.txt\n")
    (repo / "data").mkdir()
    (repo / "data" / "log.jsonl").write_text("{}\n")
    (repo / "secret.txt").write_text("not mine to commit\n")
    (repo / "work.py").write_text("x = 1\n")
    git_repo.add_all(forced=["data/log.jsonl"])
    staged = git(repo, "diff", "--cached", "--name-only").split()
    assert sorted(staged) == [".gitignore", "data/log.jsonl", "work.py"]  # the other ignored file stays out
    git_repo.add_all(forced=[])  # nothing named: one plain add


def test_add_all_fails_loudly_when_git_cannot_add(repo: Path) -> None:
    (repo / ".git" / "index.lock").write_text("")
    (repo / "work.py").write_text("x = 1\n")
    with pytest.raises(GitError, match="git add --all failed"):
        GitRepo.open(repo).add_all(forced=[])


def test_add_all_fails_loudly_when_another_path_fails_after_an_ignored_one(repo: Path) -> None:
    """git names the ignored session file first, then dies on a path it cannot add, having staged nothing else:
    that is a failure, never a commit of the session's files alone."""
    (repo / ".gitignore").write_text(".iteratr/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore the data dir")
    (repo / "work.py").write_text("the agent's work\n")
    (repo / ".iteratr" / "S").mkdir(parents=True)
    (repo / ".iteratr" / "S" / "events.jsonl").write_text("{}\n")
    (repo / "GIT~1").mkdir()  # a path git add refuses (as an unreadable file is, for a user other than root)
    (repo / "GIT~1" / "x").write_text("x\n")
    with pytest.raises(GitError, match="git add --all failed"):
        GitRepo.open(repo).add_all(forced=[".iteratr/S/events.jsonl"])


def test_a_replaced_commit_does_not_fool_iteratrs_reads(repo: Path) -> None:
    """``git replace <commit> <fake>`` makes git show the fake's tree for the commit: an agent could make any log
    look committed. iteratr's git runs with GIT_NO_REPLACE_OBJECTS."""
    (repo / "log").write_text("the real log\n")
    git(repo, "add", "log")
    git(repo, "commit", "-q", "-m", "real")
    real = git(repo, "rev-parse", "HEAD")
    (repo / "log").write_text("a forged log\n")
    git(repo, "commit", "-q", "-am", "fake")
    fake = git(repo, "rev-parse", "HEAD")
    git(repo, "replace", real, fake)
    assert git(repo, "show", f"{real}:log") == "a forged log"  # what a plain git shows now
    git_repo = GitRepo.open(repo)
    assert git_repo.run("show", f"{real}:log") == "the real log"
    found = gitreads.objects(gitreads.start_objects(git_repo, f"{real}:log"))
    assert found == [(gitreads.blob_id(b"the real log\n", real), len("the real log\n"))]
