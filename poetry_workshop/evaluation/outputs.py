"""Running one configuration over the eval set: every generation, with fixed seeds.

Each item is a fresh conversation (system prompt + one request, the app's own prompts), so
an item's output does not depend on the items before it. The seed of an item's generation
is the run's seed plus a number derived from the item's id, so the same item gets the same
seed whatever `--limit` is, and a poem and its weakened copy are critiqued with the same
seed: the only difference between the two calls is the poem. Each configuration gets fresh
model objects, so no KV cache carries over from another configuration's run.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from poetry_workshop.evaluation.configurations import Configuration
from poetry_workshop.evaluation.eval_set import EvalSet
from poetry_workshop.inference.engine import RoleChat
from poetry_workshop.names import ROLES
from poetry_workshop.workshop import prompts
from poetry_workshop.workshop.persona import Persona


@dataclass(frozen=True)
class Step:
    """One generation of the run: which configuration, which item, how far along."""

    configuration: str
    kind: str  # "draft", "critique", "critique-weakened", "revision"
    item: str
    done: int  # generations finished in this configuration, this one included
    total: int
    seconds: float
    tokens: int


@dataclass
class ConfigOutputs:
    """What one configuration wrote for each item (cleaned as the app cleans it)."""

    drafts: dict[str, str] = field(default_factory=dict)
    critiques: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {"original", "weakened"}
    revisions: dict[str, str] = field(default_factory=dict)
    tokens: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def item_seed_offset(item_id: str) -> int:
    return zlib.crc32(item_id.encode("utf-8")) % 100_000


def generate_outputs(config: Configuration, eval_set: EvalSet, settings, persona: Persona, *, seed: int,
                     max_tokens: int | None, on_step: Callable[[Step], None] | None = None) -> ConfigOutputs:
    from poetry_workshop.inference.inference_thread import InferenceThread
    from poetry_workshop.inference.llama_backend import LlamaBackend

    runtime = dataclasses.replace(settings.inference.runtime, seed=seed)
    limits = settings.inference.max_tokens
    budget = {kind: min(n, max_tokens) if max_tokens else n
              for kind, n in (("draft", limits.draft), ("critique", limits.critique))}
    sampling = settings.inference.sampling
    out = ConfigOutputs()
    total = eval_set.generations
    done: list[str] = []
    thread = InferenceThread()
    backends: dict = {}
    try:
        for role in ROLES:
            path = config.path(role).resolve()
            if path not in backends:  # one file in both roles is loaded once
                backends[path] = LlamaBackend(path, runtime, thread)
        educator = backends[config.educator.resolve()]
        poet = backends[config.poet.resolve()]

        def ask(kind: str, item_id: str, role: str, request: str) -> str:
            backend = educator if role == "educator" else poet
            system = persona.educator_system if role == "educator" else persona.poet_system
            chat = RoleChat(role, backend, system, sampling.educator if role == "educator" else sampling.poet)
            reply = chat.send(request, budget["critique" if role == "educator" else "draft"],
                              seed_offset=item_seed_offset(item_id))
            clean = prompts.clean_reply if role == "educator" else prompts.clean_poem
            text = clean(reply.text, backend.stop_texts)
            out.tokens += reply.stats.generated_tokens
            out.seconds += reply.stats.seconds
            done.append(item_id)
            if on_step is not None:
                on_step(Step(config.label, kind, item_id, len(done), total, reply.stats.seconds,
                             reply.stats.generated_tokens))
            return text

        for item in eval_set.briefs:
            out.drafts[item.id] = ask("draft", item.id, "poet", prompts.draft_request(item.brief))
        for item in eval_set.critiques:
            original = ask("critique", item.id, "educator", prompts.critique_request(item.poem))
            out.critiques[item.id] = {"original": original}
            out.critiques[item.id]["weakened"] = ask("critique-weakened", item.id, "educator",
                                                     prompts.critique_request(item.weakened))
        for item in eval_set.revisions:
            out.revisions[item.id] = ask("revision", item.id, "poet",
                                         prompts.revise_request(item.critique, item.draft))
    finally:
        for backend in backends.values():
            backend.close()
        thread.close()
    return out
