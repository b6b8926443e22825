"""The persona documents exist, are substantial, and anti_llm_isms.txt parses."""

from __future__ import annotations

import pytest

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError
from poetry_workshop.workshop.persona import load_llm_isms, load_persona, parse_llm_isms


def test_system_prompts_load():
    persona = load_persona()
    assert persona.educator_system.startswith("You are the Educator")
    assert "Never" in persona.educator_system
    assert "Output only the poem" in persona.poet_system


def test_design_documents_cover_the_method():
    doc = (locations.persona_dir() / "pedagogy_design_doc.md").read_text(encoding="utf-8").lower()
    for topic in ("enjambment", "volta", "follow-up", "brief", "cliché", "never"):
        assert topic in doc
    voice = (locations.persona_dir() / "poet_voice.md").read_text(encoding="utf-8").lower()
    assert "revis" in voice and "quatrain" in voice


def test_llm_isms_parse_into_weighted_categories():
    entries = load_llm_isms()
    categories = {e.category for e in entries}
    assert {"slop-words", "slop-phrases", "contrast-pattern", "dead-metaphors", "assistant-leakage"} <= categories
    assert all(e.weight > 0 for e in entries)
    text = "Here is a poem:\nIt is not the sea but the salt.\nA tapestry of whispers in the\nweight of dusk."
    hits = {e.category for e in entries if e.find(text)}
    assert {"slop-words", "contrast-pattern", "assistant-leakage"} <= hits
    plain = "The kettle ticks as it cools. My father's boots by the door, laces knotted twice."
    assert not [e.source for e in entries if e.category in ("slop-words", "slop-phrases") and e.find(plain)]


def test_phrase_matches_across_a_line_break():
    (entry,) = parse_llm_isms("[slop-phrases weight=3.0]\nthe weight of\n")
    assert entry.find("under the weight\nof it") == ["the weight\nof"]
    assert entry.find("the weightof it") == []


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("tapestry\n", "before the first"),
        ("[slop weight=heavy]\nx\n", "bad section header"),
        ("[slop weight=1.0]\nre: (unclosed\n", "invalid regular expression"),
    ],
)
def test_llm_isms_format_errors_name_the_line(text, fragment):
    with pytest.raises(ConfigError, match=fragment) as err:
        parse_llm_isms(text, "anti.txt")
    assert str(err.value).startswith("anti.txt:")
