"""The life cycle every scripted model server shares: an HTTP server on 127.0.0.1 (a random port) served from a
daemon thread, started and stopped as a context manager. A subclass says how to build its server (:meth:`bind`)."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self


class LocalServer:
    """Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def bind(self) -> ThreadingHTTPServer:
        """A server bound to ``("127.0.0.1", 0)`` with this server's handler, not yet serving."""
        raise NotImplementedError

    def start(self) -> Self:
        server = self.bind()
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the model server is not running")
        return int(self._server.server_address[1])
