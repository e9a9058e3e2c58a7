"""SQLite: the local Hub's search metadata, users, tokens and pull requests.

Git is the record of repository contents; this database is an index over it (plus the
things git does not hold: visibility, downloads, likes, users). ``HubService.resync``
rebuilds a repository's row from git, so a crash between a ref update and a row update
heals at the next start.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS repos (
    rowid INTEGER PRIMARY KEY,
    repo_type TEXT NOT NULL,
    repo_id TEXT NOT NULL,
    namespace TEXT,
    object_id TEXT NOT NULL,
    private INTEGER NOT NULL DEFAULT 0,
    gated TEXT NOT NULL DEFAULT 'false',
    disabled INTEGER NOT NULL DEFAULT 0,
    metadata_only INTEGER NOT NULL DEFAULT 0,
    sha TEXT,
    created_at TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    downloads INTEGER NOT NULL DEFAULT 0,
    likes INTEGER NOT NULL DEFAULT 0,
    trending REAL NOT NULL DEFAULT 0,
    pipeline_tag TEXT,
    library_name TEXT,
    num_parameters INTEGER,
    meta TEXT NOT NULL DEFAULT '{}',
    UNIQUE (repo_type, repo_id)
);
CREATE INDEX IF NOT EXISTS repos_downloads ON repos (repo_type, downloads DESC, rowid);
CREATE INDEX IF NOT EXISTS repos_likes ON repos (repo_type, likes DESC, rowid);
CREATE INDEX IF NOT EXISTS repos_modified ON repos (repo_type, last_modified DESC, rowid);
CREATE INDEX IF NOT EXISTS repos_created ON repos (repo_type, created_at DESC, rowid);
CREATE INDEX IF NOT EXISTS repos_namespace ON repos (namespace);
CREATE TABLE IF NOT EXISTS repo_tags (
    tag TEXT NOT NULL,
    repo INTEGER NOT NULL REFERENCES repos (rowid) ON DELETE CASCADE,
    PRIMARY KEY (tag, repo)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS repo_tags_repo ON repo_tags (repo);
CREATE TABLE IF NOT EXISTS lfs_links (
    repo INTEGER NOT NULL REFERENCES repos (rowid) ON DELETE CASCADE,
    oid TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (repo, oid)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    fullname TEXT NOT NULL,
    email TEXT,
    is_org INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    org TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    PRIMARY KEY (org, user)
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    role TEXT NOT NULL,
    display_name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS likes (
    repo INTEGER NOT NULL REFERENCES repos (rowid) ON DELETE CASCADE,
    user TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (repo, user)
);
CREATE TABLE IF NOT EXISTS repo_redirects (
    repo_type TEXT NOT NULL,
    old_id TEXT NOT NULL COLLATE NOCASE,
    repo INTEGER NOT NULL REFERENCES repos (rowid) ON DELETE CASCADE,
    PRIMARY KEY (repo_type, old_id)
);
CREATE TABLE IF NOT EXISTS access_requests (
    repo INTEGER NOT NULL REFERENCES repos (rowid) ON DELETE CASCADE,
    user TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    timestamp TEXT NOT NULL,
    PRIMARY KEY (repo, user)
);
CREATE TABLE IF NOT EXISTS pull_requests (
    repo INTEGER NOT NULL REFERENCES repos (rowid) ON DELETE CASCADE,
    num INTEGER NOT NULL,
    title TEXT NOT NULL,
    author TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    created_at TEXT NOT NULL,
    PRIMARY KEY (repo, num)
);
"""


@dataclass
class RepoRow:
    rowid: int
    repo_type: str
    repo_id: str
    namespace: str | None
    object_id: str
    private: bool
    gated: str
    disabled: bool
    metadata_only: bool
    sha: str | None
    created_at: str
    last_modified: str
    downloads: int
    likes: int
    trending: float
    pipeline_tag: str | None
    library_name: str | None
    num_parameters: int | None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> RepoRow:
        d = dict(row)
        d["meta"] = json.loads(d["meta"])
        d["private"], d["disabled"] = bool(d["private"]), bool(d["disabled"])
        d["metadata_only"] = bool(d["metadata_only"])
        return cls(**d)

    @property
    def tags(self) -> list[str]:
        return list(self.meta.get("tags", []))


@dataclass(frozen=True)
class ListQuery:
    repo_type: str
    viewer_namespaces: tuple[str, ...] = ()
    search: str | None = None
    author: str | None = None
    filters: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    gated: bool | None = None
    min_params: int | None = None
    max_params: int | None = None
    sort: str = "downloads"
    offset: int = 0
    limit: int = 1000


_SORTS = {
    "downloads": "downloads DESC",
    "likes": "likes DESC",
    "lastModified": "last_modified DESC",
    "last_modified": "last_modified DESC",
    "createdAt": "created_at DESC",
    "created_at": "created_at DESC",
    "trendingScore": "trending DESC",
    "trending_score": "trending DESC",
}


class Database:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self.conn.executescript(SCHEMA)
        with contextlib.suppress(sqlite3.IntegrityError):  # ids differ by case only: as on the Hub
            self.conn.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS repos_id_nocase "
                "ON repos (repo_type, repo_id COLLATE NOCASE)"
            )
        self._add_column("lfs_links", "pushed_at", "TEXT")  # data from before lfs-files
        self._add_column("users", "private_by_default", "INTEGER NOT NULL DEFAULT 0")

    def _add_column(self, table: str, name: str, kind: str) -> None:
        """A column a data directory made by an earlier hubtool lacks."""
        have = {r["name"] for r in self.conn.execute(f"PRAGMA table_info({table})")}
        if name not in have:
            with contextlib.suppress(sqlite3.OperationalError):  # added meanwhile
                self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- repos ------------------------------------------------------------------------------
    def get_repo(self, repo_type: str, repo_id: str, follow: bool = True) -> RepoRow | None:
        """The repo of that id, in any case; ``follow``: or the one moved away from it."""
        row = self.conn.execute(
            "SELECT * FROM repos WHERE repo_type=? AND repo_id=? COLLATE NOCASE",
            (repo_type, repo_id),
        ).fetchone()
        if row is None and follow:
            row = self.conn.execute(
                "SELECT repos.* FROM repo_redirects r JOIN repos ON repos.rowid = r.repo "
                "WHERE r.repo_type=? AND r.old_id=?",
                (repo_type, repo_id),
            ).fetchone()
        return RepoRow.from_sql(row) if row else None

    def rename_repo(self, rowid: int, repo_type: str, old: str, new: str, namespace: str) -> None:
        """The row takes the new id; the old one keeps leading to it (as on the Hub)."""
        with self.tx() as conn:
            conn.execute(
                "UPDATE repos SET repo_id=?, namespace=? WHERE rowid=?", (new, namespace, rowid)
            )
            conn.execute(
                "DELETE FROM repo_redirects WHERE repo_type=? AND old_id=?", (repo_type, new)
            )
            conn.execute(
                "INSERT OR REPLACE INTO repo_redirects (repo_type, old_id, repo) VALUES (?, ?, ?)",
                (repo_type, old, rowid),
            )

    def forget_redirect(self, repo_type: str, repo_id: str) -> None:
        self.conn.execute(
            "DELETE FROM repo_redirects WHERE repo_type=? AND old_id=?", (repo_type, repo_id)
        )

    def repos_of(self, namespace: str) -> list[RepoRow]:
        rows = self.conn.execute(
            "SELECT * FROM repos WHERE namespace=? AND metadata_only=0 ORDER BY repo_id",
            (namespace,),
        ).fetchall()
        return [RepoRow.from_sql(r) for r in rows]

    def all_repos(self, metadata_only: bool = False) -> list[RepoRow]:
        rows = self.conn.execute(
            "SELECT * FROM repos WHERE metadata_only=?", (int(metadata_only),)
        ).fetchall()
        return [RepoRow.from_sql(r) for r in rows]

    def insert_repo(self, conn: sqlite3.Connection, values: dict[str, Any]) -> int:
        values = {**values, "meta": json.dumps(values.get("meta", {}))}
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cur = conn.execute(f"INSERT INTO repos ({cols}) VALUES ({marks})", tuple(values.values()))
        rowid = int(cur.lastrowid or 0)
        self._set_tags(conn, rowid, json.loads(values["meta"]).get("tags", []))
        return rowid

    def update_repo(self, conn: sqlite3.Connection, rowid: int, values: dict[str, Any]) -> None:
        if "meta" in values:
            self._set_tags(conn, rowid, values["meta"].get("tags", []))
            values = {**values, "meta": json.dumps(values["meta"])}
        assignments = ", ".join(f"{k}=?" for k in values)
        conn.execute(f"UPDATE repos SET {assignments} WHERE rowid=?", (*values.values(), rowid))

    def _set_tags(self, conn: sqlite3.Connection, rowid: int, tags: Iterable[str]) -> None:
        conn.execute("DELETE FROM repo_tags WHERE repo=?", (rowid,))
        conn.executemany(
            "INSERT OR IGNORE INTO repo_tags (tag, repo) VALUES (?, ?)", [(t, rowid) for t in tags]
        )

    def delete_repo(self, rowid: int) -> None:
        with self.tx() as conn:
            conn.execute("DELETE FROM repos WHERE rowid=?", (rowid,))

    def bump_downloads(self, rowid: int) -> None:
        self.conn.execute("UPDATE repos SET downloads = downloads + 1 WHERE rowid=?", (rowid,))

    def list_repos(self, q: ListQuery) -> list[RepoRow]:
        where = ["repo_type = ?"]
        args: list[Any] = [q.repo_type]
        visible = ", ".join("?" for _ in q.viewer_namespaces)
        where.append(f"(private = 0 OR namespace IN ({visible}))" if visible else "private = 0")
        args += q.viewer_namespaces
        if q.filters:  # every filter is a tag the repo must carry (AND)
            tagged = " INTERSECT ".join(
                "SELECT repo FROM repo_tags WHERE tag = ?" for _ in q.filters
            )
            where.append(f"rowid IN ({tagged})")
            args += q.filters
        for column, value in (("namespace", q.author), ("pipeline_tag", q.pipeline_tag)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if q.search:  # scans the (repo_type, repo_id) index, not the wide rows
            where.append(
                "rowid IN (SELECT rowid FROM repos INDEXED BY sqlite_autoindex_repos_1 "
                "WHERE repo_type = ? AND repo_id LIKE ? ESCAPE '\\')"
            )
            args.append(q.repo_type)
            escaped = q.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        if q.gated is not None:
            where.append("gated = 'false'" if not q.gated else "gated != 'false'")
        if q.min_params is not None:
            where.append("num_parameters >= ?")
            args.append(q.min_params)
        if q.max_params is not None:
            where.append("num_parameters <= ?")
            args.append(q.max_params)
        order = _SORTS.get(q.sort, "downloads DESC")
        sql = (
            f"SELECT * FROM repos WHERE {' AND '.join(where)} ORDER BY {order}, rowid "
            f"LIMIT ? OFFSET ?"
        )
        rows = self.conn.execute(sql, (*args, q.limit, q.offset)).fetchall()
        return [RepoRow.from_sql(r) for r in rows]

    # -- LFS links --------------------------------------------------------------------------
    def link_lfs(self, rowid: int, oid: str, size: int) -> None:
        self.conn.execute(
            "INSERT OR IGNORE INTO lfs_links (repo, oid, size, pushed_at) VALUES (?, ?, ?, ?)",
            (rowid, oid, size, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())),
        )

    def lfs_links_of(self, rowid: int) -> list[tuple[str, int, str | None]]:
        """(oid, size, when it was first sent) of every LFS object the repo holds."""
        rows = self.conn.execute(
            "SELECT oid, size, pushed_at FROM lfs_links WHERE repo=? ORDER BY pushed_at, oid",
            (rowid,),
        )
        return [(r["oid"], r["size"], r["pushed_at"]) for r in rows]

    def unlink_lfs(self, rowid: int, oid: str) -> int:
        """The repo lets go of an object; how many other repos still hold it."""
        with self.tx() as conn:
            conn.execute("DELETE FROM lfs_links WHERE repo=? AND oid=?", (rowid, oid))
            row = conn.execute("SELECT COUNT(*) FROM lfs_links WHERE oid=?", (oid,)).fetchone()
        return int(row[0])

    def linked_lfs(self, rowid: int, oids: Iterable[str]) -> dict[str, int]:
        oids = list(oids)
        found: dict[str, int] = {}
        for i in range(0, len(oids), 500):
            chunk = oids[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self.conn.execute(
                f"SELECT oid, size FROM lfs_links WHERE repo=? AND oid IN ({marks})",
                (rowid, *chunk),
            ):
                found[row["oid"]] = row["size"]
        return found

    # -- likes ------------------------------------------------------------------------------
    def set_like(self, rowid: int, user: str, liked: bool) -> None:
        """Like or unlike (once each), the repo's count kept with it."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        with self.tx() as conn:
            if liked:
                changed = conn.execute(
                    "INSERT OR IGNORE INTO likes (repo, user, created_at) VALUES (?, ?, ?)",
                    (rowid, user, now),
                ).rowcount
            else:
                changed = -conn.execute(
                    "DELETE FROM likes WHERE repo=? AND user=?", (rowid, user)
                ).rowcount
            if changed:  # a catalog row's count is the real Hub's: moved by one, not reset
                conn.execute(
                    "UPDATE repos SET likes = MAX(likes + ?, 0) WHERE rowid=?", (changed, rowid)
                )

    def likes_of(self, user: str) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT likes.created_at, repos.repo_id, repos.repo_type, repos.private, "
            "repos.namespace FROM likes JOIN repos ON repos.rowid = likes.repo "
            "WHERE likes.user=? ORDER BY likes.created_at DESC",
            (user,),
        ).fetchall()

    def likers_of(self, rowid: int) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT users.name, users.fullname FROM likes JOIN users ON users.name = likes.user "
            "WHERE likes.repo=? ORDER BY likes.created_at",
            (rowid,),
        ).fetchall()

    # -- gated repos ------------------------------------------------------------------------
    def access_status(self, rowid: int, user: str) -> str | None:
        row = self.conn.execute(
            "SELECT status FROM access_requests WHERE repo=? AND user=?", (rowid, user)
        ).fetchone()
        return row["status"] if row else None

    def set_access(self, rowid: int, user: str, status: str, reason: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO access_requests (repo, user, request_id, status, reason, timestamp) "
            "VALUES (?, ?, lower(hex(randomblob(12))), ?, ?, ?) ON CONFLICT (repo, user) "
            "DO UPDATE SET status=excluded.status, reason=excluded.reason",
            (rowid, user, status, reason, time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())),
        )

    def access_requests(self, rowid: int, status: str) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT * FROM access_requests WHERE repo=? AND status=? ORDER BY timestamp",
            (rowid, status),
        ).fetchall()

    def access_user(self, rowid: int, request_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT user FROM access_requests WHERE repo=? AND request_id=?", (rowid, request_id)
        ).fetchone()
        return row["user"] if row else None

    # -- users, orgs, tokens ----------------------------------------------------------------
    def get_user(self, name: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()

    def add_user(
        self,
        name: str,
        fullname: str,
        email: str | None,
        is_org: bool,
        created_at: str,
        private_by_default: bool = False,
    ) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO users (name, fullname, email, is_org, created_at, private_by_default)"
                " VALUES (?,?,?,?,?,?)",
                (name, fullname, email, int(is_org), created_at, int(private_by_default)),
            )

    def add_member(self, org: str, user: str) -> None:
        with self.tx() as conn:
            conn.execute("INSERT OR IGNORE INTO members (org, user) VALUES (?, ?)", (org, user))

    def orgs_of(self, user: str) -> list[str]:
        rows = self.conn.execute("SELECT org FROM members WHERE user=? ORDER BY org", (user,))
        return [r["org"] for r in rows]

    def add_token(
        self, token_hash: str, user: str, role: str, display_name: str, created_at: str
    ) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO tokens (hash, user, role, display_name, created_at) "
                "VALUES (?,?,?,?,?)",
                (token_hash, user, role, display_name, created_at),
            )

    def get_token(self, token_hash: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM tokens WHERE hash=?", (token_hash,)).fetchone()
