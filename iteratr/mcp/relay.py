"""One MCP server for a whole run, reached through a relay that starts in milliseconds.

The agent starts the MCP servers of ``session/new`` with each session, that is once per iteration, and the SDK
takes about 0.6 s of CPU to import: more than the ``iteratr tool`` calls of a typical iteration cost together.
So the build starts one listener with the agent (``iteratr mcp --listen PATH``, from ``iteratr.agent.mcp_servers``),
which binds a Unix socket in a private directory, imports the SDK once and serves every connection with the same
server code as ``iteratr mcp`` on stdio. What the agent starts each iteration is ``iteratr mcp`` with
``ITERATR_MCP_SOCKET=PATH``: a relay that imports only ``socket`` and ``threading`` and copies bytes between its
stdio and the socket. Where the socket cannot be reached (no listener, or it died), the relay serves the session
itself, as ``iteratr mcp`` does without the variable: slower to start, never absent.

The listener binds and listens first, and imports the SDK only when the first relay connects: a relay connects at
once and its first message waits in the socket's queue, and an agent that never starts MCP servers costs the run a
Python start, not the SDK. It exits when its stdin (a pipe from the build) reaches end of file: the build closed it,
or died, so it never outlives the run.
"""

from __future__ import annotations

import contextlib
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

    from mcp.server.lowlevel import Server

    from iteratr.session.store import Store

CHUNK = 65536


def relay(path: str) -> bool:
    """Copy stdin to the socket at ``path`` and the socket to stdout until either ends; False if it cannot connect."""
    import socket
    import threading

    sock = _connect(path)
    if sock is None:
        return False

    def upstream() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(0, CHUNK):
                sock.sendall(chunk)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)  # the agent closed our stdin: the server's connection ends

    threading.Thread(target=upstream, daemon=True).start()
    with contextlib.suppress(OSError):
        while chunk := sock.recv(CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(1, view) :]
    sock.close()
    return True


def _connect(path: str, patience: float = 5.0) -> socket.socket | None:
    """A connection to the listener; None if there is none. While its private directory exists the build has
    started it, so a socket not there yet (the listener is still starting) is waited for, briefly; a socket that
    refuses is a listener gone."""
    import socket
    import time

    deadline = time.monotonic() + patience
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except FileNotFoundError:  # not bound yet, or no listener at all
            sock.close()
        except OSError:  # refused: the listener is gone (its socket outlived it)
            sock.close()
            return None
        if not os.path.isdir(os.path.dirname(path) or ".") or time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def listen(path: str) -> int:
    """``iteratr mcp --listen PATH``: serve every connection to ``PATH`` until stdin ends."""
    import socket
    import threading

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError as exc:
        # A path the socket cannot take (longer than AF_UNIX allows, under a long TMPDIR): the private directory goes
        # too, so that each relay serves by itself at once instead of waiting for a socket that will never come.
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))  # only if empty
        from iteratr.errors import IteratrError

        raise IteratrError(f"cannot listen on {path}: {exc.strerror or exc}; the relays serve by themselves") from None
    sock.listen(16)  # first of all: relays connect at once, and wait in the queue while the SDK loads

    def exit_with_the_build() -> None:
        with contextlib.suppress(OSError):
            sys.stdin.buffer.read()
        # Every write is already on disk, under the store's lock: nothing to flush. The socket and its private
        # directory go (also after a build killed with SIGKILL, which never cleans up): a relay then serves by itself.
        with contextlib.suppress(OSError):
            os.unlink(path)
            os.rmdir(os.path.dirname(path))  # only if empty: never a directory holding anything else
        os._exit(0)

    threading.Thread(target=exit_with_the_build, daemon=True).start()
    # The SDK is loaded for the first connection, not before: an agent that never starts its MCP servers (or a run
    # that ends first) costs this process a Python start, not the SDK's import.
    first, _ = sock.accept()
    from iteratr.mcp import server

    store = server.open_store()
    import anyio

    anyio.run(_serve_all, sock, store, first)
    return 0


async def _serve_all(sock: socket.socket, store: Store, first: socket.socket) -> None:
    import anyio
    import anyio.to_thread

    from iteratr.mcp import server

    app = server.build(store)
    async with anyio.create_task_group() as group:
        conn = first
        while True:
            group.start_soon(_serve_one, app, conn)
            conn, _ = await anyio.to_thread.run_sync(sock.accept, abandon_on_cancel=True)


async def _serve_one(app: Server[object], conn: socket.socket) -> None:
    """One relay's connection, served as ``iteratr mcp`` serves its stdio; its failure ends it alone."""
    import socket

    import anyio
    from mcp.server.stdio import stdio_server

    reader = conn.makefile("r", encoding="utf-8", errors="replace", newline="\n")
    writer = conn.makefile("w", encoding="utf-8", newline="\n")
    try:
        async with stdio_server(anyio.wrap_file(reader), anyio.wrap_file(writer)) as (read_stream, write_stream):
            await app.run(read_stream, write_stream, app.create_initialization_options())
    except Exception:
        pass
    finally:
        # The files hold the socket open past conn.close(): shut it down, so that the relay sees the end at once.
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        for part in (reader, writer, conn):
            with contextlib.suppress(OSError):
                part.close()
