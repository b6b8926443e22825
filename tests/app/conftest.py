"""Fixtures for the app tests: a studio on scripted models in a temporary store."""

from __future__ import annotations

import pytest

from poetry_workshop.inference import starter
from tests.support.hub import FreshProject, fresh_project, place
from tests.support.studio import make_studio


@pytest.fixture
def studio(tmp_path):
    s = make_studio(tmp_path)
    yield s
    s.store.close()


@pytest.fixture
def models_project(tmp_path, monkeypatch, starter_gguf) -> FreshProject:
    """A fresh project with the starter in models/ and this process pointed at it, every
    model store under tmp_path: what the Models screen lists is the same on every machine."""
    project = fresh_project(tmp_path)
    place(starter_gguf, project.models / starter.FILENAME)
    for name, value in project.env.items():
        monkeypatch.setenv(name, value)
    import huggingface_hub.constants

    # Read at import by huggingface_hub; the user-agent check would otherwise ask the real Hub.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)
    return project
