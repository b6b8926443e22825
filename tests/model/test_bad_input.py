"""Bad input through the real `workshop` command: one clear line, the right exit code, no
traceback, and nothing already saved is damaged.

Every case drives `python -m poetry_workshop` in a subprocess (see `run_cli`), on the real
starter GGUF or on files derived from it. Only the corrupt-database case and the survival
case generate text, with the short `small_config` limits on one thread.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
from pathlib import Path

import pytest

from poetry_workshop import locations
from poetry_workshop.workshop.store import SessionStore
from tests.support.cli import SMALL_TOKENS_TOML, run_cli

ERROR_PREFIX = "workshop: error: "
PROMPT = "a short poem about rain"


# ----------------------------------------------------------------------------- helpers
def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_one_error(result, *fragments: str, code: int = 2, after_progress: bool = False) -> str:
    """The run failed with `code`, no traceback, no data on stdout, and stderr is exactly one
    `workshop: error: ...` line holding every fragment (case-insensitive).

    `after_progress` is for failures that can only show up once the session has started
    (llama.cpp loading the file, counting prompt tokens): then the notices saying which model
    each role runs and the `· Role: step…` progress lines may come before the error line, which must be last.
    Returns the error line."""
    stderr = result.stderr
    context = f"exit code {result.returncode}\nstderr:\n{stderr}\nstdout:\n{result.stdout}"
    assert "Traceback" not in stderr, context
    assert result.returncode == code, context
    assert result.stdout == "", context
    lines = _lines(stderr)
    if after_progress:
        errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
        assert len(errors) == 1, context
        assert lines[-1] == errors[0], context
        for other in lines[:-1]:
            notice = "starter model" in other or other.startswith(("Educator: ", "Poet: "))  # which model
            assert other.startswith("· ") or notice, context
    else:
        assert len(lines) == 1, context
    line = lines[-1]
    assert line.startswith(ERROR_PREFIX), context
    message = line[len(ERROR_PREFIX):]
    assert "; " in message or ": " in message, context  # the problem, then the fix
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} missing from the error line\n{context}"
    return line


def _snapshot(db: Path) -> list[tuple]:
    store = SessionStore.open(db)
    try:
        out = []
        for record in store.list_sessions():
            nodes = sorted(store.tree(record.id).nodes.values(), key=lambda n: n.seq)
            out.append((record, [(n.id, n.parent_id, n.kind, n.author, n.text, n.meta) for n in nodes]))
        return out
    finally:
        store.close()


@pytest.fixture
def saved_session(workshop_home):
    """A session already in the user's database, written through the store (no model).

    Returns a check that the session is still there, unchanged, after a failing run."""
    db = workshop_home / "sessions.db"
    store = SessionStore.open(db)
    try:
        record = store.create_session("write", "a saved poem", 1, {"educator": "x.gguf", "poet": "x.gguf"})
        request = store.add_node(record.id, None, "request", "person", "a saved poem")
        store.add_node(record.id, request.id, "draft", "poet", "rain on the roof\nrain in the gutter",
                       {"prompt": "write it", "raw": "rain on the roof\nrain in the gutter"})
    finally:
        store.close()
    before = {rec.id: (rec, nodes) for rec, nodes in _snapshot(db)}
    assert record.id in before

    def check() -> None:
        after = {rec.id: (rec, nodes) for rec, nodes in _snapshot(db)}
        assert record.id in after, "the saved session disappeared"
        assert after[record.id] == before[record.id], "the saved session changed"
        listing = run_cli("sessions")
        assert listing.returncode == 0, listing.stderr
        assert record.id in listing.stdout

    return check


@pytest.fixture(scope="module")
def derived(tmp_path_factory, starter_gguf) -> Path:
    """A folder for GGUF files derived from the starter (made once per module)."""
    return tmp_path_factory.mktemp("derived")


@pytest.fixture(scope="module")
def half_gguf(derived, starter_gguf) -> Path:
    data = starter_gguf.read_bytes()
    path = derived / "half.gguf"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="module")
def no_template_gguf(derived, starter_gguf) -> Path:
    data = starter_gguf.read_bytes()
    key = b"tokenizer.chat_template"
    assert data.count(key) == 1, "the starter should hold exactly one chat template key"
    path = derived / "no-template.gguf"
    path.write_bytes(data.replace(key, b"tokenizer.chat_templatX"))
    assert path.stat().st_size == len(data)
    return path


def _session_id(stderr: str) -> str:
    match = re.search(r"session ([0-9a-f]+) saved", stderr)
    assert match, f"no 'session ... saved' line in stderr:\n{stderr}"
    return match.group(1)


# ------------------------------------------------------------------- 1-6: model files
def test_missing_model_file(saved_session):
    result = run_cli("write", PROMPT, "--educator", "/nonexistent.gguf")
    assert_one_error(result, "/nonexistent.gguf", "not found", ".gguf")
    saved_session()


def test_directory_instead_of_model_file(tmp_path, saved_session):
    folder = tmp_path / "models-folder"
    folder.mkdir()
    result = run_cli("write", PROMPT, "--poet", str(folder))
    assert_one_error(result, str(folder), "folder", ".gguf")
    saved_session()


def test_zero_byte_gguf(tmp_path, saved_session):
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    result = run_cli("write", PROMPT, "--educator", str(empty))
    assert_one_error(result, str(empty), "empty", "0 bytes")
    saved_session()


def test_truncated_gguf_header(tmp_path, starter_gguf, saved_session):
    cut = tmp_path / "cut-header.gguf"
    with starter_gguf.open("rb") as fh:
        cut.write_bytes(fh.read(2000))
    result = run_cli("write", PROMPT, "--educator", str(cut))
    assert_one_error(result, str(cut), "truncated", "download or export")
    saved_session()


def test_truncated_gguf_tensor_data(half_gguf, saved_session):
    """The header is whole, so only llama.cpp finds the tensor data cut short."""
    result = run_cli("write", PROMPT, "--educator", str(half_gguf))
    line = assert_one_error(result, str(half_gguf), after_progress=True)
    assert "truncated" in line or "corrupt" in line, line
    saved_session()


def test_random_bytes_named_gguf(tmp_path, saved_session):
    noise = tmp_path / "noise.gguf"
    data = os.urandom(4096)
    if data.startswith(b"GGUF"):  # vanishingly unlikely; keep the case what it says
        data = b"\0" + data[1:]
    noise.write_bytes(data)
    result = run_cli("write", PROMPT, "--educator", str(noise))
    assert_one_error(result, str(noise), "not a GGUF")
    saved_session()


def test_gguf_without_chat_template(no_template_gguf, saved_session):
    result = run_cli("write", PROMPT, "--educator", str(no_template_gguf))
    assert_one_error(result, str(no_template_gguf), "chat template")
    saved_session()


# ------------------------------------------------------------------------ 7-8: prompts
@pytest.mark.parametrize("prompt", ["", "   "], ids=["empty", "blank"])
def test_empty_prompt(prompt, saved_session):
    result = run_cli("write", prompt)
    assert_one_error(result, "request", "empty")
    saved_session()


def _long_prompt(chars: int = 3000) -> str:
    words = ("river stone lantern harbor whisper meadow copper thistle orchard glacier velvet "
             "ember sparrow cinder willow autumn quarry marble tundra saffron bramble pewter "
             "heron juniper cobalt lichen fathom parchment tamarind horizon").split()
    rng = random.Random(7)
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(words))
    return " ".join(out)


def test_prompt_longer_than_context(tmp_path, saved_session):
    config = tmp_path / "tiny-context.toml"
    config.write_text("[inference_config.runtime]\nn_ctx = 512\n" + SMALL_TOKENS_TOML, encoding="utf-8")
    prompt = _long_prompt()
    assert 2900 <= len(prompt) <= 3100
    result = run_cli("write", prompt, "--config", str(config))
    line = assert_one_error(result, "context", "512", after_progress=True)
    assert "n_ctx" in line, line  # the fix: the setting to raise
    saved_session()


# -------------------------------------------------------------------- 9: batch files
def _batch_case(tmp_path: Path, kind: str) -> Path:
    if kind == "missing":
        return tmp_path / "no-such-batch.txt"
    if kind == "folder":
        path = tmp_path / "batch-folder"
        path.mkdir()
        return path
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"\xff\xfe\xfa poem\n")
    return path


@pytest.mark.parametrize("kind,fragment", [("missing", "not found"), ("folder", "folder"),
                                           ("not-utf8", "UTF-8")])
def test_unreadable_batch_file(tmp_path, kind, fragment, saved_session):
    batch = _batch_case(tmp_path, kind)
    out = tmp_path / "batch-out"
    result = run_cli("--batch", str(batch), "--out", str(out))
    assert_one_error(result, str(batch), fragment)
    assert not out.exists() or not any(out.iterdir()), "the batch wrote output for an unreadable file"
    saved_session()


# ------------------------------------------------------------ 10-11: session database
def test_corrupt_session_database_is_moved_aside(workshop_home, small_config):
    workshop_home.mkdir(parents=True, exist_ok=True)
    db = workshop_home / "sessions.db"
    garbage = b"this is not a database" * 100
    db.write_bytes(garbage)

    result = run_cli("write", PROMPT, "--rounds", "1", "--config", str(small_config))
    context = f"exit code {result.returncode}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr, context
    assert result.returncode == 0, context
    assert result.stdout.strip(), context  # the session was printed

    moved = sorted(workshop_home.glob("sessions.db.corrupt-*"))
    moved = [p for p in moved if not p.name.endswith(("-wal", "-shm"))]
    assert len(moved) == 1, f"{[p.name for p in workshop_home.iterdir()]}\n{context}"
    assert moved[0].read_bytes() == garbage, "the corrupt database was not kept byte for byte"

    warnings = [line for line in _lines(result.stderr) if "moved" in line]
    assert len(warnings) == 1, context
    assert warnings[0].startswith("warning: "), context
    assert str(db) in warnings[0] and str(moved[0]) in warnings[0], context

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 1
    finally:
        conn.close()

    session_id = _session_id(result.stderr)
    listing = run_cli("sessions")
    assert listing.returncode == 0, listing.stderr
    assert "Traceback" not in listing.stderr
    rows = _lines(listing.stdout)
    assert len(rows) == 1, listing.stdout
    assert rows[0].startswith(session_id), listing.stdout
    assert "moved" not in listing.stderr  # the new database reads fine: nothing moved again


@pytest.mark.parametrize("command", ["sessions", "write"])
def test_unwritable_database_location(tmp_path, small_config, command):
    afile = tmp_path / "afile"
    afile.write_bytes(b"a file, not a folder\n")
    home = afile / "home"
    args = ["sessions"] if command == "sessions" else ["write", PROMPT, "--config", str(small_config)]
    result = run_cli(*args, env={locations.HOME_ENV: str(home)})
    assert_one_error(result, str(home), "POETRY_WORKSHOP_HOME")
    assert afile.read_bytes() == b"a file, not a folder\n"


# -------------------------------------------------------------------------- 12: config
@pytest.fixture(params=["models", "write"])
def config_command(request):
    """The config is checked the same way whichever command reads it."""
    return ["models"] if request.param == "models" else ["write", PROMPT]


def test_config_file_missing(tmp_path, config_command, saved_session):
    missing = tmp_path / "missing.toml"
    result = run_cli(*config_command, "--config", str(missing))
    assert_one_error(result, str(missing), "not found")
    saved_session()


def test_config_unknown_key(tmp_path, config_command, saved_session):
    config = tmp_path / "unknown-key.toml"
    config.write_text("[inference_config.runtime]\nn_ctxx = 5\n", encoding="utf-8")
    result = run_cli(*config_command, "--config", str(config))
    line = assert_one_error(result, str(config), "inference_config.runtime.n_ctxx", "unknown key")
    assert "n_ctx" in line.split("n_ctxx", 1)[1], line  # lists the keys it expected
    saved_session()


def test_config_wrong_type(tmp_path, config_command, saved_session):
    config = tmp_path / "wrong-type.toml"
    config.write_text('[inference_config.runtime]\nn_ctx = "big"\n', encoding="utf-8")
    result = run_cli(*config_command, "--config", str(config))
    assert_one_error(result, str(config), "inference_config.runtime.n_ctx", "an integer", "big")
    saved_session()


def test_config_bad_environment_variable(config_command, saved_session):
    name = "POETRY_WORKSHOP__INFERENCE_CONFIG__RUNTIME__N_CTX"
    result = run_cli(*config_command, env={name: "abc"})
    assert_one_error(result, f"environment variable {name}", "an integer", "abc")
    saved_session()


# --------------------------------------------------------- a saved session survives
def test_saved_session_survives_a_failing_run(workshop_home, small_config):
    first = run_cli("write", PROMPT, "--rounds", "1", "--config", str(small_config))
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    session_id = _session_id(first.stderr)
    shown = run_cli("sessions", "show", session_id)
    assert shown.returncode == 0, shown.stderr
    db = workshop_home / "sessions.db"
    before = _snapshot(db)

    failed = run_cli("write", "another poem", "--educator", "/nonexistent.gguf")
    assert_one_error(failed, "/nonexistent.gguf", "not found")

    assert _snapshot(db) == before
    listing = run_cli("sessions")
    assert listing.returncode == 0, listing.stderr
    rows = _lines(listing.stdout)
    assert len(rows) == 1 and rows[0].startswith(session_id), listing.stdout
    again = run_cli("sessions", "show", session_id)
    assert again.returncode == 0, again.stderr
    assert again.stdout == shown.stdout
