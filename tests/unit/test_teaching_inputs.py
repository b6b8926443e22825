"""The generators' inputs: raw poem files, Hugging Face data sets, brief attributes, the
tasks' prompts and ids, the append-only files and the price table."""

from __future__ import annotations

import json

import pytest

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.config.schema import RawPoemSettings
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.claude.ledger import PriceBook, Usage, ledger_entry, summarise
from poetry_workshop.pipeline.data.brief_attributes import ATTRIBUTES, coverage, sample_attributes
from poetry_workshop.pipeline.data.raw_poems import RawPoem, RawPoemReader, read_hf_poems
from poetry_workshop.pipeline.data.tasks import TASKS, TaskSources, work_items
from poetry_workshop.pipeline.jsonl_log import AppendLog, read_jsonl

POEM = "The hose kicks in the yard\nwhere my father left it coiled,\na green snake with a brass head."


def reader(**limits) -> RawPoemReader:
    return RawPoemReader(RawPoemSettings(**limits))


# ------------------------------------------------------------------------- raw poems


def test_txt_files_hold_one_poem_or_several_separated_by_dashes(tmp_path):
    path = tmp_path / "good" / "poems.txt"
    path.parent.mkdir()
    path.write_text(f"{POEM}\n---\n\nSecond poem, first line\nand its second line here\n", encoding="utf-8")
    r = reader()
    poems = r.read_raw(tmp_path)
    assert [p.text.splitlines()[0] for p in poems["good"]] == ["The hose kicks in the yard", "Second poem, first line"]
    assert poems["good"][1].source.endswith("poems.txt:6")  # line of its first non-blank line
    assert poems["bad"] == [] and r.report.poems == 2 and r.report.skipped == 0


def test_jsonl_reads_text_or_poem_and_names_each_bad_line(tmp_path):
    path = tmp_path / "bad" / "set.jsonl"
    path.parent.mkdir()
    path.write_text("\n".join([
        json.dumps({"text": POEM}),
        "{not json",
        json.dumps({"poem": "my heart is heavy like the rain tonight"}),
        json.dumps({"title": "no body"}),
        json.dumps(["a list"]),
    ]) + "\n", encoding="utf-8")
    r = reader()
    poems = r.read_raw(tmp_path)
    assert len(poems["bad"]) == 2
    assert [w.split(": ")[0] for w in r.report.warnings] == [f"{path}:2", f"{path}:4", f"{path}:5"]
    assert "not valid JSON" in r.report.warnings[0] and "'text' or 'poem'" in r.report.warnings[1]


def test_unusable_files_are_skipped_with_a_warning_and_counted(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "latin1.txt").write_bytes("caf\xe9 au lait on the sill of the morning".encode("latin-1"))
    (good / "binary.txt").write_bytes(b"\x00\x01\x02 poem?")
    (good / "empty.txt").write_text("  \n\n", encoding="utf-8")
    (good / "huge.txt").write_text("word " * 400, encoding="utf-8")
    (good / "long.txt").write_text("a line of a very long poem\n" * 50, encoding="utf-8")
    (good / "tiny.txt").write_text("hi", encoding="utf-8")
    (good / "picture.png").write_bytes(b"\x89PNG")
    (good / "fine.txt").write_text(POEM, encoding="utf-8")
    (good / "same.txt").write_text(POEM + "\n\n", encoding="utf-8")  # exact duplicate after normalising
    r = reader(max_file_bytes=1500, max_poem_chars=1000, min_poem_chars=20)
    poems = r.read_raw(tmp_path)
    assert [p.text for p in poems["good"]] == [POEM]
    warned = {w.split(":")[0].rsplit("/", 1)[-1]: w for w in r.report.warnings}
    assert set(warned) == {"latin1.txt", "binary.txt", "empty.txt", "huge.txt", "long.txt", "tiny.txt", "picture.png"}
    assert "not UTF-8" in warned["latin1.txt"] and "binary" in warned["binary.txt"]
    assert "max_file_bytes" in warned["huge.txt"] and "max_poem_chars" in warned["long.txt"]
    assert r.report.duplicates == 1 and r.report.skipped == 7


def test_a_local_hugging_face_data_set_is_read_through_datasets(tmp_path):
    import datasets  # installed by the test set-up; a missing one must fail, not skip

    saved = tmp_path / "saved"
    texts = [POEM, "Another poem entirely, with two\nlines of its own here"]
    datasets.Dataset.from_dict({"content": texts}).save_to_disk(str(saved))
    r = reader()
    poems = read_hf_poems(str(saved), "content", r)
    assert [p.text for p in poems][0] == POEM and len(poems) == 2 and poems[0].quality == "good"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "train.jsonl").write_text(json.dumps({"text": "A third poem, from a plain folder\nof JSON lines"}) + "\n")
    assert len(read_hf_poems(str(plain), "text", reader())) == 1
    with pytest.raises(ConfigError, match="no field 'poem'.*content"):
        read_hf_poems(str(saved), "poem", reader())


# ---------------------------------------------------------------- brief attributes


def test_brief_attributes_are_seeded_and_cover_every_value_evenly():
    a, b = sample_attributes(72, seed=7), sample_attributes(72, seed=7)
    assert a == b and a != sample_attributes(72, seed=8)
    report = coverage(a)
    for name, values in ATTRIBUTES.items():
        assert report[name]["used"] == len(values)  # 72 draws cover every list here
        assert report[name]["most"] - report[name]["fewest"] <= 1  # dealt like decks, not drawn at random


# ------------------------------------------------------------------------- the tasks


def sources() -> TaskSources:
    return TaskSources(poems={"good": [RawPoem(POEM, "good", "a"), RawPoem(POEM + "\nand a fourth line", "good", "b")],
                              "bad": [RawPoem("my heart is heavy like the rain\nthe tapestry of life", "bad", "c")]},
                       questions=["What is enjambment?"])


def test_ids_are_deterministic_and_the_prompts_come_from_the_persona():
    task = TASKS["critiques"]
    first = [i.id for i in work_items(task, sources())]
    assert first == [i.id for i in work_items(task, sources())]
    assert len(set(first)) == 3 and all(i.startswith("critiques-") for i in first)
    prefix = task.shared_prefix()
    assert "How a critique is built" in prefix  # the pedagogy document itself
    item = next(work_items(task, sources()))
    assert " 1  " in item.prompt  # numbered as the app numbers poems


def test_changing_a_persona_document_changes_the_prompt_version_and_the_ids(tmp_path, monkeypatch):
    task = TASKS["lessons"]
    before = (task.version(), next(work_items(task, sources())).id)
    persona = tmp_path / "persona"
    persona.mkdir()
    for f in locations.persona_dir().iterdir():
        (persona / f.name).write_text(f.read_text(encoding="utf-8"), encoding="utf-8")
    doc = persona / "pedagogy_design_doc.md"
    doc.write_text(doc.read_text(encoding="utf-8") + "\nOne more rule.\n", encoding="utf-8")
    monkeypatch.setattr(locations, "persona_dir", lambda: persona)
    after = (task.version(), next(work_items(task, sources())).id)
    assert before[0] != after[0] and before[1] != after[1]


def test_output_formats_require_every_field_and_allow_no_others():
    for task in TASKS.values():
        fmt = task.output_format()
        assert fmt["type"] == "json_schema"
        schema = fmt["schema"]
        assert set(schema["required"]) == set(schema["properties"]) and schema["additionalProperties"] is False


def test_prompt_versions_hash_the_sdk_output_format_whether_remembered_or_not():
    import hashlib

    from poetry_workshop.pipeline.data import output_formats
    from poetry_workshop.pipeline.data.tasks import _canonical

    task = TASKS["critiques"]
    fresh = _canonical([task.shared_prefix(), task.templates, task.output_format()])
    expected = hashlib.sha256(fresh.encode("utf-8")).hexdigest()[:10]
    assert not output_formats.cache_file().exists()
    assert task.version() == expected  # computed with the SDK, and remembered
    assert output_formats.cache_file().is_file()
    assert task.version() == expected  # read back from the file
    output_formats.cache_file().write_text("{not json", encoding="utf-8")
    assert task.version() == expected  # a damaged file is computed past and rewritten
    assert json.loads(output_formats.cache_file().read_text(encoding="utf-8"))["formats"]


def test_the_default_claude_model_is_current_in_the_sdk():
    import typing

    import anthropic
    from anthropic._data import DEPRECATED_MODELS
    from anthropic.types.model_param import ModelParam

    model = load_settings().generation.claude.model
    known = typing.get_args(typing.get_args(ModelParam)[0])
    assert model in known and model not in DEPRECATED_MODELS, anthropic.__version__


def test_comparisons_pair_strong_with_weak_and_vary_which_comes_first():
    items = list(work_items(TASKS["comparisons"], sources()))
    assert items and all(i.inputs["poem_a"] != i.inputs["poem_b"] for i in items)
    keys = {frozenset((i.inputs["poem_a"], i.inputs["poem_b"])) for i in items}
    assert len(keys) == len(items)  # no pair twice


# ------------------------------------------------------------- files and the ledger


def test_a_torn_last_line_is_set_aside_before_appending(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"id": "a"}) + "\n" + '{"id": "b", "out', encoding="utf-8")
    log = AppendLog(path)
    log.append({"id": "c"})
    log.close()
    records, warnings = read_jsonl(path)
    assert [r["id"] for r in records] == ["a", "c"] and warnings == []
    assert "cut off" in log.repair_warning and "records.jsonl:2" in log.repair_warning
    (aside,) = tmp_path.glob("records.jsonl.torn-*")
    assert aside.read_text(encoding="utf-8") == '{"id": "b", "out'


def test_costs_come_from_the_dated_price_table():
    book = PriceBook(load_settings().generation.prices)
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_write_tokens=0, cache_read_tokens=2_000_000)
    assert book.cost("claude-sonnet-5-5", usage) == pytest.approx(2.0 + 1.0 + 0.2)
    assert book.cost("claude-sonnet-5-5", usage, batch=True) == pytest.approx((2.0 + 1.0 + 0.2) / 2)
    with pytest.raises(ConfigError, match="no price for model 'claude-x'"):
        book.cost("claude-x", usage)
    entries = [ledger_entry(run="r", task="critiques", record_id=str(i), model="m", outcome=o, usage=Usage(10, 5),
                            cost=0.5, request_id=None, batch=False) for i, o in enumerate(["accepted", "accepted", "rejected", "failed"])]
    t = summarise(entries)["critiques"]
    assert (t.calls, t.accepted, t.rejected, t.failed, t.usage.total, t.dollars, t.per_accepted) == (4, 2, 1, 1, 60, 2.0, 1.0)
