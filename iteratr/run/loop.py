"""The build loop: one agent session per iteration, one git commit per iteration.

``BuildLoop.run`` repeats: take the inbox, run hooks, render the prompt, record ``iteration.started``,
run the agent's turn, classify it, record ``iteration.ended`` (once), commit. It stops when the
session is complete, when ``--iterations`` is reached, at the failure limit, or on Ctrl+C; a failed
iteration is retried after a backoff.

This module is only that control flow. The other concerns each have a module of their own:
``record`` (events, commit, push, recovery), ``inbox_pump``, ``hook_runs`` (hooks and the
children's environment), ``signals`` (Ctrl+C), ``screen`` (what is printed) and ``attempt``
(classifying a turn). The agent comes through ``agent.seam``, so tests can drive the loop with a fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from iteratr.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, AgentError, IteratrError
from iteratr.run import hooks as hooks_mod
from iteratr.run import prompt
from iteratr.run.attempt import Attempt, check_planning, classify, classify_error
from iteratr.run.hook_runs import HookRunner, child_env
from iteratr.run.inbox_pump import InboxPump
from iteratr.run.record import Recorder
from iteratr.run.screen import Screen
from iteratr.run.settings import Settings
from iteratr.run.signals import Interrupts
from iteratr.session.state import State
from iteratr.session.store import Store

if TYPE_CHECKING:
    from iteratr.agent.seam import Agent, AgentFactory
    from iteratr.gitrepo import GitRepo
    from iteratr.output import Printer

MAX_BACKOFF = 300.0


class BuildLoop:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        repo: GitRepo,
        printer: Printer,
        agent_factory: AgentFactory | None = None,
    ) -> None:
        from iteratr.agent.seam import acp_agent

        self.s = settings
        self.store = store
        self.out = printer
        self.make_agent = agent_factory or acp_agent
        self.agent: Agent | None = None
        self.record = Recorder(settings, store, repo, printer)
        self.inbox = InboxPump(store, printer)
        self.hooks = HookRunner(settings, store, printer)
        self.screen = Screen(printer, settings.branch)
        self.interrupts = Interrupts(printer, lambda: self.agent)
        self._failure_text = ""  # the last failure, for the retry's prompt
        self._model_reported = False

    # -- the run --------------------------------------------------------------------------------

    async def run(self) -> int:
        self.interrupts.install()
        async with self.inbox.watching():
            try:
                self.record.recover()
                self.inbox.take()
                state = self.store.load()
                if state.complete and not state.pending_messages():
                    self.out.line(f"session {self.s.session} is already complete; nothing to do", "ok")
                    self.screen.final("the session is complete")
                    return EXIT_OK
                await self._start_agent(state)
                await self.hooks.hold("session_start", state.current_iteration)
                return await self._iterate()
            finally:
                if self.agent is not None:  # the session started: session_end runs however it ends
                    await self.agent.close()
                    await self._end_session()

    async def _iterate(self) -> int:
        ran = failures = 0
        while True:
            state = self.store.load()
            if self.interrupts.is_set():
                self.screen.final("interrupted")
                return EXIT_INTERRUPTED
            if state.complete and not state.pending_messages():
                self.screen.final(f"the session is complete ({len(state.tasks)} tasks)")
                return EXIT_OK
            if self.s.iterations and ran >= self.s.iterations:
                left = len(state.open_tasks())
                self.screen.final(f"{ran} iteration(s) run (--iterations), {left} task(s) still open")
                return EXIT_INCOMPLETE
            attempt = await self._one_iteration(state, "planning" if not state.tasks else "main")
            ran += 1
            if attempt.outcome == "interrupted":
                self.screen.final("interrupted")
                return EXIT_INTERRUPTED
            if attempt.outcome == "ok":
                failures = 0
                self._failure_text = ""
                continue
            failures += 1
            self._failure_text = f"Iteration #{attempt.n} {attempt.outcome}: {attempt.error}"
            extra = hooks_mod.render_piped(attempt.on_error)
            if extra:
                self._failure_text += "\n\n" + extra
            if failures >= self.s.max_failures:
                self.screen.final(f"{failures} failed iteration(s) in a row (max_failures); last: {attempt.error}")
                return EXIT_FAILED
            if self.s.iterations and ran >= self.s.iterations:
                continue  # --iterations is reached: stop now rather than wait to retry
            delay = min(self.s.retry_delay * 2 ** (failures - 1), MAX_BACKOFF)
            self.out.line(f"retrying in {delay:.0f}s (failure {failures} of {self.s.max_failures})", "warn")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.interrupts.event.wait(), delay)

    async def _one_iteration(self, state: State, kind: str) -> Attempt:
        n = state.next_iteration
        attempt = Attempt(n=n, kind=kind)
        # Tasks completed since the last check (by the user, between iterations or between runs).
        await self.hooks.tasks_completed(state, state.current_iteration)
        pre = await self.hooks.run("pre_iteration", n)
        self.inbox.take()
        state = self.store.load()
        context = prompt.context(
            session=self.s.session,
            iteration=n,
            spec=prompt.read_spec(self.s.spec_path),  # re-read every iteration: the user may refine it
            state=state,
            binary=self.s.binary,
            extra=self.s.extra,
            hooks=self.hooks.take_held(*pre),
            failure=self._failure_text,
        )
        text = self.s.templates[kind].render(context)
        attempt.delivered = [m.id for m in state.pending_messages()]
        before = self.record.started(n, kind, attempt.delivered)
        self.screen.headline(before, attempt, retry=bool(self._failure_text))
        started = time.monotonic()
        await self._turn(text, attempt)
        attempt.duration = round(time.monotonic() - started, 3)
        if attempt.kind == "planning":  # the outcome is final before it is recorded: one iteration.ended
            check_planning(attempt, self.store.load())
        after = self.record.ended(attempt)
        self.screen.footer(after, attempt)
        if attempt.outcome != "interrupted":
            # Before the commit: their hook.ran events and what they change belong to this iteration's
            # commit, and an on_error `git diff HEAD` still sees what the failed iteration did.
            await self.hooks.hold("post_iteration", n)
            await self.hooks.tasks_completed(self.store.load(), n)
            if attempt.outcome != "ok":
                attempt.on_error = await self.hooks.run("on_error", n, error=attempt.error or "")
        self.record.commit(before, self.store.load(), attempt)
        if attempt.fatal is not None:
            raise attempt.fatal  # e.g. a refused model: retrying cannot help, but the iteration is committed
        return attempt

    async def _turn(self, text: str, attempt: Attempt) -> None:
        assert self.agent is not None
        if self.interrupts.is_set():  # Ctrl+C came during the hooks: don't start the turn
            attempt.fail("interrupted", self.interrupts.reason)
            return
        self.interrupts.turn_running = True
        try:
            result = await self.agent.run_turn(
                text, iteration_timeout=self.s.iteration_timeout, idle_timeout=self.s.idle_timeout
            )
        except AgentError as exc:
            classify_error(attempt, exc)
        else:
            classify(attempt, result)
            if result.model and not self._model_reported:
                self.screen.model(result.model, chosen=bool(self.s.model))
                self._model_reported = True
        finally:
            self.interrupts.turn_running = False
            self.out.flush_agent()
        if self.interrupts.is_set():
            attempt.fail("interrupted", self.interrupts.reason)

    # -- the agent and the end of the session ---------------------------------------------------

    async def _start_agent(self, state: State) -> None:
        from iteratr.agent.seam import AgentLaunch

        log = self.store.dir / "agent.log"
        self.agent = self.make_agent(
            AgentLaunch(
                argv=self.s.agent_argv,
                cwd=self.s.work_tree,
                env=child_env(self.s, state.next_iteration),
                stderr_log=log,
                on_event=self.screen.agent_event,
                model=self.s.model or None,
            )
        )
        info = await self.agent.start()
        self.out.line(f"agent: {info.name} {info.version} (log: {log})")

    async def _end_session(self) -> None:
        """Run session_end, then commit what it recorded. Never raises: the run is over."""
        try:
            await self.hooks.run("session_end", self.store.load().current_iteration)
        except (IteratrError, OSError) as exc:
            self.out.warn(f"after session_end: {exc}")
            return
        self.record.commit_end_of_run()
