"""The real `workshop` command in a subprocess, as a person runs it, and the paths it needs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from poetry_workshop.inference import starter

ROOT = Path(__file__).resolve().parent.parent.parent
STARTER = ROOT / "models" / starter.FILENAME


def run_cli(*args: str, env: dict | None = None, stdin: str | None = None, timeout: int = 300):
    """Run the real `workshop` command in a subprocess, as a person would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "poetry_workshop", *args],
        capture_output=True, text=True, env=full_env, input=stdin, timeout=timeout, cwd=ROOT,
    )


SMALL_TOKENS_TOML = """
[inference_config.max_tokens]
brief = 48
draft = 64
critique = 64
answer = 64
"""
