"""A TCP proxy that can cut a server off: what an object store whose network drops looks like to a client.

`FlakyProxy(upstream).start()` listens on 127.0.0.1 (an ephemeral port, `endpoint`) and pipes every
connection to `upstream` (`http://127.0.0.1:PORT`, e.g. the moto server of tests/support/s3_server.py), one
thread per direction. `cut(seconds)` starts an outage at once: every open connection is reset (RST, as a
dropped link or a restarted load balancer does), and every new one is accepted and reset at once until the
outage ends (`seconds=None`: until `restore()`). `outage_for(seconds, after)` does the same from a timer.
`resets` counts the connections it reset.
"""
from __future__ import annotations

import socket
import struct
import threading
import time
import urllib.parse

_CHUNK = 1 << 16


def _close(sock: socket.socket, reset: bool = False) -> None:
    """Shut down and close, never raising. `reset`: with RST (linger 0), not a polite FIN; a thread blocked
    reading it wakes (SHUT_RD)."""
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD if reset else socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FlakyProxy:
    """See the module docstring."""

    def __init__(self, upstream: str):
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._down_until = 0.0          # time.monotonic(); float("inf"): until restore()
        self._stopped = threading.Event()
        self.resets = 0
        self.endpoint = ""

    @property
    def host(self) -> str:
        """host:port, as `endpoint_override` takes it."""
        return urllib.parse.urlsplit(self.endpoint).netloc

    def start(self) -> "FlakyProxy":
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, name="flaky-proxy", daemon=True).start()
        return self

    def is_down(self) -> bool:
        return time.monotonic() < self._down_until

    def cut(self, seconds: float | None = None) -> None:
        """Reset every open connection, and every new one for `seconds` (None: until `restore`)."""
        with self._lock:
            self._down_until = float("inf") if seconds is None else time.monotonic() + seconds
            doomed, self._open = list(self._open), set()
            self.resets += len(doomed)
        for sock in doomed:
            _close(sock, reset=True)

    def outage_for(self, seconds: float, after: float = 0.0) -> threading.Thread:
        """`cut(seconds)` in `after` seconds, from a thread (returned, started)."""
        thread = threading.Thread(target=lambda: self._stopped.wait(after) or self.cut(seconds), daemon=True)
        thread.start()
        return thread

    def restore(self) -> None:
        self._down_until = 0.0

    def stop(self) -> None:
        self._stopped.set()
        if self._listener is not None:
            self._listener.close()
        self.cut(0)

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.is_down():
                with self._lock:
                    self.resets += 1
                _close(client, reset=True)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                _close(client, reset=True)
                continue
            with self._lock:
                self._open.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy one direction; when it ends, close both sockets (HTTP clients never half-close)."""
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open.discard(source)
            self._open.discard(sink)
        for sock in (source, sink):
            _close(sock)
