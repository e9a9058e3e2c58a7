"""The local Hub's HTTP server: stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive.

It routes on the raw request path (spec §1), reads chunked or sized bodies, always answers
HEAD with the true ``Content-Length``, and never turns bad input into a 5xx: the client
retries 5xx for about 30 seconds.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from hubtool.hub import pages, routes, transfer  # noqa: F401  (they register their routes)
from hubtool.hub.protocol import ApiError, Request, Response
from hubtool.hub.service import HubService

log = logging.getLogger(__name__)


class ChunkedReader:
    """A file-like view of a ``Transfer-Encoding: chunked`` request body."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.left, self.done = raw, 0, False

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while not self.done and (n < 0 or len(out) < n):
            if self.left == 0:
                size_line = self.raw.readline(1024).split(b";")[0].strip()
                self.left = int(size_line or b"0", 16)
                if self.left == 0:
                    while self.raw.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    self.done = True
                    break
            want = self.left if n < 0 else min(self.left, n - len(out))
            chunk = self.raw.read(want)
            if not chunk:
                self.done = True
                break
            out += chunk
            self.left -= len(chunk)
            if self.left == 0:
                self.raw.readline(16)
        return bytes(out)


class LimitedReader:
    def __init__(self, raw: BinaryIO, length: int) -> None:
        self.raw, self.left = raw, length

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n < 0 else min(n, self.left)
        data = self.raw.read(n)
        self.left -= len(data)
        return data


class HubRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hubtool-hub"
    server: HubHTTPServer

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _handle(self) -> None:
        raw_path, _, raw_query = self.path.partition("?")
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = headers.get("content-length")
        stream: BinaryIO
        if "chunked" in headers.get("transfer-encoding", "").lower():
            stream = ChunkedReader(self.rfile)  # type: ignore[arg-type,assignment]
            content_length = None
        else:
            content_length = int(length) if length and length.isdigit() else 0
            stream = LimitedReader(self.rfile, content_length)  # type: ignore[arg-type,assignment]
        host = headers.get("host") or self.server.url.removeprefix("http://")
        req = Request(
            self.command,
            raw_path,
            Request.parse_query(raw_query),
            headers,
            stream,
            content_length,
            f"http://{host}",
        )
        started = time.perf_counter()
        self.server.count_request(self.command, raw_path)
        try:
            resp = routes.dispatch(self.server.service, req)
        except ApiError as err:
            resp = Response.error(err)
        except Exception:  # a bug: say so, but as a 4xx-free 500 only when nothing else fits
            log.error(
                "Unhandled error on %s %s\n%s", self.command, raw_path, traceback.format_exc()
            )
            resp = Response.error(ApiError(500, "Internal error in the local Hub"))
        resp.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        while stream.read(1 << 20):  # leave the connection clean for keep-alive
            pass
        self._send(resp)

    def _send(self, resp: Response) -> None:
        self.send_response(resp.status)
        length = resp.length if resp.stream is not None else len(resp.body)
        for name, value in resp.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value.encode("latin-1", "replace").decode("latin-1"))
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        if resp.stream is not None:
            _write_all(self.wfile, resp.stream)
        else:
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


def _write_all(wfile: Any, chunks: Iterator[bytes]) -> None:
    for chunk in chunks:
        wfile.write(chunk)


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: HubService) -> None:
        self.service = service
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request served
        self._requests_lock = threading.Lock()
        super().__init__(address, HubRequestHandler)

    def count_request(self, method: str, path: str) -> None:
        with self._requests_lock:
            self.requests.append((method, path))
            if len(self.requests) > 10_000:
                del self.requests[:5_000]

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        return f"http://{host}:{self.server_port}"


def make_server(data_dir: Path, host: str = "127.0.0.1", port: int = 0) -> HubHTTPServer:
    service = HubService(data_dir)
    service.resync()
    return HubHTTPServer((host, port), service)


class BackgroundHub:
    """A local Hub served from a thread: ``with BackgroundHub(dir) as hub: hub.url``."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server = make_server(data_dir, host, port)
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
        self.server.shutdown()
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
        server.shutdown()
        server.server_close()
        for s, handler in previous.items():
            signal.signal(s, handler)
