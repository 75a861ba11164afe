"""The trust boundary against a cloned repository: each kind of file that runs code stops build and doctor.

Each test clones (real ``git clone``) a repository carrying the hostile file, runs the real CLI in a
subprocess without ``ITERATR_TRUST`` (the ``untrusted`` fixture), and checks the exit status, the one line,
and that nothing ran: no branch, no marker file a hook or the agent would have made, no log file.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from iteratr import config, trust
from iteratr.agent import permissions
from iteratr.commands import build as build_cmd
from iteratr.errors import EXIT_USAGE, ConfigError
from iteratr.run import hooks as hooks_mod
from iteratr.run.settings import Settings
from tests.conftest import FAST_ENV, fake_agent, git, run_cli

pytestmark = pytest.mark.usefixtures("untrusted")


def clone_with(origin: Path, tmp_path: Path, files: dict[str, str]) -> Path:
    """Commit ``files`` into ``origin`` (which holds specs/SPEC.md) and return a fresh clone of it."""
    for name, text in files.items():
        (origin / name).parent.mkdir(parents=True, exist_ok=True)
        (origin / name).write_text(text)
    git(origin, "add", "-f", *files)
    git(origin, "commit", "-q", "-m", "hostile files")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    return clone


def touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def build(clone: Path, *args: str, expect: int | None) -> str:
    result = run_cli("build", "--headless", "-i", "1", *args, cwd=clone, env=FAST_ENV, expect=expect)
    return result.stderr


def assert_nothing_ran(clone: Path, marker: Path) -> None:
    assert not marker.exists(), "a repository's command ran"
    assert git(clone, "branch", "--list", "iteratr/*") == "", "a branch was created"
    assert not (clone / ".iteratr").exists(), "session files were written"


def test_hooks_of_a_clone_stop_build_before_anything_runs(spec_repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hooks = f"version: 1\nhooks:\n  session_start:\n    - command: {touch(marker)}\n"
    clone = clone_with(spec_repo, tmp_path, {".iteratr.hooks.yml": hooks})
    err = build(clone, "--agent", fake_agent("follow"), expect=EXIT_USAGE)
    (line,) = err.strip().splitlines()
    assert ".iteratr.hooks.yml runs shell commands (hooks)" in line and "`iteratr trust`" in line
    assert_nothing_ran(clone, marker)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("agent", "sh -c 'touch {marker}'"),
        ("log_file", "{marker}"),
        ("template", "{outside}"),
    ],
)
def test_each_key_of_a_clones_iteratr_yml_stops_build(spec_repo: Path, tmp_path: Path, key: str, value: str) -> None:
    marker, outside = tmp_path / "pwned", tmp_path / "secret.j2"
    outside.write_text("the secret {{ session }}\n")
    clone = clone_with(spec_repo, tmp_path, {"iteratr.yml": f"{key}: {value.format(marker=marker, outside=outside)}\n"})
    args = ["--agent", fake_agent("follow")] if key != "agent" else []
    err = build(clone, *args, expect=EXIT_USAGE)
    (line,) = err.strip().splitlines()
    assert f"iteratr.yml sets {key}, which" in line and "`iteratr trust`" in line
    assert_nothing_ran(clone, marker)


def test_doctor_refuses_to_start_a_clones_agent(spec_repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    clone = clone_with(spec_repo, tmp_path, {"iteratr.yml": f"agent: sh -c {shlex.quote(touch(marker))}\n"})
    result = run_cli("doctor", cwd=clone, expect=EXIT_USAGE)
    assert result.stderr.count("\n") == 1 and "iteratr.yml sets agent" in result.stderr
    assert result.stdout == "" and not marker.exists()


def test_the_users_own_flags_env_and_global_config_need_no_trust(spec_repo: Path, tmp_path: Path) -> None:
    global_file = config.global_config_path()
    global_file.parent.mkdir(parents=True, exist_ok=True)
    global_file.write_text(f"log_file: {tmp_path / 'global.log'}\n")
    build(spec_repo, "--agent", fake_agent("follow"), expect=3)
    assert (tmp_path / "global.log").exists()


def test_trust_then_a_change_needs_trust_again(spec_repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hooks = f"version: 1\nhooks:\n  session_start:\n    - command: {touch(marker)}\n"
    clone = clone_with(spec_repo, tmp_path, {".iteratr.hooks.yml": hooks})
    listed = run_cli("trust", "--list", cwd=clone).stdout
    assert ".iteratr.hooks.yml: untrusted" in listed
    refused = run_cli("trust", cwd=clone, expect=EXIT_USAGE)  # no terminal: nobody can answer
    assert "--yes" in refused.stderr and touch(marker) in refused.stdout  # it showed what would run
    run_cli("trust", "--yes", cwd=clone)
    build(clone, "--agent", fake_agent("follow"), expect=3)
    assert marker.exists()
    marker.unlink()
    (clone / ".iteratr.hooks.yml").write_text(hooks + "  pre_iteration:\n    - command: echo changed\n")
    git(clone, "commit", "-qam", "changed hooks")
    err = build(clone, "--agent", fake_agent("follow"), expect=EXIT_USAGE)
    assert "changed since you trusted it" in err and not marker.exists()
    run_cli("trust", "--revoke", cwd=clone)
    assert "untrusted" in run_cli("trust", "--list", cwd=clone).stdout


@pytest.mark.parametrize("how", ["flag", "env"])
def test_trust_for_one_run_records_nothing(spec_repo: Path, tmp_path: Path, how: str) -> None:
    marker = tmp_path / "ran"
    hooks = f"version: 1\nhooks:\n  session_start:\n    - command: {touch(marker)}\n"
    clone = clone_with(spec_repo, tmp_path, {".iteratr.hooks.yml": hooks})
    args, env = (["--trust"], FAST_ENV) if how == "flag" else ([], {**FAST_ENV, "ITERATR_TRUST": "1"})
    run_cli("build", "--headless", "-i", "1", "--agent", fake_agent("follow"), *args, cwd=clone, env=env, expect=3)
    assert marker.exists()
    assert "untrusted" in run_cli("trust", "--list", cwd=clone).stdout
    run_cli("doctor", "--trust", cwd=clone, env={"PATH": "/nonexistent"}, expect=None)


def test_a_session_branch_cannot_slip_in_other_hooks(spec_repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    git(spec_repo, "checkout", "-q", "-b", "iteratr/SPEC")
    hooks = f"version: 1\nhooks:\n  session_start:\n    - command: {touch(marker)}\n"
    (spec_repo / ".iteratr.hooks.yml").write_text(hooks)
    git(spec_repo, "add", ".iteratr.hooks.yml")
    git(spec_repo, "commit", "-q", "-m", "hooks only on the session branch")
    git(spec_repo, "checkout", "-q", "main")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(spec_repo), str(clone))
    assert not (clone / ".iteratr.hooks.yml").exists()  # main has none: nothing to trust there
    git(clone, "branch", "iteratr/SPEC", "origin/iteratr/SPEC")  # carrying a pushed session on (--push)
    for extra in ([], ["--worktree"]):
        err = build(clone, "--agent", fake_agent("follow"), *extra, expect=EXIT_USAGE)
        assert "is not the file checked before the run" in err and not marker.exists()
        git(clone, "checkout", "-q", "main")  # the refused run had switched to the branch: back, to try --worktree


def test_on_a_terminal_build_asks_once_and_no_stops_it(
    spec_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone = clone_with(spec_repo, tmp_path, {".iteratr.hooks.yml": "version: 1\nhooks:\n"})
    monkeypatch.chdir(clone)
    monkeypatch.setattr(build_cmd, "is_interactive", lambda: True)
    asked: list[str] = []

    def no(question: str) -> bool:
        asked.append(question)
        return False

    with pytest.raises(trust.UntrustedError):
        build_cmd.run(build_cmd.BuildRequest(agent=fake_agent("follow")), ask=no)
    assert asked == ["Trust .iteratr.hooks.yml and let iteratr run what it shows?"]
    with pytest.raises(trust.UntrustedError):  # --headless: never asked
        build_cmd.run(build_cmd.BuildRequest(agent=fake_agent("follow"), headless=True), ask=no)
    assert len(asked) == 1


# --- hook values inside nested shells --------------------------------------------------------------------


def test_a_placeholder_in_a_nested_shell_is_refused_with_file_and_line(spec_repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hooks = (
        "version: 1\nhooks:\n  session_start:\n"
        f"    - command: {touch(marker)}\n"
        "  on_task_complete:\n"
        "    - command: |\n"
        "        echo start\n"
        '        bash -c "notify {{task_content}}"\n'
    )
    (spec_repo / ".iteratr.hooks.yml").write_text(hooks)
    err = build(spec_repo, "--trust", "--agent", fake_agent("follow"), expect=EXIT_USAGE)
    (line,) = err.strip().splitlines()
    assert ".iteratr.hooks.yml:8: on_task_complete entry 1: {{task_content}} is inside" in line
    assert "where its value could run as code" in line and '"$ITERATR_TASK_CONTENT"' in line
    assert not marker.exists() and git(spec_repo, "branch", "--list", "iteratr/*") == ""


@pytest.mark.parametrize(
    "command",
    ['sh -c "echo {{error}}"', "eval echo {{task_content}}", 'ssh host "echo {{task_id}}"', "python3 -c {{error}}"],
)
def test_the_loader_refuses_each_nested_form(tmp_path: Path, command: str) -> None:
    (tmp_path / ".iteratr.hooks.yml").write_text(f"version: 1\nhooks:\n  on_error:\n    - command: '{command}'\n")
    with pytest.raises(ConfigError, match=r"\.iteratr\.hooks\.yml:4: on_error entry 1: \{\{\w+\}\} is inside"):
        hooks_mod.load_hooks(tmp_path)


def test_accepted_forms_still_load(tmp_path: Path) -> None:
    text = "version: 1\nhooks:\n  on_error:\n" + "".join(
        f"    - command: |\n        {c}\n"
        for c in ('echo "{{error}}"', "sh -c 'echo \"$1\"' _ {{error}}", 'git commit -m "fix: {{task_content}}"')
    )
    (tmp_path / ".iteratr.hooks.yml").write_text(text)
    loaded = hooks_mod.load_hooks(tmp_path)
    assert loaded is not None and len(loaded.of("on_error")) == 3


# --- the permissions key ------------------------------------------------------------------------------------


def test_permissions_key_reaches_settings_parsed(tmp_path: Path) -> None:
    (tmp_path / "iteratr.yml").write_text(
        "permissions:\n  mode: deny\n  rules:\n    - allow read\n    - 'deny execute \"git push*\"'\n"
    )
    cfg = config.load_config(cwd=tmp_path)
    settings = Settings.resolve(
        cfg, session="s", work_tree=tmp_path, data_dir=tmp_path / ".iteratr", spec_path=tmp_path / "s.md",
        extra="", templates={}, hooks=None, binary=[sys.executable],
    )  # fmt: skip
    assert settings.permissions.mode == "deny"
    assert [r.text for r in settings.permissions.rules] == ["allow read", 'deny execute "git push*"']
    assert Settings.resolve(config.defaults(), **vars_of(tmp_path)).permissions == permissions.DEFAULT


def vars_of(tmp_path: Path) -> dict[str, Any]:
    return {
        "session": "s",
        "work_tree": tmp_path,
        "data_dir": tmp_path / ".iteratr",
        "spec_path": tmp_path / "s.md",
        "extra": "",
        "templates": {},
        "hooks": None,
        "binary": [sys.executable],
    }


def test_a_bad_permissions_value_is_a_config_error_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "iteratr.yml").write_text("model: x\npermissions: maybe\n")
    with pytest.raises(ConfigError, match=r"iteratr.yml:2: permissions: 'maybe' is not a permission policy"):
        config.load_config(cwd=tmp_path)
