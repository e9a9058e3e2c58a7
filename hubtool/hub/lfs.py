"""The LFS object store: file contents addressed by their SHA-256.

An object is streamed to a temporary file while it is hashed, and renamed into place only
when its hash and size match what the client announced, so a store never holds a partial
or wrong object under a valid name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, TypeGuard

from hubtool.hub import storage

_OID = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20


class LfsMismatch(Exception):
    """The uploaded bytes do not hash to the announced oid or size."""


def valid_oid(oid: object) -> TypeGuard[str]:
    return isinstance(oid, str) and bool(_OID.match(oid))


class LfsStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, oid: str) -> Path:
        return self.root / oid[:2] / oid[2:4] / oid

    def size(self, oid: str) -> int | None:
        try:
            return self.path(oid).stat().st_size
        except OSError:
            return None

    def has(self, oid: str, size: int | None = None) -> bool:
        actual = self.size(oid)
        return actual is not None and (size is None or actual == size)

    def put(self, oid: str, size: int, stream: BinaryIO) -> None:
        """Store ``size`` bytes read from ``stream``; raises LfsMismatch on a wrong hash.

        The temporary is locked while it is written (``storage.in_use``) and removed whatever
        happens: a wrong hash, a body that stops (the server's read timeout), a full disk.
        """
        target = self.path(oid)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = locked_temp(target.parent)
        received = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                while True:
                    chunk = (
                        stream.read(min(CHUNK, size - received + 1)) if size >= received else b""
                    )
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > size:
                        break
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                if received != size or digest.hexdigest() != oid:
                    raise LfsMismatch(
                        f"received {received} bytes hashing to {digest.hexdigest()}, "
                        f"expected {size} bytes hashing to {oid}"
                    )
                os.chmod(tmp, 0o444)
                os.replace(tmp, target)  # still locked: a reclaim never races the rename
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def locked_temp(directory: Path) -> tuple[int, str]:
    """A new upload temporary in ``directory``, opened and locked."""
    while True:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=storage.UPLOAD_PREFIX)
        storage.lock_upload(fd)
        if os.fstat(fd).st_nlink > 0:
            return fd, tmp
        os.close(fd)  # reclaimed between its creation and the lock: make another
