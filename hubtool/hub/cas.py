"""Xet for the local Hub: the token routes on the Hub API and a content-addressed store (CAS)
that the ``hf_xet`` client uploads to and downloads from, as it does against the Hub.

Uploads: xorbs (``POST /v1/xorbs``) are parsed, every chunk decompressed and hashed, and the
xorb hash checked before it is stored; a shard (``POST /v1/shards``) registers files whose
segments, verification hashes and file hash are all checked against the stored xorbs. Each
file is then rebuilt into the LFS store under its sha256 (checked too), so a commit's
``lfsFile`` entries, git clones, plain HTTP downloads and the pages work as for LFS uploads.

Downloads: ``resolve`` answers a file stored through Xet with ``X-Xet-Hash`` and the read-token
route; reconstructions list the chunk ranges of a byte range, fetched from a signed route
here. Routes the client may try first (upload grants, v2 shards and reconstructions, global
dedup) answer 404, which makes it fall back, never a 5xx, which it retries.

The CAS address carries an id of this data directory: ``hf_xet`` caches what it uploaded per
address, so a new store (another ``--data-dir``) is a new address, never one that claims
chunks it does not hold.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from hubtool.hub import xet
from hubtool.hub.lfs import LfsMismatch, locked_temp, valid_oid
from hubtool.hub.protocol import ApiError, Response, bad_request
from hubtool.hub.ranges import file_chunks, ranged
from hubtool.hub.router import ID, Ctx, RouteTable, T
from hubtool.hub.service import HubService, RepoRef

route = RouteTable()
TOKEN_TTL = 3600 * 4  # seconds; the client asks again a minute before
URL_TTL = 3600
HASH = r"(?P<hash>[0-9a-f]{64})"
CAS = r"/cas/(?P<inst>[0-9a-f]{16})"


def instance(svc: HubService) -> str:
    return svc.sign("xet-cas-instance")[:16]


# -- the store --------------------------------------------------------------------------------
class XetStore:
    """Xorbs as uploaded (raw bytes, plus their chunk table) and files as shards registered
    them, under DATA_DIR/xet; every write lands whole (a temporary renamed into place)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, kind: str, name: str) -> Path:
        return self.root / kind / name[:2] / name

    def has_xorb(self, name: str) -> bool:
        return self._path("xorbs", name).is_file()

    def xorb_path(self, name: str) -> Path:
        return self._path("xorbs", name)

    def chunks(self, name: str) -> list[list[Any]]:
        """[ser_start, ser_end, length, chunk hash] of each chunk of a stored xorb."""
        return json.loads(self._path("chunks", name).read_text())

    def put_xorb(self, name: str, body: bytes, chunks: list[xet.Chunk]) -> None:
        table = [[c.start, c.end, c.length, xet.hash_string(c.hash)] for c in chunks]
        _write(self._path("chunks", name), json.dumps(table).encode())
        _write(self._path("xorbs", name), body)  # last: a xorb is there only with its table

    def file(self, name: str) -> dict[str, Any] | None:
        path = self._path("files", name)
        return json.loads(path.read_text()) if path.is_file() else None

    def file_of_sha256(self, oid: str) -> str | None:
        path = self._path("sha256", oid)
        return path.read_text().strip() if path.is_file() else None

    def put_file(self, name: str, record: dict[str, Any]) -> None:
        _write(self._path("files", name), json.dumps(record).encode())
        _write(self._path("sha256", record["sha256"]), name.encode())


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = locked_temp(target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def store(svc: HubService) -> XetStore:
    return XetStore(svc.data_dir / "xet")


# -- tokens -----------------------------------------------------------------------------------
@route("GET", rf"/api/{T}/{ID}/xet-(?P<mode>read|write)-token/(?P<rev>[^/]+)")
def xet_token(c: Ctx) -> Response:
    ref = c.ref
    mode = c.params["mode"]
    if mode == "write" and c.req.arg("create_pr") not in (None, "", "0", "false"):
        row = c.svc.readable(c.who, ref)  # a pull request: anyone who can read may propose
        if c.who is None:
            raise ApiError(401, "You must be authenticated to open a pull request")
    elif mode == "write":
        row = c.svc.writable(c.who, ref)
    else:
        row = c.svc.ungated(c.who, c.svc.readable(c.who, ref))
    if mode == "read" or c.params["rev"] not in ("None", "main"):
        c.svc.resolve(row, c.params["rev"])  # an unknown revision: the Hub's 404
    expires = int(time.time()) + TOKEN_TTL
    token = _token(c.svc, mode, ref, expires)
    cas = f"{c.req.scheme_host}/cas/{instance(c.svc)}"
    body = {"accessToken": token, "exp": expires, "casUrl": cas}
    headers = {
        "X-Xet-Cas-Url": cas,
        "X-Xet-Access-Token": token,
        "X-Xet-Token-Expiration": str(expires),
    }
    return Response.json(body, headers=headers)


def _token(svc: HubService, mode: str, ref: RepoRef, expires: int) -> str:
    scope = f"{mode}:{ref.repo_type}:{ref.repo_id}:{expires}"
    return f"{scope}:{svc.sign('xet-token', scope)}"


def _scope(c: Ctx, write: bool) -> RepoRef:
    """The repo a CAS request's bearer token was issued for; 401 when it is none of ours,
    expired, or (``write``) a read token."""
    if c.params.get("inst") != instance(c.svc):
        raise ApiError(404, "No such CAS here (this Hub's data directory changed)")
    auth = c.req.headers.get("authorization") or ""
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    parts = token.rsplit(":", 1)
    fields = parts[0].split(":", 3) if len(parts) == 2 else []
    if len(fields) != 4 or parts[1] != c.svc.sign("xet-token", parts[0]):
        raise ApiError(401, "Invalid or missing Xet token; ask for one at xet-*-token")
    mode, repo_type, repo_id, expires = fields
    if not expires.isdigit() or int(expires) < time.time():
        raise ApiError(401, "This Xet token has expired")
    if write and mode != "write":
        raise ApiError(403, "This Xet token is read-only")
    return RepoRef(repo_type, repo_id)


# -- uploads ----------------------------------------------------------------------------------
@route("POST", rf"{CAS}/v1/xorbs/(?P<prefix>[A-Za-z0-9_-]+)/{HASH}")
def upload_xorb(c: Ctx) -> Response:
    _scope(c, write=True)
    name = c.params["hash"]
    xs = store(c.svc)
    if xs.has_xorb(name):
        c.req.body(limit=c.svc.limits.max_xorb_body)  # read, so the connection stays usable
        return Response.json({"was_inserted": False})
    body = c.req.body(limit=c.svc.limits.max_xorb_body)
    try:
        chunks = xet.parse_xorb(body)
    except xet.XetFormatError as exc:
        raise bad_request(f"Xorb {name} rejected: {exc}") from None
    actual = xet.hash_string(xet.merkle_root([(ch.hash, ch.length) for ch in chunks]))
    if actual != name:
        raise bad_request(f"Xorb rejected: its chunks hash to {actual}, not {name}")
    xs.put_xorb(name, body, chunks)
    return Response.json({"was_inserted": True})


@route("POST", rf"{CAS}/v1/shards")
def upload_shard(c: Ctx) -> Response:
    ref = _scope(c, write=True)
    row = c.svc.db.get_repo(ref.repo_type, ref.repo_id)
    if row is None:
        raise ApiError(404, "The repository this token was issued for no longer exists")
    try:
        shard = xet.parse_shard(c.req.body(limit=c.svc.limits.max_shard_body))
    except xet.XetFormatError as exc:
        raise bad_request(f"Shard rejected: {exc}") from None
    xs = store(c.svc)
    missing = [h for h in shard.xorbs if not xs.has_xorb(xet.hash_string(h))]
    if missing:
        raise bad_request(f"Shard rejected: xorb {xet.hash_string(missing[0])} was never uploaded")
    tables: dict[str, list[list[Any]]] = {}  # each xorb's chunk table, read once per shard
    for entry in shard.files:
        record = _checked_file(xs, entry, tables)
        _materialize(c.svc, xs, record)
        c.svc.db.link_lfs(row.rowid, record["sha256"], record["size"])
        xs.put_file(xet.hash_string(entry.hash), record)
    return Response.json({"result": 1})


def _checked_file(
    xs: XetStore, entry: xet.FileEntry, tables: dict[str, list[list[Any]]]
) -> dict[str, Any]:
    """The file a shard describes, every claim checked against the stored xorbs: the
    segments' chunk ranges and sizes, their verification hashes and the file hash
    (``tables``: the chunk tables read so far, which a file's segments often share)."""
    name = xet.hash_string(entry.hash)
    if entry.sha256 is None or not valid_oid(entry.sha256):
        raise bad_request(f"Shard rejected: file {name} carries no sha256")
    leaves, segments = [], []
    for seg in entry.segments:
        xorb = xet.hash_string(seg.xorb)
        if not xs.has_xorb(xorb):
            raise bad_request(f"Shard rejected: file {name} uses xorb {xorb}, never uploaded")
        if xorb not in tables:
            tables[xorb] = xs.chunks(xorb)
        table = tables[xorb]
        if seg.end > len(table):
            raise bad_request(f"Shard rejected: xorb {xorb} has no chunks [{seg.start}, {seg.end})")
        used = table[seg.start : seg.end]
        hashes = [xet.hash_bytes(ch[3]) for ch in used]
        if sum(ch[2] for ch in used) != seg.length:
            raise bad_request(f"Shard rejected: a segment of file {name} has the wrong size")
        if seg.verification is not None and seg.verification != xet.range_hash(hashes):
            raise bad_request(f"Shard rejected: a segment of file {name} fails verification")
        leaves += [(h, ch[2]) for h, ch in zip(hashes, used, strict=True)]
        segments.append({"xorb": xorb, "start": seg.start, "chunks": [ch[:3] for ch in used]})
    if xet.file_hash(leaves) != entry.hash:
        raise bad_request(f"Shard rejected: the chunks of file {name} hash to another file")
    return {"sha256": entry.sha256, "size": entry.size, "segments": segments}


class _FileStream:
    """A file rebuilt from its segments, read as a stream (one chunk in memory)."""

    def __init__(self, xs: XetStore, record: dict[str, Any]) -> None:
        self.pieces = _file_pieces(xs, record["segments"])
        self.buffer = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.buffer) < n:
            piece = next(self.pieces, None)
            if piece is None:
                break
            self.buffer += piece
        out, self.buffer = (self.buffer, b"") if n < 0 else (self.buffer[:n], self.buffer[n:])
        return out


def _file_pieces(xs: XetStore, segments: list[dict[str, Any]]) -> Any:
    for seg in segments:
        with open(xs.xorb_path(seg["xorb"]), "rb") as fh:
            for start, end, length in seg["chunks"]:
                fh.seek(start)
                record = fh.read(end - start)
                yield xet.decompress(record[8:], record[4], length)


def _materialize(svc: HubService, xs: XetStore, record: dict[str, Any]) -> None:
    """The file in the LFS store under its sha256 (checked while it is written)."""
    oid, size = record["sha256"], record["size"]
    if size > svc.limits.max_lfs_object:
        raise ApiError(413, f"Objects are at most {svc.limits.max_lfs_object:,} bytes here")
    if svc.lfs.has(oid, size):
        return
    try:
        svc.lfs.put(oid, size, _FileStream(xs, record))  # type: ignore[arg-type]
    except LfsMismatch as exc:
        raise bad_request(f"Shard rejected: the bytes do not match the sha256 ({exc})") from None


# -- downloads --------------------------------------------------------------------------------
def download_headers(c: Ctx, ref: RepoRef, oid: str, commit: str) -> dict[str, str]:
    """What ``resolve`` adds for a file stored through Xet: its hash and where to get a
    read token (the client then reconstructs it from the CAS); {} for other files."""
    name = store(c.svc).file_of_sha256(oid)
    if name is None:
        return {}
    prefix = {"model": "models", "dataset": "datasets", "space": "spaces"}[ref.repo_type]
    refresh = f"{c.req.scheme_host}/api/{prefix}/{ref.repo_id}/xet-read-token/{commit}"
    return {"X-Xet-Hash": name, "Link": f'<{refresh}>; rel="xet-auth"'}


@route("GET", rf"{CAS}/v1/reconstructions/{HASH}")
def reconstruct(c: Ctx) -> Response:
    ref = _scope(c, write=False)
    name = c.params["hash"]
    record = store(c.svc).file(name)
    row = c.svc.db.get_repo(ref.repo_type, ref.repo_id)
    held = c.svc.db.linked_lfs(row.rowid, [record["sha256"]]) if row and record else {}
    if record is None or not held:  # a token reads the files of its own repo only
        raise ApiError(404, f"No file {name} in this repo's storage")
    size = record["size"]
    start, end = _range(c.req.headers.get("range"), size)
    offset, terms = xet.reconstruction(record["segments"], start, end)
    fetch: dict[str, list[dict[str, Any]]] = {}
    expires = str(int(time.time()) + URL_TTL)
    for t in terms:
        sig = c.svc.sign("xorb", t["xorb"], expires)
        base = f"{c.req.scheme_host}/cas/{c.params['inst']}"
        url = f"{base}/xorb-data/{t['xorb']}?expires={expires}&sig={sig}"
        span = {"start": t["start"], "end": t["next"]}
        entry = {
            "range": span,
            "url": url,
            "url_range": {"start": t["chunks"][0][0], "end": t["chunks"][-1][1] - 1},
        }
        if entry not in fetch.setdefault(t["xorb"], []):
            fetch[t["xorb"]].append(entry)
    return Response.json(
        {
            "offset_into_first_range": offset,
            "terms": [
                {
                    "hash": t["xorb"],
                    "unpacked_length": sum(ch[2] for ch in t["chunks"]),
                    "range": {"start": t["start"], "end": t["next"]},
                }
                for t in terms
            ],
            "fetch_info": fetch,
        }
    )


def _range(header: str | None, size: int) -> tuple[int, int]:
    """[start, end] (inclusive) of a ``Range: bytes=S-E`` header, clamped to the file."""
    if not header:
        return 0, size - 1
    spec = header.strip().removeprefix("bytes=")
    first, _, last = spec.partition("-")
    if not first.isdigit() or (last and not last.isdigit()):
        raise ApiError(416, f"Unsupported range {header[:80]!r}")
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        raise ApiError(416, f"Range {header[:80]!r} is past the end of {size} bytes")
    return start, end


@route("GET", rf"{CAS}/xorb-data/{HASH}")
def xorb_data(c: Ctx) -> Response:
    """A stored xorb's bytes (a range of chunk records), by a signed link: the client sends
    no credentials here, as to the Hub's storage."""
    name, expires = c.params["hash"], c.req.arg("expires") or "0"
    if (
        c.params["inst"] != instance(c.svc)
        or not expires.isdigit()
        or int(expires) < time.time()
        or c.req.arg("sig") != c.svc.sign("xorb", name, expires)
    ):
        raise ApiError(403, "This link is invalid or has expired")
    path = store(c.svc).xorb_path(name)
    if not path.is_file():
        raise ApiError(404, f"No xorb {name} in this CAS")
    headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
    return ranged(c.req, headers, path.stat().st_size, lambda a, b: file_chunks(path, a, b))


# -- what the client may try first: 404 makes it fall back -------------------------------------
@route("GET", rf"{CAS}/v1/chunks/(?P<prefix>[A-Za-z0-9_-]+)/{HASH}")
def global_dedup(c: Ctx) -> Response:
    _scope(c, write=False)
    raise ApiError(404, "No global deduplication here")


@route("POST", rf"{CAS}/v1/xorb-grants/(?P<rest>.+)")
def xorb_grant(c: Ctx) -> Response:
    _scope(c, write=True)
    c.req.body()
    raise ApiError(404, "No upload grants here: upload the xorb itself")


@route("POST", rf"{CAS}/v2/shards")
def shard_v2(c: Ctx) -> Response:
    _scope(c, write=True)
    c.req.body(limit=c.svc.limits.max_shard_body)  # read: the connection stays usable
    raise ApiError(404, "Use /v1/shards")


@route("GET", rf"{CAS}/v2/reconstructions/{HASH}")
def reconstruct_v2(c: Ctx) -> Response:
    _scope(c, write=False)
    raise ApiError(404, "Use /v1/reconstructions")


@route("POST", r"/v1/telemetry")
def telemetry(c: Ctx) -> Response:
    c.req.body()
    return Response.json({})
