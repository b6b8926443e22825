"""Every path the workshop reads or writes, from one place.

Two roots: the project folder (config/, persona/, models/, data/ — shipped with the
source tree) and the user folder (the session database and the user's own config).
`POETRY_WORKSHOP_HOME` relocates the user folder, which is how tests keep away from a
person's real files; `POETRY_WORKSHOP_ROOT` points at another project folder and
`POETRY_WORKSHOP_DATA` at another data folder (raw poems, generated and training data).
`POETRY_WORKSHOP_CHECKPOINTS` puts training checkpoints elsewhere (on Modal, their own volume).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

HOME_ENV = "POETRY_WORKSHOP_HOME"
ROOT_ENV = "POETRY_WORKSHOP_ROOT"
DATA_ENV = "POETRY_WORKSHOP_DATA"
CHECKPOINTS_ENV = "POETRY_WORKSHOP_CHECKPOINTS"


def project_root() -> Path:
    override = os.environ.get(ROOT_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return Path(__file__).resolve().parent.parent


def config_dir() -> Path:
    return project_root() / "config"


def persona_dir() -> Path:
    return project_root() / "persona"


def models_dir() -> Path:
    return project_root() / "models"


def data_dir() -> Path:
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return project_root() / "data"


@contextmanager
def using_data_dir(folder: Path) -> Iterator[Path]:
    """Run a block against another data folder (first-test keeps its data apart from yours)."""
    before = os.environ.get(DATA_ENV)
    os.environ[DATA_ENV] = str(folder)
    try:
        yield folder
    finally:
        if before is None:
            os.environ.pop(DATA_ENV, None)
        else:
            os.environ[DATA_ENV] = before


def annotated_dir() -> Path:
    """Where the teaching-data generators append their records, rejects and ledger."""
    return data_dir() / "annotated"


def checkpoints_dir() -> Path:
    """Training checkpoints and finished adapters, one folder per role."""
    override = os.environ.get(CHECKPOINTS_ENV)
    if override:
        return Path(override).expanduser().resolve()
    return data_dir() / "checkpoints"


def user_dir() -> Path:
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("poetry-workshop", appauthor=False))


def user_config_file() -> Path:
    return user_dir() / "config.toml"


def session_db_file() -> Path:
    return user_dir() / "sessions.db"


def resolve_project_path(path: str | Path) -> Path:
    """Relative paths in config files are relative to the project folder, not the cwd."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def resolve_data_path(path: str | Path) -> Path:
    """Config paths under data/ follow the data folder (POETRY_WORKSHOP_DATA); others are
    relative to the project folder."""
    p = Path(path).expanduser()
    if not p.is_absolute() and p.parts[:1] == ("data",):
        return data_dir().joinpath(*p.parts[1:])
    return resolve_project_path(p)
