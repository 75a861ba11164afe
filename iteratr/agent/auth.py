"""Authentication with an API key variable, the ACP way, so that setting the variable is enough.

An agent may answer ``session/new`` with "authentication required" (error -32000) until the client calls
``authenticate`` with one of the methods it listed in ``initialize``. ACP's ``env_var`` method names the
variables it reads: codex-acp 0.16.0 lists ``OPENAI_API_KEY`` and ``CODEX_API_KEY`` that way, and opens no
session on a key in the environment alone (it then keeps the login in ``$CODEX_HOME/auth.json``). When such a
method's variables are all set in the agent's environment, the person has said how to authenticate: iteratr
calls ``authenticate`` with it and asks for the session once more. Other methods (a browser login) are left
to the person.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

AUTH_REQUIRED = -32000  # ACP's "Authentication required"


def env_auth_method(code: int, methods: Sequence[Any], env: Mapping[str, str]) -> str | None:
    """For an "authentication required" error (``code``): the id of the first ``env_var`` method whose required
    variables are all set in ``env``; None when there is none (or the error is another)."""
    if code != AUTH_REQUIRED:
        return None
    for method in methods:
        variables = getattr(method, "vars", None)
        if getattr(method, "type", None) != "env_var" or not variables:
            continue
        if all(env.get(str(v.name), "").strip() for v in variables if not getattr(v, "optional", False)):
            return str(method.id)
    return None
