"""The ``ITERATR_*`` environment variables that are not config keys, and a warning for the ones nobody reads.

A config key ``k`` is read from ``ITERATR_K`` (``iteratr.config``). A typo there (``ITERATR_ITRATIONS=3``)
would be ignored without a word, so every command run through the CLI warns about an ``ITERATR_*``
variable that is neither a key's nor in ``OTHER_VARIABLES``, with a "did you mean" when a key's is close.
A warning, not an error: an unattended run must not stop over a variable an older or newer iteratr knows.

``OTHER_VARIABLES`` is the one list of the others (a test holds it to every ``ITERATR_`` name in the source).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PREFIX = "ITERATR_"
OTHER_VARIABLES = frozenset(
    {
        # Set by iteratr for the agent and the hooks (and read back by `iteratr tool`, `say`, `status`).
        "ITERATR_SESSION",
        "ITERATR_ITERATION",
        "ITERATR_BIN",
        # The hooks' template variables (iteratr.run.hooks.VARIABLES), passed as ITERATR_<NAME>.
        "ITERATR_TASK_ID",
        "ITERATR_TASK_CONTENT",
        "ITERATR_ERROR",
        # Read on their own, outside the settings table.
        "ITERATR_TRUST",  # trust for one run (iteratr.trust)
        "ITERATR_PROBE_TIMEOUT",  # bound of each agent probe (iteratr.agent.models)
        "ITERATR_MCP",  # 0/off: no MCP server in session/new (iteratr.agent.mcp_servers)
        "ITERATR_MCP_SOCKET",  # set by iteratr for `iteratr mcp`: the run's server to relay to (iteratr.mcp.relay)
        "ITERATR_KILL_SEED",  # replays a kill-trial seed (tests)
    }
)
OTHER_PREFIXES = ("ITERATR_OPENCODE_",)  # the real-opencode end-to-end tests' switches


def unknown(env: Mapping[str, str] | None = None) -> list[str]:
    """One warning per ``ITERATR_*`` variable in ``env`` (default: the process's) that iteratr does not read."""
    import difflib

    from iteratr.config import KEYS

    env = os.environ if env is None else env
    known = {key.env for key in KEYS.values()} | OTHER_VARIABLES
    warnings = []
    for name in sorted(env):
        if not name.startswith(PREFIX) or name in known or name.startswith(OTHER_PREFIXES):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        hint = (
            f": did you mean {close[0]}?" if close else ": iteratr does not read it (`iteratr config` lists the keys)"
        )
        warnings.append(f"unknown environment variable {name}{hint}")
    return warnings
