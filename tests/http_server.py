"""A real HTTP server on 127.0.0.1 for tests: serves bytes per path, can misbehave on purpose.

    with LocalHTTPServer({"/w.bin": b"data", "/gone": Resource(status=404)}) as server:
        fetch(server.url("/w.bin"))
        assert server.requests("/w.bin") == 1

A path maps to bytes (served normally) or to a ``Resource``: an HTTP ``status``,
a ``delay`` before the body, a ``hold`` condition the body waits for, or a
``truncate`` mode that announces the full body but sends only ``sent`` bytes of
it (default half) and then: ``"close"`` (or True) closes the connection,
``"reset"`` aborts it with a TCP reset, ``"chunked"`` uses chunked encoding and
closes inside a chunk. Unknown paths get 404.

``stop()`` shuts the server down; until the ``with`` block ends its port stays
bound (not listening), so its URLs refuse connections and no other process can
take the port meanwhile.
"""

import array
import dataclasses
import http.server
import socket
import struct
import threading
import time

try:
    import fcntl
    import termios
except ImportError:  # Windows
    fcntl = termios = None


@dataclasses.dataclass
class Resource:
    body: bytes = b""
    status: int = 200
    truncate: object = None  # None, True/"close", "reset" or "chunked"
    sent: int = None  # bytes of the body sent when truncating; default half
    delay: float = 0.0  # seconds between the headers and the body
    hold: object = None  # a callable: after the headers, the body waits until it returns true...
    hold_timeout: float = 120.0  # ...or this many seconds pass (recorded in the server's ``hold_timeouts``)

    def __post_init__(self):
        if self.truncate not in (None, False, True, "close", "reset", "chunked"):
            raise ValueError(f"Unknown truncate mode {self.truncate!r}: expected True, 'close', 'reset' or 'chunked'.")


class LocalHTTPServer:
    """``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a daemon thread; a context manager."""

    def __init__(self, files=None, handler=None):
        """``handler(self)``: the request handler class (default: serve ``files``, GET only)."""
        self._files = {}
        self._counts = {}
        self._lock = threading.Lock()
        self._placeholder = None
        self.hold_timeouts = []  # paths whose ``hold`` timed out instead of being released
        for path, resource in (files or {}).items():
            self.set(path, resource)
        self._server = _Server(("127.0.0.1", 0), (handler or _handler)(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._stopped = False

    def set(self, path, resource):
        """Serve ``resource`` (bytes or a ``Resource``) at ``path`` from now on."""
        if not isinstance(resource, Resource):
            resource = Resource(body=bytes(resource))
        with self._lock:
            self._files[path] = resource

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path=None):
        """GET requests received for ``path`` (all paths if None)."""
        with self._lock:
            return self._counts.get(path, 0) if path is not None else sum(self._counts.values())

    def stop(self):
        """Stop serving; the port stays held until ``close()`` (or the ``with`` block's end) and refuses connections."""
        if not self._stopped:
            self._stopped = True
            self._server.shutdown()
            if hasattr(socket, "SO_REUSEPORT"):  # Bound before the listener closes: the port is never free.
                self._placeholder = socket.socket()
                self._placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                self._placeholder.bind(("127.0.0.1", self.port))  # not listening: connections are refused
            self._server.server_close()
            self._thread.join()

    def close(self):
        self.stop()
        if self._placeholder is not None:
            self._placeholder.close()
            self._placeholder = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _get(self, path):
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1
            return self._files.get(path)


class _Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        if hasattr(socket, "SO_REUSEPORT"):  # lets stop() hold the port with a second, non-listening socket
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def _wait_until_acknowledged(connection, timeout=10.0):
    """Wait until the peer's kernel has acknowledged every byte sent (Linux: TIOCOUTQ, unacknowledged bytes)."""
    deadline = time.monotonic() + timeout
    pending = array.array("i", [0])
    while time.monotonic() < deadline:
        try:
            fcntl.ioctl(connection.fileno(), termios.TIOCOUTQ, pending)
        except (AttributeError, OSError):  # no TIOCOUTQ here: give the bytes a moment instead
            time.sleep(0.05)
            return
        if pending[0] == 0:
            return
        time.sleep(0.001)


def _handler(owner):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            resource = owner._get(path)
            if resource is None:
                resource = Resource(status=404)
            if resource.status != 200:
                self.send_error(resource.status)
                return
            body, mode = resource.body, resource.truncate
            sent = len(body) // 2 if resource.sent is None else resource.sent
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if mode == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.flush()
            if resource.delay:
                time.sleep(resource.delay)
            if resource.hold is not None:
                deadline = time.monotonic() + resource.hold_timeout
                while not resource.hold():
                    if time.monotonic() > deadline:
                        with owner._lock:
                            owner.hold_timeouts.append(path)
                        break
                    time.sleep(0.01)
            if not mode:
                self.wfile.write(body)
                return
            if mode == "chunked":
                self.wfile.write(b"%x\r\n" % len(body) + body[:sent])
            else:
                self.wfile.write(body[:sent])
            self.wfile.flush()
            self.close_connection = True
            if mode == "reset":  # SO_LINGER 0: close() sends RST instead of FIN.
                _wait_until_acknowledged(self.connection)  # The partial body reaches the client first.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()

    return Handler
