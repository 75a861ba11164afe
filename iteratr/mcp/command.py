"""``iteratr mcp``: relay to the run's server if there is one, else serve the session tools on stdio.

Kept apart from ``server`` so that the relay, which the agent starts every iteration, imports nothing but the
standard library (``iteratr.mcp.relay``); the tool table and the SDK load only where they serve.
"""

from __future__ import annotations

import os

USAGE = """Usage: iteratr mcp

Serve the session tools as an MCP server over stdio (what `iteratr build` gives the agent).
The session and data dir come from $ITERATR_SESSION and $ITERATR_DATA_DIR (default .iteratr).
Under a build, $ITERATR_MCP_SOCKET names the run's server, which this relays to.
Tools: """


def run(argv: list[str]) -> int:
    """The ``iteratr mcp`` command: serve (or relay) until the client closes stdin."""
    from iteratr.mcp import relay

    if argv and argv[0] in ("-h", "--help"):
        from iteratr.mcp import tools

        print(USAGE + ", ".join(tools.TOOLS))
        return 0
    if len(argv) == 2 and argv[0] == "--listen":
        return relay.listen(argv[1])
    if argv:
        from iteratr.errors import UsageError

        raise UsageError(f"`iteratr mcp` takes no arguments (got {' '.join(argv)}): it reads $ITERATR_SESSION")
    socket_path = os.environ.get("ITERATR_MCP_SOCKET")
    if socket_path and relay.relay(socket_path):
        return 0
    from iteratr.mcp import server

    return server.serve_stdio()
