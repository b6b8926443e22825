"""The persona documents: the two system prompts and the list of LLM-isms.

The long documents (`pedagogy_design_doc.md`, `poet_voice.md`) are for people and for the
teaching-data prompts; the models run on the condensed system prompts. `anti_llm_isms.txt`
is parsed here so the quality gate and the eval read it the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError

EDUCATOR_PROMPT = "persona_condensed.txt"
POET_PROMPT = "poet_system_prompt.txt"
PEDAGOGY_DOC = "pedagogy_design_doc.md"
POET_VOICE_DOC = "poet_voice.md"
LLM_ISMS = "anti_llm_isms.txt"

_HEADER = re.compile(r"^\[([a-z0-9-]+)\s+weight=([0-9]*\.?[0-9]+)\]$")


@dataclass(frozen=True)
class Persona:
    educator_system: str
    poet_system: str


@dataclass(frozen=True)
class LlmIsm:
    """One phrase or pattern that makes verse sound machine-written."""

    category: str
    weight: float
    source: str  # the line as written, for evidence in reports
    pattern: re.Pattern[str]

    def find(self, text: str) -> list[str]:
        return [m.group(0) for m in self.pattern.finditer(text)]


def _read_text(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"{path}: persona file not found; restore it from the repository")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: persona file is not UTF-8 text; save it as UTF-8")
    if not text:
        raise ConfigError(f"{path}: persona file is empty; it must hold the system prompt")
    return text


def read_persona_doc(name: str, folder: Path | None = None) -> str:
    """One persona document by file name, checked like the system prompts."""
    return _read_text((folder or locations.persona_dir()) / name)


def load_persona(folder: Path | None = None) -> Persona:
    folder = folder or locations.persona_dir()
    return Persona(
        educator_system=_read_text(folder / EDUCATOR_PROMPT),
        poet_system=_read_text(folder / POET_PROMPT),
    )


def parse_llm_isms(text: str, source: str = LLM_ISMS) -> list[LlmIsm]:
    """Parse the anti_llm_isms format: `[category weight=W]` headers, then one literal
    phrase (matched case-insensitively on word boundaries) or `re: PATTERN` per line."""
    entries: list[LlmIsm] = []
    category: str | None = None
    weight = 0.0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = _HEADER.match(line)
        if header:
            category, weight = header.group(1), float(header.group(2))
            continue
        if line.startswith("["):
            raise ConfigError(f"{source}:{number}: bad section header {line!r}; write [name weight=2.0]")
        if category is None:
            raise ConfigError(f"{source}:{number}: entry before the first [category weight=W] header")
        if line.startswith("re:"):
            expr = line[3:].strip()
            try:
                pattern = re.compile(expr)
            except re.error as exc:
                raise ConfigError(f"{source}:{number}: invalid regular expression ({exc}); fix the pattern")
        else:
            # A phrase may break across lines of verse, so any run of whitespace matches a space.
            body = r"\s+".join(re.escape(word) for word in line.split())
            pattern = re.compile(r"(?<!\w)" + body + r"(?!\w)", re.IGNORECASE)
        entries.append(LlmIsm(category=category, weight=weight, source=line, pattern=pattern))
    return entries


def load_llm_isms(path: Path | None = None) -> list[LlmIsm]:
    path = path or locations.persona_dir() / LLM_ISMS
    return parse_llm_isms(_read_text(path), str(path))
