"""The Modal calls a build has in flight: spawned, their ids kept on disk, waited on in
short polls so that a cancel stops the GPU, and re-attached by a resume instead of started
twice.

A blocking `.remote()` call cannot be cancelled from here: pressing `c` on the build screen
left the GPU training until the function's timeout (hours). So each training or export runs
as a spawned `FunctionCall`, whose id is written to `data/build/modal_calls.json` before the
wait begins. While waiting, a cancel (the build screen's `c`, or Ctrl+C on the command line)
cancels the call with its containers terminated, then waits a few seconds for Modal to
confirm that it ended, and says which. The app runs detached (backends.py), so a closed
terminal or a crash does not kill a paid run halfway; the next run of the same step finds the
call still running and waits on it again, or takes its result if it finished meanwhile.

Everything Modal-specific comes in through `from_id` and the `spawn` callable, so the rules
here are tested without Modal's servers (tests/chain/test_modal_calls.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from poetry_workshop import locations
from poetry_workshop.files import write_atomic
from poetry_workshop.pipeline.training.results import TrainingCancelled

POLL_S = 5.0  # how long one wait lasts before the cancel flag is looked at again
CONFIRM_S = 20.0  # how long to wait for Modal to confirm that a cancelled call ended


def calls_file() -> Path:
    return locations.data_dir() / "build" / "modal_calls.json"


def _modal_errors():
    """(still running, ended) exception types of `FunctionCall.get`: modal's TimeoutError
    means "no output yet", except its subclasses for an expired output and a function that
    ran past its own timeout, which mean the call is over."""
    from modal.exception import FunctionTimeoutError, OutputExpiredError
    from modal.exception import TimeoutError as ModalTimeout

    return ModalTimeout, (OutputExpiredError, FunctionTimeoutError)


class ModalCalls:
    """Spawn-or-re-attach, wait, cancel, for the calls recorded in one file."""

    def __init__(self, from_id: Callable[[str], Any], log: Callable[[str], None], path: Path | None = None,
                 poll_s: float = POLL_S, confirm_s: float = CONFIRM_S, errors=None):
        self.from_id, self.log = from_id, log
        self.path = path or calls_file()
        self.poll_s, self.confirm_s = poll_s, confirm_s
        self.running_error, self.ended_errors = errors or _modal_errors()

    # -- the record
    def recorded(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # unreadable: nothing to re-attach to; a new call is recorded over it

    def _write(self, calls: dict[str, dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(calls, indent=2) + "\n")

    def _remember(self, key: str, call_id: str) -> None:
        calls = self.recorded()
        calls[key] = {"call_id": call_id, "started": datetime.now(UTC).isoformat(timespec="seconds")}
        self._write(calls)

    def _forget(self, key: str) -> None:
        calls = self.recorded()
        if calls.pop(key, None) is not None:
            self._write(calls)

    # -- the call
    def run(self, key: str, spawn: Callable[[], Any], cancel: threading.Event | None = None) -> Any:
        """The result of the call recorded under `key` if one is still running or finished
        meanwhile, else of a call `spawn()` starts now. Raises TrainingCancelled once
        `cancel` is set (after cancelling the call), and re-raises KeyboardInterrupt likewise."""
        call = None
        entry = self.recorded().get(key)
        if entry:
            call = self.from_id(entry["call_id"])
            try:
                result = call.get(timeout=0)
            except self.ended_errors:
                call = None
            except self.running_error:
                self.log(f"{key}: re-attaching to the Modal call started {entry['started']} ({entry['call_id']}), "
                         "still running, instead of starting a second one")
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                self.log(f"{key}: the Modal call started {entry['started']} ended without a result "
                         f"({type(exc).__name__}); starting again")
                call = None
            else:
                self._forget(key)
                self.log(f"{key}: the Modal call started {entry['started']} finished while away; using its result")
                return result
            if call is None:
                self._forget(key)
        if call is None:
            call = spawn()
            self._remember(key, call.object_id)
        return self._wait(key, call, cancel)

    def _wait(self, key: str, call, cancel: threading.Event | None) -> Any:
        while True:
            try:
                result = call.get(timeout=self.poll_s)
            except self.ended_errors:
                self._forget(key)
                raise
            except self.running_error:
                if cancel is not None and cancel.is_set():
                    self.stop(key, call)
                    raise TrainingCancelled(f"{key}: cancelled on Modal; its checkpoints stay on the volume and "
                                            "running it again resumes from them")
                continue
            except KeyboardInterrupt:
                self.stop(key, call)
                raise
            except Exception:
                self._forget(key)  # the call failed: nothing to re-attach to
                raise
            self._forget(key)
            return result

    def stop(self, key: str, call) -> None:
        """Cancel the call, its containers terminated (so the GPU stops now, not at the
        step's end), and say whether Modal confirmed that it ended."""
        call.cancel(terminate_containers=True)
        self._forget(key)
        deadline = time.monotonic() + self.confirm_s
        while True:
            try:
                call.get(timeout=max(0.0, min(self.poll_s, deadline - time.monotonic())))
            except self.ended_errors:
                break
            except self.running_error:
                if time.monotonic() < deadline:
                    continue
                self.log(f"{key}: cancel sent to Modal call {call.object_id}, not yet confirmed after "
                         f"{self.confirm_s:.0f} s; check it on the Modal dashboard (modal app list)")
                return
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException:
                break  # cancelled: get raises the cancellation
            else:
                break  # it finished just before the cancel reached it
        self.log(f"{key}: cancelled Modal call {call.object_id}; its GPU is released")
