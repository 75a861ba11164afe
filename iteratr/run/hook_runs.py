"""Running the lifecycle hooks from the loop: when each fires, what is printed and recorded, what is piped.

``run.hooks`` loads the file and runs commands; this module is the loop's side of it. Each run is
printed and recorded as ``hook.ran``, and the output of ``pipe_output`` hooks is held here until the
next prompt takes it. ``on_task_complete`` fires once per task that became completed, whoever
completed it (the agent or a user, during the run or between runs).

The environment hooks run in is the agent's (``child_env``), so a hook and the agent's shell see
the same ``ITERATR_*`` variables; the loop uses it to start the agent too.

A hook's output and its ``hook.ran`` record have secret-looking environment values masked (``iteratr.secrets``):
a test runner that prints its config, or a deploy script that echoes a token, must not put it in the prompt,
the log or a commit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import TYPE_CHECKING

from iteratr.run import hooks as hooks_mod
from iteratr.secrets import Masker
from iteratr.session.events import make_event
from iteratr.session.state import State, id_number
from iteratr.session.store import Store

if TYPE_CHECKING:
    from iteratr.output import Printer
    from iteratr.run.settings import Settings


def child_env(settings: Settings, iteration: int) -> dict[str, str]:
    """The whole environment, plus what the agent and hooks need to reach the session's tools."""
    env = dict(os.environ)
    env.update(
        {
            "ITERATR_SESSION": settings.session,
            "ITERATR_ITERATION": str(iteration),
            "ITERATR_DATA_DIR": str(settings.data_dir),
            "ITERATR_BIN": settings.binary,
        }
    )
    return env


class HookRunner:
    def __init__(self, settings: Settings, store: Store, printer: Printer) -> None:
        self.s = settings
        self.store = store
        self.out = printer
        self.held: list[hooks_mod.HookResult] = []  # piped output waiting for the next prompt
        self.mask = Masker()
        self._latest: State | None = None  # the state its last ``hook.ran`` append returned, not yet taken
        self.ran = 0  # hook commands run so far: whether any ran between two points of the loop

    def fresher(self, state: State) -> State:
        """The state after the hooks run since the last call, else ``state``: a hook's ``hook.ran`` append returns
        the log as it stands, with whatever the hook changed through ``iteratr tool``, so the loop needs no read."""
        latest, self._latest = self._latest, None
        return latest if latest is not None else state

    def take_held(self, *more: hooks_mod.HookResult) -> str:
        """The piped output for the prompt about to be sent (held, then ``more``); nothing stays held."""
        text = hooks_mod.render_piped([*self.held, *more])
        self.held = []
        return text

    async def run(
        self, hook_type: str, iteration: int, task_id: str | None = None, **more: str
    ) -> list[hooks_mod.HookResult]:
        """Run the hooks of one type; returns the results whose output is piped into a prompt."""
        if self.s.hooks is None or not self.s.hooks.of(hook_type):
            return []
        variables = {"session": self.s.session, "iteration": str(iteration), **more}
        if task_id:
            variables["task_id"] = task_id
        env = child_env(self.s, iteration)
        results = await asyncio.to_thread(
            hooks_mod.run_hooks, self.s.hooks, hook_type, variables, cwd=self.s.work_tree, env=env
        )
        self.ran += len(results)
        # Masked once, here: what is printed, held for a prompt and recorded all come from these results.
        results = [dataclasses.replace(r, output=self.mask(r.output)) for r in results]
        events = []
        for r in results:
            status = "timed out" if r.timed_out else f"exit {r.exit_status}"
            style = "fail" if r.failed else "dim"
            command = r.spec.command if len(r.spec.command) <= 60 else r.spec.command[:57] + "..."
            self.out.line(f"    hook {hook_type}: {command} -> {status} in {r.duration:.1f}s", style)
            if r.failed and r.output.strip():
                for text in r.output.strip().splitlines()[-5:]:
                    self.out.line(f"      {text}", "dim")
            data = {
                "hook": hook_type,
                "command": self.mask(r.spec.command),
                "exit_status": r.exit_status,
                "timed_out": r.timed_out,
                "duration": round(r.duration, 3),
            }
            if task_id:
                data["task_id"] = task_id
            events.append(make_event("hook.ran", data, iteration))
        if events:
            self._latest = self.store.append(*events)
        return [r for r in results if r.spec.pipe_output]

    async def hold(self, hook_type: str, iteration: int, **more: str) -> None:
        """Run hooks whose piped output goes into the next prompt (session_start, post_iteration)."""
        self.held += await self.run(hook_type, iteration, **more)

    async def tasks_completed(self, state: State, iteration: int) -> None:
        """``on_task_complete`` once per task that became completed since the last check."""
        if self.s.hooks is None or not self.s.hooks.of("on_task_complete"):
            return
        for task_id in sorted(state.unhooked, key=id_number):  # completed, hooks not run: kept live by the reducer
            task = state.tasks.get(task_id)
            if task is not None and task.status == "completed" and task.id not in state.completed_hooked:
                self.held += await self.run("on_task_complete", iteration, task_id=task.id, task_content=task.content)
