"""What a brief asks of a poem's form, read from its seven fields.

The Educator writes briefs as "Form: …", "Length: 14-18 lines", "Speaker: …", "Constraint:
…", "Avoid: …" (pedagogy_design_doc.md). The gate and the eval check a poem against what
the brief asked: its length, the shape of a named form (a sonnet's fourteen lines, a
haiku's syllables), and whether rhyme, quatrains or a "we" voice were asked for, so that
the machine-poem signature is only held against a poem that was not asked to have it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(r"^\s*(form|length|speaker|anchor|register|constraint|avoid)\s*:\s*(.+)$", re.IGNORECASE | re.MULTILINE)
_RANGE = re.compile(r"(\d+)\s*(?:-|–|to)\s*(\d+)\s*lines?", re.IGNORECASE)
_EXACT = re.compile(r"(?:exactly\s+)?(\d+)\s*lines?", re.IGNORECASE)

# Line counts and stanza shapes the named forms fix; None where the form leaves it open.
FORMS: dict[str, dict] = {
    "sonnet": {"lines": (14, 14)},
    "villanelle": {"lines": (19, 19), "rhyme": True},
    "sestina": {"lines": (39, 39)},
    "haiku sequence": {"stanza": 3, "syllables": (5, 7, 5)},
    "haiku": {"lines": (3, 3), "syllables": (5, 7, 5)},
    "tercets": {"stanza": 3},
    "couplets": {"stanza": 2},
    "ghazal": {"stanza": 2},
    "pantoum": {"stanza": 4, "quatrains": True},
    "quatrains": {"stanza": 4, "quatrains": True},
    "ballad": {"stanza": 4, "quatrains": True, "rhyme": True},
}


@dataclass(frozen=True)
class BriefSpec:
    form: str = ""
    min_lines: int | None = None
    max_lines: int | None = None
    stanza_lines: int | None = None  # every stanza this long (couplets, tercets…)
    syllables: tuple[int, ...] | None = None  # per line of a stanza, for syllabic forms
    rhyme: bool | None = None  # True asked for, False ruled out, None left open
    quatrains_ok: bool = False
    we_ok: bool = False

    @property
    def rhyme_ok(self) -> bool:
        return self.rhyme is True


def brief_fields(text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2).strip() for m in _FIELD.finditer(text)}


def parse_brief(text: str) -> BriefSpec:
    """A BriefSpec from a brief's text; fields it lacks leave their checks open."""
    fields = brief_fields(text)
    form = fields.get("form", "").lower()
    shape = next((rules for name, rules in FORMS.items() if name in form), {})
    lo, hi = shape.get("lines", (None, None))
    length = fields.get("length", "") + " " + fields.get("constraint", "")
    if m := _RANGE.search(length):
        lo, hi = sorted((int(m.group(1)), int(m.group(2))))
    elif m := _EXACT.search(length):
        lo = hi = int(m.group(1))
    everything = text.lower()
    avoid = fields.get("avoid", "").lower()
    rhyme: bool | None = shape.get("rhyme")
    if re.search(r"\b(no rhyme|unrhymed|without rhyme|no end rhyme|avoid rhyme)", everything) or re.search(r"\brhym", avoid):
        rhyme = False
    elif re.search(r"\b(rhymed|rhyming|rhyme scheme|slant rhyme|end rhyme|rhymes)\b", everything.replace(avoid, "")):
        rhyme = True
    speaker = fields.get("speaker", "").lower()
    return BriefSpec(
        form=form,
        min_lines=lo,
        max_lines=hi,
        stanza_lines=shape.get("stanza"),
        syllables=shape.get("syllables"),
        rhyme=rhyme,
        quatrains_ok=bool(shape.get("quatrains")) or "quatrain" in everything.replace(avoid, ""),
        we_ok=bool(re.search(r"\b(we|first person plural|plural)\b", speaker)),
    )
