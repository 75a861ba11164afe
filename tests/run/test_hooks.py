"""Lifecycle hooks: loading and validating .iteratr.hooks.yml, running commands for real, rendering output.

Every hook here is a real /bin/sh process; timeouts are kept short (0.5-1 s) so the file runs fast.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iteratr.errors import EXIT_USAGE, ConfigError
from iteratr.run import hooks
from iteratr.run.hooks import (
    HOOK_TYPES,
    HOOKS_FILE,
    HookResult,
    HooksConfig,
    HookSpec,
    load_hooks,
    render_piped,
    run_hooks,
)

# --- helpers ---------------------------------------------------------------------------------------------------


def write_hooks(work_tree: Path, data: dict[str, Any]) -> HooksConfig:
    """Write a hooks file from Python data (YAML-dumped, so any command text survives) and load it."""
    from ruamel.yaml import YAML

    buf = io.StringIO()
    YAML(typ="safe", pure=True).dump(data, buf)
    (work_tree / HOOKS_FILE).write_text(buf.getvalue())
    config = load_hooks(work_tree)
    assert config is not None
    return config


def one_hook(work_tree: Path, command: str, hook_type: str = "pre_iteration", **options: Any) -> HooksConfig:
    return write_hooks(work_tree, {"version": 1, "hooks": {hook_type: [{"command": command, **options}]}})


def run(
    config: HooksConfig, hook_type: str = "pre_iteration", variables: dict[str, str] | None = None, **kw: Any
) -> list[HookResult]:
    cwd = kw.pop("cwd", config.path.parent)
    return run_hooks(config, hook_type, variables or {}, cwd=cwd, env=kw.pop("env", {}), **kw)


def run_one(work_tree: Path, command: str, variables: dict[str, str] | None = None, **options: Any) -> HookResult:
    (result,) = run(one_hook(work_tree, command, **options), variables=variables)
    return result


def is_dead(pid: int) -> bool:
    """Gone, or a zombie (this container's init does not reap reparented orphans)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Pids a test started indirectly; killed at teardown so a failing test leaves no stray sleep behind."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def read_pid(path: Path) -> int:
    assert path.exists(), f"the hook did not get to write {path.name} before its timeout"
    return int(path.read_text().strip())


# --- loading ---------------------------------------------------------------------------------------------------

README_EXAMPLE = """\
version: 1

hooks:
  session_start:
    - command: "git pull --rebase"
      timeout: 30
    - command: "go build ./..."
      timeout: 60
      pipe_output: true  # Send build errors to agent

  pre_iteration:
    - command: "golangci-lint run ./..."
      timeout: 30
      pipe_output: true

  post_iteration:
    - command: "go test ./... -short"
      timeout: 120
      pipe_output: true
    - command: 'curl -X POST $SLACK_WEBHOOK -d "{\\"text\\":\\"Iteration done\\"}"'
      timeout: 5

  session_end:
    - command: "git push origin HEAD"
    - command: "./scripts/notify-complete.sh {{session}}"
      timeout: 0.5

  on_task_complete:
    - command: "./scripts/validate-task.sh {{ task_id }}"
      pipe_output: true

  on_error:
"""


def test_missing_file_means_no_hooks(tmp_path: Path) -> None:
    assert load_hooks(tmp_path) is None
    assert run_hooks(None, "pre_iteration", {}, cwd=tmp_path, env={}) == []


def test_readme_example_loads_with_defaults_and_lines(tmp_path: Path) -> None:
    (tmp_path / HOOKS_FILE).write_text(README_EXAMPLE)
    config = load_hooks(tmp_path)
    assert config is not None
    assert config.path == tmp_path / HOOKS_FILE
    assert config.of("session_start") == (
        HookSpec("session_start", "git pull --rebase", 30.0, False, 5),
        HookSpec("session_start", "go build ./...", 60.0, True, 7),
    )
    assert (
        config.of("post_iteration")[1].command == 'curl -X POST $SLACK_WEBHOOK -d "{\\"text\\":\\"Iteration done\\"}"'
    )
    assert config.of("session_end") == (
        HookSpec("session_end", "git push origin HEAD", 30.0, False, 24),
        HookSpec("session_end", "./scripts/notify-complete.sh {{session}}", 0.5, False, 25),
    )
    assert config.of("on_task_complete")[0].pipe_output is True
    assert config.of("on_error") == ()
    assert config.summary() == (
        "hooks: session_start (2), pre_iteration (1), post_iteration (2), session_end (2), on_task_complete (1)"
    )


def test_summary_none_and_unknown_type(tmp_path: Path) -> None:
    (tmp_path / HOOKS_FILE).write_text("version: 1\nhooks:\n  pre_iteration: []\n")
    config = load_hooks(tmp_path)
    assert config is not None
    assert config.summary() == "hooks: none"
    (tmp_path / HOOKS_FILE).write_text("version: 1\n")
    config = load_hooks(tmp_path)
    assert config is not None and config.summary() == "hooks: none"
    assert all(config.of(t) == () for t in HOOK_TYPES)
    with pytest.raises(ValueError, match="pre_iterations"):
        config.of("pre_iterations")


V = "version: 1\nhooks:\n"
INVALID = [
    pytest.param(V + "  pre_iteration: [\n", 4, ["invalid YAML"], id="bad-yaml"),
    pytest.param(V + "  pre_iteration: []\n  pre_iteration: []\n", 4, ["invalid YAML", "duplicate key"], id="dup"),
    pytest.param("- command: ls\n", 1, ["not a mapping", "version: 1"], id="list"),
    pytest.param("# only a comment\n", 1, ["empty", "version: 1"], id="empty"),
    pytest.param("version: 2\nhooks: {}\n", 1, ["unsupported version 2", "accepted: version: 1"], id="version-2"),
    pytest.param("version: '1'\n", 1, ["unsupported version '1'"], id="version-str"),
    pytest.param("hooks: {}\n", 1, ["missing 'version'"], id="no-version"),
    pytest.param(
        "version: 1\nhook: {}\n", 2, ["unknown key 'hook'", "did you mean 'hooks'", "version, hooks"], id="top"
    ),
    pytest.param("version: 1\nhooks:\n  - ls\n", 3, ["'hooks' is a list", "session_start"], id="hooks-list"),
    pytest.param(
        V + "  pre_iteration:\n    - command: ls\n  pre_iterations:\n    - command: ls\n",
        5,
        ["unknown hook type 'pre_iterations'", "did you mean 'pre_iteration'", ", ".join(HOOK_TYPES)],
        id="hook-type",
    ),
    pytest.param(V + "  on_error:\n    command: ls\n", 4, ["'on_error' is a mapping, not a list"], id="not-list"),
    pytest.param(V + "  on_error:\n    - command: ls\n    - ls -la\n", 5, ["on_error entry 2 is a string"], id="str"),
    pytest.param(V + "  on_error:\n    - timeout: 3\n", 4, ["on_error entry 1 has no 'command'"], id="no-command"),
    pytest.param(V + "  on_error:\n    - command: '  '\n", 4, ["'command' is empty"], id="empty-command"),
    pytest.param(V + "  on_error:\n    - command: 42\n", 4, ["'command' is a number"], id="number-command"),
    pytest.param(
        V + "  on_error:\n    - command: ls\n      timeout: 0\n", 5, ["positive number of seconds, got 0"], id="t0"
    ),
    pytest.param(V + "  on_error:\n    - command: ls\n      timeout: -1\n", 5, ["got -1"], id="t-neg"),
    pytest.param(V + "  on_error:\n    - command: ls\n      timeout: 30s\n", 5, ["got '30s'"], id="t-str"),
    pytest.param(V + "  on_error:\n    - command: ls\n      timeout: true\n", 5, ["got True"], id="t-bool"),
    pytest.param(V + "  on_error:\n    - command: ls\n      timeout: .inf\n", 5, ["got inf"], id="t-inf"),
    pytest.param(
        V + "  on_error:\n    - command: ls\n      pipe_output: yes\n",
        5,
        ["'pipe_output' must be true or false, got 'yes'"],
        id="pipe-yes",
    ),
    pytest.param(
        V + "  on_error:\n    - command: ls\n      timout: 3\n",
        5,
        ["unknown key 'timout'", "did you mean 'timeout'", "command, timeout, pipe_output"],
        id="entry-key",
    ),
    pytest.param(
        V + "  on_task_complete:\n    - command: echo {{tsk_id}}\n",
        4,
        ["unknown variable {{tsk_id}}", "did you mean {{task_id}}", "{{session}}, {{iteration}}, {{task_id}}"],
        id="variable",
    ),
    pytest.param(
        V + "  on_error:\n    - pipe_output: true\n      command: |\n        echo start\n        echo {{ errror }}\n",
        5,
        ["unknown variable {{errror}}", "did you mean {{error}}"],
        id="variable-block",
    ),
    pytest.param(V + "  on_error:\n    - command: echo {{}}\n", 4, ["unknown variable {{}}"], id="variable-empty"),
    pytest.param(
        V + "  on_task_complete:\n    - command: git commit -m 'done {{task_id}}'\n",
        4,
        ["{{task_id}} is inside single quotes", '-m "done {{task_id}}"', '"$ITERATR_TASK_ID"'],
        id="single-quoted",
    ),
]


@pytest.mark.parametrize(("text", "line", "fragments"), INVALID)
def test_invalid_file_is_a_config_error_naming_file_and_line(
    tmp_path: Path, text: str, line: int, fragments: list[str]
) -> None:
    (tmp_path / HOOKS_FILE).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_hooks(tmp_path)
    message = str(info.value)
    assert info.value.exit_code == EXIT_USAGE
    assert message.startswith(f"{tmp_path / HOOKS_FILE}:{line}: "), message
    assert "\n" not in message
    assert "; " in message  # "<problem>; <what is accepted>"
    for fragment in fragments:
        assert fragment in message


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / HOOKS_FILE).write_bytes(b"version: 1\nhooks:\n  on_error:\n    - command: echo \xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_hooks(tmp_path)


def test_escaped_placeholder_and_commented_apostrophe_are_not_variables(tmp_path: Path) -> None:
    command = "# it's a comment\nprintf '%s|' \\{{foo}} {{session}}  # don't {{task_id}}"
    result = run_one(tmp_path, command, variables={"session": "a  b"})
    assert (result.exit_status, result.output) == (0, "{{foo}}|a  b|")


# --- running ---------------------------------------------------------------------------------------------------


def test_success_and_failure_are_results_and_all_hooks_run_in_order(tmp_path: Path) -> None:
    config = write_hooks(
        tmp_path,
        {
            "version": 1,
            "hooks": {
                "post_iteration": [
                    {"command": "echo out; echo err >&2; echo out2; echo 1 >> order"},
                    {"command": "echo 2 >> order; exit 3"},
                    {"command": "echo 3 >> order; kill -KILL $$"},
                    {"command": "echo 4 >> order"},
                ]
            },
        },
    )
    first, second, third, fourth = run(config, "post_iteration")
    assert (first.exit_status, first.timed_out, first.failed, first.output) == (0, False, False, "out\nerr\nout2\n")
    assert first.status == "exit status 0"
    assert (second.exit_status, second.failed, second.status) == (3, True, "exit status 3")
    assert (third.exit_status, third.failed, third.status) == (-9, True, "killed by signal SIGKILL")
    assert fourth.exit_status == 0
    assert [r.spec for r in (first, second, third, fourth)] == list(config.of("post_iteration"))
    assert all(r.duration >= 0 for r in (first, second, third, fourth))
    assert (tmp_path / "order").read_text() == "1\n2\n3\n4\n"
    assert run(config, "pre_iteration") == []


def test_runs_in_cwd_in_own_session_with_stdin_from_dev_null(tmp_path: Path) -> None:
    work = tmp_path / "work tree"
    work.mkdir()
    config = one_hook(
        tmp_path, "pwd; echo $$; cut -d' ' -f5,6 /proc/$$/stat; if read x; then echo got; else echo eof; fi"
    )
    # Give this process a readable stdin, so a hook that inherited it would read a line.
    read_end, write_end = os.pipe()
    os.write(write_end, b"line\n")
    os.close(write_end)
    saved_stdin = os.dup(0)
    try:
        os.dup2(read_end, 0)
        (result,) = run(config, cwd=work)
    finally:
        os.dup2(saved_stdin, 0)
        os.close(saved_stdin)
        os.close(read_end)
    pwd, pid, groups, stdin = result.output.splitlines()
    assert Path(pwd) == work
    assert groups == f"{pid} {pid}"  # process group and session led by the hook's shell
    assert int(pid) != os.getpgrp()
    assert stdin == "eof"


def test_variables_and_env_reach_the_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ITERATR_TRUST", raising=False)  # set for every test by conftest; not a hook variable
    config = one_hook(
        tmp_path,
        "env | grep '^ITERATR_' | sort; echo \"extra=$EXTRA home=$HOME\"; printf '[%s]' {{task_id}} {{ session }}",
    )
    (result,) = run(config, variables={"session": "s1", "iteration": "3"}, env={"EXTRA": "yes"})
    assert result.output == (
        "ITERATR_ERROR=\nITERATR_ITERATION=3\nITERATR_SESSION=s1\nITERATR_TASK_CONTENT=\nITERATR_TASK_ID=\n"
        f"extra=yes home={os.environ['HOME']}\n[][s1]"
    )


def test_caller_mistakes_raise_value_error(tmp_path: Path) -> None:
    config = one_hook(tmp_path, "true")
    with pytest.raises(ValueError, match="post_iterations"):
        run(config, "post_iterations")
    with pytest.raises(ValueError, match="task"):
        run(config, variables={"task": "x"})


def test_a_hook_that_cannot_start_is_a_failed_result(tmp_path: Path) -> None:
    (result,) = run(one_hook(tmp_path, "true"), cwd=tmp_path / "missing")
    assert (result.exit_status, result.timed_out, result.failed, result.status) == (
        None,
        False,
        True,
        "could not start",
    )
    assert "could not start" in result.output


MARKER = "pwned-marker"
PAYLOADS = [
    "$(touch {m})",
    "`touch {m}`",
    "'; touch {m}; '",
    '"; touch {m}; "',
    '\\"$(touch {m})\\"',
    "x\ntouch {m}\n",
    "'\"`touch {m}`\"'$(touch {m})",
    "${{IFS}}$(touch {m})",
    "\\'$(touch {m})\\'",
    "*  ?  [a-z] ~",
    "-n",
    "",
    "{{{{session}}}}",
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize(
    ("command", "shape"),
    [
        ("printf '%s' {{task_content}} > out.txt", "{}"),
        ('printf "%s" "[{{task_content}}]" > out.txt', "[{}]"),
        ("printf '%s' \"{{task_content}}\"{{task_content}} > out.txt # don't", "{}{}"),
        ("sh -c 'printf %s \"$ITERATR_TASK_CONTENT\"' > out.txt", "{}"),
    ],
    ids=["bare", "double-quoted", "adjacent", "nested-shell-env"],
)
def test_values_are_never_interpreted_by_the_shell(tmp_path: Path, payload: str, command: str, shape: str) -> None:
    marker = tmp_path / MARKER
    value = payload.format(m=marker)
    result = run_one(tmp_path, command, variables={"task_content": value, "session": "S"})
    assert not marker.exists(), f"the value ran as shell code: {value!r}"
    assert result.exit_status == 0, result.output
    assert (tmp_path / "out.txt").read_text() == shape.format(value, value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30))
def test_any_value_arrives_verbatim(tmp_path: Path, value: str) -> None:
    config = one_hook(tmp_path, "printf '%s' {{error}} > a; printf '%s' \"<{{error}}>\" > b")
    (result,) = run(config, "pre_iteration", {"error": value})
    assert result.exit_status == 0, result.output
    assert (tmp_path / "a").read_bytes().decode() == value
    assert (tmp_path / "b").read_bytes().decode() == f"<{value}>"


def test_timeout_kills_the_whole_group_and_keeps_output_so_far(tmp_path: Path, reap: list[int]) -> None:
    command = "sh -c 'sleep 1000 & echo $! > grandchild.pid; wait' & echo $! > child.pid; echo printed-so-far; wait"
    result = run_one(tmp_path, command, timeout=1)
    reap += [read_pid(tmp_path / "grandchild.pid"), read_pid(tmp_path / "child.pid")]
    assert (result.timed_out, result.exit_status, result.failed) == (True, None, True)
    assert result.status == "timed out after 1s"
    assert result.output == "printed-so-far\n"
    for pid in reap:
        assert is_dead(pid), f"pid {pid} survived the timeout"


def test_timeout_escalates_to_sigkill_for_a_group_that_ignores_sigterm(
    tmp_path: Path, reap: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks, "KILL_GRACE", 0.2)
    command = "trap '' TERM; sh -c 'sleep 1000 & echo $! > grandchild.pid; wait' & echo started; wait"
    result = run_one(tmp_path, command, timeout=1)
    reap.append(read_pid(tmp_path / "grandchild.pid"))
    assert result.timed_out and result.output == "started\n"
    assert is_dead(reap[0]), "a SIGTERM-ignoring grandchild survived the timeout"


def test_a_background_child_holding_the_output_does_not_hang_the_hook(tmp_path: Path, reap: list[int]) -> None:
    result = run_one(tmp_path, "sleep 1000 & echo $! > bg.pid; echo done", timeout=30)
    reap.append(read_pid(tmp_path / "bg.pid"))
    assert (result.timed_out, result.exit_status, result.output) == (False, 0, "done\n")


def test_output_is_capped_keeping_the_tail(tmp_path: Path) -> None:
    config = one_hook(tmp_path, "head -c 100000 /dev/zero | tr '\\0' x; echo; echo END")
    (result,) = run(config, output_cap=1000)
    assert result.output == "[... 99005 bytes cut ...]\n" + "x" * 995 + "\nEND\n"


def test_default_cap_is_64_kib_and_a_megabyte_does_not_block(tmp_path: Path) -> None:
    (result,) = run(one_hook(tmp_path, "head -c 1000000 /dev/zero | tr '\\0' x"))
    assert result.exit_status == 0
    assert result.output == f"[... {1000000 - 65536} bytes cut ...]\n" + "x" * 65536


def test_cap_does_not_split_a_utf8_character(tmp_path: Path) -> None:
    (result,) = run(one_hook(tmp_path, "yes é | head -n 1000 | tr -d '\\n'"), output_cap=999)
    assert result.output == "[... 1002 bytes cut ...]\n" + "é" * 499


# --- rendering -------------------------------------------------------------------------------------------------


def spec(command: str, hook_type: str = "post_iteration", pipe: bool = True, timeout: float = 30) -> HookSpec:
    return HookSpec(hook_type, command, timeout, pipe, 1)


def test_render_piped_names_hook_command_status_and_output(tmp_path: Path) -> None:
    results = [
        HookResult(spec("make lint", "pre_iteration"), 0, False, 0.1, "all good\n"),
        HookResult(spec("notify", pipe=False), 1, False, 0.1, "secret\n"),
        HookResult(spec("go test ./..."), 2, False, 0.1, "FAIL: TestX\n"),
        HookResult(spec("true"), 0, False, 0.1, ""),
    ]
    assert render_piped(results) == (
        "pre_iteration hook succeeded (exit status 0):\n```\n$ make lint\nall good\n```\n\n"
        "post_iteration hook FAILED (exit status 2):\n```\n$ go test ./...\nFAIL: TestX\n```\n\n"
        "post_iteration hook succeeded (exit status 0):\n```\n$ true\n(no output)\n```"
    )


def test_render_piped_is_empty_without_piped_results() -> None:
    assert render_piped([]) == ""
    assert render_piped([HookResult(spec("ls", pipe=False), 1, False, 0.1, "x")]) == ""


def test_render_piped_fence_outlasts_backticks_in_output() -> None:
    text = render_piped([HookResult(spec("cat README.md"), 0, False, 0.1, "```python\nx = 1\n```\n")])
    assert text == "post_iteration hook succeeded (exit status 0):\n````\n$ cat README.md\n```python\nx = 1\n```\n````"


def test_render_piped_reports_a_real_timeout(tmp_path: Path) -> None:
    config = one_hook(tmp_path, "echo partial; sleep 5", "on_error", timeout=0.5, pipe_output=True)
    (result,) = run(config, "on_error", {"error": "boom"})
    assert render_piped([result]) == (
        "on_error hook FAILED (timed out after 0.5s; output so far below):\n```\n$ echo partial; sleep 5\npartial\n```"
    )
