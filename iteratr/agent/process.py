"""The agent's process: started in its own session, its stderr appended to a log, stopped with escalation.

No protocol here: ``agent.protocol`` speaks ACP over this process's pipes, and ``agent.runner`` joins
the two. The process starts through ``iteratr.procs`` in a new session, so it leads its own process
group: a kill takes the agent's shells and servers too, and the terminal's Ctrl+C reaches only
iteratr, which cancels politely. Each start is marked in the log, so that an error message can say
what this process (not an earlier one) wrote on stderr.

Its stderr is a pipe that iteratr copies, in chunks, into ``agent.log`` (``agent.agent_log``), which is
rotated with a bound: given the file itself, an agent could write past any bound. Copying it also lets iteratr
mask secret-looking environment values on the way (``iteratr.secrets``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from iteratr import procs
from iteratr.agent.agent_log import AgentLog
from iteratr.agent.events import AgentStartError

STDERR_CHUNK = 64 * 1024


class AgentProcess:
    def __init__(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stderr_log: Path,
        line_limit: int,
        close_timeout: float,
    ) -> None:
        self.argv = list(argv)
        self.cwd = Path(cwd)
        self.env = dict(env)
        self.stderr_log = Path(stderr_log)
        self.log = AgentLog(self.stderr_log)
        self._line_limit = line_limit
        self._close_timeout = close_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._exited: asyncio.Future[int] | None = None
        self._log_offset = 0
        self._stderr_pump: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        """The agent's pid, which is also its process group id."""
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def exited(self) -> asyncio.Future[int]:
        """Done when the process has exited: wait on it alongside a request to notice a death at once."""
        assert self._exited is not None, "the process is not started"
        return self._exited

    @property
    def pipes(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """(its stdout, its stdin): the ACP connection's two ends."""
        assert self._proc is not None and self._proc.stdout is not None and self._proc.stdin is not None
        return self._proc.stdout, self._proc.stdin

    async def start(self) -> None:
        """Start the process, marking the start in the log. Raises AgentStartError if it cannot run."""
        if not self.argv:
            raise AgentStartError("no agent command given", hint="set --agent, ITERATR_AGENT or config key agent")
        self.stderr_log.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        self.log.write(f"--- iteratr {stamp}: starting {shlex.join(self.argv)}\n".encode())
        with contextlib.suppress(OSError):
            self._log_offset = self.stderr_log.stat().st_size
        try:
            proc = await procs.start_async(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                limit=self._line_limit,
            )
        except FileNotFoundError:
            raise AgentStartError(
                f"agent command not found: {self.argv[0]}",
                hint="install it, or set --agent / ITERATR_AGENT / config key agent",
            ) from None
        except OSError as exc:
            raise AgentStartError(f"cannot run agent command {self.argv[0]}: {exc.strerror}") from None
        self._proc = proc
        self._exited = asyncio.ensure_future(proc.wait())
        assert proc.stderr is not None
        self._stderr_pump = asyncio.ensure_future(self._pump(proc.stderr))

    def move_log(self, path: Path) -> None:
        """Append from now on to ``path``, and move there what the old log holds (a build's start-up log, written
        before the session's directory may exist); the old file is removed."""
        old = self.stderr_log
        self.log.flush()
        new = AgentLog(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            new.write(old.read_bytes())
            old.unlink()
        self.stderr_log, self.log = Path(path), new
        with contextlib.suppress(OSError):
            self._log_offset = path.stat().st_size

    async def _pump(self, stderr: asyncio.StreamReader) -> None:
        """Copy the agent's stderr into the rotated log, one bounded chunk at a time, until EOF."""
        while True:
            chunk = await stderr.read(STDERR_CHUNK)
            if not chunk:
                self.log.flush()
                return
            self.log.write(chunk, stream="stderr")  # secrets masked, even one split across two reads

    async def _end_pump(self) -> None:
        """Let the pump copy the agent's last words; a process it left behind may hold the pipe open: stop."""
        pump, self._stderr_pump = self._stderr_pump, None
        if pump is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait({pump}, timeout=0.5)
        if not pump.done():
            pump.cancel()
        with contextlib.suppress(BaseException):
            await pump

    async def wait_exited(self, timeout: float) -> bool:
        """Give a dying process ``timeout`` seconds to be reaped; True if it has exited."""
        if self._exited is None:
            return True
        done, _ = await asyncio.wait({self._exited}, timeout=timeout)
        if done and self._stderr_pump is not None:  # its last words, copied before anyone reads the log
            await asyncio.wait({self._stderr_pump}, timeout=min(timeout, 0.5))
        return bool(done)

    async def stop(self) -> None:
        """EOF on stdin, wait, then SIGTERM and SIGKILL the whole group (``procs.stop_async``). Never hangs."""
        proc, exited = self._proc, self._exited
        self._proc, self._exited = None, None
        if proc is None or exited is None:
            return
        try:
            if proc.returncode is None and proc.stdin is not None:
                with contextlib.suppress(Exception):
                    proc.stdin.close()
            done, _ = await asyncio.wait({exited}, timeout=self._close_timeout)
            if not done:
                await procs.stop_async(proc, grace=self._close_timeout)
            # Whatever the agent left behind in its group (a dev server, a stuck shell) goes too.
            procs.signal_group(proc.pid, signal.SIGKILL)
            await self._end_pump()
        finally:
            if not exited.done():
                exited.cancel()

    def kill_now(self) -> None:
        """SIGKILL the process group at once (a second Ctrl+C, just before iteratr exits)."""
        if self._proc is not None:
            procs.signal_group(self._proc.pid, signal.SIGKILL)

    async def kill(self) -> None:
        """SIGKILL the process group and wait (briefly) for the process to be reaped."""
        self.kill_now()
        await self.wait_exited(self._close_timeout)

    def exit_words(self) -> str:
        """How the process ended, for messages: "exited with status 3", "was killed by SIGKILL"."""
        returncode = self.returncode
        if returncode is None:
            return "is still running"
        if returncode < 0:
            with contextlib.suppress(ValueError):
                return f"was killed by {signal.Signals(-returncode).name}"
            return f"was killed by signal {-returncode}"
        return f"exited with status {returncode}"

    def stderr_tail(self, lines: int = 5, limit: int = 500) -> str:
        """The last stderr lines of this process (since its start), on one line, for error messages."""
        try:
            with self.stderr_log.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset if self._log_offset <= size else 0, size - 16384))
                data = log.read().decode("utf-8", errors="replace")
        except OSError:
            data = ""
        # iteratr's own lines ("iteratr: ...") are context, not the agent's words: quote the agent first.
        own = [line.strip() for line in data.splitlines() if line.strip() and not line.startswith("iteratr: ")]
        tail = (own or [line.strip() for line in data.splitlines() if line.strip()])[-lines:]
        if not tail:
            return f"no stderr output (log: {self.stderr_log})"
        # Raw stderr can carry a credential: it stays in agent.log (git-ignored), never in an event or commit.
        return f"its stderr ({len(tail)} last line(s)) is in {self.stderr_log}"
