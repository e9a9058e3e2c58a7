"""The Training metrics tab: scalar curves read from a repo's TensorBoard event files and drawn
as static SVG on the server (no script, so the page's Content-Security-Policy stays).

Event files are TFRecords (length, CRC, payload, CRC) of ``Event`` protobufs; only what a
scalar curve needs is decoded (``step``, and each summary value's ``tag`` and
``simple_value``). Parsing is bounded: files, records, values and curve points are capped, and
a malformed file ends its curve rather than the page."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from html import escape

MAX_FILE_BYTES = 16 << 20
MAX_RECORD_BYTES = 1 << 20
MAX_POINTS = 2_000  # per curve: thinned evenly beyond
MAX_CURVES = 24
WIDTH, HEIGHT, PAD = 320, 150, 34


def is_event_file(path: str) -> bool:
    return "tfevents" in path.rsplit("/", 1)[-1]


def scalars(blobs: list[bytes]) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from event files' bytes, sorted by step."""
    curves: dict[str, list[tuple[int, float]]] = {}
    for blob in blobs:
        for step, tag, value in _events(blob[:MAX_FILE_BYTES]):
            if tag in curves or len(curves) < MAX_CURVES:
                curves.setdefault(tag, []).append((step, value))
    return {tag: _thin(sorted(points)) for tag, points in sorted(curves.items())}


def svg(tag: str, points: list[tuple[int, float]]) -> str:
    """One curve as an inline SVG with its axes' extremes labelled."""
    steps = [s for s, _ in points]
    values = [v for _, v in points]
    x0, x1 = min(steps), max(steps)
    y0, y1 = min(values), max(values)
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    span_x = (x1 - x0) or 1

    def at(step: int, value: float) -> str:
        x = PAD + (step - x0) / span_x * (WIDTH - PAD - 8)
        y = 8 + (y1 - value) / (y1 - y0) * (HEIGHT - PAD - 8)
        return f"{x:.1f},{y:.1f}"

    line = " ".join(at(s, v) for s, v in points)
    x, y = at(*points[0]).split(",")
    dot = "" if len(points) > 1 else f'<circle cx="{x}" cy="{y}" r="3" fill="#2563eb"/>'
    bottom = HEIGHT - PAD
    return (
        f'<svg class="curve" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(tag)}">'
        f'<line x1="{PAD}" y1="{bottom}" x2="{WIDTH - 8}" y2="{bottom}" stroke="#d1d5db"/>'
        f'<line x1="{PAD}" y1="8" x2="{PAD}" y2="{bottom}" stroke="#d1d5db"/>'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{line}"/>{dot}'
        f'<text x="{PAD - 4}" y="14" text-anchor="end" font-size="10">{_num(y1)}</text>'
        f'<text x="{PAD - 4}" y="{bottom}" text-anchor="end" font-size="10">{_num(y0)}</text>'
        f'<text x="{PAD}" y="{bottom + 14}" font-size="10">{x0}</text>'
        f'<text x="{WIDTH - 8}" y="{bottom + 14}" text-anchor="end" font-size="10">{x1}</text>'
        f'<text x="{(WIDTH + PAD) // 2}" y="{HEIGHT - 4}" text-anchor="middle" font-size="10">'
        "step</text></svg>"
    )


def _num(value: float) -> str:
    return f"{value:.4g}"


def _thin(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = len(points) / MAX_POINTS
    return [points[int(i * stride)] for i in range(MAX_POINTS)] + [points[-1]]


def _events(blob: bytes) -> Iterator[tuple[int, str, float]]:
    """(step, tag, value) of each scalar in a TFRecord file; stops at the first bad record."""
    at = 0
    while at + 12 <= len(blob):
        (length,) = struct.unpack_from("<Q", blob, at)
        start, end = at + 12, at + 12 + length
        if length > MAX_RECORD_BYTES or end + 4 > len(blob):
            return
        try:
            yield from _event(blob[start:end])
        except (ValueError, struct.error, IndexError):
            return
        at = end + 4


def _event(data: bytes) -> Iterator[tuple[int, str, float]]:
    step, summaries = 0, []
    for number, value in _fields(data):
        if number == 2 and isinstance(value, int):
            step = value
        elif number == 5 and isinstance(value, bytes):
            summaries.append(value)
    for summary in summaries:
        for number, value in _fields(summary):
            if number == 1 and isinstance(value, bytes):
                scalar = _scalar(value)
                if scalar is not None:
                    yield step, scalar[0], scalar[1]


def _scalar(value: bytes) -> tuple[str, float] | None:
    tag, number_value = None, None
    for number, field in _fields(value):
        if number == 1 and isinstance(field, bytes):
            tag = field.decode("utf-8", "replace")[:200]
        elif number == 2 and isinstance(field, float):
            number_value = field
    if tag is None or number_value is None or not math.isfinite(number_value):
        return None
    return tag, number_value


def _fields(data: bytes) -> Iterator[tuple[int, int | float | bytes]]:
    """A protobuf message's (field number, value): varints as int, fixed32 as float,
    length-delimited as bytes; fixed64 (a double) as float."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 1:
            yield number, struct.unpack_from("<d", data, at)[0]
            at += 8
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("truncated field")
            yield number, data[at : at + length]
            at += length
        elif wire == 5:
            yield number, struct.unpack_from("<f", data, at)[0]
            at += 4
        else:
            raise ValueError(f"wire type {wire}")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
