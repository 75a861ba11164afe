"""The loop in-process on a clone with a remote, as ``iteratr build --push`` runs it (tests/run/harness.py, plus the
remote: its lease and resume before the loop, each commit pushed, the lease released at the end)."""

from __future__ import annotations

import asyncio
from typing import Any

from iteratr.errors import IteratrError
from iteratr.gitrepo import GitRepo
from iteratr.remote.sync import Link
from tests.fakes import Script
from tests.run import harness
from tests.run.harness import LoopRun


def link_for(clone: Any, *, remote: str = "origin", push: bool = True, ttl: float = 60.0) -> Link:
    repo = GitRepo.open(clone)
    return Link(repo.root, remote, "SPEC", push=push, ttl=ttl, common_dir=repo.common_dir(), retry_delay=0.0)


def remote_loop(
    clone: Any, script: Script, *, expect: int | None = 0, ttl: float = 60.0, remote: str = "origin", **kwargs: Any
) -> LoopRun:
    """Lease and resume (``Link.start``), then the loop with each commit pushed; the lease released at the end."""
    link = link_for(clone, ttl=ttl, remote=remote)
    said = link.start()
    loop, run = harness.prepare(clone, script, push=remote, **kwargs)
    loop.record.link = link
    run.stream.write("".join(line + "\n" for line in said))
    try:
        loop.record.take_messages()
        asyncio.run(harness._run(loop, run))
    finally:
        link.release()
    if expect is not None:
        assert run.code == expect, f"exit {run.code}, expected {expect}\n{run.output}"
    return run


def start_error(clone: Any, **kwargs: Any) -> IteratrError:
    """What ``Link.start`` refuses with (it must refuse)."""
    link = link_for(clone, **kwargs)
    try:
        link.start()
    except IteratrError as exc:
        return exc
    finally:
        link.release()
    raise AssertionError("Link.start did not refuse")
