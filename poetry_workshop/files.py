"""Files that are whole or absent: the one temporary-file-and-rename write, and sha256.

Every file the project publishes (a session transcript, the build state, the user config,
a training set, a downloaded model) goes through `atomic_file`: the bytes go to a hidden
temporary file beside the target, are flushed to disk (`fsync`), renamed over the target,
and the folder itself is flushed so the rename survives a power loss. A crash at any point
leaves the old file or the new one, never half of either.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Windows cannot open a folder; its renames are durable enough
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Yield a file to write `path` through; it replaces `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def write_atomic(path: Path, text: str) -> None:
    """Replace a text file in one step."""
    with atomic_file(path) as fh:
        fh.write(text)


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """A whole JSONL file at once (one record a line): never half written."""
    with atomic_file(path) as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


def copy_atomic(source: Path, target: Path) -> None:
    """Copy a (possibly large) file in blocks, so `target` is the whole copy or untouched."""
    with atomic_file(target, "wb") as out, open(source, "rb") as src:
        while chunk := src.read(1 << 20):
            out.write(chunk)


def sha256_of(path: Path) -> str:
    """The file's sha256 as hex, read in blocks so a multi-GB model never sits in memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
