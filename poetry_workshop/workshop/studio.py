"""What every front end opens before working: settings, model choice, store and engine.

One factory for the command line, the batch runner and (later) the app, so they cannot
drift apart in how they read config or which model they pick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.config.loader import Settings, load_settings
from poetry_workshop.inference.engine import Engine
from poetry_workshop.inference.model_choice import ModelChoice, choose_models, starter_notice
from poetry_workshop.workshop.persona import load_persona
from poetry_workshop.workshop.session import Event, WorkshopSession
from poetry_workshop.workshop.store import SessionStore


@dataclass
class Studio:
    settings: Settings
    choices: dict[str, ModelChoice]
    store: SessionStore
    engine: Engine
    config_path: str | None = None  # the --config file, for work that reads the settings again

    @classmethod
    def open(
        cls, config: str | Path | None = None, educator: str | None = None, poet: str | None = None,
        db_path: Path | None = None,
    ) -> Studio:
        settings = load_settings(config)
        choices = choose_models(settings, educator, poet)
        persona = load_persona()
        engine = Engine.from_settings(settings, persona, choices)  # validates both GGUF files
        try:
            store = SessionStore.open(db_path or locations.session_db_file())
        except BaseException:
            engine.close()
            raise
        return cls(settings, choices, store, engine, str(config) if config is not None else None)

    @property
    def notice(self) -> str | None:
        return starter_notice(self.choices)

    def start(
        self, mode: str, text: str, rounds: int | None = None, on_event: Callable[[Event], None] | None = None,
        origin: str = "app",
    ) -> WorkshopSession:
        return WorkshopSession.start(
            self.store, self.engine, mode=mode, text=text,
            rounds=rounds or self.settings.inference.session.rounds,
            max_tokens=self.settings.inference.max_tokens, on_event=on_event, origin=origin,
        )

    def resume(self, session_id: str, on_event: Callable[[Event], None] | None = None) -> WorkshopSession:
        return WorkshopSession.resume(
            self.store, self.engine, session_id, self.settings.inference.max_tokens, on_event
        )

    def use_model(self, role: str, path: Path, adapter: Path | None = None) -> Path:
        """Make a GGUF file (with `adapter`, a LoRA adapter GGUF for it) `role`'s model now
        and from now on (saved to the user config). An adapter belongs to the base it was
        trained on, so switching the model clears the role's adapter unless one is given."""
        from poetry_workshop.config.loader import save_user_settings

        path = Path(path).expanduser().resolve()
        adapter = Path(adapter).expanduser().resolve() if adapter else None
        starter = locations.resolve_project_path(self.settings.inference.models.starter)
        choice = ModelChoice(role=role, path=path, is_starter=path == starter.resolve(), source="config",
                             adapter=adapter)
        self.engine.swap(choice)  # first: a file that does not load changes nothing
        self.choices = {**self.choices, role: choice}
        adapter_key = f"{role}_adapter"
        saved = save_user_settings({"inference_config": {"models": {role: str(path), adapter_key: str(adapter or "")}}})
        setattr(self.settings.inference.models, role, str(path))
        setattr(self.settings.inference.models, adapter_key, str(adapter or ""))
        return saved

    def close(self) -> None:
        self.engine.close()
        self.store.close()
