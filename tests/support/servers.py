"""Start/stop lifecycle shared by the loopback test servers.

Two kinds: :class:`ThreadedServer` answers HTTP from a thread of this process (stand-ins we
write), :class:`SubprocessServer` runs an emulator as a child process. Subclasses add what
they serve; both are context managers whose ``start()`` returns the server itself.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Self

from tests.support.ports import LOOPBACK, free_port, port_is_open
from tests.support.process import ManagedProcess


class _HTTPServer(ThreadingHTTPServer):
    # Clients that pool connections (botocore keeps up to 32) open many at once. Past the
    # default listen backlog of 5 the kernel drops the surplus, and those connections are
    # reset a second later, mid-request (seen as lost SES answers in bench/run.py).
    request_queue_size = 128


class ThreadedServer:
    """A ``ThreadingHTTPServer`` on ``127.0.0.1:port``, served from a daemon thread.

    Handlers reach the server object as ``self.server.owner``. ``port=None`` takes a free port
    now, ``port=0`` lets the OS pick one at the first ``start()``; either way a restart after
    ``stop()`` listens on the same port, so clients configured with it keep working.
    """

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], thread_name: str, port: int | None = None
    ) -> None:
        self.port = free_port() if port is None else port
        self._handler = handler
        self._thread_name = thread_name
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        """Listen and serve; a no-op while already running."""
        if self._httpd is not None:
            return self
        httpd = _HTTPServer((LOOPBACK, self.port), self._handler)
        httpd.daemon_threads = True
        httpd.owner = self  # type: ignore[attr-defined]
        self.port = httpd.server_port
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},  # quick shutdown()
            name=self._thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SubprocessServer:
    """An HTTP emulator run as a :class:`ManagedProcess` on ``127.0.0.1:port``.

    The subclass builds ``_process`` (its argv needs ``self.port``) and says in ``_probe()``
    when the emulator answers; ``start()`` waits until it does.
    """

    start_timeout_s: ClassVar[float] = 30.0
    _process: ManagedProcess

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout_s: float | None = None) -> Self:
        self._process.start(self._answers, self.start_timeout_s if timeout_s is None else timeout_s)
        return self

    def stop(self) -> None:
        self._process.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self) -> str:
        return self._process.log_tail()

    def _answers(self) -> bool:
        if not port_is_open(LOOPBACK, self.port):
            return False
        try:
            return self._probe()
        except OSError:
            return False

    def _probe(self) -> bool:
        """One HTTP request that succeeds only once the emulator is fully up."""
        raise NotImplementedError
