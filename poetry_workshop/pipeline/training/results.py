"""What training reports: a progress event per logged step, the result of a run, the summary a
backend passes back (from Modal too), and the cancellation that ends a run at a step.

No heavy imports: the command line, the build chain and the app read these."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from poetry_workshop.errors import ExitCode, WorkshopError


@dataclass(frozen=True)
class TrainingProgress:
    role: str
    step: int
    total_steps: int
    loss: float | None
    tokens_per_second: float
    eta_seconds: float | None
    eval_loss: float | None = None
    note: str = ""

    def describe(self) -> str:
        """One line for a terminal, a log pane or a cloud container's output."""
        parts = [f"step {self.step}/{self.total_steps}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        if self.eval_loss is not None:
            parts.append(f"validation loss {self.eval_loss:.3f}")
        parts.append(f"{self.tokens_per_second:.0f} tok/s")
        if self.eta_seconds:
            parts.append(f"about {self.eta_seconds / 60:.1f} min left")
        return ", ".join(parts)


@dataclass
class TrainResult:
    role: str
    adapter: Path
    steps: int
    train_loss: float | None
    eval_losses: list[float]
    resumed_from: str | None
    examples: int
    dropped: int

    def summary(self) -> TrainSummary:
        return TrainSummary(role=self.role, steps=self.steps, examples=self.examples, dropped=self.dropped,
                            train_loss=self.train_loss, eval_losses=list(self.eval_losses),
                            resumed_from=self.resumed_from, adapter=str(self.adapter))


@dataclass(frozen=True)
class TrainSummary:
    """What a backend reports of a training run, local or on Modal (plain fields: from Modal it
    travels as a dict, `asdict` there and `TrainSummary(**d)` here)."""

    role: str
    steps: int
    examples: int
    dropped: int
    train_loss: float | None
    eval_losses: list[float]
    resumed_from: str | None
    adapter: str


class TrainingCancelled(WorkshopError):
    """Stopped on request, after saving a checkpoint to resume from."""

    exit_code = ExitCode.INTERRUPTED
