"""The session store: revision trees in SQLite.

One database file under the user folder (relocated by POETRY_WORKSHOP_HOME). WAL mode and a
commit per node, so a crash loses at most the generation in flight; a new session is
committed together with its first node, so none is ever found empty. Migrations are an
ordered list applied by `PRAGMA user_version`. A database that SQLite cannot read is moved
aside (never overwritten) and a new one started; a folder that cannot be written is a
one-line error.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from poetry_workshop.errors import StoreError

MIGRATIONS: list[str] = [
    """
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('write', 'workshop')),
        status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted')),
        head_id TEXT,
        target_rounds INTEGER NOT NULL DEFAULT 2,
        models TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE nodes (
        id TEXT PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        parent_id TEXT REFERENCES nodes(id),
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL
            CHECK (kind IN ('request', 'brief', 'draft', 'critique', 'question', 'answer')),
        author TEXT NOT NULL CHECK (author IN ('person', 'educator', 'poet')),
        text TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
    );
    CREATE INDEX nodes_by_session ON nodes (session_id, seq);
    """,
    # Where a session came from: the app, or a headless run (`--batch`, `write`, `critique`)
    # that the app lists tagged and never offers to resume. Older sessions count as the app's.
    """
    ALTER TABLE sessions ADD COLUMN origin TEXT NOT NULL DEFAULT 'app'
    """,
]

ORIGINS = ("app", "batch", "write", "critique")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Node:
    """One step of a session: a request, brief, draft, critique, question or answer."""

    id: str
    session_id: str
    parent_id: str | None
    seq: int
    kind: str
    author: str
    text: str
    meta: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class SessionRecord:
    id: str
    title: str
    mode: str
    status: str
    head_id: str | None
    target_rounds: int
    models: dict[str, Any]
    created_at: str
    updated_at: str
    draft_count: int = 0
    origin: str = "app"  # app, or the headless command that made it: batch, write, critique
    current_draft: str = ""  # the text of the draft on the head's path (filled by list_sessions)

    @property
    def headless(self) -> bool:
        return self.origin != "app"

    @property
    def first_line(self) -> str:
        """The current draft's first line, for telling sessions with one title apart."""
        return next((line.strip() for line in self.current_draft.splitlines() if line.strip()), "")


@dataclass
class RevisionTree:
    """All nodes of one session, linked by parent."""

    nodes: dict[str, Node] = field(default_factory=dict)

    def path_to(self, node_id: str | None) -> list[Node]:
        """The nodes from the root down to `node_id`, in order."""
        path: list[Node] = []
        while node_id is not None:
            node = self.nodes[node_id]
            path.append(node)
            node_id = node.parent_id
        return path[::-1]

    def children(self, node_id: str | None) -> list[Node]:
        return sorted((n for n in self.nodes.values() if n.parent_id == node_id), key=lambda n: n.seq)

    def drafts(self) -> list[Node]:
        return sorted((n for n in self.nodes.values() if n.kind == "draft"), key=lambda n: n.seq)

    def parent_draft(self, node_id: str) -> Node | None:
        """The draft this node revises: the nearest draft above it."""
        node = self.nodes[node_id]
        for above in reversed(self.path_to(node.parent_id)):
            if above.kind == "draft":
                return above
        return None


def _row_to_node(row: sqlite3.Row) -> Node:
    return Node(
        id=row["id"], session_id=row["session_id"], parent_id=row["parent_id"], seq=row["seq"],
        kind=row["kind"], author=row["author"], text=row["text"], meta=json.loads(row["meta"]),
        created_at=row["created_at"],
    )


class _LockedConnection:
    """The few connection methods the store uses, each under the store's lock."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock):
        self._conn, self._lock = conn, lock

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            cursor = self._conn.execute(sql, params)
            # Fetch inside the lock: rows read later could interleave with another thread.
            return _Rows(cursor.fetchall())

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Rows:
    def __init__(self, rows: list):
        self._rows = rows

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list:
        return self._rows


class SessionStore:
    def __init__(self, conn: sqlite3.Connection, path: Path, moved_aside: Path | None = None):
        # The app reads from its UI thread while a worker writes: one lock keeps each
        # statement (and each transaction) whole.
        self._lock = threading.RLock()
        self._conn = _LockedConnection(conn, self._lock)
        self.path = path
        self.moved_aside = moved_aside  # where a corrupt database went, for the front end to say

    # ------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: Path) -> SessionStore:
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{path.parent}: cannot create the session folder ({exc.strerror}); "
                "set POETRY_WORKSHOP_HOME to a writable folder"
            ) from None
        if path.is_dir():
            raise StoreError(f"{path}: is a folder, not a session database; move it away or set POETRY_WORKSHOP_HOME")
        moved = None
        try:
            conn = cls._connect(path)
        except sqlite3.DatabaseError as exc:
            if not cls._is_corruption(exc):
                raise cls._unwritable(path, exc) from None
            moved = cls._move_aside(path)
            try:
                conn = cls._connect(path)
            except sqlite3.DatabaseError as exc2:
                raise cls._unwritable(path, exc2) from None
        return cls(conn, path, moved)

    @staticmethod
    def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
        text = str(exc).lower()
        return "not a database" in text or "malformed" in text or "corrupt" in text

    @staticmethod
    def _unwritable(path: Path, exc: Exception) -> StoreError:
        return StoreError(
            f"{path}: cannot open the session database for writing ({exc}); "
            "check its permissions or set POETRY_WORKSHOP_HOME to a writable folder"
        )

    @staticmethod
    def _move_aside(path: Path) -> Path:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        target = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
            n += 1
        os.replace(path, target)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.replace(side, target.with_name(target.name + suffix))
        return target

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        try:
            conn.row_factory = sqlite3.Row
            # Read-only checks first: a database we refuse must be left byte for byte as it was.
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({check})")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise sqlite3.OperationalError(
                    f"it was written by a newer Poetry Workshop (schema {version}); upgrade the workshop"
                )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            for number in range(version, len(MIGRATIONS)):
                conn.execute("BEGIN IMMEDIATE")
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number + 1}")
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        self._conn.close()

    # ------------------------------------------------------------------------ writing
    def _write(self, sql: str, params: tuple) -> None:
        try:
            self._conn.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise self._unwritable(self.path, exc) from None

    def create_session(self, mode: str, title: str, target_rounds: int, models: dict[str, Any]) -> SessionRecord:
        """An empty session, with no node yet (a session begun by a person is `start_session`)."""
        sid = uuid.uuid4().hex[:12]
        try:
            with self._transaction():
                self._insert_session(sid, mode, title, target_rounds, models, _now())
        except sqlite3.OperationalError as exc:
            raise self._unwritable(self.path, exc) from None
        return self.get_session(sid)

    def start_session(
        self, mode: str, title: str, target_rounds: int, models: dict[str, Any], kind: str, author: str, text: str,
        origin: str = "app",
    ) -> tuple[SessionRecord, Node]:
        """A session and its first node (the request or the poem) as its head, in one
        transaction: a crash never leaves a session with nothing in it."""
        sid, nid = uuid.uuid4().hex[:12], uuid.uuid4().hex[:12]
        now = _now()
        try:
            with self._transaction():
                self._insert_session(sid, mode, title, target_rounds, models, now, origin)
                self._insert_node(nid, sid, None, kind, author, text, None, now)
        except sqlite3.OperationalError as exc:
            raise self._unwritable(self.path, exc) from None
        return self.get_session(sid), self.get_node(nid)

    def add_node(
        self, session_id: str, parent_id: str | None, kind: str, author: str, text: str,
        meta: dict[str, Any] | None = None,
    ) -> Node:
        """Commit one node and make it the session's head, in one transaction."""
        nid = uuid.uuid4().hex[:12]
        try:
            with self._transaction():
                self._insert_node(nid, session_id, parent_id, kind, author, text, meta, _now())
        except sqlite3.OperationalError as exc:
            raise self._unwritable(self.path, exc) from None
        return self.get_node(nid)

    # Statements for use inside `_transaction` only: each leaves the commit to its caller.
    def _insert_session(self, sid: str, mode: str, title: str, target_rounds: int, models: dict[str, Any],
                        now: str, origin: str = "app") -> None:
        if origin not in ORIGINS:
            raise StoreError(f"unknown session origin {origin!r}; one of {', '.join(ORIGINS)}")
        self._conn.execute(
            "INSERT INTO sessions (id, title, mode, target_rounds, models, created_at, updated_at, origin)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (sid, title, mode, target_rounds, json.dumps(models), now, now, origin),
        )

    def _insert_node(self, nid: str, session_id: str, parent_id: str | None, kind: str, author: str, text: str,
                     meta: dict[str, Any] | None, now: str) -> None:
        seq = self._conn.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM nodes WHERE session_id = ?", (session_id,)
        ).fetchone()[0]
        self._conn.execute(
            "INSERT INTO nodes (id, session_id, parent_id, seq, kind, author, text, meta, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (nid, session_id, parent_id, seq, kind, author, text, json.dumps(meta or {}), now),
        )
        self._conn.execute("UPDATE sessions SET head_id = ?, updated_at = ? WHERE id = ?", (nid, now, session_id))

    def set_head(self, session_id: str, node_id: str) -> None:
        self._write("UPDATE sessions SET head_id = ?, updated_at = ? WHERE id = ?", (node_id, _now(), session_id))

    def set_status(self, session_id: str, status: str) -> None:
        self._write("UPDATE sessions SET status = ?, updated_at = ? WHERE id = ?", (status, _now(), session_id))

    def set_target_rounds(self, session_id: str, rounds: int) -> None:
        self._write("UPDATE sessions SET target_rounds = ? WHERE id = ?", (rounds, session_id))

    def rename_session(self, session_id: str, title: str) -> None:
        title = " ".join(title.split())
        if not title:
            raise StoreError("a session's title cannot be empty; type a few words")
        self._write("UPDATE sessions SET title = ? WHERE id = ?", (title, session_id))

    def delete_session(self, session_id: str) -> None:
        """The session and every node of it, in one transaction."""
        try:
            with self._transaction():
                # Children before parents: nodes.parent_id references nodes(id).
                self._conn.execute("DELETE FROM nodes WHERE session_id = ?", (session_id,))
                self._conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        except sqlite3.OperationalError as exc:
            raise self._unwritable(self.path, exc) from None

    def undo_step(self, session_id: str, node_ids: list[str], head_id: str | None, status: str) -> None:
        """Take back one step: delete the nodes it made (leaves of the tree only, so nothing
        else loses its parent) and put the head and status back, in one transaction."""
        try:
            with self._transaction():
                going = set(node_ids)
                for nid in node_ids:
                    children = self._conn.execute("SELECT id FROM nodes WHERE parent_id = ?", (nid,)).fetchall()
                    if any(row[0] not in going for row in children):
                        raise StoreError("that step has work built on it since; branch from an earlier draft instead")
                for nid in sorted(node_ids, key=self._seq, reverse=True):
                    self._conn.execute("DELETE FROM nodes WHERE id = ? AND session_id = ?", (nid, session_id))
                self._conn.execute("UPDATE sessions SET head_id = ?, status = ?, updated_at = ? WHERE id = ?",
                                   (head_id, status, _now(), session_id))
        except sqlite3.OperationalError as exc:
            raise self._unwritable(self.path, exc) from None

    def _seq(self, node_id: str) -> int:
        row = self._conn.execute("SELECT seq FROM nodes WHERE id = ?", (node_id,)).fetchone()
        return row[0] if row else 0

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ------------------------------------------------------------------------ reading
    def get_node(self, node_id: str) -> Node:
        row = self._conn.execute("SELECT * FROM nodes WHERE id = ?", (node_id,)).fetchone()
        if row is None:
            raise StoreError(f"no node {node_id!r} in {self.path}")
        return _row_to_node(row)

    def get_session(self, session_id: str) -> SessionRecord:
        rows = self._conn.execute(
            "SELECT s.*, (SELECT COUNT(*) FROM nodes n WHERE n.session_id = s.id AND n.kind = 'draft') AS drafts"
            " FROM sessions s WHERE s.id = ? OR s.id LIKE ? ORDER BY s.id = ? DESC",
            (session_id, session_id + "%", session_id),
        ).fetchall()
        if not rows:
            raise StoreError(f"no session {session_id!r} in {self.path}; `workshop sessions` lists them")
        if len(rows) > 1 and rows[0]["id"] != session_id:
            raise StoreError(f"session id {session_id!r} is ambiguous; give more of it")
        return self._record(rows[0])

    @staticmethod
    def _record(row: sqlite3.Row) -> SessionRecord:
        return SessionRecord(
            id=row["id"], title=row["title"], mode=row["mode"], status=row["status"],
            head_id=row["head_id"], target_rounds=row["target_rounds"], models=json.loads(row["models"]),
            created_at=row["created_at"], updated_at=row["updated_at"], draft_count=row["drafts"],
            origin=row["origin"], current_draft=row["current_draft"] if "current_draft" in row.keys() else "",
        )

    def list_sessions(self) -> list[SessionRecord]:
        """Every session, newest first, each with the text of its current draft."""
        rows = self._conn.execute(
            # Walk up from each head to the nearest draft: the draft the session is on now.
            "WITH RECURSIVE up(sid, id, parent_id, kind, text) AS ("
            " SELECT s.id, n.id, n.parent_id, n.kind, n.text FROM sessions s JOIN nodes n ON n.id = s.head_id"
            " UNION ALL"
            " SELECT up.sid, n.id, n.parent_id, n.kind, n.text FROM up JOIN nodes n ON n.id = up.parent_id"
            " WHERE up.kind != 'draft')"
            " SELECT s.*, (SELECT COUNT(*) FROM nodes n WHERE n.session_id = s.id AND n.kind = 'draft') AS drafts,"
            " COALESCE((SELECT text FROM up WHERE up.sid = s.id AND up.kind = 'draft'), '') AS current_draft"
            " FROM sessions s ORDER BY s.updated_at DESC, s.rowid DESC"
        ).fetchall()
        return [self._record(r) for r in rows]

    def tree(self, session_id: str) -> RevisionTree:
        rows = self._conn.execute("SELECT * FROM nodes WHERE session_id = ? ORDER BY seq", (session_id,)).fetchall()
        return RevisionTree({r["id"]: _row_to_node(r) for r in rows})
