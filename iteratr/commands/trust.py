"""``iteratr trust [--yes] [--list] [--revoke]``: show exactly what a repository's files would run, and ask.

The question is a function passed in (``ask(question) -> bool``), so tests answer it and the CLI can use
questionary on a terminal; ``ask=None`` means nobody can answer (no terminal, ``--headless``): the command
then shows what would run and refuses, naming ``--yes``. Nothing here imports click or exits; the CLI
turns the returned int into the exit status.

:func:`gate` is the same decision for ``build`` on a terminal: show what would run and ask once, instead of
stopping at the first untrusted file. Unattended runs pass ``--trust`` or set ``ITERATR_TRUST=1``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from iteratr import trust
from iteratr.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from iteratr.output import Printer

Ask = Callable[[str], bool]


def run(
    work_tree: Path,
    *,
    printer: Printer,
    ask: Ask | None,
    yes: bool = False,
    list_only: bool = False,
    revoke: bool = False,
    store: trust.TrustStore | None = None,
    env: Mapping[str, str] = os.environ,
) -> int:
    """The ``iteratr trust`` command for the repository at ``work_tree`` (its top). Returns the exit status."""
    store = store or trust.TrustStore()
    if list_only:
        return _list(work_tree, printer, store, env)
    if revoke:
        gone = store.remove(trust.candidate_paths(work_tree))
        for path in gone:
            printer.info(f"no longer trusted: {path}")
        if not gone:
            printer.info(f"nothing was trusted in {work_tree}")
        return EXIT_OK
    untrusted = trust.check(work_tree, store=store, env=env)
    if not untrusted:
        printer.info(f"nothing to trust in {work_tree}: its files run nothing, or you trusted them as they are")
        return EXIT_OK
    trusted = 0
    for file in untrusted:
        for line in trust.describe(file).splitlines():
            printer.info(line)
        if yes:
            accepted = True
        elif ask is None:
            printer.error(f"{file.name} is not trusted: nobody can answer here; run `iteratr trust --yes` to trust it")
            return EXIT_USAGE
        else:
            accepted = ask(f"Trust {file.name} and let iteratr run what it shows?")
        if accepted:
            store.add([file])
            trusted += 1
            printer.line(f"trusted {file.name} (sha256 {file.digest[:12]})", "ok")
        else:
            printer.warn(f"{file.name} is not trusted: build and doctor will refuse to run it")
    return EXIT_OK if trusted == len(untrusted) else EXIT_FAILED


def _list(work_tree: Path, printer: Printer, store: trust.TrustStore, env: Mapping[str, str]) -> int:
    """This repository's files that need trust and their state, then every record in the store."""
    untrusted = {f.path: f for f in trust.check(work_tree, store=store, env=env)}
    for file in trust.needing_trust(work_tree, env):
        state = f"untrusted: {untrusted[file.path].message()}" if file.path in untrusted else "trusted"
        printer.info(f"{file.name}: {state}")
    records = store.records()
    printer.info(f"trust store {store.path}: {len(records)} file{'s' if len(records) != 1 else ''}")
    for record in records.values():
        printer.info(f"  {record.path}  sha256 {record.sha256[:12]}  trusted {record.trusted_at}  {_now(record)}")
    return EXIT_OK


def _now(record: trust.Record) -> str:
    """Whether the recorded file still has the trusted content."""
    try:
        content = Path(record.path).read_bytes()
    except OSError:
        return "(missing)"
    return "(as trusted)" if trust.sha256(content) == record.sha256 else "(changed since)"


def gate(
    work_tree: Path,
    *,
    printer: Printer,
    ask: Ask | None,
    override: bool,
    store: trust.TrustStore | None = None,
    env: Mapping[str, str] = os.environ,
) -> None:
    """For ``build``/``doctor`` before anything runs: return when all is trusted (or ``override``), else raise.

    With ``ask`` (a terminal, not ``--headless``) it shows what would run and asks once for every file;
    yes records the trust and returns. Without ``ask``, or on no, it raises ``trust.UntrustedError`` (exit 2,
    one line naming the files and ``iteratr trust``).
    """
    if override:
        return
    store = store or trust.TrustStore()
    untrusted = trust.check(work_tree, store=store, env=env)
    if not untrusted:
        return
    if ask is not None:
        for file in untrusted:
            for line in trust.describe(file).splitlines():
                printer.info(line)
        names = ", ".join(f.name for f in untrusted)
        if ask(f"Trust {names} and let iteratr run what it shows?"):
            store.add(untrusted)
            return
    raise trust.UntrustedError(trust.untrusted_message(untrusted))
