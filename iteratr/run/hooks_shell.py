"""Where a hook placeholder may stand: only in positions known to keep its value data; everything else is refused.

A ``{{task_content}}`` is rendered as a quoted ``"${ITERATR_TASK_CONTENT}"`` (see ``iteratr.run.hooks``): the
shell running the hook only *expands* it, so the value is data. It becomes code when a second parser reads
it: ``sh -c "echo {{x}}"``, ``eval``, ``ssh host ...``, ``docker exec ... sh -c``, ``git -c alias.x='!...'``,
bash arithmetic (``$((...))``, ``[[ ]]``, ``test -v``, ``printf -v``, whose array subscripts run
``$(...)``), a pipe into ``sh``. Those forms cannot be listed completely, so the rule is inverted: a
placeholder is accepted only where it is known to be data, and refused everywhere else. The rule, as the
README states it:

    A placeholder is accepted only as an argument of a simple command, bare or inside your own double
    quotes, whose program is a literal name (not ``$SHELL``, ``${X}``, ``$(...)`` or a placeholder) and
    not a shell, interpreter, wrapper, remote or container runner, or shell builtin that evaluates its
    arguments (the lists are ``CODE_RUNNERS``, ``WRAPPERS``, ``REMOTE`` and ``BUILTINS`` below). Compound
    commands (``{ }``, ``( )``, if, while, until, ``!``, ``&&``, ``||``, ``;``, ``&``, ``|``) and
    ``$(...)`` are looked into: the commands inside them follow the same rule. Exceptions, narrower:
    - sh/bash/dash/zsh/ksh/mksh/ash/yash/posh: only as a positional argument *after* the script
      (``sh -c '...' _ {{x}}``, ``sh script.sh {{x}}``), never in the script, an option or the script's name;
    - git: only as the value of ``-m``/``--message`` of commit, tag, notes, merge or stash, or after a
      ``--`` of add, rm, log, diff, show, status, checkout, restore, commit, reset, blame or ls-files;
    - printf: not in the format or ``-v`` (from the first argument through the format);
    - test / ``[``: only right after ``-n`` or ``-z``, or beside ``=``, ``==`` or ``!=``.
    It is refused in single quotes, in a variable assignment (``X={{x}}``, ``export``, ``env A=``), in
    the word list of for/select or the word or patterns of case, in ``[[ ]]``, ``(( ))``, ``$((...))`` and
    ``${...}``, in a redirection's file name, in a quoted here-document, in a ``$(...)`` whose output lands
    in a refused position, in a command line with process substitution (``<(...)``, ``>(...)``), and in a
    here-document, here-string or pipe whose reader is not itself an accepted program.

What it does not follow: a value you write to a file or hand to your own script, which then runs it
(``./notify.sh`` that evals ``$1``), and options: a value that starts with ``-`` is an option to a program
that parses options, so put it after ``--`` when the program has options that run commands.

:func:`nested_placeholders` parses a command with a small POSIX-sh tokenizer (quotes, ``$(...)`` and
backticks recursively, here-docs, pipelines, compound commands) and returns where each refused placeholder
is, with why, so the hooks loader can refuse it with file and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")
_HEREDOC = re.compile(r"(-?)[ \t]*(['\"]?)([^\s'\";&|<>()]+)\2")
POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "yash", "posh", "rbash"})
_SHELL_OPT_ARG = frozenset({"-o", "+o", "-O", "+O", "--rcfile", "--init-file"})
CODE_RUNNERS = _names(
    "fish csh tcsh elvish nu xonsh rc es pwsh powershell cmd python perl ruby irb node nodejs deno bun php lua"
    " luajit tclsh wish expect osascript Rscript R julia awk gawk mawk nawk busybox toybox sed gsed jq m4 dc bc"
    " ed ex vi vim nvim emacs gdb lldb sqlite3 psql mysql make gmake cmake java jshell groovy scala kotlin"
    " swift guile racket sbcl clisp ghci runghc erl escript elixir iex dotnet go cargo npx npm pnpm yarn uv"
    " pipx poetry"
)
WRAPPERS = _names(
    "env timeout nohup nice ionice time setsid stdbuf chroot sudo doas su runuser pkexec xargs find flock"
    " unbuffer strace ltrace valgrind watch parallel script at batch nsenter unshare firejail bwrap systemd-run"
    " chrt taskset fakeroot sg newgrp nix-shell direnv tmux screen xterm dbus-launch caffeinate catchsegv"
    " start-stop-daemon daemonize"
)
REMOTE = _names(
    "ssh scp sftp rsync mosh docker podman nerdctl ctr kubectl oc lxc incus vagrant gcloud aws az fly nomad"
    " ansible salt pdsh clush"
)
BUILTINS = _names(
    "eval . source exec command builtin let declare typeset local export readonly unset read mapfile readarray"
    " trap alias getopts fc complete compgen bind enable ulimit coproc function select for case [["
)
_RESERVED = _names("{ } ! if then else elif fi do done while until")
_GIT_MESSAGE = frozenset({"commit", "tag", "notes", "merge", "stash"})
_GIT_AFTER_DASHES = frozenset(
    {"add", "rm", "log", "diff", "show", "status", "checkout", "restore", "commit", "reset", "blame", "ls-files"}
)
_GIT_OPT_ARG = frozenset({"-c", "-C", "--config-env", "--git-dir", "--work-tree", "--namespace", "--exec-path"})


@dataclass(frozen=True)
class Nested:
    name: str  # the placeholder's variable, e.g. task_content
    offset: int  # where ``{{`` starts in the command
    line: int  # 0-based line of the command it is on (add the command's first line in the file)
    why: str  # completes "{{x}} is inside ...", e.g. "the script of sh -c"


_Hole = tuple[int, str]  # (offset, name)


@dataclass
class _Word:
    text: str = ""
    holes: list[_Hole] = field(default_factory=list)  # placeholders whose value lands in this word
    dynamic: bool = False  # has $, a substitution or a placeholder: not a literal program name


@dataclass
class _Cmd:
    words: list[_Word] = field(default_factory=list)
    op: str = ";"  # the operator after it: | means its stdout feeds the next command
    stdin: list[_Hole] = field(default_factory=list)  # holes in a here-doc or here-string
    redirects: list[_Hole] = field(default_factory=list)  # holes in a redirection's file name
    grouped: bool = False  # first in a ( ... ) group: its stdin feeds the whole group


class _Scanner:
    def __init__(self, s: str) -> None:
        self.s = s
        self.groups: list[list[_Cmd]] = []  # one list per nesting level: the top and each $(...)
        self.refused: dict[int, tuple[str, str]] = {}  # offset -> (name, why), found while tokenizing
        self.process_substitution = False
        self.single_quoted: list[_Hole] = []

    def refuse(self, holes: list[_Hole], why: str) -> None:
        for offset, name in holes:
            self.refused.setdefault(offset, (name, why))

    def scan(self, i: int, stop: str | None) -> tuple[int, list[_Hole]]:
        """Tokenize from ``i`` until ``stop`` (``)`` or a backtick) or the end; returns the end and every hole."""
        s, cmds, cmd, word = self.s, [], _Cmd(), None
        all_holes: list[_Hole] = []
        heredocs: list[tuple[str, bool, bool, _Cmd]] = []  # delimiter, quoted, strip tabs, its command
        target = ""  # what the next word is: "" an argument, "stdin" a here-string, "file" a redirection

        def end_word() -> None:
            nonlocal word, target
            if word is not None:
                all_holes.extend(word.holes)
                if target == "stdin":
                    cmd.stdin += word.holes
                elif target == "file":
                    cmd.redirects += word.holes
                else:
                    cmd.words.append(word)
            word, target = None, ""

        def end_cmd(op: str) -> None:
            nonlocal cmd
            end_word()
            if cmd.words or cmd.stdin or cmd.redirects:
                cmd.op = op
                cmds.append(cmd)
            cmd = _Cmd()

        while i < len(s):
            c = s[i]
            if stop is not None and c == stop:
                break
            if match := _PLACEHOLDER.match(s, i):
                word = word or _Word()
                word.holes.append((i, match.group(1)))
                word.text += "\0"
                word.dynamic = True
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
                        holes = [(m.start(), m.group(1)) for m in _PLACEHOLDER.finditer(s, i, eol)]
                        all_holes.extend(holes)
                        if quoted:  # literal text: the reference lands, unexpanded, in what reads it
                            self.refuse(holes, "a quoted here-document, whose reader sees it unexpanded")
                        owner.stdin += holes
                        i = eol + 1
            elif c == "#" and word is None:
                eol = s.find("\n", i)
                i = len(s) if eol < 0 else eol
            elif c == "\\":
                if s[i + 1 : i + 2] != "\n":  # a line continuation joins words; it is no word itself
                    word = word or _Word()
                    word.text += s[i + 1 : i + 2]
                i += 2
            elif c == "'":
                word = word or _Word()
                end = s.find("'", i + 1)
                end = len(s) if end < 0 else end
                holes = [(m.start(), m.group(1)) for m in _PLACEHOLDER.finditer(s, i + 1, end)]
                self.single_quoted += holes  # refused last: a position's own reason says more
                word.holes += holes
                word.text += s[i + 1 : end]
                i = end + 1
            elif c == '"':
                word = word or _Word()
                i = self._double(i + 1, word)
            elif c in "$`":
                word = word or _Word()
                i = self._dollar(i, word)
            elif c in "<>" and s.startswith("(", i + 1):
                self.process_substitution = True
                end_word()
                word = _Word(dynamic=True)
                i, holes = self.scan(i + 2, ")")
                word.holes += holes
            elif c in "<>":
                if word is not None and word.text.isdigit():
                    word = None  # a file descriptor number: part of the redirection
                end_word()
                if s.startswith("<<<", i):
                    i += 3
                    while i < len(s) and s[i] in " \t":
                        i += 1
                    target = "stdin"
                elif s.startswith("<<", i) and (m := _HEREDOC.match(s, i + 2)):
                    heredocs.append((m.group(3), bool(m.group(2)), bool(m.group(1)), cmd))
                    i = m.end()
                else:
                    redirect = re.match(r"[<>]+[&|]?", s[i:])
                    i += len(redirect.group(0)) if redirect else 1
                    while i < len(s) and s[i] in " \t":
                        i += 1
                    target = "file"
            elif c in ";&|()":
                op = next(o for o in ("&&", "||", ";;", "|&", c) if s.startswith(o, i))
                if op == "(" and s.startswith("((", i):  # (( arithmetic )): bash evaluates subscripts
                    end = s.find("))", i)
                    end = len(s) if end < 0 else end
                    self.refuse([(m.start(), m.group(1)) for m in _PLACEHOLDER.finditer(s, i, end)], "(( ))")
                end_cmd("|" if op in ("|", "|&") else ";")
                cmd.grouped = op == "("
                i += len(op)
            else:
                word = word or _Word()
                word.text += c
                i += 1
        end_cmd(";")
        self.groups.append(cmds)
        return i + 1, all_holes

    def _dollar(self, i: int, word: _Word) -> int:
        """A ``$...`` or backtick in a word: substitutions are scanned as commands of their own."""
        s = self.s
        word.dynamic = True
        if s.startswith("$((", i) or s.startswith("${", i):
            close = "))" if s[i + 1] == "(" else "}"
            opens, depth, j = ("{" if close == "}" else "("), 0, i + 2
            while j < len(s) and not (depth == 0 and s.startswith(close, j)):
                depth += 1 if s[j] == opens else -1 if s[j] == close[0] else 0
                j += 1
            holes = [(m.start(), m.group(1)) for m in _PLACEHOLDER.finditer(s, i, j)]
            self.refuse(holes, "an arithmetic expansion $((...))" if close == "))" else "a ${...} expansion")
            word.holes += holes
            word.text += s[i : j + len(close)]
            return j + len(close)
        if s.startswith("$(", i) or s[i] == "`":
            end, holes = self.scan(i + 2, ")") if s[i] == "$" else self.scan(i + 1, "`")
            word.holes += holes  # the substitution's output, which may hold the value, lands in this word
            word.text += "$(...)"
            return end
        word.text += "$"
        return i + 1

    def _double(self, i: int, word: _Word) -> int:
        s = self.s
        while i < len(s) and s[i] != '"':
            if match := _PLACEHOLDER.match(s, i):
                word.holes.append((i, match.group(1)))
                word.text += "\0"
                word.dynamic = True
                i = match.end()
            elif s[i] == "\\":
                word.text += s[i + 1 : i + 2]
                i += 2
            elif s[i] in "$`":
                i = self._dollar(i, word)
            else:
                word.text += s[i]
                i += 1
        return i + 1


def _base(text: str) -> str:
    name = os.path.basename(text).removesuffix(".exe")
    return re.sub(r"^(python|pypy|perl|ruby|php|lua|node|tclsh|wish)[0-9.]*$", r"\1", name)


def _refusals(words: list[_Word]) -> tuple[list[tuple[int, str]], bool]:
    """(index of word, why) for each word of one simple command whose holes are not accepted, and whether
    its program is one that may read a value on stdin (an accepted program: no shell, runner or builtin)."""
    n, i = len(words), 0
    out: list[tuple[int, str]] = []
    while i < n and (words[i].text in _RESERVED or _ASSIGNMENT.match(words[i].text)):
        if _ASSIGNMENT.match(words[i].text):
            out.append((i, "a variable assignment, which carries it where the rule cannot follow"))
        i += 1
    if i >= n:
        return out, False
    program, name, rest = words[i], _base(words[i].text), range(i + 1, n)
    if program.dynamic:
        return [*out, *((k, "a command whose program is not a literal name") for k in range(i, n))], False
    for kind, names in (
        ("a shell builtin that may evaluate them", BUILTINS),
        ("a program that runs code", CODE_RUNNERS),
    ):
        if name in names:
            return [*out, *((k, f"the arguments of {name}, {kind}") for k in rest)], False
    if name in WRAPPERS or name in REMOTE:
        return [*out, *((k, f"the arguments of {name}, which may run them as a command") for k in rest)], False
    if name in POSIX_SHELLS:
        return out + _shell(words, i, name), False
    if name == "git":
        return out + _git(words, i), False
    if name == "printf":
        fmt = i + 1 + {"--": 1, "-v": 2}.get(words[i + 1].text if i + 1 < n else "", 0)
        return [*out, *((k, "printf's format or -v name") for k in range(i + 1, min(fmt + 1, n)))], True
    if name in ("test", "["):
        safe = {k + 1 for k in rest if words[k].text in ("-n", "-z")}
        safe |= {k + d for k in rest for d in (-1, 1) if words[k].text in ("=", "==", "!=")}
        return [*out, *((k, "an operand of test other than -n/-z/=/!=") for k in rest if k not in safe)], True
    return out, i == 0 or words[0].text not in _RESERVED


def _shell(words: list[_Word], i: int, name: str) -> list[tuple[int, str]]:
    """Accepted only after the script: sh [options] -c script [name args...] or sh [options] file [args...]."""
    n, k, has_c = len(words), i + 1, False
    while k < n and words[k].text[:1] in ("-", "+") and words[k].text not in ("-", "--"):
        flag = words[k].text
        has_c = has_c or (flag[1:2] != "-" and "c" in flag) or flag == "--command"
        k += 2 if flag in _SHELL_OPT_ARG else 1
    k += 1 if k < n and words[k].text == "--" else 0
    why = f"the script of {name} -c" if has_c else f"the options or script file of {name}"
    return [(j, why) for j in range(i + 1, min(k + 1, n))]


def _git(words: list[_Word], i: int) -> list[tuple[int, str]]:
    n, k = len(words), i + 1
    while k < n and words[k].text.startswith("-"):
        k += 2 if words[k].text in _GIT_OPT_ARG else 1
    sub = words[k].text if k < n else ""
    accepted: set[int] = set()
    for j in range(k + 1, n):
        text = words[j].text
        if sub in _GIT_AFTER_DASHES and text == "--" and not words[j].holes:
            accepted |= set(range(j + 1, n))
            break
        if sub in _GIT_MESSAGE and text in ("-m", "--message"):
            accepted.add(j + 1)
        elif sub in _GIT_MESSAGE and re.match(r"(-m|--message=).", text):
            accepted.add(j)  # -m"done {{x}}" / --message="done {{x}}": the value cannot become an option
    why = "a git argument other than a -m message or a path after --, which git may run or read as an option"
    return [(j, why) for j in range(i + 1, n) if j not in accepted]


def nested_placeholders(command: str) -> list[Nested]:
    """Every placeholder outside the positions the module doc accepts, with why (module doc)."""
    scanner = _Scanner(command)
    scanner.scan(0, None)
    for cmds in scanner.groups:
        upstream: list[_Hole] = []  # holes in earlier commands of the current pipeline
        for cmd in cmds:
            scanner.refuse(cmd.redirects, "a redirection's file name")
            refusals, reads_data = _refusals(cmd.words)
            for index, why in refusals:
                scanner.refuse(cmd.words[index].holes, why)
            if not reads_data or cmd.grouped:  # its stdin goes to a shell, a runner or a compound command
                scanner.refuse(cmd.stdin + upstream, "the input of a command that is not accepted")
            holes = [h for w in cmd.words for h in w.holes] + cmd.stdin + cmd.redirects
            upstream = upstream + holes if cmd.op == "|" else []
    scanner.refuse(scanner.single_quoted, "single quotes, which no expansion reaches")
    if scanner.process_substitution:
        holes = [(m.start(), m.group(1)) for m in _PLACEHOLDER.finditer(command)]
        scanner.refuse(holes, "a command line with process substitution")
    found = [Nested(name, off, command.count("\n", 0, off), why) for off, (name, why) in scanner.refused.items()]
    return sorted(found, key=lambda nested: nested.offset)
