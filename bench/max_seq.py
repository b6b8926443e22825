"""Which max_seq the training examples need (a benchmark, not a test: it prints figures).

Builds `--records` realistic gated records per task, turns them into training examples with
prepare's own code (`educator_examples`, `poet_examples`: the app's prompts under the real
persona system prompts), counts their tokens under the Llama 3.1 tokenizer and chat template
as prepare does, and prints per task p50/p90/p99/max and the share lost at each candidate
max_seq. It ends with a goal line for the examples that cost most to generate, at the
defaults in config/educator_training.toml and config/poet_training.toml: dialogues (the
Educator's multi-turn follow-ups, and the writer's revisions the Poet learns from) and poet
pairs must lose at most 5%.

Realistic means shaped like what the generators ask Claude for (pipeline/data/tasks.py and the
persona documents), with real text:
- poems: the real poems of ../shared/corpus (human as the writer's good poems, LLM-written as
  the bad ones), read at run time and never copied into the repository; a Poet's draft takes
  its line count from the brief's form (`FORM_LINES`) and its lines from those poems;
- prose: sentences of the method's own worked critiques and guidance (persona/*.md), with
  quotations of the poem at hand, at the word counts of pedagogy_design_doc.md's "Length
  targets" (`WORDS`), each drawn uniformly over its range with the top stretched by
  `OVERSHOOT` (answers run past a soft length target; here about a quarter of them do, by up
  to 20%, which errs on the long side);
- briefs from the real attribute sampler; craft questions from persona/craft_questions.txt;
  dialogues of two or three rounds (the schema's range), each revision the whole poem with
  about a third of its lines changed and up to two added or cut (poet_voice.md: most lines
  survive).

The tokenizer is llama.cpp's Llama 3 vocabulary from the pinned llama-cpp-python sdist
(`workshop setup --converter`) with Llama 3.1's chat template: prepare's GGUF path, which
tests/chain/test_token_counts.py shows counts exactly what transformers counts.

Usage: .venv/bin/python -m bench.max_seq [--records N] [--seed N] [--corpus DIR]
Ends with one `goal <name>: <measured> (target <=5%) met|missed` line per goal.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.data.brief_attributes import sample_attributes
from poetry_workshop.pipeline.training.gguf_export import converter_dir
from poetry_workshop.pipeline.training.training_sets import (
    ROLE_TASKS,
    TokenCounter,
    educator_examples,
    poet_examples,
    token_percentiles,
)
from poetry_workshop.workshop.persona import load_persona

CANDIDATES = (512, 768, 1024, 1536, 1792, 2048, 2560, 3072, 3584, 4096)
TARGET_LOSS = 0.05
VOCAB, TEMPLATE = "ggml-vocab-llama-bpe.gguf", "templates/meta-llama-Llama-3.1-8B-Instruct.jinja"

# Words per answer, from persona/pedagogy_design_doc.md "Length targets". Comparisons have no
# target there: a critique's long-poem range, as they read two poems. An autopsy is 40-80
# words per dead phrase plus "a few sentences on the pattern".
WORDS = {
    "critique_short": (80, 150),  # a haiku or a poem of a few lines
    "critique": (150, 300),  # a 12-20 line poem
    "critique_long": (250, 400),  # a long poem
    "followup": (100, 220),
    "lesson": (250, 450),
    "brief": (60, 120),
    "request": (8, 40),  # what a person types to ask for a poem
    "autopsy_phrase": (40, 80),
    "autopsy_pattern": (40, 80),
    "comparison": (250, 400),
}
OVERSHOOT = 1.2  # the upper end of every range stretched by this much

# Lines a brief asks for, by the sampler's forms (a prose poem is counted in words instead).
FORM_LINES = {
    "free verse": (12, 24), "sonnet": (14, 14), "villanelle": (19, 19), "ghazal": (10, 16),
    "haiku sequence": (9, 15), "pantoum": (16, 24), "sestina": (39, 39), "couplets": (10, 20),
    "tercets": (12, 21), "list poem": (12, 24), "epistolary poem": (14, 28), "dramatic monologue": (20, 40),
    "ode": (16, 30), "elegy": (14, 28), "aubade": (12, 22), "single-sentence poem": (8, 18),
    "cento-like collage": (12, 20),
}
PROSE_POEM_WORDS = (120, 250)

ROOT = Path(__file__).resolve().parent.parent


def read_corpus(folder: Path) -> tuple[list[str], list[str]]:
    """(good, bad): the human poems and the LLM-written ones."""
    def poems(name: str) -> list[str]:
        with (folder / name).open(encoding="utf-8") as fh:
            return [json.loads(line)["text"] for line in fh if line.strip()]

    return poems("human.jsonl"), poems("llm.jsonl")


def prose_sentences() -> list[str]:
    """Sentences of the method's worked critiques and guidance: the register Claude is asked for."""
    out = []
    for name in ("pedagogy_design_doc.md", "poet_voice.md"):
        fence = False
        for line in (locations.persona_dir() / name).read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                fence = not fence
                continue
            text = line.lstrip("> ").strip()
            if fence or not text or text.startswith(("#", "|", "- ", "Form:", "Length:")):
                continue
            text = text.replace("**", "")
            out += [s for s in re.split(r"(?<=[.?!])\s+", text) if len(s.split()) >= 6]
    return out


def lines_of(poem: str) -> list[str]:
    return [line for line in poem.splitlines() if line.strip()]


class Writer:
    """Text shaped like each answer the generators ask for, from real sentences and poems."""

    def __init__(self, rng: random.Random, good: list[str], bad: list[str]):
        self.rng, self.good, self.bad = rng, good, bad
        self.sentences = prose_sentences()
        self.lines = [line for poem in good + bad for line in lines_of(poem)]
        self.questions = [q.strip() for q in (locations.persona_dir() / "craft_questions.txt")
                          .read_text(encoding="utf-8").splitlines() if q.strip() and not q.startswith("#")]

    def count(self, kind: str) -> int:
        lo, hi = WORDS[kind]
        return round(self.rng.uniform(lo, hi * OVERSHOOT))

    def quote(self, poem: str) -> str:
        lines = lines_of(poem)
        k = self.rng.randrange(len(lines))
        words = lines[k].split()
        start = self.rng.randrange(max(1, len(words) - 2))
        return f"\"{' '.join(words[start:start + self.rng.randint(3, 9)])}\" (line {k + 1})"

    def prose(self, words: int, poems: list[str] = (), quotes: int = 0) -> str:
        """About `words` words in short paragraphs, quoting the poems `quotes` times."""
        sentences, n = [], 0
        while n < words:
            sentence = self.rng.choice(self.sentences)
            sentences.append(sentence)
            n += len(sentence.split())
        for _ in range(quotes if poems else 0):
            k = self.rng.randrange(len(sentences))
            sentences[k] = f"{self.quote(self.rng.choice(poems))} {sentences[k][0].lower()}{sentences[k][1:]}"
        paragraphs, at = [], 0
        while at < len(sentences):
            size = self.rng.randint(2, 4)
            paragraphs.append(" ".join(sentences[at:at + size]))
            at += size
        return "\n\n".join(paragraphs)

    def critique(self, poem: str) -> str:
        n = len(lines_of(poem))
        kind = "critique_short" if n <= 6 else "critique_long" if n > 30 else "critique"
        return self.prose(self.count(kind), [poem], quotes=self.rng.randint(3, 6))

    def verse(self, n_lines: int, short_lines: bool = False) -> str:
        """`n_lines` real lines, consecutive from one poem then the next, in stanzas."""
        poems = self.good + self.bad
        source, out = lines_of(self.rng.choice(poems)), []
        at = self.rng.randrange(len(source))
        while len(out) < n_lines:
            if at >= len(source):
                source, at = lines_of(self.rng.choice(poems)), 0
            line = source[at]
            out.append(" ".join(line.split()[:7]) if short_lines else line)
            at += 1
        stanza = self.rng.choice([0, 2, 3, 4, 5])  # 0: one block
        text = [line + ("\n" if stanza and (k + 1) % stanza == 0 and k + 1 < len(out) else "")
                for k, line in enumerate(out)]
        return "\n".join(text)

    def revise(self, poem: str) -> str:
        """The whole poem again: about a third of its lines changed, up to two added or cut."""
        lines = poem.splitlines()
        body = [k for k, line in enumerate(lines) if line.strip()]
        for k in self.rng.sample(body, max(1, len(body) // 3)):
            lines[k] = self.rng.choice(self.lines)
        delta = self.rng.randint(-2, 2) if len(body) > 4 else 0
        for _ in range(max(0, delta)):
            lines.insert(self.rng.randrange(len(lines) + 1), self.rng.choice(self.lines))
        for _ in range(max(0, -delta)):
            lines.pop(self.rng.randrange(len(lines)))
        return "\n".join(lines).strip("\n")

    def brief(self, attrs) -> tuple[dict, int | None]:
        """The seven-field brief, 60-120 words, and its line count (None for a prose poem)."""
        lo, hi = FORM_LINES.get(attrs.form, (0, 0))
        if attrs.constraint == "exactly 12 lines":
            lo = hi = 12
        n = self.rng.randint(lo, hi) if hi else None
        length = f"{lo}-{hi} lines" if lo != hi else f"{lo} lines"
        fixed = {"form": attrs.form, "length": length if n else "one paragraph of about 180 words",
                 "register": attrs.register, "constraint": attrs.constraint}
        free = self.count("brief") - sum(len(v.split()) for v in fixed.values())
        parts = [max(4, free * share // 10) for share in (3, 4, 3)]
        speaker, anchor, avoid = (self.prose(w).split()[:w] for w in parts)
        brief = {"form": fixed["form"], "length": fixed["length"], "speaker": " ".join(speaker),
                 "anchor": f"{attrs.theme}: " + " ".join(anchor), "register": fixed["register"],
                 "constraint": fixed["constraint"], "avoid": " ".join(avoid)}
        return brief, n


def records(task: str, count: int, w: Writer, rng: random.Random) -> list[dict]:
    out = []
    attributes = sample_attributes(count, rng.randrange(1 << 30))
    poems = [p for pair in zip(w.good, w.bad) for p in pair] + w.good[len(w.bad):] + w.bad[len(w.good):]
    for k in range(count):
        rid = f"{task}-{k}"
        poem = poems[k % len(poems)]
        if task == "critiques":
            out.append({"id": rid, "task": task, "inputs": {"poem": poem}, "output": {"critique": w.critique(poem)}})
        elif task == "briefs":
            brief, _ = w.brief(attributes[k])
            out.append({"id": rid, "task": task, "inputs": {},
                        "output": {"request": w.prose(w.count("request")), "brief": brief}})
        elif task == "lessons":
            example = w.verse(rng.randint(2, 6))
            body = w.prose(w.count("lesson")).split("\n\n")
            body.insert(min(1, len(body)), example)
            out.append({"id": rid, "task": task, "inputs": {"question": w.questions[k % len(w.questions)]},
                        "output": {"lesson": "\n\n".join(body)}})
        elif task == "autopsies":
            bad = w.bad[k % len(w.bad)]
            parts = [f"{w.quote(bad)} {w.prose(w.count('autopsy_phrase'))}" for _ in range(rng.randint(3, 7))]
            parts.append(w.prose(w.count("autopsy_pattern")))
            out.append({"id": rid, "task": task, "inputs": {"poem": bad}, "output": {"autopsy": "\n\n".join(parts)}})
        elif task == "comparisons":
            a, b = w.good[k % len(w.good)], rng.choice(w.bad + w.good)
            out.append({"id": rid, "task": task, "inputs": {"poem_a": a, "poem_b": b},
                        "output": {"comparison": w.prose(w.count("comparison"), [a, b], quotes=rng.randint(4, 8))}})
        elif task == "dialogues":
            turns, draft = [], poem
            for _ in range(rng.randint(2, 3)):
                draft = w.revise(draft)
                turns.append({"revision": draft,
                              "response": w.prose(w.count("followup"), [draft], quotes=rng.randint(1, 3))})
            out.append({"id": rid, "task": task, "inputs": {"poem": poem, "critique": w.critique(poem)},
                        "output": {"turns": turns}})
        elif task == "poet-pairs":
            brief, n = w.brief(attributes[k])
            short = attributes[k].constraint == "every line under eight words"
            draft = w.verse(n, short) if n else w.prose(round(rng.uniform(*PROSE_POEM_WORDS)))
            text = "\n".join(f"{name.capitalize()}: {value}" for name, value in brief.items())
            out.append({"id": rid, "task": task, "inputs": {"brief": text},
                        "output": {"poem": draft, "critique": w.critique(draft), "revision": w.revise(draft)}})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=300, help="records per task (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus",
                        help="folder with human.jsonl and llm.jsonl (default ../shared/corpus)")
    args = parser.parse_args(argv)

    settings = load_settings()
    folder = converter_dir(settings.export.export.converter_version) / "models"
    if not (folder / VOCAB).is_file() or not (folder / TEMPLATE).is_file():
        print(f"bench.max_seq: {folder / VOCAB} is missing; run `workshop setup --converter` first", file=sys.stderr)
        return 2
    if not (args.corpus / "human.jsonl").is_file():
        print(f"bench.max_seq: {args.corpus / 'human.jsonl'} is missing; pass --corpus DIR", file=sys.stderr)
        return 2
    counter = TokenCounter(str(folder / VOCAB), chat_template=(folder / TEMPLATE).read_text(encoding="utf-8"))
    if counter.note:
        print(f"bench.max_seq: {counter.note}", file=sys.stderr)
        return 2

    rng = random.Random(args.seed)
    good, bad = read_corpus(args.corpus)
    writer = Writer(rng, good, bad)
    persona = load_persona()
    started = time.perf_counter()
    lengths: dict[tuple[str, str], list[int]] = defaultdict(list)
    for task in ("critiques", "briefs", "lessons", "autopsies", "comparisons", "dialogues", "poet-pairs"):
        for record in records(task, args.records, writer, rng):
            for role, make, system in (("educator", educator_examples, persona.educator_system),
                                       ("poet", poet_examples, persona.poet_system)):
                if task in ROLE_TASKS[role]:
                    lengths[(role, task)] += [counter(messages) for messages in make(record, system)]

    print(f"max_seq under the Llama 3.1 tokenizer: {args.records} records per task, {len(good)} human and "
          f"{len(bad)} LLM poems, seed {args.seed} ({time.perf_counter() - started:.0f} s)")
    print(f"{'role':<9} {'task':<12} {'examples':>8} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6}   "
          + "lost at max_seq " + " ".join(f"{c:>5}" for c in CANDIDATES))
    for (role, task), values in sorted(lengths.items()):
        p = token_percentiles(values)
        lost = " ".join(f"{loss(values, c):>5.0%}" for c in CANDIDATES)
        print(f"{role:<9} {task:<12} {len(values):>8} {p['p50']:>6} {p['p90']:>6} {p['p99']:>6} {p['max']:>6}   "
              f"{'':16}{lost}")

    defaults = {"educator": settings.educator_training.training.max_seq,
                "poet": settings.poet_training.training.max_seq}
    goals = (("dialogues", "educator", "dialogues"), ("dialogue_revisions", "poet", "dialogues"),
             ("poet_pairs", "poet", "poet-pairs"))
    for name, role, task in goals:
        share = loss(lengths[(role, task)], defaults[role])
        print(f"goal {name}: {share:.1%} lost at {role} max_seq {defaults[role]} (target <=5%) "
              f"{'met' if share <= TARGET_LOSS else 'missed'}")
    return 0


def loss(values: list[int], max_seq: int) -> float:
    return sum(n > max_seq for n in values) / max(1, len(values))


if __name__ == "__main__":
    sys.exit(main())
