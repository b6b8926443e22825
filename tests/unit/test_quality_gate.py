"""The quality gate: each rule on poems and critiques written to pass and to fail it, the
rates on human and machine-sounding poems, and the `workshop data gate` command."""

from __future__ import annotations

import json

import pytest

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.gate.rules import SLOP, QualityGate
from poetry_workshop.pipeline.gate.run import run_gate
from poetry_workshop.verse import poem_metrics as pm
from poetry_workshop.verse.brief_spec import BriefSpec, parse_brief
from poetry_workshop.workshop.persona import load_llm_isms
from tests.support.cli import run_cli
from tests.support.gate_corpus import (
    GOOD_CRITIQUE,
    GOOD_REVISION,
    HUMAN,
    MACHINE,
    POEM,
    PRAISE_CRITIQUE,
    REWRITE_CRITIQUE,
    UNGROUNDED_CRITIQUE,
)

FREE_VERSE = BriefSpec()


@pytest.fixture(scope="module")
def matcher():
    return pm.LlmIsmMatcher(load_llm_isms())


@pytest.fixture
def gate(matcher):
    return QualityGate(load_settings().gate, matcher, baseline=7.0, training_poems=[("good.txt:1", HUMAN[8])])


def rules(failures) -> set[str]:
    return {f.rule for f in failures}


# ----------------------------------------------------------- human versus machine verse


def test_the_test_poems_keep_their_verdicts_every_human_passes_every_machine_fails(matcher):
    baseline = pm.human_baseline(matcher, HUMAN, SLOP)
    gate = QualityGate(load_settings().gate, matcher, baseline=baseline)
    assert [(i, gate.check_poem(p, FREE_VERSE)) for i, p in enumerate(HUMAN) if gate.check_poem(p, FREE_VERSE)] == []
    assert [i for i, p in enumerate(MACHINE) if not gate.check_poem(p, FREE_VERSE)] == []


def test_the_llm_ism_rate_is_judged_against_the_human_baseline(matcher):
    slop = MACHINE[0]
    strict = QualityGate(load_settings().gate, matcher, baseline=7.0)
    (failure,) = [f for f in strict.check_poem(slop, FREE_VERSE) if f.rule == "llm-isms"]
    assert '"In the tapestry of" (line 1)' in failure.evidence and "per 1,000 words" in failure.evidence
    # A person whose own poems are full of these words moves the bar with them.
    lenient = QualityGate(load_settings().gate, matcher, baseline=500.0)
    assert "llm-isms" not in rules(lenient.check_poem(slop, FREE_VERSE))


def test_a_few_slop_words_in_a_long_text_are_tolerated_as_in_human_writing(gate):
    text = " ".join(["the kettle clicks off and the house goes on without it"] * 20) + " a whisper of steam."
    assert not gate.llm_isms(text, "poem")


# --------------------------------------------------------------- the machine signature


# Rhymed "we" quatrains, every line end-stopped, in plain words: the shape without the vocabulary.
SHAPE_ONLY = ("We took the bus to see the sea,\nWe sat on stones and drank our tea,\nWe counted boats along the bay,\n"
              "And watched the ferry pull away.\n\nWe bought some chips and ate them hot,\nWe walked until our legs were shot,\n"
              "We missed the bus and took the train,\nAnd swore we'd come back in the rain.")
# Rhymed quatrains of one speaker whose sentences run over the line ends: two signals only.
BALLAD_SHAPE = ("I met a farmer on the road\nwho carried on his back a load\nof turnips for the Friday sale\n"
                "and asked me if I knew the jail.\n\nI told him that I did not know\nbut he could ask the man below\n"
                "who kept the toll and weighed the hay\nand never gave the time of day.")


def test_the_machine_shape_is_judged_jointly_and_only_when_the_brief_did_not_ask(gate):
    failures = [f for f in gate.poetic_defaults(SHAPE_ONLY, FREE_VERSE, "poem") if f.rule == "machine-shape"]
    assert failures, "quatrains + rhyme + we-voice + end-stopped lines together should reject"
    for signal in ("four lines", "line ends rhyme", "we/us/our", "ends on punctuation"):
        assert signal in failures[0].evidence
    # Rhyme and quatrains alone, as in a ballad, do not reject a poem without the rest.
    assert not [f for f in gate.poetic_defaults(BALLAD_SHAPE, FREE_VERSE, "poem") if f.rule == "machine-shape"]
    asked = parse_brief("Form: ballad in rhymed quatrains\nLength: 8 lines\nSpeaker: we, two old friends")
    assert "machine-shape" not in rules(gate.poetic_defaults(SHAPE_ONLY, asked, "poem"))
    sonnet = parse_brief("Form: sonnet")  # a named form that rhymes: the shape rule is off
    assert "machine-shape" not in rules(gate.poetic_defaults(SHAPE_ONLY, sonnet, "poem"))


def test_machine_vocabulary_alone_rejects_only_past_the_length_aware_bound(gate):
    from poetry_workshop.pipeline.gate import lexicon

    heaviest = max(w for w, *_ in lexicon.figures.WEIGHTS.values())
    assert lexicon.BOUND.allowance >= heaviest + 1  # no single word rejects a poem
    short = "The symphony\nof the kettle at six,\nmy father's cough,\nthe radio news."
    assert "llm-isms" not in rules(gate.check_poem(short, FREE_VERSE))
    heavy = short + "\nA tapestry of whispers, a testament to light,\na beacon, a melody, solace and embrace."
    assert "llm-isms" in rules(gate.check_poem(heavy, FREE_VERSE))
    # The same words in a long poem are a lower rate: the bound grows with the words.
    score, limit, _ = gate.poem_lexicon(heavy)
    _, longer_limit, _ = gate.poem_lexicon(heavy + "\n" + "\n".join(HUMAN[7:]))
    assert longer_limit > limit and score > 0


def test_each_stretch_of_text_counts_once_and_inflections_match(matcher):
    hits = matcher.hits("a testament to the symphony of rain", ["slop-words", "slop-phrases"])
    assert {h.phrase for h in hits} >= {"a testament to", "testament", "symphony of", "symphony"}
    assert sorted(h.phrase for h in pm.once(hits)) == ["a testament to", "symphony of"]
    assert [h.phrase for h in matcher.hits("and the world faded away", ["slop-phrases"])] == ["the world faded away"]
    assert {h.phrase for h in matcher.hits("embracing it, echoed", ["slop-words"])} == {"embracing", "echoed"}
    assert pm.inflection_key("whispered") == pm.inflection_key("whispers") == "whisper"
    assert pm.inflection_key("humming") == "hum" and pm.inflection_key("glass") == "glass"


def test_dead_metaphors_and_poetic_defaults_are_named_with_their_lines(gate):
    poem = "My heart of gold is shattered\nthe sands of time run out\nbroken hearts in the silence\nof my soul"
    failures = [f for f in gate.poetic_defaults(poem, FREE_VERSE, "poem") if f.rule == "cliches"]
    assert failures and "(line 1)" in failures[0].evidence


# ------------------------------------------------------------------------------- form


def test_form_against_the_brief_lines_stanzas_syllables_rhyme(gate):
    sonnet = parse_brief("Form: sonnet\nLength: 14 lines")
    assert "form" in rules(gate.form(POEM, sonnet, "poem"))  # seven lines is not a sonnet
    haiku = parse_brief("Form: haiku\nLength: 3 lines")
    assert not gate.form("An old silent pond\nA frog jumps into the pond\nSplash! Silence again", haiku, "poem")
    bad = gate.form("An old pond\nA frog jumps into the pond and swims away\nSplash", haiku, "poem")
    assert "syllables" in bad[0].evidence
    tercets = parse_brief("Form: tercets\nLength: 8 lines")
    assert "stanzas of [2]" in gate.form("a\nb\nc\n\nd\ne\n\nf\ng\nh", tercets, "poem")[0].evidence
    # A poem without stanza breaks is not held to a stanza length (heroic couplets run on).
    assert not gate.form("a\nb\nc\nd\ne\nf\ng\nh", tercets, "poem")
    sonnets = parse_brief("Form: sonnet")  # a sequence of two, each under a heading, is sonnets
    sequence = "\n\n".join(f"{n}.\n\n" + "\n".join(["the ferry leaves the harbour late at night"] * 14) for n in "12")
    assert not gate.form(sequence, sonnets, "poem")
    assert "syllables" in gate.form("\n".join(["the sea"] * 14), sonnets, "poem")[0].evidence  # not pentameter
    rhymed = parse_brief("Form: free verse\nLength: 4 lines\nConstraint: use slant rhyme")
    assert "asks for rhyme" in gate.form(HUMAN[8], rhymed, "poem")[0].evidence


# ---------------------------------------------------------------------------- critique


def test_a_grounded_actionable_critique_passes(gate):
    assert gate.critique(GOOD_CRITIQUE, [POEM], "critique") == []


def test_quotes_not_in_the_poem_and_lines_that_do_not_exist_fail(gate):
    failures = gate.critique(UNGROUNDED_CRITIQUE, [POEM], "critique")
    assert rules(failures) == {"grounded-quotes", "cited-lines"}
    assert "I twist the silver handle slowly" in failures[0].evidence and "line 9" in failures[1].evidence


def test_praise_without_direction_and_wholesale_rewriting_fail(gate):
    assert "praise-share" in rules(gate.critique(PRAISE_CRITIQUE, [POEM], "critique"))
    no_direction = "The poem describes a hose. It has seven lines. The last line mentions a name."
    assert "actionable" in rules(gate.critique(no_direction, [POEM], "critique"))
    failures = gate.critique(REWRITE_CRITIQUE, [POEM], "critique")
    assert rules(failures) == {"rewrite"} and "The hose lies coiled" in failures[0].evidence


# ---------------------------------------------------------------------------- revision


def test_a_revision_must_change_what_was_flagged_and_not_much_else(gate):
    assert gate.revision(POEM, GOOD_CRITIQUE, GOOD_REVISION, "revision") == []
    untouched = gate.revision(POEM, GOOD_CRITIQUE, POEM, "revision")
    assert rules(untouched) == {"revision-focus"} and "then nothing I can name" in untouched[0].evidence
    rewritten = gate.revision(POEM, GOOD_CRITIQUE, HUMAN[8], "revision")
    assert "revision-scope" in rules(rewritten)


# ----------------------------------------------------------------------------- hygiene


def test_template_tokens_role_headers_fences_and_length(gate):
    assert "template-tokens" in rules(gate.hygiene(POEM + "\n<|im_end|>", "poem"))
    assert "template-tokens" in rules(gate.hygiene("Assistant: here it is\n" + POEM, "poem"))
    assert "template-tokens" in rules(gate.hygiene("```\n" + POEM + "\n```", "poem"))
    assert "length" in rules(gate.hygiene("too short", "poem"))
    assert gate.hygiene(POEM, "poem") == []


def test_verbatim_copying_of_a_source_poem_fails(gate):
    copied = HUMAN[8] + "\nand then I went home."
    (failure,) = gate.copying(copied, "poem")
    assert failure.rule == "copying" and "good.txt:1" in failure.evidence
    assert gate.copying(POEM, "poem") == []


def record(i: int, task: str, output: dict, inputs: dict, version: str | None = None) -> dict:
    """A record as the generator writes it, with its task's current prompt version unless `version`."""
    from poetry_workshop.pipeline.data.prompt_versions import current_versions

    version = current_versions([task])[task] if version is None else version
    return {"id": f"{task}-{i}", "task": task, "prompt_version": version, "inputs": inputs, "output": output}


def critique_record(i: int, text: str = GOOD_CRITIQUE) -> dict:
    return record(i, "critiques", {"critique": text, "quotes": ["a green snake with a brass head"],
                                   "question": "What did the water do?", "next_step": "End a line earlier."},
                  {"poem": POEM, "quality": "strong"})


def test_near_duplicates_are_dropped_keeping_the_first(gate):
    kept, rejected = [], []
    near = GOOD_CRITIQUE.replace("quietly", "softly")
    report = run_gate(gate, [critique_record(1), critique_record(2, near), critique_record(3, PRAISE_CRITIQUE)],
                      kept.append, rejected.append)
    assert [r["id"] for r in kept] == ["critiques-1"]
    dup = [r for r in rejected if r["rule"] == "near-duplicate"]
    assert dup[0]["id"] == "critiques-2" and "critiques-1" in dup[0]["evidence"]
    assert report.table[("near-duplicate", "critiques")] == [3, 2, 1]


# ------------------------------------------------------------------------ the command


def poet_pair(i: int, poem: str, revision: str) -> dict:
    brief = "Form: free verse\nLength: 6-9 lines\nSpeaker: a son, first person\nAnchor: the hose\n" \
            "Register: plain\nConstraint: no rhyme\nAvoid: rhyme, we/us/our"
    return record(i, "poet-pairs", {"poem": poem, "critique": GOOD_CRITIQUE, "revision": revision},
                  {"request": "a poem about my dad's garden hose", "brief": brief, "brief_id": "briefs-x"})


def test_gate_command_keeps_the_good_logs_rules_with_evidence_and_names_bad_lines():
    path = locations.data_dir() / "annotated" / "mixed.jsonl"
    path.parent.mkdir(parents=True)
    lines = [json.dumps(critique_record(1)), "{broken json", json.dumps(critique_record(2, PRAISE_CRITIQUE)),
             json.dumps({"id": "x", "task": "critiques", "output": {"critique": 3}}),
             json.dumps(poet_pair(3, POEM, GOOD_REVISION)), json.dumps(poet_pair(4, MACHINE[0], MACHINE[1]))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = run_cli("data", "gate", str(path))
    assert out.returncode == 0, out.stderr
    assert f"{path}:2: not valid JSON" in out.stderr and f"{path}:4: output does not fit" in out.stderr
    kept = [json.loads(x)["id"] for x in (locations.data_dir() / "gated" / "mixed.jsonl").read_text().splitlines()]
    assert kept == ["critiques-1", "poet-pairs-3"]
    rejects = [json.loads(x) for x in (locations.data_dir() / "gated" / "mixed.rejects.jsonl").read_text().splitlines()]
    assert {(r["id"], r["rule"]) for r in rejects} >= {("critiques-2", "praise-share"), ("poet-pairs-4", "llm-isms")}
    assert all(r["evidence"] for r in rejects)
    assert "praise-share" in out.stdout and "seen" in out.stdout and "all rules" in out.stdout


def test_only_the_current_prompt_version_is_gated_unless_older_ones_are_asked_for(tmp_path):
    from poetry_workshop.pipeline.gate.run import gate_file

    path = tmp_path / "critiques.jsonl"
    older = {**critique_record(2, PRAISE_CRITIQUE), "prompt_version": "0123456789"}
    unversioned = {k: v for k, v in critique_record(3, UNGROUNDED_CRITIQUE).items() if k != "prompt_version"}
    path.write_text("".join(json.dumps(r) + "\n" for r in (critique_record(1), older, unversioned)), encoding="utf-8")
    lines: list[str] = []
    run = gate_file(load_settings(), path, tmp_path / "kept.jsonl", warn=lines.append)
    assert (run.report.seen, run.older, run.older_kept) == (1, 2, False)
    (note,) = [line for line in lines if "earlier prompt version" in line]
    assert "2 record(s)" in note and "left out" in note and "--include-older-versions" in note
    both = gate_file(load_settings(), path, tmp_path / "kept.jsonl", warn=lines.append, include_older_versions=True)
    assert (both.report.seen, both.older, both.older_kept) == (3, 2, True)
    rejected = {json.loads(x)["id"] for x in (tmp_path / "kept.rejects.jsonl").read_text().splitlines()}
    assert rejected == {"critiques-2", "critiques-3"}  # the older records were gated, and failed
    only_old = tmp_path / "old.jsonl"
    only_old.write_text(json.dumps(older) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="earlier prompt version"):
        gate_file(load_settings(), only_old, tmp_path / "none.jsonl")
    assert not (tmp_path / "none.jsonl").exists()


def test_gate_on_an_unusable_file_writes_nothing(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    out = run_cli("data", "gate", str(bad), "--output", str(tmp_path / "kept.jsonl"))
    assert out.returncode == 2 and "no usable records" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "kept.jsonl").exists()
    missing = run_cli("data", "gate", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


# ------------------------------------------------------------------- speed-ups agree


def test_the_one_pass_matcher_finds_what_each_entry_finds_alone():
    isms = load_llm_isms()
    matcher = pm.LlmIsmMatcher(isms, inflections=False)  # with inflections it finds more (tested above)
    texts = HUMAN + MACHINE + [GOOD_CRITIQUE, "It is not the end\nbut a beginning. Certainly! We are more than just dust."]
    for text in texts:
        expected = sorted((i.category, " ".join(m.group(0).split()).lower()) for i in isms for m in i.pattern.finditer(text))
        got = sorted((h.category, h.phrase.lower()) for h in matcher.hits(text))
        assert got == expected, text[:40]


def test_checks_in_worker_processes_give_the_serial_verdicts(gate, monkeypatch):
    from poetry_workshop.pipeline.gate import run as quality_gate
    records = [critique_record(i, text) for i, text in enumerate([GOOD_CRITIQUE, PRAISE_CRITIQUE, UNGROUNDED_CRITIQUE,
                                                                   REWRITE_CRITIQUE] * 5)]
    records += [poet_pair(100 + i, p, GOOD_REVISION) for i, p in enumerate(HUMAN + MACHINE)]
    serial_kept, serial_rejected = [], []
    run_gate(gate, records, serial_kept.append, serial_rejected.append, workers=1)
    monkeypatch.setattr(quality_gate, "PARALLEL_FROM", 10)
    fresh = QualityGate(load_settings().gate, gate.matcher, baseline=7.0, training_poems=[("good.txt:1", HUMAN[8])])
    kept, rejected = [], []
    run_gate(fresh, records, kept.append, rejected.append, workers=2)
    assert [r["id"] for r in kept] == [r["id"] for r in serial_kept]
    assert rejected == serial_rejected
