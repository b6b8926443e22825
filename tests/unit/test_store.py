"""The SQLite store: migrations, revision trees, and what happens to a bad database."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from poetry_workshop.errors import StoreError
from poetry_workshop.workshop.store import MIGRATIONS, SessionStore


def test_new_database_is_migrated_and_in_wal_mode(tmp_path):
    store = SessionStore.open(tmp_path / "s.db")
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    store.close()
    SessionStore.open(tmp_path / "s.db").close()  # reopening applies nothing twice


def test_tree_paths_branches_and_prefix_lookup(tmp_path):
    store = SessionStore.open(tmp_path / "s.db")
    rec = store.create_session("write", "tide", 2, {"poet": "p.gguf"})
    req = store.add_node(rec.id, None, "request", "person", "tide")
    d1 = store.add_node(rec.id, req.id, "draft", "poet", "one")
    c1 = store.add_node(rec.id, d1.id, "critique", "educator", "crit")
    d2 = store.add_node(rec.id, c1.id, "draft", "poet", "two")
    c1b = store.add_node(rec.id, d1.id, "critique", "educator", "crit again")  # a branch
    tree = store.tree(rec.id)
    assert [n.id for n in tree.path_to(d2.id)] == [req.id, d1.id, c1.id, d2.id]
    assert [n.id for n in tree.children(d1.id)] == [c1.id, c1b.id]
    assert tree.parent_draft(d2.id).id == d1.id
    got = store.get_session(rec.id[:6])
    assert got.head_id == c1b.id and got.draft_count == 2 and got.models == {"poet": "p.gguf"}
    with pytest.raises(StoreError, match="no session"):
        store.get_session("zzzz")
    store.close()


def test_corrupt_database_is_moved_aside_not_overwritten(tmp_path):
    path = tmp_path / "s.db"
    garbage = b"definitely not sqlite " * 200
    path.write_bytes(garbage)
    store = SessionStore.open(path)
    assert store.moved_aside is not None and store.moved_aside.read_bytes() == garbage
    rec = store.create_session("workshop", "x", 1, {})
    assert [r.id for r in store.list_sessions()] == [rec.id]
    store.close()


def test_a_damaged_page_counts_as_corrupt(tmp_path):
    path = tmp_path / "s.db"
    store = SessionStore.open(path)
    rec = store.create_session("write", "x", 1, {})
    for i in range(200):
        store.add_node(rec.id, None, "request", "person", "line " * 50 + str(i))
    store.close()
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 2 + 512] = b"\x00\xff" * 256  # scribble over a b-tree page
    path.write_bytes(bytes(data))
    reopened = SessionStore.open(path)
    assert reopened.moved_aside is not None
    reopened.close()


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="POETRY_WORKSHOP_HOME"):
        SessionStore.open(blocker / "home" / "s.db")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="is a folder"):
        SessionStore.open(tmp_path / "dir.db")


def test_database_from_a_newer_version_is_refused_and_kept(tmp_path):
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 5}")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer Poetry Workshop"):
        SessionStore.open(path)
    assert path.read_bytes() == before


def test_a_session_and_its_first_node_are_committed_together(tmp_path):
    store = SessionStore.open(tmp_path / "s.db")
    rec, first = store.start_session("workshop", "kettle", 2, {"educator": "e.gguf"}, "draft", "person", "the kettle")
    assert rec.head_id == first.id and rec.draft_count == 1
    assert first.parent_id is None and first.seq == 1 and first.text == "the kettle"
    assert [n.id for n in store.tree(rec.id).path_to(rec.head_id)] == [first.id]
    store.close()


def test_a_failure_between_the_session_and_its_node_leaves_no_empty_session(tmp_path, monkeypatch):
    store = SessionStore.open(tmp_path / "s.db")

    def fail(*args, **kwargs):
        raise OSError("disk gone between the two inserts")

    monkeypatch.setattr(store, "_insert_node", fail)
    with pytest.raises(OSError):
        store.start_session("write", "tide", 2, {}, "request", "person", "tide")
    monkeypatch.undo()
    with pytest.raises(sqlite3.IntegrityError):  # a node the schema refuses takes its session with it
        store.start_session("write", "tide", 2, {}, "no-such-kind", "person", "tide")
    assert store.list_sessions() == []
    store.close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
    conn.close()


KILLED_BETWEEN = """
import os, signal, sys
from poetry_workshop.workshop.store import SessionStore

store = SessionStore.open(sys.argv[1])
store.start_session("write", "kept", 1, {}, "request", "person", "kept")

def die(*args, **kwargs):  # the session row is written, its node not yet
    os.kill(os.getpid(), signal.SIGKILL)

store._insert_node = die
store.start_session("write", "lost", 1, {}, "request", "person", "lost")
"""


def test_kill_9_between_the_session_and_its_node_leaves_no_empty_session(tmp_path):
    path = tmp_path / "s.db"
    child = subprocess.run([sys.executable, "-c", KILLED_BETWEEN, str(path)], capture_output=True, text=True,
                           timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert child.returncode == -signal.SIGKILL, child.stderr
    store = SessionStore.open(path)
    sessions = store.list_sessions()
    assert [s.title for s in sessions] == ["kept"]
    assert all(s.head_id is not None for s in sessions)
    store.close()
