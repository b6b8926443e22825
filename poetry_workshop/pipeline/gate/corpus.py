"""A corpus of real poems for measuring the gate: a folder of `human.jsonl` (public-domain
poems with their form tags) and `llm.jsonl` (poems by chat models), as in `../shared/corpus/`.

Only read here, never copied: the machine side is licensed for non-commercial use, so the
project keeps figures derived from it (weights, rates, thresholds), never the poems. Each
line is `{"id", "text", "source"}`; the form (human) and the generator (machine) are read
from `source`, whose fields are separated by " | ".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from poetry_workshop.errors import ConfigError

HUMAN_FILE, MACHINE_FILE = "human.jsonl", "llm.jsonl"
_FIELD = re.compile(r"\b(form|generator)=([^|]*)")

# Human form tags -> the form a brief would name ("couplet" poems are poems in couplets).
# Tags that name a subject or a mode (elegy, pastoral, ode…) fix no shape: the brief stays open.
BRIEF_FORM = {"couplet": "couplets", "quatrain": "quatrains", "concrete or pattern poetry": ""}


@dataclass(frozen=True)
class CorpusPoem:
    id: str
    text: str
    human: bool
    form: str = ""       # the human poem's form tag, lower case
    generator: str = ""  # the machine poem's model, without the sampling note
    origin: str = ""     # the repository it came from
    prompt: str = ""     # what the machine poem was asked for (its last source field)

    def brief(self) -> str:
        """A brief that names this poem's form ("Form: sonnet"), or "" where the tag fixes no shape."""
        form = BRIEF_FORM.get(self.form, self.form)
        return f"Form: {form}" if form else ""


def _read(path: Path, human: bool) -> list[CorpusPoem]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; give a corpus folder holding {HUMAN_FILE} and {MACHINE_FILE} "
                          "(such as ../shared/corpus)")
    poems = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, source = row["text"], row.get("source", "")
            poem_id = str(row["id"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{number}: not a corpus line ({exc.__class__.__name__}); each line is "
                              '{"id", "text", "source"}')
        fields = {k: v.strip() for k, v in _FIELD.findall(source)}
        generator = re.sub(r"\s*\(.*\)$", "", fields.get("generator", ""))
        prompt = "" if human else source.split("|")[-1].strip()
        poems.append(CorpusPoem(poem_id, text, human, fields.get("form", "").lower(), generator,
                                source.split("@")[0].strip(), prompt))
    return poems


def read_corpus(folder: Path) -> list[CorpusPoem]:
    """Every poem of the corpus, human first; a missing or malformed file is a ConfigError."""
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such corpus folder; give the folder holding {HUMAN_FILE} and {MACHINE_FILE}")
    return _read(folder / HUMAN_FILE, True) + _read(folder / MACHINE_FILE, False)
