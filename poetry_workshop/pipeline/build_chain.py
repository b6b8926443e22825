"""The build chain: teaching data → gate → training sets → adapters → GGUF files, stage by stage.

`workshop pipeline`, `workshop first-test`, `modal run …/modal_app.py` and the app's build
screen all run a `BuildChain` from a `ChainPlan`. Its stages call the same plain functions
as the single commands. Only training and export differ by backend: they run in this
process (`LocalBackend`) or on Modal (`ModalBackend`, which also uploads the training sets
first and downloads the published models after).

Every stage can be run again, so resuming is running the plan again:
- generation skips records it already has;
- the gate and prepare rewrite their outputs atomically;
- training resumes from its newest checkpoint;
- a stage whose output is already current (target reached, adapter trained on these very
  sets, GGUF exported from this adapter) is skipped as up to date.

The chain's state (each stage's state and counts, dollars, log tail) is written to
`data/build/state.json` as it changes. The app shows where a closed run stopped from it.
Cancelling stops generation at the next record, training at the next step (with a
checkpoint), and anything else before its next stage.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.config import Layer, load_settings, override_layers
from poetry_workshop.errors import ConfigError, ExitCode, WorkshopError
from poetry_workshop.transcript import write_atomic

ROLES = ("educator", "poet")
# Generation order: dialogues continue critiques, poet-pairs write from briefs.
GENERATION_ORDER = ("critiques", "briefs", "lessons", "autopsies", "comparisons", "dialogues", "poet-pairs")
BUILDS_ON = {"dialogues": "critiques", "poet-pairs": "briefs"}
ROLE_NEEDS = {
    "educator": {"critiques", "briefs", "lessons", "autopsies", "comparisons", "dialogues"},
    "poet": {"briefs", "poet-pairs", "critiques", "dialogues"},
}
STATES = ("not started", "running", "done", "skipped", "failed", "stopped")
LOG_LINES_KEPT = 200

Log = Callable[[str], None]


class ChainCancelled(WorkshopError):
    """The person stopped the run; what was done is kept and the next run resumes."""

    exit_code = ExitCode.INTERRUPTED


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
    model: str | None = None  # Claude model for generation (default: the config's)
    concurrency: int | None = None
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
            plan.targets = targets_for(roles, load_settings(config_path).generation.limits)
        return plan

    def to_dict(self) -> dict:
        return {**asdict(self), "roles": list(self.roles), "layers": [list(layer) for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: dict) -> ChainPlan:
        data = dict(data)
        data["roles"] = tuple(data.get("roles") or ROLES)
        data["layers"] = [tuple(layer) for layer in data.get("layers") or []]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def targets_for(roles, limits: dict[str, int]) -> dict[str, int]:
    """The generation tasks the roles need, in the order they must run, at the config's limits."""
    wanted = set().union(*(ROLE_NEEDS[r] for r in roles))
    return {task: limits[task] for task in GENERATION_ORDER if task in wanted and limits.get(task)}


@dataclass
class StageState:
    id: str
    label: str
    state: str = "not started"
    done: int = 0
    total: int = 0
    detail: str = ""
    dollars: float = 0.0
    eta_s: float | None = None
    started: float | None = None
    finished: float | None = None


@dataclass
class ChainState:
    """What the screen shows and what survives the app closing."""

    plan: dict
    stages: list[StageState]
    status: str = "not started"  # running, done, failed, stopped
    dollars: float = 0.0
    modal_seconds: float = 0.0
    models: dict[str, str] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    error: str = ""
    updated: float = 0.0

    def stage(self, stage_id: str) -> StageState:
        return next(s for s in self.stages if s.id == stage_id)


def state_file() -> Path:
    return locations.data_dir() / "build" / "state.json"


def save_state(state: ChainState, path: Path) -> None:
    write_atomic(path, json.dumps(asdict(state), indent=1))


def load_state(path: Path | None = None) -> ChainState | None:
    """The last run's state. A run that was still `running` ended with its process (the app
    closed or crashed): it reads as stopped, ready to resume."""
    path = path or state_file()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        stages = [StageState(**s) for s in raw.pop("stages")]
        state = ChainState(stages=stages, **{k: v for k, v in raw.items() if k in ChainState.__dataclass_fields__})
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if state.status == "running":
        state.status = "stopped"
        state.error = "the app closed while this was running; resume to go on from there"
        for stage in state.stages:
            if stage.state == "running":
                stage.state = "stopped"
    return state


def caller_layers(config_path: str | None, extra: list[Layer] = ()) -> list[Layer]:
    """This caller's settings above the config files (user file, environment, --config,
    the run's own), as the cloud needs them sent: the container has none of them."""
    return override_layers(Path(config_path).expanduser() if config_path else None, os.environ, extra)


def plan_stages(plan: ChainPlan) -> list[StageState]:
    stages = [StageState(f"generate:{task}", f"generate {task}") for task in plan.targets]
    if plan.targets:
        stages += [StageState("gate", "gate"), StageState("prepare", "prepare training sets")]
    if plan.backend == "modal":
        stages.append(StageState("upload", "upload to Modal"))
    stages += [StageState(f"train:{role}", f"train {role}") for role in plan.roles]
    if plan.export:
        stages += [StageState(f"export:{role}", f"export {role}") for role in plan.roles]
    return stages


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

    def train(self, role: str, epochs: int | None, max_steps: int | None,
              on_progress=None, cancel: threading.Event | None = None) -> dict:
        from poetry_workshop.pipeline.trainer import train

        return train(role, self.settings, epochs=epochs, max_steps=max_steps, on_progress=on_progress, log=self.log,
                     cancel=cancel).summary()

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

    def train(self, role: str, epochs: int | None, max_steps: int | None,
              on_progress=None, cancel: threading.Event | None = None) -> dict:
        # Progress lines stream from the container through Modal's output; a cancel takes
        # effect when the remote call returns (the checkpoints there are kept).
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


# ------------------------------------------------------------------------------ the chain


def estimate_generation(settings, plan: ChainPlan) -> tuple[float, str]:
    """Dollars and a one-line account of what generation would spend; spends nothing."""
    from poetry_workshop.pipeline.generation import GenerateOptions, TeachingDataRun

    total, parts = 0.0, []
    for task, target in plan.targets.items():
        try:
            e = TeachingDataRun(settings, GenerateOptions(task=task, limit=target, model=plan.model,
                                                          concurrency=plan.concurrency)).estimate()
        except ConfigError:
            if task not in BUILDS_ON:
                raise
            parts.append(f"{task} (after {BUILDS_ON[task]})")
            continue
        total += e["dollars"]
        parts.append(f"{task} {e['calls']}")
    cap = f", capped at ${plan.max_cost:.2f}" if plan.max_cost is not None else ""
    model = plan.model or settings.generation.claude.model
    return total, (f"Claude calls: {', '.join(parts)} with {model}: about ${total:.2f}{cap} "
                   "(tasks that build on others are counted once their inputs exist)")


class BuildChain:
    """One run of a plan: its stages in order, its state saved as it goes, stoppable."""

    def __init__(self, plan: ChainPlan, *, config_path: str | None = None, log: Log = print,
                 on_change: Callable[[ChainState], None] | None = None, running=None,
                 state_path: Path | None = None):
        self.plan = plan
        self.config_path = config_path
        self.settings = load_settings(config_path, extra=plan.layers)
        self.layers = caller_layers(config_path, plan.layers)
        self.running = running
        self.cancel = threading.Event()
        self.state = ChainState(plan=plan.to_dict(), stages=plan_stages(plan))
        self.state_path = state_path or state_file()
        self._log = log
        self._on_change = on_change or (lambda state: None)
        self._saved_at = 0.0
        self._lock = threading.Lock()

    # -- state

    def log(self, line: str) -> None:
        self._log(line)
        with self._lock:
            self.state.log = (self.state.log + [line])[-LOG_LINES_KEPT:]
        self._changed()

    def _changed(self, force: bool = False) -> None:
        self.state.updated = time.time()
        # Progress comes many times a second: the file is rewritten at most twice a second,
        # and always when a stage or the run changes state.
        if force or self.state.updated - self._saved_at >= 0.5:
            self._saved_at = self.state.updated
            with self._lock:
                save_state(self.state, self.state_path)
        self._on_change(self.state)

    def _set(self, stage: StageState, state: str, detail: str | None = None) -> None:
        stage.state = state
        if detail is not None:
            stage.detail = detail
        if state == "running":
            stage.started = time.time()
        elif state in ("done", "skipped", "failed", "stopped"):
            stage.finished = time.time()
            stage.eta_s = None
        self._changed(force=True)

    # -- running

    def run(self, confirm: Callable[[str], bool] | None = None) -> ChainState:
        """Run every stage; raises what stopped it (its stage marked failed or stopped)."""
        if self.plan.targets and confirm is not None:
            _, text = estimate_generation(self.settings, self.plan)
            if not confirm(text):
                raise WorkshopError("stopped before spending anything")
        self.state.status = "running"
        self.state.error = ""
        self._changed(force=True)
        current: StageState | None = None
        try:
            with open_backend(self.plan.backend, self.settings, self.layers, self.log, self.running) as backend:
                for stage in self.state.stages:
                    if self.cancel.is_set():
                        raise ChainCancelled("stopped before " + stage.label)
                    current = stage
                    self._set(stage, "running")
                    kind, _, arg = stage.id.partition(":")
                    outcome = getattr(self, f"_{kind}")(stage, arg, backend)
                    self._set(stage, outcome or "done")
                current = None
        except (ChainCancelled, KeyboardInterrupt) as exc:
            self._finish("stopped", str(exc) or "stopped by Ctrl+C; run it again to resume", current, "stopped")
            raise
        except BaseException as exc:
            message = str(exc) if isinstance(exc, WorkshopError) else f"{type(exc).__name__}: {exc}"
            self._finish("failed", message, current, "failed")
            raise
        self._finish("done", "", None, "done")
        return self.state

    def _finish(self, status: str, error: str, stage: StageState | None, stage_state: str) -> None:
        if stage is not None:
            self._set(stage, stage_state, error[:300] if error else None)
        self.state.status = status
        self.state.error = error
        self._changed(force=True)

    def _check_cancel(self, what: str) -> None:
        if self.cancel.is_set():
            raise ChainCancelled(what)

    def _generate(self, stage: StageState, task: str, backend) -> str | None:
        from poetry_workshop.pipeline.generation import CANCELLED, GenerateOptions, TeachingDataRun

        spent_before = sum(s.dollars for s in self.state.stages if s is not stage)
        left = None if self.plan.max_cost is None else max(0.0, self.plan.max_cost - spent_before)
        if left == 0.0:
            stage.detail = "the spend cap is reached"
            return "skipped"

        def progress(event) -> None:
            stage.done, stage.total, stage.dollars = event.accepted, event.total, event.dollars
            stage.detail = f"{event.accepted} accepted, {event.rejected} rejected, {event.failed} failed"
            self.state.dollars = sum(s.dollars for s in self.state.stages)
            self._changed()

        run = TeachingDataRun(self.settings, GenerateOptions(task=task, limit=self.plan.targets[task], max_cost=left,
                                                             model=self.plan.model, concurrency=self.plan.concurrency),
                              on_progress=progress, cancel=self.cancel)
        if run.need == 0:
            stage.done = stage.total = run.target
            stage.detail = f"up to date: {run.target} records exist"
            return "skipped"
        report = run.run()
        stage.dollars = report.dollars
        self.state.dollars = sum(s.dollars for s in self.state.stages)
        stage.done, stage.total = report.existing + report.accepted, report.target
        self.log(f"{task}: {report.existing + report.accepted} of {report.target} records "
                 f"({report.accepted} new, {report.rejected} rejected, {report.failed} failed, ${report.dollars:.4f})")
        for line in report.warnings[:5]:
            self.log(f"warning: {line}")
        if report.stopped == CANCELLED:
            raise ChainCancelled(f"{task}: {report.stopped}")
        if report.stopped:
            self.log(f"{task}: {report.stopped}")
        return None

    def _gate(self, stage: StageState, arg: str, backend) -> None:
        from poetry_workshop.pipeline.quality_gate import gate_file

        tasks = list(self.plan.targets)
        stage.total = len(tasks)
        kept = seen = 0
        for task in tasks:
            self._check_cancel("stopped before gating " + task)
            source = locations.annotated_dir() / f"{task}.jsonl"
            if source.is_file():
                run = gate_file(self.settings, source, warn=lambda line: self.log(f"warning: {line}"))
                kept, seen = kept + run.report.kept, seen + run.report.seen
                self.log(f"gate {task}: kept {run.report.kept} of {run.report.seen}")
            stage.done += 1
            stage.detail = f"kept {kept} of {seen}"
            self._changed()

    def _prepare(self, stage: StageState, arg: str, backend) -> None:
        from poetry_workshop.pipeline.training_sets import prepare

        run = prepare(self.settings, self.plan.roles, self.plan.min_samples, None,
                      warn=lambda line: self.log(f"warning: {line}"))
        parts = []
        for report in run.reports:
            counts = sum(n for (_, split), n in report.counts.items() if split == "train")
            parts.append(f"{report.role} {counts}")
            self.log(f"prepare {report.role}: {counts} training examples in {report.paths['train']}")
        stage.detail = "training examples: " + ", ".join(parts)
        missing = [role for role in self.plan.roles if role in run.skipped]
        if missing:
            raise ConfigError(f"no training examples for {', '.join(missing)} in the gated records; "
                              "generate more teaching data for it")

    def _upload(self, stage: StageState, arg: str, backend) -> None:
        backend.upload(self.plan.roles)

    def _train(self, stage: StageState, role: str, backend) -> str | None:
        from poetry_workshop.pipeline.trainer import TrainingCancelled, adapter_is_current

        if self.plan.backend == "local" and self.plan.max_steps is None \
                and adapter_is_current(role, self.settings, self.plan.epochs):
            stage.detail = "up to date: the adapter was trained on these very sets"
            return "skipped"

        def progress(event) -> None:
            stage.done, stage.total, stage.eta_s = event.step, event.total_steps, event.eta_seconds
            stage.detail = event.describe()
            self.log(f"{role}: {stage.detail}")

        started = time.monotonic()
        try:
            result = backend.train(role, self.plan.epochs, self.plan.max_steps, progress, self.cancel)
        except TrainingCancelled as exc:
            raise ChainCancelled(str(exc))
        finally:
            if self.plan.backend == "modal":
                self.state.modal_seconds += time.monotonic() - started
        stage.detail = f"{result['steps']} steps on {result['examples']} examples"
        self.log(f"train {role}: {stage.detail}")
        return None

    def _export(self, stage: StageState, role: str, backend) -> str | None:
        from poetry_workshop.pipeline.gguf_export import published_is_current

        current = published_is_current(role, self.settings) if self.plan.backend == "local" else None
        if current is not None:
            self.state.models[role] = str(current)
            stage.detail = f"up to date: {current.name}"
            return "skipped"
        started = time.monotonic()
        try:
            gguf = backend.export(role)
        finally:
            if self.plan.backend == "modal":
                self.state.modal_seconds += time.monotonic() - started
        self.state.models[role] = str(gguf)
        stage.detail = f"published {gguf.name}"
        self.log(f"export {role}: published {gguf}")
        return None


def run_chain(plan: ChainPlan, *, config_path: str | None = None, log: Log = print,
              confirm: Callable[[str], bool] | None = None, running=None) -> ChainState:
    """Run the plan's stages in order; stop at the first that fails (nothing after it runs)."""
    return BuildChain(plan, config_path=config_path, log=log, running=running).run(confirm)


class BackgroundBuild:
    """A BuildChain on its own thread, for the app: the person goes on working meanwhile.

    The thread is a daemon: quitting the app ends it where it is, and everything it does is
    resumable (see the module docstring), so the next start shows where it stopped."""

    def __init__(self):
        self.chain: BuildChain | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, plan: ChainPlan, *, config_path: str | None, on_change: Callable[[ChainState], None],
              on_end: Callable[[ChainState, str], None], log: Log = lambda line: None) -> BuildChain:
        if self.running:
            raise WorkshopError("a build is already running; cancel it first")
        chain = BuildChain(plan, config_path=config_path, log=log, on_change=on_change)

        def body() -> None:
            error = ""
            try:
                chain.run()
            except ChainCancelled as exc:
                error = str(exc)
            except WorkshopError as exc:
                error = str(exc)
            except Exception as exc:  # shown in the screen's log; the state file says failed
                error = f"{type(exc).__name__}: {exc}"
            on_end(chain.state, error)

        self.chain = chain
        self._thread = threading.Thread(target=body, name="workshop-build", daemon=True)
        self._thread.start()
        return chain

    def cancel(self) -> None:
        if self.chain is not None:
            self.chain.cancel.set()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
