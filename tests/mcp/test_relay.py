"""The run's one MCP server and the relays to it: ``iteratr mcp --listen PATH`` imports the SDK once and serves
every relay; ``iteratr mcp`` with ``ITERATR_MCP_SOCKET`` relays to it without importing the SDK, and serves by
itself when the listener is not there. The listener exits when its stdin closes."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from tests.conftest import ITERATR_CMD, run_cli

SDK_LIBRARY = b"pydantic_core"  # mapped by every process that imported the MCP SDK


def child_mcp() -> int:
    """The pid of this process's `iteratr mcp` child (the relay the client started)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if ppid == os.getpid() and argv[-2:] == [b"mcp", b""]:
            return int(entry.name)
    raise AssertionError("no iteratr mcp child")


def imported_the_sdk(pid: int) -> bool:
    return SDK_LIBRARY in Path(f"/proc/{pid}/maps").read_bytes()


def add_task(cwd: Path, content: str, **env: str) -> tuple[str, bool]:
    """Add a task through a fresh `iteratr mcp`: its answer, and whether that process imported the SDK."""
    params = StdioServerParameters(
        command=ITERATR_CMD[0],
        args=[*ITERATR_CMD[1:], "mcp"],
        env={**os.environ, "ITERATR_SESSION": "S", **env},
        cwd=str(cwd),
    )
    seen: dict[str, Any] = {}

    async def main() -> None:
        async with Client(params, read_timeout_seconds=60) as client:
            result = await client.call_tool("task_add", {"content": content})
            seen["answer"] = "".join(getattr(c, "text", "") for c in result.content)
            seen["sdk"] = imported_the_sdk(child_mcp())

    anyio.run(main)
    return seen["answer"], seen["sdk"]


def test_relays_reach_the_one_server_of_the_run(tmp_path: Path) -> None:
    (tmp_path / "private").mkdir()  # as the build makes one (mkdtemp) for the socket
    path = str(tmp_path / "private" / "socket")
    listener = subprocess.Popen(
        [*ITERATR_CMD, "mcp", "--listen", path],
        cwd=tmp_path,
        env={**os.environ, "ITERATR_SESSION": "S"},
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        while not Path(path).exists():  # bound: it is listening (and waits for a first connection)
            assert listener.poll() is None, listener.stderr.read() if listener.stderr else ""
            time.sleep(0.01)  # a poll's pace, on a shared machine
        assert not imported_the_sdk(listener.pid)  # not before an agent connects
        first = add_task(tmp_path, "through the first relay", ITERATR_MCP_SOCKET=path)
        second = add_task(tmp_path, "through the second relay", ITERATR_MCP_SOCKET=path)
        assert first == ("added TAS-1 [P2] remaining: through the first relay", False)
        assert second == ("added TAS-2 [P2] remaining: through the second relay", False)
        assert imported_the_sdk(listener.pid) and listener.poll() is None
    finally:
        assert listener.stdin is not None
        listener.stdin.close()  # the build closing the pipe, or dying
        code = listener.wait(timeout=30)
    assert code == 0, listener.stderr.read() if listener.stderr else ""
    assert not (tmp_path / "private").exists()  # its socket and directory went with it
    # No listener: the relay serves by itself, and so pays for the SDK.
    assert add_task(tmp_path, "served by itself", ITERATR_MCP_SOCKET=path) == (
        "added TAS-3 [P2] remaining: served by itself",
        True,
    )
    listing = run_cli("tool", "task-list", "-n", "S", cwd=tmp_path).stdout
    assert listing.count("remaining") == 4  # the group's header and three tasks


def test_a_listener_that_cannot_bind_says_why_and_leaves_no_directory_to_wait_on(tmp_path: Path) -> None:
    """A socket path longer than AF_UNIX takes (a long TMPDIR): a one-line error, no crash report, and the private
    directory removed, so that a relay serves by itself at once rather than wait for the socket."""
    private = tmp_path / ("d" * 110) / "private"
    private.mkdir(parents=True)
    path = str(private / "socket")
    state = tmp_path / "state"
    env = {**os.environ, "ITERATR_SESSION": "S", "XDG_STATE_HOME": str(state)}
    done = subprocess.run(
        [*ITERATR_CMD, "mcp", "--listen", path], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True
    )
    assert done.returncode == 1, done
    assert done.stderr.decode().startswith(f"iteratr: error: cannot listen on {path}: AF_UNIX path too long"), done
    assert not (state / "iteratr" / "crash.log").exists()
    assert not private.exists()
