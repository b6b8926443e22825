"""The real app on a scripted slow Poet, for terminal tests of quitting mid-generation.

Usage: python -m tests.fakes.slow_app FOLDER [PROMPT_DELAY_S] — the session database goes
in FOLDER. The Poet writes one word per TOKEN_DELAY_S, WORDS words: left alone, a draft
takes minutes; with PROMPT_DELAY_S it first reads its prompt that long, deaf to a cancel.
"""

from __future__ import annotations

import sys
from pathlib import Path

from poetry_workshop.tui.app import run_app
from tests.fakes.scripted_backend import ScriptedBackend
from tests.support.studio import make_studio

TOKEN_DELAY_S = 0.05
WORDS = 4000


def slow_poet(prompt_delay_s: float = 0.0) -> ScriptedBackend:
    return ScriptedBackend(lambda messages: " ".join(["heron"] * WORDS), token_delay_s=TOKEN_DELAY_S,
                           prompt_delay_s=prompt_delay_s)


def main() -> int:
    folder = Path(sys.argv[1])
    studio = make_studio(folder, poet=slow_poet(float(sys.argv[2]) if len(sys.argv) > 2 else 0.0))
    studio.settings.inference.max_tokens.draft = WORDS
    return run_app(studio)  # the app's own way out, as `workshop` takes it


if __name__ == "__main__":
    raise SystemExit(main())
