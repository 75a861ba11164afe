"""The loop reads the store once per iteration (issue 17): it goes by the states its own appends return.

``Store.load`` of the loop's store is wrapped to count; the appends (``transact``) are wrapped to see where each
iteration starts. Hooks of every per-iteration kind run, so a state passed along past them is exercised: what a
hook changes through ``iteratr tool`` still reaches the prompt and the commit.
"""

from __future__ import annotations

import asyncio
import itertools
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from iteratr.session.state import Event, State
from tests.conftest import ITERATR_CMD
from tests.fakes import Script
from tests.run.harness import _run, prepare
from tests.run.helpers import marker, read_markers, write_hooks


def counted_run(repo: Path, script: Script, monkeypatch: pytest.MonkeyPatch, **settings: Any) -> list[str]:
    """Run the loop; return what its store did, in order: "load" for each read (``load``, or ``fresh``, which loads
    only if someone else wrote since the loop's last append), and "started N" for each iteration.started."""
    loop, run = prepare(repo, script, **settings)
    store, seen = loop.store, list[str]()
    load, fresh, transact = store.load, store.fresh, store.transact
    inside_fresh = [False]

    def counting_load() -> State:
        if not inside_fresh[0]:
            seen.append("load")
        return load()

    def counting_fresh(held: State | None) -> State:
        seen.append("load")
        inside_fresh[0] = True
        try:
            return fresh(held)
        finally:
            inside_fresh[0] = False

    def watching_transact(decide: Callable[[State], list[Event]]) -> tuple[State, list[Event]]:
        state, new = transact(decide)
        seen.extend(f"started {e['data']['n']}" for e in new if e["type"] == "iteration.started")
        return state, new

    monkeypatch.setattr(store, "load", counting_load)
    monkeypatch.setattr(store, "fresh", counting_fresh)
    monkeypatch.setattr(store, "transact", watching_transact)
    asyncio.run(_run(loop, run))
    assert run.code == 0, run.output
    return seen


def reads_between_iterations(seen: list[str]) -> list[int]:
    """The loads from each iteration.started to the next (the last iteration's own reads are counted too)."""
    starts = [i for i, what in enumerate(seen) if what.startswith("started")]
    bounds = [*starts, len(seen)]
    return [seen[a:b].count("load") for a, b in itertools.pairwise(bounds)]


def test_one_read_of_the_store_per_iteration(spec_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    markers = tmp_path / "markers"
    write_hooks(
        spec_repo,
        {
            "pre_iteration": [{"command": marker(markers, "pre {{iteration}}"), "pipe_output": True}],
            "post_iteration": [{"command": marker(markers, "post {{iteration}}")}],
            "on_task_complete": [{"command": marker(markers, "task {{task_id}}")}],
        },
    )
    seen = counted_run(spec_repo, Script("follow"), monkeypatch)
    iterations = [what for what in seen if what.startswith("started")]
    assert iterations == ["started 0", "started 1", "started 2", "started 3"]  # planning, then the three tasks
    # From one iteration's start to the next: exactly one read (the next iteration's own, at its top). After the
    # last one: the read that finds the session complete, and nothing more (the stopped: line and session_end
    # go by the state the loop holds).
    assert reads_between_iterations(seen) == [1, 1, 1, 1], seen
    assert "task TAS-3" in read_markers(markers) and "post 3" in read_markers(markers)


def test_what_a_hook_changes_reaches_the_prompt_without_a_read(
    spec_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pre_iteration hook adds a task through ``iteratr tool`` before iteration 1: that very prompt lists it (the
    state after the hook comes from its hook.ran append, not a read), and the session ends only once it is done."""
    add = shlex.join([*ITERATR_CMD, "tool", "task-add", "--content", "added by the hook"])
    write_hooks(spec_repo, {"pre_iteration": [{"command": f'[ "$ITERATR_ITERATION" != 1 ] || {add}'}]})
    script = Script("follow")
    seen = counted_run(spec_repo, script, monkeypatch)
    assert "added by the hook" not in script.prompts[0] and "added by the hook" in script.prompts[1]
    assert len([w for w in seen if w.startswith("started")]) == 5  # planning, three tasks, the hook's task
    assert reads_between_iterations(seen) == [1] * 5, seen
