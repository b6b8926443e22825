"""Where the briefs' variety comes from: explicit attribute samplers under a seed.

Asking a model for "a varied brief" two hundred times gives two hundred briefs about the
sea at dusk. Variety is drawn here instead, from named lists of forms, themes, registers,
constraints and difficulties. Each attribute is dealt like a shuffled deck, so every value
appears about equally often before any repeats, and the decks are shuffled independently,
so combinations vary. The same seed gives the same briefs, which is what makes record ids
stable across reruns.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "form": (
        "free verse", "prose poem", "sonnet", "villanelle", "ghazal", "haiku sequence",
        "pantoum", "sestina", "couplets", "tercets", "list poem", "epistolary poem",
        "dramatic monologue", "ode", "elegy", "aubade", "single-sentence poem", "cento-like collage",
    ),
    "theme": (
        "a parent's hands", "a night shift", "moving house", "a sibling's illness", "a city bus route",
        "a failed garden", "inherited furniture", "a language lost in the family", "a first job",
        "a flood", "an old photograph", "a dog's last year", "learning to swim as an adult",
        "a hospital waiting room", "winter laundry", "a border crossing", "a divorce told through objects",
        "a friendship that ended quietly", "a beekeeper", "a power cut", "a school reunion",
        "a kitchen radio", "grief at a supermarket", "a wedding seen by a caterer",
    ),
    "register": (
        "plain speech", "wry and dry", "tender but unsentimental", "angry and precise",
        "elegiac", "playful", "formal and ceremonious", "documentary, flat and factual",
        "conversational, addressed to someone", "incantatory",
    ),
    "constraint": (
        "no adjectives in the first stanza", "every line under eight words", "one sentence only",
        "no abstract nouns", "include a brand name and a number", "end on a question",
        "use second person throughout", "present tense only", "no rhyme at all",
        "include a line of overheard speech", "exactly 12 lines", "begin in the middle of an action",
        "none",
    ),
    "difficulty": ("beginner", "intermediate", "advanced"),
}


@dataclass(frozen=True)
class BriefAttributes:
    form: str
    theme: str
    register: str
    constraint: str
    difficulty: str

    def as_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTES}


def sample_attributes(count: int, seed: int) -> list[BriefAttributes]:
    """`count` attribute sets: each attribute dealt from its own reshuffled deck."""
    rng = random.Random(seed)
    decks: dict[str, list[str]] = {name: [] for name in ATTRIBUTES}
    out = []
    for _ in range(count):
        chosen = {}
        for name, values in ATTRIBUTES.items():
            if not decks[name]:
                decks[name] = list(values)
                rng.shuffle(decks[name])
            chosen[name] = decks[name].pop()
        out.append(BriefAttributes(**chosen))
    return out


def coverage(samples: list[BriefAttributes]) -> dict[str, dict[str, int]]:
    """Per attribute: how many of its values were used, and the fewest and most uses."""
    report = {}
    for name, values in ATTRIBUTES.items():
        counts = Counter(getattr(s, name) for s in samples)
        report[name] = {
            "used": len(counts),
            "of": len(values),
            "fewest": min((counts.get(v, 0) for v in values), default=0),
            "most": max(counts.values(), default=0),
        }
    return report


def describe_coverage(report: dict[str, dict[str, int]]) -> str:
    return "; ".join(f"{name} {r['used']}/{r['of']} (each {r['fewest']}–{r['most']}×)" for name, r in report.items())
