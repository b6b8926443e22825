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

# What each named form expects, so that a brief naming it is not held to the machine-poem
# signature it asks for: a sonnet rhymes, a ballad comes in quatrains. Keys:
#   lines       (least, most) lines;  lines_per  the length of one poem of a sequence (a sonnet
#               sequence is 28 lines; one-line headings such as "II." are not counted)
#   stanza      lines per stanza, checked only when the poem breaks into stanzas at all
#   syllables   per line of a stanza, for syllabic forms (haiku)
#   metre       the mean syllables per line allowed, as one or more (low, high) ranges: loose on
#               purpose (common measure is printed as 8/6 lines or as 14-syllable fourteeners)
#   rhyme       True asked for (the form rule wants some), False ruled out, absent open
#   rhymes      the form usually rhymes: rhyme is not held against it
#   quatrains   four-line stanzas are the form's own
#   traditional the form fixes rhyme or stanza shape, so the machine-shape rule (for briefs that
#               leave the form open) does not apply; free verse, prose poems and blank verse
#               fix neither, and are judged like an open brief
# Longer names first: "haiku sequence" before "haiku", "common measure" before "measure".
FORMS: dict[str, dict] = {
    "sonnet": {"lines": (14, 14), "lines_per": 14, "metre": ((8.5, 12.5),), "rhymes": True, "traditional": True},
    "villanelle": {"lines": (19, 19), "rhyme": True, "rhymes": True, "traditional": True},
    "sestina": {"lines": (39, 39), "traditional": True},
    "haiku sequence": {"stanza": 3, "syllables": (5, 7, 5), "traditional": True},
    "haiku": {"lines": (3, 3), "syllables": (5, 7, 5), "traditional": True},
    "limerick": {"lines": (5, 5), "rhyme": True, "rhymes": True, "traditional": True},
    "tercet": {"stanza": 3, "traditional": True},
    "terza rima": {"stanza": 3, "rhyme": True, "rhymes": True, "traditional": True},
    "couplet": {"rhyme": True, "rhymes": True, "traditional": True},  # rhymed pairs, in any layout
    "ghazal": {"stanza": 2, "rhymes": True, "traditional": True},
    "pantoum": {"rhymes": True, "quatrains": True, "traditional": True},
    "quatrain": {"stanza": 4, "rhymes": True, "quatrains": True, "traditional": True},
    "common measure": {"metre": ((5.0, 9.0), (12.0, 16.0)), "rhymes": True, "quatrains": True, "traditional": True},
    "common metre": {"metre": ((5.0, 9.0), (12.0, 16.0)), "rhymes": True, "quatrains": True, "traditional": True},
    "hymn": {"rhymes": True, "quatrains": True, "traditional": True},
    "ballad": {"metre": ((5.0, 10.0), (12.0, 16.0)), "rhymes": True, "quatrains": True, "traditional": True},
    "ode": {"rhymes": True, "quatrains": True, "traditional": True},
    "blank verse": {"metre": ((8.5, 12.5),), "rhyme": False},
    "prose poem": {"rhyme": False},
    "free verse": {},
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
    rhyme_allowed: bool = False  # the named form usually rhymes (a sonnet, a ballad)
    lines_per: int | None = None  # one poem of a sequence of this form (sonnets: 14)
    metre: tuple[tuple[float, float], ...] | None = None  # allowed mean syllables per line
    traditional: bool = False  # the form fixes rhyme or stanza: the machine-shape rule is off
    end_stopped_ok: bool = False  # every line ending on punctuation is not held against the poem
    unpunctuated_ok: bool = False  # nor capitalised lines with no punctuation at their ends

    @property
    def rhyme_ok(self) -> bool:
        return self.rhyme is True or (self.rhyme_allowed and self.rhyme is not False)

    @property
    def open_form(self) -> bool:
        """The brief leaves the shape to the poem (no form, free verse, blank verse, prose poem)."""
        return not self.traditional


def brief_fields(text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2).strip() for m in _FIELD.finditer(text)}


def parse_brief(text: str) -> BriefSpec:
    """A BriefSpec from a brief's text; fields it lacks leave their checks open."""
    fields = brief_fields(text)
    form = fields.get("form", "").lower()
    shape = next((FORMS[name] for name in sorted(FORMS, key=len, reverse=True) if name in form), {})
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
        rhyme_allowed=bool(shape.get("rhymes")),
        lines_per=shape.get("lines_per"),
        metre=shape.get("metre"),
        traditional=bool(shape.get("traditional")),
    )
