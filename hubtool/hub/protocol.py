"""Request, response and error shapes of the local Hub's HTTP API."""

from __future__ import annotations

import errno
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs

from hubtool.hub.limits import HubLimits

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class ApiError(Exception):
    """An HTTP error answered the Hub's way: status, ``X-Error-Code``, JSON ``{"error": …}``."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = headers or {}
        self.body = body


def repo_not_found(anonymous: bool) -> ApiError:
    """The Hub's answer for a missing repo or one the caller may not see (never tells which)."""
    if anonymous:
        return ApiError(401, "Invalid username or password.", "RepoNotFound")
    return ApiError(404, "Repository not found", "RepoNotFound")


def revision_not_found(rev: str) -> ApiError:
    return ApiError(404, f"Invalid rev id: {rev}", "RevisionNotFound")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


class BodyError(ApiError):
    """The request body could not be read (bad chunked framing, a timeout, a lost peer).

    The connection cannot be reused after one: the server answers, then closes it.
    """


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk or an exceeded quota."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS:
            return True
        if isinstance(current, sqlite3.OperationalError) and "disk is full" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def insufficient_storage() -> ApiError:
    """507: the client does not retry it, and nothing was written (each write is atomic)."""
    return ApiError(
        507,
        "The local Hub's disk is full: nothing was written. Free space in its data "
        "directory (`hubtool hub gc` reclaims temporaries) and try again.",
    )


def parse_json(data: bytes | str) -> Any:
    """JSON, or a 400 for invalid or absurdly nested JSON (never a RecursionError 500)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise bad_request("Invalid JSON body: nested too deeply") from None
    except ValueError as exc:
        raise bad_request(f"Invalid JSON body: {exc}") from None


def parse_query(raw_query: str, max_fields: int = HubLimits.max_query_params) -> dict[str, Any]:
    """A query string (or form body) as lists of values; ``expand[]=x`` is ``expand=x``."""
    try:
        query = parse_qs(raw_query, keep_blank_values=True, max_num_fields=max_fields)
    except ValueError:
        raise bad_request(f"Too many query parameters (at most {max_fields})") from None
    for key in list(query):
        if key.endswith("[]"):
            query.setdefault(key[:-2], []).extend(query.pop(key))
    return query


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"Request body too large (at most {limit:,} bytes here)")


@dataclass
class Request:
    method: str
    raw_path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body_stream: BinaryIO
    content_length: int | None
    scheme_host: str  # "http://127.0.0.1:1234": one of the server's own origins, never a guess
    limits: HubLimits = field(default_factory=HubLimits)
    _body: bytes | None = None

    @classmethod
    def parse_query(cls, raw_query: str, max_fields: int = 100_000) -> dict[str, list[str]]:
        return parse_query(raw_query, max_fields)

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        if value is None:
            return default
        return value.strip().lower() in ("1", "true", "yes", "")

    def check_length(self, limit: int) -> None:
        """413 now when the announced body is over ``limit`` (chunked ones are counted)."""
        if self.content_length is not None and self.content_length > limit:
            raise too_large(limit)

    def body(self, limit: int | None = None) -> bytes:
        """The whole body, at most ``limit`` bytes (default: the JSON limit), else 413."""
        limit = self.limits.max_json_body if limit is None else limit
        if self._body is None:
            self.check_length(limit)
            data = self.body_stream.read(limit + 1) if self.content_length != 0 else b""
            if len(data) > limit:
                raise too_large(limit)
            self._body = data
        return self._body

    def json(self) -> Any:
        return parse_json(self.body() or b"null")

    def lines(self, max_line: int, max_total: int) -> Iterator[bytes]:
        """The body's lines, read as they arrive: 413 past ``max_line`` or ``max_total`` bytes."""
        self.check_length(max_total)
        total, pending = 0, bytearray()
        read = getattr(self.body_stream, "read1", self.body_stream.read)
        while chunk := read(1 << 20):
            total += len(chunk)
            if total > max_total:
                raise too_large(max_total)
            pending += chunk
            while (end := pending.find(b"\n")) >= 0:
                line = bytes(pending[:end])
                del pending[: end + 1]
                yield line
            if len(pending) > max_line:
                raise ApiError(413, f"A line of the body is longer than {max_line:,} bytes")
        if pending:
            yield bytes(pending)

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise bad_request("The request body must be a JSON object")
        return data

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return None


@dataclass
class Response:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # Streamed bodies: an iterator of chunks with a known total length.
    stream: Iterator[bytes] | None = None
    length: int | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(
            status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body
        )

    @classmethod
    def text(
        cls,
        text: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> Response:
        return cls(status, {"Content-Type": content_type, **(headers or {})}, text.encode())

    @classmethod
    def error(cls, err: ApiError) -> Response:
        headers = dict(err.headers)
        if err.code:
            headers["X-Error-Code"] = err.code
        headers["X-Error-Message"] = err.message.splitlines()[0][:500] if err.message else ""
        return cls.json(
            err.body if err.body is not None else {"error": err.message}, err.status, headers
        )
