"""The headless core never imports a front end or the heavy pipeline libraries."""

from __future__ import annotations

import subprocess
import sys

# The command line (its whole table of commands), the batch runner, the core layers, and the
# pipeline and build packages as the app's build screen reaches them.
CORE = [
    "poetry_workshop.cli.main", "poetry_workshop.cli.batch_sessions", "poetry_workshop.workshop.session",
    "poetry_workshop.inference.engine", "poetry_workshop.workshop.store", "poetry_workshop.config.loader",
    "poetry_workshop.workshop.studio", "poetry_workshop.verse.critique_measures", "poetry_workshop.pipeline",
    "poetry_workshop.pipeline.build.plan", "poetry_workshop.pipeline.training.results",
]
FORBIDDEN = ["textual", "torch", "transformers", "trl", "peft", "anthropic", "modal", "datasets"]


def test_core_imports_no_front_end_or_training_stack():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE)
        + f"bad = [m for m in {FORBIDDEN!r} if m in sys.modules]\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_needs_no_model_and_explains_the_commands():
    out = subprocess.run([sys.executable, "-m", "poetry_workshop", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for word in ("--batch", "write", "models", "sessions", "--educator", "--poet", "--config"):
        assert word in out.stdout
