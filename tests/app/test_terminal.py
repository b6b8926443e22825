"""The real app in a real terminal (tmux): a request, two revisions, a branch from draft 1,
accept, export, quit; then check the screen said so and the session is stored.

Needs tmux. CI installs it (.ci/run) and this test fails there without it; elsewhere a
missing tmux skips it with the reason.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.cli import ROOT

pytestmark = pytest.mark.model

DEADLINE_S = 240


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _screen(name: str) -> str:
    return _tmux("capture-pane", "-p", "-t", name)


def _wait_for(name: str, db: Path, condition, what: str) -> str:
    """Poll the screen and the database until `condition(screen, rows)` holds."""
    deadline = time.monotonic() + DEADLINE_S
    screen = ""
    while time.monotonic() < deadline:
        screen = _screen(name)
        rows = []
        if db.exists():
            conn = sqlite3.connect(db)
            try:
                rows = conn.execute("SELECT kind, author FROM nodes ORDER BY seq").fetchall()
            except sqlite3.OperationalError:
                rows = []
            finally:
                conn.close()
        if condition(screen, rows):
            return screen
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")


@pytest.fixture
def tmux_available():
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed; .ci/run installs it")
        pytest.skip("tmux is not installed (apt-get install tmux) — the terminal test needs it")


def test_journey_in_tmux(tmux_available, small_config, workshop_home, tmp_path):
    """request → revise twice → branch from draft 1 → accept → export, on the starter model;
    the final screen is kept in the test's folder (final-screen.txt) and printed."""
    name = f"workshop-{uuid.uuid4().hex[:8]}"
    db = workshop_home / "sessions.db"
    env = f"POETRY_WORKSHOP_HOME={shlex.quote(str(workshop_home))} TERM=xterm-256color"
    exit_file = tmp_path / "exit-code"
    # Textual draws on stderr, so it stays on the terminal; the exit code goes to a file.
    # Textual takes COLUMNS/LINES over the terminal's size: a tmux server may carry stale ones.
    command = f"unset COLUMNS LINES; cd {shlex.quote(str(ROOT))} && {env} {shlex.quote(sys.executable)} -m poetry_workshop " \
              f"--config {shlex.quote(str(small_config))}; echo $? > {shlex.quote(str(exit_file))}"
    _tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "40", command)
    # A tmux server already running for someone else may hold its own default size.
    _tmux("resize-window", "-t", name, "-x", "120", "-y", "40")

    def critiques(rows) -> int:
        return [k for k, _ in rows].count("critique")

    try:
        _wait_for(name, db, lambda s, r: "Write with the Poet" in s, "the start screen")
        _tmux("send-keys", "-t", name, "-l", "a short poem about a heron at dusk")
        _tmux("send-keys", "-t", name, "Enter")
        screen = _wait_for(
            name, db, lambda s, r: [k for k, _ in r][-1:] == ["critique"] and "│ idle" in s, "the first critique")
        assert "Draft 1 · Poet" in screen and "Revision history" in screen
        assert "starter model — train your own" in screen

        for round_ in (2, 3):
            _tmux("send-keys", "-t", name, "r")
            screen = _wait_for(name, db, lambda s, r, n=round_: critiques(r) == n and "│ idle" in s,
                               f"follow-up {round_ - 1}")
            assert f"─ Draft {round_} · Poet" in screen

        # Branch from draft 1: the history starts Request, Brief, Draft 1.
        _tmux("send-keys", "-t", name, *["Up"] * 12, "Down", "Down")
        screen = _wait_for(name, db, lambda s, r: "Draft 1: critiques" in s, "draft 1 selected")
        _tmux("send-keys", "-t", name, "b")
        screen = _wait_for(name, db, lambda s, r: "new branch: the next step starts here" in s, "the branch")

        _tmux("send-keys", "-t", name, "a")
        screen = _wait_for(name, db, lambda s, r: "accepted" in s or "Accept it as the final poem anyway" in s,
                           "the accepted poem (or the question first, for a draft cut at its limit)")
        if "Accept it as the final poem anyway" in screen:
            _tmux("send-keys", "-t", name, "y")
            screen = _wait_for(name, db, lambda s, r: "accepted" in s, "the accepted poem")
        assert "─ Draft 1 · Poet · accepted" in screen

        _tmux("send-keys", "-t", name, "x")
        screen = _wait_for(name, db, lambda s, r: "Exported" in s, "the export")
        final = tmp_path / "final-screen.txt"
        final.write_text(screen, encoding="utf-8")
        print(f"\nthe final screen ({final}):\n{screen}")
        exported = list((workshop_home / "exports").glob("*.md"))
        assert len(exported) == 1 and "## Final poem" in exported[0].read_text(encoding="utf-8")

        _tmux("send-keys", "-t", name, "C-q")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if subprocess.run(["tmux", "has-session", "-t", name], capture_output=True).returncode != 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the app did not quit on Ctrl+Q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)

    conn = sqlite3.connect(db)
    (status, drafts, head_kind) = conn.execute(
        "SELECT s.status, (SELECT COUNT(*) FROM nodes n WHERE n.session_id = s.id AND n.kind = 'draft'),"
        " (SELECT kind FROM nodes n WHERE n.id = s.head_id) FROM sessions s"
    ).fetchone()
    conn.close()
    assert (status, drafts, head_kind) == ("accepted", 3, "draft")
    assert exit_file.read_text().strip() == "0"
