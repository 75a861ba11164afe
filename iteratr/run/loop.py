"""The build loop: one agent session per iteration, one git commit per iteration.

``BuildLoop.run`` repeats: take the inbox, run hooks, render the prompt, record ``iteration.started``,
run the agent's turn, classify it, record ``iteration.ended`` (once, with its progress verdict), commit.
Before each iteration it decides, from the log and never from the agent's word (``guards``), whether to
stop: the session is complete (exit 0, ``session.completed`` recorded by the loop), every open task is
blocked or the agent made no progress ``stall_limit`` times in a row (exit 5), a budget is spent or
``--iterations`` main iterations ran (exit 3), the failure limit (exit 1), or Ctrl+C (130). A failed
iteration is retried after a backoff. ``max_time`` also cancels a running turn, as Ctrl+C does.

This module is only that control flow. The other concerns each have a module of their own:
``record`` (events, commit, push, recovery), ``inbox_pump``, ``hook_runs`` (hooks and the
children's environment), ``signals`` (Ctrl+C), ``screen`` (what is printed) and ``attempt``
(classifying a turn). The agent comes through ``agent.seam``, so tests can drive the loop with a fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from iteratr.errors import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_NEEDS_PERSON,
    EXIT_OK,
    EXIT_USAGE,
    AgentError,
    IteratrError,
)
from iteratr.run import guards, progress, prompt
from iteratr.run import hooks as hooks_mod
from iteratr.run.attempt import Attempt, check_planning, classify, classify_error
from iteratr.run.guards import acted_since
from iteratr.run.hook_runs import HookRunner, child_env
from iteratr.run.inbox_pump import InboxPump
from iteratr.run.prompt_archive import PromptArchive
from iteratr.run.record import Recorder
from iteratr.run.screen import Screen
from iteratr.run.settings import Settings
from iteratr.run.signals import Interrupts
from iteratr.session.events import make_event, utc_now
from iteratr.session.state import WINDOW, State
from iteratr.session.store import Store
from iteratr.text import counted

if TYPE_CHECKING:
    from iteratr.agent.events import TurnResult
    from iteratr.agent.seam import Agent, AgentFactory, Checked
    from iteratr.gitrepo import GitRepo
    from iteratr.output import Printer
    from iteratr.remote.sync import Link

MAX_BACKOFF = 300.0
log = logging.getLogger("iteratr.run")


class BuildLoop:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        repo: GitRepo,
        printer: Printer,
        agent_factory: AgentFactory | None = None,
        checked: Checked | None = None,
        link: Link | None = None,
    ) -> None:
        from iteratr.agent.seam import acp_agent

        self.s = settings
        self.store = store
        self.out = printer
        self.make_agent = agent_factory or acp_agent
        self.agent: Agent | None = None
        self.record = Recorder(settings, store, repo, printer, link=link)  # link: the remote (iteratr.remote)
        self.prompts = PromptArchive(store.dir, settings.keep_prompts)
        self.inbox = InboxPump(store, printer)
        self.hooks = HookRunner(settings, store, printer)
        self.screen = Screen(printer, settings.branch)
        self.interrupts = Interrupts(printer, lambda: self.agent)
        self.repo = repo
        self._failure_text = ""  # the last failure, for the retry's prompt
        self.checked = checked  # the agent as started and checked before git was touched (commands.build)
        self._model_reported = checked is not None  # the header named it
        if checked is not None:
            self.screen.model = checked.model
        self.run_id = utc_now()  # iterations of this run carry it: per-run totals come from the log
        self._clock = time.monotonic()  # max_time counts from here
        self._measured = False  # the first turn showed the agent measures every budget set
        # This run's iterations by outcome, for the stopped line: counted as they end, as the log records them
        # (reading every iteration of the session back from its archive cost 200+ MB at 1M events).
        self._outcomes: dict[str, int] = {}
        self._another_try = False  # stuck, but a person acted since: one more iteration before judging again
        self._mcp_prefix: str | None = None  # how the agent names iteratr's MCP tools: the prompt teaches them
        self._state: State | None = None  # the freshest state the loop holds (``_hold``)

    # -- the run --------------------------------------------------------------------------------

    async def run(self) -> int:
        self.interrupts.install()
        async with self.inbox.watching():
            try:
                self.record.recover()
                if self.record.halt is not None:  # a push at recovery: rejected, or the lease lost
                    return self._final(*self.record.halt)
                state = self._read()
                if state.complete:
                    self.out.line(f"session {self.s.session} is already complete; nothing to do", "ok")
                    return self._final(EXIT_OK, "the session is complete")
                stop = self._needs_person(state, at_start=True)
                if stop is not None:
                    return stop
                await self._start_agent(state)
                await self.hooks.hold("session_start", state.current_iteration)
                return await self._iterate()
            finally:
                if self.agent is not None:  # the session started: session_end runs however it ends
                    await self.agent.close()
                    await self._end_session()
                self.record.history.discard()
                self.record.orphans.close()  # no longer a subreaper (iteratr.reaper)

    async def _iterate(self) -> int:
        ran = failures = 0  # ran: main iterations only (--iterations does not count planning)
        while True:
            state = self._read()
            if self.interrupts.is_set():
                return self._final(EXIT_INTERRUPTED, "interrupted")
            stop = self._should_stop(state, ran)
            if stop is not None:
                return stop
            kind = "planning" if not state.tasks else "main"
            attempt = await self._one_iteration(state, kind)
            self._outcomes[attempt.outcome] = self._outcomes.get(attempt.outcome, 0) + 1
            if self.record.halt is not None:  # its push was rejected, or the lease lost: committed here, not pushed
                return self._final(*self.record.halt)
            self._another_try = False
            ran += kind == "main"
            if attempt.budget is not None:
                return self._final(EXIT_INCOMPLETE, attempt.budget)
            if attempt.outcome == "interrupted":
                return self._final(EXIT_INTERRUPTED, "interrupted")
            if attempt.outcome == "ok":
                failures = 0
                self._failure_text = ""
                unmeasured = self._unmeasured(attempt)
                if unmeasured is not None:
                    return self._final(EXIT_USAGE, unmeasured)
                continue
            failures += 1
            self._failure_text = f"Iteration #{attempt.n} {attempt.outcome}: {attempt.error}"
            extra = hooks_mod.render_piped(attempt.on_error)
            if extra:
                self._failure_text += "\n\n" + extra
            if failures >= self.s.max_failures:
                reason = f"{failures} failed iteration(s) in a row (max_failures); last: {attempt.error}"
                return self._final(EXIT_FAILED, reason)
            if self.s.iterations and ran >= self.s.iterations:
                continue  # --iterations is reached: stop now rather than wait to retry
            delay = min(self.s.retry_delay * 2 ** (failures - 1), MAX_BACKOFF)
            self.out.line(f"retrying in {delay:.0f}s (failure {failures} of {self.s.max_failures})", "warn")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.interrupts.event.wait(), delay)

    def _read(self) -> State:
        """The iteration's one read of the store (issue 17): what others wrote since (the user's ``iteratr tool``
        between iterations, a message). From here on the loop goes by the states its own appends return."""
        state = self.store.fresh(self._state)  # none when nothing was written since the loop's own last append
        # Before judging the session complete: a message saved since the watcher last looked reopens it.
        return self._hold(self.inbox.take(state) or state)

    def _hold(self, state: State) -> State:
        self._state = state  # the freshest state the loop has: the ``stopped:`` line and session_end read it
        return state

    # -- the guard rails (iteratr.run.guards): judged from the log, never from the agent's word ----------

    def _should_stop(self, state: State, ran: int) -> int | None:
        """The exit status if the run must stop before the next iteration (having said why); else None."""
        if state.complete:
            return self._final(EXIT_OK, f"the session is complete ({counted(len(state.tasks), 'task')})")
        stop = self._needs_person(state, at_start=False)
        if stop is not None:
            return stop
        session = guards.session_totals(state)
        spent = guards.over_budget(
            self.s.budgets,
            run=guards.run_totals(state, self.run_id),
            session=session,
            elapsed=time.monotonic() - self._clock,
        )
        if spent is not None:
            return self._final(EXIT_INCOMPLETE, spent)
        if self.s.iterations and ran >= self.s.iterations:
            left = len(state.open_tasks())
            if not left:  # nothing open: all done, or only blocked ones (stopped above)
                return self._final(EXIT_OK, f"the session is complete ({counted(len(state.tasks), 'task')})")
            return self._final(EXIT_INCOMPLETE, f"{ran} iteration(s) run (--iterations), {left} task(s) still open")
        return None

    def _needs_person(self, state: State, *, at_start: bool) -> int | None:
        """Exit 5 when no iteration can help: every open task blocked, or no progress ``stall_limit`` times."""
        blocked = guards.all_blocked(state)
        if blocked:
            self.out.line(f"every open task is blocked ({len(blocked)}); a person must look at them:", "fail")
            self.screen.blocked(blocked, lambda task_id: guards.latest_stuck_note(state, task_id))
            return self._final(EXIT_NEEDS_PERSON, f"needs a person: every open task is blocked ({len(blocked)})")
        stalled = guards.without_progress(state, self.s.stall_limit)  # 0 when there is no limit: nothing read
        if not self.s.stall_limit or stalled < self.s.stall_limit or state.pending_messages():
            return None  # a waiting message may be what unsticks it: the agent reads it first
        if at_start:
            self._another_try = self._acted_since(state)
        if self._another_try:
            return None  # a person changed the tasks since: the agent gets another iteration
        task = state.in_progress()
        on = f" on {task.id} ({task.content})" if task else ""
        hint = "send a message (`iteratr say`), change the tasks, or raise --stall-limit, then run again"
        self.out.line(f"the agent is stuck: {stalled} iteration(s) in a row{on} made no progress; {hint}", "fail")
        return self._final(EXIT_NEEDS_PERSON, f"needs a person: stuck{on}, {stalled} iteration(s) without progress")

    def _acted_since(self, state: State) -> bool:
        """Whether someone changed the tasks after the last iteration ended (between runs, by hand)."""
        return acted_since(state, self.store.iter_events())  # streamed: once per run, never a list of the log

    def _unmeasured(self, attempt: Attempt) -> str | None:
        """After the first turn that ended well: a budget the agent does not measure stops the run (exit 2)."""
        if self._measured:
            return None
        self._measured = True
        first = guards.Totals()
        first.add(attempt.usage)
        return guards.unmeasured_budget(self.s.budgets, first)

    def _final(self, code: int, reason: str) -> int:
        """The ``stopped:`` line, with this run's totals from the log (iterations by outcome, tokens, cost) and its
        wall time, and the exit status."""
        state = self._state if self._state is not None else self.store.load()
        outcomes = dict(self._outcomes)
        wall = time.monotonic() - self._clock
        self.screen.final(reason, guards.run_totals(state, self.run_id), outcomes, wall)
        return code

    async def _one_iteration(self, state: State, kind: str) -> Attempt:
        n = state.next_iteration
        attempt = Attempt(n=n, kind=kind)
        # Tasks completed since the last check (by the user, between iterations or between runs).
        await self.hooks.tasks_completed(state, state.current_iteration)
        pre = await self.hooks.run("pre_iteration", n)
        state = self.hooks.fresher(state)  # what the hooks changed, from their own append: no read
        state = self.inbox.take(state) or state  # a message saved during the hooks reaches this prompt
        context = prompt.masked(
            prompt.context(
                session=self.s.session,
                iteration=n,
                spec=prompt.read_spec(self.s.spec_path),  # re-read every iteration: the user may refine it
                state=state,
                binary=self.s.binary,
                extra=self.s.extra,
                hooks=self.hooks.take_held(*pre),
                failure=self._failure_text,
                progress=self._stall_words(state),
                mcp=self._mcp_prefix,
            ),
            self.record.mask,
        )  # secrets from a hook's output or the agent's failure never reach the prompt
        text = self.s.templates[kind].render(context)
        self.prompts.keep(n, text)  # .iteratr/S/prompts/<n>.md: what the agent was told (`status --prompt`)
        if log.isEnabledFor(logging.DEBUG):  # one record per line: every line of the log file keeps its time
            log.debug("prompt of iteration #%d (%d characters):", n, len(text))
            for line in text.splitlines():
                log.debug("prompt #%d | %s", n, line)
        attempt.run = self.run_id
        attempt.delivered = [m.id for m in state.pending_messages()]
        before = self.record.started(n, kind, [])  # delivered only once the prompt is sent (in _turn)
        self.screen.headline(before, attempt, retry=bool(self._failure_text))
        started = time.monotonic()
        mark = progress.mark(self.repo, self.s.data_dir)
        self.record.history.prepare()  # what the check at the turn's end reads through, started while the agent works
        await self._turn(text, attempt)
        attempt.duration = round(time.monotonic() - started, 3)
        status = progress.start_status(self.repo)  # runs while the log is checked (it reads outside the log)
        self.record.check_turn(attempt, status)  # the log must extend iteratr's last commit: repaired before use
        turn_end, hooks_ran = progress.changed_since(self.repo, self.s.data_dir, mark, status), self.hooks.ran

        def judge(now: State) -> None:  # final before it is recorded (one iteration.ended), from the log as it is
            if attempt.kind == "planning":
                check_planning(attempt, now)
            attempt.progress = guards.made_progress(
                before, now, delivered=len(attempt.delivered), tree_changed=turn_end.changed
            )

        after = self.record.ended(attempt, judge)
        self.screen.footer(after, attempt)
        if attempt.outcome != "interrupted":
            # Before the commit: their hook.ran events and what they change belong to this iteration's
            # commit, and an on_error `git diff HEAD` still sees what the failed iteration did.
            await self.hooks.hold("post_iteration", n)
            after = self.hooks.fresher(after)
            await self.hooks.tasks_completed(after, n)
            if attempt.outcome != "ok":
                attempt.on_error = await self.hooks.run("on_error", n, error=attempt.error or "")
            after = self.hooks.fresher(after)
        if after.complete and not after.claimed:  # derived, and recorded by the loop: the agent need not say so
            after = self.store.append(make_event("session.completed", {"by": "iteratr"}, n))
        # The turn's checks (its git status, the refs) still hold at the commit unless a hook ran since.
        self.record.commit(before, after, attempt, turn_end if self.hooks.ran == hooks_ran else None)
        self._hold(after)
        if attempt.fatal is not None:
            raise attempt.fatal  # e.g. a refused model: retrying cannot help, but the iteration is committed
        return attempt

    async def _turn(self, text: str, attempt: Attempt) -> None:
        assert self.agent is not None
        if self.interrupts.is_set():  # Ctrl+C came during the hooks: don't start the turn
            attempt.delivered = []  # the prompt was never sent: its messages wait for the next one
            attempt.fail("interrupted", self.interrupts.reason)
            return
        self.record.delivered(attempt.n, attempt.delivered)
        self.record.orphans.turn_starts()
        self.interrupts.turn_running = True
        try:
            result = await self._bounded(
                self.agent.run_turn(text, iteration_timeout=self.s.iteration_timeout, idle_timeout=self.s.idle_timeout),
                attempt,
            )
        except AgentError as exc:
            classify_error(attempt, exc)
        else:
            classify(attempt, result)
            if not self._model_reported:
                self.screen.model_reported(result.model, chosen=bool(self.s.model))
                self._model_reported = True
            elif result.model:
                self.screen.model = result.model
        finally:
            self.interrupts.turn_running = False
            self.out.flush_agent()
            self.record.orphans.turn_ended(self.agent)
        if self.interrupts.is_set():
            attempt.fail("interrupted", self.interrupts.reason)
        elif attempt.budget is not None:
            attempt.fail("interrupted", attempt.budget + "; the turn was cancelled")

    async def _bounded(self, turn: Coroutine[Any, Any, TurnResult], attempt: Attempt) -> TurnResult:
        """The turn, cancelled as Ctrl+C cancels it if ``max_time`` runs out first (``attempt.budget`` says so)."""
        limit = self.s.budgets.max_time
        if limit is None:
            return await turn
        task = asyncio.ensure_future(turn)
        left = limit - (time.monotonic() - self._clock)
        done, _ = await asyncio.wait({task}, timeout=max(left, 0.0))
        if not done:
            elapsed = time.monotonic() - self._clock
            attempt.budget = f"budget max_time ({guards.duration_words(limit)}) reached: this run has taken " + (
                guards.duration_words(elapsed)
            )
            self.out.line(f"{attempt.budget}: cancelling the turn", "warn")
            assert self.agent is not None
            await self.agent.cancel()
        return await task

    def _stall_words(self, state: State) -> str:
        # With no limit the prompt still warns, counting the live window only ("N or more" at its end).
        spent = guards.without_progress(state, self.s.stall_limit or WINDOW)
        task = state.in_progress()
        return prompt.stall_text(spent, self.s.stall_limit, f"{task.id}" if task else None)

    # -- the agent and the end of the session ---------------------------------------------------

    async def _start_agent(self, state: State) -> None:
        from iteratr.agent.seam import AgentLaunch

        log = self.store.dir / "agent.log"
        running = self.checked is not None and self.checked.running  # started before git was touched: used
        if not running:
            self.out.line("starting the agent…", "dim")
        self.agent = self.make_agent(
            AgentLaunch(
                argv=self.s.agent_argv,
                cwd=self.s.work_tree,
                env=child_env(self.s, state.next_iteration),
                stderr_log=log,
                on_event=self.screen.agent_event,
                model=self.s.model or None,
                permissions=self.s.permissions,
                work_tree=self.s.work_tree,
            )
        )
        info = await self.agent.start()  # a no-op for the agent started before
        self._mcp_prefix = info.mcp_prefix
        self.out.line(f"agent log: {log}" if running else f"agent: {info.name} {info.version} (log: {log})")

    async def _end_session(self) -> None:
        """Run session_end, then commit what it recorded. Never raises: the run is over."""
        try:
            state = self._state if self._state is not None else self.store.load()
            await self.hooks.run("session_end", state.current_iteration)
        except (IteratrError, OSError) as exc:
            self.out.warn(f"after session_end: {exc}")
            return
        self.record.commit_end_of_run()
