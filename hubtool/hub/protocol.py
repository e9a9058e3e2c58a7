"""Request, response and error shapes of the local Hub's HTTP API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs


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


@dataclass
class Request:
    method: str
    raw_path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body_stream: BinaryIO
    content_length: int | None
    scheme_host: str  # "http://127.0.0.1:1234", from the Host header
    _body: bytes | None = None

    @classmethod
    def parse_query(cls, raw_query: str) -> dict[str, list[str]]:
        query = parse_qs(raw_query, keep_blank_values=True)
        for key in list(query):  # expand[]=x is expand=x
            if key.endswith("[]"):
                query.setdefault(key[:-2], []).extend(query.pop(key))
        return query

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

    def body(self, limit: int = 64 << 20) -> bytes:
        if self._body is None:
            if self.content_length is not None and self.content_length > limit:
                raise ApiError(413, f"Request body too large (limit {limit} bytes)")
            data = self.body_stream.read(limit + 1) if self.content_length != 0 else b""
            if len(data) > limit:
                raise ApiError(413, f"Request body too large (limit {limit} bytes)")
            self._body = data
        return self._body

    def json(self) -> Any:
        try:
            return json.loads(self.body() or b"null")
        except ValueError as exc:
            raise bad_request(f"Invalid JSON body: {exc}") from None

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
