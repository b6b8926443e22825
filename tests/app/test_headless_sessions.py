"""Sessions made by `--batch`, `write` and `critique` are tagged with their command, so the
app lists them as headless and never offers them to resume."""

from __future__ import annotations

import io
from types import SimpleNamespace

from poetry_workshop.cli import terminal
from poetry_workshop.cli.batch_sessions import run_batch
from poetry_workshop.tui.start_screen import resumable
from tests.support.studio import make_studio


def test_batch_write_and_critique_sessions_are_tagged_and_never_offered(tmp_path, monkeypatch, capsys):
    studio = make_studio(tmp_path)
    batch = tmp_path / "batch.txt"
    batch.write_text("a poem about the tide\n", encoding="utf-8")
    run_batch(studio, batch, tmp_path / "out", rounds=1, stdout=io.StringIO(), stderr=io.StringIO())

    monkeypatch.setattr(terminal, "open_studio", lambda args: studio)
    monkeypatch.setattr(studio, "close", lambda: None)  # kept open for the checks below
    args = SimpleNamespace(rounds=1)
    assert terminal.run_session(args, "write", "a poem about moths") == 0
    assert terminal.run_session(args, "workshop", "the kettle ticks\nas it cools") == 0

    sessions = studio.store.list_sessions()
    assert sorted(s.origin for s in sessions) == ["batch", "critique", "write"]
    assert all(s.headless and s.status == "open" for s in sessions)
    assert resumable(sessions) is None
    app_session = studio.start("write", "a poem begun in the app")
    assert resumable(studio.store.list_sessions()).id == app_session.record.id
    studio.store.close()
