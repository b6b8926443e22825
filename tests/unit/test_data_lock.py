"""One writer per data folder: a second process is refused with who holds it, a holder killed
with -9 leaves a lock the next run takes over, and a finished run leaves none."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime

import pytest

from poetry_workshop import locations
from poetry_workshop.errors import ExitCode, WorkshopError
from poetry_workshop.pipeline.data_lock import LOCK_NAME, DataFolderBusy, Holder, hold_data_folder
from tests.support.cli import ROOT, run_cli

HOLDER = """
import sys
from pathlib import Path
from poetry_workshop.pipeline.data_lock import hold_data_folder
with hold_data_folder(Path(sys.argv[1]), "workshop data generate critiques --limit 200"):
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin (or kills us)
print("released", flush=True)
"""


@pytest.fixture
def holder(tmp_path):
    """Another process holding the data folder, as a generate run would."""
    folder = tmp_path / "data"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdout.readline().strip() == "held"
    yield folder, child
    if child.poll() is None:
        child.kill()
    child.wait(10)


def test_a_second_process_is_refused_with_who_holds_it_and_what_to_do(holder):
    folder, child = holder
    with pytest.raises(DataFolderBusy) as refused:
        with hold_data_folder(folder, "workshop data gate x.jsonl"):
            pytest.fail("two writers held one data folder")
    message = str(refused.value)
    assert "\n" not in message and refused.value.exit_code == ExitCode.USAGE
    assert f"pid {child.pid}" in message and "`workshop data generate critiques --limit 200`" in message
    assert f"kill {child.pid}" in message and "wait for it to finish" in message
    since = message.split(" since ")[1].split(";")[0]
    assert datetime.fromisoformat(since).tzinfo is not None  # an ISO time with its zone
    # Our refused attempt left the holder's record as it was.
    assert Holder.parse((folder / LOCK_NAME).read_text()).pid == child.pid


def test_workshop_train_exits_2_with_one_line_while_another_run_writes(holder):
    folder, child = holder
    out = run_cli("train", "educator", env={locations.DATA_ENV: str(folder)}, timeout=120)
    assert out.returncode == ExitCode.USAGE, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert f"pid {child.pid}" in lines[0] and "workshop data generate critiques" in lines[0]


def test_the_next_run_holds_the_folder_once_the_first_finishes(holder):
    folder, child = holder
    child.stdin.close()
    assert child.stdout.readline().strip() == "released"
    assert child.wait(10) == 0
    assert (folder / LOCK_NAME).read_text() == ""  # the file stays (see the module docstring), emptied
    with hold_data_folder(folder, "workshop data gate x.jsonl") as lock:
        assert lock.took_over is None
        assert Holder.parse((folder / LOCK_NAME).read_text()) == lock.holder


def test_a_lock_left_by_a_killed_process_is_taken_over_and_said(holder):
    folder, child = holder
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    left = Holder.parse((folder / LOCK_NAME).read_text())
    assert left is not None and left.pid == child.pid  # the dead run's record is still there
    with hold_data_folder(folder, "workshop data prepare") as lock:
        assert lock.took_over == left
        note = lock.takeover_note()
        assert f"pid {child.pid}" in note and "generate critiques" in note
        record = json.loads((folder / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["command"] == "workshop data prepare"
    assert (folder / LOCK_NAME).read_text() == ""


def test_a_record_with_no_live_flock_is_stale_whatever_its_pid(tmp_path):
    """The kernel's flock decides, not the pid in the file: pids are reused."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / LOCK_NAME).write_text(Holder(os.getpid(), "workshop train poet", "2025-01-01T00:00:00+00:00").to_line())
    with hold_data_folder(folder, "workshop train educator") as lock:
        assert lock.took_over.command == "workshop train poet"


def test_one_thread_may_nest_its_hold_another_thread_is_refused(tmp_path):
    folder = tmp_path / "data"
    refused: list[BaseException] = []

    def other():
        try:
            with hold_data_folder(folder, "workshop app"):
                pass
        except DataFolderBusy as exc:
            refused.append(exc)

    with hold_data_folder(folder, "workshop pipeline") as outer:
        with hold_data_folder(folder, "workshop data prepare") as inner:
            assert inner is outer
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
        assert refused and f"pid {os.getpid()}" in str(refused[0]) and "`workshop pipeline`" in str(refused[0])
        # The nested hold ended; the outer one still holds against others.
        assert Holder.parse((folder / LOCK_NAME).read_text()).command == "workshop pipeline"
    with hold_data_folder(folder, "workshop app") as again:
        assert again.took_over is None


def test_an_unwritable_folder_is_one_clear_line(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(WorkshopError) as failed:
        with hold_data_folder(blocker / "data"):
            pass
    assert "POETRY_WORKSHOP_DATA" in str(failed.value) and "\n" not in str(failed.value)
    assert not isinstance(failed.value, DataFolderBusy)
