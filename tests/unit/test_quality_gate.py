"""The quality gate: each rule on poems and critiques written to pass and to fail it, the
rates on human and machine-sounding poems, and the `workshop data gate` command."""

from __future__ import annotations

import json

import pytest

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
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


def test_human_poems_mostly_pass_and_machine_sounding_ones_mostly_fail(matcher):
    baseline = pm.human_baseline(matcher, HUMAN, SLOP)
    gate = QualityGate(load_settings().gate, matcher, baseline=baseline)
    human_pass = sum(not gate.check_poem(p, FREE_VERSE) for p in HUMAN) / len(HUMAN)
    machine_fail = sum(bool(gate.check_poem(p, FREE_VERSE)) for p in MACHINE) / len(MACHINE)
    assert human_pass >= 0.85, human_pass
    assert machine_fail >= 0.9, machine_fail


def test_the_llm_ism_rate_is_judged_against_the_human_baseline(matcher):
    slop = MACHINE[0]
    strict = QualityGate(load_settings().gate, matcher, baseline=7.0)
    (failure,) = [f for f in strict.check_poem(slop, FREE_VERSE) if f.rule == "llm-isms"]
    assert '"tapestry" (line 1)' in failure.evidence and "per 1,000 words" in failure.evidence
    # A person whose own poems are full of these words moves the bar with them.
    lenient = QualityGate(load_settings().gate, matcher, baseline=500.0)
    assert "llm-isms" not in rules(lenient.check_poem(slop, FREE_VERSE))


def test_a_few_slop_words_in_a_long_text_are_tolerated_as_in_human_writing(gate):
    text = " ".join(["the kettle clicks off and the house goes on without it"] * 20) + " a whisper of steam."
    assert not gate.llm_isms(text, "poem")


# --------------------------------------------------------------- the machine signature


def test_end_rhyme_quatrains_and_we_voice_fail_only_when_the_brief_did_not_ask(gate):
    poem = MACHINE[1]
    assert {"end-rhyme", "quatrains", "we-voice"} <= rules(gate.poetic_defaults(poem, FREE_VERSE, "poem"))
    asked = parse_brief("Form: ballad in rhymed quatrains\nLength: 8 lines\nSpeaker: we, two old friends")
    assert not rules(gate.poetic_defaults(poem, asked, "poem")) & {"end-rhyme", "quatrains", "we-voice"}


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
    couplets = parse_brief("Form: couplets\nLength: 6 lines")
    assert "stanzas of [3]" in gate.form("a\nb\n\nc\nd\n\ne\nf\ng", couplets, "poem")[0].evidence
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


def record(i: int, task: str, output: dict, inputs: dict) -> dict:
    return {"id": f"{task}-{i}", "task": task, "prompt_version": "v", "inputs": inputs, "output": output}


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
    assert {(r["id"], r["rule"]) for r in rejects} >= {("critiques-2", "praise-share"), ("poet-pairs-4", "llm-isms"),
                                                       ("poet-pairs-4", "end-rhyme"), ("poet-pairs-4", "we-voice")}
    assert all(r["evidence"] for r in rejects)
    assert "praise-share" in out.stdout and "seen" in out.stdout and "all rules" in out.stdout


def test_gate_on_an_unusable_file_writes_nothing(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    out = run_cli("data", "gate", str(bad), "--output", str(tmp_path / "kept.jsonl"))
    assert out.returncode == 2 and "no usable records" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "kept.jsonl").exists()
    missing = run_cli("data", "gate", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr


# ------------------------------------------------------------------- speed-ups agree


def test_the_one_pass_matcher_finds_what_each_entry_finds_alone(matcher):
    isms = load_llm_isms()
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
