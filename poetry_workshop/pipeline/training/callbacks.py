"""The trainer's callback: progress events, checkpoint hooks and cancellation at a step.

Imported only inside `trainer.train`, since it subclasses transformers' `TrainerCallback`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from transformers import TrainerCallback

from poetry_workshop.pipeline.training.results import TrainingProgress


class WorkshopCallback(TrainerCallback):
    """Reports each logged step as a `TrainingProgress`, collects validation losses, runs
    `on_checkpoint` after every saved checkpoint, and stops after the current optimiser
    step, with a checkpoint to resume from, once `cancel` is set."""

    def __init__(self, role: str, out_dir: Path, *, on_progress: Callable[[TrainingProgress], None] | None,
                 on_checkpoint: Callable[[Path], None], cancel: threading.Event | None):
        self.role, self.out_dir = role, out_dir
        self.on_progress, self.on_checkpoint, self.cancel = on_progress, on_checkpoint, cancel
        self.eval_losses: list[float] = []
        self.started = time.monotonic()
        self.tokens_seen = 0

    def on_save(self, args, state, control, **kwargs):
        self.on_checkpoint(self.out_dir / f"checkpoint-{state.global_step}")

    def on_step_end(self, args, state, control, **kwargs):
        if self.cancel is not None and self.cancel.is_set():
            control.should_save = True  # the next run resumes from this step
            control.should_training_stop = True
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "eval_loss" in logs:
            self.eval_losses.append(float(logs["eval_loss"]))
        self.tokens_seen = int(logs.get("num_tokens", self.tokens_seen) or self.tokens_seen)
        elapsed = max(1e-6, time.monotonic() - self.started)
        done = max(1, state.global_step)
        eta = (state.max_steps - state.global_step) * elapsed / done if state.max_steps else None
        if self.on_progress:
            self.on_progress(TrainingProgress(self.role, state.global_step, state.max_steps, logs.get("loss"),
                                              self.tokens_seen / elapsed, eta, logs.get("eval_loss")))
