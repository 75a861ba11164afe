"""The ``iteratr`` entry point: ``iteratr tool`` and ``iteratr mcp`` skip click (see ``iteratr.toolcli``); the rest is
``iteratr.cli``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    from iteratr.boundary import guarded

    if args[:1] == ["tool"]:
        from iteratr import toolcli

        code = guarded(lambda: toolcli.run(args[1:]))
    elif args[:1] == ["mcp"]:  # started once per iteration by the agent: no click either
        from iteratr.mcp import command

        code = guarded(lambda: command.run(args[1:]))
    else:
        from iteratr import cli

        code = cli.run(args)
    sys.stdout.flush()
    sys.exit(code)
