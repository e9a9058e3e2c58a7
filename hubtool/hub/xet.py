"""The Xet storage format, as the ``hf_xet`` client writes it (xet-core's specification):
hash strings, chunk and xorb hashes (keyed BLAKE3 over a Merkle tree), the file hash, the
serialized xorb (chunk records, LZ4 or byte-grouped LZ4) and the shard that registers files.

Everything here is pure and bounded: a xorb or shard is parsed from bytes already read (their
sizes are limited by the routes), every count is checked against what is left of the body,
every chunk decompresses to at most its announced size, and anything malformed raises
``XetFormatError`` with one line saying what.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

DATA_KEY = bytes(
    [102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28,
     157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]
)  # fmt: skip
INTERNAL_NODE_KEY = bytes(
    [1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230,
     93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]
)  # fmt: skip
VERIFICATION_KEY = bytes(
    [127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243,
     164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195]
)  # fmt: skip
SHARD_TAG = b"HFRepoMetaData\x00" + bytes(
    [85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169]
)
SHARD_VERSION = 2
BOOKEND = b"\xff" * 32 + b"\x00" * 16
MAX_CHUNK = 128 * 1024  # uncompressed bytes of one chunk
MAX_CHUNKS = 16 * 1024  # of one xorb (the client makes at most 8192)
HAS_VERIFICATION, HAS_METADATA = 1 << 31, 1 << 30
NONE, LZ4, BG4_LZ4 = 0, 1, 2
FOOTER_IDENT = b"XETBLOB"  # older clients append a footer: where the chunks end


class XetFormatError(ValueError):
    """A xorb or shard that is not what the format says."""


# -- hashes -----------------------------------------------------------------------------------
def hash_string(raw: bytes) -> str:
    """The 64-hex form of a 32-byte hash: each 8-byte word little-endian (URLs, JSON)."""
    return "".join(raw[i : i + 8][::-1].hex() for i in range(0, 32, 8))


def hash_bytes(text: str) -> bytes:
    """The raw hash a 64-hex string names; XetFormatError for anything else."""
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise XetFormatError(f"{text[:80]!r} is not a Xet hash (64 lowercase hex digits)")
    return b"".join(bytes.fromhex(text[i : i + 16])[::-1] for i in range(0, 64, 16))


def _blake3(key: bytes, data: bytes) -> bytes:
    from blake3 import blake3

    return blake3(data, key=key).digest()


def chunk_hash(data: bytes) -> bytes:
    return _blake3(DATA_KEY, data)


def merkle_root(leaves: list[tuple[bytes, int]]) -> bytes:
    """The xorb hash of (chunk hash, length) leaves: nodes of 2 to 9 children, a cut after
    a child whose last word is 0 mod 4 (mean branching 4); 32 zero bytes for no chunks."""
    if not leaves:
        return bytes(32)
    level = list(leaves)
    while len(level) > 1:
        merged, i = [], 0
        while i < len(level):
            cut = i + _next_cut(level[i:])
            group = level[i:cut]
            text = "".join(f"{hash_string(h)} : {n}\n" for h, n in group)
            merged.append((_blake3(INTERNAL_NODE_KEY, text.encode()), sum(n for _, n in group)))
            i = cut
        level = merged
    return level[0][0]


def _next_cut(nodes: list[tuple[bytes, int]]) -> int:
    if len(nodes) <= 2:
        return len(nodes)
    end = min(9, len(nodes))
    for i in range(2, end):
        if int.from_bytes(nodes[i][0][24:32], "little") % 4 == 0:
            return i + 1
    return end


def file_hash(leaves: list[tuple[bytes, int]]) -> bytes:
    """The file hash (``X-Xet-Hash``): the Merkle root of all its chunks, keyed with zeros."""
    return _blake3(bytes(32), merkle_root(leaves)) if leaves else bytes(32)


def range_hash(chunk_hashes: list[bytes]) -> bytes:
    """A shard's verification of one segment: its chunks' hashes, concatenated, keyed."""
    return _blake3(VERIFICATION_KEY, b"".join(chunk_hashes))


# -- xorbs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    start: int  # of its record (8-byte header first) in the serialized xorb
    end: int
    length: int  # uncompressed
    hash: bytes


def parse_xorb(body: bytes) -> list[Chunk]:
    """The chunks of a serialized xorb, each decompressed and hashed (a footer, if any, ends
    the records); XetFormatError on a bad header, size or compression."""
    chunks: list[Chunk] = []
    at = 0
    while at < len(body) and not body.startswith(FOOTER_IDENT, at):
        if len(chunks) >= MAX_CHUNKS:
            raise XetFormatError(f"more than {MAX_CHUNKS} chunks in one xorb")
        if at + 8 > len(body):
            raise XetFormatError(f"a chunk header cut short at byte {at}")
        version, scheme = body[at], body[at + 4]
        stored = int.from_bytes(body[at + 1 : at + 4], "little")
        length = int.from_bytes(body[at + 5 : at + 8], "little")
        if version != 0:
            raise XetFormatError(f"chunk {len(chunks)}: header version {version} (0 expected)")
        if not 0 < length <= MAX_CHUNK or stored > 2 * MAX_CHUNK or at + 8 + stored > len(body):
            raise XetFormatError(f"chunk {len(chunks)}: sizes {stored}/{length} out of bounds")
        data = decompress(body[at + 8 : at + 8 + stored], scheme, length, len(chunks))
        chunks.append(Chunk(at, at + 8 + stored, length, chunk_hash(data)))
        at += 8 + stored
    if not chunks:
        raise XetFormatError("a xorb without chunks")
    return chunks


def decompress(stored: bytes, scheme: int, length: int, index: int = 0) -> bytes:
    """One chunk's bytes; at most ``length`` are ever produced (no decompression bomb)."""
    if scheme == NONE:
        data = stored
    elif scheme in (LZ4, BG4_LZ4):
        import lz4.frame

        try:
            inflater = lz4.frame.LZ4FrameDecompressor()
            data = inflater.decompress(stored, max_length=length + 1)
        except RuntimeError as exc:
            raise XetFormatError(f"chunk {index}: LZ4 frame does not decode ({exc})") from None
        if not inflater.eof or inflater.unused_data:
            raise XetFormatError(f"chunk {index}: the LZ4 frame is longer than announced")
        if scheme == BG4_LZ4:
            data = _regroup(data)
    else:
        raise XetFormatError(f"chunk {index}: unknown compression scheme {scheme}")
    if len(data) != length:
        raise XetFormatError(f"chunk {index}: {len(data)} bytes, {length} announced")
    return data


def _regroup(grouped: bytes) -> bytes:
    """Undo byte grouping: bytes i % 4 == k were stored together, group k after group k-1."""
    n = len(grouped)
    q, r = divmod(n, 4)
    out, at = bytearray(n), 0
    for k in range(4):
        size = q + (1 if r > k else 0)
        out[k::4] = grouped[at : at + size]
        at += size
    return bytes(out)


def chunk_bytes(body: bytes, chunk: Chunk) -> bytes:
    """A stored chunk's uncompressed bytes."""
    scheme = body[chunk.start + 4]
    return decompress(body[chunk.start + 8 : chunk.end], scheme, chunk.length)


# -- shards -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    xorb: bytes
    start: int  # chunk index, inclusive
    end: int  # exclusive
    length: int  # uncompressed bytes
    verification: bytes | None = None


@dataclass(frozen=True)
class FileEntry:
    hash: bytes
    segments: tuple[Segment, ...]
    sha256: str | None  # hex, as hashlib prints it

    @property
    def size(self) -> int:
        return sum(s.length for s in self.segments)


@dataclass(frozen=True)
class Shard:
    files: tuple[FileEntry, ...]
    xorbs: tuple[bytes, ...]  # the xorbs its CAS section describes


class _Reader:
    def __init__(self, body: bytes) -> None:
        self.body, self.at = body, 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > len(self.body):
            raise XetFormatError(f"the shard ends inside {what} (byte {self.at})")
        piece = self.body[self.at : self.at + n]
        self.at += n
        return piece

    def at_bookend(self) -> bool:
        if self.body[self.at : self.at + 48] == BOOKEND:
            self.at += 48
            return True
        return False

    def count(self, n: int, size: int, what: str) -> int:
        if n * size > len(self.body) - self.at:
            raise XetFormatError(f"{n} {what} announced, the shard has room for fewer")
        return n


def parse_shard(body: bytes) -> Shard:
    """The file and xorb sections of an uploaded shard (header, no footer)."""
    r = _Reader(body)
    header = r.take(48, "the header")
    if header[:32] != SHARD_TAG:
        raise XetFormatError("not a Xet shard (its header tag is wrong)")
    version, _footer = struct.unpack("<QQ", header[32:])
    if version != SHARD_VERSION:
        raise XetFormatError(f"shard version {version} ({SHARD_VERSION} expected)")
    files = []
    while not r.at_bookend():
        files.append(_file_entry(r))
    xorbs = []
    while not r.at_bookend():
        head = r.take(48, "a xorb header")
        xorbs.append(head[:32])
        (entries,) = struct.unpack("<I", head[36:40])
        r.take(48 * r.count(entries, 48, "chunk entries"), "chunk entries")
    return Shard(tuple(files), tuple(xorbs))


def _file_entry(r: _Reader) -> FileEntry:
    head = r.take(48, "a file header")
    flags, entries = struct.unpack("<II", head[32:40])
    r.count(entries, 48, "file segments")
    raw = [r.take(48, "a file segment") for _ in range(entries)]
    checks: list[bytes | None] = [None] * entries
    if flags & HAS_VERIFICATION:
        checks = [r.take(48, "a verification entry")[:32] for _ in range(entries)]
    sha256 = None
    if flags & HAS_METADATA:
        sha256 = hash_string(r.take(48, "the file metadata")[:32])  # word-swapped on disk
    segments = []
    for seg, check in zip(raw, checks, strict=True):
        _flags, length, start, end = struct.unpack("<IIII", seg[32:48])
        if end <= start:
            raise XetFormatError(f"a segment of chunks [{start}, {end}) is empty")
        segments.append(Segment(seg[:32], start, end, length, check))
    return FileEntry(head[:32], tuple(segments), sha256)


def reconstruction(
    segments: list[dict[str, Any]], start: int, end: int
) -> tuple[int, list[dict[str, Any]]]:
    """(offset into the first term, terms) of the bytes [start, end] (inclusive) of a file
    stored as ``segments`` ({xorb, chunks: [[ser_start, ser_end, length], …]} of the chunks
    it uses): whole chunks only, the client trims the rest."""
    terms: list[dict[str, Any]] = []
    offset = at = 0
    for seg in segments:
        chunks, first = seg["chunks"], seg["start"]
        for i, (_, _, length) in enumerate(chunks):
            if at + length > start and at <= end:
                if not terms or terms[-1]["xorb"] != seg["xorb"] or terms[-1]["next"] != first + i:
                    if not terms:
                        offset = start - at
                    terms.append({"xorb": seg["xorb"], "start": first + i, "chunks": []})
                terms[-1]["chunks"].append(chunks[i])
                terms[-1]["next"] = first + i + 1
            at += length
        if at > end:
            break
    return offset, terms
