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


def test_a_database_from_before_origins_is_migrated_and_its_sessions_count_as_the_apps(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO sessions (id, title, mode, created_at, updated_at) VALUES ('s1', 'old', 'write', 't', 't')")
    conn.execute("INSERT INTO nodes (id, session_id, parent_id, seq, kind, author, text, created_at)"
                 " VALUES ('n1', 's1', NULL, 1, 'request', 'person', 'old', 't')")
    conn.execute("UPDATE sessions SET head_id = 'n1'")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    store = SessionStore.open(path)
    (old,) = store.list_sessions()
    assert (old.title, old.origin, old.headless, old.current_draft) == ("old", "app", False, "")
    rec, _ = store.start_session("write", "tide", 2, {}, "request", "person", "tide", origin="batch")
    assert store.get_session(rec.id).headless
    with pytest.raises(StoreError, match="unknown session origin"):
        store.start_session("write", "tide", 2, {}, "request", "person", "tide", origin="elsewhere")
    store.close()


def test_the_list_gives_each_session_its_current_draft_and_rename_and_delete_work(tmp_path):
    store = SessionStore.open(tmp_path / "s.db")
    rec, req = store.start_session("write", "tide", 2, {}, "request", "person", "tide")
    d1 = store.add_node(rec.id, req.id, "draft", "poet", "first line one\nsecond")
    c1 = store.add_node(rec.id, d1.id, "critique", "educator", "crit")
    store.add_node(rec.id, c1.id, "draft", "poet", "\nfirst line two\nsecond")
    store.set_head(rec.id, c1.id)  # branched back: the current draft is draft 1 again
    (listed,) = store.list_sessions()
    assert listed.first_line == "first line one"
    store.rename_session(rec.id, "  The   tide ")
    assert store.get_session(rec.id).title == "The tide"
    with pytest.raises(StoreError, match="cannot be empty"):
        store.rename_session(rec.id, "   ")
    other, _ = store.start_session("write", "kept", 2, {}, "request", "person", "kept")
    store.delete_session(rec.id)
    assert [s.id for s in store.list_sessions()] == [other.id]
    assert store.tree(rec.id).nodes == {}
    store.close()


def test_undo_step_deletes_only_leaves_and_puts_head_and_status_back(tmp_path):
    store = SessionStore.open(tmp_path / "s.db")
    rec, req = store.start_session("write", "tide", 2, {}, "request", "person", "tide")
    d1 = store.add_node(rec.id, req.id, "draft", "poet", "one")
    d2 = store.add_node(rec.id, d1.id, "draft", "person", "two")
    c2 = store.add_node(rec.id, d2.id, "critique", "educator", "crit")
    with pytest.raises(StoreError, match="work built on it"):
        store.undo_step(rec.id, [d2.id], d1.id, "open")  # c2 hangs under d2
    assert set(store.tree(rec.id).nodes) == {req.id, d1.id, d2.id, c2.id}
    store.set_status(rec.id, "accepted")
    store.undo_step(rec.id, [d2.id, c2.id], d1.id, "open")
    got = store.get_session(rec.id)
    assert (got.head_id, got.status, set(store.tree(rec.id).nodes)) == (d1.id, "open", {req.id, d1.id})
    store.close()
