"""Ctrl+C and SIGTERM during a build: the first stops politely, the second at once.

The first signal sets ``interrupted``: the running turn is cancelled (``session/cancel``, then a kill
after the agent's grace period), and the loop records and commits the iteration as interrupted
before it exits with 130. A second signal does not wait for any of that: it kills the agent's and
the running hook's process groups (each is its own session, so it would outlive us) and exits at
once; every event is already fsync'd, and the next run closes the open iteration.

Kept apart from the loop so that tests can interrupt a run in-process (``interrupt``) without
sending a signal, and so that the ``os._exit`` lives in one small place.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from iteratr.errors import EXIT_INTERRUPTED
from iteratr.run import hooks as hooks_mod

DUPLICATE_WINDOW = 0.5  # seconds: a second signal sooner than this is the same Ctrl+C, delivered twice

if TYPE_CHECKING:
    from iteratr.agent.seam import Agent
    from iteratr.output import Printer


class Interrupts:
    def __init__(self, printer: Printer, agent: Callable[[], Agent | None]) -> None:
        self.out = printer
        self._agent = agent  # the loop's current agent, if started
        self.event = asyncio.Event()
        self.reason = "interrupted by the user"
        self.turn_running = False
        self._first = 0.0  # when the first signal came
        self._cancelling: asyncio.Task[None] | None = None  # held, so the task is not collected mid-way

    def is_set(self) -> bool:
        return self.event.is_set()

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.interrupt, sig)

    def interrupt(self, sig: signal.Signals = signal.SIGINT) -> None:
        agent = self._agent()
        now = time.monotonic()
        if self.event.is_set() and now - self._first < DUPLICATE_WINDOW:
            # `timeout` and other wrappers forward a terminal's SIGINT to the group: one Ctrl+C, twice.
            return
        if self.event.is_set():
            # Second Ctrl+C: leave now. Every event is already fsync'd; the next run closes the iteration.
            if agent is not None:
                agent.kill_now()
            hooks_mod.kill_running()  # a hook's group is its own session: it would outlive us
            os._exit(EXIT_INTERRUPTED)
        self.event.set()
        self._first = now
        self.reason = "interrupted by the user" if sig == signal.SIGINT else f"interrupted by {sig.name}"
        self.out.line("interrupting: cancelling the turn and committing what exists (Ctrl+C again to quit now)", "warn")
        if agent is not None and self.turn_running:
            self._cancelling = asyncio.get_running_loop().create_task(agent.cancel())
