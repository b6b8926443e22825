"""Support for the app tests: a studio on scripted models in a temporary store."""

from __future__ import annotations

from pathlib import Path

from poetry_workshop.config.loader import load_settings
from poetry_workshop.inference.engine import Engine, RoleChat
from poetry_workshop.inference.model_choice import choose_models
from poetry_workshop.workshop.persona import load_persona
from poetry_workshop.workshop.store import SessionStore
from poetry_workshop.workshop.studio import Studio
from tests.fakes.scripted_backend import ScriptedBackend

CRITIQUE = ('The poem watches the tide leave. "the water leaves" (line 1) is exact. '
            '"the mud keeps count" (line 2) tells where it could show. What does the mud hold? '
            "Try one image of what the water left behind.")
FOLLOW_UP = 'The revision answers the point: "mud counts gulls" (line 2) shows instead of tells.'


def scripted_educator():
    def reply(messages):
        last = messages[-1]["content"]
        if last.startswith("A writer asks for a poem"):
            return "Form: free verse, 6 lines. Anchor: mudflats at night. Avoid: rhyme."
        if last.startswith("A craft question"):
            return "Enjambment carries a sentence across a line break, so the break adds pressure."
        if "revised the poem" in last:
            return FOLLOW_UP
        return CRITIQUE
    return ScriptedBackend(reply)


def scripted_poet():
    count = {"n": 0}

    def reply(messages):
        count["n"] += 1
        if count["n"] == 1:
            return "the water leaves\nthe mud keeps count"
        return f"the water leaves\nmud counts gulls\nrevision {count['n']}"
    return ScriptedBackend(reply)


def make_studio(tmp_path: Path, educator=None, poet=None, settings=None) -> Studio:
    settings = settings or load_settings(environ={})
    settings.app.app.export_dir = str(tmp_path / "exports")
    choices = choose_models(settings)
    persona = load_persona()
    engine = Engine(
        RoleChat("educator", educator or scripted_educator(), persona.educator_system, settings.inference.sampling.educator),
        RoleChat("poet", poet or scripted_poet(), persona.poet_system, settings.inference.sampling.poet),
        choices,
    )
    store = SessionStore.open(tmp_path / "sessions.db")
    return Studio(settings, choices, store, engine)




async def settle(pilot) -> None:
    """Wait until the app is quiet: no worker pending or running, and their messages handled.

    A new screen starts its first worker from `on_mount`, which may run a moment after the
    key that opened it, so one wait is not enough: wait until two rounds in a row find
    nothing to do. Waits on workers and message queues, never on the clock."""
    from textual.worker import WorkerState

    app = pilot.app
    quiet = 0
    while quiet < 2:
        await pilot.pause()
        busy = [w for w in app.workers if w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        if busy:
            quiet = 0
            await app.workers.wait_for_complete(busy)
        else:
            quiet += 1
