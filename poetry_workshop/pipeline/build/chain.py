"""The build chain: teaching data → gate → training sets → adapters → GGUF files, stage by stage.

`workshop pipeline`, `workshop first-test`, `modal run …/modal_main.py` and the app's build
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

Claude spending is the ledger's: a build keeps one id across every run of it until a run
finishes (`pipeline/build/spending.py`), its generation runs write that id on their ledger
lines, and the spend cap covers the build's total, earlier runs and calls left in flight
by a killed one included. The log says at the start what the build has spent, what the cap
leaves and what the rest is estimated at, and after each generation stage the total so far.

The chain's state (each stage's state and counts, this run's dollars, log tail) is written to
`data/build/state.json` as it changes. The app shows where a closed run stopped from it.
Cancelling stops generation at the next record, training at the next step (with a
checkpoint), and anything else before its next stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ConfigError, ExitCode, WorkshopError
from poetry_workshop.pipeline.build.backends import open_backend
from poetry_workshop.pipeline.build.plan import (
    BUILDS_ON,
    LOG_LINES_KEPT,
    ChainPlan,
    ChainState,
    Log,
    StageState,
    caller_layers,
    plan_stages,
    save_state,
    state_file,
)
from poetry_workshop.pipeline.build.spending import (
    BuildSpending,
    build_tally,
    current_build,
    read_record,
    save_record,
)


class ChainCancelled(WorkshopError):
    """The person stopped the run; what was done is kept and the next run resumes."""

    exit_code = ExitCode.INTERRUPTED


def estimate_by_task(settings, plan: ChainPlan, count_tokens: bool = True) -> tuple[dict[str, float], list[str], str]:
    """Dollars per task the plan would still spend, a part of the account per task, and the
    prices used; spends nothing."""
    from poetry_workshop.pipeline.claude.ledger import PriceBook
    from poetry_workshop.pipeline.data.generation import GenerateOptions, TeachingDataRun

    dollars, parts = {}, []
    for task, target in plan.targets.items():
        try:
            e = TeachingDataRun(settings, GenerateOptions(task=task, limit=target, model=plan.model,
                                                          concurrency=plan.concurrency)).estimate(count_tokens)
        except ConfigError:
            if task not in BUILDS_ON:
                raise
            parts.append(f"{task} (after {BUILDS_ON[task]})")
            continue
        dollars[task] = e.dollars
        parts.append(f"{task} {e.calls}")
    model = plan.model or settings.generation.claude.model
    return dollars, parts, PriceBook(settings.generation.prices).describe(model)


def estimate_generation(settings, plan: ChainPlan) -> tuple[float, str]:
    """Dollars and an account of what generation would spend, with what the build has spent
    already and what its cap leaves; spends nothing."""
    dollars, parts, prices = estimate_by_task(settings, plan)
    total = sum(dollars.values())
    record = read_record()
    earlier = build_tally(record.build).total if record is not None and not record.finished else 0.0
    model = plan.model or settings.generation.claude.model
    text = (f"Claude calls: {', '.join(parts)} with {model}: about ${total:.2f} "
            "(tasks that build on others are counted once their inputs exist)")
    if earlier:
        text += f"; this build has spent ${earlier:.4f} in earlier runs"
    if plan.max_cost is not None:
        text += f"; capped at ${plan.max_cost:.2f} for the whole build, ${max(0.0, plan.max_cost - earlier):.4f} left"
    return total, f"{text}.\n{prices}"


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
        self.build_id: str | None = None
        self.spent_earlier = 0.0  # by the build's earlier runs, from the ledger at this run's start
        self._estimates: dict[str, float] = {}  # dollars per task still to spend, at this run's start

    # -- spending

    @property
    def spending(self) -> BuildSpending | None:
        """The build's whole Claude total: earlier runs (ledger) + this run + the estimate for the rest."""
        if self.build_id is None:
            return None
        return BuildSpending(self.build_id, self.spent_earlier, self.state.dollars, self.plan.max_cost,
                             self._estimate_rest())

    def _estimate_rest(self) -> float | None:
        if not self._estimates:
            return None
        rest = 0.0
        for task, dollars in self._estimates.items():
            stage = self.state.stage(f"generate:{task}")
            if stage.state == "not started":
                rest += dollars
            elif stage.state == "running" and stage.total:
                rest += dollars * max(0.0, 1 - stage.done / stage.total)
        return rest

    def _open_build(self) -> None:
        record = current_build(self.plan.max_cost)
        self.build_id = record.build
        tally = build_tally(record.build)
        self.spent_earlier = tally.total
        if self.plan.targets:
            try:
                self._estimates, _, _ = estimate_by_task(self.settings, self.plan, count_tokens=False)
            except ConfigError:
                self._estimates = {}
        record.estimate_rest = self._estimate_rest()
        save_record(record)
        if self.plan.targets:
            line = f"Claude spending of this build ({record.build}): {tally.describe()} in earlier runs"
            if self.plan.max_cost is not None:
                line += f"; cap ${self.plan.max_cost:.2f}, ${max(0.0, self.plan.max_cost - tally.total):.4f} left"
            if record.estimate_rest is not None:
                line += f"; the rest is estimated at ${record.estimate_rest:.2f}"
            self.log(line)

    def _close_build(self, finished: bool) -> None:
        record = read_record()
        if record is None or record.build != self.build_id:
            return
        record.finished = finished
        record.estimate_rest = self._estimate_rest()
        save_record(record)

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
        """Run every stage; raises what stopped it (its stage marked failed or stopped).

        The data folder is held for the whole run (one writer per data folder), taken before
        anything is written, so a refused run leaves the running build's state file alone."""
        from poetry_workshop.pipeline.data_lock import hold_data_folder

        with hold_data_folder(locations.data_dir()) as held:
            if held.took_over:
                self._log(held.takeover_note())
            return self._run_held(confirm)

    def _run_held(self, confirm: Callable[[str], bool] | None) -> ChainState:
        if self.plan.targets and confirm is not None:
            _, text = estimate_generation(self.settings, self.plan)
            if not confirm(text):
                raise WorkshopError("stopped before spending anything")
        self.state.status = "running"
        self.state.error = ""
        self._open_build()
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
            self._close_build(False)
            raise
        except BaseException as exc:
            message = str(exc) if isinstance(exc, WorkshopError) else f"{type(exc).__name__}: {exc}"
            self._finish("failed", message, current, "failed")
            self._close_build(False)
            raise
        self._finish("done", "", None, "done")
        self._close_build(True)
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
        from poetry_workshop.pipeline.data.generation import CANCELLED, GenerateOptions, TeachingDataRun

        def progress(event) -> None:
            stage.done, stage.total, stage.dollars = event.accepted, event.total, event.dollars
            stage.detail = f"{event.accepted} accepted, {event.rejected} rejected, {event.failed} failed"
            self.state.dollars = sum(s.dollars for s in self.state.stages)
            if event.note and event.note != "starting":
                self.log(f"{task}: {event.note}")
            self._changed()

        # The cap is the whole build's: the run reads what the build spent from the ledger.
        run = TeachingDataRun(self.settings, GenerateOptions(task=task, limit=self.plan.targets[task],
                                                             max_cost=self.plan.max_cost, build=self.build_id,
                                                             model=self.plan.model, concurrency=self.plan.concurrency),
                              on_progress=progress, cancel=self.cancel)
        if run.need == 0:
            stage.done = stage.total = run.target
            stage.detail = f"up to date: {run.target} records exist"
            return "skipped"
        if self.plan.max_cost is not None and run.tally.total >= self.plan.max_cost:
            stage.detail = f"the spend cap is reached: ${run.tally.total:.4f} of ${self.plan.max_cost:.2f}"
            self.log(f"{task}: skipped, {stage.detail} for this build")
            return "skipped"
        report = run.run()
        stage.dollars = report.dollars
        self.state.dollars = sum(s.dollars for s in self.state.stages)
        stage.done, stage.total = report.existing + report.accepted, report.target
        self.log(f"{task}: {report.existing + report.accepted} of {report.target} records "
                 f"({report.accepted} new, {report.rejected} rejected, {report.failed} failed, ${report.dollars:.4f})")
        for line in report.warnings[:5]:
            self.log(f"warning: {line}")
        self.log(self.spending.describe())
        if report.stopped == CANCELLED:
            raise ChainCancelled(f"{task}: {report.stopped}")
        if report.stopped:
            self.log(f"{task}: {report.stopped}")
        return None

    def _gate(self, stage: StageState, arg: str, backend) -> None:
        from poetry_workshop.pipeline.gate.run import gate_file

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
        from poetry_workshop.pipeline.training.training_sets import prepare

        run = prepare(self.settings, self.plan.roles, self.plan.min_samples, None,
                      warn=lambda line: self.log(f"warning: {line}"))
        parts = []
        for report in run.reports:
            counts = sum(n for (_, split), n in report.counts.items() if split == "train")
            parts.append(f"{report.role} {counts}")
            self.log(f"prepare {report.role}: {counts} training examples in {report.paths['train']}")
            for line in report.table():  # what was dropped for length, and the token percentiles
                self.log(line)
        stage.detail = "training examples: " + ", ".join(parts)
        missing = [role for role in self.plan.roles if role in run.skipped]
        if missing:
            raise ConfigError(f"no training examples for {', '.join(missing)} in the gated records; "
                              "generate more teaching data for it")

    def _upload(self, stage: StageState, arg: str, backend) -> None:
        backend.upload(self.plan.roles)

    def _train(self, stage: StageState, role: str, backend) -> str | None:
        from poetry_workshop.pipeline.training.results import TrainingCancelled
        from poetry_workshop.pipeline.training.trainer import adapter_is_current

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
        stage.detail = f"{result.steps} steps on {result.examples} examples"
        self.log(f"train {role}: {stage.detail}")
        return None

    def _export(self, stage: StageState, role: str, backend) -> str | None:
        from poetry_workshop.pipeline.training.gguf_export import published_is_current

        current = published_is_current(role, self.settings) if self.plan.backend == "local" else None
        if current is not None:
            self.state.models[role] = str(current)
            stage.detail = f"up to date: {current.name}"
            return "skipped"
        from poetry_workshop.pipeline.training.results import TrainingCancelled

        started = time.monotonic()
        try:
            gguf = backend.export(role, self.cancel)  # a Modal export stops at a cancel; a local one runs on
        except TrainingCancelled as exc:
            raise ChainCancelled(str(exc))
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
