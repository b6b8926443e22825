"""Ctrl+Q mid-generation: the generation is cancelled at its next token, the partial text
is stored marked stopped, and the app process exits within a second (in a real terminal,
on a scripted slow Poet that would otherwise write for minutes)."""

from __future__ import annotations

import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest

from poetry_workshop.tui.app import create_app
from tests.fakes.slow_app import TOKEN_DELAY_S, WORDS, slow_poet
from tests.support.cli import ROOT
from tests.support.studio import make_studio

EXIT_LIMIT_S = 1.0  # the bound, from the key to the process's end


async def test_ctrl_q_mid_generation_stores_the_partial_draft_as_stopped(tmp_path):
    studio = make_studio(tmp_path, poet=slow_poet())
    studio.settings.inference.max_tokens.draft = WORDS
    app = create_app(studio)
    async with app.run_test(size=(80, 24)) as pilot:
        app.screen.query_one("#request").value = "a heron"
        await pilot.press("enter")
        while "heron heron" not in app.screen.query_one("#poem").text:
            await pilot.pause(0.05)
        started = time.perf_counter()
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not app.is_running  # the app's own exit path has run
        waited = time.perf_counter() - started
    drafts = [n for n in studio.store.tree(studio.store.list_sessions()[0].id).nodes.values() if n.kind == "draft"]
    assert len(drafts) == 1 and drafts[0].meta["stopped"] is True
    words = drafts[0].text.split()
    assert 2 <= len(words) < WORDS / 10  # partial: the generation did not run on
    # Cancelled at the next token: the wait is a few tokens' time, nowhere near the draft's.
    assert waited < EXIT_LIMIT_S < WORDS * TOKEN_DELAY_S / 100


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _quit_in_terminal(tmp_path, prompt_delay_s: float, waiting_for: str) -> float:
    """Run the slow app in tmux, ask for a poem, press Ctrl+Q once `waiting_for` shows;
    the seconds from the key to the process's end."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux) — this test drives a real terminal")
    name = f"quit-{uuid.uuid4().hex[:8]}"
    exit_file = tmp_path / "exit-code"
    # Textual takes COLUMNS/LINES over the terminal's size: a tmux server may carry stale ones.
    command = (f"unset COLUMNS LINES; cd {shlex.quote(str(ROOT))} && TERM=xterm-256color "
               f"{shlex.quote(sys.executable)} -m tests.fakes.slow_app {shlex.quote(str(tmp_path))} {prompt_delay_s}; "
               f"echo $? > {shlex.quote(str(exit_file))}")
    _tmux("new-session", "-d", "-s", name, "-x", "100", "-y", "30", command)
    try:
        deadline = time.monotonic() + 60
        while "Write with the Poet" not in _tmux("capture-pane", "-p", "-t", name):
            assert time.monotonic() < deadline, "the start screen never showed"
            time.sleep(0.1)
        _tmux("send-keys", "-t", name, "-l", "a heron")
        _tmux("send-keys", "-t", name, "Enter")
        while waiting_for not in _tmux("capture-pane", "-p", "-t", name):
            assert time.monotonic() < deadline, f"the screen never showed {waiting_for!r}"
            time.sleep(0.1)
        started = time.monotonic()
        _tmux("send-keys", "-t", name, "C-q")
        while not exit_file.exists() and time.monotonic() - started < 30:
            time.sleep(0.01)
        took = time.monotonic() - started
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    assert exit_file.read_text().strip() == "0"
    return took


def _drafts(tmp_path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(tmp_path / "sessions.db")
    rows = conn.execute("SELECT text, meta FROM nodes WHERE kind = 'draft'").fetchall()
    conn.close()
    return rows


def test_the_app_process_exits_within_a_second_of_ctrl_q_mid_generation(tmp_path):
    took = _quit_in_terminal(tmp_path, 0.0, "heron heron heron")
    print(f"Ctrl+Q mid-generation → process exit: {took:.2f} s (limit {EXIT_LIMIT_S} s; the draft alone "
          f"would take {WORDS * TOKEN_DELAY_S:.0f} s)")
    assert took < EXIT_LIMIT_S
    ((text, meta),) = _drafts(tmp_path)
    assert '"stopped": true' in meta and 1 <= len(text.split()) < WORDS / 10


def test_the_app_process_exits_within_a_second_of_ctrl_q_while_the_prompt_is_read(tmp_path):
    prompt_s = 60.0  # llama.cpp cannot be interrupted while it reads a prompt
    took = _quit_in_terminal(tmp_path, prompt_s, "reading the prompt")
    print(f"Ctrl+Q while the prompt is read → process exit: {took:.2f} s (limit {EXIT_LIMIT_S} s; "
          f"the prompt alone takes {prompt_s:.0f} s)")
    assert took < EXIT_LIMIT_S
    assert _drafts(tmp_path) == []  # nothing was generated, so nothing is stored
