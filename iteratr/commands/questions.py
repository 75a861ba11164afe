"""The questions ``iteratr setup`` and the build wizard share: asking, cancelling, and the model question.

questionary and prompt_toolkit are imported inside the functions: importing this costs nothing.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from iteratr.errors import EXIT_INTERRUPTED

Echo = Callable[[str], None]
LONG_LIST = 15  # longer lists of choices get type-to-search


class Cancelled(Exception):
    """Ctrl+C or end of input at a question."""


def ask(question: Any) -> Any:
    """A questionary question's answer; Ctrl+C or end of input raise ``Cancelled``."""
    try:
        answer = question.unsafe_ask()
    except (KeyboardInterrupt, EOFError):
        raise Cancelled() from None
    if answer is None:
        raise Cancelled()
    return answer


def cancelled(what: str) -> int:
    """Say on stderr that ``what`` was cancelled and nothing was written; the exit status for it."""
    from iteratr.output import Printer

    Printer(sys.stderr).text(f"iteratr: {what} cancelled; nothing was written")
    return EXIT_INTERRUPTED


def ask_model(agent_argv: list[str], default: str, echo: Echo) -> str:
    """Ask for a model among those the agent offers; free text when no list can be had. "" = agent's default."""
    import questionary

    from iteratr.agent import models

    timeout = models.probe_timeout()
    echo(f"asking the agent which models it offers: {shlex.join(agent_argv)} (up to {timeout:g} s) ...")
    found = models.find_models(agent_argv, cwd=Path.cwd(), env=os.environ, timeout=timeout)
    for problem in found.problems:
        echo(f"  {problem}")
    if not found.models:
        echo(
            "no list of models to choose from: type a model id as the agent names it "
            "(e.g. anthropic/claude-sonnet-4-5), or leave it empty for the agent's default"
        )
        return str(ask(questionary.text("Model:", default=default))).strip()

    echo(f"{len(found.models)} models offered by {found.source}")
    if default and default not in found.models:
        echo(f"  note: the configured model {default!r} is not among them")
        default = ""
    agent_default = "(the agent's default" + (f": {found.current})" if found.current else ")")
    if len(found.models) <= LONG_LIST:
        choices = [questionary.Choice(agent_default, value=""), *(questionary.Choice(m, value=m) for m in found.models)]
        return str(ask(questionary.select("Model:", choices=choices, default=default)))

    from prompt_toolkit.completion import FuzzyWordCompleter

    offered = found.models

    def valid(text: str) -> bool | str:
        matches = match_models(text, offered)
        if not text.strip() or len(matches) == 1:
            return True
        if not matches:
            return "no offered model matches; Tab lists them (empty = the agent's default)"
        return f"{len(matches)} models match ({', '.join(matches[:3])}, ...): type more, or Tab to pick one"

    answer = ask(
        questionary.autocomplete(
            f"Model (type to search {len(offered)} models, Tab to pick; empty = {agent_default.strip('()')}):",
            choices=offered,
            default=default,
            completer=FuzzyWordCompleter(offered, WORD=True),
            validate=valid,
        )
    )
    text = str(answer).strip()
    return match_models(text, offered)[0] if text else ""


def match_models(text: str, offered: list[str]) -> list[str]:
    """Models matching typed text: the exact id, else those containing it, else a fuzzy (in-order) match."""
    text = text.strip()
    if not text:
        return []
    if text in offered:
        return [text]
    lower = text.lower()
    containing = [m for m in offered if lower in m.lower()]
    if containing:
        return containing
    fuzzy = re.compile(".*?".join(re.escape(ch) for ch in lower))
    return [m for m in offered if fuzzy.search(m.lower())]


def confirm(question: str) -> bool:
    """A yes/no question on the terminal (questionary, imported only when a question is asked); no by default."""
    import questionary

    try:
        return bool(ask(questionary.confirm(question, default=False)))
    except Cancelled:
        return False
