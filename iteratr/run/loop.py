"""The build loop: one ACP session per iteration, one git commit per iteration.

``BuildLoop.run`` repeats: take the inbox, run hooks, render the prompt, record
``iteration.started``, run the agent's turn, record ``iteration.ended``, commit. It stops when the
session is complete, when ``--iterations`` is reached, at the failure limit, or on Ctrl+C.

Every fact goes into the event log before it is acted on, and every iteration, whatever its
outcome, ends in a commit, so ``git log iteratr/S`` is the whole history and a crash at any point
loses nothing: an iteration found unfinished at start-up is closed as interrupted and committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from iteratr.errors import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AgentError,
    IteratrError,
    StoreError,
)
from iteratr.run import hooks as hooks_mod
from iteratr.run import inbox, prompt
from iteratr.run.attempt import STOP_REASONS, Attempt, commit_message
from iteratr.run.settings import Settings
from iteratr.session.state import State, Task, id_number
from iteratr.session.store import Store, make_event

if TYPE_CHECKING:
    from iteratr.agent.runner import AgentRunner, TurnResult
    from iteratr.gitrepo import GitRepo
    from iteratr.output import Printer

MAX_BACKOFF = 300.0
log = logging.getLogger("iteratr.agent")


class BuildLoop:
    def __init__(self, settings: Settings, store: Store, repo: GitRepo, printer: Printer) -> None:
        self.s = settings
        self.store = store
        self.repo = repo
        self.out = printer
        self.session_dir = store.dir
        self.agent: AgentRunner | None = None
        self.interrupted = asyncio.Event()
        self._held: list[hooks_mod.HookResult] = []  # piped hook output waiting for the next prompt
        self._failure_text = ""
        self._turn_running = False
        self._model_reported = False
        self._interrupt_reason = "interrupted by the user"

    # -- the run --------------------------------------------------------------------------------

    async def run(self) -> int:
        self._install_signal_handlers()
        stop_watch = asyncio.Event()
        watcher = asyncio.create_task(inbox.watch(self.session_dir, self._on_inbox_change, stop_watch))
        try:
            self._recover_uncommitted()
            self._recover_unfinished()
            self.take_inbox()
            state = self.store.load()
            if state.complete and not state.pending_messages():
                self.out.line(f"session {self.s.session} is already complete; nothing to do", "ok")
                self._final("the session is complete")
                return EXIT_OK
            await self._start_agent()
            self._held += await self._run_hooks("session_start", self._vars(state.current_iteration))
            return await self._iterate()
        finally:
            stop_watch.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(watcher, 5)
            if self.agent is not None:  # the session started: session_end runs however it ends
                await self.agent.close()
                await self._end_session()

    async def _iterate(self) -> int:
        ran = failures = 0
        while True:
            state = self.store.load()
            if self.interrupted.is_set():
                self._final("interrupted")
                return EXIT_INTERRUPTED
            if state.complete and not state.pending_messages():
                self._final(f"the session is complete ({len(state.tasks)} tasks)")
                return EXIT_OK
            if self.s.iterations and ran >= self.s.iterations:
                left = len(state.open_tasks())
                self._final(f"{ran} iteration(s) run (--iterations), {left} task(s) still open")
                return EXIT_INCOMPLETE
            kind = "planning" if not state.tasks else "main"
            attempt = await self._one_iteration(state, kind)
            ran += 1
            if attempt.outcome == "interrupted":
                self._final("interrupted")
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
                self._final(f"{failures} failed iteration(s) in a row (max_failures); last: {attempt.error}")
                return EXIT_FAILED
            if self.s.iterations and ran >= self.s.iterations:
                continue  # --iterations is reached: stop now rather than wait to retry
            delay = min(self.s.retry_delay * 2 ** (failures - 1), MAX_BACKOFF)
            self.out.line(f"retrying in {delay:.0f}s (failure {failures} of {self.s.max_failures})", "warn")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.interrupted.wait(), delay)

    async def _one_iteration(self, state: State, kind: str) -> Attempt:
        n = state.next_iteration
        attempt = Attempt(n=n, kind=kind)
        # Tasks completed since the last check (by the user, between iterations or between runs).
        await self._task_complete_hooks(state, state.current_iteration)
        pre = await self._run_hooks("pre_iteration", self._vars(n))
        self.take_inbox()
        state = self.store.load()
        spec = prompt.read_spec(self.s.spec_path)  # re-read every iteration: the user may refine it
        piped = hooks_mod.render_piped([*self._held, *pre])
        context = prompt.context(
            session=self.s.session,
            iteration=n,
            spec=spec,
            state=state,
            binary=self.s.binary,
            extra=self.s.extra,
            hooks=piped,
            failure=self._failure_text,
        )
        text = self.s.templates[kind].render(context)
        pending = [m.id for m in state.pending_messages()]
        events = [make_event("iteration.started", {"n": n, "kind": kind}, n)]
        if pending:
            events.append(make_event("user.delivered", {"ids": pending, "iteration": n}, n))
        before = self.store.append(*events)
        self._held = []
        attempt.delivered = pending
        self.out.header(self._headline(before, attempt))
        started = time.monotonic()
        await self._turn(text, attempt)
        attempt.duration = round(time.monotonic() - started, 3)
        after = self._record_end(attempt)
        if kind == "planning" and attempt.outcome == "ok" and not after.tasks:
            # The turn ended fine but planned nothing: treat it as a failure so it is retried.
            attempt.outcome, attempt.error = "failed", "the planning iteration added no tasks"
            after = self.store.append(make_event("iteration.ended", self._end_data(attempt), n))
        self._footer(before, after, attempt)
        if attempt.outcome != "interrupted":
            # Before the commit: their hook.ran events and what they change belong to this iteration's
            # commit, and an on_error `git diff HEAD` still sees what the failed iteration did.
            self._held += await self._run_hooks("post_iteration", self._vars(n))
            await self._task_complete_hooks(self.store.load(), n)
            if attempt.outcome != "ok":
                attempt.on_error = await self._run_hooks("on_error", self._vars(n, error=attempt.error or ""))
        self._commit(before, self.store.load(), attempt)
        if attempt.fatal is not None:
            raise attempt.fatal  # e.g. a refused model: retrying cannot help, but the iteration is committed
        return attempt

    async def _turn(self, text: str, attempt: Attempt) -> None:
        from iteratr.agent.runner import AgentDied, ModelError, TurnTimeout

        assert self.agent is not None
        if self.interrupted.is_set():  # Ctrl+C came during the hooks: don't start the turn
            attempt.outcome, attempt.error = "interrupted", self._interrupt_reason
            return
        self._turn_running = True
        try:
            result = await self.agent.run_turn(
                text, iteration_timeout=self.s.iteration_timeout, idle_timeout=self.s.idle_timeout
            )
            self._classify(result, attempt)
        except ModelError as exc:
            attempt.outcome, attempt.error, attempt.fatal = "failed", str(exc), exc
        except TurnTimeout as exc:
            attempt.outcome, attempt.error = "timeout", str(exc)
        except (AgentDied, AgentError) as exc:
            attempt.outcome, attempt.error = "failed", str(exc)
        finally:
            self._turn_running = False
            self.out.flush_agent()
        if self.interrupted.is_set():
            attempt.outcome, attempt.error = "interrupted", self._interrupt_reason

    def _classify(self, result: TurnResult, attempt: Attempt) -> None:
        attempt.stop_reason = result.stop_reason
        attempt.model = result.model
        if result.usage is not None:
            u = result.usage
            attempt.usage = {
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "total_tokens": u.total_tokens,
                "cost": u.cost,
                "currency": u.currency,
            }
        if result.model and not self._model_reported:
            source = "" if self.s.model else " (the agent's default)"
            self.out.line(f"model: {result.model}{source}")
            self._model_reported = True
        if result.stop_reason != "end_turn":
            attempt.outcome = "failed"
            attempt.error = STOP_REASONS.get(result.stop_reason, f"the agent stopped with {result.stop_reason!r}")
        elif not result.text.strip() and result.tool_calls == 0:
            attempt.outcome = "failed"
            attempt.error = (
                "the agent ended its turn without any output; check its credentials (API key) and the model"
                " (--model), and see the agent's log"
            )

    # -- bookkeeping ----------------------------------------------------------------------------

    def _end_data(self, attempt: Attempt) -> dict[str, Any]:
        data: dict[str, Any] = {"n": attempt.n, "outcome": attempt.outcome, "duration": attempt.duration}
        for key in ("error", "stop_reason", "usage", "model"):
            if getattr(attempt, key) is not None:
                data[key] = getattr(attempt, key)
        return data

    def _record_end(self, attempt: Attempt) -> State:
        return self.store.append(make_event("iteration.ended", self._end_data(attempt), attempt.n))

    def _recover_uncommitted(self) -> None:
        """An iteration that ended but whose run stopped before its commit (kill -9, a git failure)
        gets its own commit now, so no number is missing from ``git log``."""
        state = self.store.load()
        ended = [n for n, it in state.iterations.items() if it.outcome is not None]
        if not ended:
            return
        it = state.iterations[max(ended)]
        committed = self.repo.last_committed_iteration(self.s.session)
        if committed is not None and committed >= it.n:
            return
        attempt = Attempt(
            n=it.n, kind=it.kind, outcome=it.outcome or "interrupted", error=it.error, duration=it.duration or 0.0
        )
        self.out.line(f"#{it.n} ended but was not committed by an earlier run: committing it now", "warn")
        self._commit(state, state, attempt)

    def _recover_unfinished(self) -> None:
        """An iteration left open by a crash or kill -9 is closed as interrupted and committed first."""
        state = self.store.load()
        open_it = state.unfinished_iteration()
        if open_it is None:
            return
        attempt = Attempt(
            n=open_it.n,
            kind=open_it.kind,
            outcome="interrupted",
            error="found unfinished at start-up (the previous run was killed)",
            duration=None,  # it ran for some time, but nobody saw it end: say "?" rather than 0s
        )
        self.out.line(f"#{open_it.n} was left unfinished by an earlier run: recording it as interrupted", "warn")
        after = self._record_end(attempt)
        self._commit(state, after, attempt)

    def _commit(self, before: State, after: State, attempt: Attempt) -> None:
        from iteratr.errors import GitError

        message = commit_message(self.s.session, before, after, attempt)
        files = [self.store.events_path, self.store.tasks_path, self.s.data_dir / ".gitignore"]
        try:
            self._back_on_branch()
            sha = self.repo.commit_all(message, everything=self.s.auto_commit, force_paths=files)
        except GitError as exc:
            raise StoreError(
                f"could not commit iteration #{attempt.n}: {exc}",
                hint="the events are safe in the log and will be committed by the next run",
            ) from None
        self.out.line(f"    commit {sha}: {message.splitlines()[0]}", "dim")
        if self.s.push:
            try:
                self.repo.push(self.s.push, self.s.branch)
            except GitError as exc:
                self.out.warn(f"push to {self.s.push} failed, carrying on: {exc}")

    def _back_on_branch(self) -> None:
        """The agent has a shell: if it switched branches or detached HEAD, the iteration's commit must
        still go on the session branch, never on the user's ``main``. Its work comes along."""
        current = self.repo.current_branch()
        if current == self.s.branch:
            return
        self.out.warn(
            f"the agent left the checkout on {current or 'a detached HEAD'}; switching back to {self.s.branch}"
        )
        self.repo.run("switch", "--quiet", self.s.branch)

    def take_inbox(self) -> None:
        """Record what the inbox holds. A file error is a warning, not the end of the run (nor of the
        watcher, which calls this): nothing is recorded, so the next take tries the same text again."""
        try:
            self._take_inbox()
        except OSError as exc:
            self.out.warn(f"inbox: could not take new text, will try again: {exc}")

    def _take_inbox(self) -> None:
        state = self.store.load()
        taken = inbox.take(self.session_dir, state.inbox_consumed)
        if not taken:
            # Taking files are deleted only after a grace period, so a later take with nothing new
            # is what cleans up those left by an earlier one.
            inbox.release(self.session_dir, state.inbox_consumed)
            return
        events: list[tuple[str, dict[str, Any]]] = []
        for item in taken:
            if item.warning:
                self.out.warn(f"inbox: {item.warning}")
            if item.rejected_path is not None:
                self.out.warn(
                    f"inbox: message over {inbox.MAX_MESSAGE_BYTES} bytes moved aside to {item.rejected_path}"
                )
            if item.text:
                events.append(
                    ("user.message", {"text": item.text, "source": item.source, "start": item.start, "end": item.end})
                )
            else:
                events.append(("inbox.consumed", {"source": item.source, "end": item.end}))

        def decide(s: State) -> list[dict[str, Any]]:
            made, next_num = [], len(s.messages) + 1
            for type_, data in events:
                if type_ == "user.message" and s.inbox_consumed.get(data["source"], 0) >= data["end"]:
                    continue  # recorded by a concurrent take: never twice
                if type_ == "user.message":
                    data = {"id": f"MSG-{next_num}", **data}
                    next_num += 1
                made.append(make_event(type_, data, s.current_iteration))
            return made

        after, made = self.store.transact(decide)
        for event in made:
            if event["type"] == "user.message":
                first = event["data"]["text"].strip().splitlines()[0]
                self.out.line(f">>> message from the user ({event['data']['id']}): {first}", "user")
        inbox.release(self.session_dir, after.inbox_consumed)

    async def _on_inbox_change(self) -> None:
        self.take_inbox()

    # -- hooks ----------------------------------------------------------------------------------

    def _vars(self, iteration: int, **more: str) -> dict[str, str]:
        return {"session": self.s.session, "iteration": str(iteration), **more}

    async def _run_hooks(
        self, hook_type: str, variables: dict[str, str], task_id: str | None = None
    ) -> list[hooks_mod.HookResult]:
        if self.s.hooks is None or not self.s.hooks.of(hook_type):
            return []
        env = self.agent_env(int(variables.get("iteration") or 0))
        results = await asyncio.to_thread(
            hooks_mod.run_hooks, self.s.hooks, hook_type, variables, cwd=self.s.work_tree, env=env
        )
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
                "command": r.spec.command,
                "exit_status": r.exit_status,
                "timed_out": r.timed_out,
                "duration": round(r.duration, 3),
            }
            if task_id:
                data["task_id"] = task_id
            events.append(make_event("hook.ran", data, int(variables.get("iteration") or 0)))
        if events:
            self.store.append(*events)
        return [r for r in results if r.spec.pipe_output]

    async def _task_complete_hooks(self, state: State, n: int) -> None:
        """Once per task that became completed, whoever completed it (the agent or a user)."""
        if self.s.hooks is None or not self.s.hooks.of("on_task_complete"):
            return
        for task in sorted(state.tasks.values(), key=lambda t: id_number(t.id)):
            if task.status == "completed" and task.id not in state.completed_hooked:
                variables = self._vars(n, task_id=task.id, task_content=task.content)
                self._held += await self._run_hooks("on_task_complete", variables, task_id=task.id)

    async def _end_session(self) -> None:
        """Run session_end, then commit the events it recorded after the last iteration's commit: a run
        never leaves the session log dirty (that would block ``git switch``). Never raises: the run is over."""
        try:
            await self._run_hooks("session_end", self._vars(self.store.load().current_iteration))
            files = [p for p in (self.store.events_path, self.store.tasks_path) if p.exists()]
            rel = [str(p.relative_to(self.repo.root)) for p in files]
            if not rel or not self.repo.run("status", "--porcelain", "--", *rel).strip():
                return
            message = f"iteratr({self.s.session}): end of run\n\nIteratr-Session: {self.s.session}\n"
            sha = self.repo.commit_all(message, everything=False, force_paths=files)
            self.out.line(f"    commit {sha}: {message.splitlines()[0]}", "dim")
            if self.s.push:
                self.repo.push(self.s.push, self.s.branch)
        except (IteratrError, OSError) as exc:
            self.out.warn(f"after session_end: {exc}")

    # -- agent and signals ----------------------------------------------------------------------

    def agent_env(self, iteration: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "ITERATR_SESSION": self.s.session,
                "ITERATR_ITERATION": str(iteration),
                "ITERATR_DATA_DIR": str(self.s.data_dir),
                "ITERATR_BIN": self.s.binary,
            }
        )
        return env

    async def _start_agent(self) -> None:
        from iteratr.agent.runner import AgentRunner

        self.agent = AgentRunner(
            self.s.agent_argv,
            cwd=self.s.work_tree,
            env=self.agent_env(self.store.load().next_iteration),
            stderr_log=self.session_dir / "agent.log",
            on_event=self._on_agent_event,
            model=self.s.model or None,
        )
        info = await self.agent.start()
        self.out.line(f"agent: {info.name} {info.version} (log: {self.session_dir / 'agent.log'})")

    def _on_agent_event(self, event: object) -> None:
        from iteratr.agent import runner as a

        if log.isEnabledFor(logging.DEBUG):  # the --log-file gets every event; the screen a readable digest
            log.debug("agent event: %.500r", event)
        if isinstance(event, a.AgentText):
            self.out.agent_text(event.text)
        elif isinstance(event, a.ToolCallEvent) and event.final:
            style = "tool" if event.status == "completed" else "fail"
            self.out.line(f"  [tool] {event.title} -> {event.status}", style)
        elif isinstance(event, a.PermissionEvent):
            self.out.line(f"  [permission] {event.title}: {event.option}", "dim")

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals = signal.SIGINT) -> None:
        if self.interrupted.is_set():
            # Second Ctrl+C: leave now. Every event is already fsync'd; the next run closes the iteration.
            if self.agent is not None:
                self.agent.kill_now()
            hooks_mod.kill_running()  # a hook's group is its own session: it would outlive us
            os._exit(EXIT_INTERRUPTED)
        self.interrupted.set()
        self._interrupt_reason = "interrupted by the user" if sig == signal.SIGINT else f"interrupted by {sig.name}"
        self.out.line("interrupting: cancelling the turn and committing what exists (Ctrl+C again to quit now)", "warn")
        if self.agent is not None and self._turn_running:
            asyncio.get_running_loop().create_task(self.agent.cancel())

    # -- output ---------------------------------------------------------------------------------

    def _headline(self, state: State, attempt: Attempt) -> str:
        if attempt.kind == "planning":
            return f"#{attempt.n} planning"
        task = state.in_progress() or _next_task(state)
        what = f" | {task.id}: {task.content}" if task else ""
        retry = " (retry)" if self._failure_text else ""
        return f"#{attempt.n}{retry}{what}"

    def _footer(self, before: State, after: State, attempt: Attempt) -> None:
        done = sum(1 for t in after.tasks.values() if t.status == "completed")
        parts = [
            f"#{attempt.n} {attempt.outcome}",
            prompt.duration_text(attempt.duration),
            f"tasks {done}/{len(after.tasks)} done",
        ]
        usage = attempt.usage or {}
        if usage.get("total_tokens"):
            parts.append(f"{usage['total_tokens']:,} tokens")
        if usage.get("cost") is not None:
            parts.append(f"cost {usage['cost']:.4f} {usage.get('currency') or ''}".rstrip())
        style = "ok" if attempt.outcome == "ok" else "fail"
        self.out.line("=== " + " | ".join(parts), style)
        if attempt.error:
            self.out.line(f"    {attempt.error}", style)

    def _final(self, reason: str) -> None:
        self.out.line(f"stopped: {reason}. History: git log {self.s.branch}", "head")


def _next_task(state: State) -> Task | None:
    from iteratr.session.ops import task_next

    return task_next(state)[0]
