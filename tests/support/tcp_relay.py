"""A TCP relay between a worker and the Pub/Sub emulator, standing in for Google's front end.

Two things the real service does that the emulator alone does not:

* **A dead client's streams end.** The emulator (0.8.x, as gcloud ships it) cannot cancel a
  call: its RST_STREAM handler fails (``NoSuchMethodError`` in its log), and a streaming pull
  whose client was killed, or cancelled it, stays registered. The emulator goes on handing
  that dead stream a share of every delivery; each is lost for an ack deadline and counted
  as a delivery attempt, so after two kills requests took minutes and a dozen attempts to
  reach the live worker. With ``end_streams=True`` the relay forwards whole HTTP/2 frames,
  tracks the client's open streams, and half-closes them (an empty DATA frame with
  END_STREAM), which the emulator handles, when the client's connection goes or when the
  client cancels one it has not half-closed (a streaming pull on shutdown): the streams end
  and redeliveries go to live subscribers only, as with the real service.
* **An outage without losing the topology.** The emulator restarts empty; the real service
  never comes back without its topics. ``close()`` refuses and cuts every connection until
  ``open()``, so an outage test can restart the emulator and recreate the topology before the
  worker can reach it again: to the worker, one outage of the length the relay was closed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tests.support.ports import LOOPBACK, free_port

_CHUNK = 65536


class TcpRelay:
    def __init__(
        self, upstream_port: int, port: int | None = None, *, end_streams: bool = False
    ) -> None:
        self.upstream_port = upstream_port
        self.end_streams = end_streams
        self.port = port or free_port()
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._listener = socket.create_server((LOOPBACK, self.port))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="tcp-relay", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        """Refuse new connections and cut the current ones (both sides)."""
        self._open.clear()
        with self._lock:
            pairs = list(self._pairs)
        for client, upstream in pairs:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.close()
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> TcpRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection((LOOPBACK, self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, upstream)
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump_up, args=(pair,), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(pair,), daemon=True).start()

    def _pump_up(self, pair: tuple[socket.socket, socket.socket]) -> None:
        """Client -> emulator; when the client goes, end the emulator side cleanly."""
        client, upstream = pair
        frames = _Http2Frames() if self.end_streams else None
        try:
            while data := client.recv(_CHUNK):
                if frames is None:
                    upstream.sendall(data)
                else:
                    upstream.sendall(frames.complete(data))
        except OSError:
            pass
        if frames is not None and self._open.is_set():
            # The client died: half-close its open streams (an empty DATA frame with
            # END_STREAM), as a client that ends its calls would, and give the emulator a
            # moment to finish them before the connection goes.
            with contextlib.suppress(OSError):
                upstream.sendall(frames.end_open_streams())
                time.sleep(1.0)
        # FIN to the emulator; _pump_down keeps reading (and dropping) until it closes too.
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _pump_down(self, pair: tuple[socket.socket, socket.socket]) -> None:
        """Emulator -> client; goes on draining the emulator after the client is gone."""
        client, upstream = pair
        client_alive = True
        try:
            while data := upstream.recv(_CHUNK):
                if client_alive:
                    try:
                        client.sendall(data)
                    except OSError:
                        client_alive = False
        except OSError:
            pass
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.close()
        with self._lock:
            self._pairs.discard(pair)


_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM = 0x0, 0x1, 0x3
_END_STREAM = 0x1


class _Http2Frames:
    """Cuts a client's HTTP/2 byte stream at frame boundaries and tracks its open streams."""

    def __init__(self) -> None:
        self._buffer = b""
        self._preface_seen = False
        self.open_streams: set[int] = set()

    def complete(self, data: bytes) -> bytes:
        """Append ``data``; return the complete frames (and preface) received so far."""
        self._buffer += data
        out = bytearray()
        if not self._preface_seen:
            if len(self._buffer) < len(_PREFACE):
                return b""
            out += self._buffer[: len(_PREFACE)]
            self._buffer = self._buffer[len(_PREFACE) :]
            self._preface_seen = True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                break
            kind, flags = self._buffer[3], self._buffer[4]
            stream = int.from_bytes(self._buffer[5:9], "big") & 0x7FFFFFFF
            frame = self._buffer[: 9 + length]
            self._buffer = self._buffer[9 + length :]
            if kind == _RST_STREAM and stream in self.open_streams:
                # A client cancelling a call it has not half-closed (a streaming pull on
                # shutdown): half-close it instead, the one ending the emulator handles.
                frame = _end_stream(stream)
            if kind == _HEADERS and stream:
                self.open_streams.add(stream)
            if (kind in (_DATA, _HEADERS) and flags & _END_STREAM) or kind == _RST_STREAM:
                self.open_streams.discard(stream)
            out += frame
        return bytes(out)

    def end_open_streams(self) -> bytes:
        return b"".join(_end_stream(stream) for stream in sorted(self.open_streams))


def _end_stream(stream: int) -> bytes:
    """An empty DATA frame with END_STREAM: the client half-closes ``stream``."""
    return b"\x00\x00\x00" + bytes([_DATA, _END_STREAM]) + stream.to_bytes(4, "big")
