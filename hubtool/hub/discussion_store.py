"""The discussions and pull requests of every repo, and their events, in the Hub's SQLite
index (the routes are ``hubtool.hub.discussions``)."""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import time
from typing import Any

from hubtool.hub.db import Database
from hubtool.hub.gitstore import iso_from_epoch
from hubtool.hub.protocol import ApiError

PAGE = 50  # discussions per page, as the Hub lists them


def now_iso() -> str:
    return iso_from_epoch(time.time())


EVENTS = """
CREATE TABLE IF NOT EXISTS discussion_events (
    id TEXT PRIMARY KEY,
    repo INTEGER NOT NULL REFERENCES repos (rowid) ON DELETE CASCADE,
    num INTEGER NOT NULL,
    type TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS discussion_events_of ON discussion_events (repo, num);
"""
COLUMNS = {  # added to pull_requests (the table predates discussions)
    "is_pr": "INTEGER NOT NULL DEFAULT 1",
    "target": "TEXT NOT NULL DEFAULT 'refs/heads/main'",
    "merge_commit": "TEXT",
}


class Discussions:
    """The discussions of every repo, in the Hub's SQLite index."""

    def __init__(self, db: Database) -> None:
        self.db = db
        conn = db.conn
        have = {r["name"] for r in conn.execute("PRAGMA table_info(pull_requests)")}
        for name, kind in COLUMNS.items():
            if name not in have:
                with contextlib.suppress(sqlite3.OperationalError):  # added meanwhile
                    conn.execute(f"ALTER TABLE pull_requests ADD COLUMN {name} {kind}")
        conn.executescript(EVENTS)

    def open(
        self, rowid: int, title: str, author: str, is_pr: bool, status: str, target: str
    ) -> int:
        with self.db.tx() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(num), 0) + 1 AS n FROM pull_requests WHERE repo=?", (rowid,)
            ).fetchone()
            num = int(row["n"])
            conn.execute(
                "INSERT INTO pull_requests (repo, num, title, author, status, created_at, "
                "is_pr, target) VALUES (?,?,?,?,?,?,?,?)",
                (rowid, num, title, author, status, now_iso(), int(is_pr), target),
            )
        return num

    def get(self, rowid: int, num: int) -> sqlite3.Row:
        row = self.db.conn.execute(
            "SELECT * FROM pull_requests WHERE repo=? AND num=?", (rowid, num)
        ).fetchone()
        if row is None:
            raise ApiError(404, "Discussion not found", "EntryNotFound")
        return row

    def page(
        self, rowid: int, kind: str | None, status: str | None, author: str | None, page: int
    ) -> tuple[list[sqlite3.Row], int]:
        where: list[str] = ["repo=?"]
        args: list[Any] = [rowid]
        if kind in ("discussion", "pull_request"):
            where.append("is_pr=?")
            args.append(int(kind == "pull_request"))
        if status in ("open", "closed"):
            where.append("status IN ('open', 'draft')" if status == "open" else "status=?")
            args += [] if status == "open" else ["closed"]
        if author:
            where.append("author=?")
            args.append(author)
        sql = " AND ".join(where)
        conn = self.db.conn
        total = conn.execute(f"SELECT COUNT(*) FROM pull_requests WHERE {sql}", args).fetchone()
        rows = conn.execute(
            f"SELECT * FROM pull_requests WHERE {sql} ORDER BY num DESC LIMIT ? OFFSET ?",
            [*args, PAGE, page * PAGE],
        ).fetchall()
        return rows, int(total[0])

    def update(self, rowid: int, num: int, **fields: Any) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        self.db.conn.execute(
            f"UPDATE pull_requests SET {sets} WHERE repo=? AND num=?",
            [*fields.values(), rowid, num],
        )

    def add_event(
        self, rowid: int, num: int, kind: str, author: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        event_id = secrets.token_hex(12)
        created = now_iso()
        self.db.conn.execute(
            "INSERT INTO discussion_events (id, repo, num, type, author, created_at, data) "
            "VALUES (?,?,?,?,?,?,?)",
            (event_id, rowid, num, kind, author, created, json.dumps(data)),
        )
        return _event(event_id, kind, author, created, data)

    def events(self, rowid: int, num: int) -> list[dict[str, Any]]:
        rows = self.db.conn.execute(
            "SELECT * FROM discussion_events WHERE repo=? AND num=? ORDER BY rowid", (rowid, num)
        ).fetchall()
        return [
            _event(r["id"], r["type"], r["author"], r["created_at"], json.loads(r["data"]))
            for r in rows
        ]

    def event(self, rowid: int, num: int, event_id: str) -> sqlite3.Row:
        row = self.db.conn.execute(
            "SELECT * FROM discussion_events WHERE id=? AND repo=? AND num=?",
            (event_id, rowid, num),
        ).fetchone()
        if row is None or row["type"] != "comment":
            raise ApiError(404, "Comment not found", "EntryNotFound")
        return row

    def replace(self, row: sqlite3.Row, data: dict[str, Any]) -> dict[str, Any]:
        self.db.conn.execute(
            "UPDATE discussion_events SET data=? WHERE id=?", (json.dumps(data), row["id"])
        )
        return _event(row["id"], row["type"], row["author"], row["created_at"], data)

    def comments(self, rowid: int, num: int) -> int:
        row = self.db.conn.execute(
            "SELECT COUNT(*) FROM discussion_events WHERE repo=? AND num=? AND type='comment'",
            (rowid, num),
        ).fetchone()
        return int(row[0])


def _event(
    event_id: str, kind: str, author: str, created: str, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": kind,
        "createdAt": created,
        "author": {"name": author, "type": "user"},
        "data": data,
    }
