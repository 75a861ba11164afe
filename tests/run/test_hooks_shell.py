"""Nested-shell placeholders: the detector refuses each nested form, and every form it accepts is safe for real.

The property test is the proof the issue asks for: commands are generated from a small shell grammar
(compound commands, pipes, ``--``, variable program names, wrappers, nested quoting); a command built
with a known-dangerous piece must be refused, and whenever the detector accepts one, it is rendered as the
hooks runner renders it and run by /bin/sh and /bin/bash with hostile values; no value may create a file.
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
    'echo "$(printf %s "{{error}}")"',
    'test -n "{{task_content}}" && echo ok',
    "echo {{task_content}} > out.txt",
    "cat <<EOF > notes.txt\n{{task_content}}\nEOF\n",
    "sh -c 'printf %s \"$1\"' _ {{task_content}}",
    'bash -c "echo hi" -- "{{error}}"',
    "eval 'echo hi'; echo {{error}}",
    "./show.sh {{task_id}} {{task_content}}",
    'echo "done: {{task_content}}"',
    'git commit -m "{{task_content}}"',
    'git commit -m"fix: {{task_content}}" -- a.txt',
    "git add -- {{task_content}}",
    "{ echo {{error}}; } > out.txt",
    "if true; then echo {{error}}; fi",
    "sh -c -- 'printf %s \"$1\"' _ {{error}}",
    'test -z "{{error}}" || [ "{{error}}" = x ]',
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


# The reviewer's forms: each ran a hostile task title in a real build before the rule was inverted.
REVIEWED = [
    'sh -c -- "echo {{task_content}}"',
    '{ sh -c "echo {{task_content}}"; }',
    '( sh -c "echo {{task_content}}" )',
    'if true; then bash -c "echo {{task_content}}"; fi',
    'while true; do sh -c "echo {{task_content}}"; break; done',
    'for x in a; do sh -c "echo {{task_content}}"; done',
    'case a in a) sh -c "echo {{task_content}}";; esac',
    '! sh -c "echo {{task_content}}"',
    'true && sh -c "echo {{task_content}}"',
    'false || sh -c "echo {{task_content}}"',
    'true; sh -c "echo {{task_content}}"',
    'echo a | sh -c "echo {{task_content}}"',
    'true & sh -c "echo {{task_content}}"',
    '$SHELL -c "echo {{task_content}}"',
    '"$SHELL" -c "echo {{task_content}}"',
    '${SHELL} -c "echo {{task_content}}"',
    '/bin/sh -c "echo {{task_content}}"',
    '/usr/bin/env bash -c "echo {{task_content}}"',
    'command -p sh -c "echo {{task_content}}"',
    'exec -a x sh -c "echo {{task_content}}"',
    'docker run --rm img sh -c "echo {{task_content}}"',
    'docker exec box sh -c "echo {{task_content}}"',
    'podman run img sh -c "echo {{task_content}}"',
    'kubectl exec pod -- sh -c "echo {{task_content}}"',
    'ssh host sh -c "echo {{task_content}}"',
    'pwsh -c "echo {{task_content}}"',
    'powershell -Command "echo {{task_content}}"',
    'fish -c "echo {{task_content}}"',
    'tclsh <<<"puts {{task_content}}"',
    'osascript -e "display dialog {{task_content}}"',
    'cmd /c "echo {{task_content}}"',
    'git -c alias.x="!echo {{task_content}}" x',
    'git -c core.pager="less {{task_content}}" log',
    'git config alias.x "!echo {{task_content}}"',
    # What else the shape allows: each found while inverting the rule.
    'sh \\\n -c "echo {{task_content}}"',
    "echo {{task_content}} | { cat; sh; }",
    "echo {{task_content}} | (cat; sh)",
    'echo {{task_content}} | while read l; do eval "$l"; done',
    'while read l; do sh -c "$l"; done <<< "{{task_content}}"',
    "cat <(echo {{task_content}}) | sh",
    "echo $((1 + {{task_content}}))",
    "(( x = {{task_content}} ))",
    "[[ -n {{task_content}} ]]",
    "test -v {{task_content}}",
    "printf -v {{task_content}} x",
    "printf {{task_content}}",
    'X={{task_content}}; sh -c "$X"',
    'export X={{task_content}}; sh -c "$X"',
    "env A={{task_content}} sh -c 'printf %s \"$A\"'",
    'for x in {{task_content}}; do sh -c "$x"; done',
    'echo "${X:-{{task_content}}}"',
    "echo hi > {{task_content}}",
    'sh -c "$(echo {{task_content}})"',
    "sh {{task_content}}",
    "git rebase -m {{task_content}}",
    "git grep {{task_content}}",
    'time sh -c "echo {{task_content}}"',
    "sh <<'EOF'\necho {{error}}\nEOF\n",
    "rsync {{task_content}} a b",
    "make MSG={{task_content}}",
]


def _run(command: str, value: str, cwd: Path) -> None:
    show = cwd / "show.sh"
    if not show.exists():
        show.write_text("#!/bin/sh\nprintf '[%s]' \"$@\"\n")
        show.chmod(0o755)
    env = {**os.environ, "ITERATR_TASK_CONTENT": value, "ITERATR_ERROR": value, "SHELL": "/bin/sh"}
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


@pytest.mark.parametrize("command", REVIEWED)
def test_each_reviewed_form_is_refused_with_why(command: str) -> None:
    found = nested_placeholders(command)
    assert found, command
    assert command[found[0].offset :].startswith("{{") and found[0].why, found


@pytest.mark.parametrize("command", ACCEPTED)
def test_every_accepted_form_keeps_every_hostile_value_data(command: str, tmp_path: Path) -> None:
    for value in HOSTILE:
        _run(command, value, tmp_path)
        assert not (tmp_path / "PWNED").exists(), (command, value)


def test_a_quoted_here_document_is_refused_for_its_reader_sees_the_reference_unexpanded() -> None:
    (found,) = nested_placeholders("cat <<'EOF'\necho {{error}}\nEOF\n")
    assert found.why.startswith("a quoted here-document")


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


# The generator: a small shell grammar. A leaf is (command, must_refuse); "ARG" is where a placeholder goes.
_ARGS = ["{{v}}", '"{{v}}"', '"pre {{v}} post"', '"$(printf %s "{{v}}")"', "x{{v}}", "'{{v}}'"]
_SAFE_LEAVES = [  # the placeholder is an argument of an accepted program, or a shell's positional argument
    "echo ARG",
    "printf '%s\\n' ARG",
    "./show.sh a ARG",
    "test -n ARG",
    "sh -c 'printf %s \"$1\"' _ ARG",
    "bash -c 'echo \"$1\"' -- ARG",
    "sh -c -- 'printf %s \"$1\"' _ ARG",
    "printf %s ARG | cat",
    "printf %s ARG | tr a b | wc -c",
    "cat <<< ARG",
]
_DANGEROUS_LEAVES = [  # the placeholder lands in code: these must be refused wherever they stand
    "sh -c ARG",
    "bash -c ARG",
    "sh -c -- ARG",
    "sh -ec ARG",
    "$SHELL -c ARG",
    '"$SHELL" -c ARG',
    "${SHELL} -c ARG",
    "/bin/sh -c ARG",
    "/usr/bin/env bash -c ARG",
    "env X=1 sh -c ARG",
    "command -p sh -c ARG",
    "timeout 5 sh -c ARG",
    "nohup sh -c ARG",
    "eval ARG",
    "eval echo ARG",
    "printf %s ARG | sh",
    "printf %s ARG | cat | bash",
    "sh <<< ARG",
    "python3 -c ARG",
    'X=ARG; sh -c "$X"',
    "echo $((ARG))",
    "[[ -n ARG ]]",
]
_COMPOUND = [
    "{ %s; }",
    "( %s )",
    "if true; then %s; fi",
    "if false; then :; else %s; fi",
    "while true; do %s; break; done",
    "until false; do %s; break; done",
    "for x in a; do %s; done",
    "case a in a) %s;; esac",
    "! %s",
    "true && %s",
    "false || %s",
    "true; %s",
    "echo a | %s",
    "true & %s",
    "%s | cat",
    "%s\n",
]
_PAIRS = ["%s && %s", "%s || %s", "%s; %s", "%s & %s", "%s | %s", "%s\n%s"]


def _fill(template: str, arg: str, variable: str) -> str:
    return template.replace("ARG", arg.replace("v", variable))


# No here-documents: a delimiter line cannot be followed by "&&" or ")" (the fixed lists above have them).
_leaf = st.builds(
    lambda template, arg, variable: (_fill(template, arg, variable), template in _DANGEROUS_LEAVES or "'" in arg),
    st.sampled_from(_SAFE_LEAVES * 3 + _DANGEROUS_LEAVES),  # weighted: most combinations should be accepted, and run
    st.sampled_from(_ARGS[:-1] * 3 + _ARGS[-1:]),
    st.sampled_from(["task_content", "error"]),
)


def _extend(children: st.SearchStrategy[tuple[str, bool]]) -> st.SearchStrategy[tuple[str, bool]]:
    one = st.builds(lambda shape, c: (shape % c[0], c[1]), st.sampled_from(_COMPOUND), children)
    two = st.builds(
        lambda shape, a, b: (shape % (a[0], b[0]), a[1] or b[1]), st.sampled_from(_PAIRS), children, children
    )
    return one | two


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    generated=st.recursive(_leaf, _extend, max_leaves=4),
    value=st.one_of(st.sampled_from(HOSTILE), st.text(alphabet="$()`'\";\n\\ touchPWNED|&{}*", max_size=30)),
)
def test_no_accepted_command_runs_a_hostile_value(generated: tuple[str, bool], value: str, tmp_path: Path) -> None:
    command, must_refuse = generated
    found = nested_placeholders(command)
    if must_refuse:
        assert found, command
        return
    if found:
        return  # refused though safe: a false alarm costs a rewrite, never a run
    _run(command + "\nwait", value, tmp_path)
    assert not (tmp_path / "PWNED").exists(), (command, value)
