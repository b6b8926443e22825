"""The tiny trained Educator, built once per run: a real LoRA run of two steps on the starter
base through `workshop train`, then `workshop export` to a validated Q4_K_M. Tests that read
it share it; tests that train further get a copy of its folders."""

from __future__ import annotations

import shutil

import pytest

from tests.support.cli import run_cli
from tests.support.training import SMALL, write_sets


def _env(root) -> dict:
    return {**SMALL, "POETRY_WORKSHOP_DATA": str(root / "data"), "POETRY_WORKSHOP_HOME": str(root / "home"),
            "POETRY_WORKSHOP__EXPORT_PIPELINE__EXPORT__OUTPUT_DIR": f'"{root / "models"}"'}


@pytest.fixture(scope="session")
def chain(tmp_path_factory, starter_gguf):
    """One real run of the chain through the command line: its folder, environment and the
    two commands' results."""
    root = tmp_path_factory.mktemp("chain")
    write_sets(root / "data")
    env = _env(root)
    trained = run_cli("train", "educator", "--max-steps", "2", env=env, timeout=900)
    exported = run_cli("export", "educator", env=env, timeout=900) if trained.returncode == 0 else None
    return {"root": root, "env": env, "train": trained, "export": exported}


@pytest.fixture
def chain_copy(chain, tmp_path):
    """The shared run's data, checkpoints and models copied, for a test that trains on."""
    assert chain["train"].returncode == 0, chain["train"].stderr[-2000:]
    root = tmp_path / "chain"
    shutil.copytree(chain["root"], root, symlinks=True)
    return {**chain, "root": root, "env": _env(root)}
