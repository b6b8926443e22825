"""From gated records to the two training sets: `{"messages": [...]}` per line, split clean.

Every example is a conversation in the exact words the app sends (prompts.py) under the
persona system prompts, so the fine-tuned models meet at inference what they met in
training. The Educator learns critiques, briefs, lessons, autopsies, comparisons and the
multi-turn follow-ups of dialogues; the Poet learns brief → poem and draft + critique →
revision (from poet pairs and from the writer's side of dialogues).

The split is by source poem: records that share a poem (its critique, autopsy, comparison,
dialogue; a brief and the poet pair written from it) are joined into one group, and a
group goes wholly to train or to valid, chosen by a seeded hash, with every task given at
least one validation group when it has enough. Each example is checked before it is
written: roles alternate, no turn is empty, and it fits `max_seq` of its training config
under the base model's tokenizer (longer ones are dropped and counted).

Only records of each task's current prompt version are read unless older ones are asked
for (`pipeline/data/prompt_versions.py`), and the count of those left out is said.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError
from poetry_workshop.files import write_jsonl_atomic
from poetry_workshop.pipeline.data.prompt_versions import split_by_version
from poetry_workshop.pipeline.data.raw_poems import poem_id
from poetry_workshop.workshop import prompts
from poetry_workshop.workshop.persona import Persona

Conversation = list[dict[str, str]]


def _brief_text(brief: dict) -> str:
    return "\n".join(f"{k.capitalize()}: {v}" for k, v in brief.items())


def educator_examples(record: dict, system: str) -> list[Conversation]:
    task, i, o = record["task"], record.get("inputs") or {}, record["output"]
    sys_turn = {"role": "system", "content": system}

    def single(user: str, assistant: str) -> list[Conversation]:
        return [[sys_turn, {"role": "user", "content": user}, {"role": "assistant", "content": assistant}]]

    if task == "critiques":
        return single(prompts.critique_request(i["poem"]), o["critique"])
    if task == "briefs":
        return single(prompts.brief_request(o["request"]), _brief_text(o["brief"]))
    if task == "lessons":
        return single(prompts.question_request(i["question"]), o["lesson"])
    if task == "autopsies":
        return single(prompts.autopsy_request(i["poem"]), o["autopsy"])
    if task == "comparisons":
        return single(prompts.comparison_request(i["poem_a"], i["poem_b"]), o["comparison"])
    if task == "dialogues":
        turns = [sys_turn, {"role": "user", "content": prompts.critique_request(i["poem"])},
                 {"role": "assistant", "content": i["critique"]}]
        for t in o["turns"]:
            turns += [{"role": "user", "content": prompts.followup_request(t["revision"])},
                      {"role": "assistant", "content": t["response"]}]
        return [turns]
    return []


def poet_examples(record: dict, system: str) -> list[Conversation]:
    task, i, o = record["task"], record.get("inputs") or {}, record["output"]
    sys_turn = {"role": "system", "content": system}
    if task == "poet-pairs":
        # As the app runs it: brief → draft, then the critique → revision in the same conversation;
        # and once as a person's own draft arrives (the draft written into the request).
        return [
            [sys_turn, {"role": "user", "content": prompts.draft_request(i["brief"])},
             {"role": "assistant", "content": o["poem"]},
             {"role": "user", "content": prompts.revise_request(o["critique"], None)},
             {"role": "assistant", "content": o["revision"]}],
            [sys_turn, {"role": "user", "content": prompts.revise_request(o["critique"], o["poem"])},
             {"role": "assistant", "content": o["revision"]}],
        ]
    if task == "dialogues":
        out, draft, direction = [], i["poem"], i["critique"]
        for t in o["turns"]:
            out.append([sys_turn, {"role": "user", "content": prompts.revise_request(direction, draft)},
                        {"role": "assistant", "content": t["revision"]}])
            draft, direction = t["revision"], t["response"]
        return out
    return []


def check_conversation(messages: Conversation) -> str | None:
    """Why this conversation cannot train a chat model, or None when it can."""
    roles = [m.get("role") for m in messages]
    body = roles[1:] if roles[:1] == ["system"] else roles
    if not body or body[-1] != "assistant":
        return "does not end with an assistant turn"
    for k, role in enumerate(body):
        if role != ("user" if k % 2 == 0 else "assistant"):
            return f"turn {k + 1} is {role!r} where {'user' if k % 2 == 0 else 'assistant'} belongs"
    for m in messages:
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            return f"an empty {m.get('role')} turn"
        try:
            m["content"].encode("utf-8")
        except UnicodeEncodeError:
            return f"a {m['role']} turn that is not valid UTF-8"
    return None


# ------------------------------------------------------------------------ grouping


class _Groups:
    """Union-find over the keys that tie records to their source poems."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def join(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for other in keys[1:]:
            a, b = self.find(keys[0]), self.find(other)
            if a != b:
                self.parent[max(a, b)] = min(a, b)  # the smallest key names the group, whatever the order


def source_keys(record: dict) -> list[str]:
    i = record.get("inputs") or {}
    keys = [f"record:{record['id']}"]
    for field_name in ("poem", "poem_a", "poem_b", "source_poem"):
        if isinstance(i.get(field_name), str):
            keys.append(f"poem:{poem_id(i[field_name])}")
    for field_name in ("critique_id", "brief_id"):
        if i.get(field_name):
            keys.append(f"record:{i[field_name]}")
    if isinstance(i.get("question"), str):
        keys.append(f"question:{i['question'].strip().lower()}")
    return keys


def split_groups(records: list[dict], share: float, seed: int) -> dict[str, str]:
    """record id -> "train" or "valid": whole groups, by seeded hash, every task in valid."""
    groups = _Groups()
    for r in records:
        groups.join(source_keys(r))
    group_of = {r["id"]: groups.find(f"record:{r['id']}") for r in records}

    def draw(group: str) -> float:
        return int(hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()[:12], 16) / 16**12

    side = {g: ("valid" if draw(g) < share else "train") for g in set(group_of.values())}
    by_task: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        by_task[r["task"]][group_of[r["id"]]] += 1
    for task in sorted(by_task):
        task_groups = by_task[task]
        if share > 0 and len(task_groups) >= 2 and not any(side[g] == "valid" for g in task_groups):
            smallest = min(task_groups, key=lambda g: (task_groups[g], draw(g)))
            side[smallest] = "valid"
    return {rid: side[g] for rid, g in group_of.items()}


# ------------------------------------------------------------------------ token counts


class TokenCounter:
    """Tokens of a conversation under the base model's own chat template and tokenizer,
    rendered as training will render it (no generation prompt; thinking templates with
    thinking off).

    A local GGUF base (the starter model offline) is read by llama.cpp with its vocabulary
    only; a Hugging Face base through transformers, from the local cache first. A base that
    ships no chat template (the pretrained Gemma 3 270M) is counted under its family's
    template, the one training gives it. `chat_template` overrides the base's own (a
    vocabulary-only GGUF standing in for a hub model). When no tokenizer can be loaded the
    length is estimated at 3 characters a token, and `note` says so."""

    def __init__(self, base_model: str, chat_template: str | None = None, *, tokenizer=None):
        """`tokenizer`: a transformers tokenizer already loaded, with its template set, to
        count with instead of loading the base's."""
        self.base_model = base_model
        self.note: str | None = None
        self._count: Callable[[Conversation], int]
        path = locations.resolve_project_path(base_model)
        try:
            if tokenizer is not None:
                self._count = self._hf_count(tokenizer)
            elif base_model.endswith(".gguf"):
                self._count = self._gguf(path, chat_template)
            else:
                self._count = self._transformers(base_model, chat_template)
        except Exception as exc:  # any loader failure falls back to an estimate, said out loud
            self.note = (f"could not load the tokenizer of {base_model} ({type(exc).__name__}: {str(exc)[:120]}); "
                         "lengths are estimated at 3 characters a token")
            self._count = lambda messages: math.ceil(sum(len(m["content"]) + 8 for m in messages) / 3)

    def __call__(self, messages: Conversation) -> int:
        return self._count(messages)

    @staticmethod
    def _gguf(path: Path, chat_template: str | None) -> Callable[[Conversation], int]:
        import llama_cpp
        from llama_cpp._utils import suppress_stdout_stderr
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        from poetry_workshop.pipeline.training.chat_examples import fallback_template, template_options

        if not path.is_file():
            raise FileNotFoundError(f"{path} not found")
        # A vocabulary-only load has no training context and llama.cpp warns about it on
        # stderr; nothing here runs the model, so that warning is noise.
        with suppress_stdout_stderr(disable=False):
            llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        architecture = llm.metadata.get("general.architecture", "")
        template = chat_template or llm.metadata.get("tokenizer.chat_template") or fallback_template(architecture)
        if not template:
            raise ValueError(f"the GGUF ({architecture or 'unknown architecture'}) has no chat template "
                             "and none is known for its family")
        eos = llm._model.token_get_text(llm.token_eos())
        bos = llm._model.token_get_text(llm.token_bos()) if llm.token_bos() >= 0 else ""
        # As training renders: the conversation alone, no generation prompt after it.
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=False)
        # The formatter passes extra keywords into the template, as apply_chat_template does;
        # the options are the ones training uses (thinking off), decided by the same rule.
        options = template_options(SimpleNamespace(chat_template=template))

        def count(messages: Conversation) -> int:
            prompt = formatter(messages=messages, **options).prompt
            return len(llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))

        return count

    @staticmethod
    def _transformers(name: str, chat_template: str | None) -> Callable[[Conversation], int]:
        from transformers import AutoConfig, AutoTokenizer

        from poetry_workshop.pipeline.training.chat_examples import give_template

        def load(kind, **kwargs):
            try:
                return kind.from_pretrained(name, local_files_only=True, **kwargs)
            except OSError:
                return kind.from_pretrained(name, **kwargs)

        tok = load(AutoTokenizer)
        if chat_template:
            tok.chat_template = chat_template
        elif not tok.chat_template:
            give_template(tok, load(AutoConfig).model_type)  # as training does; refused by name when unknown
        return TokenCounter._hf_count(tok)

    @staticmethod
    def _hf_count(tokenizer) -> Callable[[Conversation], int]:
        from poetry_workshop.pipeline.training.chat_examples import conversation_ids

        # The very ids training will see (apply_chat_template returns a BatchEncoding in
        # transformers 5, whose len() is its number of keys, not of tokens).
        return lambda messages: len(conversation_ids(tokenizer, messages))


# ------------------------------------------------------------------------- the sets


def token_percentiles(lengths: Iterable[int]) -> dict[str, int]:
    """p50, p90, p99 and max of token lengths (nearest rank); empty when there are none."""
    ordered = sorted(lengths)
    if not ordered:
        return {}

    def at(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1]}


@dataclass
class SetReport:
    role: str
    paths: dict[str, Path] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=Counter)  # (task, split) -> examples written
    dropped: Counter = field(default_factory=Counter)  # reason -> examples
    too_long: Counter = field(default_factory=Counter)  # task -> examples dropped for being over max_seq
    # task -> tokens of every example measured, the ones too long included: what max_seq must fit.
    lengths: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    max_seq: int = 0
    base_model: str = ""
    token_note: str | None = None

    def percentiles(self, task: str | None = None) -> dict[str, int]:
        """Token percentiles of one task's examples, or of all of them."""
        return token_percentiles(self.lengths.get(task, []) if task else
                                 (n for values in self.lengths.values() for n in values))

    def table(self) -> list[str]:
        """Per task: examples written to each split, token percentiles, and how many were
        over max_seq; then a total row and every other reason an example was dropped."""
        tasks = sorted({t for t, _ in self.counts} | set(self.lengths))
        lines = [f"  tokens under {self.base_model}, max_seq {self.max_seq}",
                 f"  {'task':<12} {'train':>6} {'valid':>6} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6}  over max_seq"]

        def row(name: str, train: int, valid: int, p: dict[str, int], over: int, measured: int) -> str:
            cells = " ".join(f"{p.get(k, '-'):>6}" for k in ("p50", "p90", "p99", "max"))
            share = f"{over} ({100 * over / measured:.0f}%)" if over else "0"
            return f"  {name:<12} {train:>6} {valid:>6} {cells}  {share}"

        for task in tasks:
            lines.append(row(task, self.counts.get((task, "train"), 0), self.counts.get((task, "valid"), 0),
                             self.percentiles(task), self.too_long[task], len(self.lengths.get(task, []))))
        if len(tasks) > 1:
            lines.append(row("all", sum(n for (_, s), n in self.counts.items() if s == "train"),
                             sum(n for (_, s), n in self.counts.items() if s == "valid"), self.percentiles(),
                             sum(self.too_long.values()), sum(len(v) for v in self.lengths.values())))
        if self.dropped:
            lines.append("  dropped: " + ", ".join(f"{n} {reason}" for reason, n in self.dropped.most_common()))
        return lines


def build_set(role: str, records: list[dict], split: dict[str, str], persona: Persona, max_seq: int,
              counter: TokenCounter, cap: int | None, share: float) -> tuple[dict[str, list[dict]], SetReport]:
    make = educator_examples if role == "educator" else poet_examples
    system = persona.educator_system if role == "educator" else persona.poet_system
    report = SetReport(role, max_seq=max_seq, base_model=counter.base_model, token_note=counter.note)
    sets: dict[str, list[dict]] = {"train": [], "valid": []}
    for record in records:
        for messages in make(record, system):
            problem = check_conversation(messages)
            if problem:
                report.dropped[problem] += 1
                continue
            n = counter(messages)
            report.lengths[record["task"]].append(n)
            if n > max_seq:
                report.dropped[f"longer than max_seq {max_seq}"] += 1
                report.too_long[record["task"]] += 1
                continue
            which = split[record["id"]]
            sets[which].append({"messages": messages, "_task": record["task"]})
    if cap is not None:
        sets["train"] = sets["train"][:cap]
        sets["valid"] = sets["valid"][:max(1, round(cap * share / max(1e-9, 1 - share)))]
    for which, examples in sets.items():
        for e in examples:
            report.counts[(e.pop("_task"), which)] += 1
    return sets, report


def write_sets(sets: dict[str, list[dict]], paths: dict[str, Path]) -> None:
    for which in ("train", "valid"):
        write_jsonl_atomic(paths[which], sets[which])


def require_records(records: list[dict], where: str) -> None:
    if not records:
        raise ConfigError(f"{where}: no usable gated records; run `workshop data gate FILE` on the generated "
                          "records first (nothing was written)")


ROLE_TASKS = {
    "educator": ("critiques", "briefs", "lessons", "autopsies", "comparisons", "dialogues"),
    "poet": ("poet-pairs", "dialogues"),
}


@dataclass
class PrepareRun:
    reports: list[SetReport]
    skipped: list[str]  # roles with no examples
    # task -> gated records of an earlier prompt version: left out, or kept on request
    older: Counter = field(default_factory=Counter)
    older_kept: bool = False


def prepare(settings, roles: Iterable[str], min_samples: int | None, seed: int | None,
            gated_dir: Path | None = None, warn: Callable[[str], None] = lambda line: None,
            include_older_versions: bool = False) -> PrepareRun:
    """Read every gated file, build the sets for `roles`, check them all, then write them.
    Problems with single lines or examples go to `warn` as they are found.

    Only records of each task's current prompt version are used, so a persona edit never
    trains old and new records together unasked; `include_older_versions` keeps the older
    ones too. Either way `warn` says how many there were."""
    from poetry_workshop.pipeline.gate.run import read_records
    from poetry_workshop.workshop.persona import load_persona

    gated_dir = gated_dir or locations.data_dir() / "gated"
    files = sorted(p for p in gated_dir.glob("*.jsonl") if not p.name.endswith(".rejects.jsonl"))
    if not files:
        raise ConfigError(f"{gated_dir}: no gated records; run `workshop data gate data/annotated/TASK.jsonl` "
                          "first (nothing was written)")
    records, seen = [], set()
    for path in files:
        found, problems = read_records(path)
        for problem in problems:
            warn(problem)
        for r in found:
            if r["id"] not in seen:
                seen.add(r["id"])
                records.append(r)
    require_records(records, str(gated_dir))
    versions = split_by_version(records)
    note = versions.describe_older(str(gated_dir), kept=include_older_versions)
    if note:
        warn(note)
    if not include_older_versions:
        if not versions.current:
            raise ConfigError(f"{gated_dir}: all {len(records)} gated records were made with an earlier prompt "
                              "version; regenerate and gate them, or add --include-older-versions to train on "
                              "them (nothing was written)")
        records = versions.current
    persona = load_persona()
    counters: dict[str, TokenCounter] = {}
    built, skipped = [], []
    for role in roles:
        config = settings.educator_training if role == "educator" else settings.poet_training
        mine = [r for r in records if r["task"] in ROLE_TASKS[role]]
        if not mine:
            skipped.append(role)
            continue
        share = config.data.valid_share
        if not 0 <= share < 1:
            raise ConfigError(f"{role}_training data.valid_share must be from 0 to below 1, got {share}")
        split = split_groups(records, share, config.training.seed if seed is None else seed)
        base = config.training.base_model
        counter = counters.setdefault(base, TokenCounter(base))
        sets, report = build_set(role, mine, split, persona, config.training.max_seq, counter, min_samples, share)
        if not sets["train"]:
            skipped.append(role)
            warn(f"{role}: every example was dropped ({dict(report.dropped)}); its set is not written")
            continue
        report.paths = {"train": locations.resolve_data_path(config.data.train),
                        "valid": locations.resolve_data_path(config.data.valid)}
        built.append((sets, report))
    if not built:
        raise ConfigError(f"{gated_dir}: no examples for {' or '.join(roles)} in the gated records "
                          "(nothing was written)")
    for sets, report in built:
        write_sets(sets, report.paths)
    return PrepareRun([report for _, report in built], skipped, versions.older_by_task(), include_older_versions)
