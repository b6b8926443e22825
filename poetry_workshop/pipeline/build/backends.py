"""Where training and export run: in this process (`LocalBackend`) or on Modal
(`ModalBackend`, which uploads the training sets first and downloads the published model
after). Both satisfy `Backend`, so the chain never asks which one it has."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

from poetry_workshop.config.loader import Layer
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.build.plan import Log
from poetry_workshop.pipeline.training.results import TrainSummary


class Backend(Protocol):
    """A place to train and export; a context manager that holds what it needs while open."""

    def __enter__(self) -> Backend: ...
    def __exit__(self, *exc) -> None: ...

    def upload(self, roles) -> None:
        """Make the training sets of `roles` available where training runs."""

    def train(self, role: str, epochs: int | None, max_steps: int | None,
              on_progress=None, cancel: threading.Event | None = None) -> TrainSummary:
        """Train (or resume) one role's adapter."""

    def export(self, role: str, cancel: threading.Event | None = None) -> Path:
        """Publish one role's GGUF and return where it is on this machine."""


class LocalBackend:
    """Train and export in this process (CPU or a local GPU)."""

    def __init__(self, settings, log: Log):
        self.settings, self.log = settings, log

    def __enter__(self) -> LocalBackend:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def upload(self, roles) -> None:
        pass  # the data is already here

    def train(self, role: str, epochs: int | None, max_steps: int | None,
              on_progress=None, cancel: threading.Event | None = None) -> TrainSummary:
        from poetry_workshop.pipeline.training.trainer import train

        return train(role, self.settings, epochs=epochs, max_steps=max_steps, on_progress=on_progress, log=self.log,
                     cancel=cancel).summary()

    def export(self, role: str, cancel: threading.Event | None = None) -> Path:
        from poetry_workshop.pipeline.training.gguf_export import export

        return export(role, self.settings, log=lambda m: self.log(f"{role}: {m}")).gguf


def modal_credentials_ready() -> bool:
    import modal.config

    return bool(modal.config.config.get("token_id") and modal.config.config.get("token_secret"))


class ModalBackend:
    """Train and export on Modal; the training sets go up first and the models come down after.
    Each call is spawned and tracked by modal_calls.ModalCalls: a cancel stops the GPU, and
    a resume re-attaches to a call still running. `from_id`: modal.FunctionCall.from_id,
    replaced in tests."""

    def __init__(self, settings, layers: list[Layer], log: Log, running=None, from_id=None):
        self.settings, self.layers, self.log, self.running = settings, layers, log, running
        self._stack = None
        self._from_id = from_id

    def __enter__(self) -> ModalBackend:
        from contextlib import ExitStack

        if not modal_credentials_ready():
            raise ConfigError("Modal is not set up on this machine: run `modal setup` (or set MODAL_TOKEN_ID and "
                              "MODAL_TOKEN_SECRET), then try again; or use --backend local")
        import modal

        self._stack = ExitStack()
        if self.running is not None:
            self.modal_app = self.running  # `modal run` already started the app in that module
        else:
            from poetry_workshop.pipeline.build import modal_app
            self.modal_app = modal_app
            self._stack.enter_context(modal.enable_output())
            # Detached: a closed terminal or a crash leaves a paid call running, for the
            # next run to re-attach to; stopping is done by cancelling the call (modal_calls).
            self._stack.enter_context(modal_app.app.run(detach=True))
        return self

    def _calls(self):
        from poetry_workshop.pipeline.build.modal_calls import ModalCalls

        if self._from_id is None:
            import modal

            self._from_id = modal.FunctionCall.from_id
        return ModalCalls(self._from_id, self.log)

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()

    def _volume(self, name: str):
        from poetry_workshop.pipeline.build.cloud_sync import ModalVolume

        return ModalVolume(name)

    def upload(self, roles) -> None:
        from poetry_workshop.pipeline.build.cloud_sync import upload

        result = upload(self._volume(self.settings.export.modal.data_volume), roles, self.settings, self.log)
        self.log(f"upload: {len(result.sent)} sent, {len(result.unchanged)} unchanged")

    def train(self, role: str, epochs: int | None, max_steps: int | None,
              on_progress=None, cancel: threading.Event | None = None) -> TrainSummary:
        # Progress lines stream from the container through Modal's output. A cancel stops
        # the call (the checkpoints on the volume are kept, and training again resumes).
        from poetry_workshop.pipeline.build.cloud_sync import set_checksums
        from poetry_workshop.pipeline.training.results import TrainSummary

        expected = set_checksums(role, self.settings)
        spawn = lambda: self.modal_app.train_role.spawn(role, self.layers, epochs, max_steps, expected)
        return TrainSummary(**self._calls().run(f"train {role}", spawn, cancel))

    def export(self, role: str, cancel: threading.Event | None = None) -> Path:
        from poetry_workshop.pipeline.build.cloud_sync import download

        self._calls().run(f"export {role}", lambda: self.modal_app.export_role.spawn(role, self.layers), cancel)
        got = download(self._volume(self.settings.export.modal.gguf_volume), role, self.settings, self.log)
        return got.path


def open_backend(backend: str, settings, layers: list[Layer], log: Log, running=None):
    """`running`: the Modal app module when `modal run` has already started its app."""
    if backend == "modal":
        return ModalBackend(settings, layers, log, running)
    if backend == "local":
        return LocalBackend(settings, log)
    raise ConfigError(f"unknown backend '{backend}'; use local or modal")
