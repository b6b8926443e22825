"""The seven teaching-data tasks: for each, its inputs, its prompt and its output schema.

One generation engine serves all seven (`generation.py`); a task is only what differs:
which work items it draws (poems, questions, earlier records, sampled attributes), the
instructions it gives Claude, and the pydantic model its answer must validate against.

Prompts are built from the persona documents, so the data teaches the method written
there, and each task's *prompt version* is a hash of everything that shapes its requests
(shared prefix, per-item template, schema). Changing any of it changes the version, and
so every record id: old and new records never mix silently.

The shared prefix (persona document + task instructions) is identical for every request
of a task, which is what prompt caching pays for; the per-item part comes after it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from poetry_workshop.workshop import prompts
from poetry_workshop.workshop.persona import LLM_ISMS, PEDAGOGY_DOC, POET_VOICE_DOC, read_persona_doc
from poetry_workshop.pipeline.data.brief_attributes import BriefAttributes, sample_attributes
from poetry_workshop.pipeline.data.raw_poems import RawPoem, poem_id


# ------------------------------------------------------------------------ output schemas


class CritiqueOutput(BaseModel):
    critique: str = Field(min_length=200, description="the workshop critique, plain paragraphs, as the Educator writes it to the poet")
    quotes: list[str] = Field(min_length=1, description="every passage the critique quotes, copied exactly from the poem")
    question: str = Field(min_length=10, description="the one question only the writer can answer")
    next_step: str = Field(min_length=10, description="the one revision direction")


class BriefFields(BaseModel):
    form: str = Field(min_length=2)
    length: str = Field(min_length=1, description="a range in lines, e.g. 14-18 lines")
    speaker: str = Field(min_length=2)
    anchor: str = Field(min_length=5, description="one concrete image or setting, specific enough to draw")
    # "register" would shadow a BaseModel attribute; the alias keeps the schema's name.
    register_: str = Field(min_length=2, alias="register")
    constraint: str = Field(min_length=2, description="one constraint, not three")
    avoid: str = Field(min_length=2)

    def render(self) -> str:
        """The brief as the app's Educator writes it: seven fields, one per line."""
        fields = self.model_dump(by_alias=True)
        return "\n".join(f"{name.capitalize()}: {value}" for name, value in fields.items())


class BriefOutput(BaseModel):
    request: str = Field(min_length=10, description="what a person would type to ask for this poem, in their own words")
    brief: BriefFields


class LessonOutput(BaseModel):
    lesson: str = Field(min_length=300, description="the lesson: define, show with a fresh example, name a common failure, give an exercise")
    example: str = Field(min_length=10, description="the two-to-six-line example written fresh for this lesson")
    exercise: str = Field(min_length=10)


class DeadPhrase(BaseModel):
    phrase: str = Field(min_length=2, description="the dead phrase, quoted exactly from the poem")
    line: int = Field(ge=1, description="its line number (blank lines not counted)")
    why_dead: str = Field(min_length=10)
    live_phrase_job: str = Field(min_length=10, description="what a live phrase would have to do here, without writing it")


class AutopsyOutput(BaseModel):
    phrases: list[DeadPhrase] = Field(min_length=1)
    pattern: str = Field(min_length=20, description="the pattern across the passage")
    autopsy: str = Field(min_length=200, description="the whole autopsy as the Educator writes it to the poet")


class ComparisonOutput(BaseModel):
    comparison: str = Field(min_length=300, description="the comparative workshop as the Educator writes it")
    quotes: list[str] = Field(min_length=2, description="every passage quoted, copied exactly from either poem")


class DialogueTurn(BaseModel):
    revision: str = Field(min_length=20, description="the writer's revised poem, in full")
    response: str = Field(min_length=100, description="the Educator's follow-up on what changed")


class DialogueOutput(BaseModel):
    turns: list[DialogueTurn] = Field(min_length=2, max_length=3)


class PoetPairOutput(BaseModel):
    poem: str = Field(min_length=40, description="the Poet's first draft from the brief: only the poem")
    critique: str = Field(min_length=200, description="the Educator's workshop critique of that draft")
    revision: str = Field(min_length=40, description="the Poet's revision from the critique: only the poem")


# ------------------------------------------------------------------------------- inputs


@dataclass
class TaskSources:
    """Everything the tasks draw their work items from; each task uses its part."""

    poems: dict[str, list[RawPoem]] = field(default_factory=lambda: {"good": [], "bad": []})
    brief_poems: list[RawPoem] = field(default_factory=list)  # --input for briefs
    questions: list[str] = field(default_factory=list)
    critiques: list[dict] = field(default_factory=list)  # earlier critique records (dialogues)
    briefs: list[dict] = field(default_factory=list)  # earlier brief records (poet-pairs)
    seed: int = 1234


@dataclass(frozen=True)
class WorkItem:
    """One request to make: `inputs` is stored in the record and decides its id."""

    id: str
    inputs: dict[str, Any]
    prompt: str  # the per-item user message, after the shared prefix


# -------------------------------------------------------------------------- the tasks

_PREAMBLE = (
    "You write teaching data for two small local models in a poetry workshop app: the Educator, "
    "who critiques drafts the way the best workshops do, and the Poet, who writes from a brief and "
    "revises from a critique in a voice that does not sound machine-written. Every answer you give "
    "becomes a training example, so follow the method in the documents below exactly, and answer "
    "with one JSON object in the requested format, every field filled."
)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class TeachingTask:
    name: str
    trains: str  # which model the records teach: "educator", "poet" or both
    docs: tuple[str, ...]  # persona documents in the shared prefix
    instructions: str  # what to do, shared by every request of the task
    # The per-item message, keyed by the input field that selects it (most tasks have one);
    # its {fields} come from `WorkItem.inputs`.
    templates: dict[str, str]
    schema: type[BaseModel]

    def output_format(self) -> dict[str, Any]:
        """The API's JSON-schema output format (structured outputs). Forced tool use would
        be the older way, but current models refuse it; pydantic checks on the way back the
        constraints the SDK's transform moved into the descriptions."""
        from poetry_workshop.pipeline.data.output_formats import from_sdk

        return from_sdk(self.schema.model_json_schema())

    def shared_prefix(self) -> str:
        parts = [_PREAMBLE]
        for name in self.docs:
            text = (
                "Phrases and patterns that make verse sound machine-written (the data must avoid them "
                "unless a brief asks for them):\n\n" + read_persona_doc(name)
                if name == LLM_ISMS else read_persona_doc(name)
            )
            parts.append(f"<document name=\"{name}\">\n{text}\n</document>")
        parts.append(f"<task name=\"{self.name}\">\n{self.instructions}\n</task>")
        return "\n\n".join(parts)

    def version(self) -> str:
        from poetry_workshop.pipeline.data.output_formats import transformed

        # The format as `output_format` builds it, remembered by schema and SDK version: the
        # gate and prepare compare versions on every run, and need not import the SDK for it.
        fmt = transformed(self.schema.model_json_schema())
        material = _canonical([self.shared_prefix(), self.templates, fmt])
        return hashlib.sha256(material.encode("utf-8")).hexdigest()[:10]

    def item(self, inputs: dict[str, Any], version: str) -> WorkItem:
        digest = hashlib.sha256(_canonical([self.name, version, inputs]).encode("utf-8")).hexdigest()[:20]
        template = next(t for key, t in self.templates.items() if key in inputs)
        return WorkItem(id=f"{self.name}-{digest}", inputs=inputs, prompt=template.format(**_render(inputs)))


def _render(inputs: dict[str, Any]) -> dict[str, str]:
    """Template fields: poems numbered as the app numbers them, the rest as text."""
    out = {}
    for key, value in inputs.items():
        if key in ("poem", "poem_a", "poem_b", "source_poem") and isinstance(value, str):
            out[key] = prompts.numbered(value)
        elif isinstance(value, dict):
            out[key] = "\n".join(f"{k}: {v}" for k, v in value.items())
        else:
            out[key] = str(value)
    return out


TASKS: dict[str, TeachingTask] = {
    t.name: t
    for t in (
        TeachingTask(
            name="critiques", trains="educator", docs=(PEDAGOGY_DOC,),
            instructions=(
                "Write the Educator's workshop critique of the poem in the message, in the order and at "
                "the length the method gives. Quote exactly, with line numbers (blank lines are not "
                "counted). Be honest about weak poems and specific about strong ones. List every "
                "quoted passage in `quotes`, the question in `question` and the one direction in `next_step`."
            ),
            templates={"poem": (
                "Workshop this draft. Its lines are numbered for reference:\n\n{poem}\n\n"
                "(The writer filed it among poems they consider {quality}; do not mention that.)"
            )},
            schema=CritiqueOutput,
        ),
        TeachingTask(
            name="briefs", trains="educator", docs=(PEDAGOGY_DOC,),
            instructions=(
                "Invent the request a real person might type, in their own words (casual, specific, "
                "sometimes vague), then turn it into the Educator's seven-field brief as the method "
                "describes. Make the poem particular: the anchor must be drawable."
            ),
            templates={
                "attributes": "Make a request and its brief from these attributes:\n\n{attributes}",
                "source_poem": (
                    "Here is a finished poem, lines numbered:\n\n{source_poem}\n\nWrite the request a person "
                    "might have made that led to a poem like it, and the brief for it (do not copy its lines)."
                ),
            },
            schema=BriefOutput,
        ),
        TeachingTask(
            name="lessons", trains="educator", docs=(PEDAGOGY_DOC,),
            instructions=(
                "Answer the writer's craft question as the Educator's four-move lesson: define, show with "
                "an example written fresh for this answer (never a famous poem), name a common failure, "
                "give a twenty-minute exercise with one clear constraint."
            ),
            templates={"question": "A craft question from the writer: {question}"},
            schema=LessonOutput,
        ),
        TeachingTask(
            name="autopsies", trains="educator", docs=(PEDAGOGY_DOC, LLM_ISMS),
            instructions=(
                "Perform the Educator's cliché autopsy on the poem: every dead phrase quoted exactly with "
                "its line number, why it is dead, what a live phrase would have to do (never the "
                "replacement itself), then the pattern across the poem. Write the whole autopsy as prose "
                "in `autopsy` as well as phrase by phrase."
            ),
            templates={"poem": "Perform a cliché autopsy on this poem. Its lines are numbered:\n\n{poem}"},
            schema=AutopsyOutput,
        ),
        TeachingTask(
            name="comparisons", trains="educator", docs=(PEDAGOGY_DOC,),
            instructions=(
                "Compare the two poems as the method describes: a one-sentence reading of each, then the "
                "one or two craft questions where they differ most, quoting both with line numbers, "
                "without ranking them overall, ending with one thing each could take from the other."
            ),
            templates={"poem_a": "Poem A, lines numbered:\n\n{poem_a}\n\nPoem B, lines numbered:\n\n{poem_b}\n\nCompare them."},
            schema=ComparisonOutput,
        ),
        TeachingTask(
            name="dialogues", trains="educator+poet", docs=(PEDAGOGY_DOC, POET_VOICE_DOC),
            instructions=(
                "Continue a workshop after the critique in the message, for two or three rounds. In each "
                "round the writer revises the whole poem in answer to the latest direction (a real "
                "revision, in the Poet's voice: changing what was flagged, keeping what was praised), "
                "and the Educator responds to what changed as the method's follow-up describes. Let the "
                "last response say the poem is finished when it is."
            ),
            templates={"critique": "The draft, lines numbered:\n\n{poem}\n\nThe Educator's critique:\n\n{critique}"},
            schema=DialogueOutput,
        ),
        TeachingTask(
            name="poet-pairs", trains="poet", docs=(POET_VOICE_DOC, LLM_ISMS, PEDAGOGY_DOC),
            instructions=(
                "From the brief in the message: write the Poet's first draft (only the poem, honest about "
                "being a first draft), then the Educator's workshop critique of that draft, then the "
                "Poet's revision from that critique (change what it flagged, keep what it praised). Both "
                "poems must keep the brief and avoid every listed machine-written phrase."
            ),
            templates={"brief": "The request: {request}\n\nThe brief:\n{brief}"},
            schema=PoetPairOutput,
        ),
    )
}


def _shuffled(items: list, seed: int, salt: str) -> list:
    out = list(items)
    random.Random(f"{seed}:{salt}").shuffle(out)
    return out


def _poem_inputs(poem: RawPoem) -> dict[str, Any]:
    return {"poem": poem.text, "quality": "strong" if poem.quality == "good" else "weak"}


def task_inputs(name: str, sources: TaskSources) -> Iterator[dict[str, Any]]:
    """The task's inputs in a fixed order (seeded), so reruns walk the same items."""
    good, bad = sources.poems.get("good", []), sources.poems.get("bad", [])
    if name == "critiques":
        # Interleave good and bad so a small --limit still sees both.
        pairs = itertools.zip_longest(_shuffled(good, sources.seed, "good"), _shuffled(bad, sources.seed, "bad"))
        for pair in pairs:
            for poem in pair:
                if poem is not None:
                    yield _poem_inputs(poem)
    elif name == "briefs":
        if sources.brief_poems:
            for poem in sources.brief_poems:
                yield {"source_poem": poem.text}
        else:
            for attrs in _endless_attributes(sources.seed):
                yield {"attributes": attrs.as_dict()}
    elif name == "lessons":
        yield from ({"question": q} for q in sources.questions)
    elif name == "autopsies":
        yield from (_poem_inputs(p) for p in _shuffled(bad, sources.seed, "bad"))
    elif name == "comparisons":
        yield from _comparison_pairs(good, bad, sources.seed)
    elif name == "dialogues":
        for record in sources.critiques:
            yield {"poem": record["inputs"]["poem"], "critique": record["output"]["critique"],
                   "critique_id": record["id"]}
    elif name == "poet-pairs":
        for record in sources.briefs:
            brief = BriefFields.model_validate(record["output"]["brief"])
            yield {"request": record["output"]["request"], "brief": brief.render(), "brief_id": record["id"]}
    else:
        raise KeyError(name)


def _endless_attributes(seed: int) -> Iterator[BriefAttributes]:
    # Deal in blocks so the stream is unbounded but item k is the same on every run.
    for block in itertools.count():
        yield from sample_attributes(100, seed + block)


def _comparison_pairs(good: list[RawPoem], bad: list[RawPoem], seed: int) -> Iterable[dict[str, Any]]:
    """A strong poem beside a weak one first, then strong beside strong; which is A is seeded,
    so the Educator does not learn that the first poem is the better one."""
    rng = random.Random(f"{seed}:pairs")
    pairs: list[tuple[RawPoem, RawPoem]] = []
    g, b = _shuffled(good, seed, "cmp-good"), _shuffled(bad, seed, "cmp-bad")
    if g and b:
        pairs += [(g[i % len(g)], b[i % len(b)]) for i in range(max(len(g), len(b)))]
    pairs += list(zip(g[0::2], g[1::2]))
    seen = set()
    for first, second in pairs:
        key = frozenset((poem_id(first.text), poem_id(second.text)))
        if key in seen:
            continue
        seen.add(key)
        a, b2 = (first, second) if rng.random() < 0.5 else (second, first)
        yield {"poem_a": a.text, "poem_b": b2.text}


def work_items(task: TeachingTask, sources: TaskSources) -> Iterator[WorkItem]:
    version = task.version()
    for inputs in task_inputs(task.name, sources):
        yield task.item(inputs, version)
