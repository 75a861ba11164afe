"""Find hook placeholders whose value would become code: inside a script that another shell (or interpreter) runs.

A ``{{task_content}}`` is rendered as a quoted ``"${ITERATR_TASK_CONTENT}"`` (see ``iteratr.run.hooks``): the
shell running the hook only *expands* it, so the value is data. But in ``sh -c "echo {{x}}"`` the expansion
becomes part of the *script* of a second shell, which parses it: ``$(...)``, backticks and quotes in the
value run. The same holds for ``eval``, ``ssh host "..."`` (the remote shell), ``su -c``, ``watch``,
``sudo -s``, ``env -S``, interpreters' ``-c``/``-e`` (python, perl, ruby, node, php, lua), awk and sed
programs, and for a value piped or here-doc'd into a shell's stdin. The rule, as the README should state it:

    A placeholder may not appear in a string that another program runs as code: the script argument of
    sh/bash/zsh/dash/ksh -c, eval's arguments, the remote command of ssh, su/runuser -c, script -c,
    flock -c, watch and parallel, -c/-e code of python/perl/ruby/node/php/lua, an awk or sed program,
    or a here-document, here-string or pipe feeding a shell or interpreter's stdin. Wrappers before such
    a command (env, timeout, nohup, nice, sudo, xargs, find -exec, exec, command, time, setsid, stdbuf,
    chroot, ionice, doas, flock) are looked through. Pass the value as an argument instead:
    ``sh -c 'echo "$1"' _ {{task_content}}`` or read ``"$ITERATR_TASK_CONTENT"`` inside the script.

:func:`nested_placeholders` parses a command with a small POSIX-sh tokenizer (quotes, ``$(...)`` and
backticks recursively, here-docs, pipelines) and returns where each such placeholder is, so the hooks
loader can refuse it with file and line. It errs towards refusing: it is a syntax check, not a proof.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_HEREDOC = re.compile(r"(-?)[ \t]*(['\"]?)([^\s'\";&|<>()]+)\2")
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "posh", "fish", "csh", "tcsh"})
_CODE_FLAGS = {"perl": {"-e", "-E"}, "ruby": {"-e"}, "node": {"-e", "--eval", "-p", "--print"}, "php": {"-r"}}
_CODE_FLAGS |= {"nodejs": _CODE_FLAGS["node"], "lua": {"-e"}, "osascript": {"-e"}}
_PROGRAM_FIRST = {"awk": {"-F", "-v"}, "gawk": {"-F", "-v"}, "mawk": {"-F", "-v"}, "nawk": {"-F", "-v"}}
_PROGRAM_FIRST |= {"sed": {"-l", "-s"}, "gsed": {"-l", "-s"}}
# Wrappers: options that take a value, and how many positional words come before the wrapped command.
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    name: (frozenset(opts.split()), skip)
    for name, opts, skip in (
        ("env", "-u --unset -C --chdir", 0),
        ("timeout", "-s --signal -k --kill-after", 1),
        ("nice", "-n --adjustment", 0),
        ("ionice", "-c -n -t --class --classdata", 0),
        ("nohup", "", 0),
        ("exec", "-a", 0),
        ("command", "", 0),
        ("builtin", "", 0),
        ("time", "-f -o --format --output", 0),
        ("setsid", "", 0),
        ("stdbuf", "-i -o -e", 0),
        ("chroot", "--userspec --groups", 1),
        ("sudo", "-u -g -h -p -C -D -R -T -U -r -t --user --group", 0),
        ("doas", "-u -C", 0),
        ("xargs", "-I -n -P -d -E -L -s -a --max-args --max-procs --delimiter --arg-file", 0),
        ("flock", "-w -E --timeout --conflict-exit-code", 1),
        ("unbuffer", "", 0),
    )
}
_RUN_ALL = frozenset({"eval", "watch", "parallel"})  # every following word is code
_DASH_C = frozenset({"su", "runuser", "script", "flock"})  # -c/--command takes code
_SSH_OPTS = frozenset({f"-{c}" for c in "BbcDEeFIiJLlmOopQRSWw"})


@dataclass(frozen=True)
class Nested:
    name: str  # the placeholder's variable, e.g. task_content
    offset: int  # where ``{{`` starts in the command
    line: int  # 0-based line of the command it is on (add the command's first line in the file)
    why: str  # e.g. "the script of sh -c"


@dataclass
class _Word:
    text: str = ""
    holes: list[tuple[int, str]] = field(default_factory=list)  # (offset, name)


@dataclass
class _Cmd:
    words: list[_Word] = field(default_factory=list)
    op: str = ";"  # the operator after it: | means its stdout feeds the next command
    stdin: list[tuple[int, str]] = field(default_factory=list)  # holes in a here-doc or here-string


class _Scanner:
    def __init__(self, s: str) -> None:
        self.s = s
        self.cmds: list[_Cmd] = []

    def scan(self, i: int, stop: str | None) -> int:
        """Tokenize from ``i`` until ``stop`` (``)`` or a backtick) or the end; commands go to ``self.cmds``."""
        s, cmd, word = self.s, _Cmd(), None
        heredocs: list[tuple[str, bool, bool, _Cmd]] = []  # delimiter, quoted, strip tabs, its command
        into_stdin = False

        def end_word() -> None:
            nonlocal word, into_stdin
            if word is not None:
                if into_stdin:
                    cmd.stdin += word.holes
                else:
                    cmd.words.append(word)
            word, into_stdin = None, False

        def end_cmd(op: str) -> None:
            nonlocal cmd
            end_word()
            if cmd.words or cmd.stdin:
                cmd.op = op
                self.cmds.append(cmd)
            cmd = _Cmd()

        while i < len(s):
            c = s[i]
            if stop is not None and c == stop:
                end_cmd(";")
                return i + 1
            if match := _PLACEHOLDER.match(s, i):
                word = word or _Word()
                word.holes.append((i, match.group(1)))
                word.text += "\0"
                i = match.end()
            elif c in " \t":
                end_word()
                i += 1
            elif c == "\n":
                pending = heredocs[:]
                end_cmd(";")
                heredocs.clear()
                i += 1
                for delim, quoted, strip, owner in pending:
                    while i < len(s):
                        eol = s.find("\n", i)
                        eol = len(s) if eol < 0 else eol
                        line = s[i:eol].lstrip("\t") if strip else s[i:eol]
                        if line == delim:
                            i = eol + 1
                            break
                        if not quoted:
                            owner.stdin += [(m.start(), m.group(1)) for m in _PLACEHOLDER.finditer(s, i, eol)]
                        i = eol + 1
            elif c == "#" and word is None:
                eol = s.find("\n", i)
                i = len(s) if eol < 0 else eol
            elif c == "\\":
                word = word or _Word()
                word.text += s[i + 1 : i + 2]
                i += 2
            elif c == "'":
                word = word or _Word()
                end = s.find("'", i + 1)
                end = len(s) if end < 0 else end
                word.holes += [(m.start(), m.group(1)) for m in _PLACEHOLDER.finditer(s, i + 1, end)]
                word.text += s[i + 1 : end]
                i = end + 1
            elif c == '"':
                word = word or _Word()
                i = self._double(i + 1, word)
            elif s.startswith("$(", i) or c == "`":
                word = word or _Word()
                word.text += "$(...)"
                i = self.scan(i + 2, ")") if c == "$" else self.scan(i + 1, "`")
            elif c in "<>":
                if word is not None and word.text.isdigit():
                    word = None  # a file descriptor number: part of the redirection
                end_word()
                if s.startswith("<<<", i):
                    i += 3
                    while i < len(s) and s[i] in " \t":
                        i += 1
                    into_stdin = True  # the next word is the command's stdin
                elif s.startswith("<<", i) and (m := _HEREDOC.match(s, i + 2)):
                    heredocs.append((m.group(3), bool(m.group(2)), bool(m.group(1)), cmd))
                    i = m.end()
                else:
                    redirect = re.match(r"[<>]+[&|]?", s[i:])
                    i += len(redirect.group(0)) if redirect else 1
                    cmd.words.append(_Word(text=">"))  # a redirection: it and its target are skipped
            elif c in ";&|()":
                op = next(o for o in ("&&", "||", ";;", "|&", c) if s.startswith(o, i))
                end_cmd("|" if op in ("|", "|&") else ";")
                i += len(op)
            else:
                word = word or _Word()
                word.text += c
                i += 1
        end_cmd(";")
        return i

    def _double(self, i: int, word: _Word) -> int:
        s = self.s
        while i < len(s) and s[i] != '"':
            if match := _PLACEHOLDER.match(s, i):
                word.holes.append((i, match.group(1)))
                word.text += "\0"
                i = match.end()
            elif s[i] == "\\":
                word.text += s[i + 1 : i + 2]
                i += 2
            elif s.startswith("$(", i) or s[i] == "`":
                word.text += "$(...)"
                i = self.scan(i + 2, ")") if s[i] == "$" else self.scan(i + 1, "`")
            else:
                word.text += s[i]
                i += 1
        return i + 1


def _base(text: str) -> str:
    name = os.path.basename(text)
    return "python" if re.fullmatch(r"python[0-9.]*", name) else name


def _code_words(words: list[str]) -> tuple[dict[int, str], str | None]:
    """Indexes of words that another program runs as code (with why), and whether stdin is run as code."""
    code: dict[int, str] = {}
    i, n = 0, len(words)
    while i < n and (words[i] == ">" or _ASSIGNMENT.match(words[i])):
        i += 2 if words[i] == ">" else 1
    while i < n:
        name = _base(words[i])
        if words[i] == ">":
            i += 2
            continue
        i += 1
        if name in _RUN_ALL:
            code |= {k: f"the command that {name} runs" for k in range(i, n)}
            return code, None
        if name == "busybox":
            continue
        if name in _WRAPPERS or name in _DASH_C:
            takes, positional = _WRAPPERS.get(name, (frozenset(), 0))
            while i < n and (words[i].startswith("-") or (name == "env" and _ASSIGNMENT.match(words[i]))):
                flag = words[i]
                if flag in ("-c", "--command") and name in _DASH_C and i + 1 < n:
                    code[i + 1] = f"the command of {name} -c"
                    return code, None
                if name == "env" and flag in ("-S", "--split-string") and i + 1 < n:
                    code[i + 1] = "the command line of env -S"
                if name == "sudo" and flag in ("-s", "-i", "--shell", "--login"):
                    code |= {k: "the command sudo -s runs in a shell" for k in range(i + 1, n)}
                i += 2 if flag in takes else 1
            i += positional
            if name in ("su", "runuser", "script"):
                return code, None
            continue
        if name == "find":
            while i < n and words[i] not in ("-exec", "-execdir", "-ok", "-okdir"):
                i += 1
            i += 1
            continue
        if name == "ssh":
            while i < n and words[i].startswith("-"):
                i += 2 if words[i] in _SSH_OPTS else 1
            code |= {k: "the remote command of ssh" for k in range(i + 1, n)}
            return code, None
        if name in SHELLS or name == "python" or name in _CODE_FLAGS:
            flags = _CODE_FLAGS.get(name, {"-c"})
            has_code = False
            while i < n and words[i].startswith(("-", "+")) and words[i] != "-":
                flag = words[i]
                has_code = flag in flags or (name in SHELLS and flag[1:2] != "-" and "c" in flag)
                i += 1
                if has_code:
                    break
                if name in SHELLS and flag in ("-o", "+o", "-O", "+O"):
                    i += 1
            if has_code:
                if i < n:
                    code[i] = f"the script of {name} {'-c' if name in SHELLS else '/'.join(sorted(flags))}"
                return code, None
            reads_stdin = i >= n or words[i] == "-" or "-s" in words
            return code, (f"stdin of {name}, which runs it as code" if reads_stdin else None)
        if name in _PROGRAM_FIRST:
            while i < n and words[i].startswith("-"):
                if words[i] in ("-e", "--expression") and i + 1 < n:
                    code[i + 1] = f"the program of {name}"
                if words[i] in ("-f", "--file"):
                    return code, None
                i += 2 if words[i] in _PROGRAM_FIRST[name] | {"-e", "--expression"} else 1
            if i < n and not code:
                code[i] = f"the program of {name}"
            return code, None
        return code, None
    return code, None


def nested_placeholders(command: str) -> list[Nested]:
    """Every placeholder whose value would be run as code by another shell or interpreter (module doc)."""
    scanner = _Scanner(command)
    scanner.scan(0, None)
    found: dict[int, Nested] = {}

    def add(offset: int, name: str, why: str) -> None:
        found.setdefault(offset, Nested(name, offset, command.count("\n", 0, offset), why))

    upstream: list[tuple[int, str]] = []  # holes in earlier commands of the current pipeline
    for cmd in scanner.cmds:
        code, stdin_why = _code_words([w.text for w in cmd.words])
        is_xargs_code = bool(code) and any(_base(w.text) == "xargs" for w in cmd.words)
        for index, why in code.items():
            for offset, name in cmd.words[index].holes:
                add(offset, name, why)
        if stdin_why or is_xargs_code:
            for offset, name in cmd.stdin + upstream:
                add(offset, name, stdin_why or "input of xargs, which builds a script from it")
        upstream = upstream + [h for w in cmd.words for h in w.holes] + cmd.stdin if cmd.op == "|" else []
    return sorted(found.values(), key=lambda n: n.offset)
