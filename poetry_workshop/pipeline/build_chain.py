"""The build chain: teaching data → gate → training sets → adapters → GGUF files, stage by stage.

`workshop pipeline`, `workshop first-test` and `modal run …/modal_app.py` all run
`run_chain` with a `ChainPlan`; the stages are the same plain functions the single
commands run. Only training and export differ by backend: in this process
(`LocalBackend`) or on Modal (`ModalBackend`, which also uploads the training sets first
and downloads the published models after).

Every stage can be run again: generation skips records it already has, the gate and
prepare rewrite their outputs atomically, training resumes from its newest checkpoint, and
export publishes only a model that validated.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.config import Layer, load_settings, override_layers
from poetry_workshop.errors import ConfigError, WorkshopError

ROLES = ("educator", "poet")
# Generation order: dialogues continue critiques, poet-pairs write from briefs.
GENERATION_ORDER = ("critiques", "briefs", "lessons", "autopsies", "comparisons", "dialogues", "poet-pairs")
BUILDS_ON = {"dialogues": "critiques", "poet-pairs": "briefs"}
ROLE_NEEDS = {
    "educator": {"critiques", "briefs", "lessons", "autopsies", "comparisons", "dialogues"},
    "poet": {"briefs", "poet-pairs", "critiques", "dialogues"},
}

Log = Callable[[str], None]


@dataclass
class ChainPlan:
    """What one run of the chain does. `targets` empty means: train from the sets that exist."""

    roles: tuple[str, ...] = ROLES
    backend: str = "local"
    targets: dict[str, int] = field(default_factory=dict)  # task → records wanted
    min_samples: int | None = None
    epochs: int | None = None
    max_steps: int | None = None
    export: bool = True
    max_cost: float | None = None
    layers: list[Layer] = field(default_factory=list)  # this run's settings, above the user's

    @classmethod
    def from_flags(cls, *, educator_only: bool = False, poet_only: bool = False, train_only: bool = False,
                   epochs: int | None = None, backend: str = "local", config_path: str | None = None,
                   max_cost: float | None = None) -> ChainPlan:
        if educator_only and poet_only:
            raise ConfigError("--educator-only and --poet-only exclude each other; give one or neither")
        roles = ("educator",) if educator_only else ("poet",) if poet_only else ROLES
        plan = cls(roles=roles, backend=backend, epochs=epochs, max_cost=max_cost)
        if not train_only:
            limits = load_settings(config_path).generation.limits
            wanted = set().union(*(ROLE_NEEDS[r] for r in roles))
            plan.targets = {task: limits[task] for task in GENERATION_ORDER if task in wanted and limits.get(task)}
        return plan


@dataclass
class ChainResult:
    models: dict[str, Path] = field(default_factory=dict)
    dollars: float = 0.0
    trained: dict[str, dict] = field(default_factory=dict)


# ---------------------------------------------------------------------------- backends


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

    def train(self, role: str, epochs: int | None, max_steps: int | None) -> dict:
        from poetry_workshop.pipeline.trainer import train

        def show(event) -> None:
            parts = [f"{role}: step {event.step}/{event.total_steps}"]
            if event.loss is not None:
                parts.append(f"loss {event.loss:.3f}")
            if event.eval_loss is not None:
                parts.append(f"validation loss {event.eval_loss:.3f}")
            parts.append(f"{event.tokens_per_second:.0f} tok/s")
            if event.eta_seconds:
                parts.append(f"about {event.eta_seconds / 60:.1f} min left")
            self.log(", ".join(parts))

        r = train(role, self.settings, epochs=epochs, max_steps=max_steps, on_progress=show, log=self.log)
        return {"role": role, "steps": r.steps, "examples": r.examples, "dropped": r.dropped,
                "resumed_from": r.resumed_from, "adapter": str(r.adapter)}

    def export(self, role: str) -> Path:
        from poetry_workshop.pipeline.gguf_export import export

        return export(role, self.settings, log=lambda m: self.log(f"{role}: {m}")).gguf


def modal_credentials_ready() -> bool:
    import modal.config

    return bool(modal.config.config.get("token_id") and modal.config.config.get("token_secret"))


class ModalBackend:
    """Train and export on Modal; the training sets go up first and the models come down after."""

    def __init__(self, settings, layers: list[Layer], log: Log, running=None):
        self.settings, self.layers, self.log, self.running = settings, layers, log, running
        self._stack = None

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
            from poetry_workshop.pipeline import modal_app

            self.modal_app = modal_app
            self._stack.enter_context(modal.enable_output())
            self._stack.enter_context(modal_app.app.run())
        return self

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()

    def _volume(self, name: str):
        from poetry_workshop.pipeline.cloud_sync import ModalVolume

        return ModalVolume(name)

    def upload(self, roles) -> None:
        from poetry_workshop.pipeline.cloud_sync import upload

        result = upload(self._volume(self.settings.export.modal.data_volume), roles, self.settings, self.log)
        self.log(f"upload: {len(result.sent)} sent, {len(result.unchanged)} unchanged")

    def train(self, role: str, epochs: int | None, max_steps: int | None) -> dict:
        from poetry_workshop.pipeline.cloud_sync import set_checksums

        expected = set_checksums(role, self.settings)
        return self.modal_app.train_role.remote(role, self.layers, epochs, max_steps, expected)

    def export(self, role: str) -> Path:
        from poetry_workshop.pipeline.cloud_sync import download

        self.modal_app.export_role.remote(role, self.layers)
        got = download(self._volume(self.settings.export.modal.gguf_volume), role, self.settings, self.log)
        return got.path


def open_backend(backend: str, settings, layers: list[Layer], log: Log, running=None):
    """`running`: the Modal app module when `modal run` has already started its app."""
    if backend == "modal":
        return ModalBackend(settings, layers, log, running)
    if backend == "local":
        return LocalBackend(settings, log)
    raise ConfigError(f"unknown backend '{backend}'; use local or modal")


# ------------------------------------------------------------------------------ stages


def generate_all(settings, plan: ChainPlan, log: Log, confirm: Callable[[str], bool] | None) -> float:
    """Run each generation task up to its target; returns the dollars spent."""
    from poetry_workshop.pipeline.generation import GenerateOptions, TeachingDataRun

    if confirm is not None:
        estimate = 0.0
        parts = []
        for task, target in plan.targets.items():
            try:
                e = TeachingDataRun(settings, GenerateOptions(task=task, limit=target)).estimate()
            except ConfigError:
                if task not in BUILDS_ON:
                    raise
                parts.append(f"{task} (after {BUILDS_ON[task]})")
                continue
            estimate += e["dollars"]
            parts.append(f"{task} {e['calls']}")
        cap = f", capped at ${plan.max_cost:.2f}" if plan.max_cost is not None else ""
        text = (f"Claude calls: {', '.join(parts)} with {settings.generation.claude.model}: about ${estimate:.2f}"
                f"{cap} (tasks that build on others are counted once their inputs exist)")
        if not confirm(text):
            raise WorkshopError("stopped before spending anything")
    spent = 0.0
    for task, target in plan.targets.items():
        left = None if plan.max_cost is None else max(0.0, plan.max_cost - spent)
        if left == 0.0:
            log(f"{task}: skipped, the spend cap is reached")
            continue
        run = TeachingDataRun(settings, GenerateOptions(task=task, limit=target, max_cost=left),
                              on_progress=lambda e: None)
        report = run.run()
        spent += report.dollars
        log(f"{task}: {report.existing + report.accepted} of {report.target} records "
            f"({report.accepted} new, {report.rejected} rejected, {report.failed} failed, ${report.dollars:.4f})")
        for line in report.warnings[:5]:
            log(f"warning: {line}")
        if report.stopped:
            log(f"{task}: {report.stopped}")
    return spent


def gate_all(settings, tasks, log: Log) -> None:
    from poetry_workshop.pipeline.quality_gate import gate_file

    for task in tasks:
        source = locations.annotated_dir() / f"{task}.jsonl"
        if not source.is_file():
            log(f"gate: no {source.name} to gate")
            continue
        run = gate_file(settings, source, warn=lambda line: log(f"warning: {line}"))
        log(f"gate {task}: kept {run.report.kept} of {run.report.seen}")


def prepare_sets(settings, plan: ChainPlan, log: Log) -> None:
    from poetry_workshop.pipeline.training_sets import prepare

    run = prepare(settings, plan.roles, plan.min_samples, None, warn=lambda line: log(f"warning: {line}"))
    for report in run.reports:
        counts = sum(n for (_, split), n in report.counts.items() if split == "train")
        log(f"prepare {report.role}: {counts} training examples in {report.paths['train']}")
    missing = [role for role in plan.roles if role in run.skipped]
    if missing:
        raise ConfigError(f"no training examples for {', '.join(missing)} in the gated records; "
                          "generate more teaching data for it")


def run_chain(plan: ChainPlan, *, config_path: str | None = None, log: Log = print,
              confirm: Callable[[str], bool] | None = None, running=None) -> ChainResult:
    """Run the plan's stages in order; stop at the first that fails (nothing after it runs)."""
    settings = load_settings(config_path, extra=plan.layers)
    layers = override_layers(Path(config_path).expanduser() if config_path else None, os.environ, plan.layers)
    result = ChainResult()
    if plan.targets:
        result.dollars = generate_all(settings, plan, log, confirm)
        gate_all(settings, plan.targets, log)
        prepare_sets(settings, plan, log)
    with open_backend(plan.backend, settings, layers, log, running) as backend:
        backend.upload(plan.roles)
        for role in plan.roles:
            log(f"train {role}: starting ({plan.backend})")
            result.trained[role] = backend.train(role, plan.epochs, plan.max_steps)
            log(f"train {role}: {result.trained[role]['steps']} steps on {result.trained[role]['examples']} examples")
        if plan.export:
            for role in plan.roles:
                log(f"export {role}: starting ({plan.backend})")
                result.models[role] = backend.export(role)
                log(f"export {role}: published {result.models[role]}")
    return result
