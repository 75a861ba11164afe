"""Nested-shell placeholders: the detector refuses each nested form, and every form it accepts is safe for real.

The property test is the proof the issue asks for: commands are built from accepted and refused pieces,
and whenever the detector accepts one, it is rendered as the hooks runner renders it and run by /bin/sh
with hostile values; no value may create a file.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iteratr.run.hooks import render_command
from iteratr.run.hooks_shell import nested_placeholders

HOSTILE = [
    "$(touch PWNED)",
    "`touch PWNED`",
    '"; touch PWNED; "',
    "'; touch PWNED; '",
    "\ntouch PWNED\n",
    "a/e;touch PWNED;#",
    "x'\"$(touch PWNED)\"'",
    "*",
    "-n",
    "$((1))${IFS}touch${IFS}PWNED",
    "'); import os; os.system('touch PWNED'); print('",
    "touch PWNED/e;#",
]
# /bin/sh runs the hooks; where it is dash, bash is tried too, as other systems' /bin/sh.
SHELLS = ["/bin/sh", *(["/bin/bash"] if os.path.exists("/bin/bash") else [])]

ACCEPTED = [
    "printf '%s\\n' {{task_content}}",
    "printf '%s\\n' \"pre {{task_content}} post\"",
    'X={{error}}; printf %s "$X"',
    'echo "$(printf %s "{{error}}")"',
    'test -n "{{task_content}}" && echo ok',
    "echo {{task_content}} > out.txt",
    "cat <<EOF > notes.txt\n{{task_content}}\nEOF\n",
    "sh -c 'printf %s \"$1\"' _ {{task_content}}",
    'bash -c "echo hi" -- "{{error}}"',
    "eval 'echo hi'; echo {{error}}",
    "env A={{task_content}} sh -c 'printf %s \"$A\"'",
    "git --version >/dev/null && echo {{error}} | tee -a log.txt",
    "printf %s {{error}} | wc -c",
]

REFUSED = [
    'sh -c "echo {{task_content}}"',
    'bash -c "printf %s {{error}}"',
    'eval "echo {{task_content}}"',
    "eval echo {{error}}",
    'timeout 5 sh -c "echo {{error}}"',
    'env FOO=1 bash -c "echo {{task_content}}"',
    'nohup sh -c "echo {{error}}"',
    "printf '%s\\n' \"{{task_content}}\" | sh",
    "sh <<EOF\necho {{error}}\nEOF\n",
    'sh <<< "echo {{error}}"',
    'printf x | xargs sh -c "echo {{task_content}}"',
    'find . -maxdepth 0 -exec sh -c "echo {{error}}" \\;',
    "python3 -c \"print('{{task_content}}')\"",
    'echo "$(sh -c "echo {{error}}")"',
    'ssh -p 22 host "echo {{error}}"',
    'su -c "echo {{error}}" nobody',
    'sudo -u nobody sh -c "{{error}}"',
    'echo a | sed "s/a/{{error}}/"',
    'dash -ec "echo {{task_content}}"',
    'echo {{error}} | xargs -I{} sh -c "echo {}"',
]


def _run(command: str, value: str, cwd: Path) -> None:
    env = {**os.environ, "ITERATR_TASK_CONTENT": value, "ITERATR_ERROR": value}
    for shell in SHELLS:
        subprocess.run([shell, "-c", render_command(command)], cwd=cwd, env=env, capture_output=True, timeout=10)


@pytest.mark.parametrize("command", ACCEPTED)
def test_accepted_forms_are_accepted(command: str) -> None:
    assert nested_placeholders(command) == []


@pytest.mark.parametrize("command", REFUSED)
def test_each_nested_form_is_refused_with_where_it_is(command: str) -> None:
    found = nested_placeholders(command)
    assert found, command
    assert command[found[0].offset :].startswith("{{") and found[0].name in ("task_content", "error")


def test_a_quoted_here_document_delimiter_keeps_its_body_literal() -> None:
    assert nested_placeholders("sh <<'EOF'\necho {{error}}\nEOF\n") == []


def test_the_line_within_a_multi_line_command_is_reported() -> None:
    (found,) = nested_placeholders("echo start\ncd /tmp\nsh -c 'echo {{error}}'\n")
    assert (found.line, found.why) == (2, "the script of sh -c")


# Left out: ssh, su and sudo need a host or a user; "$(sh -c "...")" depends on how the shell nests quotes in
# "$(...)" (dash does not; bash word-splits the value into sh's $0): refused anyway, as a script for sh.
_LIVE = ("ssh", "su -c", "sudo", '"$(sh')


@pytest.mark.parametrize("command", [c for c in REFUSED if not any(x in c for x in _LIVE)])
def test_the_refused_forms_really_are_dangerous(command: str, tmp_path: Path) -> None:
    """Why refusing is needed: rendered and run with hostile values, each one does run a value."""
    for value in HOSTILE:
        _run(command, value, tmp_path)
        if (tmp_path / "PWNED").exists():
            return
    pytest.fail(f"no hostile value ran through {command!r}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pieces=st.lists(st.sampled_from(ACCEPTED + REFUSED), min_size=1, max_size=3),
    joiner=st.sampled_from(["; ", "\n", " && ", " || true; "]),
    value=st.one_of(st.sampled_from(HOSTILE), st.text(alphabet="$()`'\";\n\\ touchPWNED|&{}*", max_size=30)),
)
def test_no_accepted_command_runs_a_hostile_value(pieces: list[str], joiner: str, value: str, tmp_path: Path) -> None:
    command = pieces[0]
    for piece in pieces[1:]:  # a here-document ends at its delimiter line: only a newline may follow it
        command += ("" if command.endswith("\n") else joiner) + piece
    if any(p in REFUSED for p in pieces):
        assert nested_placeholders(command), command
        return
    assert nested_placeholders(command) == []
    _run(command, value.replace("\0", ""), tmp_path)
    assert not (tmp_path / "PWNED").exists(), (command, value)
