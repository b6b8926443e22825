"""The LLM-ism matcher's shortcut: a pattern runs only on texts holding the literal text it
cannot match without, and the shortcut never hides a match."""

from __future__ import annotations

import re

from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.workshop.persona import load_llm_isms


def test_required_text_is_read_from_the_pattern():
    assert pm._required(re.compile(r"(?i)\bnot\b[^.!?\n]{0,40}\n\s*but\b")) == [("not",), ("but",)]
    assert pm._required(re.compile("(?i)\\bhere(?:'|\u2019)s (?:a|the) (?:poem|draft)")) == \
        [("here's ", "here\u2019s "), ("poem", "draft")]
    assert pm._required(re.compile(r"(?m)^\s*#{1,6}\s")) == [("#",)]
    assert pm._required(re.compile(r"(?i)\b(?:a|an)\s+\w+")) == []  # nothing plain: it always runs


def test_the_shortcut_hides_no_match():
    isms = load_llm_isms()
    matcher = pm.LlmIsmMatcher(isms, inflections=False)
    texts = ["Here\u2019s a revised poem:\n\n# The river\n\nIt was not the water\nbut the light.",
             "HERE'S THE DRAFT. It's not just a poem, it's a door."]
    patterns = [i for i in isms if i.source.startswith("re:")]
    for text in texts:
        expected = sorted((i.category, " ".join(m.group(0).split()).lower()) for i in patterns
                          for m in i.pattern.finditer(text))
        assert len({category for category, _ in expected}) >= 2, text[:30]  # the test says something
        literal = {(h.category, h.phrase.lower()) for h in matcher._literal_hits(text)}
        got = sorted(hit for hit in ((h.category, h.phrase.lower()) for h in matcher.hits(text)) if hit not in literal)
        assert got == expected, text[:30]


def test_dead_metaphors_read_off_the_lexicon_are_the_persona_matchers():
    from poetry_workshop.config.loader import load_settings
    from poetry_workshop.pipeline.gate.rules import DEAD_METAPHORS, QualityGate
    from tests.support.gate_corpus import HUMAN, MACHINE

    matcher = pm.LlmIsmMatcher(load_llm_isms())
    gate = QualityGate(load_settings().gate, matcher, 7.0)
    clichés = "Her heart of gold, his heart of stone:\nthe calm before the storm, the sands of time."
    found = 0
    for poem in HUMAN + MACHINE + [clichés]:
        expected = pm.once(matcher.hits(poem, DEAD_METAPHORS))
        assert gate.dead_metaphors(poem) == expected, poem[:30]
        found += len(expected)
    assert found >= 4
