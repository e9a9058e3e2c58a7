"""The local Hub's HTTP/1.1 server: one selector thread for sockets, a bounded pool for requests.

Why not ``ThreadingHTTPServer``: it gives every connection a thread for as long as the
connection lives, with no timeout, so 3000 half-sent requests made 3000 threads, and a
``Content-Length`` larger than its body waited forever. Here

* one thread (the caller of ``serve_forever``) accepts connections and reads request heads
  without blocking; an idle or half-sent connection costs a socket and a small buffer, never a
  thread. A head must arrive within ``header_timeout`` (else 408 and close), an idle keep-alive
  connection is closed after ``keepalive_timeout``;
* a complete head is handed to a pool of at most ``workers`` threads, which run the route with
  a socket timeout of ``body_timeout`` on every read and write of the body;
* beyond ``max_connections`` open sockets (fewer if the file limit is lower), a new connection
  makes room: the oldest idle keep-alive connection is closed, else the oldest one still
  sending its head gets 503 with ``Retry-After`` (real overload only). Requests waiting for a
  worker wait in a queue (bounded by the connections): waiting, not refusing;
* framing is strict (``framing``): request line ≤ ``max_request_line`` (414), head ≤
  ``max_header_bytes`` and ≤ ``max_headers`` lines (431), one ``Content-Length`` and never with
  ``Transfer-Encoding``, valid chunk sizes, HTTP/1.0 or 1.1 only (400); unknown methods get
  405 with ``Allow``.

Every request gets an answer: a route's ``ApiError`` as the Hub's JSON error, a full disk as
507, and anything else (a bug, logged) as a 500 on a connection that is then closed. Routing is
on the raw path (spec §1); HEAD always carries the true ``Content-Length``. Absolute URLs are
built from the server's own origins (``public_url`` and, bound to loopback, the loopback
spellings), never from whatever ``Host`` a client sent.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import logging
import queue
import secrets
import selectors
import signal
import socket
import threading
import time
import traceback
from pathlib import Path
from urllib.parse import urlsplit

from hubtool.hub import cas, discussions, gating, history, pages, routes, transfer
from hubtool.hub.framing import (
    HEAD_END,
    ChunkedBody,
    Connection,
    HttpError,
    SizedBody,
    SocketReader,
    drain,
    error_response,
    parse_head,
    response_head,
    target_path,
)
from hubtool.hub.limits import HubLimits
from hubtool.hub.protocol import (
    ApiError,
    Request,
    Response,
    disk_full,
    insufficient_storage,
    parse_query,
)
from hubtool.hub.router import Route, dispatch
from hubtool.hub.service import HubService

# Every route, in matching order: the API, then file transfer (resolve, LFS, git), then the
# model pages (whose /NS/NAME pattern would shadow nothing before it).
ROUTE_TABLE: tuple[Route, ...] = (
    *routes.route.entries,
    *discussions.route.entries,
    *history.route.entries,
    *gating.route.entries,
    *transfer.route.entries,
    *cas.route.entries,
    *pages.route.entries,
)

log = logging.getLogger(__name__)

_LINGER_SECONDS = 10.0  # after an early answer, read what the client still sends, then close
_LINGER_IDLE = 1.0  # … until it has sent nothing for this long
_WORKER_IDLE = 30.0  # an idle worker thread exits after this long


# -- the server -------------------------------------------------------------------------------
class HubHTTPServer:
    """Serve ``service`` on ``address``; ``serve_forever`` in one thread, ``shutdown`` elsewhere."""

    def __init__(
        self,
        address: tuple[str, int],
        service: HubService,
        public_url: str | None = None,
    ) -> None:
        self.service = service
        self.limits = service.limits  # one set of limits for the server and the routes
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request served
        self._requests_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(min(self.limits.max_connections, socket.SOMAXCONN))
            self.socket.setblocking(False)
        except OSError:
            self.socket.close()
            raise
        self.server_address = self.socket.getsockname()[:2]
        self.server_port = int(self.server_address[1])
        self.public_url, self.origins = _origins(str(self.server_address[0]), self.server_port)
        if public_url:
            self.public_url = public_url.rstrip("/")
            self.origins[urlsplit(self.public_url).netloc.lower()] = self.public_url
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._returned: collections.deque[Connection] = collections.deque()
        self._idle: dict[Connection, None] = {}  # in the selector, oldest first
        self._open = 0
        self._open_lock = threading.Lock()
        self._accepting = False
        self._accept_paused_until = 0.0
        self.max_connections = _connection_cap(self.limits.max_connections)
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._tasks: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        self._workers: set[threading.Thread] = set()
        self._waiting = 0  # workers blocked on the task queue
        self._pool_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.public_url

    def count_request(self, method: str, path: str) -> None:
        with self._requests_lock:
            self.requests.append((method, path))
            if len(self.requests) > 10_000:
                del self.requests[:5_000]

    def origin_for(self, host_header: str | None) -> str:
        """The origin to build absolute URLs with: the client's, if it is one of ours."""
        return self.origins.get((host_header or "").strip().lower(), self.public_url)

    # -- the selector thread ----------------------------------------------------------------
    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stop.clear()
        self._stopped.clear()
        sel = self._selector
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._set_accepting(True)
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(self._next_timeout(poll_interval)):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wakeups()
                    else:
                        self._on_readable(key.data)
                self._take_returned()
                self._expire()
                self._manage_capacity()
        finally:
            for key in list(sel.get_map().values()):
                sel.unregister(key.fileobj)
            for conn in list(self._idle):
                self._close(conn)
            self._idle.clear()
            self._accepting = False
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever`` (from another thread) and wait until it has returned."""
        self._stop.set()
        self._wake()
        self._stopped.wait(10)

    def server_close(self) -> None:
        self.shutdown()
        self.socket.close()
        with self._pool_lock:
            workers = list(self._workers)
        for _ in workers:
            self._tasks.put(None)
        deadline = time.monotonic() + 5  # requests in flight finish on their own (daemons)
        for worker in workers:
            worker.join(timeout=max(deadline - time.monotonic(), 0))
        while self._returned:
            self._close(self._returned.popleft())
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
            self._wake_w.send(b"x")

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _next_timeout(self, poll_interval: float) -> float:
        if not self._idle:
            return poll_interval
        soonest = min(conn.deadline for conn in self._idle)
        return max(0.0, min(poll_interval, soonest - time.monotonic()))

    def _set_accepting(self, on: bool) -> None:
        if on and not self._accepting:
            self._selector.register(self.socket, selectors.EVENT_READ, "listen")
        elif not on and self._accepting:
            self._selector.unregister(self.socket)
        self._accepting = on

    def _accept(self) -> None:
        while True:
            if self._open >= self.max_connections and not self._evict_one():
                self._set_accepting(False)  # every slot is busy in a worker: wait for one
                return
            try:
                sock, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of file descriptors, say: pause, do not spin
                if time.monotonic() > self._accept_paused_until + 60:
                    log.warning("Cannot accept connections for now: %s", exc)
                self._accept_paused_until = time.monotonic() + 0.5
                self._set_accepting(False)
                return
            sock.setblocking(False)
            with self._open_lock:
                self._open += 1
            conn = Connection(sock, addr)
            self._watch(conn, self.limits.header_timeout)

    def _watch(self, conn: Connection, timeout: float) -> None:
        conn.deadline = time.monotonic() + timeout
        self._idle[conn] = None
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _unwatch(self, conn: Connection) -> None:
        self._idle.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)

    def _on_readable(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away (a partial head has nobody left to answer)
            self._unwatch(conn)
            self._close(conn)
            return
        if not conn.buf:  # the first bytes of a request: the head must follow promptly
            conn.deadline = time.monotonic() + self.limits.header_timeout
        conn.buf += data
        self._check_head(conn)

    def _check_head(self, conn: Connection) -> None:
        buf = conn.buf
        while buf[:1] in (b"\r", b"\n"):  # stray line ends between requests
            del buf[:1]
        m = HEAD_END.search(buf)
        problem = None
        first_line = buf.find(b"\n")
        if (first_line < 0 and len(buf) > self.limits.max_request_line) or (
            first_line > self.limits.max_request_line
        ):
            problem = HttpError(
                414, f"The request line is longer than {self.limits.max_request_line:,} bytes"
            )
        elif (m is None and len(buf) > self.limits.max_header_bytes) or (
            m is not None and m.start() > self.limits.max_header_bytes
        ):
            problem = HttpError(
                431, f"The request headers are larger than {self.limits.max_header_bytes:,} bytes"
            )
        if problem is None and m is None:
            return
        self._unwatch(conn)
        if problem is not None:
            conn.buf = bytearray()
        self._submit(conn, problem)

    def _expire(self) -> None:
        now = time.monotonic()
        for conn in [c for c in self._idle if c.deadline <= now]:
            if not conn.buf and _has_pending(conn.sock):  # a request just came: not idle
                conn.deadline = now + self.limits.header_timeout
                continue
            self._unwatch(conn)  # a request started but never finished: say so, then close
            self._say_and_close(conn, ApiError(408, "Timed out waiting for the request headers"))

    def _evict_one(self) -> bool:
        """Make room for a new connection: close the oldest idle keep-alive one, else the
        oldest that has not sent a whole head (503 + Retry-After: the Hub is overloaded)."""
        victim = next((c for c in self._idle if c.served and not c.buf), None)
        if victim is None:
            victim = next(iter(self._idle), None)
        if victim is None:
            return False
        self._unwatch(victim)
        busy = ApiError(503, "The local Hub is at its connection limit; try again")
        self._say_and_close(victim, busy, {"Retry-After": "1"})
        return True

    def _say_and_close(
        self, conn: Connection, err: ApiError, headers: dict[str, str] | None = None
    ) -> None:
        """From the selector thread: answer ``err`` if a request was started, then close.

        What the client already sent is read first, so the close is not a TCP reset that
        could destroy the answer before the client reads it.
        """
        with contextlib.suppress(OSError):
            while data := conn.sock.recv(1 << 16):
                conn.buf += data
        if conn.buf:
            resp = Response.error(err)
            resp.headers.update({**(headers or {}), "Connection": "close"})
            with contextlib.suppress(OSError):
                conn.sock.send(response_head(resp, len(resp.body)) + resp.body)
                conn.sock.shutdown(socket.SHUT_WR)
        self._close(conn)

    def _manage_capacity(self) -> None:
        room = self._open < self.max_connections or bool(self._idle)
        paused = time.monotonic() < self._accept_paused_until
        self._set_accepting(room and not paused and not self._stop.is_set())

    def _take_returned(self) -> None:
        while self._returned:
            conn = self._returned.popleft()
            if self._stop.is_set():
                self._close(conn)
            else:
                self._watch(conn, self.limits.keepalive_timeout)
                if conn.buf:
                    conn.deadline = time.monotonic() + self.limits.header_timeout

    def _close(self, conn: Connection) -> None:
        with contextlib.suppress(OSError):
            conn.sock.close()
        with self._open_lock:
            self._open -= 1
        self._wake()  # the selector may resume accepting

    # -- the worker pool ----------------------------------------------------------------------
    def _submit(self, conn: Connection, problem: HttpError | None) -> None:
        conn.problem = problem
        self._tasks.put(conn)
        with self._pool_lock:
            if self._waiting == 0 and len(self._workers) < self.limits.workers:
                worker = threading.Thread(
                    target=self._work, daemon=True, name=f"hubtool-hub-{len(self._workers)}"
                )
                self._workers.add(worker)
                self._waiting += 1
                worker.start()

    def _work(self) -> None:
        me = threading.current_thread()
        counted = True  # _submit counted this thread as waiting when it started it
        while True:
            if not counted:
                with self._pool_lock:
                    self._waiting += 1
            counted = False
            try:
                conn = self._tasks.get(timeout=_WORKER_IDLE)
            except queue.Empty:
                with self._pool_lock:
                    self._waiting -= 1
                    if self._tasks.empty():
                        self._workers.discard(me)
                        return
                continue
            with self._pool_lock:
                self._waiting -= 1
            if conn is None:
                with self._pool_lock:
                    self._workers.discard(me)
                return
            try:
                self._serve(conn)
            except Exception:  # never lose a worker; the connection is answered or closed
                log.error("Unexpected error serving a connection\n%s", traceback.format_exc())
                self._close(conn)

    def _serve(self, conn: Connection) -> None:
        """Answer requests on ``conn`` while complete heads are buffered, then hand it back."""
        conn.sock.setblocking(True)
        conn.sock.settimeout(self.limits.body_timeout)
        problem, conn.problem = conn.problem, None
        while True:
            if problem is not None:
                self._send(conn, error_response(problem), "GET", keep_alive=False)
                self._linger_close(conn)
                return
            m = HEAD_END.search(conn.buf)
            if m is None:
                break
            head = bytes(conn.buf[: m.start()])
            del conn.buf[: m.end()]
            keep_alive = self._handle(conn, head)
            conn.served += 1
            if not keep_alive:
                if conn.unread:
                    self._linger_close(conn)
                else:
                    with contextlib.suppress(OSError):
                        conn.sock.shutdown(socket.SHUT_WR)
                    self._close(conn)
                return
            while conn.buf[:1] in (b"\r", b"\n"):
                del conn.buf[:1]
        conn.sock.setblocking(False)
        self._returned.append(conn)
        self._wake()

    def _handle(self, conn: Connection, head: bytes) -> bool:
        """Run one request; whether the connection may serve another."""
        try:
            method, target, version, headers = parse_head(head, self.limits)
            raw_path, _, raw_query = target_path(target).partition("?")
        except HttpError as err:
            conn.unread = True  # a body may follow a head we could not read
            self._send(conn, error_response(err), "GET", keep_alive=False)
            return False
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in tokens
        else:
            keep_alive = "close" not in tokens
        expect = headers.get("expect", "").lower() == "100-continue"
        continued = [False]

        def before_read() -> None:
            if expect and not continued[0]:
                continued[0] = True
                conn.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        reader = SocketReader(conn, before_read)
        body: SizedBody | ChunkedBody
        if "transfer-encoding" in headers:
            body = ChunkedBody(reader, self.limits.max_header_bytes)
            content_length = None
        else:
            content_length = int(headers.get("content-length", "0"))
            body = SizedBody(reader, content_length)
        started = time.perf_counter()
        self.count_request(method, raw_path)
        try:
            req = Request(
                method,
                raw_path,
                parse_query(raw_query, self.limits.max_query_params),
                headers,
                body,  # type: ignore[arg-type]
                content_length,
                self.origin_for(headers.get("host")),
                self.limits,
            )
            resp = dispatch(self.service, req, ROUTE_TABLE)
        except ApiError as err:
            resp = Response.error(err)
        except Exception as exc:
            resp = _unexpected(exc, method, raw_path)
            keep_alive = False
        resp.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        if body.broken or (expect and not continued[0] and not body.done):
            keep_alive = False
        elif not body.done and keep_alive:
            keep_alive = drain(body)
        conn.unread = not body.done
        log.debug("%s %s %s -> %s", conn.addr, method, raw_path, resp.status)
        return self._send(conn, resp, method, keep_alive, version == "HTTP/1.0") and keep_alive

    def _send(
        self,
        conn: Connection,
        resp: Response,
        method: str,
        keep_alive: bool,
        http10: bool = False,
    ) -> bool:
        """Write ``resp``; False when the connection must not be reused."""
        # as the Hub's: clients quote it in their error messages
        resp.headers.setdefault(
            "X-Request-Id", f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
        )
        if not keep_alive:
            resp.headers["Connection"] = "close"
        elif http10:
            resp.headers["Connection"] = "keep-alive"
        length = resp.length if resp.stream is not None else len(resp.body)
        try:
            if method == "HEAD" or resp.stream is None:
                payload = b"" if method == "HEAD" else resp.body
                conn.sock.sendall(response_head(resp, length or 0) + payload)
                return True
            conn.sock.sendall(response_head(resp, length or 0))
            sent = 0
            for chunk in resp.stream:
                conn.sock.sendall(chunk)
                sent += len(chunk)
            return sent == length  # a short stream: close, or the client waits for the rest
        except OSError as exc:  # the client left, or stopped reading for body_timeout
            log.debug("Could not answer %s: %s", conn.addr, exc)
            return False
        except Exception:  # a stream that broke after the head was sent: all we can do is close
            log.error("Error while streaming a response\n%s", traceback.format_exc())
            return False
        finally:
            close = getattr(resp.stream, "close", None)
            if close is not None:
                close()

    def _linger_close(self, conn: Connection) -> None:
        """Close after an answer without losing it to a TCP reset: stop writing, read, close.

        A client still sending a body it was refused for (a 400 on the first line of a big
        commit, a 413) reads the answer once it is done; closing at once would reset the
        connection under it, and it would see a network error instead of the message.
        """
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.settimeout(_LINGER_IDLE)
            deadline = time.monotonic() + _LINGER_SECONDS
            read = 0
            while time.monotonic() < deadline and read <= self.limits.max_commit_body:
                data = conn.sock.recv(1 << 20)
                if not data:
                    break
                read += len(data)
        except OSError:
            pass
        self._close(conn)


def _has_pending(sock: socket.socket) -> bool:
    """Whether a client has sent bytes not read yet (without reading them)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except OSError:  # nothing yet (BlockingIOError), or the connection is gone
        return False


def _connection_cap(wanted: int) -> int:
    """``wanted``, or fewer if the process may not open that many files (keep some spare)."""
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return wanted
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - 128))


def _unexpected(exc: Exception, method: str, path: str) -> Response:
    if disk_full(exc):
        log.error("Disk full while serving %s %s: %s", method, path, exc)
        return Response.error(insufficient_storage())
    log.error("Unhandled error on %s %s\n%s", method, path, traceback.format_exc())
    return Response.error(ApiError(500, "Internal error in the local Hub (see its log)"))


def _origins(host: str, port: int) -> tuple[str, dict[str, str]]:
    """(public URL, {netloc: origin}) for a server bound to ``host:port``."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    unspecified = ip is not None and ip.is_unspecified
    shown = "127.0.0.1" if unspecified else host
    netloc = f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"
    origins = {netloc.lower(): f"http://{netloc}"}
    if unspecified or (ip is not None and ip.is_loopback) or host == "localhost":
        for alias in ("127.0.0.1", "localhost", "[::1]"):
            origins[f"{alias}:{port}"] = f"http://{alias}:{port}"
    return f"http://{netloc}", origins


def make_server(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: HubLimits | None = None,
    public_url: str | None = None,
) -> HubHTTPServer:
    """A server for ``data_dir``: its index healed from git, its stale temporaries removed."""
    service = HubService(data_dir, limits)
    service.resync()
    service.reclaim_temporaries()
    return HubHTTPServer((host, port), service, public_url)


class BackgroundHub:
    """A local Hub served from a thread: ``with BackgroundHub(dir) as hub: hub.url``."""

    def __init__(
        self,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: HubLimits | None = None,
        public_url: str | None = None,
    ) -> None:
        self.server = make_server(data_dir, host, port, limits, public_url)
        self.thread = threading.Thread(
            target=self.server.serve_forever, daemon=True, name="hubtool-hub"
        )

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def service(self) -> HubService:
        return self.server.service

    def __enter__(self) -> BackgroundHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.server_close()
        self.thread.join(timeout=10)


def serve_forever(server: HubHTTPServer) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="hubtool-hub")
    thread.start()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.server_close()
        for s, handler in previous.items():
            signal.signal(s, handler)
