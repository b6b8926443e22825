"""Fixtures for the app tests: a studio on scripted models in a temporary store."""

from __future__ import annotations

import pytest

from tests.support.studio import make_studio


@pytest.fixture
def studio(tmp_path):
    s = make_studio(tmp_path)
    yield s
    s.store.close()
