"""The local Hub's limits: timeouts, pool sizes and body sizes, in one frozen object.

``HubService`` and the HTTP server both take one; ``hubtool hub serve`` builds it from its
options. Every limit is refused with a 4xx (never a 5xx, which the client retries for ~30 s).
"""

from __future__ import annotations

from dataclasses import dataclass

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True)
class HubLimits:
    # -- connections (the server) -------------------------------------------------------------
    workers: int = 64  # threads that run requests; idle connections hold none
    max_connections: int = 1024  # open sockets; beyond it new ones wait in the listen backlog
    header_timeout: float = 10.0  # seconds to send the request line and headers
    body_timeout: float = 30.0  # seconds without a byte while a body is read or an answer sent
    keepalive_timeout: float = 60.0  # seconds an idle keep-alive connection stays open
    max_request_line: int = 16 * KiB  # longer: 414
    max_header_bytes: int = 64 * KiB  # the whole header block; larger: 431
    max_headers: int = 100  # header lines; more: 431
    # -- request bodies (the routes) ----------------------------------------------------------
    max_json_body: int = 16 * MiB  # preupload, LFS batch, validate-yaml, paths-info, …; 413
    max_commit_line: int = 16 * MiB  # one ndjson commit line: a 10 MiB file in base64 + slack
    max_commit_body: int = 256 * MiB  # a whole ndjson commit (many regular files inline)
    max_lfs_object: int = 50 * GiB  # an LFS object announced in a batch or uploaded
    max_xorb_body: int = 80 * MiB  # one Xet xorb (the client makes them of 64 MiB at most)
    max_shard_body: int = 64 * MiB  # one Xet shard (files and the chunks of new xorbs)
    max_query_params: int = 1000  # query string fields
    max_filters: int = 50  # ``filter=`` values of a search

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"HubLimits.{name} must be positive, not {value!r}")


def parse_size(text: str) -> int:
    """'50G' -> 50 GiB, '512M', '10k', '1000'; binary units. ValueError when it is not a size."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(?:i?B)?", text.strip())
    if not m:
        raise ValueError(f"Invalid size {text!r}: use a number like 1000, 512M or 50G")
    scale = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1 << 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)
