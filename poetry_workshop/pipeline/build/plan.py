"""What a build does and where it stands: the plan (roles, tasks and targets, backend, epochs,
spend cap), its stages, and the state saved to `data/build/state.json` as the chain runs,
which the app reads after a restart to show where a closed run stopped."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.config.loader import Layer, load_settings, override_layers
from poetry_workshop.errors import ConfigError
from poetry_workshop.files import write_atomic
from poetry_workshop.names import ROLES, TASK_NAMES

# Generation order: dialogues continue critiques, poet-pairs write from briefs.
BUILDS_ON = {"dialogues": "critiques", "poet-pairs": "briefs"}
ROLE_NEEDS = {
    "educator": {"critiques", "briefs", "lessons", "autopsies", "comparisons", "dialogues"},
    "poet": {"briefs", "poet-pairs", "critiques", "dialogues"},
}
STATES = ("not started", "running", "done", "skipped", "failed", "stopped")
LOG_LINES_KEPT = 200

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
    return {task: limits[task] for task in TASK_NAMES if task in wanted and limits.get(task)}


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
