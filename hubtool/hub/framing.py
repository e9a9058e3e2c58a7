"""HTTP/1.1 on the wire, strictly: request heads, request bodies, response heads.

Used by ``server``. Everything here is refused with an ``HttpError`` (before a route runs) or
a ``BodyError`` (while a route reads its body), both 4xx: a request line over its limit is a
414, a head over its limits a 431, and a malformed head, a second or conflicting
``Content-Length``, ``Content-Length`` with ``Transfer-Encoding``, a bad chunk size or a body
shorter than announced a 400. Body reads wait at most the socket's timeout, so they end.
"""

from __future__ import annotations

import email.utils
import http
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from hubtool.hub.limits import HubLimits
from hubtool.hub.protocol import ApiError, BodyError, Response

HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(r"^HTTP/1\.[01]$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # never sent in a header value
DRAIN_LIMIT = 64 << 10  # leftover body bytes read to keep a connection; more: close it


class HttpError(Exception):
    """A request refused before it reaches a route (framing, size, version)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class Connection:
    """A client socket and the bytes read from it but not yet used."""

    def __init__(self, sock: socket.socket, addr: object) -> None:
        self.sock, self.addr = sock, addr
        self.buf = bytearray()
        self.served = 0
        self.deadline = 0.0
        self.problem: HttpError | None = None  # a head refused by the selector thread
        self.unread = False  # the client may still be sending a body nobody read


class SocketReader:
    """Blocking reads from a connection: its buffered bytes first, then the socket.

    Every ``recv`` waits at most the socket's timeout (``body_timeout``); a timeout or a lost
    peer is a ``BodyError`` (408 or 400), so a route never waits forever for a body.
    """

    def __init__(self, conn: Connection, before_read: Callable[[], None]) -> None:
        self.conn = conn
        self.before_read = before_read  # sends "100 Continue" the first time

    def _fill(self) -> bool:
        try:
            self.before_read()
            data = self.conn.sock.recv(1 << 16)
        except TimeoutError:
            raise BodyError(408, "Timed out waiting for the request body") from None
        except OSError as exc:
            raise BodyError(400, f"The connection broke while reading the body: {exc}") from None
        if not data:
            return False
        self.conn.buf += data
        return True

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes (fewer only at end of stream)."""
        buf = self.conn.buf
        while len(buf) < n and self._fill():
            pass
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def read1(self, n: int) -> bytes:
        """What is buffered, or what one ``recv`` brings (b"" only at end of stream)."""
        buf = self.conn.buf
        if not buf:
            self._fill()
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def readline(self, limit: int) -> bytes:
        buf = self.conn.buf
        while b"\n" not in buf[:limit] and len(buf) < limit and self._fill():
            pass
        end = buf.find(b"\n", 0, limit)
        n = end + 1 if end >= 0 else min(len(buf), limit)
        out = bytes(buf[:n])
        del buf[:n]
        return out


class SizedBody:
    """A body of ``Content-Length`` bytes; a short body is a 400, never a hang."""

    def __init__(self, reader: SocketReader, length: int) -> None:
        self.reader, self.left = reader, length
        self.broken = False

    @property
    def done(self) -> bool:
        return self.left == 0

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0 or n == 0:
            return b""
        want = self.left if n < 0 else min(n, self.left)
        out = bytearray()
        try:
            while len(out) < want:
                chunk = self.reader.read(min(want - len(out), 1 << 20))
                if not chunk:
                    break
                out += chunk
        except BodyError:
            self.broken = True
            raise
        return self._count(bytes(out), want)

    def read1(self, n: int = 1 << 20) -> bytes:
        """At most ``n`` bytes, as soon as some are there (for reading lines as they come)."""
        if self.left <= 0 or n == 0:
            return b""
        want = min(n, self.left)
        try:
            data = self.reader.read1(want)
        except BodyError:
            self.broken = True
            raise
        return self._count(data, 1)

    def _count(self, data: bytes, want: int) -> bytes:
        self.left -= len(data)
        if len(data) < want:
            self.broken = True
            raise BodyError(400, f"The body ended {self.left:,} bytes before its Content-Length")
        return data


class ChunkedBody:
    """A ``Transfer-Encoding: chunked`` body, parsed strictly: a bad chunk size is a 400."""

    def __init__(self, reader: SocketReader, max_trailer: int) -> None:
        self.reader, self.max_trailer = reader, max_trailer
        self.left, self.done, self.broken = 0, False, False

    def _fail(self, message: str) -> BodyError:
        self.broken = True
        return BodyError(400, f"Invalid chunked body: {message}")

    def _next_chunk(self) -> None:
        line = self.reader.readline(1024)
        if not line.endswith(b"\n"):
            raise self._fail("a chunk size line is missing or too long")
        size = line.split(b";", 1)[0].strip()
        if not size or not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size):
            raise self._fail(f"invalid chunk size {size[:40]!r}")
        self.left = int(size, 16)
        if self.left == 0:
            read = 0
            while True:  # trailer fields, then the empty line
                trailer = self.reader.readline(1024)
                read += len(trailer)
                if trailer in (b"\r\n", b"\n"):
                    break
                if not trailer.endswith(b"\n") or read > self.max_trailer:
                    raise self._fail("the trailer is missing, too long or cut off")
            self.done = True

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        try:
            while not self.done and (n < 0 or len(out) < n):
                if self.left == 0:
                    self._next_chunk()
                    continue
                want = self.left if n < 0 else min(self.left, n - len(out))
                chunk = self.reader.read(min(want, 1 << 20))
                if not chunk:
                    raise self._fail("the body ended inside a chunk")
                out += chunk
                self.left -= len(chunk)
                if self.left == 0 and self.reader.readline(3) not in (b"\r\n", b"\n"):
                    raise self._fail("a chunk is not followed by CRLF")
        except BodyError:
            self.broken = True
            raise
        return bytes(out)


def parse_head(head: bytes, limits: HubLimits) -> tuple[str, str, str, dict[str, str]]:
    """(method, target, version, lower-cased headers) of a request head, or an ``HttpError``."""
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    request_line = lines[0]
    if len(request_line) > limits.max_request_line:
        raise HttpError(414, f"The request line is longer than {limits.max_request_line:,} bytes")
    parts = request_line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise HttpError(400, "Malformed request line (expected: METHOD TARGET HTTP/1.1)")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise HttpError(400, "Malformed request method")
    if not _VERSION.match(version):
        raise HttpError(400, f"Unsupported HTTP version {version[:20]!r}: use HTTP/1.1")
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in target):
        raise HttpError(400, "The request target contains a control character or a space")
    fields = [line for line in lines[1:] if line]
    if len(fields) > limits.max_headers:
        raise HttpError(431, f"Too many header fields (at most {limits.max_headers})")
    headers: dict[str, str] = {}
    lengths: set[str] = set()
    for line in fields:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name):
            raise HttpError(400, f"Malformed header line {line[:60]!r}")
        name, value = name.lower(), value.strip(" \t")
        if any((ord(ch) < 32 and ch != "\t") or ord(ch) == 127 for ch in value):
            raise HttpError(400, f"The {name} header contains a control character")
        if name == "content-length":
            lengths.update(v.strip() for v in value.split(","))
            continue
        if name == "host" and "host" in headers:
            raise HttpError(400, "More than one Host header")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if lengths:
        if len(lengths) > 1:
            raise HttpError(400, "Conflicting Content-Length headers")
        (length,) = lengths
        if not re.fullmatch(r"\d{1,19}", length):
            raise HttpError(400, f"Invalid Content-Length {length[:30]!r}")
        if "transfer-encoding" in headers:
            raise HttpError(400, "Content-Length together with Transfer-Encoding is refused")
        headers["content-length"] = str(int(length))
    encoding = headers.get("transfer-encoding")
    if encoding is not None and encoding.strip().lower() != "chunked":
        raise HttpError(400, f"Unsupported Transfer-Encoding {encoding[:40]!r}: use chunked")
    if version == "HTTP/1.1" and "host" not in headers:
        raise HttpError(400, "HTTP/1.1 requests need a Host header")
    return method, target, version, headers


def target_path(target: str) -> str:
    """The path (and query) a request names; the absolute form's scheme and host are dropped."""
    if target.startswith(("http://", "https://")):  # absolute form: keep the path and query
        parts = urlsplit(target)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not target.startswith("/"):
        raise HttpError(400, "The request target must be a path")
    return target


def drain(body: SizedBody | ChunkedBody) -> bool:
    """Read what is left of a small unread body; whether the connection is still clean."""
    if isinstance(body, SizedBody) and body.left > DRAIN_LIMIT:
        return False
    try:
        read = 0
        while not body.done and read <= DRAIN_LIMIT:
            chunk = body.read(1 << 16)
            if not chunk:
                break
            read += len(chunk)
    except BodyError:
        return False
    return body.done


def error_response(err: HttpError) -> Response:
    return Response.error(ApiError(err.status, err.message, headers=err.headers))


def response_head(resp: Response, length: int) -> bytes:
    """Status line and headers; no header value carries a control character (no splitting)."""
    try:
        reason = http.HTTPStatus(resp.status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {resp.status} {reason}"]
    headers = {"Server": "hubtool-hub", "Date": email.utils.formatdate(usegmt=True)}
    headers.update(resp.headers)
    for name, value in headers.items():
        if name.lower() != "content-length":
            lines.append(f"{name}: {_CONTROL.sub('?', str(value))}")
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
