"""The data directory's space: what repositories, LFS objects and temporaries take, and
reclaiming the temporaries that interrupted writes left behind.

Temporaries are

* ``lfs/xx/yy/.upload-*``: an LFS upload in progress. The writer holds an exclusive ``flock``
  on it for as long as it writes, and the kernel drops that lock when the writer dies (even by
  ``kill -9``), so one whose lock can be taken belongs to nobody and is removed at once;
* ``repos/…/*.git/objects/xx/tmp_obj_*`` and ``repos/…/*.git/tmp_index_*``: a blob or an index
  of a commit in progress (a second or two); removed once older than ``STALE_AFTER``;
* ``repos/…/.deleted-*``: a deleted repository on its way out; removed at once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: fall back to the age rule for uploads too
    fcntl = None  # type: ignore[assignment]

STALE_AFTER = 3600.0  # seconds: far longer than any commit writes its temporaries
UPLOAD_PREFIX = ".upload-"


@dataclass
class Usage:
    """Bytes (and counts) of a data directory, by kind."""

    repos: int = 0
    repo_count: int = 0
    lfs: int = 0
    lfs_objects: int = 0
    temporaries: int = 0
    temporary_count: int = 0
    database: int = 0

    @property
    def total(self) -> int:
        return self.repos + self.lfs + self.temporaries + self.database

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


@dataclass
class Reclaimed:
    """What ``reclaim`` removed (or would remove), and the temporaries it kept as in use."""

    bytes: int = 0
    count: int = 0
    kept: list[str] = field(default_factory=list)


def tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def temporaries(data_dir: Path) -> Iterator[tuple[Path, str]]:
    """(path, kind) of every temporary: kind is ``upload``, ``git`` or ``trash``."""
    lfs = data_dir / "lfs"
    if lfs.is_dir():
        yield from ((p, "upload") for p in lfs.glob(f"*/*/{UPLOAD_PREFIX}*"))
    xet = data_dir / "xet"  # xorbs, their chunk tables, files (hubtool.hub.cas)
    if xet.is_dir():
        yield from ((p, "upload") for p in xet.glob(f"*/*/{UPLOAD_PREFIX}*"))
    repos = data_dir / "repos"
    if not repos.is_dir():
        return
    for root, dirs, files in os.walk(repos):
        here = Path(root)
        for name in list(dirs):
            if name.startswith(".deleted-"):
                dirs.remove(name)
                yield here / name, "trash"
            elif name.startswith("tmp_index_"):
                dirs.remove(name)
                yield here / name, "git"
        for name in files:
            if name.startswith("tmp_obj_"):
                yield here / name, "git"


def in_use(path: Path, kind: str, now: float) -> bool:
    """Whether a writer may still be using this temporary."""
    if kind == "trash":
        return False
    if kind == "upload" and fcntl is not None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)  # releases the lock taken above, if any
        return False
    try:
        return now - path.stat().st_mtime < STALE_AFTER
    except OSError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def reclaim(data_dir: Path, dry_run: bool = False) -> Reclaimed:
    """Remove the temporaries nobody uses (all of them are counted in ``usage``)."""
    done = Reclaimed()
    now = time.time()
    for path, kind in temporaries(Path(data_dir)):
        size = tree_size(path) if path.is_dir() else _size(path)
        if in_use(path, kind, now):
            done.kept.append(str(path))
            continue
        if not dry_run:
            _remove(path)
        done.bytes += size
        done.count += 1
    return done


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def usage(data_dir: Path) -> Usage:
    """What each part of ``data_dir`` takes (temporaries counted apart from what holds them)."""
    data_dir = Path(data_dir)
    result = Usage()
    for path, _kind in temporaries(data_dir):
        result.temporaries += tree_size(path) if path.is_dir() else _size(path)
        result.temporary_count += 1
    lfs = data_dir / "lfs"
    if lfs.is_dir():
        for obj in lfs.glob("*/*/*"):
            if not obj.name.startswith(UPLOAD_PREFIX):
                result.lfs += _size(obj)
                result.lfs_objects += 1
    repos = data_dir / "repos"
    if repos.is_dir():
        result.repos = max(tree_size(repos) - result.temporaries + _upload_bytes(data_dir), 0)
        result.repo_count = sum(
            1 for p in repos.glob("*/*/*.git") if not p.name.startswith(".deleted-")
        )
    result.database = sum(_size(p) for p in data_dir.glob("hub.sqlite3*"))
    return result


def _upload_bytes(data_dir: Path) -> int:
    """Bytes of the upload temporaries (they are under lfs/, not repos/)."""
    lfs = data_dir / "lfs"
    return sum(_size(p) for p in lfs.glob(f"*/*/{UPLOAD_PREFIX}*")) if lfs.is_dir() else 0


def lock_upload(fd: int) -> None:
    """Mark an upload temporary as in use (see ``in_use``); a no-op without ``fcntl``."""
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
