"""Unattended runs: every exit status of `iteratr build`, a run in cron's environment (`env -i`, no
TTY, no stdin, no TERM), the `--log-file` log and its rotation, and `--push` to a bare remote.

Exit statuses 4 (locked) and 130 (interrupted) are also exercised with two real processes in
tests/test_runlock.py (Ctrl+C); here 130 comes from SIGTERM to a run under cron's environment.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from iteratr.commands import build as buildcmd
from tests.conftest import FAST_ENV, ITERATR_CMD, fake_agent, git, run_cli, wait_for

# -- every exit status -------------------------------------------------------------------------------


def test_exit_0_when_the_session_is_complete(spec_repo: Path) -> None:
    result = run_cli("build", "--headless", "--agent", fake_agent("follow"), cwd=spec_repo, env=FAST_ENV, expect=0)
    assert "stopped: the session is complete (3 tasks)" in result.stdout


def test_exit_3_when_iterations_run_out_with_work_left(spec_repo: Path) -> None:
    result = run_cli(
        "build", "--headless", "--agent", fake_agent("follow"), "-i", "2", cwd=spec_repo, env=FAST_ENV, expect=3
    )
    last = result.stdout.splitlines()[-1]
    # Planning does not count against -i: planning plus two tasks, one of the three left.
    assert last.startswith("stopped: ") and "--iterations" in last and "1 task(s) still open" in last


def test_exit_1_at_the_failure_limit(spec_repo: Path) -> None:
    env = {**FAST_ENV, "ITERATR_MAX_FAILURES": "2"}
    result = run_cli("build", "--headless", "--agent", fake_agent("empty"), cwd=spec_repo, env=env, expect=1)
    assert "stopped: 2 failed iteration(s) in a row (max_failures)" in result.stdout


def test_exit_1_when_the_agent_cannot_start_and_the_log_says_why(spec_repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    result = run_cli(
        "build", "--headless", "--agent", "/nonexistent/agent acp", "--log-file", str(log),
        cwd=spec_repo, env=FAST_ENV, expect=1,
    )  # fmt: skip
    message = (
        "agent command not found: /nonexistent/agent (install it, or set --agent / ITERATR_AGENT / config key agent)"
    )
    assert result.stderr == f"iteratr: error: {message}\n"
    # A cron job's output often goes nowhere: the log must hold the reason and the status.
    assert log.read_text().splitlines()[-1].endswith(f" ERROR iteratr.run: error: {message} (exit status 1)")
    # Found before the session touched git: no branch, still on main.
    assert git(spec_repo, "branch", "--list", "iteratr/*") == ""
    assert git(spec_repo, "branch", "--show-current") == "main"


def test_exit_1_on_a_git_error(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "specs").mkdir(parents=True)
    (plain / "specs" / "SPEC.md").write_text("# x\n- [ ] a\n")
    result = run_cli("build", "--headless", "--agent", fake_agent("follow"), cwd=plain, env=FAST_ENV, expect=1)
    assert "is not in a git repository" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "files", "message"),
    [
        (["-i", "-1"], {}, {}, "-i"),  # bad usage
        (["-n", "no spaces allowed"], {}, {}, "invalid session name"),
        ([], {"ITERATR_MAX_FAILURES": "zero"}, {}, "ITERATR_MAX_FAILURES"),  # bad config, env
        ([], {}, {"iteratr.yml": "iterations: lots\n"}, "iteratr.yml:1"),  # bad config, file
        (["--spec", "missing.md"], {}, {}, "missing.md"),  # bad spec
        (["--template", "bad.j2"], {}, {"bad.j2": "{{ unclosed\n"}, "bad.j2"),  # bad template
    ],
    ids=["flag", "name", "env", "config-file", "spec", "template"],
)
def test_exit_2_on_bad_usage_config_spec_or_template(
    spec_repo: Path, args: list[str], env: dict[str, str], files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (spec_repo / name).write_text(text)
    result = run_cli(
        "build", "--headless", "--agent", fake_agent("follow"), *args, cwd=spec_repo, env={**FAST_ENV, **env}, expect=2
    )
    assert result.stderr.startswith("iteratr: error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr
    assert git(spec_repo, "branch", "--list", "iteratr/*") == ""  # refused before the branch was touched


def test_build_help_documents_the_exit_statuses(repo: Path) -> None:
    text = run_cli("build", "--help", cwd=repo).stdout
    for status, meaning in [
        ("0", "the session is complete"),
        ("1", "the run failed"),
        ("2", "bad usage, config, spec, template, id or session name"),
        ("3", "stopped by --iterations or a budget with work left"),
        ("4", "the session is locked by another run"),
        ("5", "stopped: needs a person"),
        ("130", "interrupted"),
    ]:
        assert re.search(rf"^\s+{status}\s+{re.escape(meaning)}", text, re.M), status


# -- cron's environment ------------------------------------------------------------------------------


@pytest.fixture
def cron_env(tmp_path: Path) -> dict[str, str]:
    """What cron gives a job: a minimal PATH (here with the venv's bin and git), HOME, and nothing else."""
    home = tmp_path / "cron-home"
    home.mkdir()
    git_bin = shutil.which("git")
    assert git_bin
    path_dirs = [str(Path(sys.executable).parent), str(Path(git_bin).parent), "/usr/bin", "/bin"]
    return {"PATH": ":".join(dict.fromkeys(path_dirs)), "HOME": str(home)}


def cron_run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *ITERATR_CMD, *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_plain_lines(text: str) -> None:
    assert "\x1b" not in text, "ANSI escape in the output"
    assert "\r" not in text, "carriage return in the output"
    assert text == "" or text.endswith("\n")


def test_a_cron_run_completes_with_plain_line_output(spec_repo: Path, cron_env: dict[str, str], tmp_path: Path) -> None:
    agent = f"{sys.executable} -m iteratr.agent.scripted --mode follow"
    log = tmp_path / "logs" / "iteratr.log"
    args = ["build", "--worktree", "--headless", "-i", "10", "--agent", agent, "--log-file", str(log)]

    proc = cron_run(args, spec_repo, {**cron_env, "ITERATR_RETRY_DELAY": "0"})

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_plain_lines(proc.stdout)
    assert_plain_lines(proc.stderr)
    assert "stopped: the session is complete (3 tasks)" in proc.stdout
    # No git identity anywhere in this environment: the commits still happen.
    assert git(spec_repo, "log", "-1", "--format=%s", "iteratr/SPEC").startswith("iteratr(SPEC): ")
    assert log.is_file()
    status = cron_run(["status"], spec_repo, cron_env)
    assert status.returncode == 0 and status.stdout.startswith("SPEC | idle | complete")
    assert_plain_lines(status.stdout)


def test_cron_without_headless_and_without_spec_exits_2_instead_of_prompting(
    repo: Path, cron_env: dict[str, str]
) -> None:
    proc = cron_run(["build"], repo, cron_env, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr == (
        "iteratr: error: no spec: specs/SPEC.md does not exist; pass --spec PATH (the wizard needs a terminal)\n"
    )
    assert proc.stdout == ""


def test_cron_output_is_flushed_line_by_line_and_sigterm_exits_130(
    spec_repo: Path, cron_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "cron.out"
    agent = f"{sys.executable} -m iteratr.agent.scripted --mode hang"
    env_args = [f"{k}={v}" for k, v in cron_env.items()]
    with open(out, "w") as f:
        proc = subprocess.Popen(
            ["env", "-i", *env_args, *ITERATR_CMD, "build", "--headless", "--agent", agent],
            cwd=spec_repo,
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    try:
        # The run is still going (the agent hangs), yet its lines are already in the file.
        wait_for(lambda: "=== #0 planning\n" in out.read_text(), "the iteration header in the output file")
        assert proc.poll() is None
        # What `timeout` or a CI runner sends to a job that overran: a clean stop, like Ctrl+C.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert_plain_lines(text)
    assert "stopped: interrupted" in text
    assert "#0 interrupted: interrupted by SIGTERM" in git(spec_repo, "log", "-1", "--format=%s", "iteratr/SPEC")


# -- the log file --------------------------------------------------------------------------------------


TIMESTAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) \S+: ")


def test_log_file_is_timestamped_and_has_debug_detail_at_log_level_debug(spec_repo: Path, tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    env = {**FAST_ENV, "ITERATR_LOG_LEVEL": "debug"}
    result = run_cli(
        "build", "--headless", "--agent", fake_agent("follow"), "-i", "1", "--log-file", str(log),
        cwd=spec_repo, env=env, expect=3,
    )  # fmt: skip

    lines = log.read_text().splitlines()
    assert lines and all(TIMESTAMPED.match(line) for line in lines), lines[:5]
    # Everything printed is in the log too, with a timestamp.
    assert any(line.endswith("INFO iteratr.run: === #0 planning") for line in lines)
    assert "=== #0 planning" in result.stdout
    assert any(" run ended with exit 3 after " in line for line in lines)
    # And more than was printed: debug detail (the git commands run).
    assert any(" DEBUG " in line for line in lines)
    assert "DEBUG" not in result.stdout


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_log_file_is_rotated_and_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_root_logger: None
) -> None:
    # The real limits: at most 4 files of 5 MiB, whatever a year of hourly runs writes.
    assert buildcmd.LOG_MAX_BYTES * (buildcmd.LOG_BACKUPS + 1) <= 50 * 1024 * 1024
    monkeypatch.setattr(buildcmd, "LOG_MAX_BYTES", 2000)
    log = tmp_path / "run.log"
    buildcmd.setup_logging(str(log), logging.DEBUG)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.RotatingFileHandler)]
    assert [(h.maxBytes, h.backupCount) for h in handlers] == [(2000, buildcmd.LOG_BACKUPS)]

    for i in range(500):
        logging.getLogger("iteratr.run").info("line %d of a long run %s", i, "x" * 40)

    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["run.log", *(f"run.log.{n}" for n in range(1, buildcmd.LOG_BACKUPS + 1))]
    assert all((tmp_path / name).stat().st_size <= 2000 for name in files)
    assert "line 499 " in log.read_text()


# -- pushing ---------------------------------------------------------------------------------------------


def bare_remote(tmp_path: Path) -> tuple[Path, Path]:
    """A bare repository whose post-receive hook records every push it receives."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    received = tmp_path / "received.txt"
    hook = remote / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\ncat >> '{received}'\n")
    hook.chmod(0o755)
    return remote, received


def test_push_sends_the_session_branch_after_each_commit(spec_repo: Path, tmp_path: Path) -> None:
    remote, received = bare_remote(tmp_path)
    git(spec_repo, "remote", "add", "origin", str(remote))

    run_cli("build", "--headless", "--agent", fake_agent("follow"), "--push", cwd=spec_repo, env=FAST_ENV, expect=0)

    commits = git(spec_repo, "rev-list", "--reverse", "main..iteratr/SPEC").splitlines()
    pushes = [line.split() for line in received.read_text().splitlines()]
    assert len(commits) >= 4  # planning + three tasks
    branch = [(new, ref) for _old, new, ref in pushes if ref.startswith("refs/heads/")]
    assert branch == [(sha, "refs/heads/iteratr/SPEC") for sha in commits]
    # The session's lease (issue 14): taken, renewed with every commit's push, deleted at the end.
    lease = [new for _old, new, ref in pushes if ref == "refs/iteratr/leases/SPEC"]
    assert len(lease) == len(commits) + 2 and lease[-1] == "0" * 40
    assert subprocess.run(
        ["git", "--git-dir", str(remote), "rev-parse", "iteratr/SPEC"], capture_output=True, text=True, check=True
    ).stdout.strip() == git(spec_repo, "rev-parse", "iteratr/SPEC")


def test_a_push_remote_that_does_not_exist_is_refused_before_any_agent_starts(spec_repo: Path) -> None:
    # Issue 14 changed this: a remote that cannot be reached was a warning per commit, the run going on and the
    # histories diverging; it is now refused before any agent starts, exit 1, one line, nothing touched.
    env = {**FAST_ENV, "ITERATR_PUSH": "nosuchremote"}  # the config key, through its env var
    result = run_cli(
        "build", "--headless", "--agent", fake_agent("follow"), "-i", "2", cwd=spec_repo, env=env, expect=1
    )

    assert result.stderr == "iteratr: error: no remote named 'nosuchremote' (no remote is configured here)\n"
    assert len(result.stderr.splitlines()) == 1
    assert "starting the agent" not in result.stdout
    assert git(spec_repo, "branch", "--list", "iteratr/*") == ""
