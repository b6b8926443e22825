"""`workshop data prepare`: conversations in the app's own prompts, a split by source poem
that is deterministic and leak-free, caps, and the length check under the base tokenizer."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.names import TASK_NAMES
from poetry_workshop.pipeline.data.prompt_versions import current_versions
from poetry_workshop.pipeline.data.raw_poems import poem_id
from poetry_workshop.pipeline.training.training_sets import (
    TokenCounter,
    check_conversation,
    educator_examples,
    poet_examples,
    prepare,
    split_groups,
)
from poetry_workshop.workshop import prompts
from poetry_workshop.workshop.persona import load_persona
from tests.support.cli import STARTER, run_cli
from tests.support.gate_corpus import GOOD_CRITIQUE, GOOD_REVISION, HUMAN, POEM

BRIEF = {"form": "free verse", "length": "6-9 lines", "speaker": "a son, first person", "anchor": "the hose",
         "register": "plain", "constraint": "no rhyme", "avoid": "rhyme, we/us/our"}


def corpus() -> list[dict]:
    """Hand-made gated records: every task, several records sharing source poems."""
    out = []
    for n, poem in enumerate(HUMAN[7:]):
        out.append({"id": f"critiques-{n}", "task": "critiques", "inputs": {"poem": poem},
                    "output": {"critique": GOOD_CRITIQUE + f" ({n})", "quotes": ["x"], "question": "What did the water do?",
                               "next_step": "End one line earlier."}})
        out.append({"id": f"autopsies-{n}", "task": "autopsies", "inputs": {"poem": poem},
                    "output": {"autopsy": f"Autopsy {n} " * 30, "pattern": "p" * 30,
                               "phrases": [{"phrase": "xx", "line": 1, "why_dead": "w" * 10, "live_phrase_job": "j" * 10}]}})
        out.append({"id": f"dialogues-{n}", "task": "dialogues",
                    "inputs": {"poem": poem, "critique": GOOD_CRITIQUE, "critique_id": f"critiques-{n}"},
                    "output": {"turns": [{"revision": poem + "\nnew line", "response": "Better. " * 20},
                                         {"revision": poem + "\nanother", "response": "Finished. " * 20}]}})
    for n in range(6):
        out.append({"id": f"lessons-{n}", "task": "lessons", "inputs": {"question": f"Question {n}?"},
                    "output": {"lesson": f"Lesson {n}. " * 40, "example": "e" * 20, "exercise": "x" * 20}})
        out.append({"id": f"briefs-{n}", "task": "briefs", "inputs": {"attributes": {"form": "ode"}},
                    "output": {"request": f"a poem about a hose, take {n}", "brief": BRIEF}})
        out.append({"id": f"poet-pairs-{n}", "task": "poet-pairs",
                    "inputs": {"request": "r", "brief": "Form: free verse", "brief_id": f"briefs-{n}"},
                    "output": {"poem": POEM, "critique": GOOD_CRITIQUE, "revision": GOOD_REVISION}})
    out.append({"id": "comparisons-0", "task": "comparisons", "inputs": {"poem_a": HUMAN[7], "poem_b": HUMAN[8]},
                "output": {"comparison": "Compare " * 50, "quotes": ["a", "b"]}})
    versions = current_versions(TASK_NAMES)  # as the generator stamps them with today's persona
    return [{**r, "prompt_version": versions[r["task"]]} for r in out]


def write_gated(records: list[dict], name: str = "mixed.jsonl") -> None:
    gated = locations.data_dir() / "gated"
    gated.mkdir(parents=True, exist_ok=True)
    (gated / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def read(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def starter_base(monkeypatch, starter_gguf):
    """The starter GGUF as the base model of both sets, so lengths use a real tokenizer offline."""
    for role in ("EDUCATOR", "POET"):
        monkeypatch.setenv(f"POETRY_WORKSHOP__{role}_TRAINING__TRAINING__BASE_MODEL", f'"{starter_gguf}"')


# ------------------------------------------------------------------- conversations


def test_conversations_use_the_apps_prompts_and_persona():
    persona = load_persona()
    records = {r["id"]: r for r in corpus()}
    (critique,) = educator_examples(records["critiques-0"], persona.educator_system)
    assert critique[0] == {"role": "system", "content": persona.educator_system}
    assert critique[1]["content"] == prompts.critique_request(HUMAN[7])
    (dialogue,) = educator_examples(records["dialogues-0"], persona.educator_system)
    assert [m["role"] for m in dialogue] == ["system"] + ["user", "assistant"] * 3
    assert dialogue[3]["content"] == prompts.followup_request(HUMAN[7] + "\nnew line")
    (brief,) = educator_examples(records["briefs-0"], persona.educator_system)
    assert brief[2]["content"].splitlines()[0] == "Form: free verse" and len(brief[2]["content"].splitlines()) == 7
    pair = poet_examples(records["poet-pairs-0"], persona.poet_system)
    assert [m["role"] for m in pair[0]] == ["system", "user", "assistant", "user", "assistant"]
    assert pair[0][4]["content"] == GOOD_REVISION and POEM in pair[1][1]["content"]  # draft + critique → revision
    assert len(poet_examples(records["dialogues-0"], persona.poet_system)) == 2  # the writer's revisions


def test_bad_conversations_are_named():
    assert check_conversation([{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}]) == \
        "an empty assistant turn"
    assert "turn 2" in check_conversation([{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                           {"role": "assistant", "content": "c"}])
    assert check_conversation([{"role": "user", "content": "a"}]) == "does not end with an assistant turn"


# --------------------------------------------------------------------------- split


def test_the_split_is_deterministic_leak_free_and_every_task_is_validated():
    records = corpus()
    first = split_groups(records, 0.25, seed=3)
    assert first == split_groups(list(reversed(records)), 0.25, seed=3)
    assert first != split_groups(records, 0.25, seed=4)
    by_id = {r["id"]: r for r in records}
    side_of_poem: dict[str, set[str]] = {}
    for rid, side in first.items():
        i = by_id[rid]["inputs"]
        for key in ("poem", "poem_a", "poem_b"):
            if key in i:
                side_of_poem.setdefault(poem_id(i[key]), set()).add(side)
    assert all(len(sides) == 1 for sides in side_of_poem.values())  # no poem on both sides
    for n in range(6):  # a poet pair goes where its brief goes
        assert first[f"poet-pairs-{n}"] == first[f"briefs-{n}"]
    tasks_in_valid = {by_id[rid]["task"] for rid, side in first.items() if side == "valid"}
    assert tasks_in_valid >= {"critiques", "lessons", "briefs", "poet-pairs", "dialogues", "autopsies"}


# -------------------------------------------------------------------- the command


def test_prepare_writes_both_sets_with_counts_and_token_lengths(starter_base):
    write_gated(corpus())
    out = run_cli("data", "prepare", "--seed", "5")
    assert out.returncode == 0, out.stderr
    data = locations.data_dir()
    train, valid = read(data / "educator_training" / "train.jsonl"), read(data / "educator_training" / "valid.jsonl")
    poet_train = read(data / "poet_training" / "train.jsonl")
    assert train and valid and poet_train
    assert all(check_conversation(e["messages"]) is None for e in train + valid + poet_train)
    assert "could not load" not in out.stderr
    header = next(line for line in out.stdout.splitlines() if line.split()[:1] == ["task"])
    assert header.split() == ["task", "train", "valid", "p50", "p90", "p99", "max", "over", "max_seq"]
    critiques = next(line for line in out.stdout.splitlines() if line.split()[:1] == ["critiques"]).split()
    assert int(critiques[3]) <= int(critiques[6]) <= 1024 and critiques[7] == "0"  # p50 <= max, none too long
    again = run_cli("data", "prepare", "--seed", "5")
    assert again.returncode == 0
    assert read(data / "educator_training" / "train.jsonl") == train  # deterministic for a seed


def test_examples_longer_than_max_seq_are_dropped_and_counted(starter_base, monkeypatch):
    monkeypatch.setenv("POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__MAX_SEQ", "640")
    write_gated(corpus())
    out = run_cli("data", "prepare", "--educator-only")
    assert out.returncode == 0, out.stderr
    assert "longer than max_seq 640" in out.stdout and "max_seq 640" in out.stdout.splitlines()[1]
    # Per task: how many were over max_seq, beside the percentiles that show by how much.
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[3:] if line.startswith("  ")}
    over = {task: int(cells[7]) for task, cells in rows.items() if task not in ("all", "dropped:")}
    assert sum(over.values()) == int(rows["all"][7]) > 0
    assert all(int(rows[task][6]) > 640 for task, n in over.items() if n)
    counter = TokenCounter(str(STARTER))
    assert counter.note is None
    for e in read(locations.data_dir() / "educator_training" / "train.jsonl"):
        assert counter(e["messages"]) <= 640


def test_min_samples_caps_each_set_and_only_flags_limit_the_roles(starter_base):
    write_gated(corpus())
    out = run_cli("data", "prepare", "--poet-only", "--min-samples", "3")
    assert out.returncode == 0, out.stderr
    data = locations.data_dir()
    assert len(read(data / "poet_training" / "train.jsonl")) == 3
    assert len(read(data / "poet_training" / "valid.jsonl")) <= 1
    assert not (data / "educator_training" / "train.jsonl").exists()


def test_unusable_input_writes_nothing_and_names_bad_lines(starter_base):
    gated = locations.data_dir() / "gated"
    gated.mkdir(parents=True)
    (gated / "broken.jsonl").write_text("{oops\n" + json.dumps({"id": "x", "task": "critiques"}) + "\n")
    out = run_cli("data", "prepare")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "broken.jsonl:1: not valid JSON" in out.stderr and "broken.jsonl:2" in out.stderr
    assert "nothing was written" in out.stderr
    assert not (locations.data_dir() / "educator_training").exists()
    empty = run_cli("data", "prepare", "--config", "/nonexistent.toml")
    assert empty.returncode == 2


def test_a_base_tokenizer_that_cannot_load_falls_back_to_an_estimate_and_says_so():
    counter = TokenCounter("no-such-org/no-such-model-for-tests.gguf")
    assert "could not load the tokenizer" in counter.note
    assert counter([{"role": "user", "content": "x" * 300}]) >= 100


def test_prepare_runs_on_gate_output(starter_base):
    from poetry_workshop.pipeline.gate.run import gate_file

    path = locations.data_dir() / "annotated" / "critiques.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus() if r["task"] == "critiques"), encoding="utf-8")
    run = gate_file(load_settings(), path)
    assert run.report.kept >= 1
    result = prepare(load_settings(), ["educator"], None, 1)
    assert result.reports[0].counts


# ------------------------------------------------------------------ prompt versions


def _older(records: list[dict], task: str) -> list[dict]:
    """The records of `task` as if made before a persona edit."""
    return [{**r, "prompt_version": "0123456789"} if r["task"] == task else r for r in records]


def test_records_of_an_older_prompt_version_are_left_out_and_counted(starter_base):
    records = _older(corpus(), "lessons")
    del records[0]["prompt_version"]  # a critique with no version at all is not current either
    write_gated(records)
    lines: list[str] = []
    run = prepare(load_settings(), ["educator"], None, 5, warn=lines.append)
    assert run.older == {"lessons": 6, "critiques": 1} and not run.older_kept
    (note,) = [line for line in lines if "earlier prompt version" in line]
    assert "7 record(s)" in note and "critiques 1, lessons 6" in note and "--include-older-versions" in note
    counts = run.reports[0].counts
    assert not any(task == "lessons" for task, _ in counts)
    data = locations.data_dir() / "educator_training"
    written = read(data / "train.jsonl") + read(data / "valid.jsonl")
    assert not any("Question " in m["content"] for e in written for m in e["messages"])  # no lesson reached training
    left_out_critique = records[0]["output"]["critique"]
    assert not any(m["content"] == left_out_critique for e in written for m in e["messages"])


def test_include_older_versions_keeps_them_and_says_so(starter_base):
    write_gated(_older(corpus(), "lessons"))
    lines: list[str] = []
    run = prepare(load_settings(), ["educator"], None, 5, warn=lines.append, include_older_versions=True)
    assert run.older == {"lessons": 6} and run.older_kept
    assert any("are kept with the current ones" in line for line in lines)
    assert sum(n for (task, _), n in run.reports[0].counts.items() if task == "lessons") == 6


def test_only_older_records_is_one_line_and_writes_nothing(starter_base):
    write_gated([{**r, "prompt_version": "0123456789"} for r in corpus()])
    out = run_cli("data", "prepare")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "earlier prompt version" in out.stderr.strip().splitlines()[-1]
    assert "--include-older-versions" in out.stderr
    assert not (locations.data_dir() / "educator_training").exists()


def test_after_a_persona_edit_prepare_leaves_the_records_made_before_it_out(starter_base, tmp_path, monkeypatch):
    """The version prepare compares with is the one the generator would stamp today: editing
    the Poet's voice document changes the version of the tasks whose prefix holds it."""
    records = corpus()
    write_gated(records)
    persona = tmp_path / "persona"
    shutil.copytree(locations.persona_dir(), persona)
    doc = persona / "poet_voice.md"
    doc.write_text(doc.read_text(encoding="utf-8") + "\nOne more rule.\n", encoding="utf-8")
    monkeypatch.setattr(locations, "persona_dir", lambda: persona)
    run = prepare(load_settings(), ["educator", "poet"], None, 5)
    made = Counter(r["task"] for r in records)
    assert run.older == {"dialogues": made["dialogues"], "poet-pairs": made["poet-pairs"]}
    assert run.skipped == ["poet"]  # the Poet learns only from those two tasks
    assert {task for task, _ in run.reports[0].counts} == {"critiques", "briefs", "lessons", "autopsies", "comparisons"}
