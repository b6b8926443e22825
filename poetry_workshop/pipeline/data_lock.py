"""One writer per data folder: the lock that generate, gate, prepare, train and the build chain hold.

Two runs writing one data folder at once pay twice for the same record ids and can
interleave long appends, so each command that writes it holds `hold_data_folder` for its
whole run. The lock is `fcntl.flock` on `.workshop.lock` in the folder; the file also holds
a one-line JSON record of the holder (pid, command line, host, since when in ISO time), so a
second run can fail at once with a line that says who holds it and what to do.

A holder that dies (kill -9, a power cut) needs no cleanup: the kernel drops its flock with
its last open descriptor. The record it leaves is then stale, and is recognised as stale by
that alone: if our non-blocking flock succeeds, nobody holds the folder, whatever the file
says. The next run takes the lock over, replaces the record and reports whose it was
(`DataFolderLock.took_over`). The pid is never used to decide, because pids are reused.

The lock file is never deleted: a run that unlinked it while another had it open could let
a third lock a fresh file of the same name, and two writers would hold "the" lock. On
release the record is emptied instead.

Inside one process, a nested hold of the same folder by the same thread is counted, not
refused (the build chain holds the folder while its stages run). Another thread of the same
process is refused like another process: flock locks belong to open file descriptions.

flock is advisory and local: it does not hold across machines sharing a network folder,
which is why the record names the host.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from poetry_workshop.errors import WorkshopError

LOCK_NAME = ".workshop.lock"

# A run that has just won the flock writes its record a moment later; a refused run waits
# this long for it before saying "no record", so the message names the real holder.
RECORD_WAIT_S = 0.5


class DataFolderBusy(WorkshopError):
    """Another run is writing this data folder (exit code 2, one line)."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a data folder, as its lock file records it."""

    pid: int
    command: str
    since: str
    host: str = ""

    def describe(self) -> str:
        where = f" on {self.host}" if self.host and self.host != socket.gethostname() else ""
        return f"pid {self.pid}{where} (`{self.command}`) since {self.since}"

    def to_line(self) -> str:
        return json.dumps({"pid": self.pid, "command": self.command, "since": self.since, "host": self.host},
                          ensure_ascii=False) + "\n"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The record in a lock file's text; None when it is empty or not a record."""
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["command"]), str(data["since"]), str(data.get("host", "")))
        except (ValueError, TypeError, KeyError):
            return None


@dataclass
class DataFolderLock:
    """A held lock: the folder, our own record, and the stale record we replaced, if any."""

    folder: Path
    path: Path
    holder: Holder
    took_over: Holder | None = None

    def takeover_note(self) -> str | None:
        """A line for the log when we replaced the record of a run that died holding the folder."""
        if self.took_over is None:
            return None
        return (f"{self.folder}: took over the lock left by {self.took_over.describe()}, "
                "which ended without releasing it (nothing holds it now)")


def command_line() -> str:
    """This process's command line as a person typed it: `workshop data generate critiques ...`."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program in ("__main__.py", "-m", "-c") or program.startswith("python"):
        program = "workshop"
    return shlex.join([program, *sys.argv[1:]])


# folder -> (thread id, depth, the lock): nested holds by one thread share one flock.
_held: dict[Path, tuple[int, int, DataFolderLock]] = {}
_held_guard = threading.Lock()


def _read_record(fh: IO[str]) -> Holder | None:
    fh.seek(0)
    return Holder.parse(fh.read())


def _busy(folder: Path, fh: IO[str]) -> DataFolderBusy:
    deadline = time.monotonic() + RECORD_WAIT_S
    holder = _read_record(fh)
    while holder is None and time.monotonic() < deadline:
        time.sleep(0.02)
        holder = _read_record(fh)
    who = holder.describe() if holder else "another run (it has not written its record yet)"
    stop = f"stop it (kill {holder.pid}) and " if holder else ""
    return DataFolderBusy(
        f"{folder}: another run is writing this data folder: {who}; wait for it to finish, or {stop}"
        "run this again (a stopped run resumes where it was)"
    )


@contextmanager
def hold_data_folder(folder: Path, command: str | None = None) -> Iterator[DataFolderLock]:
    """Hold `folder` for writing for the length of the block, or raise `DataFolderBusy` at once.

    `command` is what the record says the holder is running (default: this process's
    command line)."""
    folder = Path(folder).expanduser().resolve()
    me = threading.get_ident()
    with _held_guard:
        nested = _held.get(folder)
        if nested is not None and nested[0] == me:
            _held[folder] = (me, nested[1] + 1, nested[2])
    if nested is not None and nested[0] == me:
        try:
            yield nested[2]
        finally:
            with _held_guard:
                thread, depth, lock = _held[folder]
                _held[folder] = (thread, depth - 1, lock)
        return

    try:
        folder.mkdir(parents=True, exist_ok=True)
        # "a+" creates the file without truncating it: the record of a live holder must survive
        # our failed attempt, and a stale one is read before we replace it.
        fh = open(folder / LOCK_NAME, "a+", encoding="utf-8")
    except OSError as exc:
        raise WorkshopError(f"{folder / LOCK_NAME}: cannot open the data folder's lock ({exc.strerror}); "
                            "check the folder's permissions or set POETRY_WORKSHOP_DATA to a writable folder") from None
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(folder, fh) from None
        stale = _read_record(fh)
        holder = Holder(os.getpid(), command or command_line(), datetime.now().astimezone().isoformat(timespec="seconds"),
                        socket.gethostname())
        fh.seek(0)
        fh.truncate()
        fh.write(holder.to_line())
        fh.flush()
        os.fsync(fh.fileno())
        lock = DataFolderLock(folder, folder / LOCK_NAME, holder, stale)
        with _held_guard:
            _held[folder] = (me, 1, lock)
        try:
            yield lock
        finally:
            with _held_guard:
                _held.pop(folder, None)
            # Empty the record before letting go, so the next run does not mistake a clean
            # finish for a run that died.
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        fh.close()
