"""Modal calls through a seam: spawned with their id on disk before the wait, cancelled
(containers terminated, the end confirmed) on the build's cancel or Ctrl+C, re-attached by a
resume while still running, never started twice. Modal's servers are not reached: the fake
call below answers `get` and `cancel` as `modal.FunctionCall` does (modal 1.6.4: a
`modal.exception.TimeoutError` while running; `OutputExpiredError` once gone), and the
ModalBackend tests go through the backend's own train and export with a stand-in app module."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
from modal.exception import OutputExpiredError
from modal.exception import TimeoutError as ModalTimeout

from poetry_workshop.config.loader import load_settings
from poetry_workshop.pipeline.build.backends import ModalBackend
from poetry_workshop.pipeline.build.modal_calls import ModalCalls
from poetry_workshop.pipeline.training.results import TrainingCancelled


class FakeCall:
    """A FunctionCall that runs for `polls` waits, then returns `result`; once cancelled,
    `get` raises as a cancelled call does."""

    def __init__(self, object_id: str, result=None, polls: int = 2, on_get=None):
        self.object_id, self.result, self.polls, self.on_get = object_id, result, polls, on_get
        self.cancelled: list[bool] = []
        self.gets = 0

    def get(self, timeout=None):
        self.gets += 1
        if self.on_get:
            self.on_get(self)
        if self.cancelled:
            raise OutputExpiredError()
        if self.polls > 0:
            self.polls -= 1
            raise ModalTimeout()
        return self.result

    def cancel(self, terminate_containers=False):
        self.cancelled.append(terminate_containers)


class Spawner:
    def __init__(self, *calls):
        self.calls = list(calls)
        self.spawned: list[FakeCall] = []

    def __call__(self):
        call = self.calls.pop(0)
        self.spawned.append(call)
        return call


def calls(tmp_path, known: dict, lines: list):
    return ModalCalls(lambda call_id: known[call_id], lines.append, path=tmp_path / "modal_calls.json",
                      poll_s=0.0, confirm_s=0.5)


def test_a_spawned_call_is_recorded_before_the_wait_and_forgotten_after_its_result(tmp_path):
    seen_on_disk = []
    call = FakeCall("fc-1", result={"steps": 3},
                    on_get=lambda c: seen_on_disk.append(json.loads((tmp_path / "modal_calls.json").read_text())))
    result = calls(tmp_path, {}, []).run("train educator", Spawner(call))
    assert result == {"steps": 3}
    assert seen_on_disk[0]["train educator"]["call_id"] == "fc-1"
    assert json.loads((tmp_path / "modal_calls.json").read_text()) == {}


def test_cancel_stops_the_call_with_its_containers_and_says_it_ended(tmp_path):
    cancel = threading.Event()
    call = FakeCall("fc-2", polls=1000, on_get=lambda c: cancel.set() if c.gets == 2 else None)
    lines: list[str] = []
    with pytest.raises(TrainingCancelled, match="cancelled on Modal"):
        calls(tmp_path, {}, lines).run("train poet", Spawner(call), cancel)
    assert call.cancelled == [True]  # terminate_containers: the GPU stops now
    assert any("cancelled Modal call fc-2; its GPU is released" in line for line in lines)
    assert json.loads((tmp_path / "modal_calls.json").read_text()) == {}  # nothing left to re-attach to


def test_a_cancel_modal_does_not_confirm_is_said_so(tmp_path):
    class Stubborn(FakeCall):
        def get(self, timeout=None):
            self.gets += 1
            raise ModalTimeout()

    cancel = threading.Event()
    cancel.set()
    call = Stubborn("fc-3")
    lines: list[str] = []
    with pytest.raises(TrainingCancelled):
        calls(tmp_path, {}, lines).run("export educator", Spawner(call), cancel)
    assert call.cancelled == [True]
    assert any("not yet confirmed" in line and "dashboard" in line for line in lines)


def test_ctrl_c_cancels_the_call_before_it_propagates(tmp_path):
    def interrupt(c):
        if c.gets == 1:
            raise KeyboardInterrupt

    call = FakeCall("fc-4", polls=1000, on_get=interrupt)
    with pytest.raises(KeyboardInterrupt):
        calls(tmp_path, {}, []).run("train educator", Spawner(call))
    assert call.cancelled == [True]


def test_a_resume_re_attaches_to_a_running_call_instead_of_spawning(tmp_path):
    running = FakeCall("fc-5", result={"steps": 9}, polls=3)
    first = calls(tmp_path, {}, [])
    first._remember("train educator", "fc-5")  # what a killed run left behind
    spawner = Spawner(FakeCall("fc-never"))
    lines: list[str] = []
    result = calls(tmp_path, {"fc-5": running}, lines).run("train educator", spawner)
    assert result == {"steps": 9}
    assert spawner.spawned == []
    assert any("re-attaching" in line and "fc-5" in line for line in lines)


def test_a_call_that_finished_while_away_gives_its_result(tmp_path):
    done = FakeCall("fc-6", result={"steps": 4}, polls=0)
    calls(tmp_path, {}, [])._remember("train poet", "fc-6")
    spawner = Spawner(FakeCall("fc-never"))
    assert calls(tmp_path, {"fc-6": done}, []).run("train poet", spawner) == {"steps": 4}
    assert spawner.spawned == []


def test_a_call_that_ended_while_away_is_started_again(tmp_path):
    gone = FakeCall("fc-7")
    gone.cancelled.append(True)  # get raises OutputExpiredError
    calls(tmp_path, {}, [])._remember("train poet", "fc-7")
    fresh = FakeCall("fc-8", result={"steps": 2}, polls=0)
    spawner = Spawner(fresh)
    assert calls(tmp_path, {"fc-7": gone}, []).run("train poet", spawner) == {"steps": 2}
    assert spawner.spawned == [fresh]


def test_a_failed_call_is_forgotten_and_its_error_raised(tmp_path):
    class Failing(FakeCall):
        def get(self, timeout=None):
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        calls(tmp_path, {}, []).run("train educator", Spawner(Failing("fc-9")))
    assert json.loads((tmp_path / "modal_calls.json").read_text()) == {}


# ------------------------------------------------------------------ through the backend


class StandInApp:
    """The two functions of modal_app, spawning fake calls and keeping what they were given."""

    def __init__(self, train_result, polls=1, on_get=None):
        self.spawns: list[tuple] = []
        self.train_result, self.polls, self.on_get = train_result, polls, on_get
        self.train_role = SimpleNamespace(spawn=lambda *args: self._spawn("train", args))
        self.export_role = SimpleNamespace(spawn=lambda *args: self._spawn("export", args))
        self.known: dict[str, FakeCall] = {}

    def _spawn(self, kind, args):
        self.spawns.append((kind, args))
        call = FakeCall(f"fc-{kind}-{len(self.spawns)}", result=self.train_result, polls=self.polls,
                        on_get=self.on_get)
        self.known[call.object_id] = call
        return call


def summary(role="educator") -> dict:
    return {"role": role, "adapter": "/vol/checkpoints/educator/adapter", "steps": 3, "train_loss": 1.2,
            "eval_losses": [], "resumed_from": None, "examples": 4, "dropped": 0}


def backend_with(stand_in, data, monkeypatch) -> ModalBackend:
    monkeypatch.setenv("POETRY_WORKSHOP_DATA", str(data))
    monkeypatch.setattr("poetry_workshop.pipeline.build.cloud_sync.set_checksums", lambda role, settings: {})
    backend = ModalBackend(load_settings(environ={}), [], lambda line: None, running=stand_in,
                           from_id=lambda call_id: stand_in.known[call_id])
    backend.modal_app = stand_in  # as __enter__ does when `modal run` started the app
    return backend


def test_modal_backend_trains_through_a_spawned_call(tmp_path, monkeypatch):
    stand_in = StandInApp(summary())
    result = backend_with(stand_in, tmp_path / "data", monkeypatch).train("educator", 1, None, None, None)
    assert result.steps == 3
    assert [kind for kind, _ in stand_in.spawns] == ["train"]


def test_the_build_cancel_stops_modal_training_and_a_rerun_re_attaches(tmp_path, monkeypatch):
    cancel = threading.Event()
    stand_in = StandInApp(summary(), polls=1000, on_get=lambda c: cancel.set() if c.gets == 3 else None)
    backend = backend_with(stand_in, tmp_path / "data", monkeypatch)
    with pytest.raises(TrainingCancelled):
        backend.train("educator", 1, None, None, cancel)
    (call,) = stand_in.known.values()
    assert call.cancelled == [True]

    # A run killed outright leaves its call recorded; the next run waits on it.
    stand_in = StandInApp(summary(), polls=2)
    backend = backend_with(stand_in, tmp_path / "data", monkeypatch)
    running = FakeCall("fc-left", result=summary(), polls=2)
    stand_in.known["fc-left"] = running
    backend._calls()._remember("train educator", "fc-left")
    assert backend.train("educator", 1, None, None, None).steps == 3
    assert stand_in.spawns == []  # re-attached, not started twice
