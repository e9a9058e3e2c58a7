"""Byte ranges of downloads: one ``Range: bytes=…`` header answered 200, 206 or 416, and a
file read in pieces (resolve, the LFS "CDN", the Xet store's xorb links)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from hubtool.hub.protocol import Request, Response


def ranged(
    req: Request, headers: dict[str, str], size: int, read: Callable[[int, int], Iterator[bytes]]
) -> Response:
    """200, 206 or 416 for a body of ``size`` bytes served by ``read(start, end)``."""
    rng = req.headers.get("range")
    if rng:
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
        if not m or (not m.group(1) and not m.group(2)):
            return Response(416, {**headers, "Content-Range": f"bytes */{size}"})
        if m.group(1):
            start = int(m.group(1))
            end = min(int(m.group(2)) + 1, size) if m.group(2) else size
        else:
            start, end = max(size - int(m.group(2)), 0), size
        if start >= size or start >= end:
            return Response(416, {**headers, "Content-Range": f"bytes */{size}"})
        headers = {**headers, "Content-Range": f"bytes {start}-{end - 1}/{size}"}
        return Response(206, headers, stream=read(start, end), length=end - start)
    return Response(200, headers, stream=read(0, size), length=size)


def file_chunks(path: Path, start: int, end: int) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
