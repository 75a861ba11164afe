"""Which models the agent offers, for ``iteratr setup``, the build wizard and ``iteratr doctor``.

The agent itself is the authority: it is started, asked to open one ACP session, and the choices
of that session's model option are read (``iteratr.agent.probe``). An agent that cannot be probed
(not installed, no credentials, not speaking ACP) may still be opencode, whose ``opencode models``
prints one ``provider/model`` per line; that listing is used only when the agent command is opencode,
because another agent's models would be wrong. When both fail the caller asks for free text.

``ITERATR_PROBE_TIMEOUT`` (seconds, default 20) bounds each probe; tests make it short. The agent's
stderr goes to ``$XDG_STATE_HOME/iteratr/agent-probe.log``, started afresh for every probe.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from iteratr import procs
from iteratr.errors import IteratrError

if TYPE_CHECKING:
    from iteratr.agent.runner import ProbeResult

PROBE_TIMEOUT_ENV = "ITERATR_PROBE_TIMEOUT"
DEFAULT_PROBE_TIMEOUT = 20.0
LISTING_TIMEOUT = 30.0
# A model id as opencode prints it: provider/model, no spaces (a banner or warning line is not one).
_MODEL_LINE = re.compile(r"[A-Za-z0-9][\w.:@+-]*/\S+")


@dataclass(frozen=True)
class ModelChoices:
    models: list[str]  # empty: nothing found, ask for free text
    current: str | None  # the agent's default model, if it said
    source: str  # where the list came from, for the user: "the agent (OpenCode 1.18.33)", "`opencode models`"
    problems: list[str] = field(default_factory=list)  # why a source gave nothing, one line each


def probe_timeout(env: Mapping[str, str] = os.environ) -> float:
    raw = env.get(PROBE_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_PROBE_TIMEOUT
    except ValueError:
        value = DEFAULT_PROBE_TIMEOUT
    return value if value > 0 else DEFAULT_PROBE_TIMEOUT


def probe_log_path() -> Path:
    from iteratr.boundary import crash_log_path

    return crash_log_path().parent / "agent-probe.log"


def probe_agent(argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> ProbeResult:
    """Start the agent, open one ACP session, read its models, stop it. Raises AgentError on failure."""
    import asyncio
    import logging

    from iteratr.agent.runner import probe

    # The SDK logs to the root logger; without a handler Python prints its records on stderr.
    logging.getLogger().addHandler(logging.NullHandler())
    log = probe_log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(b"")
    return asyncio.run(probe(list(argv), cwd=cwd, env=env, stderr_log=log, timeout=timeout))


def is_opencode(argv: list[str]) -> bool:
    return bool(argv) and Path(argv[0]).name == "opencode"


def opencode_models(binary: str, *, cwd: Path, env: Mapping[str, str], timeout: float = LISTING_TIMEOUT) -> list[str]:
    """``opencode models``: one model id per line. Raises IteratrError with a one-line reason."""
    done = procs.run([binary, "models"], cwd=cwd, env=env, timeout=timeout, grace=0)
    code, out, err = done.returncode, done.out, done.err
    if code is None:
        raise IteratrError(f"`{binary} models` did not finish within {timeout:g} s")
    if code != 0:
        tail = " | ".join(line.strip() for line in err.splitlines() if line.strip())[-300:]
        raise IteratrError(f"`{binary} models` exited with status {code}" + (f": {tail}" if tail else ""))
    models = [line.strip() for line in out.splitlines() if _MODEL_LINE.fullmatch(line.strip())]
    return list(dict.fromkeys(models))


def find_models(argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float) -> ModelChoices:
    """The models to offer: from the agent, else from ``opencode models``, else none (ask for text)."""
    problems: list[str] = []
    current: str | None = None
    try:
        result = probe_agent(argv, cwd=cwd, env=env, timeout=timeout)
    except IteratrError as exc:
        problems.append(f"could not ask the agent: {exc}")
    except Exception as exc:  # a broken agent must not break setup: say so and fall back
        problems.append(f"could not ask the agent: unexpected {type(exc).__name__}: {exc}")
    else:
        current = result.current_model
        if result.models:
            return ModelChoices(list(result.models), current, f"the agent ({result.info.name} {result.info.version})")
        problems.append(f"the agent ({result.info.name}) offers no model choice over ACP")
    if is_opencode(argv):
        try:
            listed = opencode_models(argv[0], cwd=cwd, env=env)
        except OSError as exc:
            problems.append(f"could not run `{shlex.join([argv[0], 'models'])}`: {exc.strerror or exc}")
        except IteratrError as exc:
            problems.append(str(exc))
        else:
            if listed:
                return ModelChoices(listed, current, f"`{argv[0]} models`", problems)
            problems.append(f"`{argv[0]} models` listed no models")
    return ModelChoices([], current, "", problems)
